import { createPubSub, type PubSub } from '@graphql-yoga/subscription';
import type { Sql } from 'postgres';
import type { RunProgressEvent } from '../db/runProgress.js';

export type { RunProgressEvent };

/**
 * Every event that crosses processes, with its payload. Payloads carry ids, never whole records:
 * a NOTIFY payload is limited to 8 KB, and subscribers re-read the current state anyway.
 */
export interface Events {
  [topic: string]: [] | [unknown] | [string | number, unknown];
  selfCheckCompleted: [{ selfCheckId: string }];
  /**
   * A machine's facts, readiness, assessment, tags or management changed; `removed` when it was
   * removed (its credential is void). `{ resync: true }`: delivered to this process's subscribers
   * only, after its LISTEN came back (events of any machine may have been missed meanwhile).
   */
  machineChanged: [{ machineId: string; removed?: true; /** Its credential was replaced (an enrollment sent again): the old one is no longer valid. */ credentialReplaced?: true } | { resync: true }];
  /** A command waits for the machine's agent (keyed by machine id): wakes its long-poll. */
  agentCommandQueued: [string, { commandId: string }];
  /** A machine of an agent upgrade (keyed by upgrade id) reported, or the upgrade's status changed (machineId null). */
  agentUpgradeProgress: [string, { machineId: string | null }];
  /** Something changed in a deployment run (keyed by run id): its status, a machine's, an update's, or new job lines. Stored before it is published (src/db/runProgress.ts). */
  deploymentRunProgress: [string, RunProgressNotice];
  /**
   * A run of a deployment was created (keyed by deployment id). `{ resync: true }`: delivered to
   * this process's subscribers only, after its LISTEN came back (runs may have been missed).
   */
  deploymentRunStarted: [string, { runId: string } | { resync: true }];
  /** An API token was revoked, re-dated or deleted. Sent by a trigger in PostgreSQL (migrations/0007_console_sessions.sql), whoever wrote it. */
  apiTokenChanged: [{ tokenId: string }];
  /** A console session ended, was re-dated or deleted. Sent by a trigger in PostgreSQL, like apiTokenChanged. */
  consoleSessionChanged: [{ sessionId: string }];
}

/**
 * A progress event as NOTIFY carries it: whole, or with `elided` and no update names when they
 * would not fit in a payload (subscribers then read it from PostgreSQL).
 */
export type RunProgressNotice = (RunProgressEvent & { elided?: true }) | RunProgressResync;

/**
 * Delivered to this process's subscribers only, after its LISTEN came back: events may have been
 * missed, so the subscription reads what PostgreSQL recorded past the last event it delivered.
 */
export interface RunProgressResync {
  resync: true;
}

/** Update names past this many characters travel by PostgreSQL instead of NOTIFY (8 KB per payload). */
const MAX_NOTICE_NAMES_CHARS = 2000;

/**
 * Sees every event of this process's pubsub without a subscription per key: `published` runs at
 * once, inside `publish` on this process (before its NOTIFY is even sent); `delivered` runs for
 * every event that comes back through NOTIFY, from any process; `listening` runs each time the
 * LISTEN is (re)established, after which events sent while it was down are lost for good: an
 * observer re-reads what it keeps (subscriptions get a resync event of their topic instead, see
 * RESYNC_EVENTS).
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
  /**
   * Publishes several events at once (each element: the arguments of `publish`) in as few NOTIFYs
   * as the payload limit allows; subscribers and observers see each event as if published alone,
   * in order. A group of assessment reports, or a deployment's first wave of jobs, is one NOTIFY
   * for dozens of events instead of one each.
   */
  publishMany(events: ReadonlyArray<Parameters<PubSub<Events>['publish']>>): void;
};

/** The single Postgres channel that carries every topic: one LISTEN per process. */
export const EVENTS_CHANNEL = 'fleetpatch_events';

/**
 * What the subscribers of a topic receive when this process's LISTEN comes back after a break
 * (PostgreSQL restarted, the connection dropped): NOTIFYs sent meanwhile are lost, so each
 * subscription is told to read its state again. Topics without an entry get nothing.
 */
