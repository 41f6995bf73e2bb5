import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, ServerRefusal } from '../../src/agent/client.js';
import { enrollOnce } from '../../src/agent/enrollment.js';
import { loadIdentity } from '../../src/agent/state.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { assessmentReport, machineFacts } from '../../testkit/agentFacts.js';
import { graphql, startApiWithAdmin } from '../support/env.js';
import { tcpRelay } from '../support/operatorCli.js';

/** An enrollment sent again after its answer was lost (a timeout, a dropped connection) enrolls the machine once. */
describe('an enrollment request sent again', () => {
  let api: ApiServer;
  let database: Database;
  let close: (() => Promise<void>) | undefined;
  let admin: string;
  let base: string;
  let createKey: (input: Record<string, unknown>) => Promise<{ id: string; secret: string }>;
  let keyState: (id: string) => Promise<{ useCount: number; state: string }>;

  beforeAll(async () => {
    ({ api, database, close, admin, base, createKey, keyState } = await startApiWithAdmin());
  });

  afterAll(async () => {
    await close?.();
  });

  async function machinesNamed(name: string): Promise<string[]> {
    const response = await graphql<{ machines: { edges: Array<{ node: { id: string; name: string } }> } }>(api.url, '{ machines(first: 500) { edges { node { id name } } } }', { token: admin });
    expect(response.errors).toBeUndefined();
    return response.data!.machines.edges.filter((edge) => edge.node.name === name).map((edge) => edge.node.id);
  }

  // Failed before the fix: the second request enrolled a second machine and used the key again (403: used up).
  it('answers for the same machine with a new credential, the key used once, the first credential no longer valid', async () => {
    const key = await createKey({ description: 'one machine', maxUses: 1 });
    const facts = machineFacts({ hostname: 'retried-01' });
    const requestId = randomUUID();
    const first = await new AgentClient(base).enroll(key.secret, facts, requestId);
    // Its answer lost on the way: the agent sends the same request again.
    const second = await new AgentClient(base).enroll(key.secret, facts, requestId);

    expect(second.machineId).toBe(first.machineId);
    expect(second.credential).not.toBe(first.credential);
    expect(await machinesNamed('retried-01')).toEqual([first.machineId]);
    expect(await keyState(key.id)).toMatchObject({ useCount: 1, state: 'USED_UP' });

    await expect(new AgentClient(base, second.credential).checkIn(facts)).resolves.toMatchObject({ managementEnabled: true });
    await expect(new AgentClient(base, first.credential).checkIn(facts)).rejects.toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });

    // Another enrollment (another id) is a second machine, which this key no longer allows.
    await expect(new AgentClient(base).enroll(key.secret, machineFacts({ hostname: 'retried-02' }), randomUUID())).rejects.toMatchObject({ status: 403, code: 'FORBIDDEN' });
  });

  it('the same id with another key, or no id at all (older agents), enrolls as before', async () => {
    const key = await createKey({ description: 'older agents', maxUses: 5 });
    const other = await createKey({ description: 'other key', maxUses: 5 });
    const facts = machineFacts({ hostname: 'older-01' });
    const a = await new AgentClient(base).enroll(key.secret, facts);
    const b = await new AgentClient(base).enroll(key.secret, facts);
    expect(b.machineId).not.toBe(a.machineId);
    expect(await keyState(key.id)).toMatchObject({ useCount: 2 });

    const requestId = randomUUID();
    const c = await new AgentClient(base).enroll(key.secret, machineFacts({ hostname: 'shared-id-01' }), requestId);
    const d = await new AgentClient(base).enroll(other.secret, machineFacts({ hostname: 'shared-id-02' }), requestId);
    expect(d.machineId).not.toBe(c.machineId);
  });

  it('does not bring back a machine removed since, nor enroll it again under the same id', async () => {
    const key = await createKey({ description: 'removed since', maxUses: 5 });
    const facts = machineFacts({ hostname: 'removed-01' });
    const requestId = randomUUID();
    const first = await new AgentClient(base).enroll(key.secret, facts, requestId);
    const removed = await graphql(api.url, 'mutation($id: ID!) { removeMachine(machineId: $id) }', { token: admin, variables: { id: first.machineId } });
    expect(removed.errors).toBeUndefined();
    const refusal = await new AgentClient(base).enroll(key.secret, facts, requestId).catch((error: unknown) => error);
    expect(refusal).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    expect((refusal as ServerRefusal).message).toContain('removed');
    expect(await keyState(key.id)).toMatchObject({ useCount: 1 });
  });

  // Failed before the fix: the same request, sent after the machine had reported, took the machine over
  // (a new credential for the sender, the real agent's refused).
  it('is spent once the machine has reported: the sender gets no credential, the agent keeps its own', async () => {
    const key = await createKey({ description: 'spent request', maxUses: 5 });
    const facts = machineFacts({ hostname: 'spent-01' });
    const requestId = randomUUID();
    const first = await new AgentClient(base).enroll(key.secret, facts, requestId);
    await new AgentClient(base, first.credential).sendReport(assessmentReport([], { backend: 'apt' }));
    const refusal = await new AgentClient(base).enroll(key.secret, facts, requestId).catch((error: unknown) => error);
    expect(refusal).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    expect((refusal as ServerRefusal).message).toContain('which has reported since');
    await expect(new AgentClient(base, first.credential).checkIn(facts)).resolves.toMatchObject({ managementEnabled: true });
    expect(await machinesNamed('spent-01')).toEqual([first.machineId]);
  });

  it('refuses a malformed enrollment request id with 400 BAD_USER_INPUT, naming the field', async () => {
    const key = await createKey({ description: 'malformed', maxUses: 5 });
    for (const requestId of ['short', 'x'.repeat(65), 'has spaces in it, sixteen+']) {
      const refusal = await new AgentClient(base).enroll(key.secret, machineFacts({ hostname: 'malformed-01' }), requestId).catch((error: unknown) => error);
      expect(refusal).toBeInstanceOf(ServerRefusal);
      expect(refusal).toMatchObject({ status: 400, code: 'BAD_USER_INPUT' });
      expect((refusal as ServerRefusal).message).toContain('enrollmentRequestId');
    }
    expect(await keyState(key.id)).toMatchObject({ useCount: 0 });
  });

  it('the agent whose first answer is dropped on its way enrolls its machine once, with the credential of the retry', async () => {
    const key = await createKey({ description: 'dropped answer', maxUses: 5 });
    const relay = await tcpRelay(new URL(base).host);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-enroll-'));
    try {
      fs.mkdirSync(path.join(dir, 'root', 'etc'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'root', 'etc', 'hostname'), 'dropped-01\n');
      fs.writeFileSync(path.join(dir, 'root', 'etc', 'os-release'), 'ID=debian\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n');
      const stateDir = path.join(dir, 'state');
      const dropped = relay.dropNextAnswer();
      const enrolled = await enrollOnce({ server: `http://${relay.address}`, enrollKey: key.secret, stateDir, root: path.join(dir, 'root'), bootIdFile: path.join(dir, 'boot-id'), env: {}, agentVersion: '0.1.0', log: () => {}, attempts: 3 });
      await dropped;
      expect(await keyState(key.id)).toMatchObject({ useCount: 1 });
      const [row] = await database.sql`select count(*)::int as n from machines where enrollment_key_id = ${key.id}`;
      expect(row!.n).toBe(1);
      const identity = loadIdentity(stateDir)!;
      expect(identity.machineId).toBe(enrolled.machineId);
      await expect(new AgentClient(base, identity.credential).checkIn(machineFacts({ hostname: 'dropped-01' }))).resolves.toMatchObject({ managementEnabled: true });
    } finally {
      relay.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
