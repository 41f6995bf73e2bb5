import { sql, type SQL } from 'drizzle-orm';
import { sameThresholds, type AgentReadiness, type Compliance, type FleetThresholds, type OsType } from '../fleet/compliance.js';
import { summaryFromCounts, type FleetSummary } from '../fleet/fleetSummary.js';
import type { Db } from './client.js';
import { complianceSql, overdueUpdatesSql, readinessSql } from './fleetSql.js';

/**
 * The compliance summary, maintained (docs/fleet-counts.md). The triggers on machines (migration
 * "maintained_compliance_summary") keep, for every live machine, its summary state evaluated at its
 * own instant `summary_at` and the instant `summary_next_at` from which that may change with no
 * write, and append every change of a row's contribution to fleet_summary_deltas in the writer's
 * transaction, whichever statement made it (a report, a removal, management, tags, a baseline saved,
 * a check-in of an agent that was silent). So the counts always equal the sum of the stored states:
 * what is left is the clock, which this module handles through the index on (summary_generation, summary_next_at), and a
 * change of thresholds, handled the same way through the generation each state was evaluated in.
 */

const CURRENT_GENERATION = sql`(select generation from fleet_summary_settings where id = 1)`;

/**
 * The machines whose stored state may not hold at `at` are those of two conditions (on a machines
 * row, unqualified), each a range of machines_summary_generation_next_at_idx: empty and a few
 * machines when the upkeep keeps up, every machine right after a change of thresholds, shrinking as
 * it sweeps. `clockLapsed`: of the current generation, next change instant passed.
 */
export const clockLapsed = (at: string) => sql`(summary_generation = ${CURRENT_GENERATION} and summary_next_at <= ${at}::timestamptz)`;

/**
 * `generationLapsed`: evaluated with the thresholds of an older generation. Its first part is a
 * one-time filter (the least generation, one index probe): in one OR with clockLapsed, or alone, the
 * planner cannot tell how many rows `< (current)` keeps and read the whole table for it (70,000
 * pages at 1,000,000 machines, at every read); gated, it reads nothing unless one exists. The page by
 * compliance reads it so; the counts' readers leave the branch out unless one exists (lapsedMachines).
 */
export const generationLapsed = sql`((select min(summary_generation) from machines) < ${CURRENT_GENERATION} and summary_generation < ${CURRENT_GENERATION})`;

/**
 * Every lapsed machine, as a relation named `machines` (so that the fleet view's SQL reads it): the
 * clock's, and the older generations' only when the reader knows some exist (readAtStoredThresholds).
 * Kept in the statement behind its one-time filter, that branch cost a read at rest where the
 * planner, blind to the filter, planned a parallel scan for it: two workers launched at every read
 * of a tag's count to read nothing (9 ms of 9.3 at 1,000,000 machines).
 */
const lapsedMachines = (at: string, olderGenerations: boolean) =>
  olderGenerations
    ? sql`(
  select * from machines where ${clockLapsed(at)}
  union all
  select * from machines where summary_generation < ${CURRENT_GENERATION}) machines`
    : sql`(select * from machines where ${clockLapsed(at)}) machines`;

/** The live machines whose stored state holds at `at`: every other one is lapsed. */
export const stateHolds = (at: string) =>
  sql`(summary_generation = ${CURRENT_GENERATION} and (summary_next_at is null or summary_next_at > ${at}::timestamptz))`;

/** The thresholds of the stored states, as this process's FleetThresholds. */
function asThresholds(row: { linux: number; windows: number; disconnected: number }): FleetThresholds {
  return { assessmentMaxAgeMs: { LINUX: Number(row.linux), WINDOWS: Number(row.windows) }, disconnectedAfterMs: Number(row.disconnected) };
}

/** The thresholds the stored states are evaluated with (the settings row). */
export async function storedFleetThresholds(db: Db): Promise<FleetThresholds> {
  const [row] = await db.execute<{ linux: number; windows: number; disconnected: number }>(sql`
    select linux_assessment_max_age_ms::float8 as linux, windows_assessment_max_age_ms::float8 as windows, disconnected_after_ms::float8 as disconnected from fleet_summary_settings where id = 1`);
  if (!row) throw new Error('fleet_summary_settings has no row: the migrations have not all run.');
  return asThresholds(row);
}

/**
 * The summary at `now`, exact as of the statement's snapshot: the folded counts, plus the deltas not
 * folded yet, plus, for each machine whose stored state has lapsed (clockLapsed, generationLapsed: the machines the
 * sweep has not reached yet, a few at most), its state at `now` less its stored one. Reads no other
 * machine. When this process's thresholds are not the stored ones, they are stored first
 * (syncFleetSummaryThresholds), which makes every machine's state lapse until the sweep.
 */
