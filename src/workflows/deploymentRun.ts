import { CancellationScope, isCancellation, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { BegunRun } from '../activities/deployments.js';
import type { BatchedRunActivities, DeploymentActivities } from '../activities/index.js';
import { notStartedReason } from '../fleet/planning.js';
import { passRingGate, ringVerdicts } from './ringGate.js';
import { batchedRun, initialState } from './batchedRun.js';
import { haltedReason, runMachines, type Machine } from './childMachines.js';
import { callsOnly, preScriptsOnly, withPostScripts } from '../fleet/steps.js';
import { initialStepState, stepRun } from './stepRun.js';
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

/**
 * A deployment with steps runs its machines' child workflows page by page, continuing as new after
 * each page (stepRun.ts). Histories without this marker read the whole machine list again
 * (beginDeploymentRun) and hold every child in one execution, as they ran.
 */
export const PAGED_STEP_RUNS_PATCH = 'paged-step-runs';

/**
 * A deployment whose steps are all control-plane calls runs as a batched run: the advance makes a
 * machine's PRE calls before its job and its POST calls before its end (batchedRuns.ts), no child
 * workflow per machine. Decided once, when the run begins; histories without this marker (and runs
 * with script steps) run a child workflow per machine (stepRun.ts) as they did.
 */
export const BATCHED_STEP_CALLS_PATCH = 'batched-step-calls';

/**
 * A deployment whose scripts are all PRE scripts (with or without calls) runs as a batched run: its
 * advance hands out install jobs that carry the scripts and records their results from the job's
 * result (batchedRuns.ts), no child workflow per machine. Decided once, when the run begins;
 * histories without this marker run a child workflow per machine (stepRun.ts) as they did.
 */
export const BATCHED_PRE_SCRIPTS_PATCH = 'batched-pre-scripts';

/**
 * A deployment with POST scripts runs as a batched run too: its advance hands each machine its POST
 * scripts as a job of their own once its install and reboot are through, and ends it when they
 * report (batchedRuns.ts). Decided once, when the run begins; histories without this marker run a
 * child workflow per machine (stepRun.ts) as they did.
 */
export const BATCHED_POST_SCRIPTS_PATCH = 'batched-post-scripts';

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
 * continued as new as it goes); a new run of a deployment with steps runs a child workflow per
 * machine, page by page, continued as new after each page (stepRun.ts). Below, the run of child
 * workflows in one execution, which runs begun before either replay:
 * record it, resolve the machines, hand the first `concurrency` machines'
 * jobs to their agents at once, and run one child workflow per machine, at most `concurrency` at
 * a time, starting no new machine once the failure threshold is reached or the window has ended.
 * Cancel stops the children and withdraws the jobs of machines not started; the run's status comes last.
 * A deployment with rings runs them one after the other, each behind the previous one's gate (ringedRun).
 */
export async function deploymentRunWorkflow(input: DeploymentRunInput): Promise<string> {
  // A batched run that continued as new: where it was is in its input.
  if (input.resume) return batchedRun(input, input.resume);
  // A run with steps that continued as new: where it was is in its input.
  if (input.resumeSteps) return stepRun(input, input.resumeSteps);
  if (patched(BATCHED_RUNS_PATCH)) {
    const beginInput = { deploymentId: input.deploymentId, workflowId: workflowInfo().workflowId, runId: input.runId, trigger: input.trigger };
    const begun = patched(PAGED_PLANNING_PATCH)
      ? await pagedPlanning.beginBatchedRun({ ...beginInput, ...(input.planMachines ? { planMachines: input.planMachines } : {}) })
      : await planning.beginBatchedRun(beginInput);
    if (begun.windowEndsAtMs === null) return 'NOTHING_TO_DO';
    if (!begun.steps) return batchedRun(input, initialState({ ...begun, windowEndsAtMs: begun.windowEndsAtMs }));
    if (callsOnly(begun.steps) && patched(BATCHED_STEP_CALLS_PATCH)) return batchedRun(input, initialState({ ...begun, windowEndsAtMs: begun.windowEndsAtMs }, begun.steps));
    if (preScriptsOnly(begun.steps) && !input.machineWorkflows && patched(BATCHED_PRE_SCRIPTS_PATCH)) return batchedRun(input, initialState({ ...begun, windowEndsAtMs: begun.windowEndsAtMs }, begun.steps));
    if (withPostScripts(begun.steps) && !input.machineWorkflows && patched(BATCHED_POST_SCRIPTS_PATCH)) return batchedRun(input, initialState({ ...begun, windowEndsAtMs: begun.windowEndsAtMs }, begun.steps));
    // Runs begun before the markers above (or asked to, machineWorkflows) run in a workflow per machine (machineRun.ts), started a page at a time.
    if (patched(PAGED_STEP_RUNS_PATCH)) return stepRun(input, initialStepState({ ...begun, windowEndsAtMs: begun.windowEndsAtMs, steps: begun.steps }));
    // Begun before that: the run as below, its machines' list read again (the same run: beginDeploymentRun finds it begun).
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


/**
 * A ringed run: ring by ring, each planned when it starts (the first fixes the run's update set),
 * its machines run as above within a window of its own, then its gate (rollout.ts decides, this
 * only waits): a soak is a Temporal timer, an approval or a resume after a halt is a signal from the
 * API. Nothing runs while it waits, and a worker restart replays to the same wait. A rejection ends
 * the run CANCELED with its reason; so does a cancel, at any point.
 */
async function ringedRun(input: DeploymentRunInput, runId: string, rings: NonNullable<BegunRun['rings']>): Promise<string> {
  const verdicts = ringVerdicts();

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
