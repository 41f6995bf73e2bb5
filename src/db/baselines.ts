import { asc, eq, sql, type SQL } from 'drizzle-orm';
import type { ReservedSql, Sql } from 'postgres';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { Classification, Severity } from '../domain/vocabulary.js';
import { clockedUpdate, clockKey, updateVerdict, type Baseline, type UpdateClockInputs } from '../fleet/baselines.js';
import type { Db } from './client.js';
import { baselines, baselineVerdicts, machines, pendingUpdates, updateFirstSeen } from './schema.js';

export type BaselineRow = typeof baselines.$inferSelect;
export type BaselineValues = Omit<typeof baselines.$inferInsert, 'id' | 'createdAt' | 'updatedAt'>;

/**
 * A baseline change and the machines' kept state must not interleave with an assessment being
 * stored: ingest and a tag change take this lock shared, a baseline change exclusively, so a
 * machine's state is always computed from the verdicts that are current when it commits.
 */
export const BASELINE_LOCK = 0x6270_6c6e; // "bpln"

export const asBaseline = (row: BaselineRow): Baseline => ({
  id: row.id,
  name: row.name,
  osType: row.osType,
  tags: row.tags,
  priority: row.priority,
  rules: row.rules,
  approvedPatterns: row.approvedPatterns,
  rejectedPatterns: row.rejectedPatterns,
  slaTargets: row.slaTargets,
  timeZone: row.timeZone,
});

const isUniqueViolation = (error: unknown) => (error as { cause?: { code?: string }; code?: string }).cause?.code === '23505' || (error as { code?: string }).code === '23505';

export async function listBaselines(db: Db): Promise<BaselineRow[]> {
  return db.select().from(baselines).orderBy(asc(baselines.osType), asc(baselines.name));
}

export async function findBaseline(db: Db, id: string): Promise<BaselineRow | undefined> {
  const [row] = await db.select().from(baselines).where(eq(baselines.id, id));
  return row;
}

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/**
 * Creates, replaces or deletes a baseline, then brings every machine's kept state in line, in one
 * transaction: the baseline's verdicts over every update seen so far, which baseline each machine
 * gets, and each affected machine's state. A pass over the fleet's pending updates (seconds at
 * 100k machines): baselines change rarely, and compliance stays exact instead of approximately
 * right for a while.
 */
