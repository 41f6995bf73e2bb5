import { CompleteAsyncError, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { InstallJob, JobResult, ScriptJobStep } from '../domain/types.js';
import { stepSecrets } from '../config.js';
import { findDeployment, type DeploymentRow } from '../db/deployments.js';
import { findMachine, findMachines, type MachineRow } from '../db/machines.js';
import {
  ensurePostStepsCommand,
  findMachineRun,
  findRun,
  machineRunsByIds,
  recordStepResults,
  recordStepResultsMany,
  updateResultsOf,
  updateStatusesOfMany,
  type MachineRunRow,
  type RunRow,
  type StepResultsEntry,
} from '../db/runs.js';
import { announceRunProgress, type FleetPubSub } from '../events/pubsub.js';
import type { Db } from '../db/client.js';
import {
  callAgain,
  callBody,
  notRun,
  phaseVerdict,
  retryDelaySeconds,
  scriptsUnsupported,
  statusExpected,
  stepsOf,
  type DeploymentStep,
  type PhaseVerdict,
  type StepPhase,
  type StepResult,
} from '../fleet/steps.js';

export interface StepActivityDeps {
  db: Db;
  pubsub: FleetPubSub;
  /** The control-plane calls' secrets by name (default: FLEETPATCH_STEP_SECRET_* of this process). */
  secrets?: ReadonlyMap<string, string>;
}

/** The script steps of a phase as the agent's job carries them. */
export function scriptJobSteps(steps: readonly DeploymentStep[] | null | undefined, phase: StepPhase): ScriptJobStep[] {
  return stepsOf(steps ?? [], phase, 'SCRIPT').map((s) => ({
    index: s.index,
    name: s.name,
    phase: s.phase,
    onFailure: s.onFailure,
    inline: s.script!.inline,
    path: s.script!.path,
    interpreter: s.script!.interpreter,
    timeoutSeconds: s.script!.timeoutSeconds,
  }));
}

/** One line of a step's outcome in the machine's job stream and the run's log. */
export function stepLine(machineName: string, r: StepResult): string {
  const what = `${r.phase === 'PRE' ? 'pre' : 'post'}-step ${JSON.stringify(r.name)} (${r.kind === 'HTTP' ? 'call' : 'script'})`;
  // The message says what went wrong (it names the status or exit code); without one, the status or code says how it went.
  const how = r.message ?? (r.httpStatus !== null ? `HTTP ${r.httpStatus}` : r.exitCode !== null ? `exit code ${r.exitCode}` : null);
  const detail = [how, r.attempts > 1 ? `${r.attempts} attempts` : null].filter(Boolean).join(', ');
  return `${machineName}: ${what} ${r.status}${detail ? `: ${detail}` : ''}.`;
}

/** Replaces every secret's value in `text` (an answer may echo a header back). */
function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length > 0) out = out.split(s).join('[secret]');
  return out;
}

/** How a page of machines' calls runs (runPageStepCalls). */
export interface PageCallOptions {
  /** Machines whose calls run at once. */
  parallel: number;
  /** Asked before each machine's calls start: false leaves the machine uncalled (a halt, the advance's time spent). */
  mayStart?: () => boolean;
  /** Told of each machine's verdict once its calls are recorded, before the page is through. */
  called?: (machineRunId: string, verdict: PhaseVerdict) => void;
}

/**
 * Results that end within this long of each other share a transaction. A call's result is recorded
 * at most this long (plus the transaction before it) after the call ended, and the machine's next
 * call waits for it: a crash in between makes again only the calls of that short while, as a crash
 * between a call and its own transaction did.
 */
export const RECORD_BATCH_MS = 50;

/**
 * Records the step results of a run's machine runs as their calls end, those that end close
 * together in one transaction with one announce (recordStepResultsMany): a flush when `batch`
 * results wait (every machine's calls are waiting on it) or RECORD_BATCH_MS after the first, one
 * flush at a time. Each record resolves once its transaction committed.
 */
