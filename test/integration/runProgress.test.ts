import { randomUUID } from 'node:crypto';
import { Client as UrqlClient, fetchExchange, subscriptionExchange } from '@urql/core';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import type { AgentCommand, InstallJob, JobUpdateState } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { ensureRun } from '../../src/db/runs.js';
import { announceRunStarted, createFleetPubSub } from '../../src/events/pubsub.js';
import { applyProgress, progressVariables, PROGRESS as CONSOLE_PROGRESS, RUN as CONSOLE_RUN, runOf, type Progress, type Run, type RunAnswer } from '../../web/src/runProgress.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack, waitUntil } from '../support/env.js';

interface ProgressEvent {
  seq: number;
  kind: string;
  run: { status: string };
  machineRun: { machineName: string; status: string } | null;
  updates: Array<{ name: string; status: string }>;
  lines: Array<{ id: number; line: string }>;
}

const PROGRESS = `subscription($runId: ID!, $after: Int) {
  deploymentRunProgress(runId: $runId, after: $after) {
    seq kind run { status } machineRun { machineName status } updates { name status } lines { id line }
  }
}`;

/** A subscriber on its own socket: what it received, and how to drop its socket as a network would. */
interface Follower {
  events: ProgressEvent[];
  errors: unknown[];
  client: Client;
}

/**
 * Progress that cannot be missed: every event of a run numbered, replayed from PostgreSQL after
 * `after`, then live; runs announced before they exist. The API, the worker and the real Temporal
 * dev server; agents that speak the agent protocol and report progress in batches.
 */