export async function saveBaseline(db: Db, id: string | null, values: BaselineValues | null): Promise<BaselineRow | 'NAME_TAKEN' | undefined> {
  try {
    return await db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${BASELINE_LOCK})`);
      let row: BaselineRow | undefined;
      if (values === null) {
        [row] = await tx.delete(baselines).where(eq(baselines.id, id!)).returning();
        if (!row) return undefined;
      } else if (id === null) {
        [row] = await tx.insert(baselines).values(values).returning();
      } else {
        [row] = await tx.update(baselines).set({ ...values, updatedAt: sql`now()` }).where(eq(baselines.id, id)).returning();
        if (!row) return undefined;
      }
      if (values !== null) await computeVerdicts(tx, asBaseline(row!));
      // Which machines' state may change: those that had this baseline and those that get it now.
      const moved = await tx.execute<{ id: string }>(sql`
        update machines m set baseline_id = ${assignmentSql()}
        where m.removed_at is null and m.baseline_id is distinct from ${assignmentSql()}
        returning m.id`);
      await refreshMachineState(tx, sql`(m2.baseline_id = ${row!.id} or m2.id = any(${sql.param(moved.map((r) => r.id))}::uuid[]))`);
      return row;
    });
  } catch (error) {
    if (isUniqueViolation(error)) return 'NAME_TAKEN';
    throw error;
  }
}

/** The baseline a machine `m` gets (src/fleet/baselines.ts, assignedBaseline: priority, then more tags, then name), or one of that OS type and those tags. */
export function assignmentSql(osType: SQL = sql`m.os_type`, tags: SQL = sql`m.tags`): SQL {
  return sql`(select b.id from ${baselines} b where b.os_type = ${osType} and ${tags} @> b.tags order by b.priority desc, cardinality(b.tags) desc, b.name asc limit 1)`;
}

const VERDICT_BATCH = 5000;

/**
 * The clock inputs of updates, per name and version (those the `keys` query selects, or all): the earliest
 * first sighting of any of its kinds, and the advisory issue date recorded with its first sighting
 * (recordFirstSeen copies it to every later kind of the same name and version, so min() is
 * that one date). The one read of them: the stored verdicts, the planner and the machine view all
 * count from what this returns.
 */
export function updateClocksSql(keys: SQL | null): SQL {
  const only = keys ? sql`where (name, version) in (${keys})` : sql``;
  return sql`select name, version, min(first_seen_at) as first_seen_at, min(advisory_issued_at) as advisory_issued_at from ${updateFirstSeen} ${only} group by name, version`;
}

type ClockRow = { name: string; version: string; first_seen_at: string | Date; advisory_issued_at: string | Date | null };

function clockMap(rows: Iterable<ClockRow>): Map<string, UpdateClockInputs> {
  const clocks = new Map<string, UpdateClockInputs>();
  for (const row of rows) {
    clocks.set(clockKey({ name: row.name, availableVersion: row.version }), {
      firstSeenAt: new Date(row.first_seen_at),
      advisoryIssuedAt: row.advisory_issued_at === null ? null : new Date(row.advisory_issued_at),
    });
  }
  return clocks;
}

const dialect = new PgDialect();

/** Every update kind seen so far under one baseline (its approved kinds, as rows). */
async function computeVerdicts(tx: Tx, baseline: Baseline): Promise<void> {
  await tx.delete(baselineVerdicts).where(eq(baselineVerdicts.baselineId, baseline.id!));
  const [kinds, clocks] = await Promise.all([
    tx.execute<UpdateKind>(sql`select name, version, classification, severity from ${updateFirstSeen}`),
    tx.execute<ClockRow>(updateClocksSql(null)),
  ]);
  await insertVerdicts((rows) => tx.execute(verdictInsert(rows)), [baseline], kinds, clockMap(clocks));
}

type UpdateKind = { name: string; version: string; classification: string; severity: string };

type VerdictRow = { baselineId: string; name: string; version: string; classification: string; severity: string; approvedAt: string; dueAt: string | null };

async function insertVerdicts(
  run: (rows: VerdictRow[]) => Promise<unknown>,
  forBaselines: readonly Baseline[],
  kinds: ReadonlyArray<UpdateKind>,
  clocks: ReadonlyMap<string, UpdateClockInputs>,
): Promise<void> {
  let batch: VerdictRow[] = [];
  const now = new Date();
  for (const kind of kinds) {
    const update = clockedUpdate(
      { name: kind.name, availableVersion: kind.version, classification: kind.classification as Classification, severity: kind.severity === '' ? null : (kind.severity as Severity) },
      clocks,
      now,
    );
    for (const baseline of forBaselines) {
      const verdict = updateVerdict(baseline, update);
      if (verdict.status !== 'APPROVED') continue;
      batch.push({ baselineId: baseline.id!, name: kind.name, version: kind.version, classification: kind.classification, severity: kind.severity, approvedAt: verdict.approvedAt.toISOString(), dueAt: verdict.dueAt?.toISOString() ?? null });
      if (batch.length >= VERDICT_BATCH) {
        await run(batch);
        batch = [];
      }
    }
  }
  if (batch.length > 0) await run(batch);
}

function verdictInsert(rows: VerdictRow[]): SQL {
  const col = <K extends keyof VerdictRow>(k: K) => sql.param(rows.map((r) => r[k]));
  return sql`insert into ${baselineVerdicts} (baseline_id, name, version, classification, severity, approved_at, due_at)
    select * from unnest(${col('baselineId')}::uuid[], ${col('name')}::text[], ${col('version')}::text[], ${col('classification')}::text[], ${col('severity')}::text[], ${col('approvedAt')}::text[]::timestamptz[], ${col('dueAt')}::text[]::timestamptz[])
    on conflict do nothing`;
}

/**
 * The kept state (non_compliant_from, sla_due_dates) of the live machines `m2` that `scope` picks,
 * from their latest assessment's pending updates and their baseline's verdicts: the SQL twin of
 * machineBaselineState in src/fleet/baselines.ts. A machine on the built-in baseline gets none.
 */
function machineStateUpdate(scope: SQL): SQL {
  const approved = sql`${pendingUpdates} pu join ${baselineVerdicts} v on v.baseline_id = m2.baseline_id and v.name = pu.name and v.version = pu.available_version
        and v.classification = pu.classification::text and v.severity = coalesce(pu.severity::text, '')
      where pu.assessment_id = m2.latest_assessment_id`;
  return sql`update ${machines} m set non_compliant_from = s.nc, sla_due_dates = s.due
    from (
      select m2.id,
        (select min(v.approved_at) from ${approved}) as nc,
        coalesce((select array_agg(d order by d) from (select min(v.due_at) as d from ${approved} and v.due_at is not null group by pu.name) x), '{}') as due
      from ${machines} m2 where m2.removed_at is null and ${scope}
    ) s
    where m.id = s.id and (m.non_compliant_from is distinct from s.nc or m.sla_due_dates is distinct from s.due)`;
}

async function refreshMachineState(tx: Tx | Db, scope: SQL): Promise<void> {
  await tx.execute(machineStateUpdate(scope));
}

/** After a machine's tags changed (or it enrolled): its baseline again, and its state. */
export async function reassignMachineBaseline(db: Db, machineId: string): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock_shared(${BASELINE_LOCK})`);
    await tx.execute(sql`update machines m set baseline_id = ${assignmentSql()} where m.id = ${machineId}`);
    await refreshMachineState(tx, sql`m2.id = ${machineId}`);
  });
}

