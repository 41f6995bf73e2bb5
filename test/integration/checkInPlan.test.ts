import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
