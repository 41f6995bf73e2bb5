import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { AgentClient } from '../../src/agent/client.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { createLogger } from '../../src/logger.js';
import { machineFacts } from '../../testkit/agentFacts.js';
import { connectTestDatabase, freshDatabase, graphql, startApiOnFreshDatabase, startTestApi, temporalSettings, tokenFor } from '../support/env.js';
import { enrollMachine } from '../support/machines.js';

describe('access: tokens, audit log, limits and secrets in logs', () => {
  let api: ApiServer;
  let database: Database;
  let drop: () => Promise<void>;
  let admin: string;
  let viewer: string;
  let databaseUrl: string;
  const logFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-log-')), 'api.log');

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    databaseUrl = fresh.url;
    database = connectTestDatabase(fresh.url);
    // Everything the API logs, at its most talkative, goes to a file the last test greps for secrets.
    const logger = createLogger({ level: 'debug', format: 'json', name: 'api', destination: pino.destination({ dest: logFile, sync: true }) });
    api = await startTestApi(temporalSettings(), { databaseUrl: fresh.url, logger });
    admin = await tokenFor(database, 'ADMIN');
    viewer = await tokenFor(database, 'VIEWER');
  });

  afterAll(async () => {
    await api.close();
    await database.close();
    await drop();
  });

  const secretsSeen: string[] = [];

  it('creates a token by mutation, shows its secret once, keeps only a hash, lists it without secret, and revokes it', async () => {
    const created = await graphql<{ createApiToken: { secret: string; token: { id: string; name: string; role: string; state: string } } }>(
      api.url,
      'mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { secret token { id name role state } } }',
      { token: admin, variables: { input: { name: 'ci pipeline', role: 'OPERATOR', expiresAt: new Date(Date.now() + 86_400_000).toISOString() } } },
    );
    expect(created.errors).toBeUndefined();
    const { secret, token } = created.data!.createApiToken;
    secretsSeen.push(secret);
    expect(secret).toMatch(/^fp_[A-Za-z0-9_-]{43}$/);
    expect(token).toMatchObject({ name: 'ci pipeline', role: 'OPERATOR', state: 'ACTIVE' });
    const stored = await database.sql`select * from api_tokens where id = ${token.id}`;
    expect(JSON.stringify(stored)).not.toContain(secret);

    // The new token works with its role: an operator may assess, but not list tokens.
    const assess = await graphql(api.url, 'mutation { assessMachines(machineIds: ["00000000-0000-4000-8000-000000000000"]) { machineId } }', { token: secret });
    expect(assess.errors).toBeUndefined();
    const listAsOperator = await graphql(api.url, '{ apiTokens { totalCount } }', { token: secret });
    expect(listAsOperator.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    const list = await graphql<{ apiTokens: { edges: Array<{ node: Record<string, unknown> }> } }>(api.url, '{ apiTokens(first: 500) { edges { node { id name role state expiresAt lastUsedAt } } } }', { token: admin });
    const listed = list.data!.apiTokens.edges.map((e) => e.node).find((t) => t.id === token.id)!;
    expect(listed).toMatchObject({ name: 'ci pipeline', role: 'OPERATOR', state: 'ACTIVE' });
    expect(listed.lastUsedAt).not.toBeNull();
    expect(JSON.stringify(list)).not.toContain(secret);

    const revoked = await graphql<{ revokeApiToken: { state: string } }>(api.url, 'mutation($id: ID!) { revokeApiToken(id: $id) { state } }', { token: admin, variables: { id: token.id } });
    expect(revoked.data!.revokeApiToken.state).toBe('REVOKED');
    const after = await graphql(api.url, '{ machines { totalCount } }', { token: secret });
    expect(after.status).toBe(401);
    expect(after.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('refuses a token expiring in the past or with no name, naming the field', async () => {
    const past = await graphql(api.url, 'mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { secret } }', {
      token: admin,
      variables: { input: { name: 'old', role: 'VIEWER', expiresAt: '2020-01-01T00:00:00Z' } },
    });
    expect(past.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'expiresAt' }, message: expect.stringMatching(/must be in the future/) });
    const noName = await graphql(api.url, 'mutation { createApiToken(input: {name: " ", role: VIEWER}) { secret } }', { token: admin });
    expect(noName.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'name' });
  });

  it('audits every mutation (allowed or refused) and every enrollment, and keeps the entry when the target is removed', async () => {
    const key = await graphql<{ createEnrollmentKey: { key: { id: string }; secret: string } }>(
      api.url,
      'mutation { createEnrollmentKey(input: {description: "audit"}) { key { id } secret } }',
      { token: admin },
    );
    const keySecret = key.data!.createEnrollmentKey.secret;
    secretsSeen.push(keySecret);
    const enrolled = await enrollMachine(api.url, keySecret, { facts: { hostname: 'audited-01' } });
    secretsSeen.push(enrolled.credential);
    await expect(new AgentClient(api.url).enroll(`fpe_${'x'.repeat(43)}`, machineFacts({ hostname: 'intruder' }))).rejects.toMatchObject({ status: 403 });
    const denied = await graphql(api.url, 'mutation($id: ID!) { removeMachine(machineId: $id) }', { token: viewer, variables: { id: enrolled.machineId } });
    expect(denied.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const removed = await graphql(api.url, 'mutation($id: ID!) { removeMachine(machineId: $id) }', { token: admin, variables: { id: enrolled.machineId } });
    expect(removed.errors).toBeUndefined();
    await database.sql`delete from machines where id = ${enrolled.machineId}`;

    type Events = { auditEvents: { totalCount: number; edges: Array<{ node: Record<string, unknown> }> } };
    const query = 'query($f: AuditEventFilter) { auditEvents(first: 50, filter: $f) { totalCount edges { node { actorKind actorName actorRole action targetId outcome sourceAddress details } } } }';
    const forMachine = await graphql<Events>(api.url, query, { token: admin, variables: { f: { targetId: enrolled.machineId } } });
    expect(forMachine.errors).toBeUndefined();
    const nodes = forMachine.data!.auditEvents.edges.map((e) => e.node);
    expect(nodes.map((n) => [n.action, n.actorKind, n.actorRole, n.outcome])).toEqual([
      ['removeMachine', 'TOKEN', 'ADMIN', 'SUCCEEDED'],
      ['removeMachine', 'TOKEN', 'VIEWER', 'FORBIDDEN'],
      ['enrollMachine', 'ENROLLMENT_KEY', null, 'SUCCEEDED'],
    ]);
    expect(nodes[2]).toMatchObject({ actorName: 'audited-01', sourceAddress: expect.stringMatching(/127\.0\.0\.1/) });
    expect(nodes[0]!.actorName).toBe('test ADMIN');

    const refused = await graphql<Events>(api.url, query, { token: admin, variables: { f: { action: 'enrollMachine' } } });
    expect(refused.data!.auditEvents.edges.map((e) => e.node).find((n) => n.actorName === 'intruder')).toMatchObject({ outcome: 'FORBIDDEN', targetId: null });

    // The secret a mutation returned is nowhere in the audit log.
    const everything = await database.sql`select details::text from audit_events`;
    for (const secret of secretsSeen) expect(JSON.stringify(everything)).not.toContain(secret);

    const asViewer = await graphql(api.url, '{ auditEvents { totalCount } }', { token: viewer });
    expect(asViewer.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('refuses a query too deep or too costly, and a page too large, before anything runs, saying which limit', async () => {
    const deep = await graphql(api.url, `{ deployments { edges { node { lastRun { deployment { lastRun { deployment { lastRun { deployment { lastRun { deployment { lastRun { deployment { name } } } } } } } } } } } } } }`, { token: viewer });
    expect(deep.status).toBe(400);
    expect(deep.errors?.[0]?.message).toMatch(/levels deep; at most 12 .*FLEETPATCH_GRAPHQL_MAX_DEPTH/);

    const costly = await graphql(api.url, `{ machines(first: 500) { edges { node { pendingUpdates { edges { node { name cveIds advisoryIds } } } assessments(first: 500) { totalCount } } } } }`, { token: viewer });
    expect(costly.status).toBe(400);
    expect(costly.errors?.[0]?.message).toMatch(/estimated cost of \d+; at most 50000 .*FLEETPATCH_GRAPHQL_MAX_COST/);

    const page = await graphql(api.url, '{ machines(first: 501) { totalCount } }', { token: viewer });
    expect(page.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'first' } });

    const fine = await graphql(api.url, '{ machines(first: 100) { edges { node { name pendingUpdates { edges { node { name } } } } } } }', { token: viewer });
    expect(fine.errors).toBeUndefined();
  });

  it('answers an oversized or unreadable GraphQL body with a 4xx in GraphQL error shape', async () => {
    const post = async (body: string) => {
      const response = await fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${viewer}` }, body });
      return { status: response.status, body: (await response.json()) as { errors: Array<{ extensions: { code: string }; message: string }> } };
    };
    const huge = await post(JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(2 * 1024 * 1024) } }));
    expect(huge.status).toBe(413);
    expect(huge.body.errors[0]).toMatchObject({ extensions: { code: 'PAYLOAD_TOO_LARGE' }, message: expect.stringMatching(/larger than the 1024 KiB allowed/) });
    const broken = await post('{"query": ');
    expect(broken.status).toBe(400);
    expect(broken.body.errors[0]!.extensions.code).toBe('BAD_USER_INPUT');
  });

  it('refuses a subscription connection without a valid token, and queries or mutations over the socket', async () => {
    const wsUrl = api.url.replace('http', 'ws');
    const attempt = (params: Record<string, string>, query: string) =>
      new Promise<{ error?: unknown; errors?: unknown; data?: unknown }>((resolve) => {
        const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: params, retryAttempts: 0, lazy: true });
        const unsubscribe = client.subscribe(
          { query },
          {
            next: (value) => resolve({ data: value.data, errors: value.errors }),
            error: (error) => resolve({ error, errors: Array.isArray(error) ? error : undefined }),
            complete: () => resolve({}),
          },
        );
        setTimeout(() => {
          unsubscribe();
          void client.dispose();
        }, 3000);
      });
    const anonymous = await attempt({}, 'subscription { machineChanged { id } }');
    expect((anonymous.error as { code?: number }).code).toBe(4403);
    const badToken = await attempt({ authorization: `Bearer fp_${'z'.repeat(43)}` }, 'subscription { machineChanged { id } }');
    expect((badToken.error as { code?: number }).code).toBe(4403);
    const mutation = await attempt({ authorization: `Bearer ${admin}` }, 'mutation { removeMachine(machineId: "00000000-0000-0000-0000-000000000000") }');
    expect(JSON.stringify(mutation.errors)).toMatch(/Only subscriptions go over the WebSocket/);
  });

  it('never writes a secret into the log, though every kind of secret went through the server', async () => {
    // A few more secrets through the usual and the unusual places: a stale token, a machine
    // credential on the agent endpoint, a token pasted into a query's variables.
    await graphql(api.url, '{ machines { totalCount } }', { token: `fp_${'q'.repeat(43)}` });
    await graphql(api.url, 'mutation($d: String!) { createEnrollmentKey(input: {description: $d}) { secret } }', { token: admin, variables: { d: admin } });
    // A console session: its secret in a Set-Cookie, then in a Cookie header, over HTTP and the socket.
    const base = api.url.replace('/graphql', '');
    const signedIn = await fetch(`${base}/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: viewer }) });
    const cookie = signedIn.headers.get('set-cookie')!.split(';')[0]!;
    secretsSeen.push(cookie.split('=')[1]!);
    await fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: JSON.stringify({ query: '{ machines { totalCount } }' }) });
    await fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', cookie, origin: 'https://elsewhere.example' }, body: JSON.stringify({ query: '{ machines { totalCount } }' }) });
    const credential = secretsSeen.find((s) => s.startsWith('fpm_'))!;
    await fetch(`${api.url.replace('/graphql', '')}/agent/v1/checkin`, { method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' }, body: '{"facts": ' });
    const log = fs.readFileSync(logFile, 'utf8');
    expect(log).toContain('machine enrolled');
    for (const secret of [...secretsSeen, admin, viewer]) expect(log).not.toContain(secret);
    expect(log).not.toMatch(/fp[ems]?_[A-Za-z0-9_-]{43}/);
    void databaseUrl;
  });
});

describe('ids that are not UUIDs', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ api, database, close } = await startApiOnFreshDatabase());
  });

  afterAll(async () => {
    await close();
  });

  it('answers BAD_USER_INPUT, not INTERNAL (the fuzz test found these)', async () => {
    const admin = await tokenFor(database, 'ADMIN');
    for (const query of ['{ machine(id: "../etc/passwd") { name } }', '{ deployment(id: "x") { name } }', '{ deploymentRun(id: "1") { status } }', 'mutation { removeMachine(machineId: "nope") }']) {
      const response = await graphql(api.url, query, { token: admin });
      expect([query, response.errors?.[0]?.extensions?.code]).toEqual([query, 'BAD_USER_INPUT']);
      expect(response.errors?.[0]?.message).toMatch(/ids are UUIDs/);
    }
    const nul = await graphql(api.url, 'query($id: ID!) { deployment(id: $id) { name } }', { token: admin, variables: { id: 'a\u0000b' } });
    expect(nul.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' }, message: expect.stringMatching(/NUL character/) });
  });
});