/**
 * Part of storing assessments (src/db/assessmentIngest.ts, inside its transaction): the update
 * kinds these assessments show for the first time get their first-seen date (when the report was
 * assessed, on the server's clock) and their verdicts under every baseline. Kinds are inserted in
 * key order so that two groups wait for each other in one order. The machines' state follows
 * (machineStateAfterIngest), once the verdicts are in.
 */
export async function recordFirstSeen(tx: ReservedSql | Sql, assessmentIds: readonly string[]): Promise<void> {
  if (assessmentIds.length === 0) return;
  // A name and version's advisory issue date is the one its first sighting gave (the earliest among
  // the reports that first showed it); a later kind of it copies that, null included. So an update
  // first reported without a date (an older agent, yum's text output) keeps its first-seen clock,
  // and no verdict stored before changes when a later report brings a date.
  const fresh = await tx<UpdateKind[]>`
    with seen as (
      select pu.name, pu.available_version as version, pu.classification::text as classification, coalesce(pu.severity::text, '') as severity, min(a.assessed_at) as first_seen_at,
        min(min(pu.advisory_issued_at)) over (partition by pu.name, pu.available_version) as advisory_issued_at
      from pending_updates pu join assessments a on a.id = pu.assessment_id
      where pu.assessment_id = any(${assessmentIds as string[]}::uuid[])
      group by 1, 2, 3, 4
      order by 1, 2, 3, 4
    ),
    inserted as (
      insert into update_first_seen (name, version, classification, severity, first_seen_at, advisory_issued_at)
      select s.name, s.version, s.classification, s.severity, s.first_seen_at,
        case when exists (select 1 from update_first_seen f where f.name = s.name and f.version = s.version)
          then (select min(f.advisory_issued_at) from update_first_seen f where f.name = s.name and f.version = s.version)
          else s.advisory_issued_at end
      from seen s on conflict do nothing
      returning name, version
    )
    select s.name, s.version, s.classification, s.severity
    from seen s join (select distinct name, version from inserted) i using (name, version)`;
  if (fresh.length > 0) {
    const rows = await tx<BaselineRow[]>`select id, name, os_type as "osType", tags, priority, rules, approved_patterns as "approvedPatterns", rejected_patterns as "rejectedPatterns", sla_targets as "slaTargets", time_zone as "timeZone" from baselines`;
    if (rows.length > 0) {
      const clocksQuery = dialect.sqlToQuery(updateClocksSql(sql`select * from unnest(${sql.param(fresh.map((k) => k.name))}::text[], ${sql.param(fresh.map((k) => k.version))}::text[])`));
      const clocks = clockMap(await tx.unsafe<ClockRow[]>(clocksQuery.sql, clocksQuery.params as never[]));
      await insertVerdicts(
        (batch) => tx`insert into baseline_verdicts (baseline_id, name, version, classification, severity, approved_at, due_at)
          select * from unnest(${batch.map((r) => r.baselineId)}::uuid[], ${batch.map((r) => r.name)}::text[], ${batch.map((r) => r.version)}::text[],
            ${batch.map((r) => r.classification)}::text[], ${batch.map((r) => r.severity)}::text[], ${batch.map((r) => r.approvedAt)}::text[]::timestamptz[], ${batch.map((r) => r.dueAt) as string[]}::text[]::timestamptz[])
          on conflict do nothing`,
        rows.map(asBaseline),
        fresh,
        clocks,
      );
    }
  }
}

