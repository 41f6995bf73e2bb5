import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { normaliseSeverity } from '../../src/agent/backends/rpm.js';
import {
  advisoryDate,
  classifyAdvisories,
  dnfErrorLines,
  interpreterFromShebang,
  parseBootTime,
  readProblems,
  readRebootCandidates,
  readUpdates,
  rebootPendingFrom,
  releaseverFromOsRelease,
  scriptletErrorLines,
} from '../../src/agent/backends/dnf/parse.js';
import { compareEditions, splitNevra } from '../../src/agent/backends/rpm.js';
import { BackendError } from '../../src/agent/backends/types.js';
import { parseCheckUpdate, parseRepositoryProblems, parseUpdateinfoList } from '../../src/agent/backends/yum/parse.js';
import { parseOsRelease } from '../../src/agent/facts.js';
import { FIXTURE_PACKAGES } from '../../testkit/catalog.js';
import { DNF_REPOSITORIES } from '../../testkit/dnf.js';

// The dnf and yum backends' readers, on output recorded from dnf 4 and its Python API on the
// Rocky-9-like fixture machines of testkit/dnf.ts (test/fixtures/dnf/, made by
// test/fixtures/recordOutputs.ts, and captures inline). The backends running the real dnf:
// test/agent/dnf.test.ts.

const recorded = (name: string) => fs.readFileSync(new URL(`../fixtures/dnf/${name}`, import.meta.url), 'utf8');
const pending = FIXTURE_PACKAGES.filter((p) => p.available !== null);

