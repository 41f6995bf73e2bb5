/**
 * Compliance and update agent readiness: the fleet view's two verdicts, as the seed defines them.
 */
import type { AgentReadiness, Compliance, OsType } from '../domain/vocabulary.js';

export type { AgentReadiness, Compliance, OsType } from '../domain/vocabulary.js';

export interface FleetThresholds {
  /** An assessment older than this no longer counts (seed: 3 hours for Linux, 12 for Windows). */
  assessmentMaxAgeMs: Record<OsType, number>;
  /**
   * A machine whose stored last-seen time is older than this is DISCONNECTED. The stored time trails
   * the agent's last check-in by up to `lastSeenRefreshMs`: see `defaultDisconnectedAfterMs`.
   */
  disconnectedAfterMs: number;
}

/** Check-ins an agent may miss (its next one up to this many intervals after the last) and still be READY. */
export const MISSED_CHECK_INS = 3;

/** How many check-in intervals old a stored last-seen time may get before an idle check-in writes it again. */
const REFRESH_INTERVALS = 1.5;

/**
 * The DISCONNECTED threshold when none is configured: three missed check-ins counted from the
 * oldest a live agent's stored last-seen time may be (the refresh time), so four and a half
 * intervals (270 s at the default 60 s). Counted from the agent's real last check-in, an agent
 * becomes DISCONNECTED between three intervals and this after it fell silent.
 */
export function defaultDisconnectedAfterMs(checkInSeconds: number): number {
  return checkInSeconds * 1000 * (MISSED_CHECK_INS + REFRESH_INTERVALS);
}

export const DEFAULT_THRESHOLDS: FleetThresholds = {
  assessmentMaxAgeMs: { LINUX: 3 * 3600_000, WINDOWS: 12 * 3600_000 },
  disconnectedAfterMs: defaultDisconnectedAfterMs(60),
};

export function sameThresholds(a: FleetThresholds, b: FleetThresholds): boolean {
  return a.assessmentMaxAgeMs.LINUX === b.assessmentMaxAgeMs.LINUX && a.assessmentMaxAgeMs.WINDOWS === b.assessmentMaxAgeMs.WINDOWS && a.disconnectedAfterMs === b.disconnectedAfterMs;
}

/** In the units of their settings (FLEETPATCH_LINUX_ASSESSMENT_MINUTES, …_WINDOWS_…, FLEETPATCH_DISCONNECTED_AFTER_SECONDS). */
export function describeThresholds(t: FleetThresholds): string {
  return `Linux assessments ${t.assessmentMaxAgeMs.LINUX / 60_000} min, Windows ${t.assessmentMaxAgeMs.WINDOWS / 60_000} min, disconnected after ${t.disconnectedAfterMs / 1000} s`;
}

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
 * idle agent writes (an interval is a little longer than the setting: the agent waits it after each
 * answer, so a refresh time of one interval would write at nearly every check-in). Never more than
 * what the DISCONNECTED threshold leaves after MISSED_CHECK_INS intervals: a live agent's stored
 * time is at most this plus the wait for its next check-in old, so an agent whose next check-in
 * comes up to three intervals after its last stays READY. A threshold tighter than that (an
 * explicit FLEETPATCH_DISCONNECTED_AFTER_SECONDS) costs writes, not false DISCONNECTEDs: the
 * refresh time shrinks, to 0 (every check-in writes) at three intervals or less.
 */
export function lastSeenRefreshMs(checkInSeconds: number, thresholds: FleetThresholds = DEFAULT_THRESHOLDS): number {
  const intervalMs = checkInSeconds * 1000;
  return Math.max(0, Math.min(intervalMs * REFRESH_INTERVALS, thresholds.disconnectedAfterMs - intervalMs * MISSED_CHECK_INS));
}
