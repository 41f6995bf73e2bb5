import { randomUUID } from 'node:crypto';
import type { Database } from '../../src/db/client.js';
import { createFleetPubSub } from '../../src/events/pubsub.js';
import { waitUntil } from './env.js';

/**
 * Readiness signals: what a test waits for before it does the thing it watches, instead of a
 * fixed sleep that may be too short on a loaded machine (and then passes without exercising what
 * the test names) or needlessly long on an idle one.
 */

/** The value of an unlabelled sample in Prometheus text; undefined when absent. */
export function metricValue(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/**
 * Resolves once the API at `server` (its URL, with or without `/graphql`) holds at least `count`
 * agent long-polls open: they have reached it and wait there, so a command queued from now on can
 * only reach them by waking them. Read from the API's own gauge (`fleetpatch_agent_long_polls_open`
 * on /metrics), per process: with replicas, ask the one that holds the polls.
 */
export async function longPollsOpen(server: string, count: number, timeoutMs = 10_000): Promise<void> {
  const metrics = `${server.replace(/\/graphql$/, '')}/metrics`;
  await waitUntil(
    async () => metricValue(await (await fetch(metrics)).text(), 'fleetpatch_agent_long_polls_open') ?? 0,
    (open) => open >= count,
    timeoutMs,
    `${count} long-poll(s) open on ${metrics}`,
  );
}

/**
 * Resolves once a subscription is live on the server. A graphql-ws subscription has no
 * acknowledgement: the server starts listening some time after the client sent it, and an event
 * published before is lost. So `probe` publishes an event the subscription passes on (through
 * PostgreSQL NOTIFY, as any publisher does) until `seen()` says one arrived.
 */
export async function subscriptionLive(probe: () => unknown, seen: () => boolean, timeoutMs = 10_000): Promise<void> {
  await waitUntil(
    async () => {
      if (!seen()) await probe();
      return seen();
    },
    (live) => live,
    timeoutMs,
    'the subscription to pass on a probe event',
  );
}

/**
 * Resolves once a subscription socket (openSubscription's `events`) has received a machineChanged
 * event published from now on: it is still open, and its API process has handled every event
 * published before this call (NOTIFYs reach each listener in commit order). Fails if the socket
 * no longer delivers.
 */
export async function stillDelivers(database: Database, socket: { events: unknown[] }, timeoutMs = 10_000): Promise<void> {
  const pubsub = await createFleetPubSub(database.sql);
  const before = socket.events.length;
  // Any machine id does: the event reaches the socket, as data or as the resolver's NOT_FOUND.
  await subscriptionLive(() => pubsub.publish('machineChanged', { machineId: randomUUID() }), () => socket.events.length > before, timeoutMs);
}
