import { eq, sql } from 'drizzle-orm';
import type { JobEvents, JobResult, JobUpdateState } from '../domain/types.js';
import { learnDuration, measuredSeconds, type LearnedDuration } from '../fleet/durations.js';
import type { Db } from './client.js';
import { insertRunLogs } from './runLogs.js';
import { recordRunProgress, type NewRunProgress, type RunProgressEvent } from './runProgress.js';
import { agentCommands, machineRuns, updateDurations, updateResults } from './schema.js';

/** The machine run an agent's job report is about, and the install activity (if any) that waits for it. */
export interface JobTarget {
  commandId: string;
  machineRunId: string;
  runId: string;
  taskToken: string | null;
}

/** What an agent reports on one of its jobs: a batch of progress, or the result. */
export type JobReport =
  | { kind: 'EVENTS'; machineId: string; commandId: string; events: JobEvents }
  | { kind: 'RESULT'; machineId: string; commandId: string; result: Omit<JobResult, 'events'>; events?: JobEvents };

/**
 * A report's outcome. undefined: no such job of this machine. WITHDRAWN: its machine run ended (the
 * agent must install nothing more of it). Otherwise the job, and whether this report changed
 * anything (`applied`: a batch not applied before; `first`: the first result).
 */
export type JobReportOutcome = { target: JobTarget; applied: boolean; first: boolean } | 'WITHDRAWN' | undefined;

/**
 * Stores agents' reports on their jobs in one transaction (group commit: src/api/agent/groupCommit.ts),
 * in the order given for one job, and the progress events of each run recorded once, as the
 * transaction's last statement. Only the machine's own jobs are found.
 *
 * - A batch of progress (lines, update states) is applied once: batches carry increasing numbers
 *   and one already applied is skipped.
 * - A result is stored once (with the last batch it carries, applied first), settles its updates
 *   and learns their durations.
 * - A job whose machine run ended is WITHDRAWN: the agent must not go on with it (nor reboot for it).
 *
 * Answers each report's outcome, in order, and the progress events recorded, by run. Nothing of the
 * group is stored if a statement fails.
 */
