import fs from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import type { AgentCommand, InstallJob, JobResult } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import type { TemporalClient } from '../../src/temporal/connection.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack, waitUntil } from '../support/env.js';

interface Agent {
  name: string;
  machineId: string;
  client: AgentClient;
  /** Every INSTALL job this agent was handed, in order. */
  installs: InstallJob[];
}

interface RunView {
  status: string;
  error: string | null;
  updateSet: Array<{ name: string; version: string }> | null;
  rings: Array<{ ring: number; name: string; definition: { gate: { soakSeconds: number; requireApproval: boolean } }; status: string; machineCount: number; failedCount: number | null; soakEndsAt: string | null; reason: string | null; decidedBy: string | null }>;
  machineRuns: Array<{ machineName: string; ring: number | null; status: string; updates: Array<{ name: string; targetVersion: string; status: string; reason: string | null }> }>;
}

const RUN = 'status error updateSet { name version } rings { ring name definition { gate { soakSeconds requireApproval } } status machineCount failedCount soakEndsAt reason decidedBy } machineRuns(first: 50) { edges { node { machineName ring status updates { name targetVersion status reason } } } }';

/** Each update of the job as its agent reports it: SUCCEEDED, or FAILED for the names in `failing`. */
function resultOf(job: InstallJob, failing: string[] = []): JobResult {
  const at = new Date().toISOString();
  return {
    updates: job.updates.map((u) =>
      failing.includes(u.name)
        ? { name: u.name, arch: u.arch, status: 'FAILED', exitCode: 100, errorText: `E: ${u.name} is broken`, reason: null, installedVersion: u.installedVersion, startedAt: at, endedAt: at }
        : { name: u.name, arch: u.arch, status: 'SUCCEEDED', exitCode: 0, errorText: null, reason: null, installedVersion: u.availableVersion, startedAt: at, endedAt: at },
    ),
    rebootRequired: false,
    rebooting: false,
    timedOut: false,
    error: null,
    bootId: 'boot-1',
  };
}

/**
 * Rollouts in rings (issue 16, items 1 and 2): the real Temporal dev server, a real worker (stopped
 * and started again while a ring waits), PostgreSQL, the API over HTTP, and agents speaking the agent
 * protocol that install instantly (and fail where told). Gates wait in Temporal (a timer for the
 * soak, a signal for approval or resume); approvals, rejections and resumes come over GraphQL.
 */
