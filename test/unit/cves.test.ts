import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  compareDebianVersions,
  cveExposures,
  cveIdProblem,
  countedCveSummaries,
  cveSummaries,
  debianRelease,
  fixOf,
  highestSeverity,
  importedCveFigures,
  importedCveList,
  importedCveListFromCounts,
  type ImportedExposureGroup,
  type TrackerFix,
  readDebianTracker,
  scheduledFix,
  TrackerFormatError,
  urgencySeverity,
  type CandidateMachine,
  type CandidateUpdate,
  type CveSource,
  type ScheduleCandidate,
} from '../../src/fleet/cves.js';

const tracker = readDebianTracker(JSON.parse(fs.readFileSync(new URL('../fixtures/cve/debian-tracker.json', import.meta.url), 'utf8')));

const debian: CandidateMachine = { id: 'm-deb', name: 'debian-01', osType: 'LINUX', osName: 'Debian GNU/Linux 12 (bookworm)', osVersion: '12', packageManager: 'apt', tags: ['prod'], managementEnabled: true };
const rocky: CandidateMachine = { id: 'm-rocky', name: 'rocky-01', osType: 'LINUX', osName: 'Rocky Linux 9.4 (Blue Onyx)', osVersion: '9.4', packageManager: 'dnf', tags: ['prod', 'web'], managementEnabled: true };
const update = (u: Partial<CandidateUpdate> & Pick<CandidateUpdate, 'name'>): CandidateUpdate => ({
  installedVersion: '1.0-1',
  availableVersion: '1.1-1',
  classification: 'SECURITY',
  severity: null,
  cveIds: [],
  ...u,
});

describe('Debian versions', () => {
  it('compare as dpkg --compare-versions does (each pair checked against dpkg 1.21)', () => {
    const pairs: Array<[string, string, number]> = [
      ['1.0-1', '1.0-2', -1],
      ['1.0-1', '1.0-1', 0],
      ['1:1.0', '2.0', 1],
      ['1.0~rc1-1', '1.0-1', -1],
      ['1.0+deb12u1', '1.0', 1],
      ['3.0.11-1~deb12u2', '3.0.11-1', -1],
      ['3.0.11-1~deb12u2', '3.0.13-1~deb12u1', -1],
      ['1.2a', '1.2', 1],
      ['1.0.0', '1.0', 1],
      ['2.36-9+deb12u4', '2.36-9+deb12u10', -1],
      ['0:1.0', '1.0', 0],
      ['1.0-1ubuntu1', '1.0-1', 1],
      ['10', '9', 1],
      ['1.0~~', '1.0~', -1],
    ];
    expect(pairs.map(([a, b]) => Math.sign(compareDebianVersions(a, b)))).toEqual(pairs.map(([, , r]) => r));
  });

  it('compare epochs as numbers of any length, and an epoch that is not all digits as 0 (as dpkg_version_key does)', () => {
    const pairs: Array<[string, string, number]> = [
      ['99999999999999999999:1', '99999999999999999998:1', 1],
      ['0099:1', '99:1', 0],
      ['10:1', '9:1', 1],
      ['a:1.0', '1.0', 0],
      ['-1:1.0', '1.0', 0],
      ['1e3:1.0', '1.0', 0],
      [':1.0', '1.0', 0],
    ];
    expect(pairs.map(([a, b]) => Math.sign(compareDebianVersions(a, b)))).toEqual(pairs.map(([, , r]) => r));
  });
});

