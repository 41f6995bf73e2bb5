import { and, asc, eq, inArray, isNull, ne, or, sql, type SQL } from 'drizzle-orm';
import { alias } from 'drizzle-orm/pg-core';
import type { InstallJob, JobResult } from '../domain/types.js';
import type { MachineRunStatus } from '../fleet/planning.js';
import type { StepResult } from '../fleet/steps.js';
import type { PostScriptsJob, StepEnd } from '../fleet/batchedRun.js';
import { settledMachineRunStatus, settleUnreportedUpdate, UNSETTLED_UPDATE_STATUSES } from '../fleet/settle.js';
import { isMachineRunFailure } from '../fleet/webhooks.js';
import { insertInstallJobs } from './agentCommands.js';
import type { Db } from './client.js';
import { insertRunLogs } from './runLogs.js';
import { recordRunProgress, type NewRunProgress, type RunProgressEvent } from './runProgress.js';
import { agentCommands, machineRuns, machines, updateResults } from './schema.js';

/** A machine run's POST-scripts job (agent_commands.post_steps_machine_run_id), beside its install job. */
const postJobs = alias(agentCommands, 'post_jobs');
import { recordRunWebhookEvent } from './webhooks.js';

/**
 * The rows a batched run (docs/deployments.md) works on: its machine runs paged by key, never the
 * whole list. Every read here is bounded by what runs at once or by the page asked for, through the
 * partial indexes on machine_runs (migrations/0028_batched_runs.sql).
 */

/** A ring's machine runs (1-based), those of a run without rings (null), or of every ring (undefined). */
function ofRing(ring: number | null | undefined): SQL | undefined {
  if (ring === undefined) return undefined;
  return ring === null ? isNull(machineRuns.ring) : eq(machineRuns.ring, ring);
}

/**
 * The next machine runs to start, in machine name order: the head of the run's (or ring's) PENDING
 * ones, or those after `after` (a machine run's key, machine name and id) when given.
 */
export function pendingMachineRunsPage(db: Db, runId: string, ring: number | null | undefined, limit: number, after?: MachineRunKey | null) {
  return db
    .select({ machineRunId: machineRuns.id, machineId: machineRuns.machineId, machineName: machineRuns.machineName })
    .from(machineRuns)
    .where(and(eq(machineRuns.runId, runId), ofRing(ring), eq(machineRuns.status, 'PENDING'), after ? sql`(${machineRuns.machineName}, ${machineRuns.id}) > (${after.name}, ${after.id}::uuid)` : undefined))
    .orderBy(asc(machineRuns.machineName), asc(machineRuns.id))
    .limit(limit);
}

/**
 * The run's (or ring's, or every ring's: undefined) PENDING machine runs whose PRE calls an advance made (their results
 * recorded) without then starting or ending them (src/fleet/batchedRun.ts preCallsMade), in machine
 * name order; at most `limit`. Read along machine_runs_pending_idx: the run's PENDING rows, once
 * per advance.
 */
export async function pendingMachineRunsUnderWay(db: Db, runId: string, ring: number | null | undefined, limit: number) {
  return db
    .select({ machineRunId: machineRuns.id, machineId: machineRuns.machineId, machineName: machineRuns.machineName, stepResults: machineRuns.stepResults })
    .from(machineRuns)
    .where(and(eq(machineRuns.runId, runId), ofRing(ring), eq(machineRuns.status, 'PENDING'), sql`${machineRuns.stepResults} @> '[{"phase":"PRE"}]'::jsonb`))
    .orderBy(asc(machineRuns.machineName), asc(machineRuns.id))
    .limit(limit);
}

/** Where a machine run stands in its run's order (machine name, then its id). */
export interface MachineRunKey {
  name: string;
  id: string;
}

/** Machine runs of the run (or ring) that have started and not ended, unordered; at most `limit`. */
export function runningMachineRunIds(db: Db, runId: string, ring: number | null | undefined, limit: number) {
  return db
    .select({ machineRunId: machineRuns.id })
    .from(machineRuns)
    .where(and(eq(machineRuns.runId, runId), ofRing(ring), isNull(machineRuns.endedAt), ne(machineRuns.status, 'PENDING')))
    .limit(limit);
}

