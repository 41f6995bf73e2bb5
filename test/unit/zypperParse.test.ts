import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import { parseXml, textContent } from '../../src/agent/backends/xml.js';
import {
  combineAssessment,
  parseInstallSummary,
  parseMessages,
  parsePackageUpdates,
  parsePatchPackages,
  parsePatches,
  parseRepositoryList,
  parseSearchResult,
  repositoryProblemsFrom,
  type ZypperPatch,
} from '../../src/agent/backends/zypper/parse.js';
import { FIXTURE_PACKAGES } from '../../testkit/catalog.js';
import { ZYPPER_REPOSITORIES } from '../../testkit/zypper.js';

// The zypper backend's readers, on XML and text recorded from zypper 1.14 on the SLES fixture
// machines of testkit/zypper.ts (test/fixtures/zypper/, made by test/fixtures/recordOutputs.ts,
// and captures inline). The backend running the real zypper: test/agent/zypper.test.ts.

const recorded = (name: string) => fs.readFileSync(new URL(`../fixtures/zypper/${name}`, import.meta.url), 'utf8');

describe('an assessment read from recorded zypper output (a fresh fixture machine)', () => {
  it('lists exactly the catalog pending updates, with their patches, the new dependency and the reboot hint', () => {
    const summary = parseInstallSummary(recorded('update-dry-run.xml'));
    const found = parseSearchResult(recorded('search-new-packages.xml'));
    const newPackages = (summary?.install ?? [])
      .filter((s) => s.kind === 'package')
      .map((n) => ({ ...n, repository: found.find((f) => f.name === n.name && f.edition === n.edition)?.repository ?? null }));
    const updates = combineAssessment({
      packageUpdates: parsePackageUpdates(recorded('list-updates.xml')),
      newPackages,
      patches: parsePatches(recorded('list-patches.xml')),
      patchPackages: parsePatchPackages(recorded('info-patch-conflicts.xml')),
      rebootHintPackages: parseSearchResult(recorded('search-reboot-hint.xml')),
    });
    const expected: PendingUpdate[] = FIXTURE_PACKAGES.filter((p) => p.available).map((p) => ({
      name: p.name,
      installedVersion: p.installed,
      availableVersion: p.available!,
      arch: 'noarch',
      classification: p.classification,
      severity: p.severity,
      advisoryIds: p.advisoryId ? [p.advisoryId] : [],
      cveIds: [...p.cveIds].sort(),
      rebootSuggested: p.rebootSuggested,
      repository: ZYPPER_REPOSITORIES.updates,
      ...(p.advisoryId ? { advisoryIssuedAt: p.advisoryIssued } : {}),
    }));
    const byName = (a: PendingUpdate, b: PendingUpdate) => a.name.localeCompare(b.name);
    expect([...updates].sort(byName)).toEqual(expected.sort(byName));
  });
});