describe('recorded dnf output (a fresh fixture machine)', () => {
  it("reads the Python helper's answer as exactly the catalog pending updates, with advisories, CVEs and reboot hints", () => {
    const line = recorded('helper-assess.txt').split('\n').find((l) => l.startsWith('@@FLEETPATCH-DNF@@'))!;
    const answer = JSON.parse(line.slice('@@FLEETPATCH-DNF@@'.length)) as Record<string, unknown>;
    const updates = readUpdates(answer.updates).sort((a, b) => a.name.localeCompare(b.name));
    expect(updates).toEqual(
      pending
        .map((p) => ({
          name: p.name,
          installedVersion: p.installed,
          availableVersion: p.available!,
          arch: 'noarch',
          classification: p.classification,
          severity: p.severity,
          advisoryIds: p.advisoryId ? [p.advisoryId] : [],
          cveIds: [...p.cveIds].sort(),
          rebootSuggested: p.rebootSuggested,
          repository: DNF_REPOSITORIES.updates,
          ...(p.advisoryId ? { advisoryIssuedAt: p.advisoryIssued } : {}),
        }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    );
    expect(readProblems(answer.repositoryProblems)).toEqual([]);
    expect(readRebootCandidates(answer.rebootCandidates)).toEqual([]);
  });

  it('keeps the error lines of an install whose %pre fails, not the transaction table', () => {
    const output = recorded('install-pre-fails.txt');
    expect(dnfErrorLines(output)).toEqual([
      'error: lua script failed: [string "%prein(demo-broken-1.1-1.noarch)"]:1: demo-broken 1.1-1: refusing to install (fixture failure in %pre)',
      'Error in PREIN scriptlet in rpm package demo-broken',
      'Error: Transaction failed',
    ]);
  });

  it("reads yum's check-update and updateinfo lists (dnf's yum-compatible command line)", () => {
    expect(parseCheckUpdate(recorded('yum-check-update.txt')).map((l) => `${l.name} ${l.version}`).sort()).toEqual(
      pending.filter((p) => p.installed !== null).map((p) => `${p.name} ${p.available}`).sort(),
    );
    const advisories = parseUpdateinfoList(recorded('yum-updateinfo-list.txt'));
    expect(advisories.map((a) => a.id).sort()).toEqual(pending.flatMap((p) => (p.advisoryId ? [p.advisoryId] : [])).sort());
    expect(parseUpdateinfoList(recorded('yum-updateinfo-list-cves.txt')).map((c) => c.id).sort()).toEqual(pending.flatMap((p) => p.cveIds).sort());
  });
});

describe('dnf output parsers', () => {
  const brokenInstall = [
    'Running transaction',
    '  Preparing        :                                                        1/1 ',
    '  Running scriptlet: demo-broken-1.1-1.noarch                               1/2 ',
    'error: lua script failed: [string "%prein(demo-broken-1.1-1.noarch)"]:1: demo-broken 1.1-1: refusing to install (fixture failure in %pre)',
    '',
    '  Verifying        : demo-broken-1.1-1.noarch                               1/2 ',
    '  Verifying        : demo-broken-1.0-1.noarch                               2/2 ',
    '',
    'Failed:',
    '  demo-broken-1.0-1.noarch               demo-broken-1.1-1.noarch              ',
    '',
    "Errors during downloading metadata for repository 'fixture-unreachable':",
    "  - Curl error (7): Couldn't connect to server for http://127.0.0.1:9/repodata/repomd.xml [Failed to connect to 127.0.0.1 port 9 after 0 ms: Couldn't connect to server]",
    "Error: Failed to download metadata for repo 'fixture-unreachable': Cannot download repomd.xml: Cannot download repodata/repomd.xml: All mirrors were tried",
    'Ignoring repositories: fixture-unreachable',
    'Error in PREIN scriptlet in rpm package demo-broken',
    'Error: Transaction failed',
  ].join('\n');

  it('keeps dnf error lines of a failed transaction and drops the progress table and repository noise', () => {
    expect(dnfErrorLines(brokenInstall)).toEqual([
      'error: lua script failed: [string "%prein(demo-broken-1.1-1.noarch)"]:1: demo-broken 1.1-1: refusing to install (fixture failure in %pre)',
      'Error in PREIN scriptlet in rpm package demo-broken',
      'Error: Transaction failed',
    ]);
  });

  it('finds a %post failure in output that ends with Complete!', () => {
    const output = [
      '  Running scriptlet: demo-postfail-1.1-1.noarch                             1/1 ',
      'error: lua script failed: [string "%post(demo-postfail-1.1-1.noarch)"]:1: postfail boom',
      '',
      'Installed:',
      '  demo-postfail-1.1-1.noarch                                                    ',
      'Complete!',
      'Error in POSTIN scriptlet in rpm package demo-postfail',
    ].join('\n');
    expect(scriptletErrorLines(output)).toEqual([
      'error: lua script failed: [string "%post(demo-postfail-1.1-1.noarch)"]:1: postfail boom',
      'Error in POSTIN scriptlet in rpm package demo-postfail',
    ]);
    expect(scriptletErrorLines('Upgraded:\n  demo-tool-1.1-1.noarch\n\nComplete!\n')).toEqual([]);
  });

  it('reads check-update and updateinfo list text', () => {
    const checkUpdate = [
      '',
      'demo-app.noarch                          2.0-1                   fixture-updates',
      'demo-libssl.noarch                       1.1-1                   fixture-updates',
      'a-very-long-package-name-that-wraps.x86_64',
      '                                         1:2.3-4.el9             appstream',
    ].join('\n');
    expect(parseCheckUpdate(checkUpdate)).toEqual([
      { name: 'demo-app', arch: 'noarch', version: '2.0-1', repository: 'fixture-updates' },
      { name: 'demo-libssl', arch: 'noarch', version: '1.1-1', repository: 'fixture-updates' },
      { name: 'a-very-long-package-name-that-wraps', arch: 'x86_64', version: '1:2.3-4.el9', repository: 'appstream' },
    ]);
    expect(() => parseCheckUpdate('this is not check-update output at all')).toThrow(BackendError);

    const list = [
      'DEMO-2025:0006 enhancement    demo-app-2.0-1.noarch',
      'DEMO-2025:0001 Critical/Sec.  demo-libssl-1.1-1.noarch',
      'DEMO-2025:0003 bugfix         demo-editor-1.1-1.noarch',
      'updateinfo list done',
    ].join('\n');
    expect(parseUpdateinfoList(list)).toEqual([
      { id: 'DEMO-2025:0006', type: 'enhancement', severity: null, nevra: 'demo-app-2.0-1.noarch' },
      { id: 'DEMO-2025:0001', type: 'security', severity: 'Critical', nevra: 'demo-libssl-1.1-1.noarch' },
      { id: 'DEMO-2025:0003', type: 'bugfix', severity: null, nevra: 'demo-editor-1.1-1.noarch' },
    ]);
  });

  it('names the unreachable repository with dnf reason', () => {
    expect(parseRepositoryProblems(brokenInstall)).toEqual([
      {
        repository: 'fixture-unreachable',
        message:
          "Failed to download metadata for repo 'fixture-unreachable': Cannot download repomd.xml: Cannot download repodata/repomd.xml: All mirrors were tried; Curl error (7): Couldn't connect to server for http://127.0.0.1:9/repodata/repomd.xml [Failed to connect to 127.0.0.1 port 9 after 0 ms: Couldn't connect to server]",
      },
    ]);
  });

  it("reads an advisory's issue date however updateinfo writes it, and keeps the newest of an update's advisories", () => {
    expect(
      ['2025-01-15 00:00:00', '2025-01-15', '2025-01-15T08:30:00Z', '2025-01-15 08:30:00+02:00', '1736899200', '', 'soon', '2025-13-40 00:00:00', null].map(advisoryDate),
    ).toEqual([
      '2025-01-15T00:00:00.000Z',
      '2025-01-15T00:00:00.000Z',
      '2025-01-15T08:30:00.000Z',
      '2025-01-15T06:30:00.000Z',
      '2025-01-15T00:00:00.000Z',
      null,
      null,
      null,
      null,
    ]);
    const [update] = readUpdates([
      {
        name: 'openssl',
        installedVersion: '1:3.0.7-24.el9',
        availableVersion: '1:3.0.7-27.el9',
        arch: 'x86_64',
        repository: 'baseos',
        rebootSuggested: false,
        advisories: [
          { id: 'RHSA-2024:0001', type: 'security', severity: 'Moderate', cves: [], issued: '2024-01-02 00:00:00' },
          { id: 'RHSA-2024:0310', type: 'security', severity: 'Low', cves: [], issued: '2024-01-23 00:00:00' },
          { id: 'RHBA-2024:0400', type: 'bugfix', severity: null, cves: [], issued: null },
        ],
      },
    ]);
    expect(update!.advisoryIssuedAt).toBe('2024-01-23T00:00:00.000Z');
    // A helper of an older agent sends no dates: the field is left out, not null.
    expect('advisoryIssuedAt' in readUpdates([{ name: 'a', installedVersion: '1', availableVersion: '2', advisories: [{ id: 'X', type: 'bugfix', cves: [] }] }])[0]!).toBe(false);
  });

  it('classifies advisories: critical security, other security, the rest', () => {
    expect(classifyAdvisories([{ id: 'A', type: 'security', severity: 'Critical', cves: [] }])).toEqual({ classification: 'CRITICAL', severity: 'CRITICAL' });
    expect(
      classifyAdvisories([
        { id: 'A', type: 'security', severity: 'Low', cves: [] },
        { id: 'B', type: 'security', severity: 'Important', cves: [] },
      ]),
    ).toEqual({ classification: 'SECURITY', severity: 'IMPORTANT' });
    expect(classifyAdvisories([{ id: 'A', type: 'security', severity: null, cves: [] }])).toEqual({ classification: 'SECURITY', severity: null });
    expect(classifyAdvisories([{ id: 'A', type: 'bugfix', severity: null, cves: [] }])).toEqual({ classification: 'OTHER', severity: null });
    expect(classifyAdvisories([])).toEqual({ classification: 'OTHER', severity: null });
    expect(['Critical', 'urgent', 'Important', 'high', 'Moderate', 'medium', 'low', 'None', ''].map(normaliseSeverity)).toEqual([
      'CRITICAL',
      'CRITICAL',
      'IMPORTANT',
      'IMPORTANT',
      'MODERATE',
      'MODERATE',
      'LOW',
      null,
      null,
    ]);
  });

  it('compares versions as rpm does and splits NEVRAs', () => {
    expect(compareEditions('1.10-1', '1.9-1')).toBe(1);
    expect(compareEditions('1:1.0-1', '2.0-1')).toBe(1);
    expect(compareEditions('1.0~rc1-1', '1.0-1')).toBe(-1);
    expect(compareEditions('5.14.0-427.el9', '5.14.0-427.el9')).toBe(0);
    expect(splitNevra('kernel-core-5.14.0-427.13.1.el9_4.x86_64')).toEqual({ name: 'kernel-core', evr: '5.14.0-427.13.1.el9_4', arch: 'x86_64' });
    expect(splitNevra('openssl-1:3.0.7-27.el9.x86_64')).toEqual({ name: 'openssl', evr: '1:3.0.7-27.el9', arch: 'x86_64' });
  });

  it('takes releasever, the dnf interpreter and the boot time from what the machine says', () => {
    expect(releaseverFromOsRelease(parseOsRelease('ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n'))).toBe('9');
    expect(releaseverFromOsRelease(parseOsRelease('ID=fedora\nVERSION_ID=40\n'))).toBe('40');
    expect(interpreterFromShebang('#!/usr/libexec/platform-python')).toEqual(['/usr/libexec/platform-python']);
    expect(interpreterFromShebang('#!/usr/bin/env -S python3 -s')).toEqual(['python3', '-s']);
    expect(interpreterFromShebang('\u007fELF')).toBeNull();
    expect(parseBootTime('cpu  1 2 3\nbtime 1764100000\nprocesses 5\n')).toBe(1764100000);
    const kernel = { name: 'kernel-core', version: '5.14.0-1', arch: 'x86_64', installTime: 1764100100, reason: 'core' as const };
    expect(rebootPendingFrom([kernel], 1764100000)).toBe(true);
    expect(rebootPendingFrom([kernel], 1764100200)).toBe(false);
  });
});
