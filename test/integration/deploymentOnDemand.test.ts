import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { TemporalClient } from '../../src/temporal/connection.js';
import { scheduleIds } from '../../src/workflows/config.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack } from '../support/env.js';
import { enrollMachine } from '../support/machines.js';

interface DeploymentView {
  id: string;
  onDemandOnly: boolean;
  nextRunAt: string | null;
  paused: boolean;
  schedule: { description: string } | null;
}
interface PreviewView {
  nextRunAt: string | null;
  onDemandOnly: boolean;
  scheduleDescription: string;
}

const DEPLOYMENT = 'id onDemandOnly nextRunAt paused schedule { description }';
const PREVIEW = 'nextRunAt onDemandOnly scheduleDescription';

/**
 * Deployments run on demand only, and what a deployment says about its next scheduled run (issue
 * 20, item 15: one created with the default schedule and started with runDeploymentNow ran a second
 * time 30 minutes later). The real Temporal server and a worker; runs end quickly (no agent answers).
 */
describe('deployments run on demand only', () => {
  let stack: RunStack;
  let api: ApiServer;
  let temporal: TemporalClient;
  let token: string;
  let machineId: string;

  beforeAll(async () => {
    stack = await startRunStack({ env: { FLEETPATCH_INSTALL_HEARTBEAT_SECONDS: '3' } });
    ({ api, temporal } = stack);
    token = await stack.token('OPERATOR');
    ({ machineId } = await enrollMachine(api.url, await stack.enrollmentKey('on demand'), { facts: { hostname: 'demand-01' }, updates: [pendingUpdate({ name: 'openssl', classification: 'SECURITY' })] }));
  });

  afterAll(async () => {
    await stack?.close();
  });

  async function mutate<T>(q: string, variables: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(api.url, q, { token, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  const input = (name: string, extra: Record<string, unknown> = {}) => ({ name, osType: 'LINUX', machineIds: [machineId], classifications: ['SECURITY'], windowMinutes: 30, ...extra });
  const create = async (extra: Parameters<typeof input>[1] & { name: string }) =>
    (await mutate<{ createDeployment: DeploymentView }>(`mutation($input: DeploymentInput!) { createDeployment(input: $input) { ${DEPLOYMENT} } }`, { input: input(extra.name, extra) })).createDeployment;
  const preview = async (id: string) => (await mutate<{ previewDeployment: PreviewView }>(`query($id: ID!) { previewDeployment(id: $id) { ${PREVIEW} } }`, { id })).previewDeployment;
  const runs = async (id: string) =>
    (await mutate<{ deployment: { runs: { edges: Array<{ node: { trigger: string; status: string } }> } } }>('query($id: ID!) { deployment(id: $id) { runs { edges { node { trigger status } } } } }', { id })).deployment.runs.edges.map((e) => e.node);
  const runNow = async (id: string) => (await mutate<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id })).runDeploymentNow.id;
  const temporalSchedule = (id: string) => temporal.client.schedule.getHandle(scheduleIds.deployment(id));

  it('has no schedule and no next run; it runs when started, and nothing starts it again', async () => {
    const deployment = await create({ name: 'on demand', onDemandOnly: true });
    expect(deployment).toMatchObject({ onDemandOnly: true, nextRunAt: null, schedule: null, paused: false });
    expect(await preview(deployment.id)).toEqual({ nextRunAt: null, onDemandOnly: true, scheduleDescription: expect.stringMatching(/^On demand only: no scheduled run/) });
    const described = await temporalSchedule(deployment.id).describe();
    expect(described.info.nextActionTimes).toEqual([]);

    await runNow(deployment.id);
    await expect.poll(async () => (await runs(deployment.id)).map((r) => `${r.trigger} ${r.status}`), { timeout: 30_000, interval: 250 }).toEqual(['MANUAL FAILED']);
    // Temporal has nothing to start later: no next action, none taken.
    const after = await temporalSchedule(deployment.id).describe();
    expect(after.info.nextActionTimes).toEqual([]);
    expect(after.info.numActionsTaken).toBe(0);
  }, 60_000);

  it('with the default schedule, says after Run now that a scheduled run still comes, and when', async () => {
    const deployment = await create({ name: 'default schedule' });
    expect(deployment.onDemandOnly).toBe(false);
    await runNow(deployment.id);
    const said = await preview(deployment.id);
    expect(said).toMatchObject({ onDemandOnly: false, scheduleDescription: expect.stringMatching(/^Once on \d{4}-\d\d-\d\d at \d\d:\d\d UTC$/) });
    // Temporal's own next run: the one-off schedule, about 30 minutes after creation.
    const inMinutes = (Date.parse(said.nextRunAt!) - Date.now()) / 60_000;
    expect(inMinutes).toBeGreaterThan(28);
    expect(inMinutes).toBeLessThanOrEqual(31);
    expect(said.nextRunAt).toBe((await temporalSchedule(deployment.id).describe()).info.nextActionTimes[0]!.toISOString());
  });

  it('moves between a schedule and on demand, and pauses and resumes either way', async () => {
    const deployment = await create({ name: 'back and forth', onDemandOnly: true });
    const startAt = new Date(Date.now() + 2 * 3600_000);
    startAt.setUTCSeconds(0, 0);
    const update = (extra: Record<string, unknown>) =>
      mutate<{ updateDeployment: DeploymentView }>(`mutation($id: ID!, $input: DeploymentInput!) { updateDeployment(id: $id, input: $input) { ${DEPLOYMENT} } }`, { id: deployment.id, input: input('back and forth', extra) });

    const scheduled = (await update({ schedule: { startAt: startAt.toISOString() } })).updateDeployment;
    expect(scheduled).toMatchObject({ onDemandOnly: false, nextRunAt: startAt.toISOString(), schedule: { description: expect.stringMatching(/^Once on/) } });
    expect((await preview(deployment.id)).nextRunAt).toBe(startAt.toISOString());

    const onDemand = (await update({ onDemandOnly: true })).updateDeployment;
    expect(onDemand).toMatchObject({ onDemandOnly: true, nextRunAt: null, schedule: null });
    expect((await temporalSchedule(deployment.id).describe()).info.nextActionTimes).toEqual([]);

    expect((await mutate<{ pauseDeployment: DeploymentView }>(`mutation($id: ID!) { pauseDeployment(id: $id) { ${DEPLOYMENT} } }`, { id: deployment.id })).pauseDeployment).toMatchObject({ paused: true, nextRunAt: null });
    expect((await mutate<{ resumeDeployment: DeploymentView }>(`mutation($id: ID!) { resumeDeployment(id: $id) { ${DEPLOYMENT} } }`, { id: deployment.id })).resumeDeployment).toMatchObject({ paused: false, nextRunAt: null });
    // And back to a schedule: the one-off run is there again.
    expect((await update({ schedule: { startAt: startAt.toISOString() } })).updateDeployment.nextRunAt).toBe(startAt.toISOString());
  });

  it('refuses a schedule beside onDemandOnly, at the schedule field', async () => {
    const response = await graphql(api.url, 'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      token,
      variables: { input: input('both', { onDemandOnly: true, schedule: { recurrence: { frequency: 'DAILY' } } }) },
    });
    expect(response.errors?.[0]).toMatchObject({
      message: 'a deployment run on demand only has no schedule: leave schedule out, or set onDemandOnly to false to schedule it',
      extensions: { code: 'BAD_USER_INPUT', field: 'schedule' },
    });
    // Previewing an input says the same as creating it would.
    const previewed = await graphql<{ previewDeployment: PreviewView }>(api.url, `query($input: DeploymentInput!) { previewDeployment(input: $input) { ${PREVIEW} } }`, { token, variables: { input: input('typed in', { onDemandOnly: true }) } });
    expect(previewed.data!.previewDeployment).toEqual({ nextRunAt: null, onDemandOnly: true, scheduleDescription: expect.stringMatching(/^On demand only/) });
  });

  it('says, for a schedule as typed in a form, when it would run', async () => {
    type Forecast = { scheduleForecast: { onDemandOnly: boolean; description: string; nextRuns: string[] } };
    const q = 'query($schedule: ScheduleInput, $onDemandOnly: Boolean, $count: Int) { scheduleForecast(schedule: $schedule, onDemandOnly: $onDemandOnly, count: $count) { onDemandOnly description nextRuns } }';
    const asked = async (variables: Record<string, unknown>) => graphql<Forecast>(api.url, q, { token, variables });
    const byDefault = (await asked({})).data!.scheduleForecast;
    expect(byDefault.nextRuns).toHaveLength(1);
    expect((Date.parse(byDefault.nextRuns[0]!) - Date.now()) / 60_000).toBeGreaterThan(29);
    expect((await asked({ onDemandOnly: true })).data!.scheduleForecast).toEqual({ onDemandOnly: true, description: expect.stringMatching(/^On demand only/), nextRuns: [] });
    const hourly = (await asked({ schedule: { recurrence: { frequency: 'HOURLY', every: 2 } }, count: 3 })).data!.scheduleForecast;
    expect(hourly.nextRuns.map((r) => (Date.parse(r) - Date.parse(hourly.nextRuns[0]!)) / 3600_000)).toEqual([0, 2, 4]);
    expect((await asked({ schedule: { timeZone: 'Mars/Olympus' } })).errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'schedule.timeZone' } });
    expect((await asked({ count: 11 })).errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'count' } });
  });
});
