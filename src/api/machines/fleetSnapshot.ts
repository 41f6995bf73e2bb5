import { snapshotUse } from '../../fleet/snapshots.js';

export interface Snapshot<T> {
  value: T;
  /** The time the verdicts in it were computed against (the rows were read right after). */
  computedAt: Date;
}

/**
 * One fleet-wide aggregate of this process, recomputed single-flight: however many readers arrive
 * while it is being computed, one query runs and they all get its result. A reader is served a
 * snapshot at most `maxAgeMs` old (plus the duration of one recompute, when it joins one already
 * running); see snapshotUse for when it waits.
 */
export class FleetSnapshot<T> {
  private current: Snapshot<T> | null = null;
  private running: Promise<Snapshot<T>> | null = null;
  /** How many recomputes this process started (tests and the benchmark read it). */
  recomputes = 0;

  constructor(
    private readonly compute: (now: Date) => Promise<T>,
    private readonly onBackgroundError: (error: unknown) => void,
  ) {}

  async read(now: Date, maxAgeMs: number): Promise<Snapshot<T>> {
    const use = snapshotUse(this.current?.computedAt ?? null, now, maxAgeMs);
    if (use === 'SERVE') return this.current!;
    const fresh = this.recompute(now);
    if (use === 'SERVE_AND_REFRESH') {
      fresh.catch(this.onBackgroundError);
      return this.current!;
    }
    return fresh;
  }

  private recompute(now: Date): Promise<Snapshot<T>> {
    this.running ??= (async () => {
      this.recomputes++;
      try {
        const snapshot = { value: await this.compute(now), computedAt: now };
        // A slower recompute started earlier must not replace a newer snapshot.
        if (!this.current || this.current.computedAt <= snapshot.computedAt) this.current = snapshot;
        return snapshot;
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }
}
