import type { Sql } from 'postgres';

/**
 * The tables whose statistics hot statements and the fleet view's reads depend on, and which a
 * fleet's enrollment grows faster than autovacuum analyzes them: a new installation's first ANALYZE
 * by autovacuum comes one to three minutes into an enrollment ramp (naptime 1 min), and after that
 * only once the table has grown by a tenth and the next naptime comes. Planned on statistics of a
 * few rows, or none:
 * - `machines`: a cached generic plan of the check-in scans the whole table (a sequential scan is
 *   cheapest at that size) until an ANALYZE makes PostgreSQL plan it again;
 * - `machine_tags`: a tag's page reads every row of the tag and sorts them, where it reads a page of
 *   them in order (a tag of 10,000 machines: 40,000 pages for a page of 50);
 * - `pending_updates` (and `assessments`, which the CVE reads join): the first page of a CVE's
 *   exposed machines walked every machine's rows (3.1 s at 100,000 machines against 39 ms once
 *   analyzed; BENCHMARKS.md, "Reads on statistics that lag behind the fleet").
 */
export const ANALYZED_TABLES = ['machines', 'machine_tags', 'assessments', 'pending_updates'] as const;
export type AnalyzedTable = (typeof ANALYZED_TABLES)[number];

export interface AnalyzeRule {
  /** Rows added since the last ANALYZE (or ever, before the first) that are always enough. */
  minRows: number;
  /** ...or this share of the rows the last ANALYZE counted, when that is more. */
  growth: number;
  /** No ANALYZE (by any replica, or by autovacuum) of the table within this many seconds of the last. */
  minIntervalSeconds: number;
}

/**
 * 500 rows: at a few hundred rows PostgreSQL already plans the check-in on the credential's unique
 * index, and a plan cached on fewer scans at most a few hundred rows until the next ANALYZE.
 * Half again: the plans that depend on the table's size are right to within that, and an ANALYZE
 * of `machines` (at most 30,000 sampled rows) then costs far less than the enrollments between two.
 */
export const DEFAULT_ANALYZE_RULE: AnalyzeRule = { minRows: 500, growth: 0.5, minIntervalSeconds: 10 };

export interface AnalyzeDecision {
  table: AnalyzedTable;
  /** Whether this call ran ANALYZE. */
  analyzed: boolean;
  /** Why not, when it did not. */
  skipped?: 'LOCKED' | 'NOT_GROWN' | 'TOO_SOON';
  /** Live rows by the cumulative statistics (inserts counted as they commit), before the ANALYZE. */
  liveRows: number;
  /** Rows the planner knows of (pg_class.reltuples; -1: never analyzed nor vacuumed). */
  knownRows: number;
}

/** The key's first half: the tables' statistics, against any other use of advisory locks. */
const ANALYZE_LOCK_CLASS = 0x66706131; // 'fpa1'

/**
 * Runs ANALYZE of `table` when it has grown past `rule` since PostgreSQL last counted it, at most
 * once per `rule.minIntervalSeconds` whoever analyzed last (autovacuum included), and by one API
 * process at a time: the others find the advisory lock taken and skip (a replica that comes next
 * sees the new count and finds nothing to do). The ANALYZE invalidates every connection's cached
 * plans that read the table (test/integration/checkInPlan.test.ts), so they are planned again on
 * the new figures. Meant for the background: an ANALYZE of a large table takes a second or more.
 */
export async function analyzeIfGrown(sql: Sql, table: AnalyzedTable, rule: AnalyzeRule = DEFAULT_ANALYZE_RULE): Promise<AnalyzeDecision> {
  if (!ANALYZED_TABLES.includes(table)) throw new Error(`not a table analyzed here: ${table}`);
  return sql.begin(async (tx) => {
    const [lock] = await tx<Array<{ locked: boolean }>>`select pg_try_advisory_xact_lock(${ANALYZE_LOCK_CLASS}, ${table}::regclass::oid::int) as locked`;
    const [row] = await tx<Array<{ live_rows: string; known_rows: number; too_soon: boolean }>>`
      select coalesce(s.n_live_tup, 0) as live_rows, c.reltuples::float8 as known_rows,
        coalesce(greatest(s.last_analyze, s.last_autoanalyze) > now() - make_interval(secs => ${rule.minIntervalSeconds}), false) as too_soon
      from pg_class c left join pg_stat_user_tables s on s.relid = c.oid
      where c.oid = ${table}::regclass`;
    const liveRows = Number(row!.live_rows);
    const knownRows = row!.known_rows;
    const decision = { table, analyzed: false, liveRows, knownRows };
    if (!lock!.locked) return { ...decision, skipped: 'LOCKED' as const };
    const known = Math.max(knownRows, 0);
    if (liveRows - known < Math.max(rule.minRows, rule.growth * known)) return { ...decision, skipped: 'NOT_GROWN' as const };
    if (row!.too_soon) return { ...decision, skipped: 'TOO_SOON' as const };
    // `table` is one of ANALYZED_TABLES (checked above), a plain identifier.
    await tx.unsafe(`analyze ${table}`);
    return { ...decision, analyzed: true };
  });
}
