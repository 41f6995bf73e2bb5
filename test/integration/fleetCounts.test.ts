import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AssessmentReport, OsType } from '../../src/agent/protocol.js';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import { prepareReport } from '../../src/db/assessmentIngest.js';
import { connectDatabase, type Database } from '../../src/db/client.js';
import { advisoryCves, cveListFigures, importedExposureGroups, maintainedImportedGroups, replaceImportedFixes, trackerCandidates } from '../../src/db/cves.js';
import { maintainedMissingUpdateGroups } from '../../src/db/fleetCounts.js';
import { countedCveSummaries, cveSummaries, highestSeverity, type CveSummary } from '../../src/fleet/cves.js';
import { missingUpdateGroups, recordCheckIn, removeMachine, setMachineManagement, setMachineTags } from '../../src/db/machines.js';
import type { MissingUpdateGroup } from '../../src/fleet/missingUpdates.js';
import { CveService } from '../../src/api/cves/cve.service.js';
import type { ApiServices } from '../../src/api/context.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { freshDatabase } from '../support/env.js';
import { concurrentRounds, random, storeReportGroup } from '../support/randomFleet.js';

const CLASSES = ['CRITICAL', 'SECURITY', 'OTHER', 'UPDATE_ROLLUP'] as const;
const SEVERITIES = ['CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW', null] as const;
/** A catalog small enough that machines share updates (the counts' rows are contended). */
const NAMES = Array.from({ length: 24 }, (_, i) => `pkg-${i}`);
/** Ids as agents may send them: with a space or a comma inside, or empty (a CVE field a tool left blank). */
const ADVISORIES = ['ADV-0', 'ADV-1', 'ADV 2', 'ADV-3,ADV-4', ''];
const CVES = ['CVE-2026-0', 'CVE-2026-1', 'CVE-2026-2', 'CVE-2026-3 CVE-2026-4', ''];

/** Fixes imported for some of the catalog's packages, named by source package or by the binary's own name: some of their CVEs are also advisories' (a machine exposed both ways counts once). */
const FIXES = [
  { cveId: 'CVE-2026-1', package: 'pkg-1', fixedVersion: '1.1' },
  { cveId: 'CVE-2026-1', package: 'src-a', fixedVersion: '1.2' },
  { cveId: 'CVE-2026-7', package: 'src-a', fixedVersion: '1.1' },
  { cveId: 'CVE-2026-7', package: 'pkg-5', fixedVersion: '1.1' },
  { cveId: 'CVE-2026-8', package: 'pkg-9', fixedVersion: '1.2' },
];

/** The CVE list as the API answers it (maintained counts) and as the full recompute over every live machine does. */
async function cveLists(database: Database): Promise<{ maintained: CveSummary[]; recomputed: CveSummary[] }> {
  const { advisory, imported } = await cveListFigures(database.db);
  const [recomputedAdvisory, recomputedTracker] = await Promise.all([advisoryCves(database.db), trackerCandidates(database.db)]);
  return { maintained: countedCveSummaries(advisory, imported), recomputed: cveSummaries(recomputedAdvisory, recomputedTracker) };
}

/**
 * The imported fixes' maintained rows and counts against their recompute: cve_fix_exposures equals
 * cve_fix_exposures_of over every machine, both count tables equal the rows counted, and each CVE's
 * groups equal importedExposureGroups (the count from every stored row of the fixed packages, which
 * computes neither from the function nor from the rows). Answers how many rows there are.
 */
