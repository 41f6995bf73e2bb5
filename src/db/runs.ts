import { baselineDecider, builtInBaseline } from '../fleet/baselines.js';
import type { OsType } from '../fleet/compliance.js';
import { baselineInputs } from './baselines.js';
import { and, asc, desc, eq, gt, gte, inArray, isNull, lte, or, sql } from 'drizzle-orm';
import type { InstallJob, JobResult, PendingUpdate } from '../domain/types.js';
import { insertInstallJobs } from './agentCommands.js';
import type { Db } from './client.js';
import type { StepResult } from '../fleet/steps.js';
import { insertRunLogs } from './runLogs.js';
import { recordRunProgress, type NewRunProgress, type RunProgressEvent } from './runProgress.js';
import { isMachineRunFailure } from '../fleet/webhooks.js';
import type { PlannedResult } from '../fleet/runPlanning.js';
import { settleUnreportedUpdate, UNSETTLED_UPDATE_STATUSES } from '../fleet/settle.js';
import { recordRunWebhookEvent } from './webhooks.js';
import { agentCommands, deploymentRuns, machineRuns, machines, pendingUpdates, runLogs, updateDurations, updateResults, type RunPlanning, type RunSettings } from './schema.js';

export type RunRow = typeof deploymentRuns.$inferSelect;
export type MachineRunRow = typeof machineRuns.$inferSelect;
export type UpdateResultRow = typeof updateResults.$inferSelect;
export type RunLogRow = typeof runLogs.$inferSelect;
type MachineRunStatus = MachineRunRow['status'];

/**
 * Creates the run of a workflow, or finds it: the workflow id is the business key. `created`: this
 * call made it. Called once per run: by the API for a run started now, by the run's first activity
 * for a scheduled occurrence.
 */
export async function ensureRun(db: Db, input: { id?: string; deploymentId: string; workflowId: string; trigger: string }): Promise<{ run: RunRow; created: boolean }> {
  const [inserted] = await db.insert(deploymentRuns).values(input).onConflictDoNothing().returning();
  if (inserted) return { run: inserted, created: true };
  const [row] = await db.select().from(deploymentRuns).where(eq(deploymentRuns.workflowId, input.workflowId));
  return { run: row!, created: false };
}

/** Runs of a deployment created since a time, oldest first (what `deploymentRunsStarted` replays). */
/** PostgreSQL's clock now: what the rows' default timestamps are taken from. */
export async function databaseNow(db: Db): Promise<Date> {
  const [row] = await db.execute<{ now: Date | string }>(sql`select now() as now`);
  return new Date(row!.now);
}

export function runsCreatedSince(db: Db, deploymentId: string, since: Date, limit: number): Promise<RunRow[]> {
  return db
    .select()
    .from(deploymentRuns)
    .where(and(eq(deploymentRuns.deploymentId, deploymentId), gte(deploymentRuns.createdAt, since)))
    .orderBy(asc(deploymentRuns.createdAt), asc(deploymentRuns.id))
    .limit(limit);
}

/**
 * Keeps the deployment's settings with a run that has not begun yet (a retry before it begins takes
 * them again); once begun, the run keeps what it has. Answers the run as it is now.
 */
export async function keepRunSettings(db: Db, runId: string, settings: RunSettings): Promise<RunRow> {
  const [updated] = await db.update(deploymentRuns).set({ settings }).where(and(eq(deploymentRuns.id, runId), isNull(deploymentRuns.startedAt))).returning();
  return updated ?? (await findRun(db, runId))!;
}

export async function findRun(db: Db, id: string): Promise<RunRow | undefined> {
  const [row] = await db.select().from(deploymentRuns).where(eq(deploymentRuns.id, id));
  return row;
}

export async function runsOfDeployment(db: Db, deploymentId: string, offset: number, limit: number) {
  const where = eq(deploymentRuns.deploymentId, deploymentId);
  const [rows, [total]] = await Promise.all([
    db.select().from(deploymentRuns).where(where).orderBy(desc(deploymentRuns.createdAt)).offset(offset).limit(limit),
    db.select({ n: sql<number>`count(*)::int` }).from(deploymentRuns).where(where),
  ]);
  return { rows, totalCount: total?.n ?? 0 };
}

/** The runs a machine took part in, newest first. */
export async function runsOfMachine(db: Db, machineId: string, offset: number, limit: number) {
  const where = inArray(deploymentRuns.id, db.select({ id: machineRuns.runId }).from(machineRuns).where(eq(machineRuns.machineId, machineId)));
  const [rows, [total]] = await Promise.all([
    db.select().from(deploymentRuns).where(where).orderBy(desc(deploymentRuns.createdAt)).offset(offset).limit(limit),
    db.select({ n: sql<number>`count(*)::int` }).from(deploymentRuns).where(where),
  ]);
  return { rows, totalCount: total?.n ?? 0 };
}

/**
 * The latest pending updates of each machine, their measured install durations, and what each
 * machine's patch baseline says of them at a given time (`baselineOf(machineId, now)`, for
 * planMachine's `baseline`), with the baselines and clock inputs that decides by.
 */