function createStepRecorder(db: Db, pubsub: FleetPubSub, runId: string, batch: number) {
  let waiting: Array<{ entry: StepResultsEntry; done: () => void; failed: (error: unknown) => void }> = [];
  let timer: ReturnType<typeof setTimeout> | null = null;
  let flushes: Promise<void> = Promise.resolve();
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    const taken = waiting;
    waiting = [];
    if (taken.length === 0) return;
    flushes = flushes.then(async () => {
      try {
        const { progress } = await recordStepResultsMany(db, runId, taken.map((w) => w.entry));
        announceRunProgress(pubsub, runId, progress);
        for (const w of taken) w.done();
      } catch (error) {
        for (const w of taken) w.failed(error);
      }
    });
  };
  return (entry: StepResultsEntry): Promise<void> => {
    if (entry.results.length === 0) return Promise.resolve();
    return new Promise<void>((done, failed) => {
      waiting.push({ entry, done, failed });
      if (waiting.length >= batch) flush();
      else timer ??= setTimeout(flush, RECORD_BATCH_MS);
    });
  };
}

/**
 * The step activities of a machine run's workflow, and runPageStepCalls, which a batched run's
 * advance calls in-process (its options hold functions: it is no activity of its own).
 */
export function createStepCalls({ db, pubsub, secrets }: StepActivityDeps) {
  const secretValues = () => secrets ?? stepSecrets();

  const context = async (machineRunId: string): Promise<{ machineRun: MachineRunRow; run: RunRow; deployment: DeploymentRow; machine: MachineRow | undefined }> => {
    const machineRun = await findMachineRun(db, machineRunId);
    const run = machineRun && (await findRun(db, machineRun.runId));
    if (!machineRun || !run) throw ApplicationFailure.nonRetryable(`Machine run ${machineRunId} does not exist.`, 'NOT_FOUND');
    const deployment = await findDeployment(db, run.deploymentId, { includeDeleted: true });
    if (!deployment) throw ApplicationFailure.nonRetryable(`Deployment ${run.deploymentId} does not exist.`, 'NOT_FOUND');
    return { machineRun, run, deployment, machine: await findMachine(db, machineRun.machineId) };
  };

  const record = async (machineRun: MachineRunRow, results: StepResult[]) => {
    if (results.length === 0) return;
    const { progress } = await recordStepResults(db, machineRun.id, results, results.map((r) => stepLine(machineRun.machineName, r)));
    announceRunProgress(pubsub, machineRun.runId, progress);
  };

  /** One call with its retries: the result, never an exception (a failing call is a failed step). */
  const call = async (step: DeploymentStep & { index: number }, body: Record<string, unknown>, values: ReadonlyMap<string, string>): Promise<StepResult> => {
    const http = step.http!;
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'fleetpatch-worker' };
    const startedAt = new Date().toISOString();
    const result = (status: StepResult['status'], message: string | null, httpStatus: number | null, attempts: number): StepResult => ({
      index: step.index,
      name: step.name,
      phase: step.phase,
      kind: 'HTTP',
      onFailure: step.onFailure,
      status,
      message: message && redact(message, [...values.values()]),
      exitCode: null,
      httpStatus,
      attempts,
      startedAt,
      endedAt: new Date().toISOString(),
    });
    for (const h of http.headers) {
      if (h.secret !== null) {
        const value = values.get(h.secret);
        // Named when the deployment was saved, gone from this worker's settings since.
        if (value === undefined) return result('FAILED', `the secret ${h.secret} is not set on this worker (FLEETPATCH_STEP_SECRET_${h.secret})`, null, 0);
        headers[h.name] = value;
      } else {
        headers[h.name] = h.value!;
      }
    }
    let attempt = 0;
    let problem = '';
    let lastStatus: number | null = null;
    for (;;) {
      attempt += 1;
      try {
        const response = await fetch(http.url, {
          method: http.method,
          headers,
          body: http.method === 'GET' ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(http.timeoutSeconds * 1000),
          // A redirect is an answer to judge, not to follow with the secrets to another place.
          redirect: 'manual',
        });
        lastStatus = response.status;
        const text = (await response.text().catch(() => '')).slice(0, 300);
        if (statusExpected(response.status, http.expectedStatus)) return result('SUCCEEDED', null, response.status, attempt);
        problem = `answered HTTP ${response.status}${http.expectedStatus.length > 0 ? ` (expected ${http.expectedStatus.join(', ')})` : ' (expected 2xx)'}${text.trim() ? `: ${text.trim().replace(/\s+/g, ' ')}` : ''}`;
      } catch (error) {
        lastStatus = null;
        const name = (error as { name?: string }).name;
        const cause = (error as { cause?: { code?: string; message?: string } }).cause;
        problem = name === 'TimeoutError' || name === 'AbortError' ? `no answer within ${http.timeoutSeconds} s` : `could not reach ${new URL(http.url).host}: ${cause?.code ?? cause?.message ?? (error as Error).message}`;
      }
      if (!callAgain(attempt, http.retries)) return result('FAILED', problem, lastStatus, attempt);
      Context.current().heartbeat({ step: step.index, attempt });
      // Not the activity's cancellable sleep: a call begun is seen through, as the machine run's
      // workflow sees its calls through (and a batched run's advance, canceled meanwhile, records
      // the result before it stops).
      await new Promise((resolve) => setTimeout(resolve, retryDelaySeconds(attempt) * 1000));
    }
  };

  const phaseResults = (row: MachineRunRow, phase: StepPhase) => row.stepResults.filter((r) => r.phase === phase);

  /**
   * A phase's control-plane calls on one machine, in order, each recorded (`record`) before the
   * next is made, so that a retry skips those already recorded and no call is made twice after it
   * ended. A failure that does not CONTINUE stops the phase: the calls after it are NOT_RUN. In the
   * PRE phase, a machine whose agent cannot run scripts then has its first PRE script failed (the
   * agent is sent none). Answers the phase's verdict. One machine run's workflow (runStepCalls) and
   * a batched run's advance (runPageStepCalls) both make their calls here.
   */
  const phaseCalls = async (
    c: { machineRun: MachineRunRow; run: RunRow; deployment: DeploymentRow; machine: MachineRow | undefined; updateStatuses: readonly string[]; secrets: ReadonlyMap<string, string> },
    phase: StepPhase,
    record: (results: StepResult[]) => Promise<void>,
  ): Promise<PhaseVerdict> => {
    const { machineRun, run, deployment, machine } = c;
    const steps = deployment.steps ?? [];
    const done = new Set(machineRun.stepResults.map((r) => r.index));
    const results = phaseResults(machineRun, phase);
    const updates: Record<string, number> = {};
    if (phase === 'POST') for (const status of c.updateStatuses) updates[status] = (updates[status] ?? 0) + 1;
    for (const step of stepsOf(steps, phase, 'HTTP')) {
      if (done.has(step.index)) continue;
      let r: StepResult;
      if (phaseVerdict(results).action !== 'GO_ON') {
        r = notRun([step], 'an earlier step failed')[0]!;
      } else {
        const body = callBody(step, {
          deployment: { id: deployment.id, name: deployment.name },
          run: { id: run.id, ring: machineRun.ring },
          machine: { id: machineRun.machineId, name: machineRun.machineName, machineRunId: machineRun.id, status: machineRun.status, rebootOutcome: machineRun.rebootOutcome },
          updates,
        });
        r = await call(step, body, c.secrets);
      }
      results.push(r);
      await record([r]);
    }
    if (phase === 'PRE' && phaseVerdict(results).action === 'GO_ON') {
      const scripts = stepsOf(steps, 'PRE', 'SCRIPT').filter((s) => !done.has(s.index));
      const unsupported = scriptsUnsupported(scripts, { capabilities: machine?.agentCapabilities ?? [], version: machine?.agentVersion ?? null });
      results.push(...unsupported);
      await record(unsupported);
    }
    return phaseVerdict(results);
  };

  return {
    /** A phase's control-plane calls on one machine (phaseCalls), each result in a transaction of its own; what the phase's results say the machine run does next. */
    async runStepCalls(input: { machineRunId: string; phase: StepPhase }): Promise<{ verdict: PhaseVerdict }> {
      const c = await context(input.machineRunId);
      const updateStatuses = input.phase === 'POST' ? (await updateResultsOf(db, c.machineRun.id)).map((u) => u.status) : [];
      return { verdict: await phaseCalls({ ...c, updateStatuses, secrets: secretValues() }, input.phase, (results) => record(c.machineRun, results)) };
    },

    /**
     * A phase's control-plane calls on a page of a run's machines (a batched run's advance),
     * `options.parallel` machines at once, each machine's as runStepCalls makes them (phaseCalls).
     * What they need is read once for the page (the run, the deployment, the machine runs, their
     * update statuses for POST, their machines when PRE scripts exist), and the results that end
     * close together are recorded together (createStepRecorder). Answers the verdict of each machine
     * whose calls ran; a machine `mayStart` refused is absent.
     */
    async runPageStepCalls(input: { runId: string; machineRunIds: readonly string[]; phase: StepPhase }, options: PageCallOptions): Promise<Map<string, PhaseVerdict>> {
      const verdicts = new Map<string, PhaseVerdict>();
      if (input.machineRunIds.length === 0) return verdicts;
      const run = await findRun(db, input.runId);
      if (!run) throw ApplicationFailure.nonRetryable(`Run ${input.runId} does not exist.`, 'NOT_FOUND');
      const deployment = await findDeployment(db, run.deploymentId, { includeDeleted: true });
      if (!deployment) throw ApplicationFailure.nonRetryable(`Deployment ${run.deploymentId} does not exist.`, 'NOT_FOUND');
      const rows = new Map((await machineRunsByIds(db, input.machineRunIds)).map((m) => [m.id, m]));
      const missing = input.machineRunIds.find((id) => rows.get(id)?.runId !== run.id);
      if (missing) throw ApplicationFailure.nonRetryable(`Machine run ${missing} does not exist.`, 'NOT_FOUND');
      const statuses = input.phase === 'POST' ? await updateStatusesOfMany(db, input.machineRunIds) : new Map<string, string[]>();
      // Only a PRE phase followed by scripts asks what the machine's agent can run.
      const withScripts = input.phase === 'PRE' && stepsOf(deployment.steps ?? [], 'PRE', 'SCRIPT').length > 0;
      const machines = withScripts ? new Map((await findMachines(db, [...rows.values()].map((m) => m.machineId))).map((m) => [m.id, m])) : new Map<string, MachineRow>();
      const record = createStepRecorder(db, pubsub, run.id, options.parallel);
      // Read once for the page: reading this process's environment is not free (a quarter of a call's CPU in the worker when read per call).
      const values = secretValues();
      const activity = Context.current();
      // A machine's calls may wait on their answers for minutes: the activity stays seen alive meanwhile.
      const beat = setInterval(() => activity.heartbeat(), 2000);
      try {
        let next = 0;
        const worker = async () => {
          while (next < input.machineRunIds.length) {
            if (options.mayStart && !options.mayStart()) return;
            const machineRun = rows.get(input.machineRunIds[next++]!)!;
            const verdict = await phaseCalls(
              { machineRun, run, deployment, machine: machines.get(machineRun.machineId), updateStatuses: statuses.get(machineRun.id) ?? [], secrets: values },
              input.phase,
              (results) => record({ machineRunId: machineRun.id, results, lines: results.map((r) => stepLine(machineRun.machineName, r)) }),
            );
            verdicts.set(machineRun.id, verdict);
            options.called?.(machineRun.id, verdict);
          }
        };
        await Promise.all(Array.from({ length: Math.min(options.parallel, input.machineRunIds.length) }, worker));
      } finally {
        clearInterval(beat);
      }
      return verdicts;
    },

    /** Records how the scripts of a job went (its result's steps), with a line each, and answers what the phase's results say. */
    async recordScriptSteps(input: { machineRunId: string; phase: StepPhase; steps: StepResult[] }): Promise<{ verdict: PhaseVerdict }> {
      const machineRun = await findMachineRun(db, input.machineRunId);
      if (!machineRun) throw ApplicationFailure.nonRetryable(`Machine run ${input.machineRunId} does not exist.`, 'NOT_FOUND');
      const known = new Map(machineRun.stepResults.map((r) => [r.index, r]));
      const fresh = input.steps.filter((r) => JSON.stringify(known.get(r.index)) !== JSON.stringify(r));
      await record(machineRun, fresh);
      const merged = new Map(known);
      for (const r of input.steps) merged.set(r.index, r);
      return { verdict: phaseVerdict([...merged.values()].filter((r) => r.phase === input.phase)) };
    },

    /**
     * Marks the steps of a phase that never ran (the machine run was canceled, the agent was lost
     * or the machine did not come back) as NOT_RUN with the reason; only those not yet recorded.
     */
    async skipSteps(input: { machineRunId: string; phase: StepPhase; kind: 'SCRIPT' | 'HTTP' | null; reason: string }): Promise<void> {
      const { machineRun, deployment } = await context(input.machineRunId);
      const done = new Set(machineRun.stepResults.map((r) => r.index));
      const left = (deployment.steps ?? []).map((s, index) => ({ ...s, index })).filter((s) => s.phase === input.phase && !done.has(s.index) && (input.kind === null || (input.kind === 'SCRIPT') === (s.script !== null)));
      await record(machineRun, notRun(left, input.reason));
    },

    /**
     * Hands the machine's POST scripts to its agent as a job without updates (after the installs
     * and the reboot) and returns without completing: the API completes this activity with the
     * agent's result, as for an install. A machine whose agent cannot run scripts, or that was
     * removed, gets its answer at once (the first script failed with the reason). Once per machine run.
     */
    async dispatchPostScripts(input: { machineRunId: string; graceSeconds: number }): Promise<JobResult> {
      const { machineRun, run, deployment, machine } = await context(input.machineRunId);
      const { job, results } = postScriptsJob(deployment.steps, { ...machineRun, runId: run.id }, machine, input.graceSeconds, Date.now());
      if (!job || !machine) return { updates: [], rebootRequired: false, rebooting: false, bootId: null, timedOut: false, error: null, steps: results };
      const { taskToken } = Context.current().info;
      const command = await ensurePostStepsCommand(db, { machineId: machine.id, machineRunId: machineRun.id, job, taskToken: Buffer.from(taskToken).toString('base64') });
      if (command.result) return command.result;
      const { progress } = await recordStepResults(db, machineRun.id, [], [postScriptsSentLine(machineRun.machineName, job.scripts?.length ?? 0)]);
      announceRunProgress(pubsub, machineRun.runId, progress);
      pubsub.publish('agentCommandQueued', machine.id, { commandId: command.id });
      throw new CompleteAsyncError();
    },
  };
}