const RESYNC_EVENTS: Array<[prefix: string, detail: unknown]> = [
  ['machineChanged', { resync: true } satisfies Events['machineChanged'][0]],
  ['deploymentRunProgress:', { resync: true } satisfies RunProgressResync],
  ['deploymentRunStarted:', { resync: true } satisfies Events['deploymentRunStarted'][1]],
];

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
  private listens = 0;
  private readonly observers = new Set<EventObserver>();
  /** Event types with subscribers on this process, and how many listeners each has. */
  private readonly subscribed = new Map<string, number>();

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
      () => {
        this.tell((o) => o.listening?.());
        if (++this.listens > 1) this.resync();
      },
    );
    await this.listening;
  }

  override addEventListener(...[type, listener, options]: Parameters<EventTarget['addEventListener']>): void {
    if (listener) this.subscribed.set(type, (this.subscribed.get(type) ?? 0) + 1);
    super.addEventListener(type, listener, options);
  }

  override removeEventListener(...[type, listener, options]: Parameters<EventTarget['removeEventListener']>): void {
    const left = (this.subscribed.get(type) ?? 0) - (listener ? 1 : 0);
    if (left > 0) this.subscribed.set(type, left);
    else this.subscribed.delete(type);
    super.removeEventListener(type, listener, options);
  }

  /** Tells every subscription of this process that events may have been missed (RESYNC_EVENTS). */
  private resync(): void {
    for (const type of [...this.subscribed.keys()]) {
      const detail = RESYNC_EVENTS.find(([prefix]) => (prefix.endsWith(':') ? type.startsWith(prefix) : type === prefix))?.[1];
      if (detail !== undefined) super.dispatchEvent(new CustomEvent(type, { detail }));
    }
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
    this.dispatchEnvelopes([{ type: event.type, detail: (event as CustomEvent).detail }]);
    return true;
  }

  /**
   * Events in as few NOTIFYs as the payload limit allows: one envelope alone, several as a JSON
   * array, sent one NOTIFY after the other (the pool's connections would not keep their order).
   */
  dispatchEnvelopes(envelopes: readonly Envelope[]): void {
    for (const envelope of envelopes) this.tell((o) => o.published?.(envelope.type, envelope.detail));
    if (envelopes.length === 1) {
      this.sql.notify(EVENTS_CHANNEL, JSON.stringify(envelopes[0])).catch(this.onError);
      return;
    }
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
      this.tell((o) => o.delivered?.(envelope.type, envelope.detail));
      super.dispatchEvent(new CustomEvent(envelope.type, { detail: envelope.detail }));
    }
  }
}

/** Below PostgreSQL's 8,000-byte NOTIFY payload limit, with room to spare. */
const MAX_BATCH_PAYLOAD_BYTES = 7000;

/** Wakes the long-polls of many machines at once (a deployment's first wave): `agentCommandQueued` for each, in few NOTIFYs. */
export function announceAgentCommands(pubsub: FleetPubSub, commands: ReadonlyArray<{ machineId: string; id: string }>): void {
  pubsub.publishMany(commands.map((c) => ['agentCommandQueued', c.machineId, { commandId: c.id }]));
}

/** Publishes progress events a run recorded, in one NOTIFY where they fit. */
export function announceRunProgress(pubsub: FleetPubSub, runId: string, events: readonly RunProgressEvent[]): void {
  if (events.length === 0) return;
  pubsub.publishMany(
    events.map((event): Parameters<FleetPubSub['publish']> => {
      const long = event.updateNames.reduce((n, name) => n + name.length + 3, 0) > MAX_NOTICE_NAMES_CHARS;
      return ['deploymentRunProgress', runId, long ? { ...event, updateNames: [], elided: true } : event];
    }),
  );
}

/** Tells `deploymentRunsStarted` subscribers that a run of the deployment exists. */
export function announceRunStarted(pubsub: FleetPubSub, deploymentId: string, runId: string): void {
  pubsub.publish('deploymentRunStarted', deploymentId, { runId });
}

export async function createFleetPubSub(sql: Sql, onError?: (error: unknown) => void): Promise<FleetPubSub> {
  const eventTarget = new PostgresEventTarget(sql, onError);
  await eventTarget.listen();
  const pubsub = createPubSub<Events>({ eventTarget: eventTarget as never });
  return Object.assign(pubsub, {
    observe: (observer: EventObserver) => eventTarget.observe(observer),
    // The topic and payload as @graphql-yoga/subscription's publish makes them.
    publishMany: (events: ReadonlyArray<Parameters<PubSub<Events>['publish']>>) =>
      eventTarget.dispatchEnvelopes(events.map(([routingKey, ...args]) => ({ type: args[1] === undefined ? routingKey : `${routingKey}:${String(args[0])}`, detail: args[1] ?? args[0] ?? null }))),
  });
}