/**
 * The step results of the run's (or ring's) machine runs that hold a failed HALT_RUN step, oldest
 * end first (src/fleet/batchedRun.ts haltsOf reads why from them). Few rows: a run halts at its
 * first ones. The containment test reads the run's machine runs, once per advance.
 */
export async function stepResultsWithHalts(db: Db, runId: string, ring: number | null): Promise<Array<{ machineRunId: string; stepResults: StepResult[] }>> {
  const rows = await db
    .select({ machineRunId: machineRuns.id, stepResults: machineRuns.stepResults })
    .from(machineRuns)
    .where(and(eq(machineRuns.runId, runId), ofRing(ring), sql`${machineRuns.stepResults} @> '[{"onFailure":"HALT_RUN","status":"FAILED"}]'::jsonb`))
    .orderBy(sql`${machineRuns.endedAt} asc nulls last`, asc(machineRuns.id));
  return rows;
}

/** How many of the run's (or ring's) machine runs are running, and how many ended in one of `failedStatuses`. */
export async function batchCounts(db: Db, runId: string, ring: number | null, failedStatuses: readonly string[]): Promise<{ running: number; failed: number }> {
  const where = and(eq(machineRuns.runId, runId), ofRing(ring));
  const [[running], [failed]] = await Promise.all([
    db.select({ n: sql<number>`count(*)::int` }).from(machineRuns).where(and(where, isNull(machineRuns.endedAt), ne(machineRuns.status, 'PENDING'))),
    db
      .select({ n: sql<number>`count(*)::int` })
      .from(machineRuns)
      .where(and(where, inArray(machineRuns.status, failedStatuses as Array<typeof machineRuns.$inferSelect.status>))),
  ]);
  return { running: running?.n ?? 0, failed: failed?.n ?? 0 };
}

/** A running machine run as the advance decides on it (batchedRun.ts's RunningMachine, with its keys). */
export interface RunningMachineRow {
  machineRunId: string;
  machineId: string;
  machineName: string;
  status: 'IN_PROGRESS' | 'REBOOTING';
  /** The steps recorded so far (a run whose install job carries PRE scripts records theirs from its result). */
  stepResults: StepResult[];
  commandId: string | null;
  result: JobResult | null;
  lastHeardAtMs: number;
  reoffered: boolean;
  rebootByMs: number | null;
  bootIdNow: string | null;
  /** Its POST scripts went to its agent as a job of their own (a run with POST scripts): that job, and how the machine ends once they report. */
  postScripts: { job: PostScriptsJob; end: StepEnd } | null;
}

/**
 * The running machine runs of the run (or ring) that may need something: a result came, a reboot
 * is awaited, the agent has been silent longer than `silentSeconds`, the job is missing, or the
 * install's deadline has passed. Other running machines only wait, and are not read. `nowMs`: the
 * database's clock, which the silences are measured by.
 */
