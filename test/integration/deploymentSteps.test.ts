import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatchedRunActivities, type AdvanceInput, type AdvanceOutcome, type StepCalls } from '../../src/activities/batchedRuns.js';
import { createActivities } from '../../src/activities/index.js';
import { createStepCalls } from '../../src/activities/steps.js';
import { CALLS_RESERVE_SECONDS } from '../../src/fleet/batchedRun.js';
import type { PhaseVerdict } from '../../src/fleet/steps.js';
import { AgentClient } from '../../src/agent/client.js';
import type { InstallJob, JobResult, StepReport } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { createFleetPubSub } from '../../src/events/pubsub.js';
import type { TemporalClient } from '../../src/temporal/connection.js';
import { haltedReason } from '../../src/workflows/childMachines.js';
import { workflowIds } from '../../src/workflows/config.js';
import type { DeploymentRunInput } from '../../src/workflows/runInput.js';
import { ensureRun } from '../../src/db/runs.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack, waitUntil } from '../support/env.js';

const SECRET = 'Bearer s3cr3t-lb-token-5f1c';

interface Agent {
  name: string;
  machineId: string;
  client: AgentClient;
  /** Every job this agent was handed, in order, with how many calls the receiver had seen then. */
  jobs: Array<{ job: InstallJob; callsBefore: number }>;
  /** The script this agent reports failed (exit code 3), as the agent reports it: the scripts after a stop NOT_RUN, its updates NOT_ATTEMPTED. */
  failScript?: string;
  /** Jobs this agent takes and never reports on (it died with them): ALL, or POST_SCRIPTS (a job without updates). */
  silent?: 'ALL' | 'POST_SCRIPTS';
}

/** Whether `agent` reports on `job` (see Agent.silent). */
const answers = (agent: Agent, job: InstallJob) => !agent.silent || (agent.silent === 'POST_SCRIPTS' && job.updates.length > 0);

interface Call {
  path: string;
  /** When the receiver got it (ms since the epoch). */
  at: number;
  method: string;
  authorization: string | undefined;
  body: { event: string; step: { name: string }; machine: { name: string }; run: { id: string }; updates: Record<string, number> } | null;
}

/** A job's result as an agent that installs instantly reports it, its scripts succeeded but `failScript` (src/agent/jobs.ts: a stop leaves the rest NOT_RUN and installs nothing). */
function resultOf(job: InstallJob, failScript?: string): JobResult {
  const at = new Date().toISOString();
  let stopped: StepReport | null = null;
  const steps: StepReport[] = (job.scripts ?? []).map((s) => {
    const base = { index: s.index, name: s.name, phase: s.phase, kind: 'SCRIPT' as const, onFailure: s.onFailure, httpStatus: null };
    if (stopped) return { ...base, status: 'NOT_RUN', message: 'an earlier step failed', exitCode: null, attempts: 0, startedAt: null, endedAt: null };
    if (s.name !== failScript) return { ...base, status: 'SUCCEEDED', message: null, exitCode: 0, attempts: 1, startedAt: at, endedAt: at };
    const failed: StepReport = { ...base, status: 'FAILED', message: 'exited with code 3', exitCode: 3, attempts: 1, startedAt: at, endedAt: at };
    if (s.onFailure !== 'CONTINUE') stopped = failed;
    return failed;
  });
  const stop = stopped as StepReport | null;
  const notAttempted = stop ? `Not attempted: ${stop.phase === 'PRE' ? 'Pre-step' : 'Post-step'} ${JSON.stringify(stop.name)} failed: ${stop.message}.` : null;
  return {
    updates: job.updates.map((u) =>
      notAttempted
        ? { name: u.name, arch: u.arch, status: 'NOT_ATTEMPTED', exitCode: null, errorText: null, reason: notAttempted, installedVersion: u.installedVersion, startedAt: null, endedAt: null }
        : { name: u.name, arch: u.arch, status: 'SUCCEEDED', exitCode: 0, errorText: null, reason: null, installedVersion: u.availableVersion, startedAt: at, endedAt: at },
    ),
    rebootRequired: false,
    rebooting: false,
    timedOut: false,
    error: null,
    bootId: 'boot-1',
    ...(job.scripts ? { steps } : {}),
  };
}

type StepResultView = { name: string; phase: string; kind: string; status: string; message: string | null; httpStatus: number | null; exitCode: number | null; attempts: number; startedAt: string | null; endedAt: string | null };
interface RunView {
  status: string;
  error: string | null;
  rings: Array<{ status: string; reason: string | null }>;
  machineRuns: Array<{ machineName: string; status: string; error: string | null; stepResults: StepResultView[]; updates: Array<{ name: string; status: string; reason: string | null }> }>;
  logs: string[];
}

const RUN = `status error rings { status reason }
  machineRuns(first: 20) { edges { node { machineName status error stepResults { name phase kind status message httpStatus exitCode attempts startedAt endedAt } updates { name status reason } } } }
  logs(first: 500) { edges { node { line } } }`;

/**
 * Pre and post steps (issue 16, item 3) on the real Temporal dev server, a real worker,
 * PostgreSQL and the API over HTTP; control-plane calls go to a real HTTP server in this test
 * (statuses, retries, a timeout, the secret header); agents speak the agent protocol, one of them
 * as an agent older than steps (no capabilities). The scripts themselves run on a real agent in
 * test/agent/scriptSteps.test.ts.
 */