async function expectFixExposuresAsRecomputed(database: Database, cveIds: readonly string[]): Promise<number> {
  const [diff] = await database.sql<Array<{ extra: number; missing: number; rows: number }>>`
    with fresh as (select * from cve_fix_exposures_of(array(select id from machines)))
    select (select count(*) from (select * from cve_fix_exposures except select * from fresh) x)::int as extra,
           (select count(*) from (select * from fresh except select * from cve_fix_exposures) x)::int as missing,
           (select count(*) from cve_fix_exposures)::int as rows`;
  expect(diff).toMatchObject({ extra: 0, missing: 0 });
  const [counts] = await database.sql<Array<{ groups: number; reach: number }>>`
    select (select count(*) from (
              (select cve_id, rank, origin, advisory_rank, machines from cve_fix_exposure_counts where machines <> 0
               except select cve_id, rank, origin, coalesce(advisory_rank, -1), count(*)::int from cve_fix_exposures where rank is not null group by 1, 2, 3, 4)
              union all
              (select cve_id, rank, origin, coalesce(advisory_rank, -1), count(*)::int from cve_fix_exposures where rank is not null group by 1, 2, 3, 4
               except select cve_id, rank, origin, advisory_rank, machines from cve_fix_exposure_counts where machines <> 0)) x)::int as groups,
           (select count(*) from (
              (select cve_id, rank, origin, machines from cve_fix_reach_counts where machines <> 0
               except select e.cve_id, (b / 2)::smallint, (case when b % 2 = 1 then 'OSV' else 'DEBIAN_TRACKER' end), count(*)::int
                      from cve_fix_exposures e cross join generate_series(0, 9) b where e.reach & (1 << b) <> 0 group by 1, 2, 3)
              union all
              (select e.cve_id, (b / 2)::smallint, (case when b % 2 = 1 then 'OSV' else 'DEBIAN_TRACKER' end), count(*)::int
                      from cve_fix_exposures e cross join generate_series(0, 9) b where e.reach & (1 << b) <> 0 group by 1, 2, 3
               except select cve_id, rank, origin, machines from cve_fix_reach_counts where machines <> 0)) x)::int as reach`;
  expect(counts).toEqual({ groups: 0, reach: 0 });
  const sorted = (groups: Array<{ rank: number; origin: string; advisoryRank: number | null; machines: number }>) =>
    groups.map((g) => `${g.rank} ${g.origin} ${g.advisoryRank} ${g.machines}`).sort();
  for (const cveId of cveIds) {
    expect({ cveId, groups: sorted(await maintainedImportedGroups(database.db, cveId)) }).toEqual({ cveId, groups: sorted(await importedExposureGroups(database.db, cveId, true)) });
  }
  return diff!.rows;
}

/** Every single CVE the random reports and the imported fixes name: some only by advisories (read a page at a time), some with fixes imported. */
const EXPOSURE_CVES = [...new Set([...CVES, ...FIXES.map((f) => f.cveId), 'CVE-2026-9', 'CVE-2026-5'])].filter((id) => id !== '' && !id.includes(' '));

/**
 * One CVE as `cve(id)` answers it (the advisories' maintained figures, and the machines imported fixes
 * expose counted in SQL; a page read either way) against the full recompute of every exposed machine:
 * the same count, severity and sources, and pages of 1, 3 and 50 that put together are the
 * recompute's machines in its order (the recompute itself is held to the join over every live machine
 * in fleetReads.test.ts).
 */
async function expectCveAsRecomputed(database: Database, cveId: string): Promise<{ paged: boolean; imported: boolean; exposed: number }> {
  const service = new CveService({ database, now: () => new Date('2026-12-03T00:00:00Z') } as unknown as ApiServices);
  const all = await service.exposures(cveId);
  const answer = await service.answer(cveId);
  expect({ id: cveId, machineCount: answer.machineCount, severity: answer.severity, sources: answer.sources }).toEqual({
    id: cveId,
    machineCount: all.length,
    severity: highestSeverity(all.map((e) => e.severity)),
    sources: [...new Set(all.map((e) => e.source))].sort(),
  });
  for (const forced of answer.exposures ? [undefined] : (['BY_NAME', 'EVERY_MACHINE', undefined] as const)) {
    for (const limit of [1, 3, 50]) {
      const seen: typeof all = [];
      for (let offset = 0; offset <= all.length; offset += limit) {
        const { rows, totalCount } = await service.exposurePage(answer, { offset, limit }, forced);
        expect(totalCount).toBe(all.length);
        seen.push(...rows);
      }
      expect(seen).toEqual(all);
    }
  }
  return { paged: answer.exposures === undefined, imported: answer.figures?.imported ?? false, exposed: all.length };
}

/** Sorted, so that two lists of groups compare whatever order they were read in. */
const canonical = (groups: MissingUpdateGroup[]) => [...groups].sort((a, b) => `${a.osType} ${a.classification} ${a.name}`.localeCompare(`${b.osType} ${b.classification} ${b.name}`));

