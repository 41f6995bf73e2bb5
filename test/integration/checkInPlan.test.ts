import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReservedSql } from 'postgres';
import type { Database } from '../../src/db/client.js';
import { CHECK_IN_SQL } from '../../src/db/machines.js';
import { connectTestDatabase, freshDatabase } from '../support/env.js';

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
