import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { AgentClient } from '../../src/agent/client.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { insertDeployment } from '../../src/db/deployments.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { ensureRun } from '../../src/db/runs.js';
import { recordRunProgress } from '../../src/db/runProgress.js';
import { announceRunProgress, createFleetPubSub } from '../../src/events/pubsub.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { connectTestDatabase, graphql, startTestApi, temporalSettings, tokenFor } from '../support/env.js';
import { enrollMachine, enrollmentKey } from '../support/machines.js';
import { startRestartablePostgres, type Restartable } from '../support/restartable.js';

/** Resolves with the first value `pick` returns that is not undefined. */
function firstOf<T, R>(iterator: AsyncIterator<T>, pick: (value: T) => R | undefined): Promise<R> {
  return (async () => {
    for (;;) {
      const { value, done } = await iterator.next();
      if (done) throw new Error('the subscription ended');
      const picked = pick(value);
      if (picked !== undefined) return picked;
    }
  })();
}

/** Whether the promise has settled within `ms`. */
function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([promise.then(() => true, () => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms).unref())]);
}

/**
 * A real API whose PostgreSQL is killed (SIGKILL) and started again: while it is away every request
 * answers SERVICE_UNAVAILABLE at once (HTTP 503, Retry-After), /readyz says why; once it is back
 * the API works again without a restart, its LISTEN included, and what it may have missed is
 * accounted for (subscriptions told to read again, long-polls looking again).
 */
