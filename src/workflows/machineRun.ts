import { ActivityFailure, CancelledFailure, CancellationScope, TimeoutFailure, condition, isCancellation, patched, proxyActivities, setHandler } from '@temporalio/workflow';
import type { DeploymentActivities } from '../activities/index.js';
import { rebootOutcome as rebootOutcomeOf } from '../fleet/reboot.js';
import { skippedByStepReason, type PhaseVerdict, type StepPhases } from '../fleet/steps.js';
import { agentReturnedSignal } from './config.js';

export interface MachineRunInput {
  runId: string;
  machineRunId: string;
  machineId: string;
  windowEndsAtMs: number;
  graceSeconds: number;
  /** Silence from the agent longer than this during an install means it is gone. */
  installHeartbeatSeconds: number;
  /** How long a machine may take to come back from a reboot. */
  rebootTimeoutSeconds: number;
  /** Which phases have steps (absent: none, as in every run begun before steps existed). */
  steps?: StepPhases;
}

/** How a machine run ended, and whether one of its steps asks to halt the run (HALT_RUN). */
export interface MachineRunOutcome {
  status: string;
  halt?: string;
}

/** How to finish the machine run; `halt`: a step asks to halt the run (not passed to finishMachineRun). */
type Finish = { halt?: string; requestAssessment?: boolean; timedOut?: boolean; rebootFailed?: boolean; agentLost?: boolean; canceled?: boolean; jobFailed?: boolean; rebootOutcome?: string | null; error?: string | null };

const steps = proxyActivities<DeploymentActivities>({
  // Database writes and a NOTIFY: seconds. Retried with backoff on transient errors.
  startToCloseTimeout: '1 minute',
});

/**
 * A machine run with steps that is canceled records its POST steps as not run and ends CANCELED.
 * Without this marker, that record was asked for inside the canceled scope, which refuses it at
 * once: the workflow failed there and its machine run stayed IN_PROGRESS. Histories without the
 * marker replay as they ran.
 */
export const CANCELED_STEPS_PATCH = 'canceled-steps-recorded';

/** The POST steps a cancel leaves not run, recorded even though the run was canceled. */
function skipStepsOnCancel(machineRunId: string): Promise<void> {
  const skip = () => steps.skipSteps({ machineRunId, phase: 'POST', kind: null, reason: 'the run was canceled' });
  return patched(CANCELED_STEPS_PATCH) ? CancellationScope.nonCancellable(skip) : skip();
}

/**
 * One machine in a run: hand its install job to the agent (or attach to the job the run handed
 * over in bulk), wait for the result, reboot if the setting says so and wait for the machine to
 * come back, then end the machine run, asking for a fresh assessment in the same step.
 */
