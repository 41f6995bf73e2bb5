/**
 * A stream of numbered events (1, 2, 3... without gaps, numbered in the order they were stored)
 * that a subscriber receives exactly once each, in order, whether it subscribes late, comes back
 * after a dropped connection, or the live notifications arrive out of order, late, twice or not at
 * all:
 *
 * - with `after`, what the store holds after it is replayed first, page by page;
 * - then the live notifications: the next number is delivered as it came; a notification past it
 *   means the ones between were stored (they commit in order) and are read from the store; one at
 *   or below what was delivered is dropped; one without a number (`seq` undefined: notifications
 *   may have been lost) reads everything the store has past what was delivered.
 *
 * The live side is drained as fast as it delivers, into a buffer of at most `maxBuffered`
 * notifications: past it they are dropped and read from the store instead, so a slow subscriber
 * (a replay of 100,000 events, a client reading slowly) holds a bounded buffer, and never stalls
 * the publisher.
 */

export interface Numbered {
  seq: number;
}

export interface SequencedStore<E extends Numbered> {
  /** Events numbered after `after` (and at most `through`, when given), in order, at most `limit`. */
  read(after: number, limit: number, through?: number): Promise<E[]>;
  /** The number of the last event stored now (where a live-only subscription starts). */
  last(): Promise<number>;
}

export interface SequencedStreamOptions<E extends Numbered, N> {
  /** The live notifications; ended with `return()` when the stream is. */
  live: AsyncIterator<N>;
  store: SequencedStore<E>;
  /** Replay what was stored after this number first; null or undefined: live from now on. */
  after?: number | null;
  /** The event a notification carries, when it carries one whole; undefined: read it from the store. */
  eventOf: (notice: N) => E | undefined;
  /** The number a notification announces; undefined: some may have been lost, look in the store. */
  seqOf: (notice: N) => number | undefined;
  /** Events per read from the store. */
  pageSize?: number;
  maxBuffered?: number;
}

const DEFAULT_PAGE_SIZE = 200;
const DEFAULT_MAX_BUFFERED = 1000;

/** The live notifications, drained at once into a bounded buffer. */
class LiveBuffer<N> {
  private notices: N[] = [];
  /** A notification was dropped or unnumbered: the store is to be read up to `through` (Infinity: all). */
  private catchUp: number | null = null;
  private ended = false;
  private failure: unknown;
  private wake: (() => void) | undefined;

  constructor(
    private readonly live: AsyncIterator<N>,
    private readonly maxBuffered: number,
    private readonly seqOf: (notice: N) => number | undefined,
  ) {
    // Started now: the live side is listening before the store is first read.
    void this.drain();
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        const next = await this.live.next();
        if (next.done || this.ended) break;
        this.add(next.value);
      }
    } catch (error) {
      this.failure = error;
    } finally {
      this.ended = true;
      this.wake?.();
    }
  }

  private add(notice: N): void {
    const seq = this.seqOf(notice);
    if (seq === undefined || this.catchUp !== null || this.notices.length >= this.maxBuffered) {
      this.catchUp = Math.max(this.catchUp ?? 0, seq ?? Infinity, ...this.notices.map((n) => this.seqOf(n) ?? Infinity));
      this.notices = [];
    } else {
      this.notices.push(notice);
    }
    this.wake?.();
  }

  /** What arrived since the last call (waiting for something); null once the stream is closed or the live side ended. */
  async take(): Promise<{ notices: N[]; catchUp: number | null } | null> {
    while (!this.ended && this.notices.length === 0 && this.catchUp === null) {
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    if (this.failure !== undefined) throw this.failure;
    if (this.notices.length === 0 && this.catchUp === null) return null;
    const taken = { notices: this.notices, catchUp: this.catchUp };
    this.notices = [];
    this.catchUp = null;
    return taken;
  }

  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.wake?.();
    void this.live.return?.();
  }
}

export function sequencedStream<E extends Numbered, N>(options: SequencedStreamOptions<E, N>): AsyncIterableIterator<E> {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  const buffer = new LiveBuffer(options.live, options.maxBuffered ?? DEFAULT_MAX_BUFFERED, options.seqOf);
  const { store } = options;

  async function* events(): AsyncGenerator<E> {
    let last = options.after ?? (await store.last());
    /** Everything the store has after `last`, up to `through`. */
    async function* fromStore(through: number): AsyncGenerator<E> {
      while (last < through) {
        const page = await store.read(last, pageSize, Number.isFinite(through) ? through : undefined);
        for (const event of page) {
          yield event;
          last = event.seq;
        }
        if (page.length < pageSize) break;
      }
    }
    if (options.after !== null && options.after !== undefined) yield* fromStore(Infinity);
    for (;;) {
      const taken = await buffer.take();
      if (!taken) return;
      for (const notice of taken.notices) {
        const seq = options.seqOf(notice)!;
        if (seq <= last) continue;
        const event = seq === last + 1 ? options.eventOf(notice) : undefined;
        if (event) {
          yield event;
          last = seq;
          continue;
        }
        yield* fromStore(seq);
        // Not in the store (its run was deleted meanwhile): not waited for.
        last = Math.max(last, seq);
      }
      if (taken.catchUp !== null) yield* fromStore(taken.catchUp);
    }
  }

  const generator = events();
  return {
    next: () => generator.next(),
    // Closing wakes a generator waiting for the live side, so that it ends at once.
    return: (value?: unknown) => {
      buffer.close();
      return generator.return(value as never);
    },
    throw: (error?: unknown) => {
      buffer.close();
      return generator.throw(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