export async function maintainedComplianceSummary(db: Db, now: Date, thresholds: FleetThresholds): Promise<FleetSummary> {
  return summaryFromCounts(await maintainedSummaryCounts(db, now, thresholds));
}

/** Every key of the summary's counts at `now` (summaryKey), exact as maintainedComplianceSummary says. */
export async function maintainedSummaryCounts(db: Db, now: Date, thresholds: FleetThresholds): Promise<Map<string, number>> {
  const at = now.toISOString();
  // The lapsed machines grouped first: each contribution is then computed once per group, not per machine.
  const rows = await readAtStoredThresholds(db, thresholds, (olderGenerations) => sql`
      with lapsed as (
        select os_type, ${stateAt(now, thresholds)} as state, ${overdueUpdatesSql(now)} as overdue, summary_state, summary_overdue, count(*)::int as machines
        from ${lapsedMachines(at, olderGenerations)} where summary_state is not null
        group by 1, 2, 3, 4, 5
      ),
      passed as (
        select c.key, c.n * l.machines as n
        from lapsed l cross join lateral (
          select k.key, k.n from fleet_summary_contribution(l.state, l.overdue, 0, 0, 0, 0, 0, 0, 0, 0, 0) k
          union all
          select k.key, k.n from fleet_summary_os_contribution(l.os_type, l.state, l.overdue) k
          union all
          select k.key, -k.n from fleet_summary_contribution(l.summary_state, l.summary_overdue, 0, 0, 0, 0, 0, 0, 0, 0, 0) k
          union all
          select k.key, -k.n from fleet_summary_os_contribution(l.os_type, l.summary_state, l.summary_overdue) k
        ) c
      ),
      counted as (
        select key, sum(n)::bigint as n from (
          select key, n from fleet_summary_counts
          union all select key, n from fleet_summary_deltas
          union all select key, n from passed
        ) t group by key
      )`);
  return new Map(rows.map((r) => [r.key, r.n]));
}

/**
 * The live machines carrying `tag` (of `osType` when given; overdue or not when `overdue` is given)
 * per (compliance, readiness) at `now` (migrations 0047, 0052, 0056): its counts per stored state,
 * the deltas not folded yet, and, for the machines carrying it whose stored state has lapsed, their
 * state at `now` less their stored one. Reads no other machine.
 */
export async function maintainedTagGroups(db: Db, tag: string, now: Date, thresholds: FleetThresholds, of: { osType?: OsType; overdue?: boolean } = {}): Promise<FleetSummary['groups']> {
  const at = now.toISOString();
  const ofOs = of.osType ? sql` and os_type = ${of.osType}` : sql``;
  const ofOverdue = of.overdue === undefined ? sql`` : sql` and overdue = ${of.overdue}`;
  const rows = await readAtStoredThresholds(db, thresholds, (olderGenerations) => sql`
      with lapsed as (
        select ${stateAt(now, thresholds)} as state, ${overdueUpdatesSql(now)} > 0 as overdue, summary_state, coalesce(summary_overdue, 0) > 0 as summary_overdue, count(*)::int as machines
        from ${lapsedMachines(at, olderGenerations)} where summary_state is not null and tags @> array[${tag}]::text[]${ofOs}
        group by 1, 2, 3, 4
      ),
      passed as (
        select state as key, overdue, machines as n from lapsed
        union all select summary_state, summary_overdue, -machines from lapsed
      ),
      counted as (
        select key, sum(n)::bigint as n from (
          select state as key, overdue, n from machine_tag_counts where tag = ${tag}${ofOs}
          union all select state, overdue, n from machine_tag_deltas where tag = ${tag}${ofOs}
          union all select key, overdue, n from passed
        ) t where true${ofOverdue} group by key
      )`);
  return rows
    .filter((r) => r.n !== 0)
    .map((r) => {
      const [compliance, readiness] = r.key.split(':') as [Compliance, AgentReadiness];
      return { compliance, readiness, n: r.n };
    });
}

/**
 * A machine's summary state at `now` (`<compliance>:<readiness>`) with these thresholds, which a
 * reader uses only when they are the stored ones (readAtStoredThresholds). The fleet view's SQL, not
 * the triggers' functions: the same rules (tests hold them to each other), evaluated inline, where
 * the functions cost a call each (at 1,000,000 lapsed machines, 22 s against 3 s).
 */
const stateAt = (now: Date, thresholds: FleetThresholds) => sql`${complianceSql(now, thresholds)} || ':' || ${readinessSql(now, thresholds)}`;

