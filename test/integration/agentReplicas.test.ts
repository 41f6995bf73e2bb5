import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerRefusal } from '../../src/agent/client.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { announceAgentCommands, createFleetPubSub } from '../../src/events/pubsub.js';
import { machineFacts } from '../../testkit/agentFacts.js';
import { connectTestDatabase, freshDatabase, graphql, startTestApi, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { enrollMachine, enrollmentKey } from '../support/machines.js';
import { longPollsOpen } from '../support/signals.js';

/**
 * Two API replicas on one database, as `fleetpatch server` run twice: each keeps its own credential
 * cache and long-poll wake-ups, and they hear of each other only through Postgres NOTIFY.
 */
describe('agents on several API replicas', () => {
  let first: ApiServer;
  let second: ApiServer;
  let database: Database;
  let drop: () => Promise<void>;
  let admin: string;
  let enrollKey: string;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    const temporal = temporalSettings();
    first = await startTestApi(temporal, { databaseUrl: fresh.url });
    second = await startTestApi(temporal, { databaseUrl: fresh.url });
    admin = await tokenFor(database, 'ADMIN');
    enrollKey = await enrollmentKey(database, 'replicas');
  });

  afterAll(async () => {
    await first.close();
    await second.close();
    await database.close();
    await drop();
  });


  const refusal = (promise: Promise<unknown>) =>
    promise.then(
      () => 'accepted',
      (error: unknown) => (error instanceof ServerRefusal ? `${error.status} ${error.code}` : String(error)),
    );

  it('refuses a machine removed through the other replica at once, on every agent route', async () => {
    const { machineId, agent } = await enrollMachine(second.url, enrollKey);
    // The second replica has checked (and cached) this credential.
    await agent.checkIn(machineFacts());
    await agent.commands(0);

    const removed = await graphql(first.url, 'mutation($id: ID!) { removeMachine(machineId: $id) }', { token: admin, variables: { id: machineId } });
    expect(removed.data).toEqual({ removeMachine: machineId });

    // NOTIFY crosses in milliseconds; the bound without it is the cache's trust time (60 s).
    const started = Date.now();
    await expect.poll(() => refusal(agent.commands(0)), { timeout: 2000, interval: 20 }).toBe('401 UNAUTHENTICATED');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(await refusal(agent.checkIn(machineFacts()))).toBe('401 UNAUTHENTICATED');
  });

  it('refuses a machine removed through the same replica before the removal even answers', async () => {
    const { machineId, agent } = await enrollMachine(first.url, enrollKey);
    await agent.checkIn(machineFacts());
    await graphql(first.url, 'mutation($id: ID!) { removeMachine(machineId: $id) }', { token: admin, variables: { id: machineId } });
    expect(await refusal(agent.commands(0))).toBe('401 UNAUTHENTICATED');
  });

  it('wakes a long-poll held by one replica when the command is queued through the other', async () => {
    const { machineId, agent } = await enrollMachine(second.url, enrollKey);
    const operator = await tokenFor(database, 'OPERATOR');
    const started = Date.now();
    const poll = agent.commands(20);
    // Queued once the poll waits on the second replica: only the wake-up can deliver it before its 20 s are up.
    await longPollsOpen(second.url, 1);
    const requested = await graphql<{ assessMachines: Array<{ commandId: string }> }>(first.url, 'mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { commandId } }', {
      token: operator,
      variables: { ids: [machineId] },
    });
    const { commands } = await poll;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(commands).toEqual([{ id: requested.data!.assessMachines[0]!.commandId, kind: 'ASSESS' }]);
  });

  it('hands out at once, on the next poll, a command queued on the other replica while no poll was open', async () => {
    const [{ machineId, agent }, witness] = await Promise.all([enrollMachine(second.url, enrollKey), enrollMachine(second.url, enrollKey)]);
    const started = Date.now();
    // Nothing waits: the poll ends empty when its time is up, and the replica now knows the machine is quiet.
    expect((await agent.commands(1)).commands).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    const pubsub = await createFleetPubSub(database.sql);
    const heard: string[] = [];
    pubsub.observe({ delivered: (topic) => heard.push(topic) });
    const operator = await tokenFor(database, 'OPERATOR');
    const requested = await graphql<{ assessMachines: Array<{ commandId: string }> }>(first.url, 'mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { commandId } }', {
      token: operator,
      variables: { ids: [machineId] },
    });
    // The second replica has heard of the command once it has heard of an event sent after
    // PostgreSQL delivered it (NOTIFYs reach each listener in commit order): a command for another
    // machine, which wakes the poll the replica holds for it.
    await waitUntil(async () => heard, (topics) => topics.includes(`agentCommandQueued:${machineId}`), 5000, 'the command event');
    const witnessPoll = witness.agent.commands(20);
    await longPollsOpen(second.url, 1);
    const [witnessCommand] = await database.sql`insert into agent_commands (machine_id, kind) values (${witness.machineId}, 'ASSESS') returning id`;
    announceAgentCommands(pubsub, [{ machineId: witness.machineId, id: witnessCommand!.id as string }]);
    expect((await witnessPoll).commands).toEqual([{ id: witnessCommand!.id as string, kind: 'ASSESS' }]);

    const polled = Date.now();
    expect((await agent.commands(20)).commands).toEqual([{ id: requested.data!.assessMachines[0]!.commandId, kind: 'ASSESS' }]);
    expect(Date.now() - polled).toBeLessThan(2000);
  });

  it('wakes the long-polls of many machines with few NOTIFYs', async () => {
    const fleet = await Promise.all([enrollMachine(second.url, enrollKey), enrollMachine(second.url, enrollKey), enrollMachine(first.url, enrollKey)]);
    const polls = fleet.map(({ agent }) => agent.commands(20));
    await Promise.all([longPollsOpen(second.url, 2), longPollsOpen(first.url, 1)]);
    const commandIds: string[] = [];
    for (const { machineId } of fleet) {
      const [row] = await database.sql`insert into agent_commands (machine_id, kind) values (${machineId}, 'ASSESS') returning id`;
      commandIds.push(row!.id as string);
    }
    const started = Date.now();
    const pubsub = await createFleetPubSub(database.sql);
    announceAgentCommands(pubsub, fleet.map((m, i) => ({ machineId: m.machineId, id: commandIds[i]! })));
    expect((await Promise.all(polls)).map((p) => p.commands)).toEqual(commandIds.map((id) => [{ id, kind: 'ASSESS' }]));
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('always looks in the database for a poll that does not wait', async () => {
    const { machineId, agent } = await enrollMachine(first.url, enrollKey);
    expect((await agent.commands(1)).commands).toEqual([]);
    // Queued straight into the database, without its event.
    const [command] = await database.sql`insert into agent_commands (machine_id, kind) values (${machineId}, 'ASSESS') returning id`;
    expect((await agent.commands(0)).commands).toEqual([{ id: command!.id as string, kind: 'ASSESS' }]);
  });

  it('moves a disconnected machine back to READY on a check-in that changes no fact', async () => {
    const { machineId, agent } = await enrollMachine(first.url, enrollKey);
    const facts = machineFacts({ hostname: 'steady-01' });
    await agent.checkIn(facts);
    await database.sql`update machines set last_seen_at = now() - interval '1 hour' where id = ${machineId}`;
    const readiness = async () =>
      (await graphql<{ machine: { agentReadiness: string; lastSeenAt: string } }>(first.url, 'query($id: ID!) { machine(id: $id) { agentReadiness lastSeenAt } }', { token: admin, variables: { id: machineId } })).data!.machine;
    expect((await readiness()).agentReadiness).toBe('DISCONNECTED');

    const before = Date.now();
    await agent.checkIn(facts);
    const after = await readiness();
    expect(after.agentReadiness).toBe('READY');
    expect(Date.parse(after.lastSeenAt)).toBeGreaterThanOrEqual(before - 1000);
  });
});