export async function planningInputs(db: Db, machineIds: string[]) {
  const { baselineOf, clocks } = await baselineInputs(db, machineIds);
  const decide = (machineId: string, osType: OsType, now: Date) => baselineDecider(baselineOf.get(machineId) ?? builtInBaseline(osType), clocks, now);
  if (machineIds.length === 0) return { pending: new Map<string, PendingUpdate[]>(), learned: new Map<string, Record<string, number>>(), decide, baselineOf, clocks };
  const [rows, durations] = await Promise.all([
    db
      .select({ machineId: pendingUpdates.machineId, update: pendingUpdates })
      .from(pendingUpdates)
      .innerJoin(machines, eq(machines.latestAssessmentId, pendingUpdates.assessmentId))
      .where(inArray(machines.id, machineIds)),
    db.select().from(updateDurations).where(inArray(updateDurations.machineId, machineIds)),
  ]);
  const pending = new Map<string, PendingUpdate[]>();
  for (const { machineId, update: u } of rows) {
    const list = pending.get(machineId) ?? [];
    list.push({
      name: u.name,
      arch: u.arch === '' ? null : u.arch,
      installedVersion: u.installedVersion,
      availableVersion: u.availableVersion,
      classification: u.classification,
      severity: u.severity,
      advisoryIds: u.advisoryIds,
      cveIds: u.cveIds,
      rebootSuggested: u.rebootSuggested,
      repository: u.repository,
      note: u.note,
    });
    pending.set(machineId, list);
  }
  const learned = new Map<string, Record<string, number>>();
  for (const d of durations) learned.set(d.machineId, { ...learned.get(d.machineId), [d.name]: d.averageSeconds });
  return { pending, learned, decide, baselineOf, clocks };
}

/**
 * Records the run's machines, each with its plan's reboot reserve, and every update's plan, once: a
 * retried activity finds them there.
 * Planned updates start PENDING (the agent decides at run time whether the window still covers
 * them); the prediction is kept beside the outcome so it can be checked. The run's progress event
 * (RUN) is recorded with them, after `logLine` when it is given.
 */
export async function beginRun(
  db: Db,
  runId: string,
  windowEndsAt: Date,
  plans: Array<{ machineId: string; machineName: string; rebootReserveSeconds: number; results: PlannedResult[] }>,
  logLine?: string,
): Promise<{ machines: Array<{ machineRunId: string; machineId: string }>; progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    const [run] = await tx.select().from(deploymentRuns).where(eq(deploymentRuns.id, runId)).for('update');
    if (run!.startedAt) {
      const machines = await tx.select({ machineRunId: machineRuns.id, machineId: machineRuns.machineId }).from(machineRuns).where(eq(machineRuns.runId, runId)).orderBy(asc(machineRuns.machineName));
      return { machines, progress: [] };
    }
    await tx.update(deploymentRuns).set({ status: 'IN_PROGRESS', startedAt: sql`now()`, windowEndsAt }).where(eq(deploymentRuns.id, runId));
    await recordRunWebhookEvent(tx as unknown as Db, runId, (run) => ({ type: 'RUN_STARTED', run }));
    if (plans.length === 0) return { machines: [], progress: await recordRunProgress(tx as unknown as Db, runId, [{ kind: 'RUN' }]) };
    const runOf = await insertPlans(tx as unknown as Db, runId, plans);
    const lines = logLine ? [await serverLine(tx as unknown as Db, runId, null, logLine)] : [];
    const progress = await recordRunProgress(tx as unknown as Db, runId, [...lines, { kind: 'RUN' }]);
    return { machines: plans.map((plan) => ({ machineRunId: runOf.get(plan.machineId)!, machineId: plan.machineId })), progress };
  });
}

type MachinePlan = { machineId: string; machineName: string; rebootReserveSeconds: number; results: PlannedResult[] };

/**
 * The machine runs of `plans` and their planned updates, set-based: one insert of the machine runs,
 * then the update results in chunks (PostgreSQL takes at most 65,535 parameters per statement).
 * Row by row, 1,000 machines cost seconds. A machine already in the run is left as it is (a page
 * planned again): answers the machine runs made, by machine id.
 */
async function insertPlans(tx: Db, runId: string, plans: readonly MachinePlan[]): Promise<Map<string, string>> {
    const created: Array<{ machineRunId: string; machineId: string }> = [];
    for (const chunk of chunks(plans, 5000)) {
      const rows = await tx
        .insert(machineRuns)
        .values(chunk.map((plan) => ({ runId, machineId: plan.machineId, machineName: plan.machineName, rebootReserveSeconds: plan.rebootReserveSeconds })))
        .onConflictDoNothing({ target: [machineRuns.runId, machineRuns.machineId] })
        .returning({ machineRunId: machineRuns.id, machineId: machineRuns.machineId });
      created.push(...rows);
    }
    const runOf = new Map(created.map((c) => [c.machineId, c.machineRunId]));
    await insertUpdateResults(tx, runId, plans.filter((plan) => runOf.has(plan.machineId)).map((plan) => ({ machineRunId: runOf.get(plan.machineId)!, results: plan.results })));
    return runOf;
}