/**
 * Reads `counted` (key, n) of the statement `withCounted` ends with, as the stored states count,
 * with the thresholds of the stored states in the same snapshot: when they are not this process's,
 * it stores them (syncFleetSummaryThresholds) and reads again. The statement reads the machines of
 * older generations only when asked to (`olderGenerations`): it says whether any exists in its
 * snapshot (one index probe), and is read again with them when one does.
 */
async function readAtStoredThresholds(db: Db, thresholds: FleetThresholds, withCounted: (olderGenerations: boolean) => SQL): Promise<Array<{ key: string; n: number }>> {
  let synced = false;
  let olderGenerations = false;
  for (;;) {
    const rows = await db.execute<{ key: string | null; n: number; linux: number; windows: number; disconnected: number; older: boolean }>(sql`
      ${withCounted(olderGenerations)}
      select counted.key, counted.n::float8 as n, s.linux_assessment_max_age_ms::float8 as linux, s.windows_assessment_max_age_ms::float8 as windows, s.disconnected_after_ms::float8 as disconnected,
        (select min(summary_generation) from machines) < s.generation as older
      from fleet_summary_settings s left join counted on true`);
    const first = rows[0];
    if (!first) throw new Error('fleet_summary_settings has no row: the migrations have not all run.');
    if (!sameThresholds(asThresholds(first), thresholds) && !synced) {
      synced = true;
      await syncFleetSummaryThresholds(db, thresholds);
      continue;
    }
    if (first.older && !olderGenerations) {
      olderGenerations = true;
      continue;
    }
    return rows.filter((r) => r.key !== null).map((r) => ({ key: r.key!, n: Number(r.n) }));
  }
}

/**
 * Re-evaluates at `now` the machines whose stored state has lapsed (clockLapsed, generationLapsed), at most `batch`
 * of them: those of an older generation of thresholds first (the few sweepLapsedGenerations left
 * behind), then those of the current one whose next change instant has passed, oldest instant
 * first (a machine another writer holds is left for the next sweep; one already evaluated at `now`,
 * whose "older than" cutoff is `now` itself, has nothing to move). The trigger evaluates each one's
 * state with the stored thresholds and the counts take the difference. Readers are exact without
 * it; it keeps what they add up small. Answers how many it moved.
 */
export async function sweepFleetSummary(db: Db, now: Date, batch = 5000): Promise<number> {
  const at = now.toISOString();
  // Writing summary_at fires the trigger that re-evaluates the row, even when the value stays.
  const moved = await db.execute<{ id: string }>(sql`
    update machines m set summary_at = greatest(m.summary_at, ${at}::timestamptz)
    from (
      select id from (select id from machines where summary_generation < ${CURRENT_GENERATION} order by summary_generation limit ${batch} for update skip locked) stale
      union all
      select id from (
        select id from machines where summary_generation = ${CURRENT_GENERATION} and summary_next_at <= ${at}::timestamptz and summary_at < ${at}::timestamptz
        order by summary_next_at limit ${batch} for update skip locked) passed
      limit ${batch}) due
    where m.id = due.id
    returning m.id`);
  return moved.length;
}

/**
 * Folds the deltas written so far into the counts, in one transaction (a reader sees them either as
 * deltas or as counts, never both or neither). Two folds at once each move the rows they deleted;
 * the counts' rows are taken in key order by both, so they wait, never deadlock. Answers how many
 * delta rows it folded.
 */
export function foldFleetSummaryDeltas(db: Db): Promise<number> {
  return foldDeltas(db, { deltas: 'fleet_summary_deltas', counts: 'fleet_summary_counts', keys: ['key'] });
}

/** Folds the live machines per tag, OS type, state and overdue (migrations 0038, 0047, 0052, 0056) as foldFleetSummaryDeltas folds the summary's deltas. */
export function foldMachineTagDeltas(db: Db): Promise<number> {
  return foldDeltas(db, { deltas: 'machine_tag_deltas', counts: 'machine_tag_counts', keys: ['tag', 'os_type', 'state', 'overdue'] });
}

/** A table of counts and the table of deltas its writers append to: (keys…, n) both. */
async function foldDeltas(db: Db, tables: { deltas: string; counts: string; keys: readonly string[] }): Promise<number> {
  const [deltas, counts] = [sql.identifier(tables.deltas), sql.identifier(tables.counts)];
  const keys = sql.join(
    tables.keys.map((k) => sql.identifier(k)),
    sql`, `,
  );
  const [row] = await db.execute<{ folded: number }>(sql`
    with moved as (delete from ${deltas} returning ${keys}, n),
    summed as (select ${keys}, sum(n)::bigint as n, count(*) as delta_rows from moved group by ${keys}),
    applied as (
      insert into ${counts} (${keys}, n) select ${keys}, n from summed where n <> 0 order by ${keys}
      on conflict (${keys}) do update set n = ${counts}.n + excluded.n
    )
    select coalesce(sum(delta_rows), 0)::int as folded from summed`);
  return row?.folded ?? 0;
}

