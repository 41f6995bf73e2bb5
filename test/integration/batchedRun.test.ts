import fs from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../src/activities/index.js';
import type { AgentClient } from '../../src/agent/client.js';
import type { AgentCommand, InstallJob, JobResult } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import { finishMachineRuns } from '../../src/db/batchedRuns.js';
import { planRunPage } from '../../src/db/runs.js';
import { planRingPage } from '../../src/db/rollouts.js';
import { createFleetPubSub } from '../../src/events/pubsub.js';
import type { Database } from '../../src/db/client.js';
import type { TemporalClient } from '../../src/temporal/connection.js';
import { machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack, waitUntil } from '../support/env.js';
import { enrollMachines } from '../support/machines.js';

interface Agent {
  name: string;
  machineId: string;
  client: AgentClient;
  /** Every INSTALL job this agent was handed, in order. */
  installs: AgentCommand[];
}

/** Every update of the job SUCCEEDED; `rebooting`: the agent reboots the machine after it. */
function succeeded(job: InstallJob, rebooting = false): JobResult {
  const at = new Date().toISOString();
  return {
    updates: job.updates.map((u) => ({ name: u.name, arch: u.arch, status: 'SUCCEEDED', exitCode: 0, errorText: null, reason: null, installedVersion: u.availableVersion, startedAt: at, endedAt: at })),
    rebootRequired: rebooting,
    rebooting,
    timedOut: false,
    error: null,
    bootId: 'boot-1',
  };
}

/** The tiny tunables this file's API puts in every run's input: several batches and continue-as-new in a run of a few machines. */
const BATCH_MACHINES = 2;
const HISTORY_EVENTS = 12;
const HEARTBEAT_SECONDS = 8;
/** Machines planned per page: a run of a few machines is planned in several pages. */
const PLAN_MACHINES = 3;

/**
 * A batched run (docs/deployments.md, "Runs of any size"): no workflow per machine, the machines
 * paged from PostgreSQL and advanced a batch at a time, the run's workflow continuing as new. Real
 * PostgreSQL, the real Temporal dev server, the API over HTTP, agents speaking the agent protocol.
 * The batch and the history limit are made tiny, so a run of a few machines goes through several
 * batches and executions.
 */
