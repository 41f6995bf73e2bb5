import { describe, expect, it } from 'vitest';
import { sequencedStream } from '../../src/events/sequencedStream.js';

interface Event {
  seq: number;
  text: string;
}
/** A notification: an event, one without its text (read it from the store), or one without a number. */
type Notice = { seq?: number; text?: string };

/** A live side the test pushes into, as the pubsub would; `returned` once the stream let go of it. */
function liveSide() {
  const queue: Notice[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const side = {
    returned: false,
    /** Resolves once the stream has taken every notification pushed so far. */
    async drained() {
      while (queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
    },
    push(...notices: Notice[]) {
      queue.push(...notices);
      wake?.();
    },
    iterator: {
      async next(): Promise<IteratorResult<Notice>> {
        while (queue.length === 0 && !ended) await new Promise<void>((resolve) => (wake = resolve));
        return queue.length > 0 ? { done: false, value: queue.shift()! } : { done: true, value: undefined };
      },
      async return(): Promise<IteratorResult<Notice>> {
        side.returned = true;
        ended = true;
        wake?.();
        return { done: true, value: undefined };
      },
    } as AsyncIterator<Notice>,
  };
  return side;
}

/** The store: events 1..stored; counts its reads. */
function storeOf(events: Event[]) {
  const store = {
    reads: 0,
    lastRead: undefined as Promise<void> | undefined,
    read: async (after: number, limit: number, through?: number) => {
      store.reads += 1;
      return events.filter((e) => e.seq > after && (through === undefined || e.seq <= through)).slice(0, limit);
    },
    last: async () => events.length,
  };
  let lastRead!: () => void;
  store.lastRead = new Promise<void>((resolve) => (lastRead = resolve));
  const last = store.last;
  store.last = async () => {
    const n = await last();
    lastRead();
    return n;
  };
  return store;
}

const events = (n: number): Event[] => Array.from({ length: n }, (_, i) => ({ seq: i + 1, text: `event ${i + 1}` }));

function open(live: ReturnType<typeof liveSide>, stored: Event[], after: number | null, maxBuffered = 1000, store = storeOf(stored)) {
  return sequencedStream<Event, Notice>({
    live: live.iterator,
    store,
    after,
    pageSize: 3,
    maxBuffered,
    seqOf: (n) => n.seq,
    eventOf: (n) => (n.seq !== undefined && n.text !== undefined ? { seq: n.seq, text: n.text } : undefined),
  });
}

async function take(stream: AsyncIterator<Event>, count: number): Promise<number[]> {
  const seqs: number[] = [];
  while (seqs.length < count) {
    const next = await stream.next();
    if (next.done) break;
    seqs.push(next.value.seq);
  }
  return seqs;
}

describe('a sequenced stream: each event once, in order', () => {
  it('replays what was stored after `after`, page by page, then goes live', async () => {
    const stored = events(8);
    const live = liveSide();
    const stream = open(live, stored, 2);
    expect(await take(stream, 6)).toEqual([3, 4, 5, 6, 7, 8]);
    stored.push({ seq: 9, text: 'event 9' });
    live.push({ seq: 9, text: 'event 9' });
    expect(await take(stream, 1)).toEqual([9]);
  });

  it('starts at the last stored event without `after`', async () => {
    const stored = events(4);
    const live = liveSide();
    const store = storeOf(stored);
    const stream = open(live, stored, null, 1000, store);
    const first = stream.next();
    await store.lastRead;
    stored.push({ seq: 5, text: 'event 5' });
    live.push({ seq: 5, text: 'event 5' });
    expect((await first).value).toEqual({ seq: 5, text: 'event 5' });
  });

  it('drops what the replay already delivered, and reads from the store what arrived out of order or without its content', async () => {
    const stored = events(10);
    const live = liveSide();
    // 3 and 4 were both replayed and notified; 6 arrives before 5; 8 comes without its text.
    live.push({ seq: 3, text: 'event 3' }, { seq: 4, text: 'event 4' }, { seq: 6, text: 'event 6' }, { seq: 5, text: 'event 5' }, { seq: 7, text: 'event 7' }, { seq: 8 }, { seq: 10, text: 'event 10' });
    const stream = open(live, stored, 0);
    expect(await take(stream, 10)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('keeps at most maxBuffered notifications for a slow reader and reads the rest from the store', async () => {
    const stored = events(2);
    const live = liveSide();
    const stream = open(live, stored, 0, 5);
    expect(await take(stream, 2)).toEqual([1, 2]);
    // 500 events while the reader is busy elsewhere.
    for (let seq = 3; seq <= 502; seq++) {
      stored.push({ seq, text: `event ${seq}` });
      live.push({ seq, text: `event ${seq}` });
    }
    await live.drained();
    const seqs = await take(stream, 500);
    expect(seqs).toEqual(Array.from({ length: 500 }, (_, i) => i + 3));
  });

  it('reads everything past what it delivered when told that notifications may have been lost', async () => {
    const stored = events(3);
    const live = liveSide();
    const stream = open(live, stored, 0);
    expect(await take(stream, 3)).toEqual([1, 2, 3]);
    stored.push({ seq: 4, text: 'event 4' }, { seq: 5, text: 'event 5' });
    live.push({});
    expect(await take(stream, 2)).toEqual([4, 5]);
  });

  it('ends at once when closed while it waits for the live side, and lets go of it', async () => {
    const live = liveSide();
    const stream = open(live, events(1), 0);
    expect(await take(stream, 1)).toEqual([1]);
    const waiting = stream.next();
    expect(await stream.return!()).toEqual({ done: true, value: undefined });
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(live.returned).toBe(true);
  });
});