/** The planned update results of machine runs of a run, a few thousand rows per statement. */
export async function insertUpdateResults(tx: Db, runId: string, plans: ReadonlyArray<{ machineRunId: string; results: readonly PlannedResult[] }>): Promise<void> {
  const results = plans.flatMap((plan) =>
    plan.results.map((r) => ({
      machineRunId: plan.machineRunId,
      runId,
      name: r.update.name,
      arch: r.update.arch ?? '',
      classification: r.update.classification,
      severity: r.update.severity,
      installedVersion: r.update.installedVersion,
      targetVersion: r.update.availableVersion,
      rebootSuggested: r.update.rebootSuggested,
      orderIndex: r.orderIndex,
      expectedSeconds: Math.round(r.expectedSeconds),
      status: r.status,
      predictedStatus: r.predictedStatus,
      reason: r.reason,
    })),
  );
  // One jsonb parameter per chunk: the query builder took about 60 µs per row of a multi-row insert.
  for (const chunk of chunks(results, 5000)) {
    await tx.execute(sql`
      insert into ${updateResults} (machine_run_id, run_id, name, arch, classification, severity, installed_version, target_version, reboot_suggested, order_index, expected_seconds, status, predicted_status, reason)
      select r."machineRunId", r."runId", r.name, r.arch, r.classification, r.severity, r."installedVersion", r."targetVersion", r."rebootSuggested", r."orderIndex", r."expectedSeconds", r.status, r."predictedStatus", r.reason
      from jsonb_to_recordset(${JSON.stringify(chunk)}::jsonb) as r("machineRunId" uuid, "runId" uuid, name text, arch text, classification classification, severity severity, "installedVersion" text, "targetVersion" text, "rebootSuggested" boolean, "orderIndex" int, "expectedSeconds" int, status update_result_status, "predictedStatus" update_result_status, reason text)`);
  }
}

/**
 * Begins a run whose machines are planned page by page (a batched run): IN_PROGRESS from now, its
 * window fixed, its planning position at the start; then planRunPage until no target is left, then
 * endRunPlanning. Nothing when the run has begun already (a retry).
 */
export async function beginRunPlanning(db: Db, runId: string, windowEndsAt: Date, logLine: string): Promise<{ progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    const [run] = await tx.select().from(deploymentRuns).where(eq(deploymentRuns.id, runId)).for('update');
    if (run!.startedAt) return { progress: [] };
    const planning: RunPlanning = { after: null, planned: 0 };
    await tx.update(deploymentRuns).set({ status: 'IN_PROGRESS', startedAt: sql`now()`, windowEndsAt, planning }).where(eq(deploymentRuns.id, runId));
    await recordRunWebhookEvent(tx as unknown as Db, runId, (run) => ({ type: 'RUN_STARTED', run }));
    return { progress: await recordRunProgress(tx as unknown as Db, runId, [await serverLine(tx as unknown as Db, runId, null, logLine), { kind: 'RUN' }]) };
  });
}

/**
 * Plans one page of a run's machines, the targets after `from` in (name, id) order, and moves the
 * run's planning position past them, in one transaction. Conditional on the position still being
 * `from`: a page that another attempt of the planning (a retry racing a worker thought dead)
 * planned first is not planned twice. Answers the position now (null: planning ended) and
 * whether this page was written.
 */
export async function planRunPage(
  db: Db,
  runId: string,
  from: RunPlanning,
  plans: readonly MachinePlan[],
  logLine?: string,
): Promise<{ planning: RunPlanning | null; written: boolean; progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    const [run] = await tx.select({ planning: deploymentRuns.planning }).from(deploymentRuns).where(eq(deploymentRuns.id, runId)).for('update');
    const now = run?.planning ?? null;
    if (!now || !samePlanning(now, from) || plans.length === 0) return { planning: now, written: false, progress: [] };
    const made = await insertPlans(tx as unknown as Db, runId, plans);
    const last = plans.at(-1)!;
    const planning: RunPlanning = { after: { name: last.machineName, id: last.machineId }, planned: from.planned + made.size };
    await tx.update(deploymentRuns).set({ planning }).where(eq(deploymentRuns.id, runId));
    const lines = logLine ? [await serverLine(tx as unknown as Db, runId, null, logLine)] : [];
    return { planning, written: true, progress: await recordRunProgress(tx as unknown as Db, runId, [...lines, { kind: 'RUN' }]) };
  });
}

/** Ends a run's paged planning (every target planned); answers its machine runs, all told. */
export async function endRunPlanning(db: Db, runId: string, logLine: (planned: number) => string): Promise<{ planned: number; progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    const [run] = await tx.select({ planning: deploymentRuns.planning }).from(deploymentRuns).where(eq(deploymentRuns.id, runId)).for('update');
    const [{ n }] = (await tx.select({ n: sql<number>`count(*)::int` }).from(machineRuns).where(eq(machineRuns.runId, runId))) as [{ n: number }];
    if (!run?.planning) return { planned: n, progress: [] };
    await tx.update(deploymentRuns).set({ planning: null }).where(eq(deploymentRuns.id, runId));
    return { planned: n, progress: await recordRunProgress(tx as unknown as Db, runId, [await serverLine(tx as unknown as Db, runId, null, logLine(n)), { kind: 'RUN' }]) };
  });
}