describe('the API across a PostgreSQL restart', () => {
  let pg: Restartable & { url: string };
  let api: ApiServer;
  let database: Database;
  let admin: string;
  let base: string;
  let agent: AgentClient;
  let credential: string;
  let machineId: string;
  let runId: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    pg = await startRestartablePostgres();
    await migrateDatabase(pg.url);
    database = connectTestDatabase(pg.url);
    admin = await tokenFor(database, 'ADMIN');
    api = await startTestApi(temporalSettings(), { databaseUrl: pg.url });
    base = api.url.replace('/graphql', '');
    ({ agent, machineId, credential } = await enrollMachine(base, await enrollmentKey(database, 'outage'), { facts: { hostname: 'outage-01' } }));
    const deployment = await insertDeployment(database.db, {
      name: 'outage',
      osType: 'LINUX',
      machineIds: [machineId],
      classifications: ['SECURITY'],
      schedule: { startAt: new Date().toISOString(), timeZone: 'UTC', recurrence: { frequency: 'ONCE' }, endAt: null },
      windowMinutes: 60,
      rebootSetting: 'NEVER',
    });
    if (deployment === 'NAME_TAKEN') throw new Error('name taken');
    runId = (await ensureRun(database.db, { deploymentId: deployment.id, workflowId: `outage-run-${deployment.id}`, trigger: 'MANUAL' })).run.id;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await api?.close();
    await database?.close();
    await pg?.stop();
  });

  function connect(): Client {
    const client = createClient({ url: api.url.replace('http', 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${admin}` }, retryAttempts: 0 });
    clients.push(client);
    return client;
  }

  const timed = async <T>(run: () => Promise<T>) => {
    const started = Date.now();
    const value = await run();
    return { value, ms: Date.now() - started };
  };

  it('answers SERVICE_UNAVAILABLE at once while PostgreSQL is away, and recovers by itself with what it missed accounted for', async () => {
    const client = connect();
    const machineEvents = client.iterate<{ machineChanged: { id: string; name: string } }>({ query: 'subscription($id: ID) { machineChanged(machineId: $id) { id name } }', variables: { id: machineId } });
    const runEvents = client.iterate<{ deploymentRunProgress: { seq: number; kind: string; run: { id: string } } }>({ query: 'subscription($id: ID!) { deploymentRunProgress(runId: $id) { seq kind run { id } } }', variables: { id: runId } });
    // Both subscribed for sure once an event of each has arrived (the server subscribes after the socket opens).
    const firstMachineEvent = firstOf(machineEvents, (e) => e.data?.machineChanged.id);
    await expect.poll(async () => {
      await agent.checkIn(machineFacts({ hostname: 'outage-01', kernel: `6.1.${Math.floor(Math.random() * 1e6)}` }));
      return settledWithin(firstMachineEvent, 300);
    }, { timeout: 15_000 }).toBe(true);
    const publisher = await createFleetPubSub(database.sql);
    const firstRunEvent = firstOf(runEvents, (e) => e.data?.deploymentRunProgress.kind);
    await expect.poll(async () => {
      announceRunProgress(publisher, runId, await recordRunProgress(database.db, runId, [{ kind: 'RUN' }]));
      return settledWithin(firstRunEvent, 300);
    }, { timeout: 15_000 }).toBe(true);

    // A long-poll open across the outage (open on the server once the gauge says so).
    const poll = agent.commands(60);
    // A change of the run whose NOTIFY is lost (never sent, as if sent while the LISTEN was down).
    const [unannounced] = await recordRunProgress(database.db, runId, [{ kind: 'RUN' }]);
    await expect.poll(async () => (await (await fetch(`${base}/metrics`)).text()).match(/^fleetpatch_agent_long_polls_open (\d+)/m)?.[1], { timeout: 10_000 }).toBe('1');

    await pg.kill();

    const query = await timed(() => fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, body: JSON.stringify({ query: '{ machines { totalCount } }' }) }));
    // Not a hang and not INTERNAL: 503 with the code that says to come back.
    expect(query.ms).toBeLessThan(5000);
    expect(query.value.status).toBe(503);
    expect(query.value.headers.get('retry-after')).toBe('5');
    const body = (await query.value.json()) as { errors: Array<{ message: string; extensions: { code: string; dependency: string } }> };
    expect(body.errors[0]!.extensions).toMatchObject({ code: 'SERVICE_UNAVAILABLE', dependency: 'DATABASE' });
    expect(body.errors[0]!.message).toMatch(/PostgreSQL is unavailable/);

    const report = assessmentReport([pendingUpdate({ name: 'openssl', classification: 'SECURITY' })]);
    for (const [path, init] of [
      ['/agent/v1/checkin', { method: 'POST', body: JSON.stringify({ facts: machineFacts({ hostname: 'outage-01' }) }) }],
      ['/agent/v1/assessments', { method: 'POST', body: JSON.stringify(report) }],
      ['/agent/v1/commands?waitSeconds=0', { method: 'GET' }],
    ] as const) {
      const answer = await timed(() => fetch(`${base}${path}`, { ...init, headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` } }));
      expect(answer.ms, path).toBeLessThan(5000);
      expect(answer.value.status, path).toBe(503);
      expect(answer.value.headers.get('retry-after'), path).toBe('5');
      expect(await answer.value.json(), path).toEqual({ error: { code: 'SERVICE_UNAVAILABLE', message: expect.stringMatching(/PostgreSQL is unavailable/) } });
    }

    // The console's session route too (its sign-in and who-is-signed-in read PostgreSQL).
    const session = await fetch(`${base}/session`, { method: 'POST', headers: { 'content-type': 'application/json', origin: base }, body: JSON.stringify({ token: admin }) });
    expect(session.status).toBe(503);
    expect(session.headers.get('retry-after')).toBe('5');
    expect(await session.json()).toMatchObject({ errors: [{ extensions: { code: 'SERVICE_UNAVAILABLE' } }] });

    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'not ready', database: { state: 'DOWN', error: expect.stringMatching(/^PostgreSQL unavailable since .*: .*ECONNREFUSED/) } });

    // A new subscription socket is told to try again later (1013), not that its token is bad (4403).
    const refused = await new Promise<number | undefined>((resolve) => {
      connect().subscribe({ query: 'subscription { selfCheckCompleted { id } }' }, { next: () => resolve(undefined), error: (e) => resolve((e as { code?: number }).code), complete: () => resolve(undefined) });
    });
    expect(refused).toBe(1013);

    await pg.start();

    // Back without a restart of the API.
    await expect.poll(async () => (await graphql(api.url, '{ machines { totalCount } }', { token: admin })).status, { timeout: 20_000, interval: 250 }).toBe(200);
    // The LISTEN is back, and the subscribers were told that events may have been missed (nothing
    // changed the machine since): the machine subscription gets its machine again, the run's reads
    // what PostgreSQL recorded past its last event: the change whose NOTIFY was lost.
    await expect(firstOf(machineEvents, (e) => e.data?.machineChanged.name)).resolves.toBe('outage-01');
    await expect(firstOf(runEvents, (e) => (e.data?.deploymentRunProgress.seq === unannounced!.seq ? e.data.deploymentRunProgress.kind : undefined))).resolves.toBe('RUN');
    // The long-poll open across the outage looked again when the LISTEN came back (events for its
    // machine may have been missed) instead of sitting out its 60 s.
    expect(await settledWithin(poll, 10_000)).toBe(true);
    await expect(poll).resolves.toEqual({ commands: [] });

    // The agent endpoint and /readyz work again; the report refused during the outage is stored now.
    await expect(agent.sendReport(report)).resolves.toMatchObject({ stored: true });
    await expect.poll(async () => (await fetch(`${base}/readyz`)).status, { timeout: 10_000, interval: 250 }).toBe(200);
    const queued = await graphql<{ assessMachines: Array<{ requested: boolean }> }>(api.url, 'mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { requested } }', { token: admin, variables: { ids: [machineId] } });
    expect(queued.data?.assessMachines[0]?.requested).toBe(true);
    await expect(agent.commands(30)).resolves.toMatchObject({ commands: [expect.objectContaining({ kind: 'ASSESS' })] });
  });
});