export async function runningMachinesToLookAt(db: Db, runId: string, ring: number | null, silentSeconds: number, deadline: Date, postMarginSeconds: number): Promise<{ nowMs: number; rows: RunningMachineRow[] }> {
  const rows = await db
    .select({
      machineRunId: machineRuns.id,
      machineId: machineRuns.machineId,
      machineName: machineRuns.machineName,
      status: machineRuns.status,
      stepResults: machineRuns.stepResults,
      commandId: agentCommands.id,
      result: agentCommands.result,
      lastHeardAt: agentCommands.lastHeardAt,
      createdAt: agentCommands.createdAt,
      reofferedAt: agentCommands.reofferedAt,
      rebootBy: machineRuns.rebootBy,
      bootIdNow: machines.bootId,
      postScriptsEnd: machineRuns.postScriptsEnd,
      postJobId: postJobs.id,
      postResult: postJobs.result,
      postLastHeardAt: postJobs.lastHeardAt,
      postCreatedAt: postJobs.createdAt,
      postReofferedAt: postJobs.reofferedAt,
      postDeadline: sql<string | null>`${postJobs.payload}->>'deadline'`,
      nowMs: sql<number>`(extract(epoch from now()) * 1000)::float8`,
    })
    .from(machineRuns)
    .leftJoin(agentCommands, eq(agentCommands.machineRunId, machineRuns.id))
    .leftJoin(postJobs, eq(postJobs.postStepsMachineRunId, machineRuns.id))
    .leftJoin(machines, eq(machines.id, machineRuns.machineId))
    .where(
      and(
        eq(machineRuns.runId, runId),
        ofRing(ring),
        isNull(machineRuns.endedAt),
        ne(machineRuns.status, 'PENDING'),
        // A machine waiting on its POST scripts is read for that job only (its install's result is in, and stays so).
        sql`case when ${postJobs.id} is null then
            ${agentCommands.id} is null or ${agentCommands.result} is not null or ${machineRuns.status} = 'REBOOTING'
            or coalesce(${agentCommands.lastHeardAt}, ${agentCommands.createdAt}) < now() - make_interval(secs => ${silentSeconds})
            or now() > ${deadline.toISOString()}::timestamptz
          else
            ${postJobs.result} is not null
            or coalesce(${postJobs.lastHeardAt}, ${postJobs.createdAt}) < now() - make_interval(secs => ${silentSeconds})
            or now() > (${postJobs.payload}->>'deadline')::timestamptz + make_interval(secs => ${postMarginSeconds})
          end`,
      ),
    );
  const nowMs = rows.length > 0 ? Number(rows[0]!.nowMs) : Number([...(await db.execute<{ now_ms: number }>(sql`select (extract(epoch from now()) * 1000)::float8 as now_ms`))][0]!.now_ms);
  return {
    nowMs,
    rows: rows.map((r) => ({
      machineRunId: r.machineRunId,
      machineId: r.machineId,
      machineName: r.machineName,
      status: r.status as 'IN_PROGRESS' | 'REBOOTING',
      stepResults: r.stepResults,
      commandId: r.commandId,
      result: (r.result as JobResult | null) ?? null,
      lastHeardAtMs: (r.lastHeardAt ?? r.createdAt ?? new Date(0)).getTime(),
      reoffered: r.reofferedAt !== null,
      rebootByMs: r.rebootBy?.getTime() ?? null,
      bootIdNow: r.bootIdNow ?? null,
      postScripts:
        r.postJobId !== null && r.postScriptsEnd
          ? {
              job: {
                result: (r.postResult as JobResult | null) ?? null,
                lastHeardAtMs: (r.postLastHeardAt ?? r.postCreatedAt ?? new Date(0)).getTime(),
                reoffered: r.postReofferedAt !== null,
                deadlineMs: r.postDeadline ? Date.parse(r.postDeadline) : 0,
              },
              end: r.postScriptsEnd,
            }
          : null,
    })),
  };
}

/**
 * Starts machine runs of a batched run: each still PENDING is set IN_PROGRESS and its job handed
 * over, in one transaction, with a log line each and the progress events (RUN, LINES). A machine
 * run that is no longer PENDING (a cancel ended it meanwhile) gets no job: the claim and the job go
 * together, so an agent never receives the job of a machine run that ended.
 */
export async function startMachineRuns(
  db: Db,
  runId: string,
  jobs: Array<{ machineId: string; machineRunId: string; job: InstallJob; logLine: string }>,
  traceparent: string | null = null,
): Promise<{ commands: Array<{ id: string; machineId: string; machineRunId: string; created: boolean }>; progress: RunProgressEvent[] }> {
  if (jobs.length === 0) return { commands: [], progress: [] };
  return db.transaction(async (tx) => {
    const claimed = await tx
      .update(machineRuns)
      .set({ status: 'IN_PROGRESS', startedAt: sql`coalesce(${machineRuns.startedAt}, now())` })
      .where(and(inArray(machineRuns.id, jobs.map((j) => j.machineRunId)), eq(machineRuns.status, 'PENDING')))
      .returning({ id: machineRuns.id });
    const ids = new Set(claimed.map((c) => c.id));
    const mine = jobs.filter((j) => ids.has(j.machineRunId));
    if (mine.length === 0) return { commands: [], progress: [] };
    const commands = await insertInstallJobs(tx as unknown as Db, mine, traceparent);
    const lines = await insertRunLogs(tx as unknown as Db, mine.map((j) => ({ runId, machineRunId: j.machineRunId, stream: 'server', line: j.logLine })));
    const progress = await recordRunProgress(tx as unknown as Db, runId, [{ kind: 'RUN' }, { kind: 'LINES', lineIds: [lines[0]!.id, lines.at(-1)!.id] }]);
    return { commands, progress };
  });
}

