import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReservedSql } from 'postgres';
import type { Database } from '../../src/db/client.js';
import { CHECK_IN_SQL, tagPage } from '../../src/db/machines.js';
import { DEFAULT_THRESHOLDS } from '../../src/fleet/compliance.js';
import { analyzeIfGrown } from '../../src/db/tableStatistics.js';
import { startTableStatistics } from '../../src/api/machines/tableStatisticsUpkeep.js';
import { connectTestDatabase, freshDatabase, testLogger } from '../support/env.js';

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  Plans?: PlanNode[];
}

function* nodes(node: PlanNode): Generator<PlanNode> {
  yield node;
  for (const child of node.Plans ?? []) yield* nodes(child);
}

/**
 * The check-in statement's plan on a fleet that enrolled faster than PostgreSQL gathered
 * statistics (a new installation enrolling its fleet at once: `machines` full, never analyzed).
 * Planned without statistics, the row to write was found through the index on the OS type and
 * every live machine of that type read and filtered away, so each check-in cost more as the fleet
 * grew, until autovacuum's first ANALYZE (BENCHMARKS.md, "the ramp's dip"). The statement finds
 * the machine by its credential and writes it by its id, whatever the statistics say.
 */
describe('the check-in statement on a table never analyzed', () => {
  let database: Database;
  let drop: () => Promise<void>;
  const fleet = 3000;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    // No ANALYZE behind the test's back: the statistics stay what a fresh database has.
    await database.sql`alter table machines set (autovacuum_enabled = false)`;
    await database.sql`
      insert into machines (name, os_type, os_name, os_version, environment, credential_hash, last_seen_at)
      select 'idle-' || i, 'LINUX', 'Debian GNU/Linux 12 (bookworm)', '12', 'ON_PREMISES', 'hash-' || i, now() - interval '1 hour'
      from generate_series(1, ${fleet}) i`;
  });

  afterAll(async () => {
    await database?.close();
    await drop?.();
  });

  /** EXPLAIN ANALYZE of a check-in that writes the row (its last-seen time is old), rolled back. */
  async function checkInPlan(i: number): Promise<PlanNode> {
    const now = new Date().toISOString();
    const parameters = [`hash-${i}`, 'LINUX', `idle-${i}`, 'Debian GNU/Linux 12 (bookworm)', '12', null, 'ON_PREMISES', null, null, null, [], [], now, now, null];
    let plan: PlanNode | undefined;
    const rolledBack = new Error('rolled back');
    await database.sql
      .begin(async (tx) => {
        const [row] = await tx.unsafe<Array<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>>(`explain (analyze, format json) ${CHECK_IN_SQL}`, parameters as never[]);
        plan = row!['QUERY PLAN'][0]!.Plan;
        throw rolledBack;
      })
      .catch((error: unknown) => {
        if (error !== rolledBack) throw error;
      });
    return plan!;
  }

  /** Rows of `machines` each scan read, kept or filtered away, per loop. */
  const machineRowsRead = (plan: PlanNode) =>
    [...nodes(plan)].filter((n) => n['Relation Name'] === 'machines').map((n) => ({ index: n['Index Name'] ?? n['Node Type'], rows: (n['Actual Rows'] + (n['Rows Removed by Filter'] ?? 0)) / Math.max(1, n['Actual Loops']) }));

  it('reads the one machine row, before and after ANALYZE', async () => {
    const [stats] = await database.sql`select c.reltuples::float8 as reltuples from pg_class c where c.relname = 'machines'`;
    expect(stats!.reltuples).toBeLessThan(0); // never analyzed nor vacuumed
    for (const step of ['never analyzed', 'analyzed']) {
      if (step === 'analyzed') await database.sql`analyze machines`;
      const plan = await checkInPlan(fleet - 1);
      const reads = machineRowsRead(plan);
      expect(reads.length, step).toBeGreaterThanOrEqual(2); // the look-up and the write's scan
      for (const read of reads) expect(read, `${step}: ${JSON.stringify(reads)}`).toMatchObject({ rows: 1 });
    }
  });
});

