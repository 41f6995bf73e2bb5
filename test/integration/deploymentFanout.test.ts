import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../src/activities/index.js';
import type { AgentClient } from '../../src/agent/client.js';
import type { AgentCommand, InstallJob, JobResult } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { createFleetPubSub, type FleetPubSub } from '../../src/events/pubsub.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack, waitUntil } from '../support/env.js';
import { enrollMachines } from '../support/machines.js';

interface Agent {
  name: string;
  machineId: string;
  client: AgentClient;
  /** Every INSTALL job this agent was handed, in order. */
  installs: AgentCommand[];
}

/** Every update of the job SUCCEEDED, as an agent whose installs take no time reports it. */
function succeeded(job: InstallJob): JobResult {
  const at = new Date().toISOString();
  return {
    updates: job.updates.map((u) => ({ name: u.name, arch: u.arch, status: 'SUCCEEDED', exitCode: 0, errorText: null, reason: null, installedVersion: u.availableVersion, startedAt: at, endedAt: at })),
    rebootRequired: false,
    rebooting: false,
    timedOut: false,
    error: null,
    bootId: 'boot-1',
  };
}

/**
 * Handing jobs over in bulk: a batched run (docs/deployments.md) starts its machines a page at a
 * time, and a run of child workflows (the shape of runs begun before, and of runs with steps)
 * hands over its first machines' jobs before any machine run's workflow starts, each workflow
 * attaching to its job. Real PostgreSQL, the real Temporal dev server, the API over HTTP, agents
 * speaking the agent protocol; the activities alone where the moment matters (a cancel before a
 * child started, a result before a child attached).
 */
