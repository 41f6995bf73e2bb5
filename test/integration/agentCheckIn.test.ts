import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, ServerRefusal } from '../../src/agent/client.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { queueAgentCommand } from '../../src/db/agentCommands.js';
import { hashSecret } from '../../src/db/secrets.js';
import { createFleetPubSub, type FleetPubSub } from '../../src/events/pubsub.js';
import { graphql, startApiWithAdmin, tokenFor } from '../support/env.js';
import { enrollMachine } from '../support/machines.js';

/**
 * The idle check-in (one statement: the credential, the command queue, a write only when needed)
 * and what the API process learns from it: which credential is valid, and that the machine's queue
 * is empty until a command is queued.
 */
describe('the idle check-in', () => {
  let api: ApiServer;
  let database: Database;
  let close: (() => Promise<void>) | undefined;
  let base: string;
  let key: string;
  let operator: string;
  /** Another process's events (the worker's, another replica's): they reach the API only through NOTIFY. */
  let elsewhere: FleetPubSub;

  beforeAll(async () => {
    let createKey: (input: Record<string, unknown>) => Promise<{ id: string; secret: string }>;
    ({ api, database, close, base, createKey } = await startApiWithAdmin());
    key = (await createKey({ description: 'check-ins' })).secret;
    operator = await tokenFor(database, 'OPERATOR');
    elsewhere = await createFleetPubSub(database.sql);
  });

  afterAll(async () => {
    await close?.();
  });

  /** The machine row's version (xmin changes with every write) and its stored last-seen time. */
  const stored = async (machineId: string) => {
    const [row] = await database.sql`select xmin::text as version, extract(epoch from last_seen_at)::float8 * 1000 as last_seen_ms, agent_version from machines where id = ${machineId}`;
    return { version: row!.version as string, lastSeenAt: Number(row!.last_seen_ms), agentVersion: row!.agent_version as string };
  };

  it('writes nothing at a check-in that changes no fact within the refresh time, and writes a changed fact at once', async () => {
    const { machineId, agent, facts } = await enrollMachine(base, key);
    // The first check-in brings the clock offset, which enrollment does not know yet.
    await agent.checkIn(facts);
    const first = await stored(machineId);
    for (let i = 0; i < 3; i++) expect((await agent.checkIn(facts)).managementEnabled).toBe(true);
    expect(await stored(machineId)).toEqual(first);

    await agent.checkIn({ ...facts, agentVersion: '9.9.9' });
    const changed = await stored(machineId);
    expect(changed.agentVersion).toBe('9.9.9');
    expect(changed.version).not.toBe(first.version);
    expect(changed.lastSeenAt).toBeGreaterThanOrEqual(first.lastSeenAt);
  });

  it('writes the last-seen time again once the stored one is older than the refresh time, and shows the machine READY meanwhile', async () => {
    const { machineId, agent, facts } = await enrollMachine(base, key);
    await agent.checkIn(facts);
    // 100 s pass since the stored time (the default refresh time is 90 s).
    await database.sql`update machines set last_seen_at = now() - interval '100 seconds' where id = ${machineId}`;
    const old = await stored(machineId);
    await agent.checkIn(facts);
    const fresh = await stored(machineId);
    expect(fresh.lastSeenAt - old.lastSeenAt).toBeGreaterThan(99_000);
    const seen = await graphql<{ machine: { agentReadiness: string } }>(api.url, 'query($id: ID!) { machine(id: $id) { agentReadiness } }', { token: operator, variables: { id: machineId } });
    expect(seen.data!.machine.agentReadiness).toBe('READY');
  });

  it('delivers a command queued after a check-in on the next poll, queued here or by another process', async () => {
    const { machineId, agent, facts } = await enrollMachine(base, key);
    await agent.checkIn(facts);
    await agent.checkIn(facts);
    // Queued while no poll waits: the check-in found the queue empty just before.
    const here = await graphql<{ assessMachines: Array<{ commandId: string }> }>(api.url, 'mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { commandId } }', {
      token: operator,
      variables: { ids: [machineId] },
    });
    let started = Date.now();
    expect((await agent.commands(20)).commands).toEqual([{ id: here.data!.assessMachines[0]!.commandId, kind: 'ASSESS' }]);
    expect(Date.now() - started).toBeLessThan(5000);

    // Its agent completed that one (one ASSESS waits at a time).
    await database.sql`update agent_commands set completed_at = now() where machine_id = ${machineId}`;
    await agent.checkIn(facts);
    const queued = await queueAgentCommand(database.db, machineId, 'ASSESS');
    elsewhere.publish('agentCommandQueued', machineId, { commandId: queued.id });
    started = Date.now();
    expect((await agent.commands(20)).commands).toEqual([{ id: queued.id, kind: 'ASSESS' }]);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('refuses a credential replaced while its notification was lost at once, at check-in and at the poll', async () => {
    const { machineId, agent, facts } = await enrollMachine(base, key);
    await agent.checkIn(facts);
    expect((await agent.commands(0)).commands).toEqual([]);
    // Enrolled again through another replica whose machineChanged never reached this one.
    const replacement = `fpm_replaced_${machineId}`;
    await database.sql`update machines set credential_hash = ${hashSecret(replacement)} where id = ${machineId}`;

    await expect(agent.checkIn(facts)).rejects.toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    await expect(agent.commands(0)).rejects.toBeInstanceOf(ServerRefusal);
    const renewed = new AgentClient(base, replacement);
    expect((await renewed.checkIn(facts)).managementEnabled).toBe(true);
    expect((await renewed.commands(0)).commands).toEqual([]);
  });

  it('drops the credential a machine held before as soon as its new one checks in, for every route', async () => {
    const { machineId, agent, facts } = await enrollMachine(base, key);
    await agent.checkIn(facts);
    expect((await agent.commands(0)).commands).toEqual([]);
    const replacement = `fpm_rotated_${machineId}`;
    await database.sql`update machines set credential_hash = ${hashSecret(replacement)} where id = ${machineId}`;
    // The new credential's check-in comes first: the old one's cached entry goes with it.
    await new AgentClient(base, replacement).checkIn(facts);
    await expect(agent.commands(0)).rejects.toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
  });
});
