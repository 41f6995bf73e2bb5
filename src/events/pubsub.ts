import { createPubSub, type PubSub } from '@graphql-yoga/subscription';
import type { Sql } from 'postgres';

/**
 * Every event that crosses processes, with its payload. Payloads carry ids, never whole records:
 * a NOTIFY payload is limited to 8 KB, and subscribers re-read the current state anyway.
 */
export interface Events {
  [topic: string]: [] | [unknown] | [string | number, unknown];
  selfCheckCompleted: [{ selfCheckId: string }];
  /** A machine's facts, readiness, assessment, tags or management changed. */
  machineChanged: [{ machineId: string }];
  /** A command waits for the machine's agent (keyed by machine id): wakes its long-poll. */
  agentCommandQueued: [string, { commandId: string }];
  /** Commands wait for each of these machines (a deployment's fan-out): wakes their long-polls. Send with `announceAgentCommands`. */
  agentCommandsQueued: [{ machineIds: string[] }];
  /** Something changed in a deployment run (keyed by run id): its status, a machine's, an update's, or new job lines. */
  deploymentRunProgress: [string, RunProgressEvent];
}

export interface RunProgressEvent {
  kind: 'RUN' | 'MACHINE' | 'UPDATES' | 'LINES';
  machineRunId: string | null;
  /** UPDATES: the names of the updates whose status changed. */
  updateNames: string[];
  /** LINES: the first and last id of the new job stream lines. */
  lineIds: [number, number] | null;
}

/**
 * Sees every event of this process's pubsub without a subscription per key: `published` runs at
 * once, inside `publish` on this process (before its NOTIFY is even sent); `delivered` runs for
 * every event that comes back through NOTIFY, from any process; `listening` runs each time the
 * LISTEN is (re)established, after which events sent while it was down are lost for good.
 * For per-process registries (the agent credential cache, the long-poll wake-ups): one listener
 * for thousands of machines.
 */
export interface EventObserver {
  published?(topic: string, detail: unknown): void;
  delivered?(topic: string, detail: unknown): void;
  listening?(): void;
}

export type FleetPubSub = PubSub<Events> & {
  /** Adds an observer; returns the function that removes it. */
  observe(observer: EventObserver): () => void;
};

/** The single Postgres channel that carries every topic: one LISTEN per process. */
export const EVENTS_CHANNEL = 'fleetpatch_events';

interface Envelope {
  type: string;
  detail: unknown;
}

/**
 * An EventTarget whose dispatch goes through Postgres NOTIFY, so that an event published in one
 * process (a worker, an API replica) reaches the subscribers of every process that listens.
 * Listeners are only called from the notification, never directly, so local and remote
 * subscribers see events in the same order.
 */
export class PostgresEventTarget extends EventTarget {
  private listening: Promise<unknown> | undefined;
  private readonly observers = new Set<EventObserver>();

  constructor(
    private readonly sql: Sql,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {
    super();
  }

  /** Starts listening; resolves once the LISTEN is in place, so nothing published after is missed. */
  async listen(): Promise<void> {
    this.listening ??= this.sql.listen(
      EVENTS_CHANNEL,
      (payload) => this.deliver(payload),
      () => this.tell((o) => o.listening?.()),
    );
    await this.listening;
  }

  observe(observer: EventObserver): () => void {
    this.observers.add(observer);
    return () => this.observers.delete(observer);
  }

  private tell(call: (observer: EventObserver) => void): void {
    for (const observer of this.observers) {
      try {
        call(observer);
      } catch (error) {
        this.onError(error);
      }
    }
  }

  override dispatchEvent(event: Event): boolean {
    const envelope: Envelope = { type: event.type, detail: (event as CustomEvent).detail };
    this.tell((o) => o.published?.(envelope.type, envelope.detail));
    this.sql.notify(EVENTS_CHANNEL, JSON.stringify(envelope)).catch(this.onError);
    return true;
  }

  private deliver(payload: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(payload) as Envelope;
    } catch (error) {
      this.onError(error);
      return;
    }
    this.tell((o) => o.delivered?.(envelope.type, envelope.detail));
    super.dispatchEvent(new CustomEvent(envelope.type, { detail: envelope.detail }));
  }
}

/** Machine ids per `agentCommandsQueued` event: 150 uuids keep a NOTIFY payload near 6 KB, under its 8 KB limit. */
const MACHINES_PER_EVENT = 150;

/** Wakes the long-polls of many machines at once: one event per 150 machines instead of one per machine. */
export function announceAgentCommands(pubsub: FleetPubSub, machineIds: readonly string[]): void {
  for (let i = 0; i < machineIds.length; i += MACHINES_PER_EVENT) {
    pubsub.publish('agentCommandsQueued', { machineIds: machineIds.slice(i, i + MACHINES_PER_EVENT) });
  }
}

export async function createFleetPubSub(sql: Sql, onError?: (error: unknown) => void): Promise<FleetPubSub> {
  const eventTarget = new PostgresEventTarget(sql, onError);
  await eventTarget.listen();
  const pubsub = createPubSub<Events>({ eventTarget: eventTarget as never });
  return Object.assign(pubsub, { observe: (observer: EventObserver) => eventTarget.observe(observer) });
}