describe('zypper output reading', () => {
  it('reads patches from XML captured from zypper 1.14 (-x lp), entities included', () => {
    const captured = [
      "<?xml version='1.0'?>",
      '<stream>',
      '<message type="info">Loading repository data...</message>',
      '<update-status version="0.6">',
      '<update-list>',
      '<update kind="patch" name="DEMO-2025:0004" edition="1" arch="noarch" status="needed" category="security" severity="moderate" pkgmanager="false" restart="true" interactive="true"><summary>Security update for linux-image-demo</summary><description>This update for linux-image-demo fixes issues &amp; improves things.</description><license/><source url="file:/tmp/zx/m1/repos/updates" alias="demo-updates"/><issue-date time_t="1735689600" text="2025-01-01T00:00:00Z"/><issue-list><issue type="cve" id="CVE-2025-0004"><title>CVE-2025-0004</title><href>https://www.suse.com/security/cve/CVE-2025-0004/</href></issue><issue type="bugzilla" id="1234567"><title>bug</title><href>h</href></issue></issue-list></update><update kind="patch" name="DEMO-2025:0006" edition="1" arch="noarch" status="needed" category="optional" severity="" pkgmanager="false" restart="false" interactive="false"><summary>Update for demo-app</summary><description>d</description><license/><source url="file:/tmp/zx/m1/repos/updates" alias="demo-updates"/><issue-date time_t="1735689600" text="2025-01-01T00:00:00Z"/><issue-list/></update></update-list>',
      '</update-status>',
      '</stream>',
      '',
    ].join('\n');
    expect(parsePatches(captured)).toEqual([
      { name: 'DEMO-2025:0004', status: 'needed', category: 'security', severity: 'moderate', rebootSuggested: true, interactive: true, repository: 'demo-updates', cveIds: ['CVE-2025-0004'], issuedAt: '2025-01-01T00:00:00.000Z' },
      { name: 'DEMO-2025:0006', status: 'needed', category: 'optional', severity: '', rebootSuggested: false, interactive: false, repository: 'demo-updates', cveIds: [], issuedAt: '2025-01-01T00:00:00.000Z' },
    ]);
    const document = parseXml(`<stream><message type="error">Repository &apos;a&amp;b&apos; &lt;x&gt; &#65;&#x42;</message></stream>`);
    expect(textContent(document)).toBe("Repository 'a&b' <x> AB");
    expect(() => parseXml('<stream><update-list></stream>')).toThrow();
  });

  it('reads the packages of a patch from its conflicts (captured: zypper -x info -t patch --conflicts)', () => {
    const captured = [
      "<?xml version='1.0'?>",
      '<stream>',
      '<message type="info">Loading repository data...</message>',
      '<message type="info">Repository  : r3',
      'Name        : SUSE-SU-2025:1234-1',
      'Status      : needed',
      'Category    : security',
      'Description : ',
      '    d',
      'Provides    : patch:SUSE-SU-2025:1234-1 = 1',
      'Conflicts   : [4]',
      '    demo-libssl &lt; 1.1-1',
      '    demo-tool.x86_64 &lt; 1.1-1',
      '    demo-tool.noarch &lt; 1.1-1',
      '    demo-tool &lt; 1.1-1',
      '</message>',
      '<message type="info">Repository  : demo-updates',
      'Name        : DEMO-2025:0001',
      'Provides    : patch:DEMO-2025:0001 = 1',
      'Conflicts   : demo-libssl &lt; 1.1-1',
      '</message>',
      '</stream>',
    ].join('\n');
    expect(Object.fromEntries(parsePatchPackages(captured))).toEqual({
      'SUSE-SU-2025:1234-1': [
        { name: 'demo-libssl', edition: '1.1-1' },
        { name: 'demo-tool.x86_64', edition: '1.1-1' },
        { name: 'demo-tool.noarch', edition: '1.1-1' },
        { name: 'demo-tool', edition: '1.1-1' },
      ],
      'DEMO-2025:0001': [{ name: 'demo-libssl', edition: '1.1-1' }],
    });
  });

  it('names a failed repository by its alias when zypper calls it by its name (captured: zypper -x refresh)', () => {
    const refresh = [
      "<?xml version='1.0'?>",
      '<stream>',
      '<message type="info">Repository &apos;demo-base&apos; is up to date.</message>',
      '<message type="error">Repository &apos;Nice Missing Repo&apos; is invalid.',
      '[missing|file:/tmp/zx/m4/nonexistent] Valid metadata not found at specified URL',
      'History:',
      " - Specified path &apos;/tmp/zx/m4/nonexistent&apos; is not a directory: file:/tmp/zx/m4/nonexistent",
      '</message>',
      '<message type="error">Skipping repository &apos;Nice Missing Repo&apos; because of the above error.</message>',
      '<message type="error">Some of the repositories have not been refreshed because of an error.</message>',
      '</stream>',
    ].join('\n');
    const repos = [
      "<?xml version='1.0'?>",
      '<stream>',
      '<repo-list>',
      '<repo alias="demo-base" name="demo-base" type="rpm-md" priority="99" enabled="1" autorefresh="0" gpgcheck="0" repo_gpgcheck="0" pkg_gpgcheck="0">',
      '<url>file:/tmp/zx/m4/repos/base</url>',
      '</repo>',
      '<repo alias="missing" name="Nice Missing Repo" priority="99" enabled="1" autorefresh="0" gpgcheck="0" repo_gpgcheck="0" pkg_gpgcheck="0">',
      '<url>file:/tmp/zx/m4/nonexistent</url>',
      '</repo>',
      '</repo-list>',
      '</stream>',
    ].join('\n');
    const problems = repositoryProblemsFrom(parseMessages(refresh), parseRepositoryList(repos));
    expect(problems).toHaveLength(1);
    expect(problems[0]!.repository).toBe('missing');
    expect(problems[0]!.message).toMatch(/^Repository 'Nice Missing Repo' is invalid\.\n\[missing\|file:\/tmp\/zx\/m4\/nonexistent\]/);
  });

  it('ties a patch to an update only while the installed edition still lacks its fix', () => {
    const patch = (name: string): ZypperPatch => ({ name, status: 'needed', category: 'security', severity: 'important', rebootSuggested: false, interactive: false, repository: 'u', cveIds: [], issuedAt: null });
    const [pending] = combineAssessment({
      packageUpdates: [{ name: 'libfoo', edition: '3-1', editionOld: '2-1', arch: 'x86_64', repository: 'u' }],
      newPackages: [],
      // OLD fixed 2-1 (installed already; still needed for another package), NEW fixes 3-1.
      patches: [patch('OLD'), patch('NEW')],
      patchPackages: new Map([
        ['OLD', [{ name: 'libfoo.x86_64', edition: '2-1' }, { name: 'libbar', edition: '2-1' }]],
        ['NEW', [{ name: 'libfoo.x86_64', edition: '3-1' }]],
      ]),
      rebootHintPackages: [],
    });
    expect(pending).toMatchObject({ name: 'libfoo', classification: 'SECURITY', severity: 'IMPORTANT', advisoryIds: ['NEW'] });
  });
});
