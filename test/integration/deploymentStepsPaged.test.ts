import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentClient } from '../../src/agent/client.js';
import type { InstallJob, JobResult, StepReport } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import type { TemporalClient } from '../../src/temporal/connection.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack, waitUntil } from '../support/env.js';
import { enrollMachines } from '../support/machines.js';

/** How an agent answers its jobs: installs instantly, fails its updates, or never answers. */
type Answer = 'OK' | 'FAIL' | 'SILENT';

interface Agent {
  name: string;
  machineId: string;
  client: AgentClient;
  answer: Answer;
  /** Every INSTALL job this agent was handed (install jobs and POST script jobs), in order. */
  jobs: InstallJob[];
}

/** A job's result: every update SUCCEEDED (or FAILED), its scripts SUCCEEDED. */
function resultOf(job: InstallJob, fail: boolean): JobResult {
  const at = new Date().toISOString();
  const steps: StepReport[] = (job.scripts ?? []).map((s) => ({ index: s.index, name: s.name, phase: s.phase, kind: 'SCRIPT', onFailure: s.onFailure, status: 'SUCCEEDED', message: null, exitCode: 0, httpStatus: null, attempts: 1, startedAt: at, endedAt: at }));
  return {
    updates: job.updates.map((u) => ({
      name: u.name,
      arch: u.arch,
      status: fail ? 'FAILED' : 'SUCCEEDED',
      exitCode: fail ? 100 : 0,
      errorText: fail ? 'E: broken package' : null,
      reason: null,
      installedVersion: fail ? u.installedVersion : u.availableVersion,
      startedAt: at,
      endedAt: at,
    })),
    rebootRequired: false,
    rebooting: false,
    timedOut: false,
    error: null,
    bootId: 'boot-1',
    ...(job.scripts ? { steps } : {}),
  };
}

/** Machines' child workflows per execution, tiny: a run of a few machines continues as new several times. */
const STEP_CHILDREN = 3;
/** Machines planned per page when the run begins: planned in several pages too. */
const PLAN_MACHINES = 2;

interface MachineRunView {
  machineName: string;
  status: string;
  error: string | null;
  stepResults: Array<{ name: string; status: string }>;
  updates: Array<{ name: string; status: string }>;
}

/**
 * Deployments with pre or post steps over more machines than one execution of their run's
 * workflow holds (docs/deployments.md, "Runs of any size"): a child workflow per machine, started a
 * page at a time, the parent continuing as new after each page. The real Temporal dev server, a
 * real worker, PostgreSQL, the API over HTTP, agents speaking the agent protocol and a real HTTP
 * server for the steps' calls; the page made tiny (FLEETPATCH_RUN_STEP_CHILDREN). New runs are
 * batched runs (no child workflow): the threshold, cancel and ring cases below run that shape, with
 * the same outcomes; the first case, with a script, runs children as runs begun before their
 * scripts were batched still do (FLEETPATCH_RUN_MACHINE_WORKFLOWS).
 */
