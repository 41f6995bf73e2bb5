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

/** How a snapshot computed at `computedAt` may be used at `now`, given the age bound `maxAgeMs` (0: never served, always recomputed). */
export function snapshotUse(computedAt: Date | null, now: Date, maxAgeMs: number): SnapshotUse {
  if (!computedAt) return 'RECOMPUTE';
  const age = now.getTime() - computedAt.getTime();
  if (age < 0 || age > maxAgeMs || maxAgeMs <= 0) return 'RECOMPUTE';
  return age > maxAgeMs / 2 ? 'SERVE_AND_REFRESH' : 'SERVE';
}
