import type { FleetPubSub } from '../../events/pubsub.js';

const COMMAND_QUEUED = 'agentCommandQueued:';

/**
 * How long "nothing waits for this machine" stays known without looking in the database again.
 * Shorter than the redelivery time of commands an agent took and never finished (5 minutes), so
 * that those are handed out again on time; and it bounds what a command queued without its event
 * (none does in this code base) would wait.
 */
export const QUIET_TRUST_MS = 60_000;

/**
 * The long-polls open on this API process, by machine id, and the one observer that wakes them
 * when `agentCommandQueued` arrives (through Postgres NOTIFY, so a command queued by another
 * replica or by the worker wakes them too). It replaces a pubsub subscription per poll, which
 * cost an async iterator, a Repeater and an EventTarget listener for every agent at rest.
 *
 * It also remembers the machines known to have no command waiting: their queue was empty when
 * a poll looked, and no `agentCommandQueued` for them has arrived since (this process listening
 * all along). The next poll of such a machine skips its first query: at rest, two polls in three.
 */
export class LongPollWakeups {
  private readonly waiting = new Map<string, Set<() => void>>();
  /** machine id → when its queue was last seen empty, watched since. */
  private readonly quiet = new Map<string, number>();
  private marks = 0;

  constructor(
    private readonly quietTrustMs = QUIET_TRUST_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** True when the machine's queue was seen empty less than the trust time ago, and nothing was queued since. */
  isQuiet(machineId: string): boolean {
    const at = this.quiet.get(machineId);
    return at !== undefined && this.now() - at < this.quietTrustMs;
  }

  /**
   * The machine's queue was empty at `checkedAt` and no event came for it since: call only when a
   * waiter registered before that look was not woken.
   */
  markQuiet(machineId: string, checkedAt: number): void {
    this.quiet.set(machineId, checkedAt);
    // Machines that stop polling leave an entry behind: sweep the expired ones now and then.
    if (++this.marks % 10_000 === 0) {
      const now = this.now();
      for (const [id, at] of this.quiet) if (now - at >= this.quietTrustMs) this.quiet.delete(id);
    }
  }

  /** Calls `wake` once, at the first command queued for the machine from now on; returns the function that stops waiting. */
  wait(machineId: string, wake: () => void): () => void {
    let waiters = this.waiting.get(machineId);
    if (!waiters) {
      waiters = new Set();
      this.waiting.set(machineId, waiters);
    }
    waiters.add(wake);
    return () => {
      const current = this.waiting.get(machineId);
      if (!current) return;
      current.delete(wake);
      if (current.size === 0) this.waiting.delete(machineId);
    };
  }

  /** A command was queued for the machine: wakes every poll waiting for it. */
  wake(machineId: string): void {
    this.quiet.delete(machineId);
    const waiters = this.waiting.get(machineId);
    if (!waiters) return;
    this.waiting.delete(machineId);
    for (const wake of waiters) wake();
  }

  /** Machines with a poll waiting now. */
  get size(): number {
    return this.waiting.size;
  }

  follow(pubsub: FleetPubSub): () => void {
    return pubsub.observe({
      delivered: (topic) => {
        if (topic.startsWith(COMMAND_QUEUED)) this.wake(topic.slice(COMMAND_QUEUED.length));
      },
      // Events sent while the LISTEN was down are lost: let every poll look again.
      listening: () => {
        this.quiet.clear();
        for (const machineId of [...this.waiting.keys()]) this.wake(machineId);
      },
    });
  }
}
