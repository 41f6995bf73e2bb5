import { CancellationScope, continueAsNew, isCancellation, proxyActivities } from '@temporalio/workflow';
import type { BatchedRunActivities, DeploymentActivities } from '../activities/index.js';
import { afterStepPage, RUN_STEP_CHILDREN } from '../fleet/batchedRun.js';
import { MAX_RUNNING_MACHINES, notStartedReason } from '../fleet/planning.js';
import type { StepPhases } from '../fleet/steps.js';
import { haltedReason, runMachines } from './childMachines.js';
import { passRingGate, ringVerdicts } from './ringGate.js';
import type { BatchLimits, DeploymentRunInput, StepRunState } from './runInput.js';

const steps = proxyActivities<DeploymentActivities & BatchedRunActivities>({
  // Database reads and writes (a page of machines is one read by key): seconds. Retried with backoff on transient errors.
  startToCloseTimeout: '2 minutes',
});

const planning = proxyActivities<DeploymentActivities>({
  // A ring plans its machines when it starts, page by page, heartbeating after each page (about a
  // second for 1,000 machines): a worker that dies meanwhile is noticed within a minute, and the
  // retry resumes after the last page written.
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '1 minute',
});

const settling = proxyActivities<BatchedRunActivities>({
  // Page by page over what is left of the run, heartbeating between pages.
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '1 minute',
});

/** What a run's first activity (beginBatchedRun) answered, for a deployment with steps. */
export interface BegunStepRun {
  runId: string;
  windowEndsAtMs: number;
  concurrency: number;
  failureThreshold: number | null;
  rings?: Array<{ ring: number; name: string; machineCount: number }>;
  steps: StepPhases;
}

/** The state a run with steps starts from, once begun: nothing started yet. */
export function initialStepState(begun: BegunStepRun): StepRunState {
  const start = { runId: begun.runId, steps: begun.steps, verdicts: [], after: null, failed: 0, halts: [] };
  if (begun.rings) return { ...start, rings: begun.rings };
  return { ...start, limits: { windowEndsAtMs: begun.windowEndsAtMs, concurrency: childConcurrency(begun.concurrency), failureThreshold: begun.failureThreshold } };
}

/** A batched run's concurrency (planned with its own cap) within what a run of child workflows may hold at once. */
function childConcurrency(concurrency: number): number {
  return Math.min(concurrency, MAX_RUNNING_MACHINES);
}

/**
 * A run of a deployment with pre or post steps (docs/deployments.md, "Runs of any size"): one
 * child workflow per machine (machineRun.ts runs its steps), as in the runs begun before, but its
 * machines read from PostgreSQL a page at a time (planned page by page by beginBatchedRun) instead
 * of held in one list, and the workflow continuing as new after each page. An execution reads the
 * next page (at most `stepChildren` machines after the last one started), runs its children as
 * deploymentRun.ts always did (the first wave's jobs handed over together, at most `concurrency`
 * at a time, none started past the window, the failure threshold or a step's HALT_RUN), waits until
 * every one of them has ended, and then continues as new, carrying only where it is: the key of the
 * last machine started, the failures and halts so far, the ring and the operators' words on gates.
 * Its history is bounded by the page, whatever the run's size. A machine's child is started once:
 * a machine behind the carried key is never read again, and a second start of its id is refused.
 */
export async function stepRun(input: DeploymentRunInput, state: StepRunState): Promise<string> {
  return state.rings ? ringedStepRun(input, state) : plainStepRun(input, state);
}

/** An execution's page: its machines run to the end; continues as new when the run (or ring) has more. */
async function runPage(input: DeploymentRunInput, carry: () => StepRunState, ring: number | null, limits: BatchLimits, scope: CancellationScope): Promise<{ failed: number; halts: string[]; pendingLeft: boolean }> {
  const state = carry();
  const limit = input.stepChildren ?? RUN_STEP_CHILDREN;
  const page = await steps.pendingMachinesPage({ runId: state.runId, ring, after: state.after, limit });
  const queue = [...page.machines];
  const threshold = limits.failureThreshold ?? Number.POSITIVE_INFINITY;
  const { failed, halts } = await runMachines({
    runId: state.runId,
    queue,
    concurrency: limits.concurrency,
    threshold,
    windowEndsAtMs: limits.windowEndsAtMs,
    input,
    scope,
    steps: state.steps,
    carried: { failed: state.failed, halts: state.halts },
  });
  if (scope.consideredCancelled) return { failed, halts, pendingLeft: true };
  const next = afterStepPage({ read: page.machines.length, limit, notStarted: queue.length });
  if (next === 'NEXT_PAGE') {
    // No child of this execution runs any more (runMachines returns once the last has ended), so
    // continuing as new leaves none behind; the next execution starts after this page's last machine.
    await continueAsNew<(input: DeploymentRunInput) => Promise<string>>({ ...input, resumeSteps: { ...carry(), after: page.after, failed, halts } });
  }
  return { failed, halts, pendingLeft: next === 'STOPPED' };
}

