import { defineSignal } from '@temporalio/workflow';

/** Workflow ids are business ids: starting the same id twice finds the first run, never a second one. */
export const workflowIds = {
  selfCheck: (selfCheckId: string) => `self-check:${selfCheckId}`,
  /** A run started by hand; scheduled runs get the schedule's id plus Temporal's timestamp suffix. */
  deploymentRun: (deploymentId: string, runId: string) => `deployment-run:${deploymentId}:${runId}`,
  machineRun: (runId: string, machineId: string) => `machine-run:${runId}:${machineId}`,
  agentUpgrade: (upgradeId: string) => `agent-upgrade:${upgradeId}`,
};

/** The Temporal Schedule that carries a deployment's timing. */
export const scheduleIds = {
  deployment: (deploymentId: string) => `deployment:${deploymentId}`,
  /** Prefix of the workflow ids the schedule starts (Temporal appends the occurrence's time). */
  deploymentRunPrefix: (deploymentId: string) => `deployment-run:${deploymentId}:scheduled`,
  /**
   * The daily compliance snapshot, one per task queue: the installations that share a Temporal
   * namespace each have their own queue (and database), so each gets its own schedule.
   */
  complianceHistory: (taskQueue: string) => `compliance-history:${taskQueue}`,
  complianceSnapshotPrefix: (taskQueue: string) => `compliance-snapshot:${taskQueue}:scheduled`,
};

/** The API signals a machine run when its machine checks in with a new boot id. */
export const agentReturnedSignal = defineSignal<[{ bootId: string | null }]>('agentReturned');

/**
 * An OPERATOR's word on a ringed run's gate, sent by the API (approveRing, rejectRing,
 * resumeDeploymentRun) after it checked the ring is waiting for it. `ring` is 1-based; `by` names
 * the token, for the run's log.
 */
export const approveRingSignal = defineSignal<[{ ring: number; by: string }]>('approveRing');
export const rejectRingSignal = defineSignal<[{ ring: number; by: string; reason: string }]>('rejectRing');
export const resumeRunSignal = defineSignal<[{ ring: number; by: string }]>('resumeRun');