describe('deployments in rings', () => {
  let stack: RunStack;
  let database: Database;
  let api: ApiServer;
  let temporal: TemporalClient;
  let operator: string;
  let viewer: string;
  let enrollKey: string;
  let counter = 0;

  beforeAll(async () => {
    stack = await startRunStack({ workerIdentity: 'rings-worker-1' });
    ({ database, api, temporal } = stack);
    operator = await stack.token('OPERATOR');
    viewer = await stack.token('VIEWER');
    enrollKey = await stack.enrollmentKey('rings');
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  async function query<T>(q: string, variables?: Record<string, unknown>, token = operator): Promise<T> {
    const response = await graphql<T>(api.url, q, { token, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  const firstError = async (q: string, variables: Record<string, unknown>, token = operator) => (await graphql(api.url, q, { token, variables })).errors?.[0];

  const initialUpdates = () => [
    pendingUpdate({ name: 'ringlib', classification: 'SECURITY', installedVersion: '1.0-1', availableVersion: '1.1-1' }),
    pendingUpdate({ name: 'zlib1g', classification: 'SECURITY', installedVersion: '2.0-1', availableVersion: '2.0-2' }),
  ];

  async function enroll(count: number): Promise<Agent[]> {
    const base = api.url.replace('/graphql', '');
    const agents: Agent[] = [];
    for (let i = 0; i < count; i++) {
      const name = `ring-${++counter}`;
      const enrolled = await new AgentClient(base).enroll(enrollKey, machineFacts({ hostname: name, bootId: 'boot-1' }));
      const client = new AgentClient(base, enrolled.credential);
      await client.sendReport(assessmentReport(initialUpdates()));
      agents.push({ name, machineId: enrolled.machineId, client, installs: [] });
    }
    return agents;
  }

  async function createDeployment(name: string, agents: Agent[], rings: unknown[]): Promise<string> {
    const input = { name, osType: 'LINUX', machineIds: agents.map((a) => a.machineId), classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER', onDemandOnly: true, rings };
    return (await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input })).createDeployment.id;
  }

  const runNow = async (deploymentId: string) => (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId })).runDeploymentNow.id;
  const run = async (runId: string): Promise<RunView> => {
    const { machineRuns, ...rest } = (await query<{ deploymentRun: Omit<RunView, 'machineRuns'> & { machineRuns: { edges: Array<{ node: RunView['machineRuns'][number] }> } } }>(`query($id: ID!) { deploymentRun(id: $id) { ${RUN} } }`, { id: runId }, viewer)).deploymentRun;
    return { ...rest, machineRuns: machineRuns.edges.map((e) => e.node) };
  };

  /** One look at the agent's commands (no waiting): its new INSTALL jobs, each answered at once. */
  async function answer(agent: Agent, failing: string[] = []): Promise<AgentCommand[]> {
    const installs = (await agent.client.commands(0)).commands.filter((c) => c.kind === 'INSTALL');
    for (const job of installs) {
      agent.installs.push(job.install!);
      await agent.client.sendJobResult(job.id, resultOf(job.install!, failing));
    }
    return installs;
  }

  /** Answers every agent's jobs until the run looks as `done` wants. */
  const untilRun = (runId: string, agents: Agent[], done: (view: RunView) => boolean, what: string, failing: Record<string, string[]> = {}) =>
    waitUntil(
      async () => {
        for (const agent of agents) await answer(agent, failing[agent.name] ?? []);
        return run(runId);
      },
      done,
      60_000,
      what,
    );

  const ringStatuses = (view: RunView) => view.rings.map((r) => r.status);

  /** RECORD_HISTORY=<dir> saves the run workflow's history for the replay test (test/history_files/). */
  async function recordHistory(runId: string, file: string): Promise<void> {
    const dir = process.env.RECORD_HISTORY;
    if (!dir) return;
    const [row] = await database.sql<Array<{ workflow_id: string }>>`select workflow_id from deployment_runs where id = ${runId}`;
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, file), historyToJSON(await temporal.client.workflow.getHandle(row!.workflow_id).fetchHistory()));
  }
  /** The run workflow's history: its length, and whether its last workflow task is done (nothing more to come until something happens). */
  const history = async (runId: string) => {
    const [row] = await database.sql<Array<{ workflow_id: string }>>`select workflow_id from deployment_runs where id = ${runId}`;
    const events = (await temporal.client.workflow.getHandle(row!.workflow_id).fetchHistory()).events!;
    return { length: events.length, idle: Boolean(events.at(-1)?.workflowTaskCompletedEventAttributes) };
  };

  it('runs three rings: the canary soaks, the second waits for an approval given over GraphQL (across a worker restart), the third installs only the frozen set', async () => {
    const agents = await enroll(3);
    const [a, b, c] = agents as [Agent, Agent, Agent];
    const deploymentId = await createDeployment('three rings', agents, [
      { name: 'canary', machineIds: [a.machineId], gate: { soakSeconds: 2 } },
      { name: 'early', filter: { nameContains: b.name }, gate: { requireApproval: true } },
      { name: 'rest', percent: 100 },
    ]);
    const runId = await runNow(deploymentId);

    // Ring 1 installs and soaks; the update set is fixed from its plan; nobody else has a job yet.
    const soaking = await untilRun(runId, [a], (v) => v.rings[0]?.status === 'SOAKING', 'the canary to soak');
    expect(soaking.updateSet).toEqual([
      { name: 'ringlib', version: '1.1-1' },
      { name: 'zlib1g', version: '2.0-2' },
    ]);
    expect(soaking.rings[0]!.soakEndsAt).not.toBeNull();
    expect(ringStatuses(soaking)).toEqual(['SOAKING', 'PENDING', 'PENDING']);
    expect(soaking.rings.map((r) => r.definition.gate)).toEqual([
      { soakSeconds: 2, requireApproval: false },
      { soakSeconds: 0, requireApproval: true },
      { soakSeconds: 0, requireApproval: false },
    ]);
    expect(a.installs.map((j) => j.updates.map((u) => `${u.name}=${u.availableVersion}`))).toEqual([['ringlib=1.1-1', 'zlib1g=2.0-2']]);

    // Meanwhile a newer ringlib is published and c's agent sees it, with a package new to the fleet.
    await c.client.sendReport(
      assessmentReport([
        pendingUpdate({ name: 'ringlib', classification: 'SECURITY', installedVersion: '1.0-1', availableVersion: '1.2-1' }),
        pendingUpdate({ name: 'zlib1g', classification: 'SECURITY', installedVersion: '2.0-1', availableVersion: '2.0-2' }),
        pendingUpdate({ name: 'newlib', classification: 'SECURITY', installedVersion: null, availableVersion: '3.0-1' }),
      ]),
    );

    // After the soak ring 2 runs, then waits for approval.
    const waiting = await untilRun(runId, [a, b, c], (v) => v.rings[1]?.status === 'WAITING_FOR_APPROVAL', 'ring 2 to wait for approval');
    expect(ringStatuses(waiting)).toEqual(['PROMOTED', 'WAITING_FOR_APPROVAL', 'PENDING']);
    expect(waiting.status).toBe('IN_PROGRESS');
    expect(b.installs).toHaveLength(1);
    expect(c.installs).toHaveLength(0);

    // The worker goes away and another starts while the ring waits: the wait costs no event.
    const before = await waitUntil(() => history(runId), (h) => h.idle, 30_000, 'the run workflow to wait');
    await stack.restartWorker('rings-worker-2');
    expect(await history(runId)).toEqual(before);
    expect((await run(runId)).rings[1]!.status).toBe('WAITING_FOR_APPROVAL');

    // Approvals are checked: a viewer may not, ring 3 is not waiting, ring 2 is.
    const approve = 'mutation($runId: ID!, $ring: Int!) { approveRing(runId: $runId, ring: $ring) { id } }';
    expect(await firstError(approve, { runId, ring: 2 }, viewer)).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    expect(await firstError(approve, { runId, ring: 3 })).toMatchObject({ extensions: { code: 'CONFLICT' }, message: 'rest (ring 3) is PENDING; only a ring WAITING_FOR_APPROVAL can be approved.' });
    expect(await firstError(approve, { runId, ring: 4 })).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'ring' } });
    await query(approve, { runId, ring: 2 });

    const ended = await untilRun(runId, agents, (v) => v.status !== 'IN_PROGRESS', 'the run to end');
    expect(ended.status).toBe('SUCCEEDED');
    expect(ringStatuses(ended)).toEqual(['PROMOTED', 'PROMOTED', 'DONE']);
    expect(ended.rings[1]!.decidedBy).toBe('test OPERATOR');
    // Ring 3 took only the set's versions: not the newer ringlib, not the new package.
    expect(c.installs.map((j) => j.updates.map((u) => `${u.name}=${u.availableVersion}`))).toEqual([['zlib1g=2.0-2']]);
    const third = ended.machineRuns.find((m) => m.machineName === c.name)!;
    expect(third.ring).toBe(3);
    expect(third.updates.map((u) => [u.name, u.targetVersion, u.status, u.reason]).sort()).toEqual([
      ['newlib', '3.0-1', 'NOT_SELECTED', "not in the run's approved set"],
      ['ringlib', '1.2-1', 'NOT_SELECTED', "not in the run's approved set"],
      ['zlib1g', '2.0-2', 'SUCCEEDED', null],
    ]);
    // Nothing installed twice.
    expect(agents.map((x) => x.installs.length)).toEqual([1, 1, 1]);
    await recordHistory(runId, 'deploymentRunRings.json');
  }, 180_000);

  it('a ring with too many failures halts the run with the reason; resuming goes on with the next ring', async () => {
    const agents = await enroll(2);
    const [a, b] = agents as [Agent, Agent];
    const deploymentId = await createDeployment('halt and resume', agents, [{ name: 'first', machineIds: [a.machineId] }, { name: 'second', percent: 100 }]);
    const runId = await runNow(deploymentId);
    const resume = 'mutation($id: ID!) { resumeDeploymentRun(id: $id) { id } }';
    expect(await firstError(resume, { id: runId })).toMatchObject({ extensions: { code: 'CONFLICT' } });

    const halted = await untilRun(runId, [a, b], (v) => v.status === 'HALTED', 'the run to halt', { [a.name]: ['ringlib'] });
    expect(halted.error).toBe('first: 1 of 1 machine(s) failed; its gate allows none may fail. Resume the run to go on, or cancel it.');
    expect(halted.rings.map((r) => [r.status, r.failedCount])).toEqual([
      ['HALTED', 1],
      ['PENDING', null],
    ]);
    expect(b.installs).toHaveLength(0);

    await query(resume, { id: runId });
    const ended = await untilRun(runId, agents, (v) => !['IN_PROGRESS', 'HALTED'].includes(v.status), 'the run to end');
    expect(ended.status).toBe('PARTIALLY_FAILED');
    expect(ended.error).toBeNull();
    expect(ended.rings.map((r) => [r.status, r.decidedBy])).toEqual([
      ['PROMOTED', 'test OPERATOR'],
      ['DONE', null],
    ]);
    expect(agents.map((x) => x.installs.length)).toEqual([1, 1]);
    await recordHistory(runId, 'deploymentRunHalted.json');
  }, 120_000);

  it('a halted run can be canceled: the rings not started end CANCELED', async () => {
    const agents = await enroll(2);
    const [a, b] = agents as [Agent, Agent];
    const deploymentId = await createDeployment('halt and cancel', agents, [{ name: 'first', machineIds: [a.machineId] }, { name: 'second', percent: 100 }]);
    const runId = await runNow(deploymentId);
    await untilRun(runId, [a, b], (v) => v.status === 'HALTED', 'the run to halt', { [a.name]: ['ringlib'] });
    await query('mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }', { id: runId });
    const ended = await waitUntil(() => run(runId), (v) => v.status !== 'HALTED', 60_000, 'the run to end');
    expect(ended).toMatchObject({ status: 'CANCELED', error: 'Canceled by an operator.' });
    expect(ringStatuses(ended)).toEqual(['CANCELED', 'CANCELED']);
    expect(ended.machineRuns.map((m) => [m.ring, m.status])).toEqual([
      [1, 'FAILED'],
      [2, 'CANCELED'],
    ]);
    expect(await answer(b)).toEqual([]);
  }, 120_000);

  it('a rejected ring ends the run CANCELED with the reason; later rings never start', async () => {
    const agents = await enroll(2);
    const [a, b] = agents as [Agent, Agent];
    const deploymentId = await createDeployment('reject', agents, [{ name: 'pilot', machineIds: [a.machineId], gate: { requireApproval: true } }, { name: 'everyone', percent: 100 }]);
    const runId = await runNow(deploymentId);
    await untilRun(runId, [a, b], (v) => v.rings[0]?.status === 'WAITING_FOR_APPROVAL', 'the pilot ring to wait for approval');

    const reject = 'mutation($runId: ID!, $ring: Int!, $reason: String!) { rejectRing(runId: $runId, ring: $ring, reason: $reason) { id } }';
    expect(await firstError(reject, { runId, ring: 1, reason: '  ' })).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'reason' } });
    await query(reject, { runId, ring: 1, reason: 'latency doubled on the pilot' });

    const ended = await waitUntil(() => run(runId), (v) => v.status !== 'IN_PROGRESS', 60_000, 'the run to end');
    expect(ended.status).toBe('CANCELED');
    expect(ended.error).toBe('pilot was rejected by test OPERATOR: latency doubled on the pilot');
    expect(ringStatuses(ended)).toEqual(['REJECTED', 'CANCELED']);
    expect(ended.rings[0]!.reason).toBe(ended.error);
    expect(ended.machineRuns.find((m) => m.machineName === b.name)!.status).toBe('CANCELED');
    expect(await answer(b)).toEqual([]);
    // Too late for an approval now.
    expect(await firstError('mutation($runId: ID!) { approveRing(runId: $runId, ring: 1) { id } }', { runId })).toMatchObject({ extensions: { code: 'CONFLICT' } });
  }, 120_000);

  it('a run keeps its rings as they were when it began: editing the deployment meanwhile changes nothing in flight', async () => {
    const agents = await enroll(3);
    const [a, b, c] = agents as [Agent, Agent, Agent];
    const rings = [
      { name: 'pilot', machineIds: [a.machineId], gate: { requireApproval: true } },
      { name: 'second', machineIds: [b.machineId], gate: { requireApproval: true } },
      { name: 'everyone', percent: 100 },
    ];
    const deploymentId = await createDeployment('edited meanwhile', agents, rings);
    const runId = await runNow(deploymentId);
    await untilRun(runId, [a, b, c], (v) => v.rings[0]?.status === 'WAITING_FOR_APPROVAL', 'the pilot ring to wait for approval');
    // The deployment loses its rings while the run waits.
    const input = { name: 'edited meanwhile', osType: 'LINUX', machineIds: agents.map((x) => x.machineId), classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER', onDemandOnly: true };
    await query('mutation($id: ID!, $input: DeploymentInput!) { updateDeployment(id: $id, input: $input) { id } }', { id: deploymentId, input });

    const approve = 'mutation($runId: ID!, $ring: Int!) { approveRing(runId: $runId, ring: $ring) { id } }';
    await query(approve, { runId, ring: 1 });
    // Ring 2 still asks for its approval, as it did when the run began.
    const waiting = await untilRun(runId, agents, (v) => v.rings[1]!.status !== 'PENDING' && v.rings[1]!.status !== 'RUNNING', 'ring 2 to reach its gate');
    expect(ringStatuses(waiting)).toEqual(['PROMOTED', 'WAITING_FOR_APPROVAL', 'PENDING']);
    await query(approve, { runId, ring: 2 });
    const ended = await untilRun(runId, agents, (v) => v.status !== 'IN_PROGRESS', 'the run to end');
    expect(ended.status).toBe('SUCCEEDED');
    expect(ringStatuses(ended)).toEqual(['PROMOTED', 'PROMOTED', 'DONE']);
  }, 120_000);

  it("a later ring installs with the settings the run began with: the deployment's selection, reboot setting and window edited meanwhile change nothing in flight", async () => {
    const agents = await enroll(2);
    const [a, b] = agents as [Agent, Agent];
    const deploymentId = await createDeployment('settings edited meanwhile', agents, [{ name: 'pilot', machineIds: [a.machineId], gate: { requireApproval: true } }, { name: 'everyone', percent: 100 }]);
    const runId = await runNow(deploymentId);
    await untilRun(runId, agents, (v) => v.rings[0]?.status === 'WAITING_FOR_APPROVAL', 'the pilot ring to wait for approval');
    // While the pilot waits, the deployment is edited: zlib1g excluded, reboots always, a shorter window, no failure allowed.
    const input = {
      name: 'settings edited meanwhile',
      osType: 'LINUX',
      machineIds: agents.map((x) => x.machineId),
      classifications: ['SECURITY'],
      excludePatterns: ['zlib1g'],
      windowMinutes: 30,
      rebootSetting: 'ALWAYS',
      onDemandOnly: true,
      rings: [{ name: 'pilot', machineIds: [a.machineId], gate: { requireApproval: true } }, { name: 'everyone', percent: 100 }],
    };
    await query('mutation($id: ID!, $input: DeploymentInput!) { updateDeployment(id: $id, input: $input) { id } }', { id: deploymentId, input });
    const approvedAt = Date.now();
    await query('mutation($runId: ID!, $ring: Int!) { approveRing(runId: $runId, ring: $ring) { id } }', { runId, ring: 1 });
    const ended = await untilRun(runId, agents, (v) => v.status !== 'IN_PROGRESS', 'the run to end');
    expect(ended.status).toBe('SUCCEEDED');
    // Ring 2's job is the one the run began with: both updates, no reboot, a 60-minute window.
    const job = b.installs[0]!;
    expect(job.updates.map((u) => u.name)).toEqual(['ringlib', 'zlib1g']);
    expect(job.rebootSetting).toBe('NEVER');
    expect(Date.parse(job.deadline) - approvedAt).toBeGreaterThan(50 * 60_000);
  }, 120_000);

  it('a ring with no machine is skipped, and the first ring that runs fixes the update set', async () => {
    const agents = await enroll(1);
    const deploymentId = await createDeployment('first ring empty', agents, [{ name: 'nobody', filter: { tags: ['no-such-tag'] } }, { name: 'everyone', percent: 100 }]);
    const runId = await runNow(deploymentId);
    const ended = await untilRun(runId, agents, (v) => !['SCHEDULED', 'IN_PROGRESS'].includes(v.status), 'the run to end');
    expect(ended.status).toBe('SUCCEEDED');
    expect(ringStatuses(ended)).toEqual(['SKIPPED', 'DONE']);
    expect(ended.updateSet).toEqual([
      { name: 'ringlib', version: '1.1-1' },
      { name: 'zlib1g', version: '2.0-2' },
    ]);
    expect(agents[0]!.installs.map((j) => j.updates.map((u) => u.name))).toEqual([['ringlib', 'zlib1g']]);
  }, 60_000);

  it('refuses bad rings at their field, and the preview warns of a ring that matches no target', async () => {
    const [a] = await enroll(1);
    const input = (rings: unknown) => ({ name: `bad rings ${++counter}`, osType: 'LINUX', machineIds: [a!.machineId], classifications: ['SECURITY'], onDemandOnly: true, rings });
    const create = 'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }';
    expect(await firstError(create, { input: input([]) })).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'rings' } });
    expect(await firstError(create, { input: input([{ percent: 150 }]) })).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'rings[0].percent' } });
    expect(await firstError(create, { input: input([{ machineIds: ['00000000-0000-4000-8000-000000000000'] }]) })).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'rings[0].machineIds' } });

    const preview = await query<{ previewDeployment: { warnings: Array<{ field: string; message: string }>; machines: Array<{ ring: number | null }> } }>(
      'query($input: DeploymentInput!) { previewDeployment(input: $input) { warnings { field message } machines { ring } } }',
      { input: input([{ name: 'nobody', filter: { tags: ['no-such-tag'] } }, { percent: 100 }]) },
    );
    expect(preview.previewDeployment.warnings).toEqual([{ field: 'rings[0].filter', message: expect.stringContaining('matches none of the targets') }]);
    expect(preview.previewDeployment.machines).toEqual([{ ring: 2 }]);

    // A deployment reads its rings back as normalised.
    const created = await query<{ createDeployment: { rings: unknown } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { rings { name filter { tags nameContains environments } machineIds percent maxConcurrent { value unit } gate { maxFailures { value unit } soakSeconds requireApproval } } } }', {
      input: input([{ filter: { tags: ['Canary'], environments: ['AWS'] }, gate: { maxFailures: { value: 10, unit: 'PERCENT' }, soakSeconds: 30 } }, { name: 'rest', percent: 100, maxConcurrent: { value: 5 } }]),
    });
    expect(created.createDeployment.rings).toEqual([
      { name: 'Ring 1', filter: { tags: ['Canary'], nameContains: null, environments: ['AWS'] }, machineIds: null, percent: null, maxConcurrent: null, gate: { maxFailures: { value: 10, unit: 'PERCENT' }, soakSeconds: 30, requireApproval: false } },
      { name: 'rest', filter: null, machineIds: null, percent: 100, maxConcurrent: { value: 5, unit: 'COUNT' }, gate: { maxFailures: null, soakSeconds: 0, requireApproval: false } },
    ]);
  }, 60_000);
});