describe('the maintained missing-update counts', () => {
  let database: Database;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectDatabase(fresh.url, { max: 12 });
  });

  afterAll(async () => {
    await database?.close();
    await drop?.();
  });

  it('equal a full recompute after thousands of random reports, resends, removals, OS type, management and tag changes, in concurrent groups', async () => {
    const rng = random(18);
    const machines: Array<{ id: string; osType: OsType; reports: AssessmentReport[] }> = [];
    const addMachine = async () => {
      const osType: OsType = rng.next() < 0.7 ? 'LINUX' : 'WINDOWS';
      // Some Linux machines are Debian 12 with apt (the imported fixes apply to them), the others not.
      const debian = osType === 'LINUX' && rng.next() < 0.6;
      const [row] = await database.sql<Array<{ id: string }>>`insert into machines (name, os_type, os_name, os_version, environment, package_manager)
        values (${`m-${machines.length}`}, ${osType}, ${debian ? 'Debian GNU/Linux 12 (bookworm)' : 'os'}, ${debian ? '12' : '1'}, 'AWS', ${debian ? 'apt' : null}) returning id`;
      machines.push({ id: row!.id, osType, reports: [] });
    };
    for (let i = 0; i < 30; i++) await addMachine();
    await replaceImportedFixes(database.db, 'test', [
      { source: 'DEBIAN', fixes: FIXES.map((f) => ({ ...f, release: 'bookworm', severity: 'MODERATE', description: null })) },
      { source: 'OSV:DEBIAN', fixes: [{ cveId: 'CVE-2026-9', package: 'pkg-2', release: 'bookworm', fixedVersion: '1.1', severity: null, description: null }] },
    ]);
    /** Another import of one source while reports arrive: fixes kept, dropped, given another version or severity, added (some for bullseye, which some machines move to). */
    const reimport = async () => {
      const source = rng.pick(['DEBIAN', 'OSV:DEBIAN'] as const);
      const fixes = [...FIXES, { cveId: 'CVE-2026-9', package: 'pkg-2', fixedVersion: '1.1' }, { cveId: 'CVE-2026-1', package: 'pkg-3', fixedVersion: '1.2' }]
        .filter(() => rng.next() < 0.7)
        .map((f) => ({
          ...f,
          release: rng.next() < 0.8 ? 'bookworm' : 'bullseye',
          fixedVersion: rng.next() < 0.7 ? f.fixedVersion : rng.pick(['1.1', '1.2', '1.1~rc1', '1:0.5']),
          severity: rng.pick(SEVERITIES),
          description: null,
        }));
      fixImports++;
      await replaceImportedFixes(database.db, 'test', [{ source, fixes }]);
    };
    let fixImports = 0;

    let clock = Date.parse('2026-12-01T00:00:00Z');
    const update = (): PendingUpdate => {
      const name = rng.pick(NAMES);
      // Mostly one classification per name, sometimes another (a name listed under two classifications).
      const classification = rng.next() < 0.9 ? CLASSES[Number(name.slice(4)) % CLASSES.length]! : rng.pick(CLASSES);
      return {
        name,
        // Versions on both sides of the fixes' (1.1, 1.2) in dpkg's order, which the walk's probe and
        // the imported count decide in SQL: a tilde below, an epoch above, a revision, a longer number.
        installedVersion: rng.next() < 0.7 ? '1.0' : rng.pick(['1.1~rc1', '1.1', '0:1.0-1', '1.2~']),
        availableVersion: rng.next() < 0.7 ? `1.${rng.int(3)}` : rng.pick(['1.1~', '1.1-0', '1:0.5', '1.10', '1.2+deb12u1']),
        arch: rng.pick(['amd64', 'i386', null]),
        classification,
        severity: rng.pick(SEVERITIES),
        advisoryIds: rng.next() < 0.5 ? [rng.pick(ADVISORIES)] : [],
        cveIds: Array.from({ length: rng.int(3) }, () => rng.pick(CVES)),
        rebootSuggested: rng.next() < 0.1,
        repository: null,
        // Some binaries are built from a source package of another name (the fixes name sources).
        ...(rng.next() < 0.3 ? { sourcePackage: 'src-a' } : {}),
      };
    };
    const newReport = (): AssessmentReport => {
      clock += 1000;
      // Some reports come from a spool: older than what the machine already reported.
      const finishedAt = new Date(rng.next() < 0.15 ? clock - 3_600_000 : clock).toISOString();
      return assessmentReport(Array.from({ length: rng.int(8) }, update), { startedAt: finishedAt, finishedAt });
    };

    /** One operation of a random kind; several run at once. */
    const operation = async () => {
      const roll = rng.next();
      const machine = rng.pick(machines);
      if (roll < 0.6) {
        // A group of reports (a machine may appear twice in it, and in a concurrent group), some of them resends.
        const group = Array.from({ length: 1 + rng.int(5) }, () => {
          const m = rng.pick(machines);
          const report = m.reports.length > 0 && rng.next() < 0.2 ? rng.pick(m.reports) : newReport();
          if (!m.reports.includes(report)) m.reports.push(report);
          return prepareReport(m.id, report, { receivedAtMs: Date.parse(report.finishedAt), agentSentAtMs: null });
        });
        await storeReportGroup(database.sql, group);
      } else if (roll < 0.7) {
        await removeMachine(database.db, machine.id);
        machines.splice(machines.indexOf(machine), 1);
        await addMachine();
      } else if (roll < 0.76) {
        const osType: OsType = machine.osType === 'LINUX' ? 'WINDOWS' : 'LINUX';
        machine.osType = osType;
        await recordCheckIn(database.db, machine.id, machineFacts({ osType, bootId: null }), new Date(clock));
      } else if (roll < 0.8) {
        // A Linux machine's check-in naming another Debian release (its imported fixes are another release's), or the same.
        if (machine.osType === 'LINUX') await recordCheckIn(database.db, machine.id, machineFacts({ osType: 'LINUX', osVersion: rng.pick(['11', '12', '12.8']), bootId: null }), new Date(clock));
      } else if (roll < 0.87) {
        await setMachineManagement(database.db, machine.id, rng.next() < 0.5);
      } else if (roll < 0.95) {
        await setMachineTags(database.db, machine.id, rng.next() < 0.5 ? ['web'] : []);
      } else {
        await reimport();
      }
    };

    let overlaps = 0;
    let fixRows = 0;
    let pagedExposures = 0;
    let pagedImported = 0;
    const operations = await concurrentRounds(10, operation, async () => {
      expect(canonical(await maintainedMissingUpdateGroups(database.db))).toEqual(canonical(await missingUpdateGroups(database.db)));
      const { maintained, recomputed } = await cveLists(database);
      expect(maintained).toEqual(recomputed);
      fixRows += await expectFixExposuresAsRecomputed(database, EXPOSURE_CVES);
      const [both] = await database.sql<Array<{ n: number }>>`select count(*)::int as n from cve_fix_exposures where advisory_rank is not null`;
      overlaps += both!.n;
      for (const cveId of EXPOSURE_CVES) {
        const { paged, imported, exposed } = await expectCveAsRecomputed(database, cveId);
        if (paged && exposed > 3) pagedExposures++;
        if (paged && imported && exposed > 3) pagedImported++;
      }
    });
    expect(operations).toBeGreaterThanOrEqual(2000);
    // The fleet misses something (the comparison is not between two empty lists).
    expect((await missingUpdateGroups(database.db)).length).toBeGreaterThan(10);
    // The CVE list holds advisories' and imported fixes' CVEs, and machines exposed both ways were met.
    const { maintained } = await cveLists(database);
    expect(maintained.length).toBeGreaterThan(5);
    expect(new Set(maintained.flatMap((c) => c.sources))).toEqual(new Set(['ADVISORY', 'DEBIAN_TRACKER', 'OSV']));
    expect(overlaps).toBeGreaterThan(0);
    // Imports changed the fixes while reports arrived, and the maintained rows were compared when there were some.
    expect(fixImports).toBeGreaterThan(20);
    expect(fixRows).toBeGreaterThan(30);
    // CVEs were answered from the figures over more than one page, some with fixes imported.
    expect(pagedExposures).toBeGreaterThan(0);
    expect(pagedImported).toBeGreaterThan(0);
  }, 300_000);

  it('keep apart advisory and CVE lists that differ only in where one id ends and the next begins', async () => {
    // ['a\u0002b'] and ['a', 'b'] are two lists; so are [''] and [] (an empty id counts).
    const lists: Array<Pick<PendingUpdate, 'advisoryIds' | 'cveIds'>> = [
      { advisoryIds: ['a\u0002b'], cveIds: [''] },
      { advisoryIds: ['a', 'b'], cveIds: [] },
    ];
    const ids: string[] = [];
    for (const [i, list] of lists.entries()) {
      const [row] = await database.sql<Array<{ id: string }>>`insert into machines (name, os_type, os_name, os_version, environment) values (${`split-${i}`}, 'LINUX', 'os', '1', 'AWS') returning id`;
      ids.push(row!.id);
      const report = assessmentReport([pendingUpdate({ name: 'split-ids', availableVersion: '2.0', classification: 'SECURITY', ...list })]);
      await storeReportGroup(database.sql, [prepareReport(row!.id, report)]);
    }
    // Both lists in one report of one machine (two architectures): one statement adds both.
    const both = assessmentReport(lists.map((list, i) => pendingUpdate({ name: 'split-ids', arch: `arch-${i}`, availableVersion: '2.0', classification: 'SECURITY', ...list })));
    await storeReportGroup(database.sql, [prepareReport(ids[0]!, both)]);

    const group = (await maintainedMissingUpdateGroups(database.db)).find((g) => g.name === 'split-ids');
    expect(group).toMatchObject({ machineCount: 2, advisoryIds: ['a', 'a\u0002b', 'b'], cveIds: [''] });
    expect(canonical(await maintainedMissingUpdateGroups(database.db))).toEqual(canonical(await missingUpdateGroups(database.db)));

    // The first machine's report replaced by one without the update: what it listed stops counting, the other machine's stays.
    await storeReportGroup(database.sql, [prepareReport(ids[0]!, assessmentReport([]))]);
    expect((await maintainedMissingUpdateGroups(database.db)).find((g) => g.name === 'split-ids')).toMatchObject({ machineCount: 1, advisoryIds: ['a', 'b'], cveIds: [] });
  });

  it('count lists holding quotes, backslashes, braces, commas, spaces and NULL as written, and take them back whole when the report is replaced', async () => {
    const odd = ['"quoted"', 'back\\slash', '{braced}', 'a,b', 'two words', 'NULL', 'null', '', '\\"'];
    const [row] = await database.sql<Array<{ id: string }>>`insert into machines (name, os_type, os_name, os_version, environment) values ('odd-lists', 'LINUX', 'os', '1', 'AWS') returning id`;
    const report = assessmentReport([
      pendingUpdate({ name: 'odd "name", {x}', availableVersion: '1 "2"', classification: 'SECURITY', severity: null, advisoryIds: odd, cveIds: ['CVE-1', ''] }),
      pendingUpdate({ name: 'odd-2', availableVersion: '\\', classification: 'OTHER', advisoryIds: [], cveIds: odd.slice(0, 3), rebootSuggested: true }),
    ]);
    await storeReportGroup(database.sql, [prepareReport(row!.id, report)]);
    // Sorted: neither read has an order of its own (the previous test's rows decide the counts' heap order).
    const odds = (groups: MissingUpdateGroup[]) => canonical(groups.filter((g) => g.name.startsWith('odd')));
    expect(odds(await maintainedMissingUpdateGroups(database.db))).toEqual(odds(await missingUpdateGroups(database.db)));
    expect(odds(await maintainedMissingUpdateGroups(database.db)).find((g) => g.name === 'odd "name", {x}')).toMatchObject({ machineCount: 1, advisoryIds: [...odd].sort() });

    // Replaced by a report without them: what the API added is what the rows read back subtract, to the last detail.
    await storeReportGroup(database.sql, [prepareReport(row!.id, assessmentReport([]))]);
    expect(odds(await maintainedMissingUpdateGroups(database.db))).toEqual([]);
    const [left] = await database.sql<Array<{ n: number }>>`select count(*)::int as n from missing_update_details where name like 'odd%' and rows <> 0`;
    expect(left!.n).toBe(0);
  });
});
