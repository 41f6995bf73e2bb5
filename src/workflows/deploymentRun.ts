import { CancellationScope, condition, isCancellation, proxyActivities, startChild, workflowInfo } from '@temporalio/workflow';
import type { DeploymentActivities } from '../activities/index.js';
import { INSTALL_GRACE_SECONDS, notStartedReason, shouldStartMoreMachines } from '../fleet/planning.js';
import { workflowIds } from './config.js';
import { machineRunWorkflow } from './machineRun.js';

export interface DeploymentRunInput {
  deploymentId: string;
  /** Set when the API created the run (run now); absent for a scheduled occurrence. */
  runId?: string;
  trigger: 'SCHEDULE' | 'MANUAL';
  /** Tunables, with production defaults; tests shorten them. */
  installHeartbeatSeconds?: number;
  rebootTimeoutSeconds?: number;
}

/** Children started per workflow task (see the loop). */
const START_BATCH = 100;

const steps = proxyActivities<DeploymentActivities>({
  // Database reads and writes: seconds. Retried with backoff on transient errors.
  startToCloseTimeout: '2 minutes',
});

/**
 * One run of a deployment: record it, resolve the machines, hand the first `concurrency` machines'
 * jobs to their agents at once, and run one child workflow per machine, at most `concurrency` at
 * a time, starting no new machine once the failure threshold is reached or the window has ended.
 * Cancel stops the children and withdraws the jobs of machines not started; the run's status comes last.
 */
export async function deploymentRunWorkflow(input: DeploymentRunInput): Promise<string> {
  const begun = await steps.beginDeploymentRun({ deploymentId: input.deploymentId, workflowId: workflowInfo().workflowId, runId: input.runId, trigger: input.trigger });
  if (begun.windowEndsAtMs === null) return 'NOTHING_TO_DO';
  const threshold = begun.failureThreshold ?? Number.POSITIVE_INFINITY;
  const queue = [...begun.machines];
  // Children report here as they end: the loop waits on the queue, not on a race over every
  // running child (Promise.race over N children at each completion costs N² promise work, which
  // at 1,000 machines stretched workflow tasks past Temporal's deadline).
  let running = 0;
  const ended: Array<{ machineRunId: string; status: string }> = [];
  let childCanceled: unknown;
  let failed = 0;
  let canceled = false;

  // Children handle a cancel themselves (their machine runs end CANCELED) and return normally, so
  // the scope's own state, not an exception, says whether the run was canceled.
  const scope = new CancellationScope();
  try {
    await scope.run(async () => {
      // The first machines' jobs go to their agents in one step, before any child starts: the
      // agents install while the children are being started, 100 per workflow task, and each child
      // attaches to its job. As many as may run at once, and no more (nothing failed yet).
      const firstWave = queue.slice(0, begun.concurrency).map((m) => m.machineRunId);
      // Machines at the head of the queue whose agents already have their job: they have started,
      // so neither the window's end nor the failure threshold holds their child back (only a cancel,
      // which withdraws their jobs).
      let handedOverLeft = 0;
      if (firstWave.length > 0 && Date.now() < begun.windowEndsAtMs!) {
        // Not cancellable: once handed over, a cancel withdraws the jobs of the machines it leaves unstarted (finishDeploymentRun).
        await CancellationScope.nonCancellable(() => steps.handOverInstallJobs({ runId: begun.runId, machineRunIds: firstWave, graceSeconds: INSTALL_GRACE_SECONDS }));
        handedOverLeft = firstWave.length;
      }
      for (;;) {
        const starting: Array<Promise<unknown>> = [];
        while (
          !scope.consideredCancelled &&
          starting.length < START_BATCH &&
          (handedOverLeft > 0 || (Date.now() < begun.windowEndsAtMs! && shouldStartMoreMachines({ running, failed, remaining: queue.length }, begun.concurrency, threshold)))
        ) {
          const machine = queue.shift()!;
          handedOverLeft = Math.max(0, handedOverLeft - 1);
          running += 1;
          const started = startChild(machineRunWorkflow, {
            workflowId: workflowIds.machineRun(begun.runId, machine.machineId),
            args: [
              {
                runId: begun.runId,
                machineRunId: machine.machineRunId,
                machineId: machine.machineId,
                windowEndsAtMs: begun.windowEndsAtMs!,
                graceSeconds: INSTALL_GRACE_SECONDS,
                installHeartbeatSeconds: input.installHeartbeatSeconds ?? 120,
                rebootTimeoutSeconds: input.rebootTimeoutSeconds ?? 15 * 60,
              },
            ],
          });
          starting.push(started.catch(() => undefined));
          void started
            .then((child) => child.result())
            .then(
              (result) => void ended.push({ machineRunId: machine.machineRunId, status: result.status }),
              (error: unknown) => {
                if (isCancellation(error)) childCanceled ??= error;
                ended.push({ machineRunId: machine.machineRunId, status: 'FAILED' });
              },
            );
        }
        if (starting.length === START_BATCH) {
          // A batch per workflow task: one task that starts 1,000 children ran past the SDK's
          // 5 s workflow-task deadline on a busy 2-core machine and aborted the worker.
          await Promise.all(starting);
          continue;
        }
        if (running === 0) break;
        // Not cancellable: after a cancel the children end their machine runs CANCELED themselves,
        // and the run's status is decided once every one of them has.
        await CancellationScope.nonCancellable(() => condition(() => ended.length > 0));
        if (childCanceled) throw childCanceled;
        for (const done of ended.splice(0)) {
          running -= 1;
          if (done.status === 'FAILED' || done.status === 'TIMED_OUT') failed += 1;
        }
      }
    });
  } catch (error) {
    if (!isCancellation(error)) throw error;
    canceled = true;
  }
  canceled ||= scope.consideredCancelled;
  return CancellationScope.nonCancellable(() =>
    steps.finishDeploymentRun({
      runId: begun.runId,
      canceled,
      notStarted: queue.map((m) => m.machineRunId),
      notStartedReason: queue.length > 0 ? notStartedReason({ canceled, failed, threshold }) : null,
    }),
  );
}
