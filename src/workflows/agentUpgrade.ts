import { ActivityFailure, CancellationScope, TimeoutFailure, condition, continueAsNew, isCancellation, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { AgentUpgradeActivities } from '../activities/index.js';
import { afterBusy, notStartedUpgradeReason } from '../fleet/agentUpgrades.js';

export interface AgentUpgradeInput {
  upgradeId: string;
  /** Tunable, with the production default (src/fleet); tests shorten it. */
  busyRetrySeconds?: number;
}

/**
 * A run holds one pending activity per machine being upgraded and about four history events per
 * machine. Past this history length it stops starting machines, lets the running ones end, and
 * continues as new (the machines still to do are in PostgreSQL): Temporal warns at 10,240 events
 * and stops a workflow at 51,200.
 */
const CONTINUE_AS_NEW_AFTER_EVENTS = 8000;

const steps = proxyActivities<AgentUpgradeActivities>({
  // Database reads and writes: seconds. Retried with backoff on transient errors.
  startToCloseTimeout: '2 minutes',
});

type Ended = { machineId: string; attempts: number; status: 'SUCCEEDED' | 'FAILED' | 'ROLLED_BACK' | 'BUSY' | 'TIMED_OUT' | 'CANCELED' };

/**
 * An agent upgrade: every machine it covers gets its UPGRADE command, at most `concurrency` at a
 * time, none new once the failures reach the threshold. Each command is an activity the API
 * completes with the agent's report; an agent busy with an install job is asked again a minute
 * later (src/fleet decides how often). Results are in PostgreSQL as they arrive; the workflow only
 * sequences.
 */
export async function agentUpgradeWorkflow(input: AgentUpgradeInput): Promise<string> {
  const begun = await steps.beginAgentUpgrade({ upgradeId: input.upgradeId });
  const threshold = begun.failureThreshold ?? Number.POSITIVE_INFINITY;
  const upgrade = proxyActivities<AgentUpgradeActivities>({
    // The download, the new executable's start and its first check-in, or the rollback after
    // rollbackAfterSeconds and the previous executable's start: a margin of 15 minutes over the
    // rollback window covers a 100 MiB download on a slow link and a service restart.
    startToCloseTimeout: (begun.rollbackAfterSeconds + 15 * 60) * 1000,
    // One retry: a worker that dies while handing the command over leaves an attempt nobody
    // completes; the retry attaches to the same command and offers it again (the agent knows it by its id).
    retry: { maximumAttempts: 2, initialInterval: '1 second' },
  });
  const queue = begun.pending.map((machineId) => ({ machineId, attempts: 0, notBefore: 0 }));
  const ended: Ended[] = [];
  let running = 0;
  let failed = begun.failed;
  let canceled = false;
  let continuing = false;

  const upgradeOne = async (machineId: string, attempts: number): Promise<void> => {
    try {
      const report = await upgrade.dispatchAgentUpgrade({ upgradeId: input.upgradeId, machineId });
      ended.push({ machineId, attempts: attempts + 1, status: report.status });
    } catch (error) {
      if (isCancellation(error)) {
        ended.push({ machineId, attempts, status: 'CANCELED' });
        return;
      }
      const timedOut = error instanceof ActivityFailure && error.cause instanceof TimeoutFailure;
      const message = timedOut
        ? `The agent did not report within ${begun.rollbackAfterSeconds + 15 * 60} s of its upgrade command: it may have lost its connection or stalled in the download. Its next check-in shows which version runs.`
        : `The upgrade command could not be handed to the agent: ${error instanceof ActivityFailure && error.cause ? error.cause.message : String(error)}`;
      await CancellationScope.nonCancellable(() => steps.recordAgentUpgradeOutcome({ upgradeId: input.upgradeId, machineId, status: timedOut ? 'TIMED_OUT' : 'FAILED', code: timedOut ? 'NO_REPORT' : 'DISPATCH_FAILED', message }));
      ended.push({ machineId, attempts, status: timedOut ? 'TIMED_OUT' : 'FAILED' });
    }
  };

  const scope = new CancellationScope();
  try {
    await scope.run(async () => {
      for (;;) {
        continuing ||= workflowInfo().historyLength > CONTINUE_AS_NEW_AFTER_EVENTS;
        const now = Date.now();
        while (!scope.consideredCancelled && !continuing && running < begun.concurrency && failed < threshold) {
          const due = queue.findIndex((q) => q.notBefore <= now);
          if (due < 0) break;
          const [next] = queue.splice(due, 1);
          running += 1;
          void upgradeOne(next!.machineId, next!.attempts);
        }
        if (running === 0 && (queue.length === 0 || failed >= threshold || continuing)) break;
        const waiting = queue.filter((q) => q.notBefore > now).map((q) => q.notBefore);
        const wake = running < begun.concurrency && waiting.length > 0 ? Math.max(1, Math.min(...waiting) - now) : undefined;
        // Not cancellable: after a cancel the running commands end CANCELED on their own.
        await CancellationScope.nonCancellable(async () => {
          if (wake === undefined) await condition(() => ended.length > 0);
          else await condition(() => ended.length > 0, wake);
        });
        for (const done of ended.splice(0)) {
          running -= 1;
          if (done.status === 'BUSY') {
            const next = afterBusy(done.attempts, { retrySeconds: input.busyRetrySeconds ?? begun.busyRetrySeconds, maxAttempts: begun.busyMaxAttempts });
            if ('skip' in next) await steps.recordAgentUpgradeOutcome({ upgradeId: input.upgradeId, machineId: done.machineId, status: 'SKIPPED', code: 'INSTALL_JOB_RUNNING', message: next.skip });
            else queue.push({ machineId: done.machineId, attempts: done.attempts, notBefore: Date.now() + next.retryInSeconds * 1000 });
          } else if (done.status === 'FAILED' || done.status === 'ROLLED_BACK' || done.status === 'TIMED_OUT') {
            failed += 1;
          }
        }
        if (scope.consideredCancelled && running === 0) break;
      }
    });
  } catch (error) {
    if (!isCancellation(error)) throw error;
  }
  canceled = scope.consideredCancelled;
  if (continuing && !canceled && queue.length > 0 && failed < threshold) return continueAsNew<typeof agentUpgradeWorkflow>(input);
  return CancellationScope.nonCancellable(() =>
    steps.finishAgentUpgrade({
      upgradeId: input.upgradeId,
      canceled,
      notStarted: queue.map((q) => q.machineId),
      notStartedReason: queue.length > 0 ? notStartedUpgradeReason({ canceled, failed, threshold }) : null,
    }),
  );
}
