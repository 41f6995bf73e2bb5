/**
 * A run's plan, machine by machine, as the run records it: each machine's planMachine (planning.ts)
 * as the rows of its update results, with the reboot reserve its install job carries. The activity
 * that begins a run (or a ring) reads the inputs and stores this; it decides nothing of its own.
 *
 * Plain functions on plain data (see planning.ts).
 */
import { planMachine, type BaselineDecision, type MachinePlan, type MachineRunStatus, type OsType, type PlanMachineInput, type RebootSetting, type UpdateSelection } from './planning.js';

/** A pending update as the machine's latest assessment reported it. */
type PendingUpdate = PlanMachineInput['pending'][number];

/** One update's row in the plan: what the run starts it as, and what the plan predicts of it. */
export interface PlannedResult {
  update: PendingUpdate;
  status: 'PENDING' | 'NOT_SELECTED' | 'NOT_ATTEMPTED';
  predictedStatus: 'SUCCEEDED' | 'NOT_SELECTED' | 'NOT_ATTEMPTED';
  orderIndex: number;
  expectedSeconds: number;
  reason: string | null;
}

/** A machine's plan as the run records it. */
export interface MachineRunPlan {
  /** Every pending update's row (planned, predicted not to fit, or left out). */
  results: PlannedResult[];
  /** Seconds kept free at the window's end for a reboot: stored with the machine run, carried by its install job. */
  rebootReserveSeconds: number;
  /** The updates the plan selected (planned or predicted not to fit): what a ringed run's first ring freezes. */
  selected: PendingUpdate[];
}

/** What a run plans a machine with: the machine, its latest pending updates, what was learned of it, and the run's settings. */
export interface RunMachinePlanInput {
  machine: { osType: OsType; packageManager: string | null; rebootPending: boolean };
  pending: PendingUpdate[];
  selection: UpdateSelection;
  windowMinutes: number;
  rebootSetting: RebootSetting;
  learnedSeconds?: Record<string, number>;
  baseline?: (update: PendingUpdate) => BaselineDecision;
  /** A ringed run's frozen update set, once its first ring has fixed it. */
  updateSet?: ReadonlySet<string>;
}

/** A machine of a run planned (planMachine: a machine without a known package manager is planned as apt). */
export function planRunMachine(input: RunMachinePlanInput): MachineRunPlan {
  const plan = planMachine({
    pending: input.pending,
    selection: input.selection,
    backend: input.machine.packageManager ?? 'apt',
    osType: input.machine.osType,
    windowSeconds: input.windowMinutes * 60,
    rebootSetting: input.rebootSetting,
    rebootPending: input.machine.rebootPending,
    learnedSeconds: input.learnedSeconds,
    baseline: input.baseline,
    ...(input.updateSet ? { updateSet: input.updateSet } : {}),
  });
  return { results: plannedResults(plan), rebootReserveSeconds: plan.rebootReserveSeconds, selected: [...plan.toInstall, ...plan.predictedNotAttempted] };
}

/**
 * A machine's plan as the rows of its update results: planned updates start PENDING (the agent
 * decides at run time whether the window still covers them), with the prediction beside them;
 * updates left out are NOT_SELECTED with the reason, after the planned ones.
 */
export function plannedResults(plan: MachinePlan): PlannedResult[] {
  return [
    ...plan.toInstall.map((u) => ({ update: u, status: 'PENDING' as const, predictedStatus: 'SUCCEEDED' as const, orderIndex: u.order, expectedSeconds: u.expectedSeconds, reason: null })),
    ...plan.predictedNotAttempted.map((u) => ({ update: u, status: 'PENDING' as const, predictedStatus: 'NOT_ATTEMPTED' as const, orderIndex: u.order, expectedSeconds: u.expectedSeconds, reason: null })),
    ...plan.notSelected.map((n, i) => ({ update: n.update, status: 'NOT_SELECTED' as const, predictedStatus: 'NOT_SELECTED' as const, orderIndex: 10_000 + i, expectedSeconds: 0, reason: n.reason })),
  ];
}

/** Whether a machine run is still to run when a run (or a ring) is taken up again: not yet ended. */
export function stillToRun(status: MachineRunStatus): boolean {
  return status === 'PENDING' || status === 'IN_PROGRESS' || status === 'REBOOTING';
}

/** Whether a machine run counts as failed at a ring's gate: it failed, or timed out. */
export function failedAtGate(status: MachineRunStatus): boolean {
  return status === 'FAILED' || status === 'TIMED_OUT';
}