/** What sweepLapsedGenerations has done so far: machines re-evaluated, and pages of machines read of those it reads. */
export interface GenerationSweepProgress {
  moved: number;
  pagesRead: number;
  pages: number;
}

/**
 * After a change of thresholds: re-evaluates at `now` every machine of an older generation, in the
 * table's own order, `pagesPerBatch` pages of it a statement (TID range scans, PostgreSQL 14 and
 * later; 200 pages hold about 5,000 machines). In index order each re-evaluated row was a page
 * written at random, its full image logged again after each checkpoint: at 1,000,000 machines
 * about 2.4 ms a machine against 0.34 here. A machine another writer holds is skipped, left for
 * sweepFleetSummary. Reads the table only when a machine of an older generation exists (one index
 * probe). `onBatch` hears the progress after each statement. Answers how many it moved.
 */
export async function sweepLapsedGenerations(db: Db, now: Date, onBatch?: (progress: GenerationSweepProgress) => void | Promise<void>, pagesPerBatch = 200): Promise<number> {
  const [state] = await db.execute<{ lapsed: boolean; pages: number }>(sql`
    select exists (select 1 from machines where summary_generation < ${CURRENT_GENERATION}) as lapsed,
      (pg_relation_size('machines') / current_setting('block_size')::int)::int as pages`);
  if (!state?.lapsed) return 0;
  const at = now.toISOString();
  const progress: GenerationSweepProgress = { moved: 0, pagesRead: 0, pages: state.pages };
  // Pages added after this started hold rows written since, evaluated with the stored thresholds.
  for (let page = 0; page < state.pages; page += pagesPerBatch) {
    const end = Math.min(page + pagesPerBatch, state.pages);
    const moved = await db.execute<{ id: string }>(sql`
      update machines m set summary_at = greatest(m.summary_at, ${at}::timestamptz)
      from (
        select id from machines
        where ctid >= ${`(${page},0)`}::tid and ctid < ${`(${end},0)`}::tid and summary_generation < ${CURRENT_GENERATION}
        for update skip locked) due
      where m.id = due.id
      returning m.id`);
    progress.moved += moved.length;
    progress.pagesRead = end;
    await onBatch?.(progress);
  }
  return progress.moved;
}

/** One round of upkeep: the machines whose state lapsed re-evaluated (all of them, in batches), then the deltas folded (the summary's and the tags'). */
export async function fleetSummaryUpkeep(db: Db, now: Date, onGenerationSweep?: (progress: GenerationSweepProgress) => void | Promise<void>): Promise<{ moved: number; folded: number }> {
  let moved = await sweepLapsedGenerations(db, now, onGenerationSweep);
  for (;;) {
    const n = await sweepFleetSummary(db, now);
    moved += n;
    if (n < 5000) break;
  }
  const folded = await foldFleetSummaryDeltas(db);
  return { moved, folded: folded + (await foldMachineTagDeltas(db)) };
}

/**
 * Makes the stored states follow these thresholds: when they are not the ones stored, the settings
 * row takes them and counts one generation more, one row written. Every machine's state then
 * lapses (generationLapsed): readers evaluate those themselves, the upkeep's sweep re-evaluates them in
 * batches, writers go on meanwhile. Every API process must be configured alike, or each would undo
 * the other's at each read. Answers whether anything changed.
 */
export async function syncFleetSummaryThresholds(db: Db, thresholds: FleetThresholds): Promise<boolean> {
  const changed = await db.execute(sql`
    update fleet_summary_settings set linux_assessment_max_age_ms = ${thresholds.assessmentMaxAgeMs.LINUX}, windows_assessment_max_age_ms = ${thresholds.assessmentMaxAgeMs.WINDOWS},
      disconnected_after_ms = ${thresholds.disconnectedAfterMs}, generation = generation + 1
    where id = 1 and (linux_assessment_max_age_ms, windows_assessment_max_age_ms, disconnected_after_ms) is distinct from
      (${thresholds.assessmentMaxAgeMs.LINUX}::bigint, ${thresholds.assessmentMaxAgeMs.WINDOWS}::bigint, ${thresholds.disconnectedAfterMs}::bigint)
    returning id`);
  return changed.length > 0;
}