/**
 * The kept state (non_compliant_from, sla_due_dates) of these machines, from their latest
 * assessment and their baseline's verdicts: the last part of storing assessments, after
 * recordFirstSeen. A query not yet sent (postgres.js sends it when awaited), so that the ingest can
 * send it with the statements that follow it and the commit in one round trip.
 */
export function machineStateAfterIngest(tx: ReservedSql | Sql, machineIds: readonly string[]) {
  return tx`
    update machines m set non_compliant_from = s.nc, sla_due_dates = s.due
    from (
      select m2.id,
        (select min(v.approved_at) from pending_updates pu join baseline_verdicts v on v.baseline_id = m2.baseline_id and v.name = pu.name and v.version = pu.available_version
            and v.classification = pu.classification::text and v.severity = coalesce(pu.severity::text, '')
          where pu.assessment_id = m2.latest_assessment_id) as nc,
        coalesce((select array_agg(d order by d) from (select min(v.due_at) as d from pending_updates pu join baseline_verdicts v on v.baseline_id = m2.baseline_id and v.name = pu.name and v.version = pu.available_version
            and v.classification = pu.classification::text and v.severity = coalesce(pu.severity::text, '')
          where pu.assessment_id = m2.latest_assessment_id and v.due_at is not null group by pu.name) x), '{}') as due
      from machines m2 where m2.id = any(${machineIds as string[]}::uuid[]) and m2.baseline_id is not null
    ) s
    where m.id = s.id and (m.non_compliant_from is distinct from s.nc or m.sla_due_dates is distinct from s.due)`;
}

/**
 * For planning and the compliance reason: each machine's baseline row (null: built-in) and the clock
 * inputs of the updates its latest assessment lists (keyed by clockKey; the same read as the stored
 * verdicts', updateClocksSql).
 */
export async function baselineInputs(db: Db, machineIds: readonly string[]): Promise<{ baselineOf: Map<string, Baseline | null>; clocks: Map<string, UpdateClockInputs> }> {
  const baselineOf = new Map<string, Baseline | null>();
  if (machineIds.length === 0) return { baselineOf, clocks: new Map() };
  const ids = sql.param([...machineIds]);
  const [assigned, clocks] = await Promise.all([
    db.select({ machineId: machines.id, baseline: baselines }).from(machines).leftJoin(baselines, eq(baselines.id, machines.baselineId)).where(sql`${machines.id} = any(${ids}::uuid[])`),
    db.execute<ClockRow>(
      updateClocksSql(sql`select pu.name, pu.available_version from ${machines} m join ${pendingUpdates} pu on pu.assessment_id = m.latest_assessment_id where m.id = any(${ids}::uuid[])`),
    ),
  ]);
  for (const row of assigned) baselineOf.set(row.machineId, row.baseline ? asBaseline(row.baseline) : null);
  return { baselineOf, clocks: clockMap(clocks) };
}
