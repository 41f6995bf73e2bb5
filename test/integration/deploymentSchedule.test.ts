import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { nextOccurrences } from '../../src/fleet/schedule.js';
import type { TemporalClient } from '../../src/temporal/connection.js';
import { scheduleIds } from '../../src/workflows/config.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack } from '../support/env.js';
import { enrollMachine } from '../support/machines.js';

/** A deployment's schedule is a real Temporal Schedule, kept in step with every change. */
describe('deployment schedules on the real Temporal server', () => {
  let stack: RunStack;
  let api: ApiServer;
  let temporal: TemporalClient;
  let database: Database;
  let token: string;
  let machineId: string;
  let secondMachineId: string;

  beforeAll(async () => {
    // Runs started here find no agent: a short heartbeat timeout ends them quickly.
    stack = await startRunStack({ env: { FLEETPATCH_INSTALL_HEARTBEAT_SECONDS: '3' } });
    ({ api, temporal, database } = stack);
    token = await stack.token('OPERATOR');
    const secret = await stack.enrollmentKey('schedules');
    const openssl = [pendingUpdate({ name: 'openssl', classification: 'SECURITY' })];
    machineId = (await enrollMachine(api.url, secret, { facts: { hostname: 'sched-01' }, updates: openssl })).machineId;
    secondMachineId = (await enrollMachine(api.url, secret, { facts: { hostname: 'sched-02' }, updates: openssl })).machineId;
  });

  afterAll(async () => {
    await stack?.close();
  });

  async function mutate<T>(q: string, variables: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(api.url, q, { token, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  const input = (name: string, schedule: Record<string, unknown>) => ({ name, osType: 'LINUX', machineIds: [machineId], classifications: ['SECURITY'], windowMinutes: 30, schedule });
  const nextYear = new Date().getUTCFullYear() + 1;
  const describeSchedule = (id: string) => temporal.client.schedule.getHandle(scheduleIds.deployment(id)).describe();

  it('follows update, pause, resume and delete', async () => {
    const weekly = { startAt: `${nextYear}-01-04T03:00:00+01:00`, timeZone: 'Europe/Paris', recurrence: { frequency: 'WEEKLY', weekDays: ['MONDAY', 'THURSDAY'] } };
    const { createDeployment } = await mutate<{ createDeployment: { id: string; nextRunAt: string; schedule: { description: string } } }>(
      'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id nextRunAt schedule { description } } }',
      { input: input('weekly patching', weekly) },
    );
    const id = createDeployment.id;
    expect(createDeployment.nextRunAt).toBe(new Date(`${nextYear}-01-04T02:00:00Z`).toISOString());
    expect(createDeployment.schedule.description).toMatch(/Monday.*Thursday.*03:00.*Europe\/Paris/);
    expect((await describeSchedule(id)).spec.timezone).toBe('Europe/Paris');

    const daily = { startAt: `${nextYear}-02-01T05:30:00Z`, timeZone: 'UTC', recurrence: { frequency: 'DAILY' } };
    const { updateDeployment } = await mutate<{ updateDeployment: { nextRunAt: string } }>('mutation($id: ID!, $input: DeploymentInput!) { updateDeployment(id: $id, input: $input) { nextRunAt } }', { id, input: input('weekly patching', daily) });
    expect(updateDeployment.nextRunAt).toBe(nextOccurrences({ startAt: new Date(daily.startAt), timeZone: 'UTC', recurrence: { frequency: 'DAILY', every: 1 }, endAt: null }, new Date(), 1)[0]!.toISOString());

    const paused = await mutate<{ pauseDeployment: { paused: boolean; nextRunAt: string | null } }>('mutation($id: ID!) { pauseDeployment(id: $id) { paused nextRunAt } }', { id });
    expect(paused.pauseDeployment).toEqual({ paused: true, nextRunAt: null });
    expect((await describeSchedule(id)).state.paused).toBe(true);
    await mutate('mutation($id: ID!) { resumeDeployment(id: $id) { paused } }', { id });
    expect((await describeSchedule(id)).state.paused).toBe(false);

    await mutate('mutation($id: ID!) { deleteDeployment(id: $id) }', { id });
    await expect(describeSchedule(id)).rejects.toBeInstanceOf(ScheduleNotFoundError);
    expect((await graphql(api.url, 'query($id: ID!) { deployment(id: $id) { id } }', { token, variables: { id } })).data).toEqual({ deployment: null });
  });

  it('fires a recurring schedule more than once (three hours of an hourly schedule, backfilled)', async () => {
    const { createDeployment } = await mutate<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      input: input('hourly', { recurrence: { frequency: 'HOURLY' } }),
    });
    const id = createDeployment.id;
    // As if the schedule had been created four hours ago (its first run is 30 minutes after
    // creation), then backfilled: Temporal acts as if it had been running over the last three hours.
    const handle = temporal.client.schedule.getHandle(scheduleIds.deployment(id));
    const end = new Date();
    await handle.update((previous) => ({ ...previous, spec: { ...previous.spec, startAt: new Date(end.getTime() - 4 * 3600_000) } }));
    await handle.backfill({ start: new Date(end.getTime() - 3 * 3600_000 + 1000), end, overlap: ScheduleOverlapPolicy.ALLOW_ALL });
    type Runs = { deployment: { runs: { totalCount: number; edges: Array<{ node: { trigger: string; status: string; machineRuns: { edges: Array<{ node: { error: string | null } }> } } }> } } };
    const runs = async () => (await graphql<Runs>(api.url, 'query($id: ID!) { deployment(id: $id) { runs { totalCount edges { node { trigger status machineRuns { edges { node { error } } } } } } } }', { token, variables: { id } })).data!.deployment.runs;
    await expect.poll(async () => (await runs()).edges.filter((e) => !['SCHEDULED', 'IN_PROGRESS'].includes(e.node.status)).length, { timeout: 60_000, interval: 500 }).toBe(3);
    const done = await runs();
    expect(done.totalCount).toBe(3);
    for (const { node } of done.edges) {
      expect(node).toMatchObject({ trigger: 'SCHEDULE', status: 'FAILED' });
      // No agent answers for sched-01: each run says so.
      expect(node.machineRuns.edges[0]!.node.error).toMatch(/The agent stopped reporting/);
    }
  });

  type MachineRunView = { machineName: string; status: string; error: string | null };
  type RunView = { deploymentRun: { status: string; machineRuns: { edges: Array<{ node: MachineRunView }> } } };
  const runView = async (id: string) => {
    const run = (await graphql<RunView>(api.url, 'query($id: ID!) { deploymentRun(id: $id) { status machineRuns { edges { node { machineName status error } } } } }', { token, variables: { id } })).data!.deploymentRun;
    return { status: run.status, machineRuns: run.machineRuns.edges.map((e) => e.node) };
  };

  it('starts one machine at a time and no new one once max failures is reached', async () => {
    const { createDeployment } = await mutate<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      input: { ...input('one at a time', {}), machineIds: [machineId, secondMachineId], maxConcurrent: { value: 1 }, maxFailures: { value: 50, unit: 'PERCENT' } },
    });
    const { runDeploymentNow } = await mutate<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    // Midway, only the first machine has started.
    await expect.poll(async () => (await runView(runDeploymentNow.id)).machineRuns.map((m) => m.status), { timeout: 10_000, interval: 100 }).toEqual(['IN_PROGRESS', 'PENDING']);
    await expect.poll(async () => (await runView(runDeploymentNow.id)).status, { timeout: 30_000, interval: 250 }).toBe('FAILED');
    const run = await runView(runDeploymentNow.id);
    expect(run.machineRuns[0]).toMatchObject({ machineName: 'sched-01', status: 'FAILED' });
    expect(run.machineRuns[1]).toMatchObject({ machineName: 'sched-02', status: 'NOT_STARTED', error: expect.stringContaining("reaching the deployment's maximum failures") });
  });

  it('cancels a run: its machines end CANCELED and nothing is left waiting', async () => {
    const { createDeployment } = await mutate<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input: input('to cancel', {}) });
    const { runDeploymentNow } = await mutate<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    await expect.poll(async () => (await runView(runDeploymentNow.id)).machineRuns.map((m) => m.status), { timeout: 10_000, interval: 100 }).toEqual(['IN_PROGRESS']);
    await mutate('mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }', { id: runDeploymentNow.id });
    await expect.poll(async () => (await runView(runDeploymentNow.id)).status, { timeout: 20_000, interval: 250 }).toBe('CANCELED');
    expect((await runView(runDeploymentNow.id)).machineRuns[0]).toMatchObject({ status: 'CANCELED' });
    const [job] = await database.sql`select canceled_at from agent_commands where kind = 'INSTALL' and machine_run_id = (select id from machine_runs where run_id = ${runDeploymentNow.id})`;
    expect(job!.canceled_at).not.toBeNull();
    const again = await graphql(api.url, 'mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }', { token, variables: { id: runDeploymentNow.id } });
    expect(again.errors?.[0]).toMatchObject({ extensions: { code: 'CONFLICT' }, message: expect.stringContaining('already ended (CANCELED)') });
  });
});
