import type { FleetPubSub } from '../../events/pubsub.js';

const COMMAND_QUEUED = 'agentCommandQueued:';

/**
 * The long-polls open on this API process, by machine id, and the one observer that wakes them
 * when `agentCommandQueued` arrives (through Postgres NOTIFY, so a command queued by another
 * replica or by the worker wakes them too). It replaces a pubsub subscription per poll, which
 * cost an async iterator, a Repeater and an EventTarget listener for every agent at rest.
 */
export class LongPollWakeups {
  private readonly waiting = new Map<string, Set<() => void>>();

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

  /** Wakes every poll waiting for the machine. */
  wake(machineId: string): void {
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
        for (const machineId of [...this.waiting.keys()]) this.wake(machineId);
      },
    });
  }
}
