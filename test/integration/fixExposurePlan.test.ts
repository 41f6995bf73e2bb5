import type { TransactionSql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareReport } from '../../src/db/assessmentIngest.js';
import { connectDatabase, type Database } from '../../src/db/client.js';
import { replaceImportedFixes } from '../../src/db/cves.js';
import type { TrackerFix } from '../../src/fleet/cves.js';
import { assessmentReport, pendingUpdate } from '../../testkit/agentFacts.js';
import { freshDatabase } from '../support/env.js';
import { storeReportGroup } from '../support/randomFleet.js';

// How much of pending_updates cve_fix_exposures_of (migration 0048) reads for a report group, as the
// number of fixed packages imported grows. Its first version tested "has this package a fix" as a
// semi-join that the planner turned around: every fixed package, then each machine's pending rows
// scanned for it, so a group of 7 cost 0.95 s at 2,000 fixed packages whether or not the machines
// listed any of them (2832a1a made it a probe of the fixes' index per pending row). Its second
// version still read a machine's rows once per exposure row for the advisories' rank (0050 reads them
// once per machine). Counted in the plan's loops, not timed: a machine's rows are read once for its
// fixable rows and once for its advisories, whatever the fixes hold.

type PlanNode = Record<string, unknown>;
const nodes = (plan: PlanNode): PlanNode[] => [plan, ...((plan.Plans as PlanNode[] | undefined) ?? []).flatMap(nodes)];

/** A catalog the machines list 50 consecutive packages of (from an offset of their own). */
const CATALOG = 200;
const ROWS_PER_MACHINE = 50;
/** The fixes that concern the group: one CVE for each of pkg-0…pkg-9, reached from 1.0 (fixed in 1.1, 1.2 available). */
const RELATED: TrackerFix[] = Array.from({ length: 10 }, (_, j) => ({
  cveId: `CVE-2027-${j}`,
  package: `pkg-${j}`,
  release: 'bookworm',
  fixedVersion: '1.1',
  severity: (['LOW', 'MODERATE', 'IMPORTANT', 'CRITICAL'] as const)[j % 4]!,
  description: null,
}));
/** Fixes of packages no machine lists. */
const unrelated = (count: number): TrackerFix[] =>
  Array.from({ length: count }, (_, i) => ({ cveId: `CVE-2027-${10_000 + i}`, package: `unrelated-${i}`, release: 'bookworm', fixedVersion: '1.1', severity: 'MODERATE', description: null }));

/** Machine k's report: pkg-k…pkg-(k+49); a third of the rows' advisories name the package's CVE (the exposure has an advisory rank). */
const report = (k: number) =>
  assessmentReport(
    Array.from({ length: ROWS_PER_MACHINE }, (_, i) => {
      const j = (k + i) % CATALOG;
      return pendingUpdate({ name: `pkg-${j}`, installedVersion: '1.0', availableVersion: '1.2', severity: 'IMPORTANT', cveIds: j % 3 === 0 ? [`CVE-2027-${j}`] : [] });
    }),
  );

