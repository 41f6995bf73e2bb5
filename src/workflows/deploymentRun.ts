import { CancellationScope, condition, isCancellation, patched, proxyActivities, setHandler, startChild, workflowInfo } from '@temporalio/workflow';
import type { BegunRun } from '../activities/deployments.js';
import type { BatchedRunActivities, DeploymentActivities } from '../activities/index.js';
import { INSTALL_GRACE_SECONDS, notStartedReason, shouldStartMoreMachines } from '../fleet/planning.js';
import type { GateVerdict } from '../fleet/rollout.js';
import type { StepPhases } from '../fleet/steps.js';
import { passRingGate } from './ringGate.js';
import { approveRingSignal, rejectRingSignal, resumeRunSignal, workflowIds } from './config.js';
import { batchedRun, initialState } from './batchedRun.js';
import { machineRunWorkflow } from './machineRun.js';
import type { DeploymentRunInput } from './runInput.js';

export type { DeploymentRunInput } from './runInput.js';

/**
 * New runs are batched runs (batchedRun.ts): no child workflow per machine. Runs begun before
 * (their histories have no marker of this patch) replay the code below unchanged.
 */
export const BATCHED_RUNS_PATCH = 'batched-runs';

/**
 * A batched run plans its machines page by page in its first activity (docs/deployments.md), which
 * heartbeats after each page: a worker that dies while planning is noticed within a minute and the
 * retry resumes after the last page written. Histories without this marker scheduled the activity
 * without a heartbeat timeout and replay as they ran.
 */
export const PAGED_PLANNING_PATCH = 'paged-run-planning';

/** Children started per workflow task (see the loop). */
const START_BATCH = 100;

const steps = proxyActivities<DeploymentActivities>({
  // Database reads and writes: seconds. Retried with backoff on transient errors.
  startToCloseTimeout: '2 minutes',
});

const planning = proxyActivities<BatchedRunActivities & DeploymentActivities>({
  // A batched run plans all its machines in its first activity: minutes at 100,000 machines.
  startToCloseTimeout: '30 minutes',
});

const pagedPlanning = proxyActivities<DeploymentActivities>({
  // Page by page, heartbeating after each page (about a second for 1,000 machines): a million
  // machines is a thousand pages, minutes, well within the two hours.
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
});

/**
 * One run of a deployment. A new run is a batched run (batchedRun.ts: no workflow per machine,
 * continued as new as it goes). Below, the run of child workflows, which runs begun before batched
 * runs replay and a deployment with steps still takes:
 * record it, resolve the machines, hand the first `concurrency` machines'
 * jobs to their agents at once, and run one child workflow per machine, at most `concurrency` at
 * a time, starting no new machine once the failure threshold is reached or the window has ended.
 * Cancel stops the children and withdraws the jobs of machines not started; the run's status comes last.
 * A deployment with rings runs them one after the other, each behind the previous one's gate (ringedRun).
 */
export async function deploymentRunWorkflow(input: DeploymentRunInput): Promise<string> {
  // A batched run that continued as new: where it was is in its input.
  if (input.resume) return batchedRun(input, input.resume);
  if (patched(BATCHED_RUNS_PATCH)) {
    const beginInput = { deploymentId: input.deploymentId, workflowId: workflowInfo().workflowId, runId: input.runId, trigger: input.trigger };
    const begun = patched(PAGED_PLANNING_PATCH)
      ? await pagedPlanning.beginBatchedRun({ ...beginInput, ...(input.planMachines ? { planMachines: input.planMachines } : {}) })
      : await planning.beginBatchedRun(beginInput);
    if (begun.windowEndsAtMs === null) return 'NOTHING_TO_DO';
    // Pre and post steps run in a workflow per machine (machineRun.ts): a deployment with steps
    // runs as below, its machines' list read again (the same run: beginDeploymentRun finds it begun).
    if (!begun.steps) return batchedRun(input, initialState({ ...begun, windowEndsAtMs: begun.windowEndsAtMs }));
  }
  const begun = await steps.beginDeploymentRun({ deploymentId: input.deploymentId, workflowId: workflowInfo().workflowId, runId: input.runId, trigger: input.trigger });
  if (begun.windowEndsAtMs === null) return 'NOTHING_TO_DO';
  // Runs begun before rings existed have no `rings` in their recorded result and replay this path unchanged.
  if (begun.rings) return ringedRun(input, begun.runId, begun.rings);
  const threshold = begun.failureThreshold ?? Number.POSITIVE_INFINITY;
  const queue = [...begun.machines];
  let failed = 0;
  let halts: string[] = [];
  let canceled = false;

  // Children handle a cancel themselves (their machine runs end CANCELED) and return normally, so
  // the scope's own state, not an exception, says whether the run was canceled.
  const scope = new CancellationScope();
  try {
    await scope.run(async () => {
      ({ failed, halts } = await runMachines({ runId: begun.runId, queue, concurrency: begun.concurrency, threshold, windowEndsAtMs: begun.windowEndsAtMs!, input, scope, steps: begun.steps }));
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
      notStartedReason: queue.length > 0 ? (halts.length > 0 && !canceled ? haltedReason(halts) : notStartedReason({ canceled, failed, threshold })) : null,
    }),
  );
}

