import { and, asc, eq, gt, lte, sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { deploymentRuns, runProgressEvents } from './schema.js';

export type RunProgressKind = 'RUN' | 'MACHINE' | 'UPDATES' | 'LINES';

/** A change in a run, as `deploymentRunProgress` announces it: what changed, by id; the state is read when it is delivered. */
export interface RunProgressEvent {
  /** The event's number in its run: 1, 2, 3... in the order the changes committed, without gaps. */
  seq: number;
  kind: RunProgressKind;
  machineRunId: string | null;
  /** UPDATES: the names of the updates whose status changed. */
  updateNames: string[];
  /** LINES: the first and last id of the new job stream lines. */
  lineIds: [number, number] | null;
}

export type NewRunProgress = Pick<RunProgressEvent, 'kind'> & Partial<Omit<RunProgressEvent, 'seq' | 'kind'>>;

/**
 * Records progress events of a run and numbers them, in one statement: run it as the last
 * statement of the transaction that made the changes, so that the run's row (its progress_seq) is
 * locked only until that transaction commits, and an event exists exactly when its change does.
 * Events numbered N and N+1 commit in that order: whoever sees N+1 can read N. Nothing is recorded
 * for a run that does not exist.
 */
export async function recordRunProgress(db: Db, runId: string, events: readonly NewRunProgress[]): Promise<RunProgressEvent[]> {
  if (events.length === 0) return [];
  const rows = events.map((e, i) => ({
    i,
    kind: e.kind,
    machine_run_id: e.machineRunId ?? null,
    update_names: e.updateNames ?? [],
    first_line_id: e.lineIds?.[0] ?? null,
    last_line_id: e.lineIds?.[1] ?? null,
  }));
  const numbered = await db.execute<{ seq: number; kind: RunProgressKind; machine_run_id: string | null; update_names: string[]; first_line_id: string | number | null; last_line_id: string | number | null }>(sql`
    with head as (
      update ${deploymentRuns} set progress_seq = progress_seq + ${events.length} where id = ${runId} returning progress_seq
    )
    insert into ${runProgressEvents} (run_id, seq, kind, machine_run_id, update_names, first_line_id, last_line_id)
    select ${runId}, head.progress_seq - ${events.length} + 1 + e.i, e.kind, e.machine_run_id, e.update_names, e.first_line_id, e.last_line_id
    from head, jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as e(i int, kind text, machine_run_id uuid, update_names text[], first_line_id bigint, last_line_id bigint)
    returning seq, kind, machine_run_id, update_names, first_line_id, last_line_id`);
  return [...numbered].map(eventOf).sort((a, b) => a.seq - b.seq);
}

function eventOf(row: { seq: number; kind: string; machine_run_id: string | null; update_names: string[]; first_line_id: string | number | null; last_line_id: string | number | null }): RunProgressEvent {
  return {
    seq: Number(row.seq),
    kind: row.kind as RunProgressKind,
    machineRunId: row.machine_run_id,
    updateNames: row.update_names,
    lineIds: row.first_line_id === null || row.last_line_id === null ? null : [Number(row.first_line_id), Number(row.last_line_id)],
  };
}

/** Progress events of a run numbered after `afterSeq` (up to `throughSeq` when given), in order, at most `limit`. */
export async function runProgressAfter(db: Db, runId: string, afterSeq: number, limit: number, throughSeq?: number): Promise<RunProgressEvent[]> {
  const conditions = [eq(runProgressEvents.runId, runId), gt(runProgressEvents.seq, afterSeq)];
  if (throughSeq !== undefined) conditions.push(lte(runProgressEvents.seq, throughSeq));
  const rows = await db
    .select({
      seq: runProgressEvents.seq,
      kind: runProgressEvents.kind,
      machine_run_id: runProgressEvents.machineRunId,
      update_names: runProgressEvents.updateNames,
      first_line_id: runProgressEvents.firstLineId,
      last_line_id: runProgressEvents.lastLineId,
    })
    .from(runProgressEvents)
    .where(and(...conditions))
    .orderBy(asc(runProgressEvents.seq))
    .limit(limit);
  return rows.map(eventOf);
}

/** The number of the run's last progress event (0: none yet); undefined when the run does not exist. */
export async function lastRunProgressSeq(db: Db, runId: string): Promise<number | undefined> {
  const [row] = await db.select({ seq: deploymentRuns.progressSeq }).from(deploymentRuns).where(eq(deploymentRuns.id, runId));
  return row?.seq;
}
