import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, ServerRefusal } from '../../src/agent/client.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { enrollMachine } from '../../src/db/machines.js';
import { machineFacts } from '../../testkit/agentFacts.js';
import { graphql, startApiWithAdmin } from '../support/env.js';

/**
 * Many agents enrolling through one key at once: the key's use is taken by the statement that
 * inserts the machine (src/db/machines.ts, enrollMachine), not by a lock held over the whole
 * enrollment, and its limits hold exactly all the same.
 */
describe('enrollments through one key at once', () => {
  let api: ApiServer;
  let database: Database;
  let close: (() => Promise<void>) | undefined;
  let admin: string;
  let base: string;
  let createKey: (input: Record<string, unknown>) => Promise<{ id: string; secret: string }>;
  let keyState: (id: string) => Promise<{ useCount: number; state: string }>;

  beforeAll(async () => {
    // Every agent here enrolls from the one test address: its enrollment rate limit is not what is tested.
    ({ api, database, close, admin, base, createKey, keyState } = await startApiWithAdmin({ FLEETPATCH_ENROLL_RATE_LIMIT: '0' }));
  });

  afterAll(async () => {
    await close?.();
  });

  const machinesOfKey = async (keyId: string) => (await database.sql<Array<{ id: string }>>`select id from machines where enrollment_key_id = ${keyId}`).map((row) => row.id);

  /** Sends every enrollment at once; the answers, or the refusals, in order. */
  const enrollAll = (secret: string, count: number, requestId?: (i: number) => string) =>
    Promise.all(
      Array.from({ length: count }, (_, i) =>
        new AgentClient(base).enroll(secret, machineFacts({ hostname: `crowd-${i}` }), requestId?.(i)).catch((error: unknown) => {
          if (error instanceof ServerRefusal) return error;
          throw error;
        }),
      ),
    );

  it('a key limited to 5 uses enrolls exactly 5 of 24 machines that enroll together; the others are refused with 403 FORBIDDEN', async () => {
    const key = await createKey({ description: 'five machines', maxUses: 5 });
    const answers = await enrollAll(key.secret, 24, () => randomUUID());

    const enrolled = answers.filter((a): a is Exclude<typeof a, ServerRefusal> => !(a instanceof ServerRefusal));
    const refused = answers.filter((a): a is ServerRefusal => a instanceof ServerRefusal);
    expect(enrolled).toHaveLength(5);
    expect(refused).toHaveLength(19);
    for (const refusal of refused) {
      expect(refusal).toMatchObject({ status: 403, code: 'FORBIDDEN' });
      expect(refusal.message).toBe('This enrollment key has been used for all of its 5 machine(s). Ask an admin for a new key.');
    }
    expect(new Set(enrolled.map((a) => a.machineId)).size).toBe(5);
    expect((await machinesOfKey(key.id)).sort()).toEqual(enrolled.map((a) => a.machineId).sort());
    expect(await keyState(key.id)).toMatchObject({ useCount: 5, state: 'USED_UP' });
    // Each enrolled agent's credential works.
    for (const answer of enrolled) await expect(new AgentClient(base, answer.credential).checkIn(machineFacts())).resolves.toMatchObject({ managementEnabled: true });
  });

  it('a key without a use limit counts every one of 30 machines that enroll together', async () => {
    const key = await createKey({ description: 'no limit', unlimitedUses: true });
    const answers = await enrollAll(key.secret, 30, () => randomUUID());
    expect(answers.filter((a) => a instanceof ServerRefusal)).toEqual([]);
    expect(await machinesOfKey(key.id)).toHaveLength(30);
    expect(await keyState(key.id)).toMatchObject({ useCount: 30, state: 'ACTIVE' });
  });

  it('a revoked key enrolls none of them', async () => {
    const key = await createKey({ description: 'revoked', maxUses: 50 });
    const revoked = await graphql(api.url, 'mutation($id: ID!) { revokeEnrollmentKey(id: $id) { id } }', { token: admin, variables: { id: key.id } });
    expect(revoked.errors).toBeUndefined();
    const answers = await enrollAll(key.secret, 10, () => randomUUID());
    for (const answer of answers) {
      expect(answer).toMatchObject({ status: 403, code: 'FORBIDDEN' });
      expect((answer as ServerRefusal).message).toContain('was revoked');
    }
    expect(await machinesOfKey(key.id)).toEqual([]);
    expect(await keyState(key.id)).toMatchObject({ useCount: 0 });
  });

  // Without judging the copies that lose the race on the (key, request id) index as retries, they got a 500.
  it('one request sent several times at once enrolls one machine, the key used once, one credential valid', async () => {
    const key = await createKey({ description: 'one request', maxUses: 5 });
    const requestId = randomUUID();
    const answers = await enrollAll(key.secret, 6, () => requestId);
    const answered = answers.filter((a): a is Exclude<typeof a, ServerRefusal> => !(a instanceof ServerRefusal));
    // The copy that arrived last is always answered; one that arrived before the copy answered last is refused.
    expect(answered.length).toBeGreaterThan(0);
    for (const refusal of answers.filter((a): a is ServerRefusal => a instanceof ServerRefusal)) {
      expect(refusal).toMatchObject({ status: 403, code: 'FORBIDDEN' });
      expect(refusal.message).toContain('for a copy of it sent later than this one');
    }
    const machineIds = new Set(answered.map((a) => a.machineId));
    expect(machineIds.size).toBe(1);
    expect(await machinesOfKey(key.id)).toEqual([...machineIds]);
    expect(await keyState(key.id)).toMatchObject({ useCount: 1 });
    const valid = await Promise.all(answered.map((a) => new AgentClient(base, a.credential).checkIn(machineFacts()).then(() => true, () => false)));
    expect(valid.filter(Boolean)).toHaveLength(1);
  });

  // Failed before the fix: the late copy replaced the credential, and the agent holding the later answer's got 401 from then on
  // (9 of 30,000 simulated agents joining four busy APIs at once).
  it('a copy that arrives after a later copy was answered leaves the agent the credential it holds', async () => {
    const key = await createKey({ description: 'late copy', maxUses: 5 });
    const requestId = randomUUID();
    const facts = machineFacts({ hostname: 'late-copy-01' });
    const sentFirst = new Date();
    // The agent gave up on its first copy (still on its way, behind a busy server) and sent another, answered first.
    const answered = await enrollMachine(database.db, key.secret, facts, new Date(sentFirst.getTime() + 1000), requestId);
    const late = await enrollMachine(database.db, key.secret, facts, sentFirst, requestId);
    expect(answered.enrolled).toBe(true);
    expect(late).toMatchObject({ enrolled: false, keyId: key.id });
    expect((late as { reason: string }).reason).toContain('for a copy of it sent later than this one');
    await expect(new AgentClient(base, (answered as { credential: string }).credential).checkIn(facts)).resolves.toMatchObject({ managementEnabled: true });
    expect(await keyState(key.id)).toMatchObject({ useCount: 1 });
  });

  it("the key's tags give the machine its baseline as it enrolls, by the machine's OS type", async () => {
    for (const [name, osType] of [
      ['crowd linux', 'LINUX'],
      ['crowd windows', 'WINDOWS'],
    ] as const) {
      const created = await graphql(api.url, 'mutation($input: BaselineInput!) { createBaseline(input: $input) { id } }', {
        token: admin,
        variables: { input: { name, osType, tags: ['site:crowd'], rules: [{ classifications: ['SECURITY', 'CRITICAL'], delayDays: 0 }] } },
      });
      expect(created.errors).toBeUndefined();
    }
    const key = await createKey({ description: 'tagged', maxUses: 5, defaultTags: ['site:crowd', 'team:ops'] });
    const other = await createKey({ description: 'untagged', maxUses: 5 });
    const baselineOf = async (machineId: string) => {
      const response = await graphql<{ machine: { tags: string[]; baseline: { name: string } } }>(api.url, 'query($id: ID!) { machine(id: $id) { tags baseline { name } } }', { token: admin, variables: { id: machineId } });
      expect(response.errors).toBeUndefined();
      return response.data!.machine;
    };
    const linux = await new AgentClient(base).enroll(key.secret, machineFacts({ hostname: 'crowd-linux' }), randomUUID());
    const windows = await new AgentClient(base).enroll(key.secret, machineFacts({ hostname: 'crowd-windows', osType: 'WINDOWS' }), randomUUID());
    const untagged = await new AgentClient(base).enroll(other.secret, machineFacts({ hostname: 'crowd-untagged' }), randomUUID());
    expect(await baselineOf(linux.machineId)).toEqual({ tags: ['site:crowd', 'team:ops'], baseline: { name: 'crowd linux' } });
    expect(await baselineOf(windows.machineId)).toEqual({ tags: ['site:crowd', 'team:ops'], baseline: { name: 'crowd windows' } });
    expect((await baselineOf(untagged.machineId)).baseline.name).not.toMatch(/^crowd/);
  });
});