/**
 * Hands machine runs of a batched run their POST scripts (a job without updates each) in one
 * transaction, with how each ends once they report (`end`, kept on its row) and a log line each. A
 * machine run still PENDING (its PRE steps stopped it before its install job) is started: it runs
 * its POST scripts as a started machine does. Each machine run gets the job once (a retried
 * advance finds it handed out); one that ended meanwhile gets none. Answers the commands handed
 * out and how many machine runs were started.
 */
export async function handOutPostScripts(
  db: Db,
  runId: string,
  jobs: Array<{ machineId: string; machineRunId: string; job: InstallJob; end: StepEnd; logLine: string }>,
  traceparent: string | null = null,
): Promise<{ commands: Array<{ id: string; machineId: string }>; started: number; progress: RunProgressEvent[] }> {
  if (jobs.length === 0) return { commands: [], started: 0, progress: [] };
  return db.transaction(async (tx) => {
    const rows = jobs.map((j) => ({ id: j.machineRunId, end: j.end }));
    // The rows locked first, in id order (as every writer of many machine runs locks them), their status before the change read there.
    const claimed = await tx.execute<{ id: string; started: boolean }>(sql`
      with v as (select * from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as v(id uuid, "end" jsonb)),
      before as (
        select m.id, m.status from ${machineRuns} m join v on v.id = m.id
        where m.ended_at is null order by m.id for update of m)
      update ${machineRuns} as m
      set post_scripts_end = coalesce(m.post_scripts_end, v."end"),
          status = case when before.status = 'PENDING' then 'IN_PROGRESS'::machine_run_status else m.status end,
          started_at = coalesce(m.started_at, now())
      from v join before on before.id = v.id
      where m.id = v.id
      returning m.id, before.status = 'PENDING' as started`);
    const ids = new Set([...claimed].map((c) => c.id));
    const mine = jobs.filter((j) => ids.has(j.machineRunId));
    if (mine.length === 0) return { commands: [], started: 0, progress: [] };
    const created = await tx
      .insert(agentCommands)
      .values(mine.map((j) => ({ machineId: j.machineId, kind: 'INSTALL' as const, postStepsMachineRunId: j.machineRunId, payload: j.job, traceparent })))
      .onConflictDoNothing({ target: agentCommands.postStepsMachineRunId })
      .returning({ id: agentCommands.id, machineId: agentCommands.machineId, machineRunId: agentCommands.postStepsMachineRunId });
    const fresh = new Set(created.map((c) => c.machineRunId));
    const logged = mine.filter((j) => fresh.has(j.machineRunId));
    const lines = await insertRunLogs(tx as unknown as Db, logged.map((j) => ({ runId, machineRunId: j.machineRunId, stream: 'server', line: j.logLine })));
    const events: NewRunProgress[] = [{ kind: 'RUN' }, ...(lines.length > 0 ? [{ kind: 'LINES' as const, lineIds: [lines[0]!.id, lines.at(-1)!.id] as [number, number] }] : [])];
    const progress = await recordRunProgress(tx as unknown as Db, runId, events);
    return { commands: created.map((c) => ({ id: c.id, machineId: c.machineId })), started: [...claimed].filter((c) => c.started).length, progress };
  });
}

/**
 * After a first silence: the job offered again if its agent never reported on it (the answer that
 * carried it may have been lost with an API process; the agent keeps a job it has by its id, so
 * nothing installs twice), and the silence counted from now. Once per job.
 */