/** Adds machines as enrollment does, `from` to `to` (credential `hash-<i>`, last seen an hour ago). */
async function enrollMachines(sql: Database['sql'] | ReservedSql, from: number, to: number): Promise<void> {
  await sql`
    insert into machines (name, os_type, os_name, os_version, environment, credential_hash, last_seen_at)
    select 'idle-' || i, 'LINUX', 'Debian GNU/Linux 12 (bookworm)', '12', 'ON_PREMISES', 'hash-' || i, now() - interval '1 hour'
    from generate_series(${from}::int, ${to}::int) i`;
}

const literal = (value: string | null) => (value === null ? 'null' : `'${value.replace(/'/g, "''")}'`);

/**
 * One API connection's prepared check-in, as postgres.js prepares it, with its plan cached the way
 * PostgreSQL does after a statement's fifth execution (a generic plan; forced here, so the first
 * execution caches it).
 */
async function cachedCheckIn(database: Database): Promise<{ connection: ReservedSql; explain: (i: number) => Promise<PlanNode>; release: () => void }> {
  const connection = await database.sql.reserve();
  await connection`set plan_cache_mode = force_generic_plan`;
  await connection.unsafe(`prepare check_in as ${CHECK_IN_SQL}`);
  const execute = (i: number) => {
    const now = new Date().toISOString();
    const values = [`hash-${i}`, 'LINUX', `idle-${i}`, 'Debian GNU/Linux 12 (bookworm)', '12', null, 'ON_PREMISES', null, null, null, '{}', '{}', now, now, null];
    return `execute check_in(${values.map(literal).join(', ')})`;
  };
  await connection.unsafe(`explain ${execute(1)}`); // plans it, on the table as it is now, and caches the plan
  return {
    connection,
    async explain(i) {
      await connection`begin`;
      try {
        const [row] = await connection.unsafe<Array<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>>(`explain (analyze, format json) ${execute(i)}`);
        return row!['QUERY PLAN'][0]!.Plan;
      } finally {
        await connection`rollback`;
      }
    },
    release: () => connection.release(),
  };
}

/** Rows of `machines` each scan read, kept or filtered away, per loop. */
const machineScans = (plan: PlanNode) =>
  [...nodes(plan)].filter((n) => n['Relation Name'] === 'machines').map((n) => ({ index: n['Index Name'] ?? n['Node Type'], rows: (n['Actual Rows'] + (n['Rows Removed by Filter'] ?? 0)) / Math.max(1, n['Actual Loops']) }));