/** Two planning positions (a run's or a ring's) are the same place. */
export function samePlanning(a: RunPlanning, b: RunPlanning): boolean {
  return a.planned === b.planned && a.after?.name === b.after?.name && a.after?.id === b.after?.id;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export async function findMachineRun(db: Db, id: string): Promise<MachineRunRow | undefined> {
  const [row] = await db.select().from(machineRuns).where(eq(machineRuns.id, id));
  return row;
}

export function machineRunsOf(db: Db, runId: string) {
  return db.select().from(machineRuns).where(eq(machineRuns.runId, runId)).orderBy(asc(machineRuns.machineName));
}

/** A page of a run's machine runs, by machine name; the count only when asked for. */
export async function machineRunsPage(db: Db, runId: string, offset: number, limit: number) {
  const where = eq(machineRuns.runId, runId);
  return {
    rows: await db.select().from(machineRuns).where(where).orderBy(asc(machineRuns.machineName), asc(machineRuns.id)).offset(offset).limit(limit),
    totalCount: async () => (await db.select({ n: sql<number>`count(*)::int` }).from(machineRuns).where(where))[0]?.n ?? 0,
  };
}

/** A machine's part in a run. */
export async function machineRunOfMachine(db: Db, runId: string, machineId: string): Promise<MachineRunRow | undefined> {
  const [row] = await db.select().from(machineRuns).where(and(eq(machineRuns.runId, runId), eq(machineRuns.machineId, machineId)));
  return row;
}

export function updateResultsOf(db: Db, machineRunId: string, window?: { offset: number; limit: number }) {
  const ordered = db.select().from(updateResults).where(eq(updateResults.machineRunId, machineRunId)).orderBy(asc(updateResults.orderIndex), asc(updateResults.name));
  return window ? ordered.offset(window.offset).limit(window.limit) : ordered;
}

/** Machine runs by id (in no particular order). */
export function machineRunsByIds(db: Db, ids: readonly string[]): Promise<MachineRunRow[]> {
  if (ids.length === 0) return Promise.resolve([]);
  return db.select().from(machineRuns).where(inArray(machineRuns.id, [...ids]));
}

/** The update results of several machine runs, each machine run's in install order. */
export function updateResultsOfMany(db: Db, machineRunIds: readonly string[]): Promise<UpdateResultRow[]> {
  if (machineRunIds.length === 0) return Promise.resolve([]);
  return db
    .select()
    .from(updateResults)
    .where(inArray(updateResults.machineRunId, [...machineRunIds]))
    .orderBy(asc(updateResults.machineRunId), asc(updateResults.orderIndex), asc(updateResults.name));
}

/** Update results of a run counted by status (or by predicted status), in the database: a run of 1,000 machines holds 50,000 results. */
/** How many deployment runs are in each status, across the whole database (the API's metrics). */
export function runCountsByStatus(db: Db): Promise<Array<{ status: RunRow['status']; n: number }>> {
  return db.select({ status: deploymentRuns.status, n: sql<number>`count(*)::int` }).from(deploymentRuns).groupBy(deploymentRuns.status);
}

export function resultCountsOfRun(db: Db, runId: string, by: 'status' | 'predictedStatus' = 'status'): Promise<Array<{ status: UpdateResultRow['status']; n: number }>> {
  const column = by === 'status' ? updateResults.status : updateResults.predictedStatus;
  return db
    .select({ status: sql<UpdateResultRow['status']>`${column}`, n: sql<number>`count(*)::int` })
    .from(updateResults)
    .where(eq(updateResults.runId, runId))
    .groupBy(column);
}

/**
 * What a run's status is decided from, counted in the database whatever the run's size: its machine
 * runs by status (of one ring, when given), and its updates failed and succeeded.
 */
export async function runOutcomeCounts(db: Db, runId: string, ring?: number): Promise<{ byStatus: Partial<Record<MachineRunStatus, number>>; failedUpdates: number; succeededUpdates: number }> {
  const [statuses, [updates]] = await Promise.all([
    db
      .select({ status: machineRuns.status, n: sql<number>`count(*)::int` })
      .from(machineRuns)
      .where(ring === undefined ? eq(machineRuns.runId, runId) : and(eq(machineRuns.runId, runId), eq(machineRuns.ring, ring)))
      .groupBy(machineRuns.status),
    db
      .select({
        failed: sql<number>`count(*) filter (where ${updateResults.status} = 'FAILED')::int`,
        succeeded: sql<number>`count(*) filter (where ${updateResults.status} = 'SUCCEEDED')::int`,
      })
      .from(updateResults)
      .where(eq(updateResults.runId, runId)),
  ]);
  return { byStatus: Object.fromEntries(statuses.map((s) => [s.status, s.n])), failedUpdates: updates?.failed ?? 0, succeededUpdates: updates?.succeeded ?? 0 };
}

/** Failed and succeeded updates per machine run of a run, counted in the database. */
export function outcomeCountsByMachineRun(db: Db, runId: string): Promise<Array<{ machineRunId: string; failed: number; succeeded: number }>> {
  return db
    .select({
      machineRunId: updateResults.machineRunId,
      failed: sql<number>`count(*) filter (where ${updateResults.status} = 'FAILED')::int`,
      succeeded: sql<number>`count(*) filter (where ${updateResults.status} = 'SUCCEEDED')::int`,
    })
    .from(updateResults)
    .where(eq(updateResults.runId, runId))
    .groupBy(updateResults.machineRunId);
}

/**
 * Sets a machine run's status, with its progress event (MACHINE); `logLine(row)` is written to the
 * run's log in the same transaction, its event (LINES) first.
 */
export async function setMachineRunStatus(
  db: Db,
  id: string,
  status: MachineRunStatus,
  extra: { error?: string | null; rebootOutcome?: string | null; rebootBy?: Date } = {},
  logLine?: (row: MachineRunRow) => string,
): Promise<{ row: MachineRunRow | undefined; progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(machineRuns)
      .set({ status, ...extra, startedAt: sql`coalesce(${machineRuns.startedAt}, now())` })
      .where(eq(machineRuns.id, id))
      .returning();
    if (!row) return { row, progress: [] };
    const lines = logLine ? [await serverLine(tx as unknown as Db, row.runId, row.id, logLine(row))] : [];
    return { row, progress: await recordRunProgress(tx as unknown as Db, row.runId, [...lines, { kind: 'MACHINE', machineRunId: row.id }]) };
  });
}