/** Why machines did not start after a step halted a run without rings (it has no gate to wait at). */
function haltedReason(halts: readonly string[]): string {
  return `Not started: the run was halted by a step (${halts[0]}).`;
}

type Machine = { machineRunId: string; machineId: string };

/**
 * Runs the machines of `queue` (taking them off it as they start), inside the caller's scope: the
 * first `concurrency` machines' jobs handed over at once, then one child per machine. Returns how
 * many failed; what is left in `queue` never started (window over, failure threshold, cancel).
 */
async function runMachines(p: {
  runId: string;
  queue: Machine[];
  concurrency: number;
  threshold: number;
  windowEndsAtMs: number;
  input: DeploymentRunInput;
  scope: CancellationScope;
  steps?: StepPhases;
}): Promise<{ failed: number; halts: string[] }> {
  const { queue, scope, input, threshold } = p;
  // Children report here as they end: the loop waits on the queue, not on a race over every
  // running child (Promise.race over N children at each completion costs N² promise work, which
  // at 1,000 machines stretched workflow tasks past Temporal's deadline).
  let running = 0;
  const ended: Array<{ machineRunId: string; status: string; halt?: string }> = [];
  let childCanceled: unknown;
  let failed = 0;
  // Steps that asked to halt the run (HALT_RUN): no new machine starts once there is one.
  const halts: string[] = [];
  // The first machines' jobs go to their agents in one step, before any child starts: the
  // agents install while the children are being started, 100 per workflow task, and each child
  // attaches to its job. As many as may run at once, and no more (nothing failed yet).
  const firstWave = queue.slice(0, p.concurrency).map((m) => m.machineRunId);
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

/**
 * A ringed run: ring by ring, each planned when it starts (the first fixes the run's update set),
 * its machines run as above within a window of its own, then its gate (rollout.ts decides, this
 * only waits): a soak is a Temporal timer, an approval or a resume after a halt is a signal from the
 * API. Nothing runs while it waits, and a worker restart replays to the same wait. A rejection ends
 * the run CANCELED with its reason; so does a cancel, at any point.
 */
async function ringedRun(input: DeploymentRunInput, runId: string, rings: NonNullable<BegunRun['rings']>): Promise<string> {
  const verdicts = new Map<number, GateVerdict>();
  // A rejection is final: a later approval or resume of the same ring does not undo it.
  setHandler(approveRingSignal, ({ ring, by }) => void (verdicts.get(ring)?.kind !== 'REJECTED' && verdicts.set(ring, { kind: 'APPROVED', by })));
  setHandler(resumeRunSignal, ({ ring, by }) => void (verdicts.get(ring)?.kind !== 'REJECTED' && verdicts.set(ring, { kind: 'RESUMED', by })));
  setHandler(rejectRingSignal, ({ ring, by, reason }) => void verdicts.set(ring, { kind: 'REJECTED', by, reason }));

  let queue: Machine[] = [];
  let rejection: string | null = null;
  let canceled = false;
  const scope = new CancellationScope();
  try {
    await scope.run(async () => {
      for (const { ring, machineCount } of rings) {
        if (machineCount === 0) {
          await steps.recordRingStep({ runId, ring, step: { kind: 'SKIPPED' } });
          continue;
        }
        const begunRing = await steps.beginRing({ runId, ring });
        queue = [...begunRing.machines];
        const threshold = begunRing.failureThreshold ?? Number.POSITIVE_INFINITY;
        const { failed, halts } = await runMachines({ runId, queue, concurrency: begunRing.concurrency, threshold, windowEndsAtMs: begunRing.windowEndsAtMs, input, scope, steps: begunRing.steps });
        if (scope.consideredCancelled) return;
        const left = queue.splice(0).map((m) => m.machineRunId);
        const counts = await steps.endRing({ runId, ring, notStarted: left, notStartedReason: left.length > 0 ? (halts.length > 0 ? haltedReason(halts) : notStartedReason({ canceled: false, failed, threshold })) : null });
        if (ring === rings.length) {
          await steps.recordRingStep({ runId, ring, step: { kind: 'DONE' } });
          break;
        }
        const rejected = await passRingGate(steps.recordRingStep, { runId, ring, ringName: begunRing.name, gate: begunRing.gate, counts, verdicts, stepHalts: halts });
        if (rejected !== null) {
          rejection = rejected;
          return;
        }
      }
    });
  } catch (error) {
    if (!isCancellation(error)) throw error;
    canceled = true;
  }
  canceled ||= scope.consideredCancelled;
  const ended = canceled || rejection !== null;
  return CancellationScope.nonCancellable(() =>
    steps.finishDeploymentRun({
      runId,
      canceled: ended,
      notStarted: queue.map((m) => m.machineRunId),
      notStartedReason: ended ? (rejection ? `Not started: ${rejection}` : notStartedReason({ canceled: true, failed: 0, threshold: 1 })) : null,
      reason: canceled ? null : rejection,
      ringed: true,
    }),
  );
}