export async function machineRunWorkflow(input: MachineRunInput): Promise<MachineRunOutcome> {
  let returnedBootId: string | null | undefined;
  setHandler(agentReturnedSignal, ({ bootId }) => {
    returnedBootId = bootId;
  });
  const finish = (outcome: Finish) =>
    CancellationScope.nonCancellable(() =>
      steps.finishMachineRun({
        machineRunId: input.machineRunId,
        requestAssessment: outcome.requestAssessment ?? false,
        timedOut: outcome.timedOut ?? false,
        rebootFailed: outcome.rebootFailed ?? false,
        agentLost: outcome.agentLost ?? false,
        canceled: outcome.canceled ?? false,
        jobFailed: outcome.jobFailed ?? false,
        rebootOutcome: outcome.rebootOutcome ?? null,
        error: outcome.error ?? null,
      }),
    );

  const install = proxyActivities<DeploymentActivities>({
    // Until the window ends, plus the grace a running update gets, plus a margin for the result to arrive.
    startToCloseTimeout: Math.max(60_000, input.windowEndsAtMs + input.graceSeconds * 1000 + 120_000 - Date.now()),
    heartbeatTimeout: input.installHeartbeatSeconds * 1000,
    // One retry: a worker that dies while handing the job over leaves an attempt that nobody
    // completes, and an API process that dies while answering a poll loses the job on its way. A
    // retry installs nothing twice (the same job, kept by the agent by its id): it re-registers the
    // task token and offers the job again if the agent never reported on it; a second silence is
    // reported as a lost agent.
    retry: { maximumAttempts: 2, initialInterval: '1 second' },
  });

  // Control-plane calls: each attempt is at most 5 minutes (steps.ts) and the activity heartbeats
  // before each, so 6 minutes of silence is a lost worker; a retry skips the calls already recorded.
  // The whole phase is bounded by its calls' budget (validated against the window when saved).
  const calls = proxyActivities<DeploymentActivities>({
    startToCloseTimeout: Math.max(60, (input.steps?.callSeconds ?? 0) + 300) * 1000,
    heartbeatTimeout: '6 minutes',
    retry: { maximumAttempts: 2, initialInterval: '1 second' },
  });
  // POST scripts after the window may have ended: their own timeouts, plus a margin for the result
  // to arrive; the agent's keep-alives are the heartbeat, as for an install.
  const postScripts = proxyActivities<DeploymentActivities>({
    startToCloseTimeout: Math.max(60, (input.steps?.postScriptSeconds ?? 0) + input.graceSeconds + 120) * 1000,
    heartbeatTimeout: input.installHeartbeatSeconds * 1000,
    retry: { maximumAttempts: 2, initialInterval: '1 second' },
  });

  /** The install job (with the PRE scripts) and the reboot: how the machine run is to be finished. */
  const installPhase = async (): Promise<Finish> => {
    let result;
    try {
      result = await install.dispatchInstall({ machineRunId: input.machineRunId, graceSeconds: input.graceSeconds });
    } catch (error) {
      if (isCancellation(error) || error instanceof CancelledFailure) return { canceled: true, error: 'The run was canceled.' };
      const timeout = error instanceof ActivityFailure && error.cause instanceof TimeoutFailure ? error.cause.timeoutType : undefined;
      if (timeout === 'HEARTBEAT') {
        return { agentLost: true, error: `The agent stopped reporting during the install (nothing for ${input.installHeartbeatSeconds} s): it may have crashed or lost its connection. The next assessment shows what was installed.` };
      }
      if (timeout !== undefined) return { timedOut: true, error: 'The install ran past the maintenance window and its grace period.' };
      const message = error instanceof ActivityFailure && error.cause ? error.cause.message : error instanceof Error ? error.message : String(error);
      return { jobFailed: true, error: message };
    }

    if (result.error) return { jobFailed: true, error: result.error.message };
    // The PRE scripts ran in the job, before its updates; a failed one that stops the job left them
    // NOT_ATTEMPTED and asked for no reboot.
    if (input.steps?.pre && result.steps && result.steps.length > 0) {
      const { verdict } = await steps.recordScriptSteps({ machineRunId: input.machineRunId, phase: 'PRE', steps: result.steps });
      if (verdict.action !== 'GO_ON') return outcomeOfVerdict(verdict, {});
    }

    if (result.rebooting) {
      await steps.markRebooting({ machineRunId: input.machineRunId });
      const deadline = Date.now() + input.rebootTimeoutSeconds * 1000;
      let back = false;
      // The API's signal makes this quick; the periodic look covers a signal sent before we waited.
      while (!back && Date.now() < deadline) {
        back = await condition(() => returnedBootId !== undefined && returnedBootId !== result.bootId, Math.min(10_000, Math.max(1, deadline - Date.now())));
        if (!back) back = await steps.machineReturned({ machineId: input.machineId, bootIdBefore: result.bootId });
      }
      if (!back) {
        return { rebootFailed: true, rebootOutcome: rebootOutcomeOf(result, false), timedOut: result.timedOut, error: `The machine did not come back within ${Math.round(input.rebootTimeoutSeconds / 60)} minutes of its reboot. Check its console; the agent reports again once it runs.` };
      }
    }
    return { requestAssessment: true, timedOut: result.timedOut, rebootOutcome: rebootOutcomeOf(result), error: result.timedOut ? 'An update ran past the maintenance window and its grace period.' : null };
  };

  if (!input.steps) return { status: await finish(await installPhase()) };

  // Steps: PRE calls (and a check that the agent runs scripts), the install job with the PRE
  // scripts, the reboot, then POST scripts (a job of their own) and POST calls, which run even when
  // the installs failed or were skipped; not after a cancel.
  let outcome: Finish | undefined;
  if (input.steps.pre) {
    const pre = await CancellationScope.nonCancellable(() => calls.runStepCalls({ machineRunId: input.machineRunId, phase: 'PRE' }));
    if (pre.verdict.action !== 'GO_ON') outcome = outcomeOfVerdict(pre.verdict, {});
  }
  outcome ??= await installPhase();
  if (outcome.canceled) {
    await skipStepsOnCancel(input.machineRunId);
    return { status: await finish(outcome) };
  }
  let halt = outcome.halt;
  if (input.steps.post) {
    const agentGone = outcome.agentLost || outcome.rebootFailed;
    let post: PhaseVerdict = { action: 'GO_ON' };
    if (agentGone) {
      await steps.skipSteps({ machineRunId: input.machineRunId, phase: 'POST', kind: 'SCRIPT', reason: 'the agent was not there to run it' });
    } else {
      let scripts: Awaited<ReturnType<DeploymentActivities['dispatchPostScripts']>> | undefined;
      try {
        scripts = await postScripts.dispatchPostScripts({ machineRunId: input.machineRunId, graceSeconds: input.graceSeconds });
      } catch (error) {
        if (isCancellation(error) || error instanceof CancelledFailure) {
          await skipStepsOnCancel(input.machineRunId);
          return { status: await finish({ ...outcome, canceled: true, error: 'The run was canceled.' }) };
        }
        const message = error instanceof ActivityFailure && error.cause ? error.cause.message : error instanceof Error ? error.message : String(error);
        await steps.skipSteps({ machineRunId: input.machineRunId, phase: 'POST', kind: 'SCRIPT', reason: `the agent did not report on its post-step scripts: ${message}` });
        post = { action: 'FAIL_MACHINE', reason: `The agent did not report on its post-step scripts: ${message}` };
      }
      if (scripts?.steps && scripts.steps.length > 0) post = (await steps.recordScriptSteps({ machineRunId: input.machineRunId, phase: 'POST', steps: scripts.steps })).verdict;
    }
    const calls2 = await CancellationScope.nonCancellable(() => calls.runStepCalls({ machineRunId: input.machineRunId, phase: 'POST' }));
    if (post.action === 'GO_ON') post = calls2.verdict;
    if (post.action === 'HALT_RUN') halt ??= post.reason;
    if (post.action === 'FAIL_MACHINE' || post.action === 'HALT_RUN') {
      outcome = { ...outcome, jobFailed: true, error: outcome.error ? `${outcome.error}; ${post.reason}.` : `${post.reason}.` };
    }
  }
  const status = await finish(outcome);
  return halt ? { status, halt } : { status };
}

/** How a machine run ends after a phase's verdict (SKIP_INSTALLS: not failed; its updates NOT_ATTEMPTED with the reason). */
function outcomeOfVerdict(verdict: Extract<PhaseVerdict, { reason: string }>, base: Finish): Finish {
  if (verdict.action === 'SKIP_INSTALLS') return { ...base, error: skippedByStepReason(verdict) };
  if (verdict.action === 'HALT_RUN') return { ...base, jobFailed: true, error: `${verdict.reason}.`, halt: verdict.reason };
  return { ...base, jobFailed: true, error: `${verdict.reason}.` };
}