/** A line of the server's own in a run's log, and the progress event that announces it. */
async function serverLine(db: Db, runId: string, machineRunId: string | null, line: string): Promise<NewRunProgress> {
  const [row] = await db.insert(runLogs).values({ runId, machineRunId, stream: 'server', line }).returning({ id: runLogs.id });
  return { kind: 'LINES', machineRunId, lineIds: [row!.id, row!.id] };
}

/**
 * Announces a change that records no progress event of its own (a ring's state, a run halted or
 * resumed): the server's `lines` in the run's log, each with its event (LINES), then a RUN event,
 * in one transaction. Call it after the change has committed, so a reader that gets the RUN event
 * reads the change.
 */
export async function logRunChange(db: Db, runId: string, lines: readonly string[]): Promise<{ progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    const logged: NewRunProgress[] = [];
    for (const line of lines) logged.push(await serverLine(tx as unknown as Db, runId, null, line));
    return { progress: await recordRunProgress(tx as unknown as Db, runId, [...logged, { kind: 'RUN' }]) };
  });
}

/**
 * Ends a machine run. Updates the agent never reported on are settled (settleUnreportedUpdate in
 * src/fleet/settle.ts says to what). With its progress
 * event (MACHINE), after the line `logLine` gives, when it gives one.
 */
export async function finishMachineRun(
  db: Db,
  id: string,
  outcome: { status: MachineRunStatus; rebootOutcome: string | null; error: string | null },
  logLine?: (row: MachineRunRow) => string,
): Promise<{ row: MachineRunRow | undefined; progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    // A machine run ends once: a second end (two advances of a batched run racing after a worker
    // was given up on, a retried activity) changes nothing and announces nothing.
    const [current] = await tx.select().from(machineRuns).where(eq(machineRuns.id, id)).for('update');
    if (current?.endedAt) return { row: current, progress: [] };
    // The rule is src/fleet's; it is applied here, in the transaction that ends the machine run, so
    // that no update is left unsettled by a machine run that has ended.
    for (const from of UNSETTLED_UPDATE_STATUSES) {
      const settled = settleUnreportedUpdate(from, outcome.error)!;
      const stored =
        settled.status === 'NOT_ATTEMPTED' ? { status: settled.status, reason: settled.reason } : { status: settled.status, errorText: settled.errorText, endedAt: sql`now()` };
      await tx.update(updateResults).set(stored).where(and(eq(updateResults.machineRunId, id), eq(updateResults.status, from)));
    }
    const [row] = await tx
      .update(machineRuns)
      .set({ status: outcome.status, rebootOutcome: outcome.rebootOutcome, error: outcome.error, endedAt: sql`now()`, startedAt: sql`coalesce(${machineRuns.startedAt}, now())` })
      .where(eq(machineRuns.id, id))
      .returning();
    // The job is withdrawn: an agent that comes back late must not start it.
    await tx.update(agentCommands).set({ canceledAt: sql`coalesce(${agentCommands.canceledAt}, now())`, completedAt: sql`coalesce(${agentCommands.completedAt}, now())` }).where(or(eq(agentCommands.machineRunId, id), eq(agentCommands.postStepsMachineRunId, id)));
    if (!row) return { row, progress: [] };
    if (isMachineRunFailure(row.status)) {
      await recordRunWebhookEvent(tx as unknown as Db, row.runId, (run) => ({
        type: 'MACHINE_RUN_FAILED',
        run,
        machineRun: { id: row.id, machineId: row.machineId, machineName: row.machineName, status: row.status, error: row.error },
      }));
    }
    const lines = logLine ? [await serverLine(tx as unknown as Db, row.runId, row.id, logLine(row))] : [];
    return { row, progress: await recordRunProgress(tx as unknown as Db, row.runId, [...lines, { kind: 'MACHINE', machineRunId: row.id }]) };
  });
}

