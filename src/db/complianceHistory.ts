import { and, asc, between, eq, inArray, lt, sql } from 'drizzle-orm';
import type { FleetThresholds } from '../fleet/compliance.js';
import {
  MAX_TAG_GROUPS,
  complianceSnapshotRows,
  snapshotAction,
  snapshotDay,
  type ClassificationOverdue,
  type ComplianceCell,
  type HistoryGroupBy,
  type HistoryRow,
  type SnapshotTrigger,
} from '../fleet/complianceHistory.js';
import type { Compliance } from '../fleet/compliance.js';
import type { Db } from './client.js';
import { complianceSql, overdueSql, overdueUpdatesSql } from './fleetSql.js';
import { CLASS_COUNTS } from './machines.js';
import { baselines, complianceHistory, complianceSnapshots } from './schema.js';

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export type ComplianceSnapshotRow = typeof complianceSnapshots.$inferSelect;

/**
 * The fleet's machines counted into cells (src/fleet/complianceHistory.ts, ComplianceCell): one pass
 * over live machines, kept by PostgreSQL (a materialised CTE spills to disk, not into this process),
 * then grouped three ways: the whole fleet, each baseline, each of the MAX_TAG_GROUPS most carried
 * tags. At most (2 + baselines + tags) × 3 rows come back, whatever the fleet's size.
 */
async function complianceCells(tx: Tx, now: Date, thresholds: FleetThresholds): Promise<ComplianceCell[]> {
  const classColumns = sql.join(
    CLASS_COUNTS.map(([, column], i) => sql`${column} as ${sql.raw(`c${i}`)}`),
    sql`, `,
  );
  const classAggregates = sql.join(
    CLASS_COUNTS.map((_, i) => sql.raw(`coalesce(sum(c${i}), 0)::int as u${i}, (count(*) filter (where c${i} > 0))::int as m${i}`)),
    sql`, `,
  );
  const measures = sql`count(*)::int as machines, (count(*) filter (where overdue))::int as overdue_machines, coalesce(sum(overdue_updates), 0)::int as overdue_updates, ${classAggregates}`;
  const rows = await tx.execute<Record<string, unknown> & { kind: ComplianceCell['kind']; key: string; compliance: Compliance; machines: number; overdue_machines: number; overdue_updates: number }>(sql`
    with m as materialized (
      select coalesce(machines.baseline_id::text, '') as baseline, machines.tags,
        ${complianceSql(now, thresholds)} as compliance,
        ${overdueSql(now)} as overdue,
        -- Only an overdue machine's due dates are opened: the others cost one comparison.
        ${overdueUpdatesSql(now)} as overdue_updates,
        ${classColumns}
      from machines where machines.removed_at is null
    ),
    top_tags as (
      select t.tag from m cross join unnest(m.tags) t(tag) group by t.tag order by count(*) desc, t.tag limit ${MAX_TAG_GROUPS}
    )
    select 'FLEET' as kind, '' as key, compliance, ${measures} from m group by compliance
    union all
    select 'BASELINE', baseline, compliance, ${measures} from m group by baseline, compliance
    union all
    select 'TAG', t.tag, compliance, ${measures} from m cross join unnest(m.tags) t(tag) where t.tag in (select tag from top_tags) group by t.tag, compliance`);
  return rows.map((r) => ({
    kind: r.kind,
    key: r.key,
    compliance: r.compliance,
    machines: r.machines,
    overdueMachines: r.overdue_machines,
    overdueUpdates: r.overdue_updates,
    classes: Object.fromEntries(CLASS_COUNTS.map(([classification], i) => [classification, { updates: r[`u${i}`] as number, machines: r[`m${i}`] as number }])),
  }));
}

/**
 * Overdue updates per classification: the overdue machines' pending updates whose baseline verdict
 * is due. Only overdue machines are opened (their earliest due date is kept on the machine); an
 * update listed for two architectures counts once, as in the machines' own overdue counts.
 */
async function overdueByClassification(tx: Tx, now: Date): Promise<ClassificationOverdue[]> {
  const rows = await tx.execute<{ classification: string; machines: number; updates: number }>(sql`
    select pu.classification::text as classification, count(distinct machines.id)::int as machines, count(distinct (machines.id, pu.name))::int as updates
    from machines
    join pending_updates pu on pu.assessment_id = machines.latest_assessment_id
    join baseline_verdicts v on v.baseline_id = machines.baseline_id and v.name = pu.name and v.version = pu.available_version
      and v.classification = pu.classification::text and v.severity = coalesce(pu.severity::text, '')
    where machines.removed_at is null and ${overdueSql(now)} and v.due_at <= ${now.toISOString()}::timestamptz
    group by pu.classification`);
  return rows.map((r) => ({ classification: r.classification, machines: r.machines, updates: r.updates }));
}

