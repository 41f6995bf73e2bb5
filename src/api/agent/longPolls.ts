import { performance } from 'node:perf_hooks';
import type { FleetPubSub } from '../../events/pubsub.js';

const COMMAND_QUEUED = 'agentCommandQueued:';

/**
 * How long "nothing waits for this machine" stays known without looking in the database again, at
 * the default check-in interval (AgentService passes trustAfterCheckInMs of the configured one).
 * Longer than the agent's check-in interval, whose statement looks at the queue and renews the
 * mark before it lapses: an idle agent's polls then cost no statement at all. A check-in that finds
 * commands waiting (one an agent took and never finished, due again after 5 minutes) ends the mark
 * (`notQuiet`), so those are handed out at the next poll after a check-in; the mark bounds what a
 * command queued without its event (none is in this code base) would wait.
 */
export const QUIET_TRUST_MS = 90_000;

/** How a parked poll ended: a command was queued for its machine, or its time was up. */
export type PollEnd = 'WOKEN' | 'TIMED_OUT';

/** One timer, as the registry needs it: tests drive their own. */
export type SetTimer = (fire: () => void, ms: number) => { cancel(): void };

const realTimer: SetTimer = (fire, ms) => {
  // Unreferenced: a parked poll never keeps a process alive whose server has closed.
  const timer = setTimeout(fire, ms).unref();
  return { cancel: () => clearTimeout(timer) };
};

/**
 * A long-poll parked on this process until a command is queued for its machine or its time is up.
 * With its connection, request and response, it is all an idle agent costs here while it waits:
 * no promise, closure, timer or AbortSignal of its own. It is a node of its deadline list, and
 * `client` (the agent endpoint's response) is what its answer goes to.
 */
export class ParkedPoll<C> {
  prev: ParkedPoll<C> | undefined = undefined;
  next: ParkedPoll<C> | undefined = undefined;
  /** Its deadline list while it is in the registry; undefined once it has left it. */
  list: DeadlineList<C> | undefined = undefined;
  /** While its first look at the machine's queue runs, what ended it meanwhile is kept here, not acted on. */
  looking: boolean;
  endedWhileLooking: PollEnd | undefined = undefined;
  /** When the look found the queue empty (the registry's clock), -1 without a look. */
  lookedAt = -1;
  /** The credential the poll came with (its hash): judged again in the database before a hand-out. */
  credentialHash: string | undefined = undefined;

  constructor(
    readonly machineId: string,
    readonly client: C,
    /** When its time is up (the registry's clock). */
    readonly deadline: number,
    looking: boolean,
  ) {
    this.looking = looking;
  }
}

/**
 * The polls of one wait time, oldest first: a poll's deadline is its arrival plus the wait, so
 * they expire in the order they came and one timer, set for the oldest, serves them all (Node's
 * own timer lists work the same way, with an object per timer).
 */
class DeadlineList<C> {
  head: ParkedPoll<C> | undefined = undefined;
  tail: ParkedPoll<C> | undefined = undefined;
  timer: { cancel(): void } | undefined = undefined;
  constructor(readonly waitMs: number) {}
}

/**
 * The long-polls parked on this API process, by machine id; the one observer that wakes them when
 * `agentCommandQueued` arrives (through Postgres NOTIFY, so a command queued by another replica or
 * by the worker wakes them too); and one timer per wait time for their deadlines. At rest an API
 * process holds one poll per agent for most of the time, so a waiting poll keeps no async
 * function frames, promise, AbortController, timer or closures of its own: only its ParkedPoll.
 *
 * It also remembers the machines known to have no command waiting: their queue was empty when
 * a poll looked, and no `agentCommandQueued` for them has arrived since (this process listening
 * all along). The next poll of such a machine skips its first query: at rest, two polls in three.
 */
export class LongPolls<C> {
  /** machine id → its parked poll, or its polls when it has several (rare: an agent polls one at a time). */
  private readonly waiting = new Map<string, ParkedPoll<C> | Array<ParkedPoll<C>>>();
  private readonly lists = new Map<number, DeadlineList<C>>();
  /** machine id → when its queue was last seen empty, watched since. */
  private readonly quiet = new Map<string, number>();
  private marks = 0;
  private parked = 0;
  /** Bumped by every wake and every LISTEN restart: a look begun before one may have missed a command. */
  private wakes = 0;
  readonly quietTrustMs: number;
  /** The registry's clock (monotonic milliseconds): deadlines and quiet marks are on it. */
  readonly now: () => number;
  private readonly setTimer: SetTimer;

  /**
   * `ended` is called once for each poll that leaves the registry woken or timed out (not for one
   * dropped, nor while its first look runs: see `looked`).
   */
  constructor(
    private readonly ended: (poll: ParkedPoll<C>, end: PollEnd) => void,
    options: { quietTrustMs?: number; now?: () => number; setTimer?: SetTimer } = {},
  ) {
    this.quietTrustMs = options.quietTrustMs ?? QUIET_TRUST_MS;
    this.now = options.now ?? (() => performance.now());
    this.setTimer = options.setTimer ?? realTimer;
  }

  /** True when the machine's queue was seen empty less than the trust time ago, and nothing was queued since. */
  isQuiet(machineId: string): boolean {
    const at = this.quiet.get(machineId);
    return at !== undefined && this.now() - at < this.quietTrustMs;
  }

  /**
   * The machine's queue was empty at `checkedAt` and no event came for it since: call only when a
   * poll parked before that look was not woken.
   */
  markQuiet(machineId: string, checkedAt: number): void {
    this.quiet.set(machineId, checkedAt);
    // Machines that stop polling leave an entry behind: sweep the expired ones now and then.
    if (++this.marks % 10_000 === 0) {
      const now = this.now();
      for (const [id, at] of this.quiet) if (now - at >= this.quietTrustMs) this.quiet.delete(id);
    }
  }