export async function reofferJob(db: Db, machineRunId: string, job: 'INSTALL' | 'POST_SCRIPTS' = 'INSTALL'): Promise<{ id: string; machineId: string; reoffered: boolean } | undefined> {
  const unreported = sql`${agentCommands.lastEventSeq} = 0 and ${agentCommands.result} is null and ${agentCommands.canceledAt} is null`;
  const [row] = await db
    .update(agentCommands)
    .set({ reofferedAt: sql`now()`, lastHeardAt: sql`now()`, deliveredAt: sql`case when ${unreported} then null else ${agentCommands.deliveredAt} end` })
    .where(and(job === 'INSTALL' ? eq(agentCommands.machineRunId, machineRunId) : eq(agentCommands.postStepsMachineRunId, machineRunId), eq(agentCommands.kind, 'INSTALL'), isNull(agentCommands.reofferedAt)))
    .returning({ id: agentCommands.id, machineId: agentCommands.machineId, reoffered: sql<boolean>`${unreported}` });
  return row;
}

/** How one machine run of a batched run ends: what happened around its updates (settledMachineRunStatus), and what is recorded beside its status. */
export interface MachineRunEnd {
  machineRunId: string;
  timedOut?: boolean;
  rebootFailed?: boolean;
  agentLost?: boolean;
  canceled?: boolean;
  jobFailed?: boolean;
  rebootOutcome?: string | null;
  error?: string | null;
}

/** Machine runs ended per transaction, at most: a burst of thousands ends in a few commits, each short. */
export const FINISH_PAGE = 250;

/**
 * Ends machine runs of one run together, in one transaction (finishMachineRun in src/db/runs.ts,
 * for many): each one's status from its updates and its end (settledMachineRunStatus), its
 * unreported updates settled, its jobs withdrawn, a line of its end in its job stream (`logLine`),
 * a webhook event for a failure, and the progress events (LINES, MACHINE) recorded once, last. A
 * machine run that has already ended (a retried or racing advance) is left as it is and announces
 * nothing. Answers each machine run's status, in the order given. At most FINISH_PAGE at once.
 */