export interface SnapshotOutcome {
  day: string;
  /** TAKE: the day's first; REPLACE: an on-demand one replaced the day's; SKIP: the day had one (kept). */
  action: 'TAKE' | 'REPLACE' | 'SKIP';
  snapshot: ComplianceSnapshotRow;
  rows: number;
}

/**
 * Takes the snapshot of `now`'s day, once per day: the day's row in compliance_snapshots is inserted
 * first, so that two workers running the daily snapshot at once queue on it and the second finds
 * the day taken (SKIP); an on-demand snapshot replaces the day's rows. All in one transaction: a
 * snapshot that fails leaves the day as it was.
 */
export async function takeComplianceSnapshot(db: Db, options: { now: Date; thresholds: FleetThresholds; trigger: SnapshotTrigger }): Promise<SnapshotOutcome> {
  const { now, thresholds, trigger } = options;
  const day = snapshotDay(now);
  return db.transaction(async (tx) => {
    const inserted = await tx.insert(complianceSnapshots).values({ day, takenAt: now, trigger, computeMs: 0 }).onConflictDoNothing().returning();
    let action: SnapshotOutcome['action'] = 'TAKE';
    if (inserted.length === 0) {
      const [existing] = await tx.select().from(complianceSnapshots).where(eq(complianceSnapshots.day, day)).for('update');
      action = snapshotAction(trigger, true);
      if (action === 'SKIP') return { day, action, snapshot: existing!, rows: 0 };
      await tx.delete(complianceHistory).where(eq(complianceHistory.day, day));
    }
    const started = performance.now();
    const [cells, overdue, named] = await Promise.all([
      complianceCells(tx, now, thresholds),
      overdueByClassification(tx, now),
      tx.select({ id: baselines.id, name: baselines.name }).from(baselines),
    ]);
    const rows = complianceSnapshotRows(cells, overdue, new Map(named.map((b) => [b.id, b.name])));
    if (rows.length > 0) await tx.insert(complianceHistory).values(rows.map((r) => ({ day, ...r })));
    const computeMs = Math.round(performance.now() - started);
    const [snapshot] = await tx.update(complianceSnapshots).set({ takenAt: now, trigger, computeMs }).where(eq(complianceSnapshots.day, day)).returning();
    return { day, action, snapshot: snapshot!, rows: rows.length };
  });
}

/** The stored rows of one kind of group from `from` to `to` (days, both included), and the snapshots of those days. */
export async function readComplianceHistory(db: Db, query: { from: string; to: string; groupBy: HistoryGroupBy }): Promise<{ rows: Array<HistoryRow & { day: string }>; snapshots: ComplianceSnapshotRow[] }> {
  const [rows, snapshots] = await Promise.all([
    db
      .select()
      .from(complianceHistory)
      .where(and(eq(complianceHistory.groupBy, query.groupBy), between(complianceHistory.day, query.from, query.to)))
      .orderBy(asc(complianceHistory.day), asc(complianceHistory.key)),
    db.select().from(complianceSnapshots).where(between(complianceSnapshots.day, query.from, query.to)).orderBy(asc(complianceSnapshots.day)),
  ]);
  return { rows: rows.map((r) => ({ ...r, groupBy: r.groupBy as HistoryGroupBy })), snapshots };
}

/**
 * Deletes the snapshots of days before `cutoff` (YYYY-MM-DD) and their rows, `batchDays` days per
 * transaction, oldest first, until none is left: each batch is a bounded delete (a few hundred rows
 * a day), so a long backlog never holds one long lock, and a run stopped halfway leaves whole days.
 * A day being snapshotted is never before the cutoff. How many days and history rows went.
 */
export async function pruneComplianceHistory(db: Db, cutoff: string, batchDays: number): Promise<{ days: number; rows: number }> {
  let days = 0;
  let rows = 0;
  for (;;) {
    const batch = await db.transaction(async (tx) => {
      const doomed = await tx
        .select({ day: complianceSnapshots.day })
        .from(complianceSnapshots)
        .where(lt(complianceSnapshots.day, cutoff))
        .orderBy(asc(complianceSnapshots.day))
        .limit(batchDays)
        .for('update', { skipLocked: true });
      if (doomed.length === 0) return { days: 0, rows: 0 };
      const list = doomed.map((d) => d.day);
      const history = await tx.delete(complianceHistory).where(inArray(complianceHistory.day, list)).returning({ day: complianceHistory.day });
      await tx.delete(complianceSnapshots).where(inArray(complianceSnapshots.day, list));
      return { days: list.length, rows: history.length };
    });
    days += batch.days;
    rows += batch.rows;
    if (batch.days < batchDays) return { days, rows };
  }
}