/**
 * A run that never started ends CANCELED with the reason, before anything ran, with its progress
 * event (RUN); no row when it has started meanwhile.
 */
export async function cancelUnstartedRun(db: Db, runId: string, reason: string): Promise<{ row: RunRow | undefined; progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    const [row] = await tx.update(deploymentRuns).set({ status: 'CANCELED', error: reason, endedAt: sql`now()` }).where(and(eq(deploymentRuns.id, runId), isNull(deploymentRuns.startedAt))).returning();
    if (!row) return { row, progress: [] };
    await recordRunWebhookEvent(tx as unknown as Db, runId, (run) => ({ type: 'RUN_ENDED', run: { ...run, status: row.status, error: row.error } }));
    return { row, progress: await recordRunProgress(tx as unknown as Db, runId, [{ kind: 'RUN' }]) };
  });
}

/**
 * Ends a run with its status, and its progress event (RUN), after the line `logLine` gives: a
 * client that stops at the run's last status has read every line before it.
 */
export async function finishRun(db: Db, runId: string, status: RunRow['status'], error: string | null = null, logLine?: string): Promise<{ row: RunRow | undefined; progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    const [row] = await tx.update(deploymentRuns).set({ status, error, endedAt: sql`now()`, startedAt: sql`coalesce(${deploymentRuns.startedAt}, now())` }).where(eq(deploymentRuns.id, runId)).returning();
    if (!row) return { row, progress: [] };
    await recordRunWebhookEvent(tx as unknown as Db, runId, (run) => ({ type: 'RUN_ENDED', run: { ...run, status: row.status, error: row.error } }));
    const lines = logLine ? [await serverLine(tx as unknown as Db, runId, null, logLine)] : [];
    return { row, progress: await recordRunProgress(tx as unknown as Db, runId, [...lines, { kind: 'RUN' }]) };
  });
}

/** The updates a machine run installs, in order (those the plan put in and nothing has settled). */
export function plannedUpdates(db: Db, machineRunId: string) {
  return db
    .select()
    .from(updateResults)
    .where(and(eq(updateResults.machineRunId, machineRunId), inArray(updateResults.status, ['PENDING', 'IN_PROGRESS'])))
    .orderBy(asc(updateResults.orderIndex));
}

/**
 * Hands over a machine run's install job: created once. A retried hand-over gets the same job (same id:
 * the agent resumes it) with the new attempt's task token; a job already finished hands back
 * its result.
 */
export async function handOverInstallJob(
  db: Db,
  input: { machineId: string; machineRunId: string; job: InstallJob; taskToken: string; traceparent?: string | null },
): Promise<{ id: string; result: JobResult | null }> {
  const [row] = await db
    .insert(agentCommands)
    .values({ machineId: input.machineId, kind: 'INSTALL', machineRunId: input.machineRunId, payload: input.job, taskToken: input.taskToken, traceparent: input.traceparent ?? null })
    .onConflictDoUpdate({ target: agentCommands.machineRunId, set: { taskToken: input.taskToken, traceparent: input.traceparent ?? null } })
    .returning({ id: agentCommands.id, result: agentCommands.result });
  return { id: row!.id, result: (row!.result as JobResult | null) ?? null };
}

/** The job of a machine run's POST scripts (an INSTALL job without updates), created once; a retry re-registers its task token. */
export async function ensurePostStepsCommand(
  db: Db,
  input: { machineId: string; machineRunId: string; job: InstallJob; taskToken: string },
): Promise<{ id: string; result: JobResult | null }> {
  const [row] = await db
    .insert(agentCommands)
    .values({ machineId: input.machineId, kind: 'INSTALL', postStepsMachineRunId: input.machineRunId, payload: input.job, taskToken: input.taskToken })
    .onConflictDoUpdate({ target: agentCommands.postStepsMachineRunId, set: { taskToken: input.taskToken } })
    .returning({ id: agentCommands.id, result: agentCommands.result });
  return { id: row!.id, result: (row!.result as JobResult | null) ?? null };
}

/**
 * Adds how some of a machine run's steps went (kept by step index: a retried activity replaces,
 * never doubles), with the server's lines in its job stream and the progress events (LINES, MACHINE).
 */
export async function recordStepResults(db: Db, machineRunId: string, results: readonly StepResult[], lines: readonly string[]): Promise<{ row: MachineRunRow | undefined; progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    const [current] = await tx.select().from(machineRuns).where(eq(machineRuns.id, machineRunId)).for('update');
    if (!current) return { row: undefined, progress: [] };
    const merged = [...current.stepResults];
    for (const r of results) {
      const at = merged.findIndex((m) => m.index === r.index);
      if (at >= 0) merged[at] = r;
      else merged.push(r);
    }
    const [row] = await tx.update(machineRuns).set({ stepResults: merged }).where(eq(machineRuns.id, machineRunId)).returning();
    const logged: NewRunProgress[] = [];
    for (const line of lines) logged.push(await serverLine(tx as unknown as Db, current.runId, machineRunId, line));
    return { row, progress: await recordRunProgress(tx as unknown as Db, current.runId, [...logged, { kind: 'MACHINE', machineRunId }]) };
  });
}

