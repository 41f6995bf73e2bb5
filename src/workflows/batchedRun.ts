import { ActivityCancellationType, CancellationScope, continueAsNew, isCancellation, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { AdvanceOutcome } from '../activities/batchedRuns.js';
import type { BatchedRunActivities, DeploymentActivities } from '../activities/index.js';
import { RUN_ADVANCE_SECONDS, RUN_BATCH_MACHINES, RUN_HISTORY_EVENTS, shouldContinueAsNew } from '../fleet/batchedRun.js';
import { INSTALL_GRACE_SECONDS, notStartedReason } from '../fleet/planning.js';
import type { StepPhases } from '../fleet/steps.js';
import { haltedReason } from './childMachines.js';
import { passRingGate, ringVerdicts } from './ringGate.js';
import type { BatchedRunState, BatchLimits, DeploymentRunInput } from './runInput.js';

const steps = proxyActivities<DeploymentActivities>({
  // Database reads and writes: seconds. Retried with backoff on transient errors.
  startToCloseTimeout: '2 minutes',
});

const planning = proxyActivities<DeploymentActivities>({
  // A ring plans its machines when it starts: minutes for a ring of 100,000 machines.
  startToCloseTimeout: '30 minutes',
});

const settling = proxyActivities<BatchedRunActivities>({
  // Page by page over what is left of the run, heartbeating between pages.
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '1 minute',
});

const advancing = proxyActivities<BatchedRunActivities>({
  // An advance hands back after RUN_ADVANCE_SECONDS (or its batch); the margin covers ending a burst of machines.
  startToCloseTimeout: `${RUN_ADVANCE_SECONDS + 540} seconds`,
  // A worker that dies mid-advance is noticed within this, and a retry reads the same rows (every
  // step of an advance is a conditional write). A cancel reaches the advance at its next heartbeat.
  heartbeatTimeout: '10 seconds',
  // Nothing is settled after a cancel until the advance has stopped starting machines.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
});

/** What a batched run's first activity (beginBatchedRun) answered, that the run starts from. */
export interface BegunBatched {
  runId: string;
  windowEndsAtMs: number;
  concurrency: number;
  failureThreshold: number | null;
  rings?: Array<{ ring: number; name: string; machineCount: number }>;
}

/** The state a batched run starts from, once begun; `steps` when it has steps (begun after the markers that batch them, deploymentRun.ts). */
export function initialState(begun: BegunBatched, steps?: StepPhases): BatchedRunState {
  const withSteps = steps ? { steps } : {};
  if (begun.rings) return { runId: begun.runId, rings: begun.rings, verdicts: [], ...withSteps };
  return { runId: begun.runId, limits: { windowEndsAtMs: begun.windowEndsAtMs, concurrency: begun.concurrency, failureThreshold: begun.failureThreshold }, verdicts: [], ...withSteps };
}

/**
 * The advance of a run with control-plane calls: as `advancing`, with room for the calls. A
 * machine's phase of calls may take `callSeconds` (every attempt at its timeout), and an advance
 * may make the PRE calls of the machines it starts and then the POST calls of those it ends.
 */
function advancingWithCalls(steps: StepPhases) {
  return proxyActivities<BatchedRunActivities>({
    startToCloseTimeout: `${RUN_ADVANCE_SECONDS + 540 + 2 * steps.callSeconds} seconds`,
    // As `advancing`: the advance heartbeats every 2 s while its calls wait on their answers.
    heartbeatTimeout: '10 seconds',
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  });
}

/** Why the machines a run (or ring) never started did not: a step's halt, or the window or the failure threshold. */
function unstartedReason(outcome: AdvanceOutcome, limits: BatchLimits): string {
  if (outcome.halts && outcome.halts.length > 0) return haltedReason(outcome.halts);
  return notStartedReason({ canceled: false, failed: outcome.failed, threshold: limits.failureThreshold ?? Number.POSITIVE_INFINITY });
}

/**
 * A batched run (docs/deployments.md, "Runs of any size"): no workflow per machine. Each machine's
 * state is in PostgreSQL; this workflow calls advanceMachines, which moves many machines at once
 * (their results, reboots, silences, and the next machines started by key) and hands back after a
 * batch, until the run (or a ring) is through. It continues as new whenever its history nears
 * RUN_HISTORY_EVENTS, carrying only `state`. Rings, gates, signals and cancel behave as in the run
 * of child workflows (deploymentRun.ts).
 */
export async function batchedRun(input: DeploymentRunInput, state: BatchedRunState): Promise<string> {
  return state.rings ? ringedBatchedRun(input, state) : plainBatchedRun(input, state);
}

/** Advances until the run (or ring) is through; continues as new first when the history is long. */
async function advanceAll(input: DeploymentRunInput, carry: () => BatchedRunState, ring: number | null, limits: BatchLimits): Promise<AdvanceOutcome> {
  for (;;) {
    const info = workflowInfo();
    if (shouldContinueAsNew(info.historyLength, input.historyEvents ?? RUN_HISTORY_EVENTS, info.continueAsNewSuggested)) {
      // Its machines are in PostgreSQL: the new execution needs only where the run is.
      await continueAsNew<(input: DeploymentRunInput) => Promise<string>>({ ...input, resume: carry() });
    }
    const { steps: phases } = carry();
    const outcome = await (phases ? advancingWithCalls(phases) : advancing).advanceMachines({
      // A run with scripts says so: its install jobs carry the PRE scripts, and POST scripts (withPostScripts) go out after the install; a run of calls only sends what it always did.
      ...(phases ? { steps: { pre: phases.pre, post: phases.post, ...(phases.scripts ? { preScripts: true } : {}), ...(phases.postScripts ? { postScripts: true } : {}) } } : {}),
      runId: carry().runId,
      ring,
      ...limits,
      graceSeconds: INSTALL_GRACE_SECONDS,
      installHeartbeatSeconds: input.installHeartbeatSeconds ?? 120,
      rebootTimeoutSeconds: input.rebootTimeoutSeconds ?? 15 * 60,
      batchMachines: input.batchMachines ?? RUN_BATCH_MACHINES,
      budgetSeconds: RUN_ADVANCE_SECONDS,
      pollMs: 1000,
    });
    if (outcome.done) return outcome;
  }
}

async function plainBatchedRun(input: DeploymentRunInput, state: BatchedRunState): Promise<string> {
  const { runId } = state;
  const limits = state.limits!;
  const through: { outcome?: AdvanceOutcome } = {};
  let canceled = false;
  const scope = new CancellationScope();
  try {
    await scope.run(async () => {
      through.outcome = await advanceAll(input, () => state, null, limits);
    });
  } catch (error) {
    if (!isCancellation(error)) throw error;
    canceled = true;
  }
  canceled ||= scope.consideredCancelled;
  return CancellationScope.nonCancellable(async () => {
    if (canceled) {
      await settling.settleMachineRuns({ runId, ring: null, running: true, status: 'CANCELED', reason: notStartedReason({ canceled: true, failed: 0, threshold: 1 }), ...(state.steps ? { skipPostSteps: true } : {}) });
    } else if (through.outcome?.pendingLeft) {
      await settling.settleMachineRuns({ runId, ring: null, running: false, status: 'NOT_STARTED', reason: unstartedReason(through.outcome, limits) });
    }
    return steps.finishDeploymentRun({ runId, canceled, notStarted: [], notStartedReason: null });
  });
}

/** ringedRun (deploymentRun.ts) over batched rings: each ring's machines advanced as above, then its gate. */
async function ringedBatchedRun(input: DeploymentRunInput, state: BatchedRunState): Promise<string> {
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
        let current = i === from ? state.ring : undefined;
        if (!current) {
          const begun = await planning.beginRing({ runId, ring, batched: true, ...(input.planMachines ? { planMachines: input.planMachines } : {}) });
          current = { ring, name: begun.name, gate: begun.gate, limits: { windowEndsAtMs: begun.windowEndsAtMs, concurrency: begun.concurrency, failureThreshold: begun.failureThreshold } };
        }
        const running = current;
        const outcome = await advanceAll(input, () => ({ runId, rings, ring: running, verdicts: [...verdicts], ...(state.steps ? { steps: state.steps } : {}) }), ring, running.limits);
        if (scope.consideredCancelled) return;
        if (outcome.pendingLeft) await settling.settleMachineRuns({ runId, ring, running: false, status: 'NOT_STARTED', reason: unstartedReason(outcome, running.limits) });
        const counts = await steps.endRing({ runId, ring, notStarted: [], notStartedReason: null });
        if (ring === rings.length) {
          await steps.recordRingStep({ runId, ring, step: { kind: 'DONE' } });
          break;
        }
        const rejected = await passRingGate(steps.recordRingStep, { runId, ring, ringName: running.name, gate: running.gate, counts, verdicts, stepHalts: outcome.halts ?? [] });
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
    if (ended) await settling.settleMachineRuns({ runId, running: canceled, status: 'CANCELED', reason, ...(canceled && state.steps ? { skipPostSteps: true } : {}) });
    return steps.finishDeploymentRun({ runId, canceled: ended, notStarted: [], notStartedReason: ended ? reason : null, reason: canceled ? null : rejection, ringed: true });
  });
}
