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

export type FleetPubSub = PubSub<Events>;

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

  constructor(
    private readonly sql: Sql,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {
    super();
  }

  /** Starts listening; resolves once the LISTEN is in place, so nothing published after is missed. */
  async listen(): Promise<void> {
    this.listening ??= this.sql.listen(EVENTS_CHANNEL, (payload) => this.deliver(payload));
    await this.listening;
  }

  override dispatchEvent(event: Event): boolean {
    const envelope: Envelope = { type: event.type, detail: (event as CustomEvent).detail };
    this.sql.notify(EVENTS_CHANNEL, JSON.stringify(envelope)).catch(this.onError);
    return true;
  }

  /**
   * Several events in as few NOTIFYs as the payload limit allows: a JSON array of envelopes each,
   * one NOTIFY after the other (the pool's connections would not keep their order).
   */
  dispatchEnvelopes(envelopes: readonly Envelope[]): void {
    let batch: string[] = [];
    let bytes = 2;
    let sent: Promise<unknown> = Promise.resolve();
    const send = () => {
      if (batch.length > 0) {
        const payload = `[${batch.join(',')}]`;
        sent = sent.then(() => this.sql.notify(EVENTS_CHANNEL, payload)).catch(this.onError);
      }
      batch = [];
      bytes = 2;
    };
    for (const envelope of envelopes) {
      const json = JSON.stringify(envelope);
      const size = Buffer.byteLength(json) + 1;
      if (bytes + size > MAX_BATCH_PAYLOAD_BYTES) send();
      batch.push(json);
      bytes += size;
    }
    send();
  }

  private deliver(payload: string): void {
    let envelopes: Envelope | Envelope[];
    try {
      envelopes = JSON.parse(payload) as Envelope | Envelope[];
    } catch (error) {
      this.onError(error);
      return;
    }
    for (const envelope of Array.isArray(envelopes) ? envelopes : [envelopes]) {
      super.dispatchEvent(new CustomEvent(envelope.type, { detail: envelope.detail }));
    }
  }
}

/** Below PostgreSQL's 8,000-byte NOTIFY payload limit, with room to spare. */
const MAX_BATCH_PAYLOAD_BYTES = 7000;

const eventTargets = new WeakMap<FleetPubSub, PostgresEventTarget>();

/**
 * Publishes several events at once (each element: the arguments of `publish`), in as few NOTIFYs
 * as the payload limit allows; subscribers see each event as if it had been published alone, in
 * order. Assessment ingest publishes a machineChanged per report of a group this way: one NOTIFY
 * for dozens of reports instead of one each.
 */
export function publishMany(pubsub: FleetPubSub, events: ReadonlyArray<Parameters<FleetPubSub['publish']>>): void {
  const target = eventTargets.get(pubsub);
  if (!target) {
    for (const args of events) (pubsub.publish as (...a: unknown[]) => void).apply(pubsub, args);
    return;
  }
  // The topic and payload as @graphql-yoga/subscription's publish makes them.
  target.dispatchEnvelopes(
    events.map(([routingKey, ...args]) => ({ type: args[1] === undefined ? routingKey : `${routingKey}:${String(args[0])}`, detail: args[1] ?? args[0] ?? null })),
  );
}

export async function createFleetPubSub(sql: Sql, onError?: (error: unknown) => void): Promise<FleetPubSub> {
  const eventTarget = new PostgresEventTarget(sql, onError);
  await eventTarget.listen();
  const pubsub = createPubSub<Events>({ eventTarget: eventTarget as never });
  eventTargets.set(pubsub, eventTarget);
  return pubsub;
}