export async function applyJobReports(db: Db, reports: readonly JobReport[]): Promise<{ outcomes: JobReportOutcome[]; progress: Map<string, RunProgressEvent[]> }> {
  if (reports.length === 0) return { outcomes: [], progress: new Map() };
  // Jobs locked in one order by every group: two groups at once never wait on each other in a cycle.
  const order = reports.map((_, i) => i).sort((a, b) => compare(reports[a]!.commandId, reports[b]!.commandId) || a - b);
  return db.transaction(async (tx) => {
    const outcomes: JobReportOutcome[] = new Array(reports.length);
    const events = new Map<string, NewRunProgress[]>();
    const states: Array<{ machineRunId: string; update: JobUpdateState }> = [];
    const measured: Array<{ machineId: string; name: string; seconds: number }> = [];
    const announce = (runId: string, progress: NewRunProgress) => {
      const list = events.get(runId) ?? [];
      list.push(progress);
      events.set(runId, list);
    };
    for (const i of order) {
      const report = reports[i]!;
      // The job, locked: its state (seq, result, withdrawn, the task token) is read under the lock.
      // A machine run's workflow that attaches to a job handed over in bulk sets the task token
      // concurrently, and either sees this result (and returns it) or its token is read here.
      const job = await lockedJob(tx as unknown as Db, report.machineId, report.commandId);
      if (!job) {
        outcomes[i] = undefined;
        continue;
      }
      const target: JobTarget = { commandId: job.commandId, machineRunId: job.machineRunId, runId: job.runId, taskToken: job.taskToken };
      /**
       * A batch not applied before: its lines and update states stored, and its number unless the
       * caller stores it (`seqStored`: with the result, in one statement).
       */
      const storeBatch = async (batch: JobEvents, seqStored = false): Promise<boolean> => {
        if (batch.seq <= job.lastEventSeq) return false;
        if (!seqStored) await tx.update(agentCommands).set({ lastEventSeq: batch.seq, lastHeardAt: sql`now()` }).where(eq(agentCommands.id, job.commandId));
        if (batch.lines.length > 0) {
          const inserted = await insertRunLogs(tx as unknown as Db, batch.lines.map((l) => ({ runId: job.runId, machineRunId: job.machineRunId, at: new Date(l.at), stream: l.stream, line: l.text })));
          announce(job.runId, { kind: 'LINES', machineRunId: job.machineRunId, lineIds: [inserted[0]!.id, inserted.at(-1)!.id] });
        }
        if (batch.updates.length > 0) announce(job.runId, { kind: 'UPDATES', machineRunId: job.machineRunId, updateNames: batch.updates.map((u) => u.name) });
        for (const update of batch.updates) states.push({ machineRunId: job.machineRunId, update });
        return true;
      };
      // Its machine run ended (and settled the updates): nothing more of the job is stored, and the
      // agent, told so, installs nothing more of it. A result stored before is answered as such.
      if (job.canceledAt && !(report.kind === 'RESULT' && job.result !== null)) {
        outcomes[i] = 'WITHDRAWN';
        continue;
      }
      if (report.kind === 'EVENTS') {
        outcomes[i] = { target, applied: await storeBatch(report.events), first: false };
      } else {
        if (job.result !== null) {
          outcomes[i] = { target, applied: false, first: false };
          continue;
        }
        // The job's last batch, when the result carries it, goes first.
        const { result, events: last } = report;
        const lastApplied = last ? await storeBatch(last, true) : false;
        await tx
          .update(agentCommands)
          .set({ result, completedAt: sql`coalesce(${agentCommands.completedAt}, now())`, ...(lastApplied ? { lastEventSeq: last!.seq, lastHeardAt: sql`now()` } : {}) })
          .where(eq(agentCommands.id, job.commandId));
        for (const update of result.updates) {
          states.push({ machineRunId: job.machineRunId, update });
          const seconds = measuredSeconds(update);
          if (seconds !== null) measured.push({ machineId: report.machineId, name: update.name, seconds });
        }
        announce(job.runId, { kind: 'UPDATES', machineRunId: job.machineRunId, updateNames: result.updates.map((u) => u.name) });
        outcomes[i] = { target, applied: false, first: true };
      }
    }
    await storeUpdateStates(tx as unknown as Db, states);
    await storeLearnedDurations(tx as unknown as Db, measured);
    // Last, so that each run's row (its progress_seq) is locked only until the commit; runs in one order.
    const progress = new Map<string, RunProgressEvent[]>();
    for (const runId of [...events.keys()].sort(compare)) progress.set(runId, await recordRunProgress(tx as unknown as Db, runId, events.get(runId)!));
    return { outcomes, progress };
  });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A machine's own install job (or the job of a machine run's POST scripts), locked for this
 * transaction. Written as SQL: the query builder took about 90 µs to build it, at every report.
 */
async function lockedJob(db: Db, machineId: string, commandId: string) {
  const [row] = await db.execute<{ command_id: string; machine_run_id: string; run_id: string; task_token: string | null; last_event_seq: number; result: unknown; canceled_at: Date | null }>(sql`
    select c.id as command_id, m.id as machine_run_id, m.run_id, c.task_token, c.last_event_seq, c.result, c.canceled_at
    from ${agentCommands} c join ${machineRuns} m on m.id = c.machine_run_id or m.id = c.post_steps_machine_run_id
    where c.id = ${commandId} and c.machine_id = ${machineId} and c.kind = 'INSTALL'
    for update of c`);
  return row && { commandId: row.command_id, machineRunId: row.machine_run_id, runId: row.run_id, taskToken: row.task_token, lastEventSeq: Number(row.last_event_seq), result: row.result ?? null, canceledAt: row.canceled_at };
}

