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

  private deliver(payload: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(payload) as Envelope;
    } catch (error) {
      this.onError(error);
      return;
    }
    super.dispatchEvent(new CustomEvent(envelope.type, { detail: envelope.detail }));
  }
}

export async function createFleetPubSub(sql: Sql, onError?: (error: unknown) => void): Promise<FleetPubSub> {
  const eventTarget = new PostgresEventTarget(sql, onError);
  await eventTarget.listen();
  return createPubSub<Events>({ eventTarget: eventTarget as never });
}
