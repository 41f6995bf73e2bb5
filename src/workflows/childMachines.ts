import { CancellationScope, condition, isCancellation, proxyActivities, startChild, WorkflowIdReusePolicy } from '@temporalio/workflow';
import type { DeploymentActivities } from '../activities/index.js';
import { INSTALL_GRACE_SECONDS, shouldStartMoreMachines } from '../fleet/planning.js';
import type { StepPhases } from '../fleet/steps.js';
import { workflowIds } from './config.js';
import { machineRunWorkflow } from './machineRun.js';
import type { DeploymentRunInput } from './runInput.js';

/**
 * The machines of a run of child workflows (deploymentRun.ts, stepRun.ts): one machineRun workflow
 * per machine, its id the machine run's business id.
 */

/** Children started per workflow task (see the loop). */
const START_BATCH = 100;

const steps = proxyActivities<DeploymentActivities>({
  // Database reads and writes: seconds. Retried with backoff on transient errors.
  startToCloseTimeout: '2 minutes',
});

/** Why machines did not start after a step halted a run without rings (it has no gate to wait at). */
export function haltedReason(halts: readonly string[]): string {
  return `Not started: the run was halted by a step (${halts[0]}).`;
}

export type Machine = { machineRunId: string; machineId: string };

/**
 * Runs the machines of `queue` (taking them off it as they start), inside the caller's scope: the
 * first `concurrency` machines' jobs handed over at once, then one child per machine. Returns how
 * many failed; what is left in `queue` never started (window over, failure threshold, cancel).
 */
export async function runMachines(p: {
  runId: string;
  queue: Machine[];
  concurrency: number;
  threshold: number;
  windowEndsAtMs: number;
  input: DeploymentRunInput;
  scope: CancellationScope;
  steps?: StepPhases;
  /**
   * A run with steps continued as new (stepRun.ts): what its children reported in the executions
   * before (failures against the threshold, halts), and no second child for a machine's id: a
   * start that finds the id used fails that machine instead of running its steps again.
   */
  carried?: { failed: number; halts: readonly string[] };
}): Promise<{ failed: number; halts: string[] }> {
  const { queue, scope, input, threshold } = p;
  // Children report here as they end: the loop waits on the queue, not on a race over every
  // running child (Promise.race over N children at each completion costs N² promise work, which
  // at 1,000 machines stretched workflow tasks past Temporal's deadline).
  let running = 0;
  const ended: Array<{ machineRunId: string; status: string; halt?: string }> = [];
  let childCanceled: unknown;
  let failed = p.carried?.failed ?? 0;
  // Steps that asked to halt the run (HALT_RUN): no new machine starts once there is one.
  const halts: string[] = [...(p.carried?.halts ?? [])];
  // The first machines' jobs go to their agents in one step, before any child starts: the
  // agents install while the children are being started, 100 per workflow task, and each child
  // attaches to its job. As many as may run at once, and no more (nothing failed yet, or, in a
  // run continued as new, nothing stopping new machines yet: none of its children runs).
  const stopped = p.carried !== undefined && (halts.length > 0 || failed >= threshold);
  const firstWave = stopped ? [] : queue.slice(0, p.concurrency).map((m) => m.machineRunId);
  // Machines at the head of the queue whose agents already have their job: they have started,
  // so neither the window's end nor the failure threshold holds their child back (only a cancel,
  // which withdraws their jobs).
  let handedOverLeft = 0;
  if (firstWave.length > 0 && Date.now() < p.windowEndsAtMs) {
    // Not cancellable: once handed over, a cancel withdraws the jobs of the machines it leaves unstarted (finishDeploymentRun).
    await CancellationScope.nonCancellable(() => steps.handOverInstallJobs({ runId: p.runId, machineRunIds: firstWave, graceSeconds: INSTALL_GRACE_SECONDS }));
    handedOverLeft = firstWave.length;
  }
  for (;;) {
    const starting: Array<Promise<unknown>> = [];
    while (
      !scope.consideredCancelled &&
      starting.length < START_BATCH &&
      (handedOverLeft > 0 || (halts.length === 0 && Date.now() < p.windowEndsAtMs && shouldStartMoreMachines({ running, failed, remaining: queue.length }, p.concurrency, threshold)))
    ) {
      const machine = queue.shift()!;
      handedOverLeft = Math.max(0, handedOverLeft - 1);
      running += 1;
      const started = startChild(machineRunWorkflow, {
        workflowId: workflowIds.machineRun(p.runId, machine.machineId),
        ...(p.carried ? { workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE } : {}),
        args: [
          {
            runId: p.runId,
            machineRunId: machine.machineRunId,
            machineId: machine.machineId,
            windowEndsAtMs: p.windowEndsAtMs,
            graceSeconds: INSTALL_GRACE_SECONDS,
            installHeartbeatSeconds: input.installHeartbeatSeconds ?? 120,
            rebootTimeoutSeconds: input.rebootTimeoutSeconds ?? 15 * 60,
            // Only when the deployment has steps: a child's input stays as it was without them.
            ...(p.steps ? { steps: p.steps } : {}),
          },
        ],
      });
      starting.push(started.catch(() => undefined));
      void started
        .then((child) => child.result())
        .then(
          (result) => void ended.push({ machineRunId: machine.machineRunId, status: result.status, ...(result.halt ? { halt: result.halt } : {}) }),
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
      if (done.halt) halts.push(done.halt);
    }
  }
  return { failed, halts };
}