describe('deployment fan-out: jobs handed over in bulk', () => {
  let stack: RunStack;
  let database: Database;
  let api: ApiServer;
  let pubsub: FleetPubSub;
  let admin: string;
  let enrollKey: string;
  let counter = 0;

  beforeAll(async () => {
    stack = await startRunStack({ workerIdentity: 'fanout-worker' });
    ({ database, api } = stack);
    pubsub = await createFleetPubSub(database.sql);
    admin = await stack.token('ADMIN');
    enrollKey = await stack.enrollmentKey('fan-out');
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(api.url, q, { token: admin, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  /** Machines enrolled and assessed, each with two pending security updates. */
  async function enroll(count: number): Promise<Agent[]> {
    const updates = [0, 1].map((i) => pendingUpdate({ name: `fanout-lib-${i}`, classification: 'SECURITY', availableVersion: `1.${i}-2`, installedVersion: `1.${i}-1` }));
    const machines = await enrollMachines(api.url, enrollKey, Array.from({ length: count }, () => ({ facts: { hostname: `fanout-${++counter}`, bootId: 'boot-1' }, updates })));
    return machines.map((m) => ({ name: m.name, machineId: m.machineId, client: m.agent, installs: [] }));
  }

  async function createDeployment(name: string, agents: Agent[], extra: Record<string, unknown> = {}): Promise<string> {
    const input = { name, osType: 'LINUX', machineIds: agents.map((a) => a.machineId), classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER', ...extra };
    return (await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input })).createDeployment.id;
  }

  /** One look at the agent's commands (no waiting), keeping its INSTALL jobs. */
  async function poll(agent: Agent): Promise<AgentCommand[]> {
    const installs = (await agent.client.commands(0)).commands.filter((c) => c.kind === 'INSTALL');
    agent.installs.push(...installs);
    return installs;
  }

  const jobsOfRun = (runId: string) =>
    database.sql<Array<{ machine_id: string; task_token: string | null; canceled_at: Date | null }>>`
      select c.machine_id, c.task_token, c.canceled_at from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId} and c.kind = 'INSTALL'`;

  const runStatus = async (runId: string) => (await query<{ deploymentRun: { status: string } }>('query($id: ID!) { deploymentRun(id: $id) { status } }', { id: runId })).deploymentRun.status;

  it('hands over as many jobs as may run at once, no more; the next machine starts as one ends, and the run completes', async () => {
    const agents = await enroll(3);
    const deploymentId = await createDeployment('fan-out concurrency', agents, { maxConcurrent: { value: 2, unit: 'COUNT' } });
    const runId = (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId })).runDeploymentNow.id;

    // Two jobs, handed over together (one transaction); the third machine waits for a free place,
    // which only a result makes: nothing is answered yet, so there are two jobs and no more.
    await waitUntil(() => jobsOfRun(runId), (jobs) => jobs.length >= 2, 60_000, 'two install jobs');
    expect(await jobsOfRun(runId)).toHaveLength(2);
    const statuses = await database.sql<Array<{ status: string }>>`select status from machine_runs where run_id = ${runId}`;
    expect(statuses.map((s) => s.status).sort()).toEqual(['IN_PROGRESS', 'IN_PROGRESS', 'PENDING']);

    // Agents answer what they get; the third machine's job comes once a slot is free.
    await waitUntil(
      async () => {
        for (const agent of agents) for (const job of await poll(agent)) await agent.client.sendJobResult(job.id, succeeded(job.install!));
        return runStatus(runId);
      },
      (status) => status === 'SUCCEEDED',
      60_000,
      'the run to succeed',
    );
    expect(agents.map((a) => a.installs.length)).toEqual([1, 1, 1]);
    const results = await database.sql<Array<{ status: string; n: number }>>`select status, count(*)::int as n from update_results where run_id = ${runId} group by status`;
    expect(results).toEqual([{ status: 'SUCCEEDED', n: 6 }]);
    // finishMachineRun asked every machine for a fresh assessment.
    const assess = await database.sql<Array<{ n: number }>>`select count(distinct machine_id)::int as n from agent_commands where kind = 'ASSESS' and machine_id in ${database.sql(agents.map((a) => a.machineId))}`;
    expect(assess[0]!.n).toBe(3);
  }, 120_000);

  it('a canceled run withdraws the handed-over jobs: no agent receives one afterwards', async () => {
    const agents = await enroll(3);
    const deploymentId = await createDeployment('fan-out cancel', agents);
    const runId = (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId })).runDeploymentNow.id;
    await waitUntil(() => jobsOfRun(runId), (jobs) => jobs.length === 3, 60_000, 'three handed-over jobs');
    await query('mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }', { id: runId });
    await waitUntil(() => runStatus(runId), (status) => status === 'CANCELED', 60_000, 'the run to be canceled');
    expect((await jobsOfRun(runId)).every((j) => j.canceled_at !== null)).toBe(true);
    for (const agent of agents) expect(await poll(agent)).toEqual([]);
    const machineRuns = await database.sql<Array<{ status: string }>>`select status from machine_runs where run_id = ${runId}`;
    expect(machineRuns.map((m) => m.status)).toEqual(['CANCELED', 'CANCELED', 'CANCELED']);
  }, 120_000);

  /** The parent's first steps, run as activities: the run begun and its first machines' jobs handed over, no child started. */
  async function handedOverRun(name: string, agents: Agent[]) {
    const activities = createActivities({ db: database.db, pubsub, workerIdentity: 'test' });
    const deploymentId = await createDeployment(name, agents);
    const begun = await activities.beginDeploymentRun({ deploymentId, workflowId: `test-${name}`, trigger: 'MANUAL' });
    expect(await activities.handOverInstallJobs({ runId: begun.runId, machineRunIds: begun.machines.map((m) => m.machineRunId), graceSeconds: 60 })).toEqual({ handedOver: agents.length });
    // A retried hand-over changes nothing.
    expect(await activities.handOverInstallJobs({ runId: begun.runId, machineRunIds: begun.machines.map((m) => m.machineRunId), graceSeconds: 60 })).toEqual({ handedOver: agents.length });
    expect(await jobsOfRun(begun.runId)).toHaveLength(agents.length);
    return { activities, begun };
  }

  it('a cancel before a machine\'s child started cancels its handed-over job, also when its agent already took it', async () => {
    const agents = await enroll(2);
    const { activities, begun } = await handedOverRun('fan-out cancel before children', agents);
    const [taken] = await poll(agents[0]!);
    expect(taken?.install?.updates.map((u) => u.name)).toEqual(['fanout-lib-0', 'fanout-lib-1']);

    // What the parent does on a cancel before starting these children: every unstarted machine to finishDeploymentRun.
    const status = await activities.finishDeploymentRun({ runId: begun.runId, canceled: true, notStarted: begun.machines.map((m) => m.machineRunId), notStartedReason: 'The run was canceled.' });
    expect(status).toBe('CANCELED');
    expect((await jobsOfRun(begun.runId)).every((j) => j.canceled_at !== null)).toBe(true);
    // The agent that had not taken its job never gets it; a late result of the other is refused (the
    // agent drops the job: nothing more of it, no reboot) and changes no update.
    expect(await poll(agents[1]!)).toEqual([]);
    await expect(agents[0]!.client.sendJobResult(taken!.id, succeeded(taken!.install!))).rejects.toMatchObject({ status: 409, code: 'CONFLICT' });
    const results = await database.sql<Array<{ status: string }>>`select distinct status from update_results where run_id = ${begun.runId}`;
    expect(results.map((r) => r.status)).toEqual(['NOT_ATTEMPTED']);
  }, 60_000);

  it('a result that arrives before the child attaches is kept, once, and completes the child\'s install step at once', async () => {
    const agents = await enroll(1);
    const { begun } = await handedOverRun('fan-out early result', agents);
    const [job] = await poll(agents[0]!);
    expect(await agents[0]!.client.sendJobResult(job!.id, succeeded(job!.install!))).toEqual({ accepted: true });
    // Resent (the agent did not see the answer): kept once.
    expect(await agents[0]!.client.sendJobResult(job!.id, succeeded(job!.install!))).toEqual({ accepted: false });

    // The child's dispatchInstall, started only now (and retried): it returns the stored result instead of waiting.
    const activities = createActivities({ db: database.db, pubsub, workerIdentity: 'test' });
    const machineRunId = begun.machines[0]!.machineRunId;
    for (let attempt = 0; attempt < 2; attempt++) {
      const result = (await new MockActivityEnvironment().run(activities.dispatchInstall, { machineRunId, graceSeconds: 60 })) as JobResult;
      expect(result.updates.map((u) => [u.name, u.status])).toEqual([
        ['fanout-lib-0', 'SUCCEEDED'],
        ['fanout-lib-1', 'SUCCEEDED'],
      ]);
    }
    expect(await jobsOfRun(begun.runId)).toHaveLength(1);
    const results = await database.sql<Array<{ status: string }>>`select status from update_results where machine_run_id = ${machineRunId}`;
    expect(results.map((r) => r.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    const learned = await database.sql<Array<{ samples: number }>>`select samples from update_durations where machine_id = ${agents[0]!.machineId}`;
    expect(learned.map((l) => l.samples)).toEqual([1, 1]);
  }, 60_000);

  it('hands an apt machine the reboot reserve its preview shows: IF_REQUIRED keeps it, MAYBE, because any Debian package may ask for a reboot', async () => {
    const agents = await enroll(1);
    const deploymentId = await createDeployment('fan-out reboot reserve', agents, { rebootSetting: 'IF_REQUIRED' });
    const { previewDeployment } = await query<{ previewDeployment: { machines: Array<{ willReboot: string; rebootReserveSeconds: number; toInstall: Array<{ name: string }> }> } }>(
      'query($id: ID!) { previewDeployment(id: $id) { machines { willReboot rebootReserveSeconds toInstall { name } } } }',
      { id: deploymentId },
    );
    expect(previewDeployment.machines).toEqual([{ willReboot: 'MAYBE', rebootReserveSeconds: 600, toInstall: [{ name: 'fanout-lib-0' }, { name: 'fanout-lib-1' }] }]);

    const runId = (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId })).runDeploymentNow.id;
    const [job] = await waitUntil(() => poll(agents[0]!), (jobs) => jobs.length === 1, 60_000, 'the install job');
    expect(job!.install).toMatchObject({ rebootSetting: 'IF_REQUIRED', rebootReserveSeconds: 600 });
    await agents[0]!.client.sendJobResult(job!.id, succeeded(job!.install!));
    await waitUntil(() => runStatus(runId), (status) => status === 'SUCCEEDED', 60_000, 'the run to succeed');
  }, 120_000);
});