describe('the Debian security tracker', () => {
  it('keeps resolved fixes with a real version, leaves out open ones, never-affected ones (0) and TEMP ids', () => {
    expect(tracker.map((f) => `${f.package} ${f.cveId} ${f.release} ${f.fixedVersion} ${f.severity}`).sort()).toEqual([
      'demo-libssl CVE-2024-9999 bookworm 0.9-2 IMPORTANT',
      'demo-libssl CVE-2025-0001 bookworm 1.1-1 IMPORTANT',
      'demo-libssl CVE-2025-0011 bookworm 1.1-1 MODERATE',
      'demo-libssl CVE-2025-0200 bookworm 1.2-1 IMPORTANT',
      'demo-tool CVE-2025-0002 bookworm 1.1-1 LOW',
      'demo-tool CVE-2025-0002 trixie 1.1-1 LOW',
      'linux CVE-2025-0004 bookworm 5.1-1 MODERATE',
    ]);
    expect(['high', 'medium', 'low', 'low*', 'unimportant', 'not yet assigned', 'end-of-life', undefined].map(urgencySeverity)).toEqual(['IMPORTANT', 'MODERATE', 'LOW', 'LOW', null, null, null, null]);
  });

  it('refuses a document of another shape, saying where', () => {
    expect(() => readDebianTracker([])).toThrow(TrackerFormatError);
    expect(() => readDebianTracker({ openssl: [] })).toThrow('package "openssl": expected an object of CVE ids');
    expect(() => readDebianTracker({ openssl: { 'CVE-2024-1': { releases: 3 } } })).not.toThrow(); // not a CVE id: left out unread
    expect(() => readDebianTracker({ openssl: { 'CVE-2024-0001': { description: 'x' } } })).toThrow('openssl CVE-2024-0001: expected an object with "releases"');
  });

  it('knows Debian releases by major version, and nothing else', () => {
    expect(debianRelease(debian)).toBe('bookworm');
    expect(debianRelease({ ...debian, osVersion: '11' })).toBe('bullseye');
    expect(debianRelease({ ...debian, osName: 'Ubuntu 24.04 LTS', osVersion: '24.04' })).toBeNull();
    expect(debianRelease(rocky)).toBeNull();
  });
});

describe('which update fixes a CVE', () => {
  it('trusts the advisory first, then the tracker when the installed version is below the fix and the update reaches it', () => {
    expect(fixOf('CVE-2025-0001', rocky, update({ name: 'demo-libssl', cveIds: ['CVE-2025-0001'], severity: 'CRITICAL' }), tracker)).toEqual({ source: 'ADVISORY', severity: 'CRITICAL' });
    expect(fixOf('CVE-2025-0001', debian, update({ name: 'demo-libssl' }), tracker)).toEqual({ source: 'DEBIAN_TRACKER', severity: 'IMPORTANT' });
    // Fixed before the installed version: not exposed. Fixed past the available one: this update does not fix it.
    expect(fixOf('CVE-2024-9999', debian, update({ name: 'demo-libssl' }), tracker)).toBeNull();
    expect(fixOf('CVE-2025-0200', debian, update({ name: 'demo-libssl' }), tracker)).toBeNull();
    // The edge: installed exactly at the fixed version is fixed; available exactly at it fixes.
    expect(fixOf('CVE-2025-0001', debian, update({ name: 'demo-libssl', installedVersion: '1.1-1', availableVersion: '1.2-1' }), tracker)).toBeNull();
    expect(fixOf('CVE-2025-0001', debian, update({ name: 'demo-libssl', installedVersion: '1.1~pre-1', availableVersion: '1.1-1' }), tracker)).not.toBeNull();
    // Another release, another distribution, a package pulled in new.
    expect(fixOf('CVE-2025-0002', { ...debian, osVersion: '11' }, update({ name: 'demo-tool' }), tracker)).toBeNull();
    expect(fixOf('CVE-2025-0001', rocky, update({ name: 'demo-libssl' }), tracker)).toBeNull();
    expect(fixOf('CVE-2025-0001', debian, update({ name: 'demo-libssl', installedVersion: null }), tracker)).toBeNull();
  });

  it('matches the tracker by source package: a binary built from it is exposed, one reported without its source is not', () => {
    const kernel = { name: 'linux-image-demo', installedVersion: '5.0-1', availableVersion: '5.1-1' };
    expect(fixOf('CVE-2025-0004', debian, update({ ...kernel, sourcePackage: 'linux' }), tracker)).toEqual({ source: 'DEBIAN_TRACKER', severity: 'MODERATE' });
    // Reported by an agent before sources were sent: matched by its own name, as before, so not.
    expect(fixOf('CVE-2025-0004', debian, update({ ...kernel, sourcePackage: null }), tracker)).toBeNull();
    expect(fixOf('CVE-2025-0004', debian, update(kernel), tracker)).toBeNull();
    // A binary whose source is another package is matched by that source only.
    expect(fixOf('CVE-2025-0001', debian, update({ name: 'demo-libssl', sourcePackage: 'demo-openssl' }), tracker)).toBeNull();
  });
});

