import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { JobEvents, JobResult } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { hashSecret, newSecret } from '../../src/db/secrets.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';
import { handOverTestInstallJob } from '../support/installJobs.js';
import { enrollMachine, type EnrolledMachine } from '../support/machines.js';
import { longPollsOpen } from '../support/signals.js';

/**
 * A machine credential revoked in the database (its machine enrolled again elsewhere) without this
 * API process hearing of it: the change is written straight into the table, as a replica whose
 * LISTEN was down would see it. The process has the credential cached from the agent's check-in,
 * yet every route that hands out commands or stores a report refuses it at once (401), as the
 * check-in does, and nothing of the machine's moves.
 */
describe('a machine credential revoked without the API process hearing of it', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let base: string;
  let admin: string;
  let key: string;
  let machine: EnrolledMachine;

  beforeAll(async () => {
    ({ api, database, close, base } = await startApiOnFreshDatabase());
    admin = await tokenFor(database, 'ADMIN');
    key = (await graphql<{ createEnrollmentKey: { secret: string } }>(api.url, 'mutation { createEnrollmentKey(input: {description: "revoked"}) { secret } }', { token: admin })).data!.createEnrollmentKey.secret;
  });

  afterAll(async () => {
    await close();
  });

  /** A machine whose credential this process has just checked (and cached), then revoked behind its back. */
  beforeEach(async () => {
    machine = await enrollMachine(base, key, { facts: { hostname: `revoked-${randomUUID().slice(0, 8)}` } });
    await machine.agent.checkIn(machine.facts);
    // Judged by the cache from here: a poll that finds nothing runs no statement.
    expect((await machine.agent.commands(0.001)).commands).toEqual([]);
  });

  const revoke = () => database.sql`update machines set credential_hash = ${hashSecret(newSecret('fpm_'))} where id = ${machine.machineId}`;
  const restore = () => database.sql`update machines set credential_hash = ${hashSecret(machine.credential)} where id = ${machine.machineId}`;
  const refused = { status: 401, code: 'UNAUTHENTICATED' };

  const queueAssess = async () => {
    const queued = await graphql<{ assessMachines: Array<{ commandId: string }> }>(api.url, 'mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { commandId } }', {
      token: admin,
      variables: { ids: [machine.machineId] },
    });
    expect(queued.errors).toBeUndefined();
    return queued.data!.assessMachines[0]!.commandId;
  };
  const delivered = async (commandId: string) => (await database.sql`select delivered_at from agent_commands where id = ${commandId}`)[0]!.delivered_at as Date | null;

  it('hands out no command to a poll that takes what waits', async () => {
    const waiting = await queueAssess();
    await revoke();
    await expect(machine.agent.commands(0)).rejects.toMatchObject(refused);
    await expect(machine.agent.commands(0, undefined, true)).rejects.toMatchObject(refused);
    expect(await delivered(waiting)).toBeNull();
    // With the credential the machine holds, the same poll takes it: the refusal was the credential's.
    await restore();
    expect((await machine.agent.commands(0)).commands.map((c) => c.id)).toEqual([waiting]);
  });

  it('hands out no command to a parked poll that a queued command wakes', async () => {
    const parked = machine.agent.commands(20).then(
      (answer) => ({ answer }),
      (error: unknown) => ({ error }),
    );
    await longPollsOpen(base, 1);
    await revoke();
    const woken = await queueAssess();
    expect(await parked).toMatchObject({ error: refused });
    expect(await delivered(woken)).toBeNull();
  });

  it('stores no assessment report', async () => {
    await revoke();
    const report = assessmentReport([pendingUpdate({ name: 'openssl', classification: 'SECURITY' })]);
    await expect(machine.agent.sendReport(report)).rejects.toMatchObject(refused);
    expect(await database.sql`select id from assessments where machine_id = ${machine.machineId}`).toHaveLength(0);
    // The same report with the credential the machine holds is stored: the refusal was the credential's.
    await restore();
    expect(await machine.agent.sendReport(report)).toEqual({ stored: true });
  });

  it("takes no job report (progress, result) and no upgrade report, and the machine's job does not move", async () => {
    const jobId = (await handOverTestInstallJob(database, { machineId: machine.machineId, machineName: machine.name })).jobId;
    const job = async () => (await database.sql`select delivered_at, completed_at, last_event_seq, result from agent_commands where id = ${jobId}`)[0];
    const before = await job();
    await revoke();
    const events: JobEvents = { seq: 1, lines: [{ at: new Date().toISOString(), stream: 'stdout', text: 'installing' }], updates: [] };
    const result: JobResult = { updates: [], rebootRequired: false, rebooting: false, bootId: null, timedOut: false, error: null };
    await expect(machine.agent.sendJobEvents(jobId, events)).rejects.toMatchObject(refused);
    await expect(machine.agent.sendJobResult(jobId, result)).rejects.toMatchObject(refused);
    await expect(machine.agent.sendUpgradeReport(randomUUID(), { outcome: 'FAILED', version: null, error: 'no' } as never)).rejects.toMatchObject(refused);
    expect(await job()).toEqual(before);
    await restore();
    expect(await machine.agent.sendJobEvents(jobId, events)).toEqual({ applied: true });
  });

  it('keeps refusing once the process has heard: the check-in refuses it too', async () => {
    await revoke();
    await expect(machine.agent.checkIn(machineFacts({ hostname: machine.name }))).rejects.toMatchObject(refused);
    await expect(machine.agent.commands(0.001)).rejects.toMatchObject(refused);
  });
});
