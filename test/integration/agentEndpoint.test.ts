import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { AgentClient, ServerRefusal } from '../../src/agent/client.js';
import type { JobResult } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import { graphql, startApiWithAdmin, tokenFor } from '../support/env.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { handOverTestInstallJob } from '../support/installJobs.js';
import { enrollMachine } from '../support/machines.js';
import type { Database } from '../../src/db/client.js';
import { createFleetPubSub } from '../../src/events/pubsub.js';
import { longPollsOpen, subscriptionLive } from '../support/signals.js';

describe('the agent endpoint', () => {
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

  const count = async (table: string) => Number((await database.sql.unsafe(`select count(*)::int as n from ${table}`))[0]!.n);

  it('enrolls a machine with a key, hands it a credential stored only as a hash, with the key default tags', async () => {
    const key = await createKey({ description: 'web servers', defaultTags: ['web', 'env:prod'] });
    const agent = new AgentClient(base);
    const facts = machineFacts({ hostname: 'web-01' });
    const enrolled = await agent.enroll(key.secret, facts);
    expect(enrolled.credential).toMatch(/^fpm_/);
    expect(enrolled.settings).toEqual({ checkInIntervalSeconds: 60, assessmentIntervalSeconds: 10_800, packageDatabaseCheckSeconds: 900, longPollSeconds: 25 });
    const [row] = await database.sql`select credential_hash, tags from machines where id = ${enrolled.machineId}`;
    expect(row!.credential_hash).not.toContain(enrolled.credential);
    expect(row!.credential_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(row!.tags).toEqual(['env:prod', 'web']);

    const machine = await graphql<{ machine: Record<string, unknown> }>(
      api.url,
      `query($id: ID!) { machine(id: $id) { name osType osName environment compliance agentReadiness tags } }`,
      { token: admin, variables: { id: enrolled.machineId } },
    );
    expect(machine.data!.machine).toEqual({
      name: 'web-01',
      osType: 'LINUX',
      osName: 'Debian GNU/Linux 12 (bookworm)',
      environment: 'ON_PREMISES',
      compliance: 'NOT_ASSESSED',
      agentReadiness: 'READY',
      tags: ['env:prod', 'web'],
    });
  });

  it('refuses a revoked, an expired and a used-up key, each with its own reason', async () => {
    const revoked = await createKey({ description: 'revoked' });
    await graphql(api.url, 'mutation($id: ID!) { revokeEnrollmentKey(id: $id) { state } }', { token: admin, variables: { id: revoked.id } });
    const usedUp = await createKey({ description: 'one machine', maxUses: 1 });
    const expiring = await createKey({ description: 'expiring', expiresAt: new Date(Date.now() + 3600_000).toISOString() });

    const agent = new AgentClient(base);
    await expect(agent.enroll(revoked.secret, machineFacts())).rejects.toMatchObject({ status: 403, code: 'FORBIDDEN', message: expect.stringMatching(/was revoked on .*Ask an admin for a new key/) });
    await agent.enroll(usedUp.secret, machineFacts());
    await expect(agent.enroll(usedUp.secret, machineFacts())).rejects.toMatchObject({ status: 403, message: expect.stringContaining('used for all of its 1 machine(s)') });
    // Its hour passes: the key's expiry moves into the past, as the clock would move it.
    await database.sql`update enrollment_keys set expires_at = now() - interval '1 second' where id = ${expiring.id}`;
    await expect(agent.enroll(expiring.secret, machineFacts())).rejects.toMatchObject({ status: 403, message: expect.stringContaining('expired on') });
    await expect(agent.enroll('fpe_nonsense', machineFacts())).rejects.toMatchObject({ status: 403, message: expect.stringContaining('not known') });

    expect(await keyState(revoked.id)).toMatchObject({ state: 'REVOKED', useCount: 0 });
    expect(await keyState(usedUp.id)).toMatchObject({ state: 'USED_UP', useCount: 1 });
    expect(await keyState(expiring.id)).toMatchObject({ state: 'EXPIRED' });
  });

  it('validates enrollment key input with a message naming the field', async () => {
    const past = await graphql(api.url, 'mutation { createEnrollmentKey(input: {description: "x", expiresAt: "2020-01-01T00:00:00Z"}) { secret } }', { token: admin });
    expect(past.errors?.[0]).toMatchObject({ message: 'expiresAt must be in the future; got 2020-01-01T00:00:00.000Z.', extensions: { code: 'BAD_USER_INPUT', field: 'expiresAt' } });
    const tags = await graphql(api.url, 'mutation { createEnrollmentKey(input: {description: "x", defaultTags: ["ok", "not ok"]}) { secret } }', { token: admin });
    expect(tags.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'defaultTags' });
    const uses = await graphql(api.url, 'mutation { createEnrollmentKey(input: {description: "x", maxUses: 0}) { secret } }', { token: admin });
    expect(uses.errors?.[0]?.message).toBe('maxUses must be between 1 and 1,000,000 (or unlimitedUses: true for no limit); got 0.');
  });

  it('gives a new key an expiry and a bound on its uses unless an admin explicitly says otherwise, and shows its usage', async () => {
    type Key = { id: string; expiresAt: string | null; maxUses: number | null; useCount: number; lastUsedAt: string | null; state: string };
    const fields = 'id expiresAt maxUses useCount lastUsedAt state';
    const create = (input: Record<string, unknown>) =>
      graphql<{ createEnrollmentKey: { key: Key; secret: string } }>(api.url, `mutation($input: CreateEnrollmentKeyInput!) { createEnrollmentKey(input: $input) { key { ${fields} } secret } }`, { token: admin, variables: { input } });

    const plain = (await create({ description: 'nothing said' })).data!.createEnrollmentKey;
    expect(plain.key).toMatchObject({ maxUses: 10, useCount: 0, lastUsedAt: null, state: 'ACTIVE' });
    const hoursLeft = (Date.parse(plain.key.expiresAt!) - Date.now()) / 3_600_000;
    expect(hoursLeft).toBeGreaterThan(23.9);
    expect(hoursLeft).toBeLessThanOrEqual(24);

    // Ten machines, then the eleventh is refused with the reason.
    for (let i = 0; i < 10; i++) await new AgentClient(base).enroll(plain.secret, machineFacts());
    await expect(new AgentClient(base).enroll(plain.secret, machineFacts())).rejects.toMatchObject({ status: 403, message: expect.stringContaining('used for all of its 10 machine(s)') });
    const keys = await graphql<{ enrollmentKeys: { edges: Array<{ node: Key }> } }>(api.url, `{ enrollmentKeys(first: 500) { edges { node { ${fields} } } } }`, { token: admin });
    const used = keys.data!.enrollmentKeys.edges.map((e) => e.node).find((k) => k.id === plain.key.id)!;
    expect(used).toMatchObject({ useCount: 10, state: 'USED_UP' });
    expect(Math.abs(Date.parse(used.lastUsedAt!) - Date.now())).toBeLessThan(60_000);

    const unbounded = (await create({ description: 'fleet rollout', neverExpires: true, unlimitedUses: true })).data!.createEnrollmentKey.key;
    expect(unbounded).toMatchObject({ expiresAt: null, maxUses: null });
    const both = await create({ description: 'confused', maxUses: 5, unlimitedUses: true });
    expect(both.errors?.[0]).toMatchObject({ message: 'Give maxUses or unlimitedUses: true, not both.', extensions: { code: 'BAD_USER_INPUT', field: 'maxUses' } });
    // Not an admin: no key at all, let alone an unbounded one.
    const operator = await tokenFor(database, 'OPERATOR');
    const refused = await graphql(api.url, 'mutation { createEnrollmentKey(input: {description: "x", unlimitedUses: true, neverExpires: true}) { secret } }', { token: operator });
    expect(refused.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('answers a NUL in enrollment or check-in facts with 400 BAD_USER_INPUT naming the field, storing nothing', async () => {
    const key = await createKey({ description: 'nul' });
    const enrolled = await enrollMachine(base, key.secret);
    const before = await count('machines');
    const post = async (path: string, body: unknown, auth?: string) => {
      const response = await fetch(`${base}/agent/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${auth}` } : {}) }, body: JSON.stringify(body) });
      return { status: response.status, ...((await response.json()) as { error: { code: string; message: string } }) };
    };
    for (const [field, facts] of [
      ['facts.hostname', machineFacts({ hostname: 'web\u000001' })],
      ['facts.osName', machineFacts({ osName: 'Debian\u0000' })],
      ['facts.kernel', machineFacts({ kernel: '6.1\u0000' })],
      ['facts.warnings.0', machineFacts({ warnings: ['a\u0000b'] })],
    ] as const) {
      expect(await post('/enroll', { enrollmentKey: key.secret, facts })).toEqual({ status: 400, error: { code: 'BAD_USER_INPUT', message: `${field}: must not contain the NUL character (\\u0000)` } });
      expect(await post('/checkin', { facts }, enrolled.credential)).toEqual({ status: 400, error: { code: 'BAD_USER_INPUT', message: `${field}: must not contain the NUL character (\\u0000)` } });
    }
    expect((await post('/enroll', { enrollmentKey: `${key.secret}\u0000`, facts: machineFacts() })).status).toBe(400);
    expect(await count('machines')).toBe(before);
  });

  it("answers a NUL in a job's progress or result with 400 naming the field, and its agent sends a program's NUL as U+FFFD so the job goes on", async () => {
    // An install job, as a deployment run hands it out.
    const key = await createKey({ description: 'nul in a job' });
    const enrolled = await enrollMachine(base, key.secret, { facts: { hostname: 'nul-job' } });
    const { jobId, machineRunId, job } = await handOverTestInstallJob(database, { machineId: enrolled.machineId, machineName: 'nul-job', deployment: 'nul in a job' });

    // A NUL sent as it is: refused with the field, not 500 INTERNAL (which an agent resends for ever).
    const post = async (path: string, body: unknown) => {
      const response = await fetch(`${base}/agent/v1/jobs/${jobId}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${enrolled.credential}` }, body: JSON.stringify(body) });
      return { status: response.status, ...((await response.json()) as { error: { code: string; message: string } }) };
    };
    const failed = { name: 'openssl', arch: 'all', status: 'FAILED' as const, exitCode: 1, errorText: 'dpkg: error\u0000', reason: null, installedVersion: null, startedAt: null, endedAt: null };
    const refused = (field: string) => ({ status: 400, error: { code: 'BAD_USER_INPUT', message: `${field}: must not contain the NUL character (\\u0000)` } });
    expect(await post('/events', { seq: 1, lines: [{ at: new Date().toISOString(), stream: 'stdout', text: 'find -print0\u0000' }], updates: [] })).toEqual(refused('lines.0.text'));
    expect(await post('/events', { seq: 1, lines: [], updates: [failed] })).toEqual(refused('updates.0.errorText'));
    const result: JobResult = { updates: [failed], rebootRequired: false, rebooting: false, bootId: null, timedOut: false, error: null };
    expect(await post('/result', result)).toEqual(refused('updates.0.errorText'));
    expect(await database.sql`select line from run_logs where run_id = ${job.runId}`).toEqual([]);

    // The agent sends the same progress and result: stored, the NUL shown as U+FFFD.
    await expect(enrolled.agent.sendJobEvents(jobId, { seq: 1, lines: [{ at: new Date().toISOString(), stream: 'stdout', text: 'find -print0\u0000' }], updates: [] })).resolves.toEqual({ applied: true });
    await expect(enrolled.agent.sendJobResult(jobId, result)).resolves.toEqual({ accepted: true });
    expect(await database.sql`select line from run_logs where run_id = ${job.runId} and stream = 'stdout'`).toEqual([{ line: 'find -print0\uFFFD' }]);
    expect(await database.sql`select status, error_text from update_results where machine_run_id = ${machineRunId}`).toEqual([{ status: 'FAILED', error_text: 'dpkg: error\uFFFD' }]);
  });

  it('refuses a hostname with control or bidirectional characters, saying which and where', async () => {
    const key = await createKey({ description: 'hostnames' });
    const agent = new AgentClient(base);
    await expect(agent.enroll(key.secret, machineFacts({ hostname: 'web\u202e10-bew' }))).rejects.toMatchObject({
      status: 400,
      code: 'BAD_USER_INPUT',
      message: expect.stringMatching(/^facts\.hostname: the hostname holds U\+202E \(RIGHT-TO-LEFT OVERRIDE\) at character 4/),
    });
    const { credential } = await agent.enroll(key.secret, machineFacts({ hostname: 'web-09' }));
    agent.setCredential(credential);
    await expect(agent.checkIn(machineFacts({ hostname: 'web-09\u001b[2J' }))).rejects.toMatchObject({ status: 400, message: expect.stringContaining('U+001B (ESCAPE) at character 7') });
    const names = await database.sql`select name from machines where name like 'web%09%'`;
    expect(names.map((r) => r.name)).toEqual(['web-09']);
  });

  it('shows machines that share a name (ignoring case) as duplicates, in the list and on the machine', async () => {
    const key = await createKey({ description: 'twins' });
    const first = await enrollMachine(base, key.secret, { facts: { hostname: 'twin-01' } });
    const second = await enrollMachine(base, key.secret, { facts: { hostname: 'TWIN-01' } });
    const single = await enrollMachine(base, key.secret, { facts: { hostname: 'twin-02' } });
    type Node = { id: string; name: string; duplicateName: boolean; warnings: string[] };
    const list = await graphql<{ machines: { edges: Array<{ node: Node }> } }>(api.url, '{ machines(filter: {nameContains: "twin-0"}, first: 10) { edges { node { id name duplicateName warnings } } } }', { token: admin });
    const byId = new Map(list.data!.machines.edges.map((e) => [e.node.id, e.node]));
    expect(byId.get(first.machineId)).toMatchObject({ duplicateName: true, warnings: [expect.stringMatching(/^1 other machine is also named twin-01/)] });
    expect(byId.get(second.machineId)).toMatchObject({ duplicateName: true, warnings: [expect.stringMatching(/also named TWIN-01/)] });
    expect(byId.get(single.machineId)).toMatchObject({ duplicateName: false, warnings: [] });

    // Removing one of them makes the other unique again.
    await graphql(api.url, 'mutation($id: ID!) { removeMachine(machineId: $id) }', { token: admin, variables: { id: second.machineId } });
    const after = await graphql<{ machine: Node }>(api.url, 'query($id: ID!) { machine(id: $id) { duplicateName warnings } }', { token: admin, variables: { id: first.machineId } });
    expect(after.data!.machine).toEqual({ duplicateName: false, warnings: [] });
  });

  it('stores a report once, however often the agent resends it, and counts by classification', async () => {
    const key = await createKey({ description: 'reports' });
    const { machineId, agent } = await enrollMachine(base, key.secret);
    const report = assessmentReport([
      pendingUpdate({ name: 'openssl', classification: 'CRITICAL', severity: 'CRITICAL', cveIds: ['CVE-2025-1'] }),
      pendingUpdate({ name: 'sudo', classification: 'SECURITY' }),
      pendingUpdate({ name: 'vim', classification: 'OTHER', installedVersion: '1.1-1', note: 'Half-configured (dpkg status iF): vim 1.1-1 is unpacked but configuring it failed.' }),
      pendingUpdate({ name: 'libnew', installedVersion: null }),
    ]);
    expect(await agent.sendReport(report)).toEqual({ stored: true });
    expect(await agent.sendReport(report)).toEqual({ stored: false });
    const [stored] = await database.sql`select count(*)::int as n from assessments where machine_id = ${machineId}`;
    expect(stored!.n).toBe(1);
    const machine = await graphql<{ machine: { compliance: string; criticalAndSecurityCount: number; otherCount: number; pendingUpdates: { totalCount: number; edges: Array<{ node: { name: string; installedVersion: string | null; note: string | null } }> } } }>(
      api.url,
      `query($id: ID!) { machine(id: $id) { compliance criticalAndSecurityCount otherCount pendingUpdates { totalCount edges { node { name installedVersion note } } } } }`,
      { token: admin, variables: { id: machineId } },
    );
    expect(machine.data!.machine).toMatchObject({ compliance: 'NON_COMPLIANT', criticalAndSecurityCount: 2, otherCount: 2, pendingUpdates: { totalCount: 4 } });
    const pending = machine.data!.machine.pendingUpdates.edges.map((e) => e.node);
    expect(pending.map((u) => u.name)).toEqual(['openssl', 'sudo', 'libnew', 'vim']);
    expect(pending.find((u) => u.name === 'libnew')!.installedVersion).toBeNull();
    // Why a package is pending with the same installed and available version, as the agent said.
    expect(pending.map((u) => u.note)).toEqual([null, null, null, 'Half-configured (dpkg status iF): vim 1.1-1 is unpacked but configuring it failed.']);

    // An older report arriving late (from the agent's spool) is kept in the history but does not replace the newer one.
    const older = assessmentReport([], { startedAt: new Date(Date.now() - 7200_000).toISOString(), finishedAt: new Date(Date.now() - 7100_000).toISOString() });
    expect(await agent.sendReport(older)).toEqual({ stored: true });
    const after = await graphql<{ machine: { criticalAndSecurityCount: number; assessments: { totalCount: number } } }>(
      api.url,
      `query($id: ID!) { machine(id: $id) { criticalAndSecurityCount assessments { totalCount } } }`,
      { token: admin, variables: { id: machineId } },
    );
    expect(after.data!.machine).toEqual({ criticalAndSecurityCount: 2, assessments: { totalCount: 2 } });
  });

  it("stores each update's advisory issue date as the agent sent it, takes reports of agents that send none, and refuses one that is no date", async () => {
    const key = await createKey({ description: 'issue dates' });
    const { machineId, agent } = await enrollMachine(base, key.secret);
    const report = assessmentReport([
      pendingUpdate({ name: 'openssl', classification: 'CRITICAL', severity: 'CRITICAL', advisoryIds: ['RHSA-2025:0001'], advisoryIssuedAt: '2025-01-15T00:00:00.000Z' }),
      pendingUpdate({ name: 'sudo', classification: 'SECURITY', advisoryIssuedAt: null }),
      // An agent of the previous version sends no such field at all.
      pendingUpdate({ name: 'vim', classification: 'OTHER' }),
    ]);
    expect(await agent.sendReport(report)).toEqual({ stored: true });
    const machine = await graphql<{ machine: { pendingUpdates: { edges: Array<{ node: { name: string; advisoryIssuedAt: string | null } }> } } }>(
      api.url,
      `query($id: ID!) { machine(id: $id) { pendingUpdates { edges { node { name advisoryIssuedAt } } } } }`,
      { token: admin, variables: { id: machineId } },
    );
    expect(machine.errors).toBeUndefined();
    expect(machine.data!.machine.pendingUpdates.edges.map((e) => e.node)).toEqual([
      { name: 'openssl', advisoryIssuedAt: '2025-01-15T00:00:00.000Z' },
      { name: 'sudo', advisoryIssuedAt: null },
      { name: 'vim', advisoryIssuedAt: null },
    ]);
    const refused = await agent.sendReport(assessmentReport([pendingUpdate({ name: 'bad', advisoryIssuedAt: 'last Tuesday' })])).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ServerRefusal);
    expect((refused as ServerRefusal).message).toMatch(/advisoryIssuedAt/);
  });

  it("stores each apt update's source package as the agent sent it, takes reports without one, and refuses one that is no name", async () => {
    const key = await createKey({ description: 'source packages' });
    const { machineId, agent } = await enrollMachine(base, key.secret);
    const report = assessmentReport([
      pendingUpdate({ name: 'libssl3', classification: 'SECURITY', sourcePackage: 'openssl' }),
      // The same name as its source: the agent leaves the field out; an older agent never sends it.
      pendingUpdate({ name: 'openssl', classification: 'SECURITY' }),
    ]);
    expect(await agent.sendReport(report)).toEqual({ stored: true });
    const machine = await graphql<{ machine: { pendingUpdates: { edges: Array<{ node: { name: string; sourcePackage: string | null } }> } } }>(
      api.url,
      `query($id: ID!) { machine(id: $id) { pendingUpdates { edges { node { name sourcePackage } } } } }`,
      { token: admin, variables: { id: machineId } },
    );
    expect(machine.errors).toBeUndefined();
    expect(machine.data!.machine.pendingUpdates.edges.map((e) => e.node)).toEqual([
      { name: 'libssl3', sourcePackage: 'openssl' },
      { name: 'openssl', sourcePackage: null },
    ]);
    const refused = await agent.sendReport(assessmentReport([pendingUpdate({ name: 'bad', sourcePackage: '' })])).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ServerRefusal);
    expect((refused as ServerRefusal).message).toMatch(/sourcePackage/);
  });

  it('answers malformed, oversized and unauthenticated requests with a 4xx and a message, storing nothing', async () => {
    const key = await createKey({ description: 'hostile' });
    const { credential } = await enrollMachine(base, key.secret);
    const before = { machines: await count('machines'), assessments: await count('assessments') };
    const post = async (path: string, body: string, auth = credential) => {
      const response = await fetch(`${base}/agent/v1${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${auth}` }, body });
      return { status: response.status, body: (await response.json()) as { error: { code: string; message: string } } };
    };

    const notJson = await post('/assessments', '{"id": ');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe('BAD_USER_INPUT');

    const badField = await post('/assessments', JSON.stringify({ ...assessmentReport([]), trigger: 'WHENEVER' }));
    expect(badField.status).toBe(400);
    expect(badField.body.error.message).toMatch(/^trigger: /);

    const both = await post('/assessments', JSON.stringify({ ...assessmentReport([]), error: { code: 'X', message: 'y', output: null } }));
    expect(both.body.error.message).toContain('exactly one of result and error');

    const huge = await post('/assessments', JSON.stringify({ ...assessmentReport([]), padding: 'x'.repeat(9 * 1024 * 1024) }));
    expect(huge.status).toBe(413);
    expect(huge.body.error).toEqual({ code: 'PAYLOAD_TOO_LARGE', message: 'The request body is larger than 8mb.' });

    const tooMany = await post('/assessments', JSON.stringify(assessmentReport(Array.from({ length: 20_001 }, (_, i) => pendingUpdate({ name: `p${i}` })))));
    expect(tooMany.status).toBe(400);

    const stranger = await post('/checkin', JSON.stringify({ facts: machineFacts() }), 'fpm_stolen');
    expect(stranger.status).toBe(401);
    expect(stranger.body.error.code).toBe('UNAUTHENTICATED');

    const longHostname = await post('/checkin', JSON.stringify({ facts: machineFacts({ hostname: 'h'.repeat(300) }) }));
    expect(longHostname.status).toBe(400);
    expect(longHostname.body.error.message).toMatch(/^facts\.hostname: /);

    expect({ machines: await count('machines'), assessments: await count('assessments') }).toEqual(before);
  });

  it('answers requests its routes cannot take with a 4xx and a message that says what to send', async () => {
    const key = await createKey({ description: 'plain http' });
    const { credential } = await enrollMachine(base, key.secret);
    const send = async (method: string, path: string, body: string | undefined, headers: Record<string, string> = { 'content-type': 'application/json' }) => {
      const response = await fetch(`${base}/agent/v1${path}`, { method, headers: { authorization: `Bearer ${credential}`, ...headers }, body });
      return { status: response.status, type: response.headers.get('content-type'), error: ((await response.json()) as { error: { code: string; message: string } }).error };
    };
    expect(await send('GET', '/nowhere', undefined)).toEqual({ status: 404, type: 'application/json; charset=utf-8', error: { code: 'NOT_FOUND', message: 'No such agent endpoint: GET /agent/v1/nowhere.' } });
    expect((await send('GET', '/assessments', undefined)).status).toBe(404);
    expect((await send('POST', '/checkin', JSON.stringify({ facts: machineFacts() }), { 'content-type': 'text/plain' })).error.message).toMatch(/^\(body\): /);
    expect((await send('POST', '/checkin', '"facts"')).error).toEqual({ code: 'BAD_USER_INPUT', message: 'The request body is not valid JSON: a JSON object was expected.' });
    expect((await send('POST', '/checkin', '{}', { 'content-type': 'application/json', 'content-encoding': 'gzip' })).error.message).toContain('Content-Encoding gzip');
    expect((await send('POST', '/checkin', '{}', { 'content-type': 'application/json; charset=latin1' })).error.message).toContain('must be UTF-8');
    // A trailing slash and a query string reach the same route.
    expect(await fetch(`${base}/agent/v1/checkin/?x=1`, { method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' }, body: JSON.stringify({ facts: machineFacts() }) }).then((r) => r.status)).toBe(200);
  });

  it('wakes a long-polling agent within moments of assessMachines', async () => {
    const key = await createKey({ description: 'on demand' });
    const { machineId, agent } = await enrollMachine(base, key.secret);
    const operator = await tokenFor(database, 'OPERATOR');

    const started = Date.now();
    const poll = agent.commands(20);
    // Queued only once the poll waits on the server: then nothing but the wake-up can deliver it
    // before the poll's 20 s are up.
    await longPollsOpen(api.url, 1);
    const requested = await graphql<{ assessMachines: Array<{ requested: boolean; commandId: string }> }>(
      api.url,
      'mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { machineId requested commandId reason } }',
      { token: operator, variables: { ids: [machineId] } },
    );
    const { commands } = await poll;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(commands).toEqual([{ id: requested.data!.assessMachines[0]!.commandId, kind: 'ASSESS' }]);
    // Delivered once: the next poll finds nothing.
    expect((await agent.commands(0)).commands).toEqual([]);
  });

  it('stops accepting a removed machine and refuses management of an unknown one', async () => {
    const key = await createKey({ description: 'removal' });
    const { machineId, agent } = await enrollMachine(base, key.secret);
    await agent.checkIn(machineFacts());
    const removed = await graphql(api.url, 'mutation($id: ID!) { removeMachine(machineId: $id) }', { token: admin, variables: { id: machineId } });
    expect(removed.data).toEqual({ removeMachine: machineId });
    await expect(agent.checkIn(machineFacts())).rejects.toBeInstanceOf(ServerRefusal);
    const gone = await graphql(api.url, 'mutation($id: ID!) { setMachineManagement(machineId: $id, enabled: false) { id } }', { token: admin, variables: { id: machineId } });
    expect(gone.errors?.[0]).toMatchObject({ message: `No machine with id ${machineId}.`, extensions: { code: 'NOT_FOUND' } });
  });

  it('announces a new assessment on machineChanged, for one machine or all', async () => {
    const key = await createKey({ description: 'subscribers' });
    const { machineId, agent } = await enrollMachine(base, key.secret);
    const client = createClient({ url: api.url.replace('http', 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${admin}` }, retryAttempts: 0 });
    type Changed = { machineChanged: { id: string; compliance: string; criticalAndSecurityCount: number } };
    let live = false;
    const received = new Promise<Changed['machineChanged']>((resolve, reject) => {
      client.subscribe<Changed>(
        { query: 'subscription($id: ID) { machineChanged(machineId: $id) { id compliance criticalAndSecurityCount } }', variables: { id: machineId } },
        {
          next: (message) => {
            live = true;
            if (message.data && message.data.machineChanged.compliance !== 'NOT_ASSESSED') resolve(message.data.machineChanged);
          },
          error: reject,
          complete: () => undefined,
        },
      );
    });
    // A report sent before the server listens for this subscription would be missed.
    const pubsub = await createFleetPubSub(database.sql);
    await subscriptionLive(() => pubsub.publish('machineChanged', { machineId }), () => live);
    await agent.sendReport(assessmentReport([pendingUpdate({ name: 'openssl', classification: 'SECURITY' })]));
    expect(await received).toEqual({ id: machineId, compliance: 'NON_COMPLIANT', criticalAndSecurityCount: 1 });
    await client.dispose();
  });
});