describe('deployments with pre and post steps', () => {
  let stack: RunStack;
  let database: Database;
  let api: ApiServer;
  let temporal: TemporalClient;
  let operator: string;
  let enrollKey: string;
  let receiver: http.Server;
  let base: string;
  const calls: Call[] = [];
  let flaky = 0;
  let counter = 0;

  beforeAll(async () => {
    process.env.FLEETPATCH_STEP_SECRET_LB_TOKEN = SECRET;
    receiver = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (chunk: Buffer) => (raw += chunk.toString()));
      req.on('end', () => {
        const body = raw ? (JSON.parse(raw) as Call['body']) : null;
        calls.push({ path: req.url ?? '', at: Date.now(), method: req.method ?? '', authorization: req.headers.authorization, body });
        if (req.url === '/hang') return; // never answers
        // A slow control plane: answers after 700 ms.
        if (req.url?.startsWith('/slow')) return void setTimeout(() => res.writeHead(200).end('ok'), 700);
        if (req.url === '/flaky') {
          flaky += 1;
          res.writeHead(flaky === 1 ? 500 : 200).end(flaky === 1 ? 'try again' : 'ok');
          return;
        }
        if (req.url === '/down') return void res.writeHead(503).end('down for maintenance');
        // Echoes the secret back: what the run shows of the answer must not carry it.
        if (req.url === '/echo') return void res.writeHead(401).end(`bad token ${req.headers.authorization ?? ''}`);
        // A control plane that answers 503 after 3.5 s.
        if (req.url === '/late-health') return void setTimeout(() => res.writeHead(503).end('unhealthy'), 3500);
        if (req.url === '/health') {
          const sick = body?.machine.name.endsWith('-sick') ?? false;
          return void res.writeHead(sick ? 503 : 200).end(sick ? 'unhealthy' : 'healthy');
        }
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    stack = await startRunStack({ workerIdentity: 'steps-worker' });
    ({ database, api, temporal } = stack);
    operator = await stack.token('OPERATOR');
    enrollKey = await stack.enrollmentKey('steps');
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
    receiver.closeAllConnections();
    await new Promise((r) => receiver.close(r));
    delete process.env.FLEETPATCH_STEP_SECRET_LB_TOKEN;
  });

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(api.url, q, { token: operator, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  async function enroll(options: { suffix?: string; old?: boolean; name?: string } = {}): Promise<Agent> {
    const url = api.url.replace('/graphql', '');
    const name = options.name ?? `steps-${++counter}${options.suffix ?? ''}`;
    const facts = machineFacts({ hostname: name, bootId: 'boot-1', ...(options.old ? {} : { capabilities: ['SCRIPT_STEPS'] }) });
    const enrolled = await new AgentClient(url).enroll(enrollKey, facts);
    const client = new AgentClient(url, enrolled.credential);
    await client.sendReport(
      assessmentReport([
        pendingUpdate({ name: 'steplib', classification: 'SECURITY', installedVersion: '1.0-1', availableVersion: '1.1-1' }),
        pendingUpdate({ name: 'zlib1g', classification: 'SECURITY', installedVersion: '2.0-1', availableVersion: '2.0-2' }),
      ]),
    );
    return { name, machineId: enrolled.machineId, client, jobs: [] };
  }

  async function createDeployment(name: string, agents: Agent[], steps: unknown[], rings?: unknown[], extra: Record<string, unknown> = {}): Promise<string> {
    const input = { name, osType: 'LINUX', machineIds: agents.map((a) => a.machineId), classifications: ['SECURITY'], windowMinutes: 30, rebootSetting: 'NEVER', onDemandOnly: true, steps, ...(rings ? { rings } : {}), ...extra };
    return (await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input })).createDeployment.id;
  }

  const runNow = async (id: string) => (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id })).runDeploymentNow.id;

  const run = async (runId: string): Promise<RunView> => {
    type Answer = Omit<RunView, 'machineRuns' | 'logs'> & { machineRuns: { edges: Array<{ node: RunView['machineRuns'][number] }> }; logs: { edges: Array<{ node: { line: string } }> } };
    const answer = (await query<{ deploymentRun: Answer }>(`query($id: ID!) { deploymentRun(id: $id) { ${RUN} } }`, { id: runId })).deploymentRun;
    return { ...answer, machineRuns: answer.machineRuns.edges.map((e) => e.node), logs: answer.logs.edges.map((e) => e.node.line) };
  };

  /** Answers every agent's jobs (install jobs and POST script jobs alike) until the run looks as `done` wants. */
  const untilRun = (runId: string, agents: Agent[], done: (view: RunView) => boolean, what: string) =>
    waitUntil(
      async () => {
        for (const agent of agents) {
          for (const command of (await agent.client.commands(0)).commands.filter((c) => c.kind === 'INSTALL')) {
            agent.jobs.push({ job: command.install!, callsBefore: calls.length });
            if (answers(agent, command.install!)) await agent.client.sendJobResult(command.id, resultOf(command.install!, agent.failScript));
          }
        }
        return run(runId);
      },
      done,
      60_000,
      what,
    );

  const ended = (v: RunView) => !['IN_PROGRESS', 'SCHEDULED'].includes(v.status);
  const machine = (v: RunView, agent: Agent) => v.machineRuns.find((m) => m.machineName === agent.name)!;
  /** Whether the machine ran in a workflow of its own (a run with script steps) rather than in the run's advance (steps all calls). */
  const hasMachineWorkflow = (runId: string, agent: Agent) =>
    temporal.client.workflow
      .getHandle(`machine-run:${runId}:${agent.machineId}`)
      .describe()
      .then(
        () => true,
        () => false,
      );
  const callsOf = (callPath: string, agent: Agent) => calls.filter((c) => c.path === callPath && c.body?.machine.name === agent.name);

  it('makes the PRE call before the job and the POST calls after it: secret header sent, retried after a 500, a timeout recorded, results in GraphQL and the log, the secret nowhere', async () => {
    const agent = await enroll();
    const deploymentId = await createDeployment('calls', [agent], [
      { name: 'drain', phase: 'PRE', http: { url: `${base}/flaky`, headers: [{ name: 'Authorization', secret: 'LB_TOKEN' }], body: { pool: 'web' }, retries: 2, timeoutSeconds: 5 } },
      { name: 'restart app', phase: 'POST', script: { inline: 'systemctl restart app' } },
      { name: 'undrain', phase: 'POST', http: { method: 'PUT', url: `${base}/ok`, expectedStatus: [200] } },
      { name: 'slow hook', phase: 'POST', onFailure: 'CONTINUE', http: { url: `${base}/hang`, timeoutSeconds: 1 } },
      { name: 'echo', phase: 'POST', onFailure: 'CONTINUE', http: { url: `${base}/echo`, headers: [{ name: 'Authorization', secret: 'LB_TOKEN' }] } },
    ]);
    const runId = await runNow(deploymentId);
    const done = await untilRun(runId, [agent], ended, 'the run to end');
    expect(done.status).toBe('SUCCEEDED');

    // The PRE call: two attempts (500, then 200), with the secret and the context, before the install job.
    const drains = calls.filter((c) => c.path === '/flaky');
    expect(drains).toHaveLength(2);
    expect(drains.every((c) => c.authorization === SECRET)).toBe(true);
    expect(drains[0]!.body).toMatchObject({ event: 'fleetpatch.step.pre', step: { name: 'drain' }, machine: { name: agent.name }, run: { id: runId }, data: { pool: 'web' } });
    expect(agent.jobs[0]!.job.updates).toHaveLength(2);
    expect(agent.jobs[0]!.callsBefore).toBeGreaterThanOrEqual(2);
    // The POST script went to the agent as a job of its own, after the install; then the POST calls.
    expect(agent.jobs.map((j) => [j.job.updates.length, (j.job.scripts ?? []).map((s) => s.name)])).toEqual([
      [2, []],
      [0, ['restart app']],
    ]);
    const undrain = calls.find((c) => c.path === '/ok')!;
    expect(undrain.method).toBe('PUT');
    expect(undrain.authorization).toBeUndefined();
    expect(undrain.body).toMatchObject({ event: 'fleetpatch.step.post', updates: { SUCCEEDED: 2 } });

    const steps = machine(done, agent).stepResults;
    expect(steps.map((s) => [s.name, s.phase, s.kind, s.status, s.httpStatus, s.attempts])).toEqual([
      ['drain', 'PRE', 'HTTP', 'SUCCEEDED', 200, 2],
      ['restart app', 'POST', 'SCRIPT', 'SUCCEEDED', null, 1],
      ['undrain', 'POST', 'HTTP', 'SUCCEEDED', 200, 1],
      ['slow hook', 'POST', 'HTTP', 'FAILED', null, 1],
      ['echo', 'POST', 'HTTP', 'FAILED', 401, 1],
    ]);
    expect(steps[3]!.message).toBe('no answer within 1 s');
    expect(steps.every((s) => Date.parse(s.endedAt!) >= Date.parse(s.startedAt!))).toBe(true);
    expect(steps[4]!.message).toBe('answered HTTP 401 (expected 2xx): bad token [secret]');
    expect(done.logs.some((l) => l === `${agent.name}: pre-step "drain" (call) SUCCEEDED: HTTP 200, 2 attempts.`)).toBe(true);
    expect(machine(done, agent).updates.map((u) => u.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    // A POST script's job of its own went out from the run's advance: no workflow per machine.
    expect(await hasMachineWorkflow(runId, agent)).toBe(false);
    await recordHistory(`deployment-run:${deploymentId}:${runId}`, 'deploymentRunBatchedPostScripts.json');

    // The secret: by name in GraphQL, its value in no answer, no log line, no audit event, no stored row.
    const deployment = await graphql(api.url, `query($id: ID!) { deployment(id: $id) { steps { name http { headers { name value secret } } } } }`, { token: operator, variables: { id: deploymentId } });
    expect(JSON.stringify(deployment)).not.toContain('s3cr3t');
    expect((deployment.data as { deployment: { steps: Array<{ http: { headers: unknown[] } | null }> } }).deployment.steps[0]!.http!.headers).toEqual([{ name: 'Authorization', value: null, secret: 'LB_TOKEN' }]);
    expect(JSON.stringify(done)).not.toContain('s3cr3t');
    for (const table of ['audit_events', 'run_logs', 'machine_runs', 'deployments', 'agent_commands']) {
      const [row] = await database.sql.unsafe<Array<{ n: number }>>(`select count(*)::int as n from ${table} t where t::text like '%s3cr3t%'`);
      expect([table, row!.n]).toEqual([table, 0]);
    }
  }, 120_000);

  it('a failing PRE call skips the machine\'s installs (NOT_ATTEMPTED with the step\'s reason) and the POST steps still run', async () => {
    const agent = await enroll();
    const deploymentId = await createDeployment('pre fails', [agent], [
      { name: 'snapshot', phase: 'PRE', http: { url: `${base}/down` } },
      { name: 'notify', phase: 'POST', http: { url: `${base}/ok` } },
    ]);
    const before = calls.filter((c) => c.path === '/ok').length;
    const runId = await runNow(deploymentId);
    const done = await untilRun(runId, [agent], ended, 'the run to end');
    expect(agent.jobs).toEqual([]);
    const reason = 'Not attempted: Pre-step "snapshot" failed: answered HTTP 503 (expected 2xx): down for maintenance.';
    expect(machine(done, agent).updates.map((u) => [u.name, u.status, u.reason])).toEqual([
      ['steplib', 'NOT_ATTEMPTED', reason],
      ['zlib1g', 'NOT_ATTEMPTED', reason],
    ]);
    expect(machine(done, agent).stepResults.map((s) => [s.name, s.status])).toEqual([
      ['snapshot', 'FAILED'],
      ['notify', 'SUCCEEDED'],
    ]);
    expect(calls.filter((c) => c.path === '/ok').length).toBe(before + 1);
    // Calls only: the run's advance made them, no workflow per machine.
    expect(await hasMachineWorkflow(runId, agent)).toBe(false);
    expect(machine(done, agent).error).toBe('Not attempted: Pre-step "snapshot" failed: answered HTTP 503 (expected 2xx): down for maintenance.');
  }, 120_000);

  it('an agent older than steps is sent no script: its PRE script fails with the reason and nothing is installed; an agent that runs scripts gets them in its job', async () => {
    const old = await enroll({ old: true });
    const current = await enroll();
    const deploymentId = await createDeployment('old agent', [old, current], [{ name: 'stop app', phase: 'PRE', script: { inline: 'systemctl stop app', timeoutSeconds: 60 } }]);
    const runId = await runNow(deploymentId);
    const done = await untilRun(runId, [old, current], ended, 'the run to end');
    expect(old.jobs).toEqual([]);
    const step = machine(done, old).stepResults[0]!;
    expect([step.status, step.message]).toEqual(['FAILED', "the machine's agent (version 0.1.0) does not run script steps; upgrade it (upgradeAgents)"]);
    expect(machine(done, old).updates.map((u) => u.status)).toEqual(['NOT_ATTEMPTED', 'NOT_ATTEMPTED']);
    expect(current.jobs.map((j) => j.job.scripts)).toEqual([[{ index: 0, name: 'stop app', phase: 'PRE', onFailure: 'SKIP_INSTALLS', inline: 'systemctl stop app', path: null, interpreter: '/bin/sh', timeoutSeconds: 60 }]]);
    expect(machine(done, current).updates.map((u) => u.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(machine(done, current).stepResults.map((s) => [s.name, s.status])).toEqual([['stop app', 'SUCCEEDED']]);
    // PRE scripts only: the run's advance handed out the jobs with the scripts and recorded their results, no workflow per machine.
    expect([await hasMachineWorkflow(runId, old), await hasMachineWorkflow(runId, current)]).toEqual([false, false]);
    // deploymentRunPreScriptsChildren.json holds this run as a child workflow per machine ran it, before PRE scripts were batched.
    await recordHistory(`deployment-run:${deploymentId}:${runId}`, 'deploymentRunBatchedPreScripts.json');
  }, 120_000);

  /** A machine as a run records it, for comparing the two shapes: its status, error, updates, steps and log lines, without its name and its times. */
  const recorded = (v: RunView, a: Agent) => {
    const m = machine(v, a);
    return {
      status: m.status,
      error: m.error,
      updates: m.updates.map((u) => [u.name, u.status, u.reason]),
      steps: m.stepResults.map((s) => [s.name, s.phase, s.kind, s.status, s.message, s.exitCode, s.httpStatus, s.attempts, s.startedAt === null, s.endedAt === null]),
      lines: v.logs.filter((l) => l.startsWith(`${a.name}: `)).map((l) => l.slice(a.name.length)),
    };
  };

  /**
   * Runs a deployment now as runs begun before their scripts were batched still run: a child
   * workflow per machine (the run's input says `machineWorkflows`, as FLEETPATCH_RUN_MACHINE_WORKFLOWS
   * makes the API say it). Otherwise as the API's runDeploymentNow.
   */
  async function runNowInMachineWorkflows(deploymentId: string): Promise<string> {
    const runId = randomUUID();
    const workflowId = workflowIds.deploymentRun(deploymentId, runId);
    await ensureRun(database.db, { id: runId, deploymentId, workflowId, trigger: 'MANUAL' });
    const input: DeploymentRunInput = { deploymentId, runId, trigger: 'MANUAL', machineWorkflows: true };
    await temporal.client.workflow.start('deploymentRunWorkflow', { taskQueue: temporal.settings.taskQueue, workflowId, args: [input] });
    return runId;
  }

  /**
   * The same deployment run twice, on agents that answer alike: as a batched run, and in a child
   * workflow per machine (the shape runs begun before scripts were batched keep). What each machine
   * records must be the same.
   */
  async function bothShapes(name: string, fails: Array<string | undefined>, steps: unknown[], extra: Record<string, unknown> = {}) {
    const shapes = [];
    for (const shape of ['batched', 'children'] as const) {
      const agents: Agent[] = [];
      for (const [i, fail] of fails.entries()) agents.push({ ...(await enroll({ name: `${name}-${shape}-${i}${fail ? '-sick' : ''}` })), ...(fail ? { failScript: fail } : {}) });
      const deploymentId = await createDeployment(`${name} ${shape}`, agents, steps, undefined, extra);
      const runId = shape === 'batched' ? await runNow(deploymentId) : await runNowInMachineWorkflows(deploymentId);
      const done = await untilRun(runId, agents, ended, `the ${shape} run to end`);
      shapes.push({ agents, runId, done, children: await Promise.all(agents.map((a) => hasMachineWorkflow(runId, a))) });
    }
    const [batched, children] = shapes as [(typeof shapes)[number], (typeof shapes)[number]];
    expect(batched.children.every((c) => !c)).toBe(true);
    // Every machine that started ran in a workflow of its own.
    expect(children.agents.every((a, i) => children.children[i] || machine(children.done, a).status === 'NOT_STARTED')).toBe(true);
    expect(children.children.some((c) => c)).toBe(true);
    expect(batched.done.status).toBe(children.done.status);
    expect(batched.agents.map((a) => recorded(batched.done, a))).toEqual(children.agents.map((a) => recorded(children.done, a)));
    return batched;
  }

  it('PRE scripts in a batched run record what a machine run of its own records: each onFailure, with a PRE call before the job and a POST call after it', async () => {
    const steps = [
      { name: 'drain', phase: 'PRE', http: { url: `${base}/ok` } },
      { name: 'check disk', phase: 'PRE', onFailure: 'CONTINUE', script: { inline: 'df /', timeoutSeconds: 60 } },
      { name: 'stop app', phase: 'PRE', script: { inline: 'systemctl stop app', timeoutSeconds: 60 } },
      { name: 'snapshot', phase: 'PRE', onFailure: 'FAIL_MACHINE', script: { inline: 'snap', timeoutSeconds: 60 } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/ok` } },
    ];
    const batched = await bothShapes('prescripts', [undefined, 'check disk', 'stop app', 'snapshot'], steps);
    const [well, continued, skipped, failed] = batched.agents as [Agent, Agent, Agent, Agent];
    const view = (a: Agent) => machine(batched.done, a);
    expect([well, continued, skipped, failed].map((a) => [view(a).status, view(a).updates.map((u) => u.status)])).toEqual([
      ['SUCCEEDED', ['SUCCEEDED', 'SUCCEEDED']],
      ['SUCCEEDED', ['SUCCEEDED', 'SUCCEEDED']],
      [view(skipped).status, ['NOT_ATTEMPTED', 'NOT_ATTEMPTED']],
      ['FAILED', ['NOT_ATTEMPTED', 'NOT_ATTEMPTED']],
    ]);
    expect(view(skipped).error).toBe('Not attempted: Pre-step "stop app" failed: exited with code 3.');
    expect(view(failed).error).toBe('Pre-step "snapshot" failed: exited with code 3.');
    expect(view(skipped).stepResults.map((s) => [s.name, s.status])).toEqual([
      ['drain', 'SUCCEEDED'],
      ['check disk', 'SUCCEEDED'],
      ['stop app', 'FAILED'],
      ['snapshot', 'NOT_RUN'],
      ['undrain', 'SUCCEEDED'],
    ]);
    // Each machine: its PRE call before its one job (which carried the three scripts), its POST call once after.
    for (const a of batched.agents) {
      expect(a.jobs.map((j) => (j.job.scripts ?? []).map((s) => s.name))).toEqual([['check disk', 'stop app', 'snapshot']]);
      expect(batched.done.logs.filter((l) => l.startsWith(`${a.name}: pre-step "stop app" (script)`))).toHaveLength(1);
    }
  }, 180_000);

  it('a PRE script that fails with HALT_RUN in a batched run halts it as a machine run of its own did: the machine FAILED, its POST call made, the machines not started NOT_STARTED with the halt', async () => {
    const steps = [
      { name: 'gate', phase: 'PRE', onFailure: 'HALT_RUN', script: { inline: 'check', timeoutSeconds: 60 } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/ok` } },
    ];
    const batched = await bothShapes('prehalt', ['gate', undefined, undefined], steps, { maxConcurrent: { value: 1, unit: 'COUNT' } });
    const [sick, ...others] = batched.agents as [Agent, Agent, Agent];
    const reason = 'Pre-step "gate" failed: exited with code 3';
    expect([machine(batched.done, sick).status, machine(batched.done, sick).error]).toEqual(['FAILED', `${reason}.`]);
    for (const other of others) expect([machine(batched.done, other).status, machine(batched.done, other).error, other.jobs]).toEqual(['NOT_STARTED', `Not started: the run was halted by a step (${reason}).`, []]);
  }, 180_000);

  it('POST scripts in a batched run record what a machine run of its own records: a job of their own after the install, each onFailure, the POST call after them, and run after a PRE script skipped the installs', async () => {
    const steps = [
      { name: 'drain', phase: 'PRE', http: { url: `${base}/ok` } },
      { name: 'stop app', phase: 'PRE', script: { inline: 'systemctl stop app', timeoutSeconds: 60 } },
      { name: 'restart app', phase: 'POST', script: { inline: 'systemctl restart app', timeoutSeconds: 60 } },
      { name: 'smoke', phase: 'POST', onFailure: 'CONTINUE', script: { inline: 'curl -f localhost', timeoutSeconds: 60 } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/ok` } },
    ];
    const batched = await bothShapes('postscripts', [undefined, 'stop app', 'restart app', 'smoke'], steps);
    const [well, skipped, failed, continued] = batched.agents as [Agent, Agent, Agent, Agent];
    const view = (a: Agent) => machine(batched.done, a);
    expect([well, skipped, failed, continued].map((a) => [view(a).status, view(a).error, view(a).stepResults.map((s) => `${s.name}=${s.status}`)])).toEqual([
      ['SUCCEEDED', null, ['drain=SUCCEEDED', 'stop app=SUCCEEDED', 'restart app=SUCCEEDED', 'smoke=SUCCEEDED', 'undrain=SUCCEEDED']],
      [view(skipped).status, 'Not attempted: Pre-step "stop app" failed: exited with code 3.', ['drain=SUCCEEDED', 'stop app=FAILED', 'restart app=SUCCEEDED', 'smoke=SUCCEEDED', 'undrain=SUCCEEDED']],
      ['FAILED', 'Post-step "restart app" failed: exited with code 3.', ['drain=SUCCEEDED', 'stop app=SUCCEEDED', 'restart app=FAILED', 'smoke=NOT_RUN', 'undrain=NOT_RUN']],
      ['SUCCEEDED', null, ['drain=SUCCEEDED', 'stop app=SUCCEEDED', 'restart app=SUCCEEDED', 'smoke=FAILED', 'undrain=SUCCEEDED']],
    ]);
    // Each machine: its install job (with the PRE script), then its POST scripts' job, once each; the POST call once, after that job.
    for (const a of batched.agents) {
      expect(a.jobs.map((j) => [j.job.updates.length, (j.job.scripts ?? []).map((s) => s.name)])).toEqual([
        [2, ['stop app']],
        [0, ['restart app', 'smoke']],
      ]);
      expect(callsOf('/ok', a).length).toBe(a === failed ? 1 : 2);
    }
  }, 180_000);

  it('a PRE call that skips the installs in a batched run: the machine, never handed an install job, still runs its POST scripts, as a machine run of its own does', async () => {
    const steps = [
      { name: 'health', phase: 'PRE', onFailure: 'SKIP_INSTALLS', http: { url: `${base}/health` } },
      { name: 'restart app', phase: 'POST', script: { inline: 'systemctl restart app', timeoutSeconds: 60 } },
    ];
    // "none" names no script: the agent is named sick (its PRE call fails) and its scripts succeed.
    const batched = await bothShapes('prestop', ['none', undefined], steps);
    const [sick, well] = batched.agents as [Agent, Agent];
    expect([machine(batched.done, sick).error, machine(batched.done, sick).stepResults.map((s) => `${s.name}=${s.status}`)]).toEqual([
      'Not attempted: Pre-step "health" failed: answered HTTP 503 (expected 2xx): unhealthy.',
      ['health=FAILED', 'restart app=SUCCEEDED'],
    ]);
    expect(sick.jobs.map((j) => [j.job.updates.length, (j.job.scripts ?? []).map((s) => s.name)])).toEqual([[0, ['restart app']]]);
    expect(well.jobs.map((j) => j.job.updates.length)).toEqual([2, 0]);
  }, 180_000);

  it('a POST script that fails with HALT_RUN in a batched run halts it as a machine run of its own did: the machines not started NOT_STARTED with the halt', async () => {
    const steps = [{ name: 'health', phase: 'POST', onFailure: 'HALT_RUN', script: { inline: 'check', timeoutSeconds: 60 } }];
    const batched = await bothShapes('posthalt', ['health', undefined, undefined], steps, { maxConcurrent: { value: 1, unit: 'COUNT' } });
    const [sick, ...others] = batched.agents as [Agent, Agent, Agent];
    const reason = 'Post-step "health" failed: exited with code 3';
    expect([machine(batched.done, sick).status, machine(batched.done, sick).error, machine(batched.done, sick).updates.map((u) => u.status)]).toEqual(['FAILED', `${reason}.`, ['SUCCEEDED', 'SUCCEEDED']]);
    for (const other of others) expect([machine(batched.done, other).status, machine(batched.done, other).error, other.jobs]).toEqual(['NOT_STARTED', `Not started: the run was halted by a step (${reason}).`, []]);
  }, 180_000);

  it("a PRE script that fails with HALT_RUN on a ringed run's canary halts the batched run at the canary's gate; resuming goes on with the next ring, whose machine gets the script in its job", async () => {
    // Named, not numbered: the tests after this one rely on the numbers' order.
    const sick = { ...(await enroll({ name: 'scriptgate-1-sick' })), failScript: 'gate' };
    const well = await enroll({ name: 'scriptgate-2' });
    const deploymentId = await createDeployment(
      'pre script gate',
      [sick, well],
      [{ name: 'gate', phase: 'PRE', onFailure: 'HALT_RUN', script: { inline: 'check', timeoutSeconds: 60 } }],
      [{ name: 'canary', machineIds: [sick.machineId], gate: { maxFailures: { value: 1, unit: 'COUNT' } } }, { name: 'rest', percent: 100 }],
    );
    const runId = await runNow(deploymentId);
    const halted = await untilRun(runId, [sick, well], (v) => v.status === 'HALTED' || ended(v), 'the run to halt');
    expect(halted.status).toBe('HALTED');
    expect(halted.error).toBe('canary: Pre-step "gate" failed: exited with code 3. Resume the run to go on, or cancel it.');
    expect([machine(halted, sick).status, machine(halted, sick).error, machine(halted, sick).updates.map((u) => u.status)]).toEqual(['FAILED', 'Pre-step "gate" failed: exited with code 3.', ['NOT_ATTEMPTED', 'NOT_ATTEMPTED']]);
    expect(well.jobs).toEqual([]);
    await query('mutation($id: ID!) { resumeDeploymentRun(id: $id) { id } }', { id: runId });
    const done = await untilRun(runId, [sick, well], (v) => ended(v) && v.status !== 'HALTED', 'the run to end after the resume');
    expect(done.rings.map((r) => r.status)).toEqual(['PROMOTED', 'DONE']);
    expect([machine(done, well).status, machine(done, well).stepResults.map((s) => [s.name, s.status])]).toEqual(['SUCCEEDED', [['gate', 'SUCCEEDED']]]);
    expect([sick, well].map((a) => a.jobs.map((j) => (j.job.scripts ?? []).map((s) => s.name)))).toEqual([[['gate']], [['gate']]]);
    expect([await hasMachineWorkflow(runId, sick), await hasMachineWorkflow(runId, well)]).toEqual([false, false]);
  }, 120_000);

  it('a failing POST health check halts a ringed run at its gate; resuming goes on with the next ring', async () => {
    const sick = await enroll({ suffix: '-sick' });
    const well = await enroll();
    const deploymentId = await createDeployment(
      'health gate',
      [sick, well],
      [{ name: 'health', phase: 'POST', onFailure: 'HALT_RUN', http: { url: `${base}/health` } }],
      // One failed machine is within the gate: the step's HALT_RUN is what halts it.
      [{ name: 'canary', machineIds: [sick.machineId], gate: { maxFailures: { value: 1, unit: 'COUNT' } } }, { name: 'rest', percent: 100 }],
    );
    const runId = await runNow(deploymentId);
    const halted = await untilRun(runId, [sick, well], (v) => v.status === 'HALTED' || ended(v), 'the run to halt');
    expect(halted.status).toBe('HALTED');
    expect(halted.error).toMatch(/^canary: Post-step "health" failed: answered HTTP 503/);
    expect(machine(halted, sick).status).toBe('FAILED');
    expect(well.jobs).toEqual([]);
    await query('mutation($id: ID!) { resumeDeploymentRun(id: $id) { id } }', { id: runId });
    const done = await untilRun(runId, [sick, well], (v) => ended(v) && v.status !== 'HALTED', 'the run to end after the resume');
    expect(done.status).toBe('PARTIALLY_FAILED');
    expect(done.rings.map((r) => r.status)).toEqual(['PROMOTED', 'DONE']);
    expect(machine(done, well).stepResults.map((s) => [s.name, s.status])).toEqual([['health', 'SUCCEEDED']]);
    // Each machine's health check made once, by the run's advance (no workflow per machine).
    expect([callsOf('/health', sick).length, callsOf('/health', well).length]).toEqual([1, 1]);
    expect([await hasMachineWorkflow(runId, sick), await hasMachineWorkflow(runId, well)]).toEqual([false, false]);
    // deploymentRunSteps.json holds this run as a child workflow per machine ran it, before steps that are calls were batched.
    await recordHistory(`deployment-run:${deploymentId}:${runId}`, 'deploymentRunBatchedSteps.json');

  }, 120_000);

  it('a PRE call that fails with HALT_RUN in a run without rings: the machine FAILED, no job; the machines not started NOT_STARTED with the halt, their calls never made', async () => {
    const sick = await enroll({ suffix: '-sick' });
    const others = [await enroll(), await enroll()];
    const deploymentId = await createDeployment('pre halt', [sick, ...others], [{ name: 'gate', phase: 'PRE', onFailure: 'HALT_RUN', http: { url: `${base}/health` } }], undefined, { maxConcurrent: { value: 1, unit: 'COUNT' } });
    const runId = await runNow(deploymentId);
    const done = await untilRun(runId, [sick, ...others], ended, 'the run to end');
    const reason = 'Pre-step "gate" failed: answered HTTP 503 (expected 2xx): unhealthy';
    expect([machine(done, sick).status, machine(done, sick).error]).toEqual(['FAILED', `${reason}.`]);
    for (const other of others) {
      expect([machine(done, other).status, machine(done, other).error, machine(done, other).stepResults]).toEqual(['NOT_STARTED', `Not started: the run was halted by a step (${reason}).`, []]);
    }
    expect([sick, ...others].map((a) => [a.jobs.length, callsOf('/health', a).length])).toEqual([
      [0, 1],
      [0, 0],
      [0, 0],
    ]);
    expect(machine(done, sick).updates.map((u) => u.status)).toEqual(['NOT_ATTEMPTED', 'NOT_ATTEMPTED']);
  }, 120_000);

  /**
   * A run begun as its workflow would begin it, and advanced here with no workflow: an attempt can
   * die, its time (the attempt's start-to-close timeout) and its machines called at once be chosen.
   */
  async function advancedRun(deploymentId: string, agents: Agent[], over: Partial<AdvanceInput> = {}) {
    const pubsub = await createFleetPubSub(database.sql);
    const activities = createActivities({ db: database.db, pubsub, workerIdentity: 'test' });
    const begun = (await new MockActivityEnvironment().run(activities.beginBatchedRun, { deploymentId, workflowId: `advanced-${deploymentId}`, trigger: 'MANUAL' as const })) as Awaited<ReturnType<typeof activities.beginBatchedRun>>;
    const input: AdvanceInput = {
      runId: begun.runId,
      ring: null,
      windowEndsAtMs: begun.windowEndsAtMs!,
      concurrency: agents.length,
      failureThreshold: null,
      graceSeconds: 60,
      installHeartbeatSeconds: 60,
      rebootTimeoutSeconds: 60,
      batchMachines: 100,
      budgetSeconds: 30,
      pollMs: 200,
      steps: { pre: true, post: true },
      ...over,
    };
    const answerJobs = async () => {
      for (const agent of agents) {
        for (const command of (await agent.client.commands(0)).commands.filter((c) => c.kind === 'INSTALL')) {
          agent.jobs.push({ job: command.install!, callsBefore: calls.length });
          if (answers(agent, command.install!)) await agent.client.sendJobResult(command.id, resultOf(command.install!, agent.failScript));
        }
      }
    };
    /** Runs an advance, its attempt timing out after `startToCloseTimeoutMs` (as the workflow's own would, by default), while the agents answer their jobs. */
    const advancing = async (advance: (input: AdvanceInput) => Promise<AdvanceOutcome>, startToCloseTimeoutMs = 600_000): Promise<AdvanceOutcome> => {
      let over = false;
      const run = new MockActivityEnvironment({ startToCloseTimeoutMs }).run(advance, input).finally(() => (over = true));
      // Seen by the caller once returned; until then, not an unhandled rejection.
      run.catch(() => undefined);
      while (!over) {
        await answerJobs();
        await new Promise((r) => setTimeout(r, 100));
      }
      return (await run) as AdvanceOutcome;
    };
    const stepCalls: StepCalls = { skipSteps: activities.skipSteps, runPageStepCalls: createStepCalls({ db: database.db, pubsub }).runPageStepCalls };
    const advanceWith = (steps: StepCalls, callsParallel?: number) => createBatchedRunActivities({ db: database.db, pubsub }, activities.finishMachineRun, steps, { callsParallel }).advanceMachines;
    /** An advance whose worker dies once a call's verdict that `dies` accepts is recorded, before the machine is ended. */
    const dyingWhen = (dies: (phase: 'PRE' | 'POST', machineRunId: string, verdict: PhaseVerdict) => boolean) =>
      advanceWith({
        ...stepCalls,
        runPageStepCalls: (i, options) =>
          stepCalls.runPageStepCalls(i, {
            ...options,
            called(machineRunId, verdict) {
              options.called?.(machineRunId, verdict);
              if (dies(i.phase, machineRunId, verdict)) throw new Error('the worker died');
            },
          }),
      });
    /** The same, once a PRE verdict `when` accepts is recorded. */
    const dyingAfterPre = (when: (verdict: PhaseVerdict) => boolean) => dyingWhen((phase, _, verdict) => phase === 'PRE' && when(verdict));
    /** An advance whose worker dies as it is about to make the POST calls of the machines it is ending: what it recorded before stays, the machines are not ended. */
    const dyingBeforePostCalls = advanceWith({ ...stepCalls, runPageStepCalls: (i, options) => (i.phase === 'POST' ? Promise.reject(new Error('the worker died')) : stepCalls.runPageStepCalls(i, options)) });
    /** How many of the run's machines not ended yet have a result of the step `name` recorded. */
    const unendedWith = async (name: string) => (await database.sql<Array<{ n: number }>>`select count(*)::int as n from machine_runs where run_id = ${begun.runId} and ended_at is null and step_results @> ${JSON.stringify([{ name }])}::jsonb`)[0]!.n;
    return { activities, begun, input, advancing, advanceWith, dyingWhen, dyingAfterPre, dyingBeforePostCalls, unendedWith, stepCalls };
  }

  it('an advance whose worker dies mid-way, once among its PRE calls and once among its POST calls: the retries make no call twice, hand each machine one job and end it once', async () => {
    const agents = [await enroll(), await enroll(), await enroll()];
    const deploymentId = await createDeployment('advance dies', agents, [
      { name: 'drain', phase: 'PRE', http: { url: `${base}/crash-pre` } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/crash-post` } },
    ]);
    const { activities, advancing, dyingWhen, begun } = await advancedRun(deploymentId, agents, { concurrency: 3 });
    const machineOf = new Map((await database.sql<Array<{ id: string; machine_id: string }>>`select id, machine_id from machine_runs where run_id = ${begun.runId}`).map((r) => [r.id, r.machine_id]));
    /** An advance whose worker dies right after the call of `phase` on the machine `dies` was made and recorded. */
    const dyingAdvance = (phase: 'PRE' | 'POST', dies: Agent) => dyingWhen((p, machineRunId) => p === phase && machineOf.get(machineRunId) === dies.machineId);
    const preRecorded = async () => (await database.sql<Array<{ n: number }>>`select count(*)::int as n from machine_runs where run_id = ${begun.runId} and step_results @> '[{"name":"drain"}]'`)[0]!.n;

    // The first attempt dies once the second machine's PRE call is recorded (the others', made at the same time, are recorded too).
    await expect(advancing(dyingAdvance('PRE', agents[1]!))).rejects.toThrow('the worker died');
    await waitUntil(preRecorded, (n) => n === 3, 10_000, 'the PRE calls made at once to be recorded');
    expect(agents.map((a) => a.jobs.length)).toEqual([0, 0, 0]);
    // The retry hands the jobs out without calling again, and dies once the third machine's POST call is recorded.
    await expect(advancing(dyingAdvance('POST', agents[2]!))).rejects.toThrow('the worker died');
    // The next retry ends what is left: no call made again.
    const outcome = await advancing(activities.advanceMachines);
    expect(outcome).toMatchObject({ done: true, failed: 0, pendingLeft: false, halts: [] });
    expect(agents.map((a) => [callsOf('/crash-pre', a).length, callsOf('/crash-post', a).length, a.jobs.length])).toEqual(Array(3).fill([1, 1, 1]));
    // Each PRE call before the machine's job.
    expect(agents.every((a) => calls.indexOf(callsOf('/crash-pre', a)[0]!) < a.jobs[0]!.callsBefore)).toBe(true);
    const rows = await database.sql<Array<{ machine_name: string; status: string; steps: string; ends: number }>>`
      select m.machine_name, m.status::text, (select string_agg(s->>'name' || '=' || (s->>'status'), ',') from jsonb_array_elements(m.step_results) s) as steps,
        (select count(*)::int from run_logs l where l.machine_run_id = m.id and l.stream = 'server' and l.line ~ ': SUCCEEDED') as ends
      from machine_runs m where m.run_id = ${begun.runId} order by 1`;
    expect(rows.map((r) => [r.machine_name, r.status, r.steps, r.ends])).toEqual(agents.map((a) => [a.name, 'SUCCEEDED', 'drain=SUCCEEDED,undrain=SUCCEEDED', 1]));
  }, 120_000);

  it("a PRE HALT_RUN mid-page: the page's machines not yet called stay PENDING and are settled NOT_STARTED with the halt; none of them gets a job or a call", async () => {
    // Named so that the page, in name order, calls the well machine, then the sick one, then the three others.
    const all: Agent[] = [];
    for (const name of ['midhalt-1', 'midhalt-2-sick', 'midhalt-3', 'midhalt-4', 'midhalt-5']) all.push(await enroll({ name }));
    const deploymentId = await createDeployment('pre halt mid-page', all, [{ name: 'gate', phase: 'PRE', onFailure: 'HALT_RUN', http: { url: `${base}/health` } }]);
    // One page of five machines (concurrency 5), their calls made one at a time: the halt comes with three machines of the page not called yet.
    const { activities, advancing, advanceWith, stepCalls, begun } = await advancedRun(deploymentId, all, { concurrency: 5, steps: { pre: true, post: false } });
    const outcome = await advancing(advanceWith(stepCalls, 1));
    const reason = 'Pre-step "gate" failed: answered HTTP 503 (expected 2xx): unhealthy';
    expect(outcome).toMatchObject({ done: true, failed: 1, pendingLeft: true, halts: [reason] });
    const pending = await database.sql<Array<{ machine_name: string }>>`select machine_name from machine_runs where run_id = ${begun.runId} and status = 'PENDING' order by 1`;
    expect(pending.map((r) => r.machine_name)).toEqual(['midhalt-3', 'midhalt-4', 'midhalt-5']);
    // What the run's workflow does once the advance is through with machines left (unstartedReason).
    await new MockActivityEnvironment().run(activities.settleMachineRuns, { runId: begun.runId, ring: null, running: false, status: 'NOT_STARTED' as const, reason: haltedReason(outcome.halts!) });
    const done = await run(begun.runId);
    expect(all.map((a) => [a.name, machine(done, a).status, machine(done, a).error])).toEqual([
      ['midhalt-1', 'SUCCEEDED', null],
      ['midhalt-2-sick', 'FAILED', `${reason}.`],
      ...all.slice(2).map((a) => [a.name, 'NOT_STARTED', `Not started: the run was halted by a step (${reason}).`]),
    ]);
    expect(all.slice(2).map((a) => machine(done, a).stepResults)).toEqual([[], [], []]);
    expect(all.map((a) => [a.jobs.length, callsOf('/health', a).length])).toEqual([
      [1, 1],
      [0, 1],
      [0, 0],
      [0, 0],
      [0, 0],
    ]);
  }, 120_000);

  for (const onFailure of ['HALT_RUN', 'FAIL_MACHINE'] as const) {
    it(`a PRE ${onFailure} recorded by an advance whose worker then dies: the next advance ends that machine FAILED with its POST call made once (not NOT_STARTED with its calls left half made)`, async () => {
      const sick = await enroll({ suffix: '-sick' });
      const deploymentId = await createDeployment(`pre ${onFailure} dies`, [sick], [
        { name: 'gate', phase: 'PRE', onFailure, http: { url: `${base}/health` } },
        { name: 'undrain', phase: 'POST', http: { url: `${base}/crash-post` } },
      ]);
      const { activities, advancing, dyingAfterPre, begun } = await advancedRun(deploymentId, [sick]);
      // The worker dies once the PRE result is recorded, before the machine is ended.
      const dying = dyingAfterPre(() => true);
      await expect(advancing(dying)).rejects.toThrow('the worker died');
      const reason = 'Pre-step "gate" failed: answered HTTP 503 (expected 2xx): unhealthy';
      const outcome = await advancing(activities.advanceMachines);
      expect(outcome).toMatchObject({ done: true, failed: 1, pendingLeft: false, halts: onFailure === 'HALT_RUN' ? [reason] : [] });
      const done = await run(begun.runId);
      expect([machine(done, sick).status, machine(done, sick).error, machine(done, sick).stepResults.map((s) => [s.name, s.status])]).toEqual([
        'FAILED',
        `${reason}.`,
        [
          ['gate', 'FAILED'],
          ['undrain', 'SUCCEEDED'],
        ],
      ]);
      expect([callsOf('/health', sick).length, callsOf('/crash-post', sick).length, sick.jobs.length]).toEqual([1, 1, 0]);
    }, 120_000);
  }

  it("an advance whose worker dies once PRE scripts' results are recorded, before their machines end: the retry records none again, makes each POST call once, ends each machine once, and counts the halt once", async () => {
    const sick = { ...(await enroll({ name: 'scriptdies-1-sick' })), failScript: 'gate' };
    const well = await enroll({ name: 'scriptdies-2' });
    const deploymentId = await createDeployment('pre script dies', [sick, well], [
      { name: 'gate', phase: 'PRE', onFailure: 'HALT_RUN', script: { inline: 'check', timeoutSeconds: 60 } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/crash-post` } },
    ]);
    const { activities, advancing, dyingBeforePostCalls, unendedWith, begun } = await advancedRun(deploymentId, [sick, well], { steps: { pre: true, post: true, preScripts: true } });
    // The worker dies as the advance is about to make the POST calls of the machines it is ending: their PRE scripts' results are recorded, the machines not ended.
    await expect(advancing(dyingBeforePostCalls)).rejects.toThrow('the worker died');
    expect(await unendedWith('gate')).toBeGreaterThanOrEqual(1);
    const reason = 'Pre-step "gate" failed: exited with code 3';
    const outcome = await advancing(activities.advanceMachines);
    expect(outcome).toMatchObject({ done: true, failed: 1, pendingLeft: false, halts: [reason] });
    const done = await run(begun.runId);
    expect([sick, well].map((a) => [machine(done, a).status, machine(done, a).error, machine(done, a).stepResults.map((s) => [s.name, s.status])])).toEqual([
      ['FAILED', `${reason}.`, [['gate', 'FAILED'], ['undrain', 'SUCCEEDED']]],
      ['SUCCEEDED', null, [['gate', 'SUCCEEDED'], ['undrain', 'SUCCEEDED']]],
    ]);
    expect([sick, well].map((a) => [a.jobs.length, callsOf('/crash-post', a).length, done.logs.filter((l) => l.startsWith(`${a.name}: pre-step "gate" (script)`)).length, done.logs.filter((l) => /^[^:]+: (SUCCEEDED|FAILED)/.test(l) && l.startsWith(`${a.name}: `)).length])).toEqual([
      [1, 1, 1, 1],
      [1, 1, 1, 1],
    ]);
    // The job carried the script.
    expect(sick.jobs[0]!.job.scripts?.map((s) => s.name)).toEqual(['gate']);
  }, 120_000);

  it("an advance whose worker dies once POST scripts' results are recorded, before their machines end: the retry records none again, makes each POST call once, ends each machine once, and counts the halt once", async () => {
    const sick = { ...(await enroll({ name: 'postdies-1-sick' })), failScript: 'health' };
    const well = await enroll({ name: 'postdies-2' });
    const deploymentId = await createDeployment('post script dies', [sick, well], [
      { name: 'health', phase: 'POST', onFailure: 'HALT_RUN', script: { inline: 'check', timeoutSeconds: 60 } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/crash-post` } },
    ]);
    const { activities, advancing, dyingBeforePostCalls, unendedWith, begun } = await advancedRun(deploymentId, [sick, well], { steps: { pre: false, post: true, preScripts: true, postScripts: true } });
    // The worker dies as the advance is about to make the POST calls of the machines whose POST scripts reported: their results are recorded, the machines not ended.
    await expect(advancing(dyingBeforePostCalls)).rejects.toThrow('the worker died');
    expect(await unendedWith('health')).toBeGreaterThanOrEqual(1);
    const reason = 'Post-step "health" failed: exited with code 3';
    const outcome = await advancing(activities.advanceMachines);
    expect(outcome).toMatchObject({ done: true, failed: 1, pendingLeft: false, halts: [reason] });
    const done = await run(begun.runId);
    expect([sick, well].map((a) => [machine(done, a).status, machine(done, a).error, machine(done, a).stepResults.map((s) => [s.name, s.status])])).toEqual([
      ['FAILED', `${reason}.`, [['health', 'FAILED'], ['undrain', 'NOT_RUN']]],
      ['SUCCEEDED', null, [['health', 'SUCCEEDED'], ['undrain', 'SUCCEEDED']]],
    ]);
    // Each: its install job and its POST scripts' job once, the script's line once, its end once; the call made by the machine whose script succeeded only.
    expect([sick, well].map((a) => [a.jobs.map((j) => j.job.updates.length), callsOf('/crash-post', a).length, done.logs.filter((l) => l.startsWith(`${a.name}: post-step "health" (script)`)).length, done.logs.filter((l) => /^[^:]+: (SUCCEEDED|FAILED)/.test(l) && l.startsWith(`${a.name}: `)).length])).toEqual([
      [[2, 0], 0, 1, 1],
      [[2, 0], 1, 1, 1],
    ]);
  }, 120_000);

  it("an agent that does not report on its POST scripts: their job offered again once, then the machine fails with why, the scripts NOT_RUN and the POST call made; an agent lost during its install has its POST scripts NOT_RUN", async () => {
    const quiet = { ...(await enroll({ name: 'postquiet-1' })), silent: 'POST_SCRIPTS' as const };
    const lost = { ...(await enroll({ name: 'postquiet-2' })), silent: 'ALL' as const };
    const deploymentId = await createDeployment('post scripts unreported', [quiet, lost], [
      { name: 'restart app', phase: 'POST', script: { inline: 'systemctl restart app', timeoutSeconds: 60 } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/ok` } },
    ]);
    const { activities, advancing, begun } = await advancedRun(deploymentId, [quiet, lost], { installHeartbeatSeconds: 1, steps: { pre: false, post: true, preScripts: true, postScripts: true } });
    const outcome = await advancing(activities.advanceMachines);
    expect(outcome).toMatchObject({ done: true, failed: 2, pendingLeft: false });
    const done = await run(begun.runId);
    const why = 'the agent did not report on its post-step scripts (nothing for 1 s)';
    expect([quiet, lost].map((a) => [machine(done, a).status, machine(done, a).error, machine(done, a).stepResults.map((s) => [s.name, s.status, s.message])])).toEqual([
      ['FAILED', 'The agent did not report on its post-step scripts (nothing for 1 s).', [['restart app', 'NOT_RUN', why], ['undrain', 'SUCCEEDED', null]]],
      ['FAILED', 'The agent stopped reporting during the install (nothing for 1 s): it may have crashed or lost its connection. The next assessment shows what was installed.', [['restart app', 'NOT_RUN', 'the agent was not there to run it'], ['undrain', 'SUCCEEDED', null]]],
    ]);
    // The quiet agent got its POST scripts' job twice (offered again after the first silence, the same job), the lost one its install job twice and no other.
    expect([quiet, lost].map((a) => a.jobs.map((j) => (j.job.scripts ?? []).map((x) => x.name)))).toEqual([[[], ['restart app'], ['restart app']], [[], []]]);
    expect(new Set(quiet.jobs.slice(1).map((j) => j.job.machineRunId)).size).toBe(1);
  }, 120_000);

  it('a run canceled while a machine runs its POST scripts: the machine ends CANCELED, its scripts and POST call recorded as not run, the job withdrawn', async () => {
    const agent = { ...(await enroll({ name: 'postcancel-1' })), silent: 'POST_SCRIPTS' as const };
    const deploymentId = await createDeployment('post scripts canceled', [agent], [
      { name: 'restart app', phase: 'POST', script: { inline: 'systemctl restart app', timeoutSeconds: 60 } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/ok` } },
    ]);
    const runId = await runNow(deploymentId);
    await untilRun(runId, [agent], () => agent.jobs.length === 2, 'the POST scripts to go to the agent');
    await query('mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }', { id: runId });
    const done = await untilRun(runId, [agent], ended, 'the run to end');
    expect([done.status, machine(done, agent).status, machine(done, agent).stepResults.map((s) => [s.name, s.status, s.message])]).toEqual([
      'CANCELED',
      'CANCELED',
      [['restart app', 'NOT_RUN', 'the run was canceled'], ['undrain', 'NOT_RUN', 'the run was canceled']],
    ]);
    expect(callsOf('/ok', agent)).toEqual([]);
    const open = await database.sql`select id from agent_commands where post_steps_machine_run_id is not null and machine_id = ${agent.machineId} and canceled_at is null`;
    expect(open).toEqual([]);
  }, 120_000);

  it('a PRE GO_ON recorded together with a PRE HALT_RUN by an advance whose worker then dies: that machine has started, and the next advance hands it its job although the run is halted', async () => {
    const sick = await enroll({ name: 'carryhalt-1-sick' });
    const well = await enroll({ name: 'carryhalt-2' });
    const deploymentId = await createDeployment('pre halt dies', [sick, well], [
      { name: 'gate', phase: 'PRE', onFailure: 'HALT_RUN', http: { url: `${base}/health` } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/crash-post` } },
    ]);
    const { activities, advancing, dyingAfterPre, begun } = await advancedRun(deploymentId, [sick, well]);
    // Both machines are called at once; the worker dies once the sick one's PRE result is recorded.
    const dying = dyingAfterPre((verdict) => verdict.action === 'HALT_RUN');
    await expect(advancing(dying)).rejects.toThrow('the worker died');
    const preRecorded = async () => (await database.sql<Array<{ n: number }>>`select count(*)::int as n from machine_runs where run_id = ${begun.runId} and status = 'PENDING' and step_results @> '[{"name":"gate"}]'`)[0]!.n;
    await waitUntil(preRecorded, (n) => n === 2, 10_000, 'both PRE calls to be recorded');
    const reason = 'Pre-step "gate" failed: answered HTTP 503 (expected 2xx): unhealthy';
    const outcome = await advancing(activities.advanceMachines);
    expect(outcome).toMatchObject({ done: true, failed: 1, pendingLeft: false, halts: [reason] });
    const done = await run(begun.runId);
    expect([sick, well].map((a) => [machine(done, a).status, machine(done, a).stepResults.map((s) => [s.name, s.status])])).toEqual([
      ['FAILED', [['gate', 'FAILED'], ['undrain', 'SUCCEEDED']]],
      ['SUCCEEDED', [['gate', 'SUCCEEDED'], ['undrain', 'SUCCEEDED']]],
    ]);
    expect([sick, well].map((a) => [callsOf('/health', a).length, callsOf('/crash-post', a).length, a.jobs.length])).toEqual([
      [1, 1, 0],
      [1, 1, 1],
    ]);
  }, 120_000);

  it('a run canceled while a machine is under way but still PENDING (its PRE call made, its job not handed out): the machine ends CANCELED with its POST call recorded as not run, and never made', async () => {
    const agent = await enroll({ suffix: '-underway' });
    const deploymentId = await createDeployment('cancel under way', [agent], [
      { name: 'drain', phase: 'PRE', http: { url: `${base}/crash-pre` } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/crash-post` } },
    ]);
    const { activities, advancing, dyingAfterPre, begun } = await advancedRun(deploymentId, [agent]);
    // The worker dies once the PRE result is recorded: the machine is PENDING with its PRE call made.
    await expect(advancing(dyingAfterPre(() => true))).rejects.toThrow('the worker died');
    // What the run's workflow does when it is canceled (batchedRun.ts).
    await new MockActivityEnvironment().run(activities.settleMachineRuns, { runId: begun.runId, running: true, status: 'CANCELED' as const, reason: 'Not started: the run was canceled.', skipPostSteps: true });
    const done = await run(begun.runId);
    expect([machine(done, agent).status, machine(done, agent).error, machine(done, agent).stepResults.map((s) => [s.name, s.status, s.message])]).toEqual([
      'CANCELED',
      'The run was canceled.',
      [
        ['drain', 'SUCCEEDED', null],
        ['undrain', 'NOT_RUN', 'the run was canceled'],
      ],
    ]);
    expect([callsOf('/crash-pre', agent).length, callsOf('/crash-post', agent).length, agent.jobs.length]).toEqual([1, 0, 0]);
  }, 120_000);

  it("a PRE HALT_RUN whose call ends with no time left for the machine's POST calls: the next advance makes them and ends it FAILED, although the run is halted", async () => {
    const agents = [await enroll({ name: 'latehalt-1' }), await enroll({ name: 'latehalt-2' })];
    // The PRE call answers 503 after 3.5 s: past the 3 s in which an advance below may start calls.
    const deploymentId = await createDeployment('little time halt', agents, [
      { name: 'gate', phase: 'PRE', onFailure: 'HALT_RUN', http: { url: `${base}/late-health`, timeoutSeconds: 4 } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/late-undrain`, timeoutSeconds: 4 } },
    ]);
    const { advancing, advanceWith, stepCalls, begun } = await advancedRun(deploymentId, agents, { concurrency: 2 });
    const startToCloseMs = (CALLS_RESERVE_SECONDS + 4 + 3) * 1000;
    const first = await advancing(advanceWith(stepCalls, 1), startToCloseMs);
    expect(first.done).toBe(false);
    const pending = await database.sql<Array<{ machine_name: string; pre: boolean }>>`select machine_name, step_results @> '[{"phase":"PRE"}]' as pre from machine_runs where run_id = ${begun.runId} and status = 'PENDING' order by 1`;
    expect(pending.map((r) => [r.machine_name, r.pre])).toEqual([
      [agents[0]!.name, true],
      [agents[1]!.name, false],
    ]);
    const second = await advancing(advanceWith(stepCalls, 1), startToCloseMs);
    const reason = 'Pre-step "gate" failed: answered HTTP 503 (expected 2xx): unhealthy';
    expect(second).toMatchObject({ done: true, failed: 1, pendingLeft: true, halts: [reason] });
    const done = await run(begun.runId);
    expect([machine(done, agents[0]!).status, machine(done, agents[0]!).error, machine(done, agents[0]!).stepResults.map((s) => [s.name, s.status])]).toEqual([
      'FAILED',
      `${reason}.`,
      [
        ['gate', 'FAILED'],
        ['undrain', 'SUCCEEDED'],
      ],
    ]);
    // The other machine was never called: the halt keeps it for the settling (NOT_STARTED).
    expect([machine(done, agents[1]!).status, machine(done, agents[1]!).stepResults]).toEqual(['PENDING', []]);
    expect(agents.map((a) => [callsOf('/late-health', a).length, callsOf('/late-undrain', a).length, a.jobs.length])).toEqual([
      [1, 1, 0],
      [0, 0, 0],
    ]);
  }, 120_000);

  it("an advance with little time left starts no call it could not see through: the machines left wait for the next advance, each machine's calls made once, the run completes", async () => {
    const agents = [await enroll(), await enroll(), await enroll(), await enroll()];
    // Calls that take 700 ms each (a timeout of 2 s: a phase's calls may take 2 s on a machine).
    const deploymentId = await createDeployment('little time', agents, [
      { name: 'drain', phase: 'PRE', http: { url: `${base}/slow-pre`, timeoutSeconds: 2 } },
      { name: 'undrain', phase: 'POST', http: { url: `${base}/slow-post`, timeoutSeconds: 2 } },
    ]);
    const { advancing, advanceWith, stepCalls, begun } = await advancedRun(deploymentId, agents, { concurrency: 4 });
    // Each attempt times out after the reserve, a phase's 2 s and 1.5 s more: calls start only in an advance's first 1.5 s.
    const startToCloseMs = (CALLS_RESERVE_SECONDS + 2 + 1.5) * 1000;
    const advances: Array<{ from: number; to: number; outcome: AdvanceOutcome }> = [];
    for (let i = 0; i < 30 && !advances.at(-1)?.outcome.done; i++) {
      const from = Date.now();
      const outcome = await advancing(advanceWith(stepCalls, 1), startToCloseMs);
      advances.push({ from, to: Date.now(), outcome });
    }
    expect(advances.at(-1)!.outcome).toMatchObject({ done: true, failed: 0, pendingLeft: false });
    // Eight calls of 700 ms one at a time do not fit in one advance's 1.5 s: several advances made them.
    expect(advances.length).toBeGreaterThan(2);
    const slow = calls.filter((c) => c.path.startsWith('/slow'));
    expect(slow).toHaveLength(8);
    for (const c of slow) {
      const during = advances.find((a) => c.at >= a.from && c.at <= a.to)!;
      // Each call began within its advance's 1.5 s (the receiver got it a moment later) and ended before the advance did.
      expect(c.at - during.from).toBeLessThan(1_500 + 300);
      expect(c.at + 700).toBeLessThanOrEqual(during.to + 50);
    }
    expect(agents.map((a) => [callsOf('/slow-pre', a).length, callsOf('/slow-post', a).length, a.jobs.length])).toEqual(Array(4).fill([1, 1, 1]));
    const done = await run(begun.runId);
    expect(agents.map((a) => [machine(done, a).status, machine(done, a).stepResults.map((r) => r.status)])).toEqual(Array(4).fill(['SUCCEEDED', ['SUCCEEDED', 'SUCCEEDED']]));
  }, 120_000);

  it('refuses bad steps with BAD_USER_INPUT and the field', async () => {
    const agent = await enroll();
    const cases: Array<[unknown, string]> = [
      [{ phase: 'PRE', http: { url: 'ftp://example.com/x' } }, 'steps[0].http.url'],
      [{ phase: 'PRE', http: { url: `${base}/ok`, headers: [{ name: 'Authorization', secret: 'UNKNOWN_ONE' }] } }, 'steps[0].http.headers[0].secret'],
      [{ phase: 'PRE', script: { inline: 'true', timeoutSeconds: 1801 } }, 'steps[0].script.timeoutSeconds'],
      [{ phase: 'PRE', script: { inline: 'x'.repeat(70_000) } }, 'steps[0].script.inline'],
    ];
    for (const [i, [step, field]] of cases.entries()) {
      const input = { name: `bad steps ${i}`, osType: 'LINUX', machineIds: [agent.machineId], classifications: ['SECURITY'], windowMinutes: 30, onDemandOnly: true, steps: [step] };
      const response = await graphql(api.url, 'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { token: operator, variables: { input } });
      expect(response.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    }
  });

  /** RECORD_HISTORY=<dir> saves the run workflow's history for the replay test (test/history_files/). */
  async function recordHistory(workflowId: string, file: string): Promise<void> {
    const dir = process.env.RECORD_HISTORY;
    if (!dir) return;
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, file), historyToJSON(await temporal.client.workflow.getHandle(workflowId).fetchHistory()));
  }
});
