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
  private current: (Snapshot<T> & { computeMs: number }) | null = null;
  /** When a machine last changed (an event), by the readers' clock. */
  private changedAt = Number.NEGATIVE_INFINITY;
  private running: Promise<Snapshot<T>> | null = null;
  /** How many recomputes this process started (tests and the benchmark read it). */
  recomputes = 0;

  constructor(
    private readonly compute: (now: Date) => Promise<T>,
    private readonly onBackgroundError: (error: unknown) => void,
  ) {}

  /** A machine changed at `at`: snapshots computed before are due sooner (see snapshotUse). */
  changed(at: Date): void {
    this.changedAt = Math.max(this.changedAt, at.getTime());
  }

  async read(now: Date, maxAgeMs: number): Promise<Snapshot<T>> {
    const current = this.current;
    const use = snapshotUse(current && { computedAt: current.computedAt, computeMs: current.computeMs, changedSince: this.changedAt >= current.computedAt.getTime() }, now, maxAgeMs);
    if (use === 'SERVE') return this.served(current!);
    const fresh = this.recompute(now);
    if (use === 'SERVE_AND_REFRESH') {
      fresh.catch(this.onBackgroundError);
      return this.served(current!);
    }
    return fresh;
  }

  private served({ value, computedAt }: Snapshot<T>): Snapshot<T> {
    return { value, computedAt };
  }

  private recompute(now: Date): Promise<Snapshot<T>> {
    this.running ??= (async () => {
      this.recomputes++;
      try {
        const started = performance.now();
        const value = await this.compute(now);
        // A slower recompute started earlier must not replace a newer snapshot.
        if (!this.current || this.current.computedAt <= now) this.current = { value, computedAt: now, computeMs: performance.now() - started };
        return { value, computedAt: now };
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }
}