describe('a scheduled deployment that would fix it', () => {
  const now = new Date('2026-03-02T10:00:00Z');
  const deployment = (d: Partial<ScheduleCandidate>): ScheduleCandidate => ({
    id: 'd1',
    name: 'weekly security',
    osType: 'LINUX',
    machineIds: [],
    targetFilter: { tags: ['prod'], nameContains: null },
    selection: { classifications: ['CRITICAL', 'SECURITY'], includePatterns: [], excludePatterns: [] },
    schedule: { startAt: new Date('2026-03-07T02:00:00Z'), timeZone: 'UTC', recurrence: { frequency: 'ONCE' }, endAt: null },
    paused: false,
    ...d,
  });
  const libssl = update({ name: 'demo-libssl', classification: 'CRITICAL' });

  it('is the soonest run of a deployment that targets the machine and selects the update', () => {
    const later = deployment({ id: 'd2', name: 'later', schedule: { startAt: new Date('2026-03-20T02:00:00Z'), timeZone: 'UTC', recurrence: { frequency: 'ONCE' }, endAt: null } });
    expect(scheduledFix(rocky, libssl, [later, deployment({})], now)).toEqual({ deploymentId: 'd1', deploymentName: 'weekly security', nextRunAt: new Date('2026-03-07T02:00:00Z') });
  });

  it('is none when paused, on demand only, past, for other machines, other OS types, or when the update is not selected', () => {
    const none = [
      deployment({ paused: true }),
      deployment({ schedule: null }),
      deployment({ schedule: { startAt: new Date('2026-03-01T02:00:00Z'), timeZone: 'UTC', recurrence: { frequency: 'ONCE' }, endAt: null } }),
      deployment({ targetFilter: { tags: ['staging'], nameContains: null } }),
      deployment({ targetFilter: { tags: [], nameContains: 'web' } }),
      deployment({ osType: 'WINDOWS' }),
      deployment({ selection: { classifications: ['OTHER'], includePatterns: [], excludePatterns: [] } }),
      deployment({ selection: { classifications: ['CRITICAL', 'SECURITY'], includePatterns: [], excludePatterns: ['demo-libssl'] } }),
    ];
    for (const d of none) expect(scheduledFix(debian, libssl, [d], now)).toBeNull();
    expect(scheduledFix({ ...rocky, managementEnabled: false }, libssl, [deployment({})], now)).toBeNull();
    // Named explicitly, or by an include pattern although its classification is not selected.
    expect(scheduledFix(debian, libssl, [deployment({ targetFilter: null, machineIds: ['m-deb'] })], now)).not.toBeNull();
    expect(scheduledFix(debian, libssl, [deployment({ selection: { classifications: [], includePatterns: ['demo-*'], excludePatterns: [] } })], now)).not.toBeNull();
  });
});