export async function finishMachineRuns(
  db: Db,
  runId: string,
  ends: readonly MachineRunEnd[],
  logLine: (row: { machineName: string; status: MachineRunStatus }, end: MachineRunEnd) => string,
): Promise<{ statuses: Array<MachineRunStatus | undefined>; progress: RunProgressEvent[] }> {
  if (ends.length === 0) return { statuses: [], progress: [] };
  if (ends.length > FINISH_PAGE) throw new Error(`finishMachineRuns: at most ${FINISH_PAGE} machine runs at once, got ${ends.length}`);
  const ids = [...new Set(ends.map((e) => e.machineRunId))].sort();
  return db.transaction(async (tx) => {
    // Locked in one order, as every advance locks them: a machine run ends once.
    const current = await tx
      .select({ id: machineRuns.id, status: machineRuns.status, endedAt: machineRuns.endedAt, machineName: machineRuns.machineName })
      .from(machineRuns)
      .where(and(inArray(machineRuns.id, ids), eq(machineRuns.runId, runId)))
      .orderBy(asc(machineRuns.id))
      .for('update');
    const byId = new Map(current.map((row) => [row.id, row]));
    const open = ends.filter((e, i) => {
      const row = byId.get(e.machineRunId);
      // The first end given for a machine run counts; one that has ended keeps its status.
      return row !== undefined && row.endedAt === null && ends.findIndex((other) => other.machineRunId === e.machineRunId) === i;
    });
    const statuses = new Map<string, MachineRunStatus>(current.map((row) => [row.id, row.status]));
    if (open.length === 0) return { statuses: ends.map((e) => statuses.get(e.machineRunId)), progress: [] };
    const openIds = open.map((e) => e.machineRunId);
    const updates = await tx.select({ machineRunId: updateResults.machineRunId, status: updateResults.status }).from(updateResults).where(inArray(updateResults.machineRunId, openIds));
    const updatesOf = new Map<string, string[]>();
    for (const u of updates) updatesOf.set(u.machineRunId, [...(updatesOf.get(u.machineRunId) ?? []), u.status]);
    const decided = open.map((end) => ({
      end,
      status: settledMachineRunStatus(updatesOf.get(end.machineRunId) ?? [], {
        timedOut: end.timedOut ?? false,
        rebootFailed: end.rebootFailed ?? false,
        agentLost: end.agentLost ?? false,
        canceled: end.canceled ?? false,
        jobFailed: end.jobFailed ?? false,
      }),
    }));
    // Unreported updates settled as src/fleet/settle.ts says, in one statement for all.
    const settled = decided.flatMap(({ end }) =>
      UNSETTLED_UPDATE_STATUSES.map((from) => {
        const to = settleUnreportedUpdate(from, end.error ?? null)!;
        return { machine_run_id: end.machineRunId, from_status: from, status: to.status, reason: to.status === 'NOT_ATTEMPTED' ? to.reason : null, error_text: to.status === 'FAILED' ? to.errorText : null };
      }),
    );
    await tx.execute(sql`
      update ${updateResults} as u
      set status = s.status::update_result_status,
        reason = case when s.status = 'NOT_ATTEMPTED' then s.reason else u.reason end,
        error_text = case when s.status = 'NOT_ATTEMPTED' then u.error_text else s.error_text end,
        ended_at = case when s.status = 'NOT_ATTEMPTED' then u.ended_at else now() end
      from jsonb_to_recordset(${JSON.stringify(settled)}::jsonb) as s(machine_run_id uuid, from_status text, status text, reason text, error_text text)
      where u.machine_run_id = s.machine_run_id and u.status::text = s.from_status`);
    const values = decided.map(({ end, status }) => ({ id: end.machineRunId, status, reboot_outcome: end.rebootOutcome ?? null, error: end.error ?? null }));
    const rows = await tx.execute<{ id: string; machine_id: string; machine_name: string; status: MachineRunStatus; error: string | null }>(sql`
      update ${machineRuns} as m
      set status = v.status::machine_run_status, reboot_outcome = v.reboot_outcome, error = v.error, ended_at = now(), started_at = coalesce(m.started_at, now())
      from jsonb_to_recordset(${JSON.stringify(values)}::jsonb) as v(id uuid, status text, reboot_outcome text, error text)
      where m.id = v.id
      returning m.id, m.machine_id, m.machine_name, m.status, m.error`);
    const ended = new Map([...rows].map((row) => [row.id, row]));
    // The jobs are withdrawn: an agent that comes back late must not start them.
    await tx
      .update(agentCommands)
      .set({ canceledAt: sql`coalesce(${agentCommands.canceledAt}, now())`, completedAt: sql`coalesce(${agentCommands.completedAt}, now())` })
      .where(or(inArray(agentCommands.machineRunId, openIds), inArray(agentCommands.postStepsMachineRunId, openIds)));
    for (const { end } of decided) {
      const row = ended.get(end.machineRunId)!;
      statuses.set(row.id, row.status);
      if (isMachineRunFailure(row.status)) {
        await recordRunWebhookEvent(tx as unknown as Db, runId, (run) => ({
          type: 'MACHINE_RUN_FAILED',
          run,
          machineRun: { id: row.id, machineId: row.machine_id, machineName: row.machine_name, status: row.status, error: row.error },
        }));
      }
    }
    const lines = await insertRunLogs(
      tx as unknown as Db,
      decided.map(({ end }) => ({ runId, machineRunId: end.machineRunId, stream: 'server', line: logLine({ machineName: ended.get(end.machineRunId)!.machine_name, status: ended.get(end.machineRunId)!.status }, end) })),
    );
    const events: NewRunProgress[] = lines.flatMap((line) => [
      { kind: 'LINES' as const, machineRunId: line.machineRunId, lineIds: [line.id, line.id] as [number, number] },
      { kind: 'MACHINE' as const, machineRunId: line.machineRunId },
    ]);
    return { statuses: ends.map((e) => statuses.get(e.machineRunId)), progress: await recordRunProgress(tx as unknown as Db, runId, events) };
  });
}
