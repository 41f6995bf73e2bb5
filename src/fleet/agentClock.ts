/**
 * An agent's clock against the server's. A machine's clock may be wrong (no time synchronisation,
 * a dead RTC battery, a VM restored from a snapshot), so the server never orders a machine's
 * reports by the times the agent wrote in them: a report finished "in 2099" would otherwise stay
 * the machine's state for good, and every honest report after it would be history only.
 *
 * Each agent request carries the agent's clock in its HTTP `Date` header. A report is placed on
 * the server's clock at the time the server received it, less how long before sending it the agent
 * finished it, measured on the agent's own clock (both times are the agent's, so its error cancels
 * out): a report sent at once counts as of its arrival, one that waited in the agent's spool for
 * an hour counts as an hour old. The agent's own times stay on the report as information.
 *
 * Plain functions on plain data (milliseconds since the epoch; no clock of their own).
 */

/** An agent clock this far from the server's (either way) is a machine warning. */
export const CLOCK_SKEW_WARNING_SECONDS = 120;

export interface ReportClock {
  /** The report's finishedAt, on the agent's clock. */
  finishedAtMs: number;
  /** The request's `Date` header (the agent's clock when it sent the report); null when it had none. */
  agentSentAtMs: number | null;
  /** When the server received the request, on its own clock. */
  receivedAtMs: number;
}

/**
 * When the report's assessment finished, on the server's clock: its arrival less its age by the
 * agent's clock (never in the future: an age below zero, a clock set back between finishing and
 * sending, counts as none). Without a Date header (an older agent), the agent's finishedAt, but
 * never later than the arrival.
 */
export function assessedAtOnServerClock({ finishedAtMs, agentSentAtMs, receivedAtMs }: ReportClock): number {
  if (agentSentAtMs === null) return Math.min(finishedAtMs, receivedAtMs);
  return receivedAtMs - Math.max(0, agentSentAtMs - finishedAtMs);
}

/**
 * The agent's clock minus the server's, in seconds, as a request shows it: from its Date header;
 * without one, only a time the agent wrote that is ahead of the server's (a report finished after
 * it arrived) says anything, as a lower bound. Null when nothing can be said.
 */
export function clockOffsetSeconds(agentSentAtMs: number | null, receivedAtMs: number, latestAgentTimeMs?: number): number | null {
  if (agentSentAtMs !== null) return (agentSentAtMs - receivedAtMs) / 1000;
  if (latestAgentTimeMs !== undefined && latestAgentTimeMs > receivedAtMs) return (latestAgentTimeMs - receivedAtMs) / 1000;
  return null;
}

/** A `Date` header as milliseconds since the epoch; null when absent or not a date. */
export function parseDateHeader(value: string | undefined): number | null {
  if (!value) return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

/** Whether an offset is large enough to warn about. */
export function clockIsSkewed(offsetSeconds: number | null): boolean {
  return offsetSeconds !== null && Math.abs(offsetSeconds) >= CLOCK_SKEW_WARNING_SECONDS;
}

const UNITS: ReadonlyArray<[string, number]> = [
  ['year', 365.25 * 86_400],
  ['day', 86_400],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];

/** 4,000,000 s → "about 46 days": the largest unit that fits, rounded (a request's own delay is in the offset). */
function duration(seconds: number): string {
  for (const [unit, size] of UNITS) {
    if (seconds < size) continue;
    const n = Math.round(seconds / size);
    return `about ${n} ${unit}${n === 1 ? '' : 's'}`;
  }
  return `${seconds.toFixed(1)} seconds`;
}

/** The machine warning for a skewed agent clock, or null when its clock is close enough. */
export function clockWarning(offsetSeconds: number | null): string | null {
  if (offsetSeconds === null || !clockIsSkewed(offsetSeconds)) return null;
  const direction = offsetSeconds > 0 ? 'ahead of' : 'behind';
  return (
    `The machine's clock is ${duration(Math.abs(offsetSeconds))} ${direction} the server's: its agent starts and stops updates by that clock, ` +
    'so maintenance windows run off by as much. Its reports are ordered by the time the server received them. ' +
    'Set up time synchronisation (chrony, systemd-timesyncd or w32time).'
  );
}

/**
 * How far a machine's clock offset must move before a check-in stores it again: the Date header
 * counts whole seconds and the request's own latency adds to it, so offsets seen a minute apart
 * differ by a second or so without the clock having moved (a check-in that changes nothing
 * writes nothing: see lastSeenRefreshMs). A move across CLOCK_SKEW_WARNING_SECONDS is stored
 * whatever its size.
 */
export const CLOCK_OFFSET_MOVE_SECONDS = 5;
