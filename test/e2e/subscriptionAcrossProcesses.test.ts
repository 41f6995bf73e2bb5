import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createSelfCheck } from '../../src/db/selfChecks.js';
import { createFleetPubSub } from '../../src/events/pubsub.js';
import { freePort } from '../../src/net.js';
import { connectTestDatabase, databaseUrl, temporalSettings, tokenFor } from '../support/env.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

describe('subscriptions across processes', () => {
  const database = connectTestDatabase();
  let server: Spawned;
  let url: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    const port = await freePort();
    server = spawnFleetpatch(['server'], {
      DATABASE_URL: databaseUrl(),
      TEMPORAL_ADDRESS: temporalSettings().address,
      PORT: String(port),
      HOST: '127.0.0.1',
    });
    await server.waitFor(/"msg":"API listening"/);
    url = `ws://127.0.0.1:${port}/graphql`;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await stop(server);
    await database.close();
  });

  function connect(token: string): Client {
    const client = createClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    clients.push(client);
    return client;
  }

  it('delivers an event published by another process to a subscriber of the API process', async () => {
    const client = connect(await tokenFor(database, 'VIEWER'));
    const subscription = client.iterate<{ selfCheckCompleted: { id: string } }>({ query: 'subscription { selfCheckCompleted { id } }' });
    const row = await createSelfCheck(database.db);

    // This test process plays the worker: it publishes through its own Postgres connection.
    const pubsub = await createFleetPubSub(database.sql);
    const received = (async () => {
      for await (const event of subscription) {
        if (event.data?.selfCheckCompleted.id === row.id) return event.data.selfCheckCompleted;
      }
      return undefined;
    })();
    // The server subscribes asynchronously after the socket opens; publish until it hears.
    const publisher = setInterval(() => pubsub.publish('selfCheckCompleted', { selfCheckId: row.id }), 200);
    try {
      expect(await received).toEqual({ id: row.id });
    } finally {
      clearInterval(publisher);
      await subscription.return?.();
    }
  });

  it('refuses a subscription connection with an unknown token', async () => {
    const client = connect('fp_unknown');
    const outcome = await new Promise<string>((resolve) => {
      client.subscribe({ query: 'subscription { selfCheckCompleted { id } }' }, {
        next: () => resolve('event'),
        error: (error) => resolve(`closed ${(error as { code?: number }).code}`),
        complete: () => resolve('complete'),
      });
    });
    expect(outcome).toBe('closed 4403');
  });
});
