/**
 * Compliance and update agent readiness: the fleet view's two verdicts, as the seed defines them.
 */
import type { AgentReadiness, Compliance, OsType } from '../domain/vocabulary.js';

export type { AgentReadiness, Compliance, OsType } from '../domain/vocabulary.js';

export interface FleetThresholds {
  /** An assessment older than this no longer counts (seed: 3 hours for Linux, 12 for Windows). */
  assessmentMaxAgeMs: Record<OsType, number>;
  /** An agent not heard from for longer than this is DISCONNECTED (three missed 60 s check-ins). */
  disconnectedAfterMs: number;
}

export const DEFAULT_THRESHOLDS: FleetThresholds = {
  assessmentMaxAgeMs: { LINUX: 3 * 3600_000, WINDOWS: 12 * 3600_000 },
  disconnectedAfterMs: 180_000,
};

export interface ComplianceInput {
  osType: OsType;
  lastAssessedAt: Date | null;
  criticalCount: number;
  securityCount: number;
}

/** COMPLIANT: no missing critical or security update; NON_COMPLIANT: at least one; NOT_ASSESSED: no recent assessment. */
export function compliance(machine: ComplianceInput, now: Date, thresholds: FleetThresholds = DEFAULT_THRESHOLDS): Compliance {
  if (!machine.lastAssessedAt || now.getTime() - machine.lastAssessedAt.getTime() > thresholds.assessmentMaxAgeMs[machine.osType]) {
    return 'NOT_ASSESSED';
  }
  return machine.criticalCount + machine.securityCount > 0 ? 'NON_COMPLIANT' : 'COMPLIANT';
}

export interface ReadinessInput {
  managementEnabled: boolean;
  lastSeenAt: Date | null;
}

export interface Readiness {
  state: AgentReadiness;
  /** For DISCONNECTED: when the agent was last heard from. */
  since: Date | null;
  /** Why, in words an operator can act on. */
  reason: string;
}

export function readiness(machine: ReadinessInput, now: Date, thresholds: FleetThresholds = DEFAULT_THRESHOLDS): Readiness {
  if (!machine.managementEnabled) {
    return { state: 'NOT_CONFIGURED', since: null, reason: 'Update management is disabled for this machine.' };
  }
  if (!machine.lastSeenAt) {
    return { state: 'NOT_CONFIGURED', since: null, reason: 'The agent has enrolled but never checked in: check that it runs and can reach the server.' };
  }
  if (now.getTime() - machine.lastSeenAt.getTime() > thresholds.disconnectedAfterMs) {
    return {
      state: 'DISCONNECTED',
      since: machine.lastSeenAt,
      reason: `The agent has not checked in since ${machine.lastSeenAt.toISOString()}: check that the agent runs and can reach the server.`,
    };
  }
  return { state: 'READY', since: null, reason: 'The agent checks in regularly.' };
}

/**
 * How old a machine's stored last-seen time may get before a check-in writes it again. A check-in
 * that changes no fact writes nothing until then: at rest that halves the writes to the machines
 * table (with the fleet-summary triggers they fire), and a check-in that writes nothing is only a
 * read. The price is that `lastSeenAt` trails the agent's real last check-in by up to this much.
 *
 * One and a half check-in intervals (90 s at the default 60 s), so that every other check-in of an
 * idle agent writes; never more than half the DISCONNECTED threshold, so that an agent checking in
 * on time (its stored time at most an interval plus this old) stays READY with room for a late
 * check-in: at the defaults a live agent's stored time is at most 150 s old against the 180 s
 * after which it counts as DISCONNECTED.
 */
export function lastSeenRefreshMs(checkInSeconds: number, thresholds: FleetThresholds = DEFAULT_THRESHOLDS): number {
  return Math.min(checkInSeconds * 1500, thresholds.disconnectedAfterMs / 2);
}
