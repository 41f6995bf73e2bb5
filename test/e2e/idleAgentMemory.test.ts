import { setMaxListeners } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import type { Database } from '../../src/db/client.js';
import { enrollMachine } from '../../src/db/machines.js';
import { freePort } from '../../src/net.js';
import { machineFacts } from '../../testkit/agentFacts.js';
import { connectTestDatabase, freshDatabase, temporalSettings } from '../support/env.js';
import { enrollmentKey } from '../support/machines.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';
import { longPollsOpen } from '../support/signals.js';

const HEAP_PROBE = new URL('../../testkit/heapProbe.mjs', import.meta.url).href;
/** Polls added between the two measurements: enough that a few hundred bytes per poll stand out from the heap's noise. */
const POLLS = 500;
/**
 * What one idle agent's long-poll may hold in the API's heap once garbage is collected, its
 * connection, request and response included. Node's own HTTP server holds about 4.7 KB per
 * connection with a request waiting (Node 20, a bare handler); the poll held 10.5 KB in all while
 * it waited inside its route's async frames (with an AbortController, a timer, closures, and
 * Apollo's drain listeners), and 4.6 KB parked as a ParkedPoll.
 */
const MAX_HEAP_BYTES_PER_POLL = 7_000;

describe("an idle agent's long-poll", () => {
  let fresh: Awaited<ReturnType<typeof freshDatabase>>;
  let database: Database;
  let server: Spawned;
  let base: string;
  const polling = new AbortController();
  // Every poll listens on it.
  setMaxListeners(0, polling.signal);
  const polls: Array<Promise<unknown>> = [];
  let probes = 0;

  beforeAll(async () => {
    fresh = await freshDatabase();
    database = connectTestDatabase(fresh.url);
    const port = await freePort();
    server = spawnFleetpatch(['server'], {
      DATABASE_URL: fresh.url,
      TEMPORAL_ADDRESS: temporalSettings().address,
      PORT: String(port),
      HOST: '127.0.0.1',
      NODE_OPTIONS: `--import=${HEAP_PROBE}`,
    });
    await server.waitFor(/"msg":"API listening"/);
    base = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    polling.abort();
    await Promise.allSettled(polls);
    if (server) await stop(server);
    await database?.close();
    await fresh?.drop();
  });

  /** The API's heap in use after a full collection (testkit/heapProbe.mjs, preloaded into it). */
  async function heapUsed(): Promise<number> {
    const seq = ++probes;
    server.child.kill('SIGUSR2');
    const [, json] = await server.waitFor(new RegExp(`heap-probe (\\{"seq":${seq},[^\\n]*\\})`), 30_000);
    return (JSON.parse(json!) as { heapUsed: number }).heapUsed;
  }

  async function agents(count: number): Promise<AgentClient[]> {
    const key = await enrollmentKey(database, 'idle agents');
    const clients: AgentClient[] = [];
    for (let i = 0; i < count; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, count - i) }, async (_, j) => {
          const outcome = await enrollMachine(database.db, key, machineFacts({ hostname: `idle-${i + j}` }), new Date());
          if (!outcome.enrolled) throw new Error(outcome.reason);
          const client = new AgentClient(base);
          client.setCredential(outcome.credential);
          clients.push(client);
        }),
      );
    }
    return clients;
  }

  it('holds little in the API once garbage is collected: one poll per idle agent fits thousands of agents in a process', async () => {
    const clients = await agents(2 * POLLS);
    // Each agent's first poll looks its credential up and finds its queue empty: after it, the API
    // knows the machine and that nothing waits for it, as it does for an agent at rest.
    await Promise.all(clients.map((client) => client.commands(1)));

    const hold = (from: number, to: number) => {
      for (const client of clients.slice(from, to)) polls.push(client.commands(60, polling.signal).catch(() => undefined));
    };
    hold(0, POLLS);
    await longPollsOpen(base, POLLS, 30_000);
    const before = Math.min(await heapUsed(), await heapUsed());
    // The second half on connections of their own: each costs what an idle agent's poll costs.
    hold(POLLS, 2 * POLLS);
    await longPollsOpen(base, 2 * POLLS, 30_000);
    const after = Math.min(await heapUsed(), await heapUsed());
    const perPoll = (after - before) / POLLS;
    console.log(`idle long-poll: ${Math.round(perPoll)} bytes of API heap each (${POLLS} polls; ${before} → ${after} bytes after a full collection)`);
    expect(perPoll).toBeLessThan(MAX_HEAP_BYTES_PER_POLL);
    // Still held: the measurement saw polls waiting, not polls answered.
    await longPollsOpen(base, 2 * POLLS, 1_000);
  });
});