describe('exposure across the fleet', () => {
  it('lists each exposed machine once, dated by its first assessment that listed a fix', () => {
    const t0 = new Date('2026-01-01T00:00:00Z');
    const t1 = new Date('2026-02-01T00:00:00Z');
    const libsslRocky = update({ name: 'demo-libssl', cveIds: ['CVE-2025-0001'], severity: 'CRITICAL', classification: 'CRITICAL' });
    const exposures = cveExposures({
      cveId: 'CVE-2025-0001',
      current: [
        { machine: rocky, update: libsslRocky, assessedAt: t1 },
        { machine: debian, update: update({ name: 'demo-libssl' }), assessedAt: t1 },
        { machine: debian, update: update({ name: 'demo-tool' }), assessedAt: t1 },
      ],
      history: [
        { machineId: 'm-rocky', update: libsslRocky, assessedAt: t0 },
        { machineId: 'm-rocky', update: libsslRocky, assessedAt: t1 },
        // An old assessment of an update that did not fix it yet does not date the exposure.
        { machineId: 'm-deb', update: update({ name: 'demo-libssl', availableVersion: '1.0-2' }), assessedAt: t0 },
      ],
      candidates: [rocky, debian],
      tracker,
      deployments: [],
      now: t1,
    });
    expect(exposures.map((e) => [e.machineId, e.source, e.severity, e.exposedSince.toISOString(), e.scheduledFix])).toEqual([
      ['m-deb', 'DEBIAN_TRACKER', 'IMPORTANT', t1.toISOString(), null],
      ['m-rocky', 'ADVISORY', 'CRITICAL', t0.toISOString(), null],
    ]);
  });

  it("shows a machine's most severe fixing update, and among equally severe ones the same one whatever order its rows come in", () => {
    const t1 = new Date('2026-02-01T00:00:00Z');
    const rows = [
      update({ name: 'demo-b', cveIds: ['CVE-2025-0001'], severity: null }),
      update({ name: 'demo-a', cveIds: ['CVE-2025-0001'], severity: 'MODERATE' }),
      update({ name: 'demo-c', cveIds: ['CVE-2025-0001'], severity: 'MODERATE' }),
      update({ name: 'demo-a', availableVersion: '1.0-3', cveIds: ['CVE-2025-0001'], severity: 'MODERATE' }),
    ];
    const shown = (order: typeof rows) =>
      cveExposures({ cveId: 'CVE-2025-0001', current: order.map((u) => ({ machine: rocky, update: u, assessedAt: t1 })), history: [], candidates: [rocky], tracker, deployments: [], now: t1 })[0]!.update;
    expect(shown(rows)).toEqual(rows[3]);
    expect(shown([...rows].reverse())).toEqual(rows[3]);
    expect(shown([rows[0]!, rows[3]!, rows[2]!, rows[1]!])).toEqual(rows[3]);
  });

  it('counts the fleet per CVE from both sources, most severe first, filtered by severity and id', () => {
    const summaries = cveSummaries(
      [
        { cveId: 'CVE-2025-0001', machineIds: ['a', 'b'], severity: 'CRITICAL' },
        { cveId: 'CVE-2025-0002', machineIds: ['a'], severity: 'IMPORTANT' },
      ],
      [
        { machineId: 'c', installedVersion: '1.0-1', availableVersion: '1.1-1', cveId: 'CVE-2025-0001', fixedVersion: '1.1-1', severity: 'IMPORTANT' },
        { machineId: 'c', installedVersion: '1.0-1', availableVersion: '1.1-1', cveId: 'CVE-2025-0200', fixedVersion: '1.2-1', severity: 'IMPORTANT' },
        { machineId: 'c', installedVersion: '1.0-1', availableVersion: '1.1-1', cveId: 'CVE-2024-0100', fixedVersion: '1.1-1', severity: 'LOW' },
      ],
    );
    expect(summaries).toEqual([
      { id: 'CVE-2025-0001', severity: 'CRITICAL', machineCount: 3, sources: ['ADVISORY', 'DEBIAN_TRACKER'] },
      { id: 'CVE-2025-0002', severity: 'IMPORTANT', machineCount: 1, sources: ['ADVISORY'] },
      { id: 'CVE-2024-0100', severity: 'LOW', machineCount: 1, sources: ['DEBIAN_TRACKER'] },
    ]);
    expect(cveSummaries([{ cveId: 'CVE-2025-0002', machineIds: ['a'], severity: 'IMPORTANT' }, { cveId: 'CVE-2024-1', machineIds: ['a'], severity: null }], [], { severities: ['IMPORTANT'] }).map((c) => c.id)).toEqual(['CVE-2025-0002']);
    expect(cveSummaries([{ cveId: 'CVE-2025-0002', machineIds: ['a'], severity: 'IMPORTANT' }, { cveId: 'CVE-2024-1', machineIds: ['a'], severity: null }], [], { idContains: '2024-' }).map((c) => c.id)).toEqual(['CVE-2024-1']);
  });

  it('counts the fleet per CVE from maintained counts as from machine ids: a machine exposed through an advisory and a fix counts once', () => {
    const tracker = [
      // a is counted by the advisory already; c twice through two fixes; d once.
      { machineId: 'a', installedVersion: '1.0-1', availableVersion: '1.1-1', cveId: 'CVE-2025-0001', fixedVersion: '1.1-1', severity: 'IMPORTANT' as const },
      { machineId: 'c', installedVersion: '1.0-1', availableVersion: '1.1-1', cveId: 'CVE-2025-0001', fixedVersion: '1.1-1', severity: 'IMPORTANT' as const },
      { machineId: 'c', installedVersion: '1.0-1', availableVersion: '1.2-1', cveId: 'CVE-2025-0001', fixedVersion: '1.2-1', severity: null, origin: 'OSV' as const },
      { machineId: 'd', installedVersion: '1.0-1', availableVersion: '1.1-1', cveId: 'CVE-2025-0300', fixedVersion: '1.1-1', severity: 'LOW' as const },
      // Not reached: the fix is past the available version.
      { machineId: 'e', installedVersion: '1.0-1', availableVersion: '1.1-1', cveId: 'CVE-2025-0400', fixedVersion: '1.2-1', severity: 'LOW' as const },
    ];
    const byIds = cveSummaries([{ cveId: 'CVE-2025-0001', machineIds: ['a', 'b'], severity: 'MODERATE' }], tracker);
    const counted = countedCveSummaries(
      [{ cveId: 'CVE-2025-0001', machineCount: 2, severity: 'MODERATE' }],
      importedCveList(tracker.map((t) => ({ ...t, advisoryCounted: t.machineId === 'a' && t.cveId === 'CVE-2025-0001' }))),
    );
    expect(counted).toEqual(byIds);
    expect(counted).toEqual([
      { id: 'CVE-2025-0001', severity: 'IMPORTANT', machineCount: 3, sources: ['ADVISORY', 'DEBIAN_TRACKER', 'OSV'] },
      { id: 'CVE-2025-0300', severity: 'LOW', machineCount: 1, sources: ['DEBIAN_TRACKER'] },
    ]);
  });

  it('takes CVE ids as MITRE writes them', () => {
    expect(cveIdProblem('CVE-2024-3094')).toBeNull();
    expect(cveIdProblem('CVE-2024-1234567')).toBeNull();
    expect(cveIdProblem('CVE-24-3094')).toMatch(/expected CVE-YYYY-NNNN/);
    expect(cveIdProblem("CVE-2024-3094' or 1=1")).not.toBeNull();
  });
});