/**
 * Update states as the agents reported them, in one statement whatever their number. A state
 * reported twice for one update (a batch of progress and the result in one group) keeps the later.
 */
async function storeUpdateStates(db: Db, states: ReadonlyArray<{ machineRunId: string; update: JobUpdateState }>): Promise<void> {
  if (states.length === 0) return;
  const rows = states.map(({ machineRunId, update: u }) => ({
    machine_run_id: machineRunId,
    name: u.name,
    arch: u.arch ?? '',
    status: u.status,
    exit_code: u.exitCode,
    error_text: u.errorText,
    reason: u.reason,
    started_at: u.startedAt ? new Date(u.startedAt).toISOString() : null,
    ended_at: u.endedAt ? new Date(u.endedAt).toISOString() : null,
  }));
  const latest = new Map<string, (typeof rows)[number]>();
  for (const row of rows) latest.set(JSON.stringify([row.machine_run_id, row.name, row.arch]), row);
  await db.execute(sql`
    update ${updateResults} as r
    set status = s.status::update_result_status, exit_code = s.exit_code, error_text = s.error_text, reason = s.reason, started_at = s.started_at, ended_at = s.ended_at
    from jsonb_to_recordset(${JSON.stringify([...latest.values()])}::jsonb)
      as s(machine_run_id uuid, name text, arch text, status text, exit_code int, error_text text, reason text, started_at timestamptz, ended_at timestamptz)
    where r.machine_run_id = s.machine_run_id and r.name = s.name and r.arch = s.arch`);
}

/**
 * Stores what is learned from these measurements of machines' packages (learnDuration decides it),
 * in the caller's transaction. Each package's row is created empty first (no samples), then
 * locked: two results of one machine at once learn one after the other, neither measurement lost.
 * Three statements, whatever the number of measurements.
 */
async function storeLearnedDurations(db: Db, measured: ReadonlyArray<{ machineId: string; name: string; seconds: number }>): Promise<void> {
  if (measured.length === 0) return;
  const keyOf = (m: { machineId: string; name: string }) => JSON.stringify([m.machineId, m.name]);
  const keys = new Map<string, { machine_id: string; name: string }>();
  for (const m of measured) keys.set(keyOf(m), { machine_id: m.machineId, name: m.name });
  // In one order: rows are created and locked as every other group does.
  const sorted = [...keys.values()].sort((a, b) => compare(a.machine_id, b.machine_id) || compare(a.name, b.name));
  const pairs = JSON.stringify(sorted);
  await db.execute(sql`
    insert into ${updateDurations} (machine_id, name, average_seconds, samples)
    select k.machine_id, k.name, 0, 0 from jsonb_to_recordset(${pairs}::jsonb) as k(machine_id uuid, name text)
    on conflict (machine_id, name) do nothing`);
  const rows = await db.execute<{ machine_id: string; name: string; average_seconds: number; samples: number }>(sql`
    select d.machine_id, d.name, d.average_seconds, d.samples
    from ${updateDurations} d join jsonb_to_recordset(${pairs}::jsonb) as k(machine_id uuid, name text) on d.machine_id = k.machine_id and d.name = k.name
    order by d.machine_id, d.name
    for update of d`);
  const learned = new Map<string, LearnedDuration>([...rows].map((r) => [keyOf({ machineId: r.machine_id, name: r.name }), { averageSeconds: Number(r.average_seconds), samples: Number(r.samples) }]));
  for (const m of measured) learned.set(keyOf(m), learnDuration(learned.get(keyOf(m)), m.seconds));
  const values = sorted.map((k) => ({ ...k, ...learned.get(keyOf({ machineId: k.machine_id, name: k.name }))! }));
  await db.execute(sql`
    update ${updateDurations} as d set average_seconds = v."averageSeconds", samples = v.samples
    from jsonb_to_recordset(${JSON.stringify(values)}::jsonb) as v(machine_id uuid, name text, "averageSeconds" float8, samples int)
    where d.machine_id = v.machine_id and d.name = v.name`);
}
