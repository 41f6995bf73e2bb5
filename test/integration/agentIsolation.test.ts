import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentClient } from '../../src/agent/client.js';
import type { JobEvents, JobResult } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';
import { handOverTestInstallJob } from '../support/installJobs.js';
import { enrollMachine } from '../support/machines.js';

/**
 * A machine credential reaches its own machine and nothing else: each agent endpoint is tried by
 * machine A with machine B's job ids, command ids and identity, and B's rows must not move.
 */
describe('agent isolation', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let base: string;
  let admin: string;
  const agents: Record<'a' | 'b', { id: string; credential: string; client: AgentClient }> = {} as never;
  let jobOfB: string;
  let assessCommandOfB: string;

  beforeAll(async () => {
    ({ api, database, close } = await startApiOnFreshDatabase());
    base = api.url.replace('/graphql', '');
    admin = await tokenFor(database, 'ADMIN');
    const key = await graphql<{ createEnrollmentKey: { secret: string } }>(api.url, 'mutation { createEnrollmentKey(input: {description: "isolation"}) { secret } }', { token: admin });
    for (const name of ['a', 'b'] as const) {
      const enrolled = await enrollMachine(base, key.data!.createEnrollmentKey.secret, { facts: { hostname: `machine-${name}` } });
      agents[name] = { id: enrolled.machineId, credential: enrolled.credential, client: enrolled.agent };
    }
    // B gets an install job, as a deployment run hands it out.
    jobOfB = (await handOverTestInstallJob(database, { machineId: agents.b.id, machineName: 'machine-b', deployment: 'isolation' })).jobId;
    const assess = await graphql<{ assessMachines: Array<{ commandId: string | null }> }>(api.url, 'mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { machineId } }', { token: admin, variables: { ids: [agents.b.id] } });
    expect(assess.errors).toBeUndefined();
    const [command] = await database.sql`select id from agent_commands where machine_id = ${agents.b.id} and kind <> 'INSTALL'`;
    assessCommandOfB = command!.id as string;
  });

  afterAll(async () => {
    await close();
  });

  /** Everything of B's an agent could touch. */
  const stateOfB = async () => ({
    machine: await database.sql`select name, os_name, boot_id, last_seen_at, last_assessed_at, management_enabled, tags from machines where id = ${agents.b.id}`,
    commands: await database.sql`select id, delivered_at, completed_at, last_event_seq, result from agent_commands where machine_id = ${agents.b.id} order by id`,
    assessments: await database.sql`select id from assessments where machine_id = ${agents.b.id}`,
    results: await database.sql`select name, status, error_text from update_results where machine_run_id in (select id from machine_runs where machine_id = ${agents.b.id})`,
    logs: await database.sql`select count(*)::int as n from run_logs`,
  });

  const events: JobEvents = { seq: 1, lines: [{ at: new Date().toISOString(), stream: 'stdout', text: 'forged output' }], updates: [{ name: 'openssl', arch: 'all', status: 'FAILED', exitCode: 1, errorText: 'forged', reason: null, installedVersion: null, startedAt: null, endedAt: null }] };
  const result: JobResult = { updates: events.updates, rebootRequired: false, rebooting: false, bootId: null, timedOut: false, error: null };

  it("refuses A on B's job events and result with 404, and B's job is untouched", async () => {
    const before = await stateOfB();
    await expect(agents.a.client.sendJobEvents(jobOfB, events)).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND', message: expect.stringMatching(/only report on its own jobs/) });
    await expect(agents.a.client.sendJobResult(jobOfB, result)).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' });
    // B's assessment command is no install job either, for A or anyone.
    await expect(agents.a.client.sendJobResult(assessCommandOfB, result)).rejects.toMatchObject({ status: 404 });
    expect(await stateOfB()).toEqual(before);
  });

  it("never hands A one of B's commands, and hands B its own", async () => {
    const before = await stateOfB();
    const forA = await agents.a.client.commands(0);
    expect(forA.commands).toEqual([]);
    expect(await stateOfB()).toEqual(before);
    const forB = await agents.b.client.commands(0);
    expect(forB.commands.map((c) => c.id).sort()).toEqual([jobOfB, assessCommandOfB].sort());
  });

  it("stores A's report and check-in under A, even when they name B's command or claim B's identity", async () => {
    const before = await stateOfB();
    // A report answering B's assessment command: stored for A, and B's command is not completed.
    await agents.a.client.sendReport(assessmentReport([pendingUpdate({ name: 'curl', classification: 'SECURITY' })], { commandId: assessCommandOfB }));
    await agents.a.client.checkIn(machineFacts({ hostname: 'machine-b', bootId: randomUUID() }));
    expect(await stateOfB()).toEqual(before);
    const [commandOfB] = await database.sql`select completed_at from agent_commands where id = ${assessCommandOfB}`;
    expect(commandOfB!.completed_at).toBeNull();
    const [a] = await database.sql`select name, last_assessed_at from machines where id = ${agents.a.id}`;
    expect(a).toMatchObject({ name: 'machine-b' });
    expect(a!.last_assessed_at).not.toBeNull();

    // The body cannot name another machine: unknown fields are refused.
    const forged = await fetch(`${base}/agent/v1/checkin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${agents.a.credential}` },
      body: JSON.stringify({ facts: machineFacts(), machineId: agents.b.id }),
    });
    expect(forged.status).toBe(400);
  });

  it("lets B itself report on its job (the refusals above were about who asked, not the job)", async () => {
    await expect(agents.b.client.sendJobEvents(jobOfB, events)).resolves.toEqual({ applied: true });
    await expect(agents.b.client.sendJobResult(jobOfB, result)).resolves.toEqual({ accepted: true });
    const [row] = await database.sql`select status, error_text from update_results where name = 'openssl'`;
    expect(row).toEqual({ status: 'FAILED', error_text: 'forged' });
  });

  it('refuses every agent endpoint without a credential, or with a machine credential that was revoked', async () => {
    const removed = await graphql(api.url, 'mutation($id: ID!) { removeMachine(machineId: $id) }', { token: admin, variables: { id: agents.a.id } });
    expect(removed.errors).toBeUndefined();
    const endpoints: Array<[string, string, unknown]> = [
      ['POST', '/checkin', { facts: machineFacts() }],
      ['GET', '/commands?waitSeconds=0', undefined],
      ['POST', '/assessments', assessmentReport([])],
      ['POST', `/jobs/${jobOfB}/events`, events],
      ['POST', `/jobs/${jobOfB}/result`, result],
    ];
    for (const credential of [undefined, agents.a.credential, admin]) {
      for (const [method, path, body] of endpoints) {
        const response = await fetch(`${base}/agent/v1${path}`, {
          method,
          headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(credential ? { authorization: `Bearer ${credential}` } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });
        expect([method, path, credential === admin ? 'api token' : credential ? 'removed machine' : 'none', response.status]).toEqual([method, path, credential === admin ? 'api token' : credential ? 'removed machine' : 'none', 401]);
      }
    }
  });
});
