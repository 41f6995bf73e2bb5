import { ActivityFailure, CancelledFailure, CancellationScope, TimeoutFailure, condition, isCancellation, proxyActivities, setHandler } from '@temporalio/workflow';
import type { DeploymentActivities } from '../activities/index.js';
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
}

const steps = proxyActivities<DeploymentActivities>({
  // Database writes and a NOTIFY: seconds. Retried with backoff on transient errors.
  startToCloseTimeout: '1 minute',
});

/**
 * One machine in a run: hand its install job to the agent (or attach to the job the run handed
 * over in bulk), wait for the result, reboot if the setting says so and wait for the machine to
 * come back, then end the machine run, asking for a fresh assessment in the same step.
 */
export async function machineRunWorkflow(input: MachineRunInput): Promise<{ status: string }> {
  let returnedBootId: string | null | undefined;
  setHandler(agentReturnedSignal, ({ bootId }) => {
    returnedBootId = bootId;
  });
  const finish = (outcome: { requestAssessment?: boolean; timedOut?: boolean; rebootFailed?: boolean; agentLost?: boolean; canceled?: boolean; jobFailed?: boolean; rebootOutcome?: string | null; error?: string | null }) =>
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

  let result;
  try {
    result = await install.dispatchInstall({ machineRunId: input.machineRunId, graceSeconds: input.graceSeconds });
  } catch (error) {
    if (isCancellation(error) || error instanceof CancelledFailure) return { status: await finish({ canceled: true, error: 'The run was canceled.' }) };
    const timeout = error instanceof ActivityFailure && error.cause instanceof TimeoutFailure ? error.cause.timeoutType : undefined;
    if (timeout === 'HEARTBEAT') {
      return { status: await finish({ agentLost: true, error: `The agent stopped reporting during the install (nothing for ${input.installHeartbeatSeconds} s): it may have crashed or lost its connection. The next assessment shows what was installed.` }) };
    }
    if (timeout !== undefined) return { status: await finish({ timedOut: true, error: 'The install ran past the maintenance window and its grace period.' }) };
    const message = error instanceof ActivityFailure && error.cause ? error.cause.message : error instanceof Error ? error.message : String(error);
    return { status: await finish({ jobFailed: true, error: message }) };
  }

  if (result.error) return { status: await finish({ jobFailed: true, error: result.error.message }) };

  let rebootOutcome = result.rebooting ? 'REBOOTED' : result.rebootRequired ? 'NOT_ALLOWED' : 'NOT_NEEDED';
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
      rebootOutcome = 'TIMED_OUT';
      return {
        status: await finish({ rebootFailed: true, rebootOutcome, timedOut: result.timedOut, error: `The machine did not come back within ${Math.round(input.rebootTimeoutSeconds / 60)} minutes of its reboot. Check its console; the agent reports again once it runs.` }),
      };
    }
  }
  return { status: await finish({ requestAssessment: true, timedOut: result.timedOut, rebootOutcome, error: result.timedOut ? 'An update ran past the maintenance window and its grace period.' : null }) };
}