describe('deployment run progress: numbered, replayed, each event once', () => {
  let stack: RunStack;
  let database: Database;
  let api: ApiServer;
  let token: string;
  let enrollKey: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    stack = await startRunStack({ workerIdentity: 'progress-worker' });
    ({ database, api } = stack);
    token = await stack.token('OPERATOR');
    enrollKey = await stack.enrollmentKey('progress');
  }, 120_000);

  afterAll(async () => {
    for (const client of clients) await client.dispose();
    await stack?.close();
  });

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(api.url, q, { token, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  function socket(): Client {
    const client = createClient({
      url: api.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: 0,
      onNonLazyError: () => undefined,
    });
    clients.push(client);
    return client;
  }

  /** Subscribes to the run's progress on a socket of its own; resolves once the server has answered the first event or acknowledged. */
  function follow(runId: string, after: number | null, into: ProgressEvent[] = []): Follower {
    const client = socket();
    const follower: Follower = { events: into, errors: [], client };
    client.subscribe<{ deploymentRunProgress: ProgressEvent }>(
      { query: PROGRESS, variables: { runId, after } },
      { next: (message) => (message.data ? follower.events.push(message.data.deploymentRunProgress) : follower.errors.push(message.errors)), error: (error) => follower.errors.push(error), complete: () => undefined },
    );
    return follower;
  }

  const progressSeq = async (runId: string) => (await query<{ deploymentRun: { progressSeq: number; status: string } }>('query($id: ID!) { deploymentRun(id: $id) { progressSeq status } }', { id: runId })).deploymentRun;

  async function enroll(name: string) {
    const base = api.url.replace('/graphql', '');
    const enrolled = await new AgentClient(base).enroll(enrollKey, machineFacts({ hostname: name, bootId: 'boot-1' }));
    const client = new AgentClient(base, enrolled.credential);
    await client.sendReport(assessmentReport([0, 1, 2].map((i) => pendingUpdate({ name: `${name}-lib-${i}`, classification: 'SECURITY', availableVersion: `1.${i}-2`, installedVersion: `1.${i}-1` }))));
    return { name, machineId: enrolled.machineId, client, job: undefined as AgentCommand | undefined, seq: 0 };
  }
  type Agent = Awaited<ReturnType<typeof enroll>>;

  async function jobOf(agent: Agent): Promise<InstallJob> {
    await waitUntil(
      async () => {
        agent.job ??= (await agent.client.commands(0)).commands.find((c) => c.kind === 'INSTALL');
        return agent.job;
      },
      (job) => job !== undefined,
      60_000,
      `the install job of ${agent.name}`,
    );
    return agent.job!.install!;
  }

  /** One progress batch as an agent sends it: three lines and one update's state. */
  async function batch(agent: Agent, update: string, status: JobUpdateState['status']) {
    const at = new Date().toISOString();
    agent.seq += 1;
    const lines = [0, 1, 2].map((i) => ({ at, stream: 'stdout' as const, text: `${agent.name} batch ${agent.seq} line ${i}` }));
    const state: JobUpdateState = { name: update, arch: null, status, exitCode: status === 'SUCCEEDED' ? 0 : null, errorText: null, reason: null, installedVersion: null, startedAt: at, endedAt: status === 'SUCCEEDED' ? at : null };
    expect(await agent.client.sendJobEvents(agent.job!.id, { seq: agent.seq, lines, updates: [state] })).toEqual({ applied: true });
  }

  /** Every event once, numbered 1..last without a gap, and every line of the run once, in order. */
  async function expectWhole(events: ProgressEvent[], runId: string, last: number) {
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    const lines = await database.sql<Array<{ id: string }>>`select id from run_logs where run_id = ${runId} order by id`;
    expect(events.flatMap((e) => e.lines.map((l) => l.id))).toEqual(lines.map((l) => Number(l.id)));
  }

  it('announces a run before its first event, and replays every event once, in order, to a subscriber that came late or lost its socket', async () => {
    const agents = [await enroll('progress-a'), await enroll('progress-b')];
    const deploymentId = (
      await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
        input: { name: 'progress replay', osType: 'LINUX', machineIds: agents.map((a) => a.machineId), classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER' },
      })
    ).createDeployment.id;

    // Waiting for a run that does not exist yet. With since, a run created before the server set up
    // the subscription is announced too: no race between subscribing and running.
    const started: string[] = [];
    const beforeRun = new Date(Date.now() - 1000);
    socket().subscribe<{ deploymentRunsStarted: { id: string; status: string } }>(
      { query: 'subscription($id: ID!, $since: DateTimeISO) { deploymentRunsStarted(deploymentId: $id, since: $since) { id status } }', variables: { id: deploymentId, since: beforeRun.toISOString() } },
      { next: (m) => void (m.data && started.push(m.data.deploymentRunsStarted.id)), error: () => undefined, complete: () => undefined },
    );
    const runId = (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId })).runDeploymentNow.id;

    const early = follow(runId, 0);
    const [a, b] = agents as [Agent, Agent];
    const jobA = await jobOf(a);
    const jobB = await jobOf(b);

    // A subscriber that loses its socket after the first events, and subscribes again with the last seq it received.
    const dropping = follow(runId, 0);
    await batch(a, jobA.updates[0]!.name, 'IN_PROGRESS');
    await batch(b, jobB.updates[0]!.name, 'IN_PROGRESS');
    await expect.poll(() => dropping.events.length, { timeout: 30_000 }).toBeGreaterThanOrEqual(4);
    await dropping.client.dispose();
    const received = dropping.events.length;
    // Events published while it is away.
    await batch(a, jobA.updates[0]!.name, 'SUCCEEDED');
    await batch(a, jobA.updates[1]!.name, 'IN_PROGRESS');
    await batch(b, jobB.updates[0]!.name, 'SUCCEEDED');
    const missedFrom = (await progressSeq(runId)).progressSeq;
    expect(missedFrom).toBeGreaterThan(dropping.events.at(-1)!.seq);
    const back = follow(runId, dropping.events.at(-1)!.seq, dropping.events);

    // A subscriber that comes while the run is going, from the start.
    const late = follow(runId, 0);
    for (const agent of agents) {
      const job = agent === a ? jobA : jobB;
      const at = new Date().toISOString();
      const updates = job.updates.map((u) => ({ name: u.name, arch: u.arch, status: 'SUCCEEDED' as const, exitCode: 0, errorText: null, reason: null, installedVersion: u.availableVersion, startedAt: at, endedAt: at }));
      // a's result carries its last batch of lines (an agent from this version on); b's does not.
      const events = agent === a ? { seq: agent.seq + 1, lines: [0, 1].map((i) => ({ at, stream: 'agent' as const, text: `${agent.name} last line ${i}` })), updates: [] } : undefined;
      const result = { updates, rebootRequired: false, rebooting: false, timedOut: false, error: null, bootId: 'boot-1', ...(events ? { events } : {}) };
      expect(await agent.client.sendJobResult(agent.job!.id, result)).toEqual({ accepted: true });
      // Sent again (the answer lost): stored once, its lines too.
      expect(await agent.client.sendJobResult(agent.job!.id, result)).toEqual({ accepted: false });
    }
    const lastLines = await database.sql<Array<{ line: string }>>`select line from run_logs where run_id = ${runId} and line like '%last line%' order by id`;
    expect(lastLines.map((l) => l.line)).toEqual(['progress-a last line 0', 'progress-a last line 1']);
    const [stored] = await database.sql<Array<{ result: Record<string, unknown>; last_event_seq: number }>>`select result, last_event_seq from agent_commands where id = ${a.job!.id}`;
    expect(stored!.result).not.toHaveProperty('events');
    expect(stored!.last_event_seq).toBe(a.seq + 1);
    await waitUntil(() => progressSeq(runId), (run) => run.status === 'SUCCEEDED', 60_000, 'the run to succeed');
    // The run's last event is its status; nothing follows it.
    const last = (await progressSeq(runId)).progressSeq;
    // And one that comes after the run has ended.
    const after = follow(runId, 0);

    for (const follower of [early, back, late, after]) {
      await expect.poll(() => follower.events.at(-1)?.seq, { timeout: 30_000 }).toBe(last);
      expect(follower.errors).toEqual([]);
      await expectWhole(follower.events, runId, last);
      expect(follower.events.at(-1)).toMatchObject({ kind: 'RUN', run: { status: 'SUCCEEDED' } });
    }
    expect(received).toBeLessThan(missedFrom);
    expect(started).toEqual([runId]);

    // Runs announced since a time, after the fact: replayed.
    const since: string[] = [];
    const client = socket();
    client.subscribe<{ deploymentRunsStarted: { id: string } }>(
      { query: 'subscription($id: ID!, $since: DateTimeISO) { deploymentRunsStarted(deploymentId: $id, since: $since) { id } }', variables: { id: deploymentId, since: beforeRun.toISOString() } },
      { next: (m) => m.data && since.push(m.data.deploymentRunsStarted.id), error: () => undefined, complete: () => undefined },
    );
    await expect.poll(() => since, { timeout: 10_000 }).toEqual([runId]);
  });

  it('announces a run whose announcement was lost while the server was not listening, once its LISTEN is back', async () => {
    const agent = await enroll('listen-a');
    const deploymentId = (
      await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
        input: { name: 'listen break', osType: 'LINUX', machineIds: [agent.machineId], classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER' },
      })
    ).createDeployment.id;
    // Rows only: no workflow runs these runs.
    const publisher = await createFleetPubSub(database.sql);
    const made: string[] = [];
    const newRun = async () => {
      const id = (await ensureRun(database.db, { deploymentId, workflowId: `listen-break-${randomUUID()}`, trigger: 'MANUAL' })).run.id;
      made.push(id);
      return id;
    };
    // A run made before the subscription begins, its announcement lost: what happens to the first
    // probes below when they reach the server before it has begun the subscription (it has no
    // acknowledgement), as on a loaded machine. Older than the subscription, it is not announced,
    // neither live nor when the subscription reads what it missed.
    const older = await newRun();
    const started: string[] = [];
    socket().subscribe<{ deploymentRunsStarted: { id: string } }>(
      { query: 'subscription($id: ID!) { deploymentRunsStarted(deploymentId: $id) { id } }', variables: { id: deploymentId } },
      { next: (m) => void (m.data && started.push(m.data.deploymentRunsStarted.id)), error: () => undefined, complete: () => undefined },
    );
    // Live once a run announced now arrives; the probes before it may have been lost the same way.
    await expect.poll(async () => {
      announceRunStarted(publisher, deploymentId, await newRun());
      return started.length;
    }, { timeout: 15_000, interval: 300 }).toBeGreaterThan(0);

    // A run whose announcement is lost (never sent, as if sent while the LISTEN was down), then the
    // API's LISTEN connection is cut: it listens again, and the subscription reads what it missed.
    const unannounced = await newRun();
    await database.sql`select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and query ilike 'listen %' and pid <> pg_backend_pid()`;
    await expect.poll(() => started.includes(unannounced), { timeout: 20_000 }).toBe(true);
    // Every run made from the first one it announced on, the lost one too, each once; none before.
    expect(started.every((id) => made.includes(id))).toBe(true);
    const firstLive = Math.min(...started.map((id) => made.indexOf(id)));
    expect(started).not.toContain(older);
    expect([...started].sort()).toEqual(made.slice(firstLive).sort());
    expect(new Set(started).size).toBe(started.length);
  });

  it("keeps the console's run page whole across a dropped socket: it resubscribes after the last event it applied", async () => {
    const agent = await enroll('console-a');
    const deploymentId = (
      await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
        input: { name: 'console replay', osType: 'LINUX', machineIds: [agent.machineId], classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER' },
      })
    ).createDeployment.id;
    const runId = (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId })).runDeploymentNow.id;
    const job = await jobOf(agent);
    await batch(agent, job.updates[0]!.name, 'IN_PROGRESS');

    // The console's own client stack: urql over HTTP, subscriptions over graphql-ws retrying forever.
    const sockets: WebSocket[] = [];
    class TrackedWebSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols);
        sockets.push(this);
      }
    }
    const ws = createClient({ url: api.url.replace(/^http/, 'ws'), webSocketImpl: TrackedWebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: Infinity, retryWait: async () => undefined });
    clients.push(ws);
    const urql = new UrqlClient({
      url: api.url,
      preferGetMethod: false,
      fetchOptions: { headers: { authorization: `Bearer ${token}` } },
      exchanges: [
        fetchExchange,
        subscriptionExchange({ forwardSubscription: (request) => ({ subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query ?? '' }, sink) }) }) }),
      ],
    });
    const answer = await urql.query<{ deploymentRun: RunAnswer }>(CONSOLE_RUN, { id: runId }).toPromise();
    expect(answer.error).toBeUndefined();
    let page: Run = runOf(answer.data!.deploymentRun);
    const seq = { current: page.seq as number | null };
    const received: number[] = [];
    const subscription = urql.subscription<{ deploymentRunProgress: Progress }>(CONSOLE_PROGRESS, progressVariables(runId, seq)).subscribe((result) => {
      const event = result.data?.deploymentRunProgress;
      if (!event) return;
      received.push(event.seq);
      page = applyProgress(page, event);
      seq.current = page.seq;
    });
    try {
      await batch(agent, job.updates[0]!.name, 'SUCCEEDED');
      await expect.poll(() => page.seq, { timeout: 30_000 }).toBe((await progressSeq(runId)).progressSeq);
      // The network drops the socket; lines keep coming meanwhile.
      sockets.at(-1)!.terminate();
      await batch(agent, job.updates[1]!.name, 'IN_PROGRESS');
      await batch(agent, job.updates[1]!.name, 'SUCCEEDED');
      const at = new Date().toISOString();
      await agent.client.sendJobResult(agent.job!.id, {
        updates: job.updates.map((u) => ({ name: u.name, arch: u.arch, status: 'SUCCEEDED' as const, exitCode: 0, errorText: null, reason: null, installedVersion: u.availableVersion, startedAt: at, endedAt: at })),
        rebootRequired: false,
        rebooting: false,
        timedOut: false,
        error: null,
        bootId: 'boot-1',
      });
      await waitUntil(() => progressSeq(runId), (run) => run.status === 'SUCCEEDED', 60_000, 'the run to succeed');
      const last = (await progressSeq(runId)).progressSeq;
      await expect.poll(() => page.seq, { timeout: 30_000 }).toBe(last);
      expect(sockets.length).toBeGreaterThan(1);
      // Every event after the page's first read, once, in order, though the socket was replaced.
      const first = answer.data!.deploymentRun.progressSeq;
      expect(received).toEqual(Array.from({ length: last - first }, (_, i) => first + 1 + i));
      const lines = await database.sql<Array<{ id: string }>>`select id from run_logs where run_id = ${runId} order by id`;
      expect(page.logs.map((l) => l.id)).toEqual(lines.map((l) => Number(l.id)));
      expect(page.status).toBe('SUCCEEDED');
      expect(page.machineRuns.map((m) => m.status)).toEqual(['SUCCEEDED']);
    } finally {
      subscription.unsubscribe();
    }
  });

  it('says which run or deployment does not exist, and refuses a negative after', async () => {
    const client = socket();
    const errorOf = (q: string, variables: Record<string, unknown>) =>
      new Promise<unknown>((resolve) => client.subscribe({ query: q, variables }, { next: (m) => resolve(m.errors ?? m), error: resolve, complete: () => resolve('complete') }));
    expect(await errorOf(PROGRESS, { runId: '00000000-0000-4000-8000-000000000000', after: 0 })).toMatchObject([{ message: 'No deployment run with id 00000000-0000-4000-8000-000000000000.', extensions: { code: 'NOT_FOUND' } }]);
    expect(await errorOf('subscription($id: ID!) { deploymentRunsStarted(deploymentId: $id) { id } }', { id: '00000000-0000-4000-8000-000000000000' })).toMatchObject([{ extensions: { code: 'NOT_FOUND' } }]);
  });
});