/** A machine run's step results to record, with their lines in its job stream. */
export interface StepResultsEntry {
  machineRunId: string;
  results: readonly StepResult[];
  lines: readonly string[];
}

/**
 * recordStepResults for many machine runs of one run at once, in one transaction of five
 * statements whatever their number: the rows locked (in id order, so that two writers never wait
 * on each other crosswise), their results merged, their lines written, and every machine run's
 * events (LINES, then MACHINE) as recordStepResults records them. A machine run that no longer
 * exists is left out.
 */
export async function recordStepResultsMany(db: Db, runId: string, entries: readonly StepResultsEntry[]): Promise<{ progress: RunProgressEvent[] }> {
  if (entries.length === 0) return { progress: [] };
  return db.transaction(async (tx) => {
    const ids = [...new Set(entries.map((e) => e.machineRunId))];
    const current = await tx.select({ id: machineRuns.id, stepResults: machineRuns.stepResults }).from(machineRuns).where(inArray(machineRuns.id, ids)).orderBy(asc(machineRuns.id)).for('update');
    const merged = new Map(current.map((row) => [row.id, [...row.stepResults]]));
    const kept = entries.filter((e) => merged.has(e.machineRunId));
    for (const e of kept) {
      const results = merged.get(e.machineRunId)!;
      for (const r of e.results) {
        const at = results.findIndex((m) => m.index === r.index);
        if (at >= 0) results[at] = r;
        else results.push(r);
      }
    }
    if (kept.length === 0) return { progress: [] };
    const rows = [...merged].map(([id, stepResults]) => ({ id, step_results: stepResults }));
    await tx.execute(sql`
      update ${machineRuns} set step_results = v.step_results
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as v(id uuid, step_results jsonb)
      where ${machineRuns.id} = v.id`);
    const lines = kept.flatMap((e) => e.lines.map((line) => ({ runId, machineRunId: e.machineRunId, stream: 'server' as const, line })));
    // One multi-row insert numbers its rows in the order given: sorted, the ids match the lines, each machine run's in order.
    const lineIds = (await insertRunLogs(tx as unknown as Db, lines)).map((r) => r.id).sort((a, b) => a - b);
    const events: NewRunProgress[] = [];
    let next = 0;
    for (const e of kept) {
      for (const _ of e.lines) {
        const id = lineIds[next++]!;
        events.push({ kind: 'LINES', machineRunId: e.machineRunId, lineIds: [id, id] });
      }
      events.push({ kind: 'MACHINE', machineRunId: e.machineRunId });
    }
    return { progress: await recordRunProgress(tx as unknown as Db, runId, events) };
  });
}

/** The statuses of several machine runs' update results, each machine run's in install order (what a POST call's body counts). */
export async function updateStatusesOfMany(db: Db, machineRunIds: readonly string[]): Promise<Map<string, Array<UpdateResultRow['status']>>> {
  const byRun = new Map<string, Array<UpdateResultRow['status']>>();
  if (machineRunIds.length === 0) return byRun;
  const rows = await db
    .select({ machineRunId: updateResults.machineRunId, status: updateResults.status })
    .from(updateResults)
    .where(inArray(updateResults.machineRunId, [...machineRunIds]))
    .orderBy(asc(updateResults.machineRunId), asc(updateResults.orderIndex), asc(updateResults.name));
  for (const r of rows) byRun.set(r.machineRunId, [...(byRun.get(r.machineRunId) ?? []), r.status]);
  return byRun;
}

/**
 * A machine run's workflow attaches its install activity to the job handed over in bulk at the
 * run's start (or by an earlier attempt): one statement. Undefined when no job exists yet (the
 * workflow then creates it). With `reoffer` (a retried attempt), a job its agent never reported
 * on is offered again: the answer that carried it may have been lost with an API process, and the
 * agent keeps a job it already has by its id, so nothing installs twice.
 */
export async function attachInstallActivity(
  db: Db,
  machineRunId: string,
  taskToken: string,
  reoffer: boolean,
  traceparent: string | null = null,
): Promise<{ id: string; machineId: string; result: JobResult | null; reoffered: boolean } | undefined> {
  const unreported = sql`${agentCommands.lastEventSeq} = 0 and ${agentCommands.result} is null and ${agentCommands.canceledAt} is null`;
  const [row] = await db
    .update(agentCommands)
    .set({ taskToken, traceparent, ...(reoffer ? { deliveredAt: sql`case when ${unreported} then null else ${agentCommands.deliveredAt} end` } : {}) })
    .where(and(eq(agentCommands.machineRunId, machineRunId), eq(agentCommands.kind, 'INSTALL')))
    .returning({ id: agentCommands.id, machineId: agentCommands.machineId, result: agentCommands.result, reoffered: sql<boolean>`${reoffer} and ${unreported}` });
  return row && { id: row.id, machineId: row.machineId, result: (row.result as JobResult | null) ?? null, reoffered: row.reoffered };
}