describe("one CVE's figures from the advisories' counts and the machines imported fixes expose", () => {
  it('give the count, severity and sources every exposed machine gives (random machines, fixes from two sources)', () => {
    const SEVERITIES = ['CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW', null] as const;
    const RANK = { CRITICAL: 4, IMPORTANT: 3, MODERATE: 2, LOW: 1 } as const;
    const rank = (s: (typeof SEVERITIES)[number]) => (s ? RANK[s] : 0);
    let seed = 7;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!;
    for (let round = 0; round < 300; round++) {
      const fixes: TrackerFix[] = [
        { cveId: 'CVE-1', package: 'p1', release: 'bookworm', fixedVersion: '1.1', severity: pick(SEVERITIES), description: null, origin: 'DEBIAN_TRACKER' },
        { cveId: 'CVE-1', package: 'p1', release: 'bookworm', fixedVersion: pick(['1.1', '1.2']), severity: pick(SEVERITIES), description: null, origin: 'OSV' },
        { cveId: 'CVE-1', package: 'p2', release: 'bookworm', fixedVersion: '1.1', severity: pick(SEVERITIES), description: null, origin: 'OSV' },
      ];
      const current = Array.from({ length: 1 + Math.floor(next() * 6) }, (_, i) => {
        const machine = { ...debian, id: `m-${i}`, name: `n-${i}` };
        return Array.from({ length: Math.floor(next() * 4) }, () => ({
          machine,
          update: update({ name: pick(['p1', 'p2', 'p3']), installedVersion: '1.0', availableVersion: pick(['1.0', '1.1', '1.2']), severity: pick(SEVERITIES), cveIds: next() < 0.3 ? ['CVE-1'] : [] }),
          assessedAt: new Date(0),
        }));
      }).flat();
      const all = cveExposures({ cveId: 'CVE-1', current, history: [], candidates: [...new Set(current.map((c) => c.machine))], tracker: fixes, deployments: [], now: new Date(0) });
      // What the SQL reads: the advisories' count and highest severity, and per machine reached by a fix (on a row naming no CVE) its most severe fix.
      const advisoryRows = current.filter((c) => c.update.cveIds.includes('CVE-1'));
      const advisoryMachines = new Set(advisoryRows.map((c) => c.machine.id));
      const groups: ImportedExposureGroup[] = [];
      for (const id of new Set(current.map((c) => c.machine.id))) {
        const reached = current
          .filter((c) => c.machine.id === id && !c.update.cveIds.includes('CVE-1'))
          .map((c) => fixOf('CVE-1', c.machine, c.update, fixes))
          .filter((f): f is { source: CveSource; severity: (typeof SEVERITIES)[number] } => f !== null);
        if (reached.length === 0) continue;
        const top = Math.max(...reached.map((f) => rank(f.severity)));
        const origin = reached.filter((f) => rank(f.severity) === top).map((f) => f.source).sort()[0]!;
        const advisory = advisoryRows.filter((c) => c.machine.id === id);
        groups.push({ rank: top, origin, advisoryRank: advisory.length ? Math.max(...advisory.map((c) => rank(c.update.severity))) : null, machines: 1 });
      }
      const figures = importedCveFigures({ exposed: advisoryMachines.size, severity: highestSeverity(advisoryRows.map((c) => c.update.severity)) }, groups);
      expect(figures).toEqual({ machineCount: all.length, severity: highestSeverity(all.map((e) => e.severity)), sources: [...new Set(all.map((e) => e.source))].sort() });
    }
  });
});

