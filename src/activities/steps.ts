import { CompleteAsyncError, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { InstallJob, JobResult, ScriptJobStep } from '../domain/types.js';
import { stepSecrets } from '../config.js';
import { findDeployment, type DeploymentRow } from '../db/deployments.js';
import { findMachine, type MachineRow } from '../db/machines.js';
import { ensurePostStepsCommand, findMachineRun, findRun, recordStepResults, updateResultsOf, type MachineRunRow, type RunRow } from '../db/runs.js';
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

export function createStepActivities({ db, pubsub, secrets }: StepActivityDeps) {
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
  const call = async (step: DeploymentStep & { index: number }, body: Record<string, unknown>): Promise<StepResult> => {
    const http = step.http!;
    const values = secretValues();
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

  return {
    /**
     * A phase's control-plane calls on one machine, in order, each recorded as it ends (a retry of
     * this activity skips those already recorded, so no call is made twice after it ended). A
     * failure that does not CONTINUE stops the phase: the calls after it are NOT_RUN. In the PRE
     * phase, a machine whose agent cannot run scripts then has its first PRE script failed (the
     * agent is sent none). Answers what the phase's results say the machine run does next.
     */
    async runStepCalls(input: { machineRunId: string; phase: StepPhase }): Promise<{ verdict: PhaseVerdict }> {
      const { machineRun, run, deployment, machine } = await context(input.machineRunId);
      const steps = deployment.steps ?? [];
      const done = new Set(machineRun.stepResults.map((r) => r.index));
      const results = phaseResults(machineRun, input.phase);
      const updates: Record<string, number> = {};
      if (input.phase === 'POST') for (const u of await updateResultsOf(db, machineRun.id)) updates[u.status] = (updates[u.status] ?? 0) + 1;
      for (const step of stepsOf(steps, input.phase, 'HTTP')) {
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
          r = await call(step, body);
        }
        results.push(r);
        await record(machineRun, [r]);
      }
      if (input.phase === 'PRE' && phaseVerdict(results).action === 'GO_ON') {
        const scripts = stepsOf(steps, 'PRE', 'SCRIPT').filter((s) => !done.has(s.index));
        const unsupported = scriptsUnsupported(scripts, { capabilities: machine?.agentCapabilities ?? [], version: machine?.agentVersion ?? null });
        results.push(...unsupported);
        await record(machineRun, unsupported);
      }
      return { verdict: phaseVerdict(results) };
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
      const done = new Set(machineRun.stepResults.map((r) => r.index));
      const scripts = scriptJobSteps(deployment.steps, 'POST').filter((s) => !done.has(s.index));
      const empty = (steps: StepResult[]): JobResult => ({ updates: [], rebootRequired: false, rebooting: false, bootId: null, timedOut: false, error: null, steps });
      if (scripts.length === 0) return empty([]);
      const definitions = stepsOf(deployment.steps ?? [], 'POST', 'SCRIPT').filter((s) => !done.has(s.index));
      if (!machine) return empty(scriptsUnsupported(definitions, { capabilities: [], version: null }).map((r, i) => (i === 0 ? { ...r, message: 'the machine was removed' } : r)));
      const unsupported = scriptsUnsupported(definitions, { capabilities: machine.agentCapabilities, version: machine.agentVersion });
      if (unsupported.length > 0) return empty(unsupported);
      const { taskToken } = Context.current().info;
      const longest = scripts.reduce((sum, s) => sum + s.timeoutSeconds, 0);
      const job: InstallJob = {
        runId: run.id,
        machineRunId: machineRun.id,
        // No update to fit in the window: the scripts have their own timeouts.
        deadline: new Date(Date.now() + longest * 1000).toISOString(),
        graceSeconds: input.graceSeconds,
        rebootSetting: 'NEVER',
        rebootReserveSeconds: 0,
        updates: [],
        scripts,
      };
      const command = await ensurePostStepsCommand(db, { machineId: machine.id, machineRunId: machineRun.id, job, taskToken: Buffer.from(taskToken).toString('base64') });
      if (command.result) return command.result;
      const { progress } = await recordStepResults(db, machineRun.id, [], [`${machineRun.machineName}: ${scripts.length} post-step script(s) sent to the agent.`]);
      announceRunProgress(pubsub, machineRun.runId, progress);
      pubsub.publish('agentCommandQueued', machine.id, { commandId: command.id });
      throw new CompleteAsyncError();
    },
  };
}