/** Waits until the cumulative statistics count `rows` live machines (backends report them within a second or so). */
async function liveMachinesCounted(database: Database, rows: number, table = 'machines'): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const [row] = await database.sql`select n_live_tup::int as live from pg_stat_user_tables where relname = ${table}`;
    if (row!.live >= rows) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the statistics never counted ${rows} live rows of ${table}`);
}

/**
 * The API connections' cached generic plans (postgres.js prepares every statement; PostgreSQL plans a
 * prepared statement for its parameters five times, then caches one plan for all of them): made in
 * a new installation's first seconds, they outlived the table's growth (BENCHMARKS.md, "the ramp's
 * dip"). Without statistics every partial index on live machines fit the look-up as well as the
 * credential's, and one was cached that read the whole fleet.
 */
describe('the check-in plan a connection cached before the fleet enrolled', () => {
  let database: Database;
  let drop: () => Promise<void>;
  const fleet = 3000;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    await database.sql`alter table machines set (autovacuum_enabled = false)`;
  });

  afterAll(async () => {
    await database?.close();
    await drop?.();
  });

  it('reads the one machine row when the plan was cached on the empty, never analyzed table', async () => {
    const checkIn = await cachedCheckIn(database);
    try {
      await enrollMachines(database.sql, 1, fleet);
      const [stats] = await database.sql`select reltuples::float8 as reltuples from pg_class where relname = 'machines'`;
      expect(stats!.reltuples).toBeLessThan(0); // never analyzed nor vacuumed
      const plan = await checkIn.explain(fleet - 1);
      const scans = machineScans(plan);
      expect(scans.length).toBeGreaterThanOrEqual(2); // the look-up and the write's scan
      for (const scan of scans) expect(scan, JSON.stringify(scans)).toMatchObject({ rows: 1 });
    } finally {
      checkIn.release();
    }
  });
});

/**
 * What no statement can be immune to: a plan cached while the table had statistics of a few rows,
 * where a sequential scan is the cheapest, scans the whole table however large it grows; only an
 * ANALYZE (or VACUUM) of the table makes PostgreSQL plan it again. The API runs that ANALYZE itself
 * once enrollments have grown the table (analyzeIfGrown, src/db/tableStatistics.ts).
 */
describe('a check-in plan cached on statistics of a few machines, and the ANALYZE after enrollments', () => {
  let database: Database;
  let drop: () => Promise<void>;
  const rule = { minRows: 500, growth: 0.5, minIntervalSeconds: 0 };

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    await database.sql`alter table machines set (autovacuum_enabled = false)`;
  });

  afterAll(async () => {
    await database?.close();
    await drop?.();
  });

  it('scans every machine until the ANALYZE, which invalidates the cached plan on the connection', async () => {
    // 40 machines analyzed, the plan cached, 3,000 machines: the plan scans them all. Any backend's
    // cached plans are also dropped when its queue of catalog invalidations overflows (other test
    // files' DDL, shared catalogs included): then it was planned again on 3,000 rows and the state
    // is made again.
    const cachedOnFew = async () => {
      await database.sql`truncate machines cascade`;
      await enrollMachines(database.sql, 1, 40);
      await database.sql`analyze machines`;
      const cached = await cachedCheckIn(database);
      await enrollMachines(database.sql, 41, 3000);
      return { cached, before: machineScans(await cached.explain(2999)) };
    };
    let { cached: checkIn, before } = await cachedOnFew();
    for (let attempt = 1; attempt < 3 && !before.some((scan) => scan.rows >= 3000); attempt++) {
      checkIn.release();
      ({ cached: checkIn, before } = await cachedOnFew());
    }
    try {
      expect(before.some((scan) => scan.rows >= 3000), JSON.stringify(before)).toBe(true);

      await liveMachinesCounted(database, 3000);
      // (The statistics may count a few rows twice, reported around an ANALYZE: at least, not exactly.)
      const analyzed = await analyzeIfGrown(database.sql, 'machines', rule);
      expect(analyzed).toMatchObject({ analyzed: true, knownRows: 40 });
      expect(analyzed.liveRows).toBeGreaterThanOrEqual(3000);

      // The same connection, the same prepared statement: planned again on the new statistics.
      const after = machineScans(await checkIn.explain(2999));
      expect(after.length).toBeGreaterThanOrEqual(2);
      for (const scan of after) expect(scan, JSON.stringify(after)).toMatchObject({ rows: 1 });
    } finally {
      checkIn.release();
    }
  });

  it('analyzes only a table grown past the rule, not too soon after the last, in one process at a time', async () => {
    // Counted at 3,000 by the test above (or by this ANALYZE): 1,000 more is under half again.
    await database.sql`analyze machines`;
    await enrollMachines(database.sql, 3001, 4000);
    await liveMachinesCounted(database, 4000);
    await expect(analyzeIfGrown(database.sql, 'machines', rule)).resolves.toMatchObject({ analyzed: false, skipped: 'NOT_GROWN', knownRows: 3000 });

    await enrollMachines(database.sql, 4001, 5000);
    await liveMachinesCounted(database, 5000);
    await expect(analyzeIfGrown(database.sql, 'machines', { ...rule, minIntervalSeconds: 3600 })).resolves.toMatchObject({ analyzed: false, skipped: 'TOO_SOON' });

    // Another API process is analyzing it: this one leaves it alone.
    const other = await database.sql.reserve();
    try {
      await other`begin`;
      await other`select pg_advisory_xact_lock(${0x66706131}, 'machines'::regclass::oid::int)`;
      await expect(analyzeIfGrown(database.sql, 'machines', rule)).resolves.toMatchObject({ analyzed: false, skipped: 'LOCKED' });
      await other`rollback`;
    } finally {
      other.release();
    }

    // An API process told of the enrollments runs it in the background, in its next pass.
    const statistics = startTableStatistics({ database, logger: testLogger }, { delayMs: 60_000, rule });
    try {
      await expect(statistics.pass()).resolves.toEqual([]); // told of nothing: looks at nothing
      statistics.noteGrowth('machines');
      await expect(statistics.pass()).resolves.toMatchObject([{ table: 'machines', analyzed: true, knownRows: 3000 }]);
      const [stats] = await database.sql`select reltuples::float8 as reltuples from pg_class where relname = 'machines'`;
      expect(stats!.reltuples).toBe(5000);
    } finally {
      await statistics.stop();
    }
  });

  it("analyzes the tag rows, assessments and pending updates too: a tag's page then reads a page of its rows in order", async () => {
    for (const table of ['machine_tags', 'assessments', 'pending_updates']) await database.sql.unsafe(`alter table ${table} set (autovacuum_enabled = false)`);
    // Every machine tagged (the trigger writes its tag row), assessed, two updates pending.
    await database.sql`update machines set tags = '{web}'`;
    await database.sql`
      insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
      select gen_random_uuid(), id, 'SCHEDULE', 'apt', now(), now(), now(), false, 0, 1, 1 from machines`;
    await database.sql`
      insert into pending_updates (assessment_id, machine_id, name, arch, installed_version, available_version, classification)
      select a.id, a.machine_id, p.name, 'amd64', '1.0-1', '1.0-2', p.classification::classification
      from assessments a cross join (values ('openssl', 'SECURITY'), ('vim', 'OTHER')) p(name, classification)`;
    const tagPagePlan = async () => {
      const statement = tagPage(database.db, { filter: { tags: ['web'] }, offset: 0, limit: 50, now: new Date(), thresholds: DEFAULT_THRESHOLDS }).toSQL();
      const [row] = await database.sql.unsafe<Array<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>>(`explain (format json) ${statement.sql}`, statement.params as never[]);
      return [...nodes(row!['QUERY PLAN'][0]!.Plan)];
    };
    // Planned on no statistics of the tag rows: a few rows guessed, all 5,000 read (a bitmap of the tag's rows) and sorted.
    const tagRowsRead = (plan: PlanNode[]) => plan.find((n) => n['Relation Name'] === 'machine_tags');
    expect(tagRowsRead(await tagPagePlan())).toMatchObject({ 'Node Type': 'Bitmap Heap Scan' });

    for (const [table, rows] of [['machine_tags', 5000], ['assessments', 5000], ['pending_updates', 10000]] as const) await liveMachinesCounted(database, rows, table);
    const statistics = startTableStatistics({ database, logger: testLogger }, { delayMs: 60_000, rule });
    try {
      for (const table of ['machine_tags', 'assessments', 'pending_updates'] as const) statistics.noteGrowth(table);
      const decisions = await statistics.pass();
      expect(decisions.map((d) => [d.table, d.analyzed]).sort()).toEqual([['assessments', true], ['machine_tags', true], ['pending_updates', true]]);
      const known = await database.sql<Array<{ relname: string; reltuples: number }>>`
        select relname, reltuples::float8 as reltuples from pg_class where relname in ('machine_tags', 'assessments', 'pending_updates') order by relname`;
      expect(known.map((r) => [r.relname, r.reltuples])).toEqual([['assessments', 5000], ['machine_tags', 5000], ['pending_updates', 10000]]);
    } finally {
      await statistics.stop();
    }
    // Then a page of them, in the key's order.
    expect(tagRowsRead(await tagPagePlan())).toMatchObject({ 'Node Type': 'Index Only Scan', 'Index Name': 'machine_tags_tag_name_machine_id_pk' });
  });
});
