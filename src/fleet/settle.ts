/**
 * Settling a machine run when it ends: what its updates the agent never reported an end for come
 * to, and the machine run's status from them. One rule, which the activity that ends a machine run
 * reads to decide its status and the database applies to the stored rows in the same transaction
 * that ends it (src/db/runs.ts, finishMachineRun).
 *
 * Plain functions on plain data (see planning.ts).
 */
import { machineRunStatus, type MachineRunStatus, type UpdateResultStatus } from './planning.js';

/** An update's statuses before it ends: planned and not started, or started without a reported end. */
export const UNSETTLED_UPDATE_STATUSES = ['PENDING', 'IN_PROGRESS'] as const;
export type UnsettledUpdateStatus = (typeof UNSETTLED_UPDATE_STATUSES)[number];

/** What an unsettled update becomes: its status and what is written beside it. */
export type SettledUpdate =
  /** Never started: the window, a step or the run ended first. Its `reason` says why. */
  | { status: 'NOT_ATTEMPTED'; reason: string }
  /** Started, and no end came: failed, with `errorText`, ended now. */
  | { status: 'FAILED'; errorText: string; ended: true };

/**
 * What an update the agent never reported an end for comes to when its machine run ends with
 * `error` (null when it ended without one): never started → NOT_ATTEMPTED, with the error as the
 * reason (or that the machine run ended first); started but never finished → FAILED, with the
 * error (or that no result arrived). An update already settled stays as it is: null.
 */
export function settleUnreportedUpdate(status: string, error: string | null): SettledUpdate | null {
  switch (status) {
    case 'PENDING':
      return { status: 'NOT_ATTEMPTED', reason: error ?? 'The machine run ended before this update was attempted.' };
    case 'IN_PROGRESS':
      return { status: 'FAILED', errorText: error ?? 'No result arrived for this update.', ended: true };
    default:
      return null;
  }
}

/** The statuses of a machine run's updates once settled (see settleUnreportedUpdate). */
export function settledUpdateStatuses(statuses: readonly string[]): UpdateResultStatus[] {
  return statuses.map((status) => (settleUnreportedUpdate(status, null)?.status ?? status) as UpdateResultStatus);
}

/**
 * The status a machine run ends with: its updates settled, then machineRunStatus on them and on
 * what happened around them (timed out, reboot failed, agent lost, canceled, job failed).
 */
export function settledMachineRunStatus(updateStatuses: readonly string[], outcome: Parameters<typeof machineRunStatus>[1]): MachineRunStatus {
  return machineRunStatus(settledUpdateStatuses(updateStatuses), outcome);
}
