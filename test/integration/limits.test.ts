import express from 'express';
import { createClient, type Client } from 'graphql-ws';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { errorsAsJson, notFoundAsJson } from '../../src/api/httpErrors.js';
import type { ApiServer } from '../../src/api/server.js';
import { TOO_MANY_SOCKETS_CLOSE_CODE } from '../../src/api/subscriptionLimits.js';
import type { Database } from '../../src/db/client.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { connectTestDatabase, freshDatabase, graphql, startTestApi, temporalSettings, testLogger, tokenFor } from '../support/env.js';
import { enrollMachine, enrollmentKey } from '../support/machines.js';

/**
 * What one client may ask of the API, over HTTP and WebSocket, on a server whose subscription and
 * response limits are set low: documents refused before anything runs, a machine's pending updates
 * paged, an answer past the size limit refused, and the subscription caps.
 */
describe('limits of what one client may ask', () => {
  let api: ApiServer;
  let base: string;
  let database: Database;
  let drop: () => Promise<void>;
  let viewer: string;
  let machineId: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    api = await startTestApi(temporalSettings(), {
      databaseUrl: fresh.url,
      env: { FLEETPATCH_SUBSCRIPTIONS_PER_SOCKET: '3', FLEETPATCH_SOCKETS_PER_TOKEN: '2', FLEETPATCH_GRAPHQL_MAX_RESPONSE_MB: '0.2' },
    });
    base = api.url.replace(/\/graphql$/, '');
    viewer = await tokenFor(database, 'VIEWER');
    // A machine with 1,200 pending updates, 12 of them critical.
    const updates = Array.from({ length: 1200 }, (_, i) =>
      pendingUpdate({ name: `pkg-${String(i).padStart(4, '0')}-${'x'.repeat(200)}`, classification: i % 100 === 99 ? 'CRITICAL' : 'OTHER', cveIds: [`CVE-2024-${10000 + i}`] }),
    );
    ({ machineId } = await enrollMachine(base, await enrollmentKey(database, 'limits'), { facts: { hostname: 'many-updates' }, updates }));
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await api?.close();
    await database?.close();
    await drop?.();
  });

  it('refuses hostile documents before they run, without a token, each saying which limit', async () => {
    const refused = async (query: string) => {
      const answer = await graphql(api.url, query);
      expect(answer.status).toBe(400);
      expect(answer.data).toBeUndefined();
      return answer.errors!.map((e) => `${e.extensions?.code}: ${e.message}`);
    };
    // Fragments spreading the next one twice, 21 deep (900 bytes that once blocked the process for 5.9 s).
    const fragments = Array.from({ length: 21 }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`).join(' ');
    expect(await refused(`{ ...F0 } ${fragments} fragment F21 on Query { systemStatus { version } }`)).toEqual([expect.stringMatching(/^GRAPHQL_VALIDATION_FAILED: The operation has an estimated cost of \d+; at most 50000/)]);
    // 10,000 aliases of machine(id), 2,000 of systemStatus, 1,000 of __schema: past the token limit, refused by the parser.
    const machines = Array.from({ length: 10_000 }, (_, i) => `m${i}: machine(id: "${machineId}") { name }`).join(' ');
    const tooLong = [expect.stringMatching(/^GRAPHQL_PARSE_FAILED: The document has more than 5000 tokens; at most 5000 are allowed \(FLEETPATCH_GRAPHQL_MAX_TOKENS\)/)];
    expect(await refused(`{ ${machines} }`)).toEqual(tooLong);
    const status = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `s${i}: systemStatus { version }`).join(' ')} }`;
    expect(await refused(status(2000))).toEqual(tooLong);
    const schemas = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `s${i}: __schema { types { name } }`).join(' ')} }`;
    expect(await refused(schemas(1000))).toEqual(tooLong);
    // Fewer, within the token limit: refused by the breadth and alias limits (and systemStatus by its cost too).
    expect(await refused(status(700))).toEqual([expect.stringMatching(/asks for 700 fields at one level/), expect.stringMatching(/uses 700 aliases; at most 100/), expect.stringMatching(/estimated cost of/)]);
    // 250, not more: each costs about as many as the schema has types (139 now), and 400 of them crossed the cost limit too.
    expect(await refused(schemas(250))).toEqual([expect.stringMatching(/asks for 250 fields at one level/), expect.stringMatching(/uses 250 aliases/)]);
    // Introspection is costed: a hundred full lists of every type's fields and their arguments, one name each.
    const fields = `{ ${Array.from({ length: 100 }, () => '__schema { types { fields { args { type { name } } } } }').join(' ')} }`;
    expect(await refused(fields)).toEqual([expect.stringMatching(/estimated cost of \d+; at most 50000/)]);
    // Meanwhile the server still answers, and a single introspection query is fine without a token.
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const one = await graphql<{ __schema: { types: unknown[] } }>(api.url, '{ __schema { types { name } } }');
    expect(one.data!.__schema.types.length).toBeGreaterThan(50);
  });

  it("pages a machine's pending updates, critical first, with their total", async () => {
    type Page = { machine: { pendingUpdates: { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string }; edges: Array<{ node: { name: string; classification: string } }> } } };
    const query = 'query($id: ID!, $after: String) { machine(id: $id) { pendingUpdates(first: 500, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { name classification } } } } }';
    const names: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 3; page++) {
      const answer: Awaited<ReturnType<typeof graphql<Page>>> = await graphql<Page>(api.url, query, { token: viewer, variables: { id: machineId, after } });
      expect(answer.errors).toBeUndefined();
      const updates = answer.data!.machine.pendingUpdates;
      expect(updates.totalCount).toBe(1200);
      expect(updates.pageInfo.hasNextPage).toBe(page < 2);
      names.push(...updates.edges.map((e) => e.node.name));
      if (page === 0) expect(updates.edges.slice(0, 12).every((e) => e.node.classification === 'CRITICAL')).toBe(true);
      after = updates.pageInfo.endCursor;
    }
    expect(names).toHaveLength(1200);
    expect(new Set(names).size).toBe(1200);
    const byDefault = await graphql<Page>(api.url, 'query($id: ID!) { machine(id: $id) { pendingUpdates { edges { node { name } } } } }', { token: viewer, variables: { id: machineId } });
    expect(byDefault.data!.machine.pendingUpdates.edges).toHaveLength(50);
  });

  it("reads a preview's lists a slice at a time: 50 by default, the rest by offset, BAD_USER_INPUT past 500", async () => {
    type Preview = { previewDeployment: { machines: Array<{ notSelected: Array<{ update: { name: string } }> }> } };
    const input = { name: 'slices', osType: 'LINUX', machineIds: [machineId], classifications: ['CRITICAL'], windowMinutes: 30, onDemandOnly: true };
    const read = (args: string) =>
      graphql<Preview>(api.url, `query($input: DeploymentInput!) { previewDeployment(input: $input) { machines { notSelected${args} { update { name } } } } }`, { token: viewer, variables: { input } });
    // The 1,188 updates that are not critical, which one list answered whole and was costed as 50.
    expect((await read('')).data!.previewDeployment.machines[0]!.notSelected).toHaveLength(50);
    const names: string[] = [];
    for (const offset of [0, 500, 1000]) {
      const answer = await read(`(first: 500, offset: ${offset})`);
      expect(answer.errors).toBeUndefined();
      names.push(...answer.data!.previewDeployment.machines[0]!.notSelected.map((n) => n.update.name));
    }
    expect(names).toHaveLength(1188);
    expect(new Set(names).size).toBe(1188);
    const tooMany = await read('(first: 501)');
    expect(tooMany.errors!.map((e) => [e.extensions?.code, e.message])).toEqual([['BAD_USER_INPUT', 'first must be between 0 and 500; got 501.']]);
    const negative = await read('(offset: -1)');
    expect(negative.errors!.map((e) => [e.extensions?.code, e.message])).toEqual([['BAD_USER_INPUT', 'offset must be 0 or more; got -1.']]);
  });

  it('refuses an answer larger than FLEETPATCH_GRAPHQL_MAX_RESPONSE_MB, and answers the same question in smaller pages', async () => {
    // 500 updates with 200-character names: about 150 KB, under the cost limit; twice that is over 0.2 MB.
    const query = `query($id: ID!) { a: machine(id: $id) { pendingUpdates(first: 500) { edges { node { name cveIds repository } } } } b: machine(id: $id) { pendingUpdates(first: 500, after: "${Buffer.from('o:499').toString('base64url')}") { edges { node { name cveIds repository } } } } }`;
    const big = await graphql(api.url, query, { token: viewer, variables: { id: machineId } });
    expect(big.data).toBeUndefined();
    expect(big.errors).toEqual([{ message: expect.stringMatching(/^The answer is 0\.\d+ MB, more than the 0\.2 MB allowed \(FLEETPATCH_GRAPHQL_MAX_RESPONSE_MB\)/), extensions: { code: 'RESPONSE_TOO_LARGE' } }]);
    const small = await graphql<{ machine: { pendingUpdates: { edges: unknown[] } } }>(api.url, 'query($id: ID!) { machine(id: $id) { pendingUpdates(first: 500) { edges { node { name cveIds repository } } } } }', {
      token: viewer,
      variables: { id: machineId },
    });
    expect(small.data!.machine.pendingUpdates.edges).toHaveLength(500);
  });

  const connect = (token: string) =>
    new Promise<{ client: Client; closed: Promise<number> }>((resolve, reject) => {
      let closedWith: (code: number) => void = () => undefined;
      const closed = new Promise<number>((r) => (closedWith = r));
      const client = createClient({
        url: api.url.replace('http', 'ws'),
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${token}` },
        lazy: false,
        retryAttempts: 0,
        onNonLazyError: () => undefined,
        on: {
          connected: () => resolve({ client, closed }),
          closed: (event) => {
            const code = (event as { code: number }).code;
            closedWith(code);
            reject(Object.assign(new Error(`closed ${code}`), { code }));
          },
        },
      });
      clients.push(client);
    });

  type Refusal = Array<{ message: string; extensions?: { code?: string } }>;

  /** A machineChanged subscription on a socket: `first` settles with its first event, or with the server's refusal. */
  const listen = (client: Client) => {
    let stop: () => void = () => undefined;
    const first = new Promise<'heard' | Refusal>((resolve) => {
      stop = client.subscribe({ query: `subscription { machineChanged(machineId: "${machineId}") { id } }` }, { next: () => resolve('heard'), error: (errors) => resolve(errors as Refusal), complete: () => undefined });
    });
    return { first, stop };
  };

  /**
   * Changes the machine until every listener has heard of it: a subscription starts listening a
   * moment after the client sends it, so one change may come too early for it.
   */
  let tagged = 0;
  const untilHeard = async (listeners: Array<ReturnType<typeof listen>>, operator: string) => {
    const all = Promise.all(listeners.map((l) => l.first));
    for (;;) {
      await graphql(api.url, 'mutation($id: ID!, $tags: [String!]!) { setMachineTags(machineId: $id, tags: $tags) { id } }', { token: operator, variables: { id: machineId, tags: [`t${tagged++}`] } });
      const heard = await Promise.race([all, new Promise<null>((resolve) => setTimeout(() => resolve(null), 250))]);
      if (heard) return heard;
    }
  };

  it('caps subscriptions per socket and sockets per token, each with its own answer', async () => {
    const operator = await tokenFor(database, 'OPERATOR');
    const { client } = await connect(viewer);
    const standing = [listen(client), listen(client), listen(client)];
    const fourth = listen(client);
    expect(await fourth.first).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/already holds 3 subscriptions; at most 3 are allowed per socket \(FLEETPATCH_SUBSCRIPTIONS_PER_SOCKET\)/), extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }),
    ]);
    expect(await untilHeard(standing, operator)).toEqual(['heard', 'heard', 'heard']);
    // One completed frees its place (the server reads the socket's messages in order).
    standing[0]!.stop();
    const fifth = listen(client);
    expect(await untilHeard([fifth], operator)).toEqual(['heard']);

    // Two sockets per token: the one above, and one more; a third is closed with our code.
    await connect(viewer);
    expect(await connect(viewer).catch((error: { code: number }) => error)).toMatchObject({ code: TOO_MANY_SOCKETS_CLOSE_CODE });
    // Another token counts on its own.
    await expect(connect(operator)).resolves.toBeDefined();
    // Closing a socket frees its place once the server has seen it close.
    await client.dispose();
    await expect.poll(() => connect(viewer).then(() => 'connected', (error: { code: number }) => error.code), { timeout: 10_000, interval: 100 }).toBe('connected');
  });

  it('answers paths and methods no route serves in JSON, never an HTML page', async () => {
    for (const [method, path] of [
      ['POST', '/healthz'],
      ['GET', '/metrics/anything'],
      ['PUT', '/readyz'],
      ['GET', '/healthz/%E0%A4%A'],
      ['GET', '/agent'],
      ['DELETE', '/graphql'],
    ] as const) {
      const response = await fetch(`${base}${path}`, { method, headers: { accept: 'text/html' } });
      const text = await response.text();
      expect([method, path, response.headers.get('content-type')]).toEqual([method, path, expect.stringMatching(/^application\/json/)]);
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(text).not.toMatch(/<html|<pre>| at |\/work\/|node_modules/i);
      // The API's error shape ({error: {code, message}}), or GraphQL's on /graphql.
      const body = JSON.parse(text) as { error?: { code: string }; errors?: Array<{ extensions: { code: string } }> };
      expect(body.error?.code ?? body.errors?.[0]?.extensions.code).toEqual(expect.any(String));
    }
  });
});

describe('errors no route expected', () => {
  it('are answered as a JSON 500 without a stack trace or a file path, and logged', async () => {
    const app = express();
    app.get('/boom', () => {
      throw new Error(`failed at ${import.meta.url}`);
    });
    app.use(notFoundAsJson, errorsAsJson(testLogger));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/boom`, { headers: { accept: 'text/html' } });
      expect(response.status).toBe(500);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      const text = await response.text();
      expect(JSON.parse(text)).toEqual({ error: { code: 'INTERNAL', message: 'Internal server error; the server logged the details.' } });
      expect(text).not.toContain('file:');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