/** Why the machines a run (or ring) never started did not. */
function unstartedReason(through: { failed: number; halts: string[] }, limits: BatchLimits): string {
  if (through.halts.length > 0) return haltedReason(through.halts);
  return notStartedReason({ canceled: false, failed: through.failed, threshold: limits.failureThreshold ?? Number.POSITIVE_INFINITY });
}

async function plainStepRun(input: DeploymentRunInput, state: StepRunState): Promise<string> {
  const { runId } = state;
  const limits = state.limits!;
  const through: { outcome?: { failed: number; halts: string[]; pendingLeft: boolean } } = {};
  let canceled = false;
  // Children handle a cancel themselves (their machine runs end CANCELED) and return normally, so
  // the scope's own state, not an exception, says whether the run was canceled.
  const scope = new CancellationScope();
  try {
    await scope.run(async () => {
      through.outcome = await runPage(input, () => state, null, limits, scope);
    });
  } catch (error) {
    if (!isCancellation(error)) throw error;
    canceled = true;
  }
  canceled ||= scope.consideredCancelled;
  return CancellationScope.nonCancellable(async () => {
    if (canceled) {
      // Children end their own machine runs after a cancel; one that could not (its workflow failed) is ended here, its job withdrawn.
      await settling.settleMachineRuns({ runId, ring: null, running: true, status: 'CANCELED', reason: notStartedReason({ canceled: true, failed: 0, threshold: 1 }) });
    } else if (through.outcome?.pendingLeft) {
      await settling.settleMachineRuns({ runId, ring: null, running: false, status: 'NOT_STARTED', reason: unstartedReason(through.outcome, limits) });
    }
    return steps.finishDeploymentRun({ runId, canceled, notStarted: [], notStartedReason: null });
  });
}

/** ringedRun (deploymentRun.ts) with each ring's machines run page by page as above, then its gate. */
async function ringedStepRun(input: DeploymentRunInput, state: StepRunState): Promise<string> {
  const { runId } = state;
  const rings = state.rings!;
  const verdicts = ringVerdicts(state.verdicts);

  let rejection: string | null = null;
  let canceled = false;
  const scope = new CancellationScope();
  try {
    await scope.run(async () => {
      const from = state.ring ? rings.findIndex((r) => r.ring === state.ring!.ring) : 0;
      for (let i = from; i < rings.length; i++) {
        const { ring, machineCount } = rings[i]!;
        if (machineCount === 0) {
          await steps.recordRingStep({ runId, ring, step: { kind: 'SKIPPED' } });
          continue;
        }
        // The ring an execution continued in resumes where it was; a later ring begins (planned now) from nothing.
        let at: StepRunState;
        if (i === from && state.ring) {
          at = state;
        } else {
          const begun = await planning.beginRing({ runId, ring, batched: true, ...(input.planMachines ? { planMachines: input.planMachines } : {}) });
          const limits = { windowEndsAtMs: begun.windowEndsAtMs, concurrency: childConcurrency(begun.concurrency), failureThreshold: begun.failureThreshold };
          at = { ...state, ring: { ring, name: begun.name, gate: begun.gate, limits }, after: null, failed: 0, halts: [] };
        }
        const current = at.ring!;
        const through = await runPage(input, () => ({ ...at, verdicts: [...verdicts] }), ring, current.limits, scope);
        if (scope.consideredCancelled) return;
        if (through.pendingLeft) await settling.settleMachineRuns({ runId, ring, running: false, status: 'NOT_STARTED', reason: unstartedReason(through, current.limits) });
        const counts = await steps.endRing({ runId, ring, notStarted: [], notStartedReason: null });
        if (ring === rings.length) {
          await steps.recordRingStep({ runId, ring, step: { kind: 'DONE' } });
          break;
        }
        const rejected = await passRingGate(steps.recordRingStep, { runId, ring, ringName: current.name, gate: current.gate, counts, verdicts, stepHalts: through.halts });
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
  return CancellationScope.nonCancellable(async () => {
    const reason = rejection ? `Not started: ${rejection}` : notStartedReason({ canceled: true, failed: 0, threshold: 1 });
    // Children end their own machine runs after a cancel; one that could not (its workflow failed) is ended here, its job withdrawn.
    if (ended) await settling.settleMachineRuns({ runId, running: canceled, status: 'CANCELED', reason });
    return steps.finishDeploymentRun({ runId, canceled: ended, notStarted: [], notStartedReason: ended ? reason : null, reason: canceled ? null : rejection, ringed: true });
  });
}