/** What the install jobs of these machine runs are made of: each one's machine and its planned updates, in order (two queries for any number). */
export async function installJobSources(db: Db, machineRunIds: string[]) {
  if (machineRunIds.length === 0) return [];
  const [runs, updates] = await Promise.all([
    db
      .select({ machineRunId: machineRuns.id, status: machineRuns.status, rebootReserveSeconds: machineRuns.rebootReserveSeconds, machineId: machines.id, machineName: machines.name, osType: machines.osType, rebootPending: machines.rebootPending, packageManager: machines.packageManager, agentCapabilities: machines.agentCapabilities })
      .from(machineRuns)
      .innerJoin(machines, eq(machines.id, machineRuns.machineId))
      .where(inArray(machineRuns.id, machineRunIds)),
    db
      .select()
      .from(updateResults)
      .where(and(inArray(updateResults.machineRunId, machineRunIds), inArray(updateResults.status, ['PENDING', 'IN_PROGRESS'])))
      .orderBy(asc(updateResults.machineRunId), asc(updateResults.orderIndex)),
  ]);
  const byRun = new Map<string, UpdateResultRow[]>();
  for (const u of updates) byRun.set(u.machineRunId, [...(byRun.get(u.machineRunId) ?? []), u]);
  return runs.map((r) => ({ ...r, updates: byRun.get(r.machineRunId) ?? [] }));
}

/**
 * Hands the install jobs of a run's first machines to their agents in one transaction: the jobs,
 * their machine runs IN_PROGRESS, one log line each, and the progress events (RUN, and LINES when
 * lines were written). Once per machine run: a retry changes nothing already handed over. Returns
 * every job with whether it was created now.
 */
export async function handOverInstallJobs(
  db: Db,
  runId: string,
  jobs: Array<{ machineId: string; machineRunId: string; job: InstallJob; logLine: string }>,
  traceparent: string | null = null,
): Promise<{ commands: Array<{ id: string; machineId: string; machineRunId: string; created: boolean }>; progress: RunProgressEvent[] }> {
  return db.transaction(async (tx) => {
    const commands = await insertInstallJobs(tx as unknown as Db, jobs, traceparent);
    const created = new Set(commands.filter((c) => c.created).map((c) => c.machineRunId));
    const fresh = jobs.filter((j) => created.has(j.machineRunId));
    let lineIds: [number, number] | null = null;
    for (const chunk of chunks(fresh, 5000)) {
      await tx
        .update(machineRuns)
        .set({ status: 'IN_PROGRESS', startedAt: sql`coalesce(${machineRuns.startedAt}, now())` })
        .where(and(inArray(machineRuns.id, chunk.map((j) => j.machineRunId)), eq(machineRuns.status, 'PENDING')));
      const lines = await insertRunLogs(tx as unknown as Db, chunk.map((j) => ({ runId, machineRunId: j.machineRunId, stream: 'server', line: j.logLine })));
      if (lines.length > 0) lineIds = [lineIds?.[0] ?? lines[0]!.id, lines.at(-1)!.id];
    }
    const progress = await recordRunProgress(tx as unknown as Db, runId, lineIds ? [{ kind: 'RUN' }, { kind: 'LINES', lineIds }] : [{ kind: 'RUN' }]);
    return { commands, progress };
  });
}

/** The traceparent stored with one of the machine's install jobs (see agentCommands.traceparent), or null. */
export async function installJobTraceparent(db: Db, machineId: string, commandId: string): Promise<string | null> {
  const [row] = await db
    .select({ traceparent: agentCommands.traceparent })
    .from(agentCommands)
    .where(and(eq(agentCommands.id, commandId), eq(agentCommands.machineId, machineId), eq(agentCommands.kind, 'INSTALL')));
  return row?.traceparent ?? null;
}

/** How many lines a run's log (or one machine run's job stream) holds. */
export async function countRunLogs(db: Db, query: { runId: string; machineRunId?: string | null }): Promise<number> {
  const conditions = [eq(runLogs.runId, query.runId)];
  if (query.machineRunId) conditions.push(eq(runLogs.machineRunId, query.machineRunId));
  const [row] = await db.select({ n: sql<number>`count(*)::int` }).from(runLogs).where(and(...conditions));
  return row?.n ?? 0;
}

export async function runLogsOf(db: Db, query: { runId: string; machineRunId?: string | null; afterId?: number; throughId?: number; limit: number }) {
  const conditions = [eq(runLogs.runId, query.runId), gt(runLogs.id, query.afterId ?? 0)];
  if (query.machineRunId) conditions.push(eq(runLogs.machineRunId, query.machineRunId));
  if (query.throughId !== undefined) conditions.push(lte(runLogs.id, query.throughId));
  return db.select().from(runLogs).where(and(...conditions)).orderBy(asc(runLogs.id)).limit(query.limit);
}


/** Machine runs waiting for this machine to come back from a reboot. */
export function rebootingMachineRuns(db: Db, machineId: string) {
  // A batched run's machine (reboot_by set) has no workflow of its own to signal: its run's advance reads the boot id.
  return db.select({ id: machineRuns.id, runId: machineRuns.runId }).from(machineRuns).where(and(eq(machineRuns.machineId, machineId), eq(machineRuns.status, 'REBOOTING'), isNull(machineRuns.endedAt), isNull(machineRuns.rebootBy)));
}