/**
 * What a machine run's POST scripts need once its installs (and its reboot) are through: `job`, the
 * job without updates that carries the scripts not recorded yet to its agent (its deadline: their
 * timeouts from `nowMs`); or `results` to record at once instead, when the machine was removed or
 * its agent does not run scripts (the first script failed with the reason); neither when none is
 * left. A machine run's workflow (dispatchPostScripts) and a batched run's advance both use it.
 */
export function postScriptsJob(
  steps: readonly DeploymentStep[] | null | undefined,
  machineRun: { id: string; runId: string; stepResults: readonly StepResult[] },
  machine: { agentCapabilities: readonly string[]; agentVersion: string | null } | undefined,
  graceSeconds: number,
  nowMs: number,
): { job: InstallJob | null; results: StepResult[] } {
  const done = new Set(machineRun.stepResults.map((r) => r.index));
  const scripts = scriptJobSteps(steps, 'POST').filter((s) => !done.has(s.index));
  if (scripts.length === 0) return { job: null, results: [] };
  const definitions = stepsOf(steps ?? [], 'POST', 'SCRIPT').filter((s) => !done.has(s.index));
  if (!machine) return { job: null, results: scriptsUnsupported(definitions, { capabilities: [], version: null }).map((r, i) => (i === 0 ? { ...r, message: 'the machine was removed' } : r)) };
  const unsupported = scriptsUnsupported(definitions, { capabilities: machine.agentCapabilities, version: machine.agentVersion });
  if (unsupported.length > 0) return { job: null, results: unsupported };
  const longest = scripts.reduce((sum, s) => sum + s.timeoutSeconds, 0);
  const job: InstallJob = {
    runId: machineRun.runId,
    machineRunId: machineRun.id,
    // No update to fit in the window: the scripts have their own timeouts.
    deadline: new Date(nowMs + longest * 1000).toISOString(),
    graceSeconds,
    rebootSetting: 'NEVER',
    rebootReserveSeconds: 0,
    updates: [],
    scripts,
  };
  return { job, results: [] };
}

/** The line a machine's job stream gets when its POST scripts go to its agent. */
export const postScriptsSentLine = (machineName: string, scripts: number) => `${machineName}: ${scripts} post-step script(s) sent to the agent.`;

/** The step activities a worker registers (createStepCalls without runPageStepCalls). */
export function createStepActivities(deps: StepActivityDeps) {
  const { runPageStepCalls: _, ...activities } = createStepCalls(deps);
  return activities;
}