describe("cve_fix_exposures_of's reads of pending_updates", () => {
  let database: Database;
  let drop: () => Promise<void>;
  /** The group: seven machines whose reports the ingest stores together (the bench's group that found it). */
  const group: string[] = [];

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectDatabase(fresh.url, { max: 2 });
    const machine = async (name: string) => {
      const [row] = await database.sql<Array<{ id: string }>>`insert into machines (name, os_type, os_name, os_version, environment, package_manager)
        values (${name}, 'LINUX', 'Debian GNU/Linux 12 (bookworm)', '12', 'AWS', 'apt') returning id`;
      return row!.id;
    };
    // A fleet around the group (15,000 pending rows): with the group's 350 rows alone the old
    // function's semi-join was hashed at 5,010 fixed packages; from 300 machines (and at 1,000) the
    // planner turned it around at 110 and at 5,010, custom and generic plans alike.
    const fleet: string[] = [];
    for (let k = 0; k < 300; k++) fleet.push(await machine(`fleet-${k}`));
    for (let i = 0; i < fleet.length; i += 50) {
      await storeReportGroup(database.sql, fleet.slice(i, i + 50).map((id, n) => prepareReport(id, report(((i + n) * 7) % CATALOG))));
    }
    for (let k = 0; k < 7; k++) group.push(await machine(`group-${k}`));
    group.sort();
  }, 180_000);

  afterAll(async () => {
    await database?.close();
    await drop?.();
  });

  /**
   * The plan of `select * from cve_fix_exposures_of(ids)` with the group's ids, as cve_fix_refresh runs
   * it for the ingest (an SQL table function is inlined, so its body's plan shows; EXPLAIN of
   * cve_fix_refresh would show a PL/pgSQL call only): custom, as planned for the group's ids, and
   * generic, as PL/pgSQL's cached plan runs after its fifth call. The scans of pending_updates
   * (sequential, index or bitmap: the planner's pick) and how often they ran.
   */
  async function pendingReads(mode: 'force_custom_plan' | 'force_generic_plan', fixes: number) {
    const statement = `fix_exposures_${mode}_${fixes}`;
    const plan = await database.sql.begin(async (tx) => {
      await tx.unsafe(`set local plan_cache_mode = ${mode}`);
      await tx.unsafe(`prepare ${statement}(uuid[]) as select * from cve_fix_exposures_of($1)`);
      const [row] = await tx.unsafe<Array<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>>(`explain (analyze, buffers, format json) execute ${statement}('{${group.join(',')}}')`);
      await tx.unsafe(`deallocate ${statement}`);
      return row!['QUERY PLAN'][0]!.Plan;
    });
    const scans = nodes(plan).filter((n) => n['Relation Name'] === 'pending_updates');
    const num = (n: PlanNode, key: string) => Number(n[key] ?? 0);
    return {
      exposures: num(plan, 'Actual Rows'),
      scans: scans.length,
      loops: scans.reduce((sum, n) => sum + num(n, 'Actual Loops'), 0),
      // Per-loop averages times the loops: about the rows read, for the message.
      rowsRead: scans.reduce((sum, n) => sum + num(n, 'Actual Loops') * (num(n, 'Actual Rows') + num(n, 'Rows Removed by Filter') + num(n, 'Rows Removed by Index Recheck')), 0),
      buffers: num(plan, 'Shared Hit Blocks') + num(plan, 'Shared Read Blocks'),
      shape: scans.map((n) => `${n['Node Type']} ×${n['Actual Loops']}`).join(', '),
    };
  }

  it("reads a report group's pending rows twice per machine at most, not once per fixed package or per exposure, at 110 and at 5,010 fixed packages", async () => {
    for (const [n, count] of [
      [0, 100],
      [1, 5_000],
    ] as const) {
      // The related fixes from two sources (one CVE reached from both), the unrelated from one.
      await replaceImportedFixes(database.db, 'fixExposurePlan.test.ts', [
        { source: 'DEBIAN', fixes: [...RELATED, ...unrelated(count)] },
        { source: 'OSV:DEBIAN', fixes: RELATED.slice(0, 3).map((f) => ({ ...f, severity: 'CRITICAL' })) },
      ]);
      // The group's reports, stored as the ingest's group commit stores them (cve_fix_refresh of the
      // seven), after the first import: its exposures are the ones maintained.
      if (n === 0) await storeReportGroup(database.sql, group.map((id, k) => prepareReport(id, report(k))));
      // Statistics as autovacuum would leave them, taken now rather than whenever it runs (every row is sampled at these sizes).
      await database.sql`analyze machines, pending_updates, cve_tracker_fixes`;
      const [maintained] = await database.sql<Array<{ rows: number }>>`select count(*)::int as rows from cve_fix_exposures where machine_id = any(${group}::uuid[])`;
      // Machine k reaches the fixes of pkg-k…pkg-9: 10 + 9 + … + 4.
      expect(maintained!.rows).toBe(49);
      for (const mode of ['force_custom_plan', 'force_generic_plan'] as const) {
        const reads = await pendingReads(mode, RELATED.length + count);
        const context = `${mode} at ${RELATED.length + count} fixed packages: ${JSON.stringify(reads)}`;
        expect(reads.exposures, context).toBe(maintained!.rows);
        // Inlined (a Function Scan would read pending_updates out of sight and pass vacuously).
        expect(reads.scans, context).toBeGreaterThan(0);
        // Each machine's rows once for its fixable rows and once for its advisories' ranks (one scan for
        // all, or one per machine); 0048's first text read them once per fixed package (7 × 110 = 770
        // scans, then 7 × 5,010 = 35,070), its second once per exposure row (7 + 49).
        expect.soft(reads.loops, context).toBeLessThanOrEqual(2 * group.length);
      }
    }
  }, 120_000);

  /**
   * How often dpkg_version_key ran in `run`, in a transaction rolled back after it: the PL/pgSQL calls
   * the session counted and has not reported yet (which may include earlier transactions'), after less before.
   */
  async function keysComputed(run: (tx: TransactionSql) => Promise<unknown>): Promise<number> {
    let calls = -1;
    await database.sql
      .begin(async (tx) => {
        await tx`set local track_functions = 'pl'`;
        const counted = async () =>
          (await tx<Array<{ calls: number }>>`select coalesce(pg_stat_get_xact_function_calls('dpkg_version_key(text)'::regprocedure), 0)::int as calls`)[0]!.calls;
        const before = await counted();
        await run(tx);
        calls = (await counted()) - before;
        throw new RolledBack();
      })
      .catch((error: unknown) => {
        if (!(error instanceof RolledBack)) throw error;
      });
    return calls;
  }

  it("computes a version's dpkg key once for the fleet, not twice per row at every report (0051)", async () => {
    // The group's reports as the test above stored them (run alone, this one has nothing to count).
    const [stored] = await database.sql<Array<{ rows: number }>>`select count(*)::int as rows from cve_fix_exposures where machine_id = any(${group}::uuid[])`;
    expect(stored!.rows, 'the test above stores the group').toBe(49);
    const exposures = (tx: TransactionSql) => tx`select count(*) from cve_fix_exposures_of(${group}::uuid[])`;
    // The group's reports were stored by the ingest's statements, which keep their versions' keys: none is computed again.
    expect(await keysComputed(exposures)).toBe(0);
    // Without the kept keys the function computes two per fixable row: 7 machines of 50 rows, of which 10 - k have a fix.
    expect(await keysComputed(async (tx) => {
      await tx`delete from dpkg_version_keys`;
      await exposures(tx);
    })).toBe(2 * (10 + 9 + 8 + 7 + 6 + 5 + 4));
    // A refresh given versions not kept computes each once (the catalog's two: 1.0 installed, 1.2 available), then reads them.
    expect(await keysComputed(async (tx) => {
      await tx`delete from dpkg_version_keys`;
      await tx`select cve_fix_refresh(${group}::uuid[], ${['1.0', '1.2', '1.0']}::text[])`;
    })).toBe(2);
  });
});

class RolledBack extends Error {}
