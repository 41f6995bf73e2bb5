import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { createApiToken, revokeApiToken } from '../../src/db/tokens.js';
import { connectTestDatabase, freshDatabase, graphql, startTestApi, temporalSettings, tokenFor } from '../support/env.js';
import { stillDelivers } from '../support/signals.js';
import { openSubscription } from '../support/subscriptions.js';

/**
 * Two API replicas on one database. A socket authenticates once, when it opens; its token is
 * revoked or expires later, through the other replica, the command line, or the clock.
 */
describe('subscription sockets whose token is revoked or expires', () => {
  let first: ApiServer;
  let second: ApiServer;
  let database: Database;
  let drop: () => Promise<void>;
  let admin: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    const temporal = temporalSettings();
    [first, second] = await Promise.all([startTestApi(temporal, { databaseUrl: fresh.url }), startTestApi(temporal, { databaseUrl: fresh.url })]);
    admin = await tokenFor(database, 'ADMIN');
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await first.close();
    await second.close();
    await database.close();
    await drop();
  });

  const subscribe = async (api: ApiServer, token: string) => {
    const opened = await openSubscription(api.url, { token });
    clients.push(opened.client);
    return opened;
  };

  it('closes a socket on the other replica within moments of revokeApiToken', async () => {
    const { id, secret } = await createApiToken(database.db, { name: 'dashboard', role: 'VIEWER' });
    const onSecond = await subscribe(second, secret);
    const onFirst = await subscribe(first, secret);
    const bystander = await subscribe(second, await tokenFor(database, 'VIEWER'));

    const revokedAt = Date.now();
    const revoked = await graphql(first.url, 'mutation($id: ID!) { revokeApiToken(id: $id) { state } }', { token: admin, variables: { id } });
    expect(revoked.data).toEqual({ revokeApiToken: { state: 'REVOKED' } });

    for (const socket of [onSecond, onFirst]) {
      const end = await socket.closed;
      expect(end).toMatchObject({ code: 4403, reason: 'The API token was revoked.' });
      // Through NOTIFY: milliseconds; the bound without it is the minute of the periodic check.
      expect(end.at - revokedAt).toBeLessThan(3000);
    }
    // Other tokens' sockets stay open: the bystander still receives an event sent after the
    // revocation reached its replica.
    await stillDelivers(database, bystander);
  });

  it('closes it when the token is revoked outside any API process (fleetpatch token revoke)', async () => {
    const { id, secret } = await createApiToken(database.db, { name: 'ci', role: 'OPERATOR' });
    const socket = await subscribe(second, secret);
    const revokedAt = Date.now();
    // What `fleetpatch token revoke` does, from this process, with its own database connection.
    await revokeApiToken(database.db, id);
    const end = await socket.closed;
    expect(end).toMatchObject({ code: 4403, reason: 'The API token was revoked.' });
    expect(end.at - revokedAt).toBeLessThan(3000);
  });

  it('closes it when the token expires, at its expiry', async () => {
    const expiresAt = new Date(Date.now() + 2500);
    const { secret } = await createApiToken(database.db, { name: 'short-lived', role: 'VIEWER', expiresAt });
    const socket = await subscribe(first, secret);
    const end = await socket.closed;
    expect(end).toMatchObject({ code: 4403, reason: 'The API token expired.' });
    expect(end.at).toBeGreaterThanOrEqual(expiresAt.getTime());
    expect(end.at - expiresAt.getTime()).toBeLessThan(1500);
    // And a new connection with it is refused.
    await expect(openSubscription(first.url, { token: secret })).rejects.toThrow(/4403/);
  });

  it('closes it at the new expiry when a token is re-dated earlier', async () => {
    const { id, secret } = await createApiToken(database.db, { name: 're-dated', role: 'VIEWER', expiresAt: new Date(Date.now() + 86_400_000) });
    const socket = await subscribe(second, secret);
    const expiresAt = new Date(Date.now() + 1500);
    await database.sql`update api_tokens set expires_at = ${expiresAt.toISOString()}::timestamptz where id = ${id}`;
    const end = await socket.closed;
    expect(end).toMatchObject({ code: 4403, reason: 'The API token expired.' });
    expect(end.at - expiresAt.getTime()).toBeLessThan(1500);
  });
});