  /**
   * Starts a look at a machine's queue made outside a poll (the check-in's): what to hand to
   * `lookedEmpty` when it found nothing waiting.
   */
  lookStarts(): { at: number; wakes: number } {
    return { at: this.now(), wakes: this.wakes };
  }

  /**
   * A look begun at `start` found the machine's queue empty: the machine is quiet from then on,
   * unless a command was queued for any machine, or the LISTEN restarted, while the look ran (its
   * event may have come before the look's answer; the next poll then looks for itself).
   */
  lookedEmpty(machineId: string, start: { at: number; wakes: number }): boolean {
    if (start.wakes !== this.wakes) return false;
    this.markQuiet(machineId, start.at);
    return true;
  }

  /**
   * Parks a poll: from now on a command queued for the machine wakes it, and it times out after
   * `waitMs`. `looking`: the caller looks at the machine's queue now and says when it is done
   * (`looked`, or `drop` when the look found commands or failed); until then whatever ends the
   * poll is kept on it instead of reported.
   */
  park(machineId: string, waitMs: number, client: C, looking: boolean): ParkedPoll<C> {
    const poll = new ParkedPoll(machineId, client, this.now() + waitMs, looking);
    const present = this.waiting.get(machineId);
    if (present === undefined) this.waiting.set(machineId, poll);
    else if (Array.isArray(present)) present.push(poll);
    else this.waiting.set(machineId, [present, poll]);
    let list = this.lists.get(waitMs);
    if (!list) {
      list = new DeadlineList<C>(waitMs);
      this.lists.set(waitMs, list);
    }
    poll.list = list;
    poll.prev = list.tail;
    if (list.tail) list.tail.next = poll;
    else list.head = poll;
    list.tail = poll;
    this.parked++;
    if (!list.timer) this.arm(list);
    return poll;
  }

  /**
   * The poll's first look found the queue empty at `lookedAt`: it waits on, or, when it was woken
   * or timed out during the look, it ends now.
   */
  looked(poll: ParkedPoll<C>, lookedAt: number): void {
    poll.looking = false;
    poll.lookedAt = lookedAt;
    const end = poll.endedWhileLooking;
    if (end !== undefined) {
      poll.endedWhileLooking = undefined;
      this.ended(poll, end);
    }
  }

  /** Takes the poll out without an answer (its client went away, or its first look answered it); nothing if it is out already. */
  drop(poll: ParkedPoll<C>): void {
    poll.endedWhileLooking = undefined;
    this.remove(poll);
  }

  /** Something waits for the machine (a check-in saw it): its next poll looks at its queue. */
  notQuiet(machineId: string): void {
    this.quiet.delete(machineId);
  }

  /** A command was queued for the machine: wakes every poll parked for it. */
  wake(machineId: string): void {
    this.wakes++;
    this.quiet.delete(machineId);
    const present = this.waiting.get(machineId);
    if (present === undefined) return;
    for (const poll of Array.isArray(present) ? [...present] : [present]) this.end(poll, 'WOKEN');
  }

  /** Polls parked now. */
  get size(): number {
    return this.parked;
  }

  follow(pubsub: FleetPubSub): () => void {
    return pubsub.observe({
      delivered: (topic) => {
        if (topic.startsWith(COMMAND_QUEUED)) this.wake(topic.slice(COMMAND_QUEUED.length));
      },
      // Events sent while the LISTEN was down are lost: let every poll look again.
      listening: () => {
        this.wakes++;
        this.quiet.clear();
        for (const machineId of [...this.waiting.keys()]) this.wake(machineId);
      },
    });
  }

  private end(poll: ParkedPoll<C>, end: PollEnd): void {
    if (!this.remove(poll)) return;
    if (poll.looking) poll.endedWhileLooking ??= end;
    else this.ended(poll, end);
  }

  /** Unlinks the poll from its machine and its deadline list; false when it was out already. */
  private remove(poll: ParkedPoll<C>): boolean {
    const list = poll.list;
    if (!list) return false;
    poll.list = undefined;
    this.parked--;
    const present = this.waiting.get(poll.machineId);
    if (present === poll) this.waiting.delete(poll.machineId);
    else if (Array.isArray(present)) {
      const at = present.indexOf(poll);
      if (at >= 0) present.splice(at, 1);
      if (present.length === 1) this.waiting.set(poll.machineId, present[0]!);
    }
    if (poll.prev) poll.prev.next = poll.next;
    else list.head = poll.next;
    if (poll.next) poll.next.prev = poll.prev;
    else list.tail = poll.prev;
    poll.prev = poll.next = undefined;
    if (!list.head) {
      list.timer?.cancel();
      list.timer = undefined;
      this.lists.delete(list.waitMs);
    }
    return true;
  }

  /** Sets the list's timer for its oldest poll (a removed oldest leaves it early: it then sets itself again). */
  private arm(list: DeadlineList<C>): void {
    const head = list.head!;
    list.timer = this.setTimer(() => this.expire(list), Math.max(1, Math.ceil(head.deadline - this.now())));
  }

  private expire(list: DeadlineList<C>): void {
    list.timer = undefined;
    // A timer may fire a fraction of a millisecond before the deadline it was set for.
    const now = this.now() + 1;
    while (list.head && list.head.deadline <= now) this.end(list.head, 'TIMED_OUT');
    if (list.head && !list.timer) this.arm(list);
  }
}