describe('deployments with steps, their machines run page by page', () => {
  let stack: RunStack;
  let database: Database;
  let api: ApiServer;
  let temporal: TemporalClient;
  let operator: string;
  let enrollKey: string;
  let receiver: http.Server;
  let base: string;
  /** The steps' calls as the receiver got them: path and the machine they were for. */
  const calls: Array<{ path: string; machine: string }> = [];
  let counter = 0;

  beforeAll(async () => {
    receiver = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
      req.on('end', () => {
        const body = raw ? (JSON.parse(raw) as { machine: { name: string } }) : null;
        calls.push({ path: req.url ?? '', machine: body?.machine.name ?? '' });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    stack = await startRunStack({
      env: { FLEETPATCH_RUN_STEP_CHILDREN: String(STEP_CHILDREN), FLEETPATCH_RUN_PLAN_MACHINES: String(PLAN_MACHINES), FLEETPATCH_RUN_MACHINE_WORKFLOWS: '1' },
      workerIdentity: 'paged-steps-worker',
    });
    ({ database, api, temporal } = stack);
    operator = await stack.token('OPERATOR');
    enrollKey = await stack.enrollmentKey('paged steps');
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
    receiver?.closeAllConnections();
    await new Promise((r) => receiver?.close(r));
  });

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(api.url, q, { token: operator, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  /** Machines enrolled and assessed (two pending security updates each), named so that their order is the order given. */
  async function enroll(answers: Answer[]): Promise<Agent[]> {
    const updates = [0, 1].map((i) => pendingUpdate({ name: `paged-lib-${i}`, classification: 'SECURITY', availableVersion: `1.${i}-2`, installedVersion: `1.${i}-1` }));
    const prefix = `paged-${String(++counter).padStart(2, '0')}`;
    const machines = await enrollMachines(api.url, enrollKey, answers.map((_, i) => ({ facts: { hostname: `${prefix}-${String(i + 1).padStart(2, '0')}`, bootId: 'boot-1', capabilities: ['SCRIPT_STEPS'] }, updates })));
    return machines.map((m, i) => ({ name: m.name, machineId: m.machineId, client: m.agent, answer: answers[i]!, jobs: [] }));
  }

  async function runNow(name: string, agents: Agent[], steps: unknown[], extra: Record<string, unknown> = {}): Promise<{ deploymentId: string; runId: string }> {
    const input = { name, osType: 'LINUX', machineIds: agents.map((a) => a.machineId), classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER', onDemandOnly: true, steps, ...extra };
    const deploymentId = (await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input })).createDeployment.id;
    const runId = (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId })).runDeploymentNow.id;
    return { deploymentId, runId };
  }

  /** The agents take their jobs and answer them as told (a silent agent keeps its job unanswered). */
  async function answerJobs(agents: Agent[]): Promise<void> {
    for (const agent of agents) {
      for (const command of (await agent.client.commands(0)).commands.filter((c) => c.kind === 'INSTALL')) {
        agent.jobs.push(command.install!);
        if (agent.answer !== 'SILENT') await agent.client.sendJobResult(command.id, resultOf(command.install!, agent.answer === 'FAIL'));
      }
    }
  }

  const RUN = `status error rings { status }
    machineRuns(first: 50) { edges { node { machineName status error stepResults { name status } updates { name status } } } }`;
  async function run(runId: string) {
    type View = { status: string; error: string | null; rings: Array<{ status: string }>; machineRuns: { edges: Array<{ node: MachineRunView }> } };
    const view = (await query<{ deploymentRun: View }>(`query($id: ID!) { deploymentRun(id: $id) { ${RUN} } }`, { id: runId })).deploymentRun;
    return { ...view, machineRuns: view.machineRuns.edges.map((e) => e.node).sort((a, b) => a.machineName.localeCompare(b.machineName)) };
  }
  type RunView = Awaited<ReturnType<typeof run>>;
  const ended = (v: RunView) => !['IN_PROGRESS', 'SCHEDULED', 'HALTED'].includes(v.status);

  const untilRun = (runId: string, agents: Agent[], done: (view: RunView) => boolean, what: string) =>
    waitUntil(
      async () => {
        await answerJobs(agents);
        return run(runId);
      },
      done,
      90_000,
      what,
    );

  const workflowIdOf = async (runId: string) => (await database.sql<Array<{ workflow_id: string }>>`select workflow_id from deployment_runs where id = ${runId}`)[0]!.workflow_id;

  /** Every execution of the run's workflow, oldest first: its history's length, the children it started, whether it continued as new. */
  async function executions(runId: string) {
    const workflowId = await workflowIdOf(runId);
    const found: Array<{ runId: string; events: number; children: string[]; continuedAsNew: boolean }> = [];
    // From the latest back to the first: each continued execution names the one before it.
    let current: string | undefined = (await temporal.client.workflow.getHandle(workflowId).describe()).runId;
    while (current) {
      type Event = {
        startChildWorkflowExecutionInitiatedEventAttributes?: { workflowId?: string | null } | null;
        workflowExecutionContinuedAsNewEventAttributes?: unknown;
        workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string | null } | null;
      };
      const events: Event[] = (await temporal.client.workflow.getHandle(workflowId, current).fetchHistory()).events ?? [];
      found.unshift({
        runId: current,
        events: events.length,
        children: events.flatMap((e) => (e.startChildWorkflowExecutionInitiatedEventAttributes ? [e.startChildWorkflowExecutionInitiatedEventAttributes.workflowId!] : [])),
        continuedAsNew: Boolean(events.at(-1)!.workflowExecutionContinuedAsNewEventAttributes),
      });
      current = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
    }
    return found;
  }

  /** Each machine run's end, as its job stream says it: once each. */
  async function endLines(runId: string) {
    return database.sql<Array<{ machine_name: string; n: number }>>`
      select m.machine_name, count(l.id)::int as n from machine_runs m
      left join run_logs l on l.machine_run_id = m.id and l.stream = 'server' and l.line ~ ': (SUCCEEDED|FAILED|TIMED_OUT|CANCELED|NOT_STARTED|PARTIALLY_FAILED)'
      where m.run_id = ${runId} group by m.machine_name order by m.machine_name`;
  }

  const callsFor = (agent: Agent, callPath: string) => calls.filter((c) => c.path === callPath && c.machine === agent.name).length;

  it('runs seven machines with pre and post steps, three per execution: continues as new twice, each machine\'s child started once, its calls made once, its results recorded once', async () => {
    const agents = await enroll(Array(7).fill('OK'));
    const { runId } = await runNow('paged steps', agents, [
      { name: 'drain', phase: 'PRE', http: { url: `${base}/pre` } },
      { name: 'restart app', phase: 'POST', script: { inline: 'systemctl restart app' } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/post` } },
    ], { maxConcurrent: { value: 2, unit: 'COUNT' } });
    const done = await untilRun(runId, agents, ended, 'the run to end');
    expect(done.status).toBe('SUCCEEDED');
    expect(done.machineRuns.map((m) => [m.machineName, m.status])).toEqual(agents.map((a) => [a.name, 'SUCCEEDED']));
    for (const m of done.machineRuns) {
      expect(m.stepResults.map((s) => [s.name, s.status])).toEqual([
        ['drain', 'SUCCEEDED'],
        ['restart app', 'SUCCEEDED'],
        ['undrain', 'SUCCEEDED'],
      ]);
      expect(m.updates.map((u) => u.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    }
    // Nothing twice: each machine's PRE and POST calls made once, its install job and its POST script job handed over once.
    for (const agent of agents) {
      expect([agent.name, callsFor(agent, '/pre'), callsFor(agent, '/post')]).toEqual([agent.name, 1, 1]);
      expect(agent.jobs.map((j) => [j.updates.length, (j.scripts ?? []).map((s) => s.name)])).toEqual([
        [2, []],
        [0, ['restart app']],
      ]);
    }
    const results = await database.sql<Array<{ status: string; n: number }>>`select status, count(*)::int as n from update_results where run_id = ${runId} group by status`;
    expect(results).toEqual([{ status: 'SUCCEEDED', n: 14 }]);
    expect((await endLines(runId)).map((l) => l.n)).toEqual(Array(7).fill(1));

    // Three executions of three, three and one children; each child's id (its machine run's) started once in all.
    const runs = await executions(runId);
    expect(runs.map((r) => [r.children.length, r.continuedAsNew])).toEqual([
      [3, true],
      [3, true],
      [1, false],
    ]);
    const children = runs.flatMap((r) => r.children);
    expect(new Set(children).size).toBe(7);
    expect(children.sort()).toEqual(agents.map((a) => `machine-run:${runId}:${a.machineId}`).sort());
    // Each execution's history is bounded by its page, not by the run.
    for (const r of runs) expect(r.events).toBeLessThan(100);

    await recordHistory(await workflowIdOf(runId), runs[0]!.runId, 'deploymentRunPagedSteps.json');
    await recordHistory(await workflowIdOf(runId), runs[1]!.runId, 'deploymentRunPagedStepsContinued.json');
  }, 120_000);

  it('stops at the failure threshold with POST calls batched: two failures, the rest not started, their calls never made', async () => {
    const agents = await enroll(['OK', 'FAIL', 'OK', 'FAIL', 'OK', 'OK']);
    const { runId } = await runNow('paged threshold', agents, [{ name: 'notify', phase: 'POST', http: { url: `${base}/post` } }], {
      maxConcurrent: { value: 1, unit: 'COUNT' },
      maxFailures: { value: 2, unit: 'COUNT' },
    });
    const done = await untilRun(runId, agents, ended, 'the run to end');
    expect(done.machineRuns.map((m) => m.status)).toEqual(['SUCCEEDED', 'FAILED', 'SUCCEEDED', 'FAILED', 'NOT_STARTED', 'NOT_STARTED']);
    const notStarted = "Not started: 2 machine(s) had failed, reaching the deployment's maximum failures.";
    expect(done.machineRuns.slice(4).map((m) => [m.error, m.updates.map((u) => u.status)])).toEqual([
      [notStarted, ['NOT_ATTEMPTED', 'NOT_ATTEMPTED']],
      [notStarted, ['NOT_ATTEMPTED', 'NOT_ATTEMPTED']],
    ]);
    expect(done.status).toBe('PARTIALLY_FAILED');
    // The machines not started got no job and no call.
    expect(agents.map((a) => a.jobs.length)).toEqual([1, 1, 1, 1, 0, 0]);
    expect(agents.map((a) => callsFor(a, '/post'))).toEqual([1, 1, 1, 1, 0, 0]);
    // Its steps are all calls: a batched run, its advance made them, no workflow per machine.
    expect((await executions(runId)).flatMap((r) => r.children)).toEqual([]);
    // Each machine run that started ended once (those never started end without a line of their own).
    expect((await endLines(runId)).map((l) => l.n)).toEqual([1, 1, 1, 1, 0, 0]);
  }, 120_000);

  it('is canceled while a machine holds its job: the machine running ends CANCELED, its POST step not run; those not started are CANCELED and never handed a job', async () => {
    const agents = await enroll(['OK', 'OK', 'OK', 'OK', 'SILENT', 'OK', 'OK']);
    const { runId } = await runNow('paged cancel', agents, [{ name: 'notify', phase: 'POST', http: { url: `${base}/post` } }], { maxConcurrent: { value: 1, unit: 'COUNT' } });
    const silent = agents[4]!;
    await untilRun(runId, agents, () => silent.jobs.length > 0, 'the fifth machine to get its job');
    await query('mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }', { id: runId });
    const done = await untilRun(runId, agents, ended, 'the run to end');
    expect(done.status).toBe('CANCELED');
    expect(done.machineRuns.map((m) => m.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'CANCELED', 'CANCELED', 'CANCELED']);
    expect(done.machineRuns.slice(5).map((m) => m.error)).toEqual(['The run was canceled before this machine started.', 'The run was canceled before this machine started.']);
    // The machine running when the cancel came ended with it, its POST step recorded as not run.
    expect(done.machineRuns[4]!.error).toBe('The run was canceled.');
    expect(done.machineRuns[4]!.stepResults.map((s) => [s.name, s.status])).toEqual([['notify', 'NOT_RUN']]);
    expect(agents.map((a) => a.jobs.length)).toEqual([1, 1, 1, 1, 1, 0, 0]);
    // No POST step after a cancel.
    expect(agents.map((a) => callsFor(a, '/post'))).toEqual([1, 1, 1, 1, 0, 0, 0]);
    expect((await executions(runId)).flatMap((r) => r.children)).toEqual([]);
    expect((await endLines(runId)).map((l) => l.n)).toEqual([1, 1, 1, 1, 1, 0, 0]);
    // machineRunStepsCanceled.json holds such a cancel as a machine run's workflow saw it, before steps that are calls were batched.
  }, 120_000);

  it('runs rings with POST calls batched: the canary waits for an approval, then the next ring runs and ends the run; each call made once', async () => {
    const agents = await enroll(Array(7).fill('OK'));
    const canary = agents.slice(0, 4);
    const { runId } = await runNow('paged rings', agents, [{ name: 'notify', phase: 'POST', http: { url: `${base}/post` } }], {
      maxConcurrent: { value: 2, unit: 'COUNT' },
      rings: [
        { name: 'canary', machineIds: canary.map((a) => a.machineId), gate: { requireApproval: true } },
        { name: 'rest', percent: 100 },
      ],
    });
    const waiting = await untilRun(runId, agents, (v) => v.rings[0]?.status === 'WAITING_FOR_APPROVAL', 'the canary to wait for approval');
    expect(waiting.machineRuns.map((m) => m.status)).toEqual([...Array(4).fill('SUCCEEDED'), ...Array(3).fill('PENDING')]);
    expect(agents.slice(4).map((a) => a.jobs.length)).toEqual([0, 0, 0]);
    await query('mutation($runId: ID!, $ring: Int!) { approveRing(runId: $runId, ring: $ring) { id } }', { runId, ring: 1 });
    const done = await untilRun(runId, agents, ended, 'the run to end');
    expect(done.status).toBe('SUCCEEDED');
    expect(done.rings.map((r) => r.status)).toEqual(['PROMOTED', 'DONE']);
    for (const m of done.machineRuns) expect([m.machineName, m.status, m.stepResults.map((s) => s.status)]).toEqual([m.machineName, 'SUCCEEDED', ['SUCCEEDED']]);
    expect(agents.map((a) => [a.jobs.length, callsFor(a, '/post')])).toEqual(Array(7).fill([1, 1]));
    expect((await executions(runId)).flatMap((r) => r.children)).toEqual([]);
  }, 120_000);

  /** RECORD_HISTORY=<dir> saves an execution's history for the replay test (test/history_files/). */
  async function recordHistory(workflowId: string, executionRunId: string | undefined, file: string): Promise<void> {
    const dir = process.env.RECORD_HISTORY;
    if (!dir) return;
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, file), historyToJSON(await temporal.client.workflow.getHandle(workflowId, executionRunId).fetchHistory()));
  }
});