describe("the CVE list's imported part from the maintained counts", () => {
  it('equals the one from every (machine, update, fix) it counts (random machines, fixes from two sources, machines the advisories count)', () => {
    const SEVERITIES = ['CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW', null] as const;
    const RANK = { CRITICAL: 4, IMPORTANT: 3, MODERATE: 2, LOW: 1 } as const;
    let seed = 11;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!;
    for (let round = 0; round < 300; round++) {
      // What cve_fix_exposures holds per (CVE, machine): the fixes reached (any update), and whether an advisory counts it.
      const tracker: Array<Parameters<typeof importedCveList>[0][number]> = [];
      for (let m = 0; m < 1 + Math.floor(next() * 6); m++) {
        const counted = new Map<string, boolean>();
        for (let i = 0; i < Math.floor(next() * 5); i++) {
          const cveId = pick(['CVE-1', 'CVE-2', 'CVE-3']);
          if (!counted.has(cveId)) counted.set(cveId, next() < 0.3);
          tracker.push({
            machineId: `m${m}`,
            cveId,
            installedVersion: '1.0',
            availableVersion: pick(['1.1', '2.0', '0.9']),
            fixedVersion: '1.1',
            severity: pick(SEVERITIES),
            origin: pick(['DEBIAN_TRACKER', 'OSV'] as const),
            advisoryCounted: counted.get(cveId)!,
          });
        }
      }
      const reached = tracker.filter((t) => compareDebianVersions(t.fixedVersion, t.availableVersion) <= 0);
      const rows = new Map<string, { cveId: string; bits: Set<string>; advisory: boolean }>();
      for (const t of reached) {
        const key = `${t.cveId} ${t.machineId}`;
        const row = rows.get(key) ?? { cveId: t.cveId, bits: new Set<string>(), advisory: t.advisoryCounted };
        row.bits.add(`${t.severity ? RANK[t.severity] : 0} ${t.origin}`);
        rows.set(key, row);
      }
      const reach = new Map<string, { cveId: string; rank: number; origin: CveSource; machines: number }>();
      const groups: Array<{ cveId: string; advisoryRank: number | null; machines: number }> = [];
      for (const row of rows.values()) {
        for (const bit of row.bits) {
          const [rank, origin] = bit.split(' ');
          const key = `${row.cveId} ${bit}`;
          reach.set(key, { cveId: row.cveId, rank: Number(rank), origin: origin as CveSource, machines: (reach.get(key)?.machines ?? 0) + 1 });
        }
        groups.push({ cveId: row.cveId, advisoryRank: row.advisory ? 1 : null, machines: 1 });
      }
      // A count that fell to 0 stays as a row: it changes nothing.
      reach.set('stale', { cveId: 'CVE-9', rank: 4, origin: 'OSV', machines: 0 });
      const byId = (a: { cveId: string }, b: { cveId: string }) => a.cveId.localeCompare(b.cveId);
      expect(importedCveListFromCounts([...reach.values()], groups).sort(byId)).toEqual(importedCveList(tracker).sort(byId));
    }
  });
});
