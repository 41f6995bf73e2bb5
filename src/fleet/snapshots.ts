/**
 * Fleet-wide aggregates (the compliance summary, the fleet's missing updates) are read from a
 * snapshot computed as of a time, because computing them costs a pass over every machine or every
 * pending update (BENCHMARKS.md, "The fleet view"), and compliance and readiness move with the clock
 * so they cannot be kept up to date on write. These are the rules for when a snapshot may be served.
 */

/**
 * SERVE: young enough. SERVE_AND_REFRESH: still within its bound, but past half of it: serve it and
 * recompute in the background, so that a fleet view someone keeps reading never waits for a
 * recompute. RECOMPUTE: none yet, too old, or computed "in the future" (the clock went back):
 * the reader waits for a fresh one.
 */
export type SnapshotUse = 'SERVE' | 'SERVE_AND_REFRESH' | 'RECOMPUTE';

/** After a change, a snapshot is recomputed once it is this many times as old as its recompute took. */
export const CHANGE_COST_RATIO = 10;
/** After a change, a reader waits for the recompute only when one takes less than this; otherwise it is served the snapshot and the recompute runs behind it. */
export const WAIT_FOR_RECOMPUTE_MS = 50;

export interface SnapshotState {
  /** The time its verdicts were computed against. */
  computedAt: Date;
  /** How long computing it took. */
  computeMs: number;
  /** Whether a machine changed (an event) since `computedAt`. */
  changedSince: boolean;
}

/**
 * How a snapshot may be used at `now`, given the age bound `maxAgeMs` (0: never served, always
 * recomputed). A change makes it due once it is `CHANGE_COST_RATIO` times as old as its recompute
 * took: a small fleet (a few milliseconds) is as good as exact, while a large one spends at most
 * about a tenth of its time recomputing however often machines change.
 */
export function snapshotUse(snapshot: SnapshotState | null, now: Date, maxAgeMs: number): SnapshotUse {
  if (!snapshot) return 'RECOMPUTE';
  const age = now.getTime() - snapshot.computedAt.getTime();
  if (age < 0 || age > maxAgeMs || maxAgeMs <= 0) return 'RECOMPUTE';
  if (snapshot.changedSince && age >= CHANGE_COST_RATIO * snapshot.computeMs) return snapshot.computeMs < WAIT_FOR_RECOMPUTE_MS ? 'RECOMPUTE' : 'SERVE_AND_REFRESH';
  return age > maxAgeMs / 2 ? 'SERVE_AND_REFRESH' : 'SERVE';
}