describe('batched runs: machines in PostgreSQL, advanced in batches, continued as new', () => {
  let stack: RunStack;
  let database: Database;
  let api: ApiServer;
  let temporal: TemporalClient;
  let admin: string;
  let enrollKey: string;
  let counter = 0;

  beforeAll(async () => {
    stack = await startRunStack({
      env: { FLEETPATCH_RUN_BATCH_MACHINES: String(BATCH_MACHINES), FLEETPATCH_RUN_HISTORY_EVENTS: String(HISTORY_EVENTS), FLEETPATCH_RUN_PLAN_MACHINES: String(PLAN_MACHINES), FLEETPATCH_INSTALL_HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS), FLEETPATCH_REBOOT_TIMEOUT_SECONDS: '60' },
      workerIdentity: 'batched-worker',
    });
    ({ database, api, temporal } = stack);
    admin = await stack.token('ADMIN');
    enrollKey = await stack.enrollmentKey('batched');
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
    const updates = [0, 1].map((i) => pendingUpdate({ name: `batched-lib-${i}`, classification: 'SECURITY', availableVersion: `1.${i}-2`, installedVersion: `1.${i}-1` }));
    const machines = await enrollMachines(api.url, enrollKey, Array.from({ length: count }, () => ({ facts: { hostname: `batched-${String(++counter).padStart(3, '0')}`, bootId: 'boot-1' }, updates })));
    return machines.map((m) => ({ name: m.name, machineId: m.machineId, client: m.agent, installs: [] }));
  }

  async function runNow(name: string, agents: Agent[], extra: Record<string, unknown> = {}): Promise<string> {
    const input = { name, osType: 'LINUX', machineIds: agents.map((a) => a.machineId), classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'IF_REQUIRED', ...extra };
    const deploymentId = (await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input })).createDeployment.id;
    return (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId })).runDeploymentNow.id;
  }

  /** One look at the agent's commands (no waiting), keeping its INSTALL jobs. */
  async function poll(agent: Agent): Promise<AgentCommand[]> {
    const installs = (await agent.client.commands(0)).commands.filter((c) => c.kind === 'INSTALL');
    agent.installs.push(...installs);
    return installs;
  }

  const runStatus = async (runId: string) => (await query<{ deploymentRun: { status: string } }>('query($id: ID!) { deploymentRun(id: $id) { status } }', { id: runId })).deploymentRun.status;
  const machineRuns = (runId: string) =>
    database.sql<Array<{ machine_name: string; status: string; error: string | null; reboot_outcome: string | null }>>`select machine_name, status, error, reboot_outcome from machine_runs where run_id = ${runId} order by machine_name`;
  const workflowIdOf = async (runId: string) => (await database.sql<Array<{ workflow_id: string }>>`select workflow_id from deployment_runs where id = ${runId}`)[0]!.workflow_id;

  /** Every execution of the run's workflow, oldest first, with its history. */
  async function executions(runId: string) {
    const workflowId = await workflowIdOf(runId);
    const found: Array<{ runId: string; events: number; children: number; continuedAsNew: boolean }> = [];
    // From the latest back to the first: each continued execution names the one before it.
    let current: string | undefined = (await temporal.client.workflow.getHandle(workflowId).describe()).runId;
    while (current) {
      type Event = { startChildWorkflowExecutionInitiatedEventAttributes?: unknown; workflowExecutionContinuedAsNewEventAttributes?: unknown; workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string | null } | null };
      const events: Event[] = (await temporal.client.workflow.getHandle(workflowId, current).fetchHistory()).events ?? [];
      found.unshift({
        runId: current,
        events: events.length,
        children: events.filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes).length,
        continuedAsNew: Boolean(events.at(-1)!.workflowExecutionContinuedAsNewEventAttributes),
      });
      current = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
    }
    return found;
  }

  /** The run's progress events as a subscriber replays them from PostgreSQL: numbered 1..N without a gap. */
  async function progressOf(runId: string) {
    const [run] = await database.sql<Array<{ progress_seq: number }>>`select progress_seq from deployment_runs where id = ${runId}`;
    const events = await database.sql<Array<{ seq: number; kind: string; machine_run_id: string | null }>>`select seq, kind, machine_run_id from run_progress_events where run_id = ${runId} order by seq`;
    return { last: Number(run!.progress_seq), events: events.map((e) => ({ ...e, seq: Number(e.seq) })) };
  }

  it('runs seven machines three at a time through several batches and executions: each handed one job, each result recorded once, every progress event there', async () => {
    const agents = await enroll(7);
    const runId = await runNow('batched seven', agents, { maxConcurrent: { value: 3, unit: 'COUNT' } });
    const [rebooter] = agents as [Agent];

    // The agents answer what they get, instantly; one of them reboots its machine and comes back with a new boot id.
    let mostOutstanding = 0;
    await waitUntil(
      async () => {
        const open = await database.sql<Array<{ n: number }>>`select count(*)::int as n from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId} and c.completed_at is null`;
        mostOutstanding = Math.max(mostOutstanding, open[0]!.n);
        for (const agent of agents) {
          for (const job of await poll(agent)) {
            const reboots = agent === rebooter;
            expect(await agent.client.sendJobResult(job.id, succeeded(job.install!, reboots))).toEqual({ accepted: true });
            // A result resent (its answer lost) is kept once.
            expect(await agent.client.sendJobResult(job.id, succeeded(job.install!, reboots))).toEqual({ accepted: false });
            if (reboots) await agent.client.checkIn(machineFacts({ hostname: agent.name, bootId: 'boot-2' }));
          }
        }
        return runStatus(runId);
      },
      (status) => status === 'SUCCEEDED',
      90_000,
      'the run to succeed',
    );
    expect(agents.map((a) => a.installs.length)).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(mostOutstanding).toBeLessThanOrEqual(3);
    const runs = await machineRuns(runId);
    expect(runs.map((m) => m.status)).toEqual(Array(7).fill('SUCCEEDED'));
    expect(runs[0]!.reboot_outcome).toBe('REBOOTED');
    const results = await database.sql<Array<{ status: string; n: number }>>`select status, count(*)::int as n from update_results where run_id = ${runId} group by status`;
    expect(results).toEqual([{ status: 'SUCCEEDED', n: 14 }]);
    // Each machine asked for a fresh assessment once its machine run ended.
    const assess = await database.sql<Array<{ n: number }>>`select count(distinct machine_id)::int as n from agent_commands where kind = 'ASSESS' and machine_id in ${database.sql(agents.map((a) => a.machineId))}`;
    expect(assess[0]!.n).toBe(7);

    // Progress: every event numbered without a gap, each machine run's end announced, the run's end last.
    const progress = await progressOf(runId);
    expect(progress.events.map((e) => e.seq)).toEqual(Array.from({ length: progress.last }, (_, i) => i + 1));
    const ids = await database.sql<Array<{ id: string }>>`select id from machine_runs where run_id = ${runId}`;
    for (const { id } of ids) expect(progress.events.some((e) => e.kind === 'MACHINE' && e.machine_run_id === id)).toBe(true);
    expect(progress.events.at(-1)!.kind).toBe('RUN');
    // Each machine run ended once: one line of its end in its job stream.
    const endLines = await database.sql<Array<{ machine_run_id: string; n: number }>>`
      select machine_run_id, count(*)::int as n from run_logs where run_id = ${runId} and machine_run_id is not null and stream = 'server' and line ~ ': (SUCCEEDED|FAILED|TIMED_OUT|CANCELED)' group by machine_run_id`;
    expect(endLines.map((l) => l.n)).toEqual(Array(7).fill(1));
    // Planned three at a time (three pages), the planning in the job stream.
    const runLines = await database.sql<Array<{ line: string }>>`select line from run_logs where run_id = ${runId} and machine_run_id is null order by id`;
    expect(runLines.map((l) => l.line)).toEqual(expect.arrayContaining([expect.stringMatching(/^Run started: planning its machines 3 at a time, window until /), 'Planned: 7 machine(s).']));

    // No workflow per machine, several executions (continue-as-new), each history short.
    const chain = await executions(runId);
    expect(chain.length).toBeGreaterThanOrEqual(2);
    for (const execution of chain) {
      expect(execution.events).toBeLessThanOrEqual(HISTORY_EVENTS + 12);
      expect(execution.children).toBe(0);
    }
    expect(chain.map((e) => e.continuedAsNew)).toEqual([...Array(chain.length - 1).fill(true), false]);
    await recordHistory(runId, 'deploymentRunBatched.json');
  }, 150_000);

  it('agents woken together take their own jobs; their reports arriving at once are stored together, each answered once it is stored: every progress batch and result once, a resent one not again', async () => {
    const agents = await enroll(8);
    // Every agent long-polling as the run starts: woken together by the jobs' hand-over, each takes its own job, once.
    const parked = agents.map((a) => a.client.commands(30));
    const runId = await runNow('batched together', agents);
    const answers = await Promise.all(parked);
    answers.forEach((answer, i) => agents[i]!.installs.push(...answer.commands.filter((c) => c.kind === 'INSTALL')));
    expect(agents.map((a) => a.installs.length)).toEqual(Array(8).fill(1));
    const owners = await database.sql<Array<{ id: string; machine_id: string }>>`select c.id, c.machine_id from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId}`;
    expect(new Map(owners.map((o) => [o.id, o.machine_id]))).toEqual(new Map(agents.map((a) => [a.installs[0]!.id, a.machineId])));
    const at = new Date().toISOString();
    // Progress of every agent at once, then every result at once, each result sent twice in the same moment (its answer taken as lost).
    const applied = await Promise.all(
      agents.map((a) => {
        const job = a.installs[0]!;
        const first = job.install!.updates[0]!;
        return a.client.sendJobEvents(job.id, {
          seq: 1,
          lines: [{ at, stream: 'stdout', text: `installing ${first.name} on ${a.name}` }],
          updates: [{ name: first.name, arch: first.arch, status: 'IN_PROGRESS', exitCode: null, errorText: null, reason: null, installedVersion: null, startedAt: at, endedAt: null }],
        });
      }),
    );
    expect(applied).toEqual(Array(8).fill({ applied: true }));
    const accepted = await Promise.all(agents.flatMap((a) => [a.client.sendJobResult(a.installs[0]!.id, succeeded(a.installs[0]!.install!)), a.client.sendJobResult(a.installs[0]!.id, succeeded(a.installs[0]!.install!))]));
    expect(accepted.filter((a) => a.accepted)).toHaveLength(8);
    expect(accepted.filter((a) => !a.accepted)).toHaveLength(8);
    await waitUntil(() => runStatus(runId), (status) => status === 'SUCCEEDED', 60_000, 'the run to succeed');
    const results = await database.sql<Array<{ status: string; n: number }>>`select status, count(*)::int as n from update_results where run_id = ${runId} group by status`;
    expect(results).toEqual([{ status: 'SUCCEEDED', n: 16 }]);
    const lines = await database.sql<Array<{ n: number }>>`select count(*)::int as n from run_logs where run_id = ${runId} and stream = 'stdout'`;
    expect(lines[0]!.n).toBe(8);
    // Each batch's and each result's progress event, numbered without a gap.
    const progress = await progressOf(runId);
    expect(progress.events.map((e) => e.seq)).toEqual(Array.from({ length: progress.last }, (_, i) => i + 1));
    expect(progress.events.filter((e) => e.kind === 'UPDATES')).toHaveLength(16);
    // What each machine learned of its updates' durations: once per update, from its one result.
    const learned = await database.sql<Array<{ samples: number }>>`select samples from update_durations where machine_id in ${database.sql(agents.map((a) => a.machineId))}`;
    expect(learned.map((l) => l.samples)).toEqual(Array(16).fill(1));
  }, 120_000);

  it('ends the machines of one look together, in one transaction: each once, its updates settled, its job withdrawn; ending them again changes nothing', async () => {
    const agents = await enroll(4);
    const runId = await runNow('batched ended together', agents);
    await waitUntil(
      () => database.sql`select c.id from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId}`,
      (rows) => rows.length === 4,
      60_000,
      'four jobs handed over',
    );
    const ids = (await database.sql<Array<{ id: string }>>`select id from machine_runs where run_id = ${runId} order by machine_name`).map((r) => r.id);
    const ends = ids.map((machineRunId) => ({ machineRunId, agentLost: true, error: 'lost in a test' }));
    const first = await finishMachineRuns(database.db, runId, [...ends, ends[0]!], (row, end) => `${row.machineName}: ${row.status}: ${end.error}.`);
    expect(first.statuses).toEqual(Array(5).fill('FAILED'));
    expect(first.progress.map((e) => e.kind)).toEqual(Array(4).fill(['LINES', 'MACHINE']).flat());
    // One transaction: one clock reading for all four.
    const ended = await database.sql<Array<{ n: number }>>`select count(distinct ended_at)::int as n from machine_runs where run_id = ${runId}`;
    expect(ended[0]!.n).toBe(1);
    const updates = await database.sql<Array<{ status: string; reason: string | null }>>`select status, reason from update_results where run_id = ${runId}`;
    expect(updates).toEqual(Array(8).fill({ status: 'NOT_ATTEMPTED', reason: 'lost in a test' }));
    const jobs = await database.sql<Array<{ canceled: boolean }>>`select c.canceled_at is not null as canceled from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId}`;
    expect(jobs.map((j) => j.canceled)).toEqual([true, true, true, true]);
    // A retried advance ends them again: nothing changes, nothing is announced.
    const again = await finishMachineRuns(database.db, runId, ends, () => 'never written');
    expect(again).toEqual({ statuses: Array(4).fill('FAILED'), progress: [] });
    // Ended behind the advance's back, which counts them running until its next hand-back: the run is canceled instead of waited for.
    await query('mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }', { id: runId });
    await waitUntil(() => runStatus(runId), (status) => status === 'CANCELED', 60_000, 'the run to end');
    expect((await machineRuns(runId)).map((m) => m.status)).toEqual(Array(4).fill('FAILED'));
    const endLines = await database.sql<Array<{ n: number }>>`select count(*)::int as n from run_logs where run_id = ${runId} and stream = 'server' and line like '%lost in a test%'`;
    expect(endLines[0]!.n).toBe(4);
    const progress = await progressOf(runId);
    expect(progress.events.map((e) => e.seq)).toEqual(Array.from({ length: progress.last }, (_, i) => i + 1));
  }, 120_000);

  it('a canceled run ends its running and waiting machines CANCELED and withdraws the jobs handed over: no agent receives one afterwards', async () => {
    const agents = await enroll(5);
    const runId = await runNow('batched cancel', agents, { maxConcurrent: { value: 2, unit: 'COUNT' } });
    const jobs = () => database.sql<Array<{ canceled_at: Date | null }>>`select c.canceled_at from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId}`;
    await waitUntil(jobs, (rows) => rows.length === 2, 60_000, 'two jobs handed over');
    const [taken] = await poll(agents[0]!);
    await query('mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }', { id: runId });
    await waitUntil(() => runStatus(runId), (status) => status === 'CANCELED', 60_000, 'the run to be canceled');
    expect((await jobs()).every((j) => j.canceled_at !== null)).toBe(true);
    expect((await jobs()).length).toBe(2);
    for (const agent of agents.slice(1)) expect(await poll(agent)).toEqual([]);
    // The agent that had its job is refused its result (it drops the job: nothing more installed).
    await expect(agents[0]!.client.sendJobResult(taken!.id, succeeded(taken!.install!))).rejects.toMatchObject({ status: 409, code: 'CONFLICT' });
    expect((await machineRuns(runId)).map((m) => m.status)).toEqual(Array(5).fill('CANCELED'));
  }, 120_000);

  it('offers a silent agent its job again, then fails its machine run as lost; a failure threshold leaves the rest NOT_STARTED', async () => {
    const agents = await enroll(3);
    const runId = await runNow('batched silent', agents, { maxConcurrent: { value: 1, unit: 'COUNT' }, maxFailures: { value: 1, unit: 'COUNT' } });
    const [silent] = agents as [Agent];
    // The agent takes its job and says nothing: after a silence the job is offered again (redelivered to a poll), then the agent is lost.
    const [first] = await waitUntil(() => poll(silent), (jobs) => jobs.length === 1, 60_000, 'the job');
    const [again] = await waitUntil(() => poll(silent), (jobs) => jobs.length === 1, 60_000, 'the job offered again');
    expect(again!.id).toBe(first!.id);
    await waitUntil(() => runStatus(runId), (status) => status === 'FAILED', 60_000, 'the run to end');
    const runs = await machineRuns(runId);
    expect(runs.map((m) => m.status)).toEqual(['FAILED', 'NOT_STARTED', 'NOT_STARTED']);
    expect(runs[0]!.error).toMatch(/stopped reporting/);
    expect(runs[1]!.error).toMatch(/maximum failures/);
    for (const agent of agents.slice(1)) expect(await poll(agent)).toEqual([]);
  }, 120_000);

  it('runs rings in batches: the canary waits for an approval across continue-as-new, then the rest runs', async () => {
    const agents = await enroll(6);
    const runId = await runNow('batched rings', agents, {
      maxConcurrent: { value: 2, unit: 'COUNT' },
      rings: [
        { name: 'canary', percent: 50, gate: { requireApproval: true } },
        { name: 'rest', percent: 100 },
      ],
    });
    const answer = async () => {
      for (const agent of agents) for (const job of await poll(agent)) await agent.client.sendJobResult(job.id, succeeded(job.install!));
    };
    const rings = () => database.sql<Array<{ ring: number; status: string }>>`select ring, status from deployment_run_rings where run_id = ${runId} order by ring`;
    await waitUntil(
      async () => {
        await answer();
        return rings();
      },
      (r) => r[0]?.status === 'WAITING_FOR_APPROVAL',
      60_000,
      'the canary to wait for its approval',
    );
    // Only the canary's three machines ran.
    expect(agents.filter((a) => a.installs.length === 1).map((a) => a.name)).toEqual(agents.slice(0, 3).map((a) => a.name));
    await query('mutation($runId: ID!) { approveRing(runId: $runId, ring: 1) { id } }', { runId });
    await waitUntil(
      async () => {
        await answer();
        return runStatus(runId);
      },
      (status) => status === 'SUCCEEDED',
      90_000,
      'the run to succeed',
    );
    expect(agents.map((a) => a.installs.length)).toEqual([1, 1, 1, 1, 1, 1]);
    expect((await rings()).map((r) => r.status)).toEqual(['PROMOTED', 'DONE']);
    expect((await executions(runId)).length).toBeGreaterThanOrEqual(2);
  }, 150_000);

  /** RECORD_HISTORY=<dir> saves the run workflow's first and last executions' histories for the replay test (test/history_files/). */
  it('a planning cut short after its first page (the worker died) resumes after it: each machine planned once, the planning in the job stream', async () => {
    const agents = await enroll(5);
    const input = { name: 'paged planning', osType: 'LINUX', machineIds: agents.map((a) => a.machineId), classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER' };
    const deploymentId = (await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input })).createDeployment.id;
    const pubsub = await createFleetPubSub(database.sql);
    const activities = createActivities({ db: database.db, pubsub, workerIdentity: 'test' });
    const begin = { deploymentId, workflowId: `paged-planning-${deploymentId}`, trigger: 'MANUAL' as const, planMachines: 2 };

    // The first attempt dies at its first heartbeat, right after its first page committed.
    const dying = new MockActivityEnvironment();
    dying.on('heartbeat', () => {
      throw new Error('the worker died');
    });
    await expect(dying.run(activities.beginBatchedRun, begin)).rejects.toThrow('the worker died');
    const [run] = await database.sql<Array<{ id: string; status: string; planning: { after: { name: string }; planned: number } }>>`select id, status, planning from deployment_runs where workflow_id = ${begin.workflowId}`;
    expect(run!.status).toBe('IN_PROGRESS');
    expect(run!.planning).toMatchObject({ planned: 2, after: { name: agents[1]!.name } });

    // The retry plans the other three machines, two pages, heartbeating after each.
    const retry = new MockActivityEnvironment();
    const heartbeats: unknown[] = [];
    retry.on('heartbeat', (details: unknown) => heartbeats.push(details));
    const begun = await retry.run(activities.beginBatchedRun, begin);
    expect(begun).toMatchObject({ runId: run!.id, machineCount: 5, concurrency: 5 });
    expect(heartbeats).toEqual([4, 5]);
    const planned = await database.sql<Array<{ machine_name: string; results: number }>>`
      select m.machine_name, (select count(*)::int from update_results u where u.machine_run_id = m.id) as results from machine_runs m where m.run_id = ${run!.id} order by 1`;
    expect(planned).toEqual(agents.map((a) => ({ machine_name: a.name, results: 2 })));
    const lines = await database.sql<Array<{ line: string }>>`select line from run_logs where run_id = ${run!.id} and machine_run_id is null order by id`;
    expect(lines.map((l) => l.line)).toEqual([expect.stringMatching(/^Run started: planning its machines 2 at a time, window until /), 'Planned: 5 machine(s).']);

    // A page written from a position that has moved (an attempt thought dead, still running) is not written.
    const stale = await planRunPage(database.db, run!.id, { after: null, planned: 0 }, [{ machineId: agents[0]!.machineId, machineName: agents[0]!.name, rebootReserveSeconds: 0, results: [] }]);
    expect(stale.written).toBe(false);
    // And a retry after the planning ended plans nothing more.
    expect(await new MockActivityEnvironment().run(activities.beginBatchedRun, begin)).toMatchObject({ runId: run!.id, machineCount: 5 });
    expect(await database.sql`select 1 from machine_runs where run_id = ${run!.id}`).toHaveLength(5);
  }, 60_000);

  it("a ring's planning cut short after its first page (the worker died) resumes after it: each machine planned once, the run's update set fixed from every page", async () => {
    // Each machine of the first ring has an update of its own: the set the ring fixes spans its pages.
    const first = await enrollMachines(api.url, enrollKey, Array.from({ length: 5 }, (_, i) => ({ facts: { hostname: `ring-plan-${i + 1}`, bootId: 'boot-1' }, updates: [pendingUpdate({ name: `ring-lib-${i + 1}`, classification: 'SECURITY' })] })));
    const [rest] = await enrollMachines(api.url, enrollKey, [{ facts: { hostname: 'ring-plan-9', bootId: 'boot-1' }, updates: [pendingUpdate({ name: 'ring-lib-1', classification: 'SECURITY' }), pendingUpdate({ name: 'ring-lib-9', classification: 'SECURITY' })] }]);
    const rings = [{ name: 'first', machineIds: first.map((m) => m.machineId) }, { name: 'rest', percent: 100 }];
    const input = { name: 'paged ring planning', osType: 'LINUX', machineIds: [...first, rest!].map((m) => m.machineId), classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER', rings };
    const deploymentId = (await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input })).createDeployment.id;
    const pubsub = await createFleetPubSub(database.sql);
    const activities = createActivities({ db: database.db, pubsub, workerIdentity: 'test' });
    const begun = (await new MockActivityEnvironment().run(activities.beginBatchedRun, { deploymentId, workflowId: `paged-ring-${deploymentId}`, trigger: 'MANUAL' as const })) as Awaited<ReturnType<typeof activities.beginBatchedRun>>;
    expect(begun.rings!.map((r) => r.machineCount)).toEqual([5, 1]);
    const ring1 = { runId: begun.runId, ring: 1, batched: true, planMachines: 2 };

    // The first attempt dies at its first heartbeat, right after its first page committed.
    const dying = new MockActivityEnvironment();
    dying.on('heartbeat', () => {
      throw new Error('the worker died');
    });
    await expect(dying.run(activities.beginRing, ring1)).rejects.toThrow('the worker died');
    const [cut] = await database.sql<Array<{ status: string; planning: { planned: number; after: { name: string }; selected: unknown[] } }>>`select status, planning from deployment_run_rings where run_id = ${begun.runId} and ring = 1`;
    expect(cut).toMatchObject({ status: 'RUNNING', planning: { planned: 2, after: { name: 'ring-plan-2' }, selected: [{ name: 'ring-lib-1' }, { name: 'ring-lib-2' }] } });

    // The retry plans the other three, two pages, and fixes the update set from all five machines' selections.
    const retry = new MockActivityEnvironment();
    const heartbeats: unknown[] = [];
    retry.on('heartbeat', (details: unknown) => heartbeats.push(details));
    expect(await retry.run(activities.beginRing, ring1)).toMatchObject({ ring: 1, machines: [], concurrency: 5 });
    expect(heartbeats).toEqual([4, 5]);
    const planned = await database.sql<Array<{ machine_name: string; updates: string[] }>>`
      select m.machine_name, array(select u.name from update_results u where u.machine_run_id = m.id order by u.name) as updates from machine_runs m where m.run_id = ${begun.runId} order by 1`;
    expect(planned).toEqual([...first.map((m, i) => ({ machine_name: m.name, updates: [`ring-lib-${i + 1}`] })), { machine_name: 'ring-plan-9', updates: [] }]);
    const [run] = await database.sql<Array<{ update_set: Array<{ name: string }> }>>`select update_set from deployment_runs where id = ${begun.runId}`;
    expect(run!.update_set.map((m) => m.name)).toEqual(['ring-lib-1', 'ring-lib-2', 'ring-lib-3', 'ring-lib-4', 'ring-lib-5']);
    const [ring] = await database.sql<Array<{ planning: unknown }>>`select planning from deployment_run_rings where run_id = ${begun.runId} and ring = 1`;
    expect(ring!.planning).toBeNull();
    const lines = await database.sql<Array<{ line: string }>>`select line from run_logs where run_id = ${begun.runId} and machine_run_id is null and line ~ '^(first started|The run''s update set)' order by id`;
    expect(lines.map((l) => l.line)).toEqual([expect.stringMatching(/^first started: 5 machine\(s\), window until /), expect.stringMatching(/^The run's update set is fixed: 5 update\(s\)/)]);

    // A page written from a position that has moved is not written; a retry after the planning ended plans nothing more.
    const stale = await planRingPage(database.db, { runId: begun.runId, ring: 1, from: { after: null, planned: 0, selected: [] }, to: { after: null, planned: 1, selected: [] }, plans: [] });
    expect(stale.written).toBe(false);
    await new MockActivityEnvironment().run(activities.beginRing, ring1);
    expect(await database.sql`select 1 from update_results where run_id = ${begun.runId}`).toHaveLength(5);

    // The next ring installs only the frozen set: ring-lib-1, not ring-lib-9.
    await new MockActivityEnvironment().run(activities.beginRing, { ...ring1, ring: 2 });
    const next = await database.sql<Array<{ name: string; status: string }>>`select u.name, u.status from update_results u join machine_runs m on m.id = u.machine_run_id where m.run_id = ${begun.runId} and m.ring = 2 order by u.name`;
    expect(next.map((u) => [u.name, u.status])).toEqual([
      ['ring-lib-1', 'PENDING'],
      ['ring-lib-9', 'NOT_SELECTED'],
    ]);
  }, 60_000);

  async function recordHistory(runId: string, file: string): Promise<void> {
    const dir = process.env.RECORD_HISTORY;
    if (!dir) return;
    const workflowId = await workflowIdOf(runId);
    const chain = await executions(runId);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, file), historyToJSON(await temporal.client.workflow.getHandle(workflowId, chain[0]!.runId).fetchHistory()));
    // And the last execution: it begins from the state the one before carried (DeploymentRunInput.resume).
    fs.writeFileSync(path.join(dir, file.replace('.json', 'Continued.json')), historyToJSON(await temporal.client.workflow.getHandle(workflowId, chain.at(-1)!.runId).fetchHistory()));
  }
});
