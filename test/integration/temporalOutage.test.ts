import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ScheduleNotFoundError, WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { ensureUpgradeCommand } from '../../src/db/agentUpgrades.js';
import { connectTemporal, type TemporalClient } from '../../src/temporal/connection.js';
import { scheduleIds } from '../../src/workflows/config.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { connectTestDatabase, freshDatabase, graphql, startTestApi, tokenFor, type GraphQLResponse } from '../support/env.js';
import { enrollMachine, enrollmentKey } from '../support/machines.js';
import { startRestartableTemporal, type Restartable } from '../support/restartable.js';

/**
 * Temporal killed (SIGKILL) under a running API: every mutation that touches both PostgreSQL and
 * Temporal answers within seconds with SERVICE_UNAVAILABLE naming Temporal, and leaves the two
 * consistent: nothing changed in PostgreSQL (the change is undone), nothing left half done (a run
 * without a workflow). Once Temporal is back, the schedules follow their deployments by
 * themselves and the mutations work again.
 */
describe('mutations while Temporal is down', () => {
  let temporalServer: Restartable & { address: string };
  let api: ApiServer;
  let database: Database;
  let drop: () => Promise<void>;
  let token: string;
  let machineId: string;
  /** Machines with an older agent: one for an upgrade started before the outage, one for during it. */
  const outdated = {} as Record<'before' | 'during', string>;
  const credentials = {} as Record<'before' | 'during', string>;
  let upgradeBefore: string;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-temporal-outage-'));
  const NAMES = ['toPause', 'toResume', 'toUpdate', 'toDelete', 'toRun', 'running'] as const;
  const ids = {} as Record<(typeof NAMES)[number], string>;
  let runningRunId: string;
  let temporal: TemporalClient;

  const nextYear = new Date().getUTCFullYear() + 1;
  const input = (name: string, startAt = `${nextYear}-03-01T04:00:00Z`) => ({
    name,
    osType: 'LINUX',
    machineIds: [machineId],
    classifications: ['SECURITY'],
    windowMinutes: 30,
    schedule: { startAt, timeZone: 'UTC', recurrence: { frequency: 'DAILY' } },
  });

  async function send<T = Record<string, unknown>>(q: string, variables: Record<string, unknown> = {}) {
    const started = Date.now();
    const response = await graphql<T>(api.url, q, { token, variables });
    return { ...response, ms: Date.now() - started };
  }

  async function mutate<T>(q: string, variables: Record<string, unknown> = {}): Promise<T> {
    const response = await send<T>(q, variables);
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  /** The mutation failed fast, with the code and the dependency, and says what did not happen. */
  function expectTemporalUnavailable(response: GraphQLResponse & { ms: number }, notDone: RegExp) {
    expect(response.errors, JSON.stringify(response.errors)).toHaveLength(1);
    expect(response.errors![0]!.extensions).toEqual({ code: 'SERVICE_UNAVAILABLE', dependency: 'TEMPORAL' });
    expect(response.errors![0]!.message).toMatch(/^Temporal is unavailable: /);
    expect(response.errors![0]!.message).toMatch(notDone);
    expect(response.status).toBe(503);
    // Seconds, not the 18-22 s of the gRPC client's own retries.
    expect(response.ms).toBeLessThan(8000);
  }

  const deployment = async (id: string) =>
    (await database.sql<Array<{ name: string; paused: boolean; deleted_at: Date | null; schedule: { startAt: string } }>>`select name, paused, deleted_at, schedule from deployments where id = ${id}`)[0]!;

  beforeAll(async () => {
    temporalServer = await startRestartableTemporal();
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    // No worker: runs started here stay as Temporal has them, which is all these tests look at.
    const settings = { address: temporalServer.address, namespace: 'default', taskQueue: 'temporal-outage' };
    // A release of agent 0.9.0 to upgrade to (one stand-in executable).
    fs.mkdirSync(path.join(work, 'dist/executables'), { recursive: true });
    fs.writeFileSync(path.join(work, 'dist/executables/fleetpatch-agent-linux-x64'), 'executable');
    const sha256 = createHash('sha256').update('executable').digest('hex');
    fs.writeFileSync(path.join(work, 'dist/executables/manifest.json'), JSON.stringify({ version: '0.9.0', files: [{ platform: 'linux-x64', name: 'fleetpatch-agent-linux-x64', sha256, size: 10 }] }));
    api = await startTestApi(settings, { databaseUrl: fresh.url, agentDistribution: { distDir: path.join(work, 'dist'), releaseKeyFile: path.join(work, 'release-key.json') } });
    temporal = await connectTemporal(settings);
    token = await tokenFor(database, 'ADMIN');
    ({ machineId } = await enrollMachine(api.url, await enrollmentKey(database, 'outage'), { facts: { hostname: 'outage-01' }, updates: [pendingUpdate({ name: 'openssl', classification: 'SECURITY' })] }));

    for (const key of NAMES) {
      ids[key] = (await mutate<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input: input(key) })).createDeployment.id;
    }
    await mutate('mutation($id: ID!) { pauseDeployment(id: $id) { id } }', { id: ids.toResume });
    runningRunId = (await mutate<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: ids.running })).runDeploymentNow.id;
    for (const when of ['before', 'during'] as const) {
      ({ machineId: outdated[when], credential: credentials[when] } = await enrollMachine(api.url, await enrollmentKey(database, 'outdated'), { facts: { hostname: `outdated-${when}`, agentVersion: '0.1.0' } }));
    }
    upgradeBefore = (await mutate<{ upgradeAgents: { id: string; status: string } }>('mutation($ids: [ID!]!) { upgradeAgents(input: {machineIds: $ids}) { id status } }', { ids: [outdated.before] })).upgradeAgents.id;

    await temporalServer.kill();
  }, 240_000);

  afterAll(async () => {
    await temporal?.close();
    await api?.close();
    await database?.close();
    await drop?.();
    await temporalServer?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('createDeployment: nothing is created', async () => {
    const response = await send('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input: input('created while down') });
    expectTemporalUnavailable(response, /the deployment was not created/);
    expect(await database.sql`select 1 from deployments where name = 'created while down' and deleted_at is null`).toHaveLength(0);
    // The name is free again for the next try.
    expect(await database.sql`select 1 from deployments where name = 'created while down'`).toHaveLength(1);
  });

  it('pauseDeployment: the deployment stays active', async () => {
    expectTemporalUnavailable(await send('mutation($id: ID!) { pauseDeployment(id: $id) { id } }', { id: ids.toPause }), /the deployment was not paused/);
    expect((await deployment(ids.toPause)).paused).toBe(false);
    // The audit log says how it ended.
    expect(await database.sql`select outcome from audit_events where action = 'pauseDeployment' and target_id = ${ids.toPause}`).toEqual([{ outcome: 'SERVICE_UNAVAILABLE' }]);
  });

  it('resumeDeployment: the deployment stays paused', async () => {
    expectTemporalUnavailable(await send('mutation($id: ID!) { resumeDeployment(id: $id) { id } }', { id: ids.toResume }), /the deployment was not resumed/);
    expect((await deployment(ids.toResume)).paused).toBe(true);
  });

  it('updateDeployment: the deployment keeps its values', async () => {
    const response = await send('mutation($id: ID!, $input: DeploymentInput!) { updateDeployment(id: $id, input: $input) { id } }', { id: ids.toUpdate, input: input('renamed while down', `${nextYear}-04-01T06:00:00Z`) });
    expectTemporalUnavailable(response, /the deployment was not changed/);
    const row = await deployment(ids.toUpdate);
    expect(row.name).toBe('toUpdate');
    expect(row.schedule.startAt).toBe(new Date(`${nextYear}-03-01T04:00:00Z`).toISOString());
  });

  it('deleteDeployment: the deployment is still there', async () => {
    expectTemporalUnavailable(await send('mutation($id: ID!) { deleteDeployment(id: $id) }', { id: ids.toDelete }), /the deployment was not deleted/);
    expect((await deployment(ids.toDelete)).deleted_at).toBeNull();
  });

  it('runDeploymentNow: no run is left SCHEDULED without a workflow; the attempt shows as CANCELED with the reason', async () => {
    expectTemporalUnavailable(await send('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: ids.toRun }), /the run did not start/);
    const { deployment: shown } = await mutate<{ deployment: { lastRun: { status: string; error: string; endedAt: string | null } } }>('query($id: ID!) { deployment(id: $id) { lastRun { status error endedAt } } }', { id: ids.toRun });
    expect(shown.lastRun).toMatchObject({ status: 'CANCELED', error: expect.stringMatching(/Temporal was unavailable .*nothing ran/), endedAt: expect.any(String) });
  });

  it('cancelDeploymentRun: the run is not marked canceled', async () => {
    expectTemporalUnavailable(await send('mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }', { id: runningRunId }), /the run was not canceled/);
    const [run] = await database.sql`select ended_at from deployment_runs where id = ${runningRunId}`;
    expect(run!.ended_at).toBeNull();
  });

  it('runSelfCheck: no self-check is left waiting for a workflow that never started', async () => {
    expectTemporalUnavailable(await send('mutation { runSelfCheck { id } }'), /no self-check was started/);
    expect(await database.sql`select 1 from self_checks`).toHaveLength(0);
  });

  it('upgradeAgents: no upgrade is left IN_PROGRESS without a workflow; it shows as ended, no agent asked', async () => {
    const response = await send('mutation($ids: [ID!]!) { upgradeAgents(input: {machineIds: $ids}) { id } }', { ids: [outdated.during] });
    expectTemporalUnavailable(response, /the upgrade did not start/);
    const [upgrade] = await database.sql`select u.status, m.status as machine, m.message from agent_upgrades u join agent_upgrade_machines m on m.upgrade_id = u.id where m.machine_id = ${outdated.during}`;
    expect(upgrade).toMatchObject({ status: expect.not.stringMatching(/^IN_PROGRESS$/), machine: 'NOT_STARTED', message: expect.stringMatching(/Temporal was unavailable/) });
    expect(await database.sql`select 1 from agent_commands where machine_id = ${outdated.during}`).toHaveLength(0);
  });

  it('cancelAgentUpgrade: the upgrade is not marked canceled', async () => {
    expectTemporalUnavailable(await send('mutation($id: ID!) { cancelAgentUpgrade(id: $id) { id } }', { id: upgradeBefore }), /the upgrade was not canceled/);
    const [upgrade] = await database.sql`select status from agent_upgrades where id = ${upgradeBefore}`;
    expect(upgrade!.status).toBe('IN_PROGRESS');
  });

  it("an agent's upgrade report: stored and answered 503, so that the agent keeps it and sends it again until the upgrade step can be told", async () => {
    // The command the upgrade step hands over (there is no worker here: made as its activity makes it).
    const command = { version: '0.9.0', rollbackAfterSeconds: 180, artifacts: [] };
    const ensured = await ensureUpgradeCommand(database.db, { upgradeId: upgradeBefore, machineId: outdated.before, taskToken: Buffer.from('a task token').toString('base64'), command, reoffer: false });
    const report = { status: 'SUCCEEDED', code: 'UPGRADED', message: 'now 0.9.0', fromVersion: '0.1.0', toVersion: '0.9.0' };
    const started = Date.now();
    const answer = await fetch(`${api.url.replace('/graphql', '')}/agent/v1/upgrades/${ensured!.commandId}/result`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${credentials.before}` }, body: JSON.stringify(report) });
    expect(Date.now() - started).toBeLessThan(8000);
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('5');
    expect(await answer.json()).toEqual({ error: { code: 'SERVICE_UNAVAILABLE', message: expect.stringMatching(/^Temporal is unavailable/) } });
    const [stored] = await database.sql`select result from agent_commands where id = ${ensured!.commandId}`;
    expect(stored!.result).toMatchObject({ status: 'SUCCEEDED' });
  });

  it('assessMachines does not need Temporal and still works; queries show what they can, with nextRunAt unavailable', async () => {
    const assess = await send<{ assessMachines: Array<{ requested: boolean }> }>('mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { requested } }', { ids: [machineId] });
    expect(assess.errors).toBeUndefined();
    expect(assess.data!.assessMachines).toEqual([{ requested: true }]);
    const list = await send<{ deployments: { totalCount: number; edges: Array<{ node: { name: string; nextRunAt: string | null } }> } }>('{ deployments { totalCount edges { node { name nextRunAt } } } }');
    expect(list.status).toBe(200);
    expect(list.data!.deployments.totalCount).toBe(6);
    expect(new Set(list.errors!.map((e) => e.extensions?.code))).toEqual(new Set(['SERVICE_UNAVAILABLE']));
    expect(list.ms).toBeLessThan(8000);
  });

  it('once Temporal is back, the schedules follow their deployments by themselves and the mutations work again', async () => {
    await temporalServer.start();
    // The reconciler applies every row Temporal may have missed (each undone change is a change).
    await expect
      .poll(async () => Number((await database.sql`select count(*)::int as n from deployments where schedule_version <> schedule_synced_version`)[0]!.n), { timeout: 90_000, interval: 500 })
      .toBe(0);
    const describeSchedule = (id: string) => temporal.client.schedule.getHandle(scheduleIds.deployment(id)).describe();
    expect((await describeSchedule(ids.toPause)).state.paused).toBe(false);
    expect((await describeSchedule(ids.toResume)).state.paused).toBe(true);
    expect((await describeSchedule(ids.toUpdate)).spec.startAt?.toISOString()).toBe(new Date(`${nextYear}-03-01T04:00:00Z`).toISOString());
    await expect(describeSchedule(ids.toDelete)).resolves.toBeDefined();
    const [created] = await database.sql`select id from deployments where name = 'created while down'`;
    await expect(describeSchedule(created!.id as string)).rejects.toBeInstanceOf(ScheduleNotFoundError);
    // The run that could not start never started.
    const [canceledRun] = await database.sql`select workflow_id from deployment_runs where deployment_id = ${ids.toRun}`;
    await expect(temporal.client.workflow.getHandle(canceledRun!.workflow_id as string).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

    await expect.poll(async () => (await send('mutation($id: ID!) { pauseDeployment(id: $id) { paused } }', { id: ids.toPause })).data, { timeout: 20_000, interval: 500 }).toEqual({ pauseDeployment: { paused: true } });
    expect((await describeSchedule(ids.toPause)).state.paused).toBe(true);
  });
});
