import type { GateVerdict, RingGate } from '../fleet/rollout.js';
import type { StepPhases } from '../fleet/steps.js';

export interface DeploymentRunInput {
  deploymentId: string;
  /** Set when the API created the run (run now); absent for a scheduled occurrence. */
  runId?: string;
  trigger: 'SCHEDULE' | 'MANUAL';
  /** Tunables, with production defaults; tests shorten them. */
  installHeartbeatSeconds?: number;
  rebootTimeoutSeconds?: number;
  /** A batched run: machines ended per advance (default RUN_BATCH_MACHINES, src/fleet/batchedRun.ts). */
  batchMachines?: number;
  /** A batched run: history events after which the workflow continues as new (default RUN_HISTORY_EVENTS). */
  historyEvents?: number;
  /** A batched run: machines planned per page, each page its own transaction (default RUN_PLAN_MACHINES). */
  planMachines?: number;
  /** A batched run continued as new: where it was (absent when it begins). */
  resume?: BatchedRunState;
  /** A run with steps: machines' child workflows started per execution before it continues as new (default RUN_STEP_CHILDREN). */
  stepChildren?: number;
  /** A run with steps continued as new: where it was (absent when it begins). */
  resumeSteps?: StepRunState;
  /**
   * A run with scripts runs a child workflow per machine (stepRun.ts), the shape runs begun before
   * their scripts were batched keep: tests of that path set it (FLEETPATCH_RUN_MACHINE_WORKFLOWS).
   */
  machineWorkflows?: boolean;
}

/** What a batched run's limits are while its machines (or a ring's) run. */
export interface BatchLimits {
  windowEndsAtMs: number;
  concurrency: number;
  /** null: no limit. */
  failureThreshold: number | null;
}

/**
 * Where a batched run is, carried into the execution it continues as: small whatever the run's
 * size (its machines are in PostgreSQL).
 */
export interface BatchedRunState {
  runId: string;
  /** A run without rings: its limits. */
  limits?: BatchLimits;
  /** A ringed run: its rings, and the ring whose machines were running, with its limits and gate. */
  rings?: Array<{ ring: number; name: string; machineCount: number }>;
  ring?: { ring: number; name: string; gate: RingGate; limits: BatchLimits };
  /** Operators' words on rings received so far (approve, reject, resume), by ring. */
  verdicts: Array<[number, NonNullable<GateVerdict>]>;
  /** A run with steps (callsOnly, preScriptsOnly, withPostScripts in src/fleet/steps.ts): its phases; the advance makes the calls and hands out the scripts. Absent: no steps. */
  steps?: StepPhases;
}

/**
 * Where a run with steps (a child workflow per machine, stepRun.ts) is, carried into the execution
 * it continues as: the rings and limits as a batched run's, plus where its machines (or the running
 * ring's) were started up to, and what its children reported so far.
 */
export interface StepRunState extends BatchedRunState {
  /** Which phases of each machine run have steps. */
  steps: StepPhases;
  /** The last machine run whose child was started, by its key in the run's (or ring's) order (machine name, id); null: none yet. */
  after: { name: string; id: string } | null;
  /** Machine runs of the run (or the running ring) that ended FAILED or TIMED_OUT. */
  failed: number;
  /** Why steps asked to halt the run (HALT_RUN), in the run (or the running ring). */
  halts: string[];
}
