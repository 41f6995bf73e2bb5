import { randomUUID } from 'node:crypto';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Database } from '../../src/db/client.js';
import { createEnrollmentKey } from '../../src/db/enrollmentKeys.js';
import { freePort } from '../../src/net.js';
import { startTcpBalancer, type TcpBalancer } from '../../src/simulator/balancer.js';
import { startSimulatedFleet, type SimulatedFleet } from '../../src/simulator/fleet.js';
import { DEFAULT_PROFILE } from '../../src/simulator/syntheticMachine.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { fleetStackEnv } from '../support/fleet.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';
import { metricValue } from '../support/signals.js';

/**
 * Simulated machines in the run: about twenty agents on each replica, so that the killed one holds
 * enough polls to see them move; with MAX_CONCURRENT machine runs at a time, three quarters of the
 * run are still to come when the kill happens, so it goes on while one API and one worker are down
 * and after they are back. More machines add minutes of load on two cores and assert nothing more.
 */
const MACHINES = 60;
const MAX_CONCURRENT = 10;
/** Agents whose replica died must poll a surviving one within this (measured: a few seconds; loose for a loaded host). */
const FAILOVER_BOUND_MS = 30_000;

/**
 * Three `fleetpatch server` processes behind a TCP load balancer (as a Kubernetes Service or
 * HAProxy would stand in front of them), two `fleetpatch worker` processes, one PostgreSQL and one
 * Temporal; a run over simulated agents that reach the APIs through the balancer. In the middle of
 * the run one API process and one worker are SIGKILLed, then started again. Every machine's result
 * must be recorded once, nothing installed twice, no machine failed, a subscription on a surviving
 * replica must stream every event of the run in order, and the killed replica's agents must poll a
 * surviving one within seconds.
 */
describe('three API processes and two workers, one of each SIGKILLed in the middle of a run', () => {
  let drop: () => Promise<void>;
  let database: Database;
  let token: string;
  const settings = temporalSettings(`failover-${randomUUID()}`);
  const servers: Spawned[] = [];
  const workers: Spawned[] = [];
  const started: Spawned[] = [];
  let serverEnv: (port: number) => NodeJS.ProcessEnv;
  let ports: number[];
  let balancer: TcpBalancer;
  let fleet: SimulatedFleet | undefined;
  let subscriptions: Client | undefined;
  let enrollKey: string;

  const apiUrl = (i: number) => `http://127.0.0.1:${ports[i]}/graphql`;

  function startServer(i: number): Spawned {
    const server = spawnFleetpatch(['server'], serverEnv(ports[i]!));
    servers[i] = server;
    started.push(server);
    return server;
  }

  function startWorker(i: number): Spawned {
    const worker = spawnFleetpatch(['worker'], serverEnv(0));
    workers[i] = worker;
    started.push(worker);
    return worker;
  }

  async function query<T>(i: number, q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(apiUrl(i), q, { token, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    token = await tokenFor(database, 'ADMIN');
    ports = [await freePort(), await freePort(), await freePort()];
    serverEnv = (port) => ({
      ...fleetStackEnv({ databaseUrl: fresh.url, temporalAddress: settings.address, port, taskQueue: settings.taskQueue }),
      // Every agent checking in every second (fleetStackEnv's pace) would be most of the load on two cores.
      FLEETPATCH_CHECKIN_SECONDS: '15',
      FLEETPATCH_INSTALL_HEARTBEAT_SECONDS: '60',
    });
    for (const i of [0, 1, 2]) startServer(i);
    for (const i of [0, 1]) startWorker(i);
    await Promise.all([...servers.map((s) => s.waitFor(/"msg":"API listening"/, 120_000)), ...workers.map((w) => w.waitFor(/"msg":"worker polling"/, 120_000))]);
    balancer = await startTcpBalancer(ports.map((p) => `127.0.0.1:${p}`));
    ({ secret: enrollKey } = await createEnrollmentKey(database.db, { description: 'failover', expiresAt: null, maxUses: null, defaultTags: ['failover'] }));
  }, 240_000);

  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const [name, list] of [['server', servers], ['worker', workers]] as const) {
        list.forEach((p, i) => console.error(`--- ${name} ${i} (last lines)\n${p.output().split('\n').slice(-30).join('\n')}`));
      }
      if (fleet) console.error(`--- simulator totals: ${JSON.stringify(fleet.totals())}`);
    });
  });

  afterAll(async () => {
    await subscriptions?.dispose();
    await fleet?.stop();
    await balancer?.close();
    await Promise.all(started.map((p) => stop(p, 'SIGKILL')));
    await database?.close();
    await drop?.();
  });

  it('records every machine once, fails none, keeps streaming on the survivors, and moves the killed replica\'s agents within seconds', async () => {
    fleet = await startSimulatedFleet({
      server: `http://${balancer.address}`,
      enrollKey,
      machines: MACHINES,
      // Two or so security updates a machine, each taking about a second and a half, never failing.
      profile: { ...DEFAULT_PROFILE, updatesPerMachine: 2, criticalShare: 0.5, securityShare: 0.5, rebootSuggestedShare: 0, installSeconds: 1.5, failureRate: 0 },
      prefix: 'failover',
      rampConcurrency: 20,
      seed: 18,
    });
    expect(fleet.joinFailures).toBe(0);

    // Every replica holds some of the agents' long-polls (the balancer hands connections out in turn).
    const pollsOn = async (i: number) => metricValue(await (await fetch(apiUrl(i).replace('/graphql', '/metrics'))).text(), 'fleetpatch_agent_long_polls_open') ?? 0;
    await waitUntil(async () => Promise.all([0, 1, 2].map(pollsOn)), (open) => open.every((n) => n > 0) && open.reduce((a, b) => a + b, 0) >= MACHINES * 0.9, 60_000, 'the agents polling on every replica');

    const machineIds = fleet.agents.map((a) => a.machineId!);
    const { createDeployment } = await query<{ createDeployment: { id: string } }>(1, 'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      input: { name: 'failover', osType: 'LINUX', machineIds, classifications: ['CRITICAL', 'SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER', maxConcurrent: { value: MAX_CONCURRENT, unit: 'COUNT' } },
    });
    const { runDeploymentNow } = await query<{ runDeploymentNow: { id: string } }>(1, 'mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    const runId = runDeploymentNow.id;

    // The run's progress, from its first event, on replica 1, which survives.
    type Progress = { seq: number; kind: string; run: { status: string } };
    const events: Array<Progress & { receivedAt: number }> = [];
    const subscriptionErrors: unknown[] = [];
    subscriptions = createClient({ url: apiUrl(1).replace('http', 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    subscriptions.subscribe<{ deploymentRunProgress: Progress }>(
      { query: 'subscription($id: ID!) { deploymentRunProgress(runId: $id, after: 0) { seq kind run { status } } }', variables: { id: runId } },
      { next: (m) => void (m.data ? events.push({ ...m.data.deploymentRunProgress, receivedAt: Date.now() }) : subscriptionErrors.push(m.errors)), error: (e) => void subscriptionErrors.push(e), complete: () => undefined },
    );

    const ended = async () => Number((await database.sql`select count(*) filter (where ended_at is not null) as n from machine_runs where run_id = ${runId}`)[0]!.n);
    // A quarter of the machines done: the run is well in flight, with jobs out on every replica.
    await waitUntil(ended, (n) => n >= MACHINES / 4, 240_000, 'a quarter of the machine runs ended');
    const eventsBeforeKill = events.length;
    expect(eventsBeforeKill).toBeGreaterThan(0);
    expect(balancer.backends[0]!.open).toBeGreaterThan(0);

    // Where the agents wait for their commands just before the kill: about a third on each replica.
    const pollsBefore = await Promise.all([0, 1, 2].map(pollsOn));
    expect(pollsBefore[0]).toBeGreaterThan(MACHINES / 10);
    const killedAt = Date.now();
    await Promise.all([stop(servers[0]!, 'SIGKILL'), stop(workers[0]!, 'SIGKILL')]);
    const endedAtKill = await ended();

    // The killed replica's agents lose their connections at once (their poll is sent again on a new
    // connection, which the balancer hands to a survivor): the survivors hold about every poll again.
    const everyPoll = 0.9 * pollsBefore.reduce((a, b) => a + b, 0);
    const survivors = await waitUntil(async () => (await pollsOn(1)) + (await pollsOn(2)), (n) => n >= everyPoll, FAILOVER_BOUND_MS * 2, 'the survivors to hold the killed replica\'s polls');
    const failoverMs = Date.now() - killedAt;
    console.log(`failover: long-polls before the kill ${pollsBefore.join(' + ')}; ${survivors} on the survivors ${(failoverMs / 1000).toFixed(1)} s after it`);
    // Machines go on finishing while one API and one worker are gone, and the subscription hears it.
    await waitUntil(ended, (n) => n > endedAtKill, 120_000, 'a machine run ended after the kill');
    const eventsWhileDown = events.length;
    expect(eventsWhileDown).toBeGreaterThan(eventsBeforeKill);

    const restartedAt = Date.now();
    startServer(0);
    startWorker(0);
    await Promise.all([servers[0]!.waitFor(/"msg":"API listening"/, 120_000), workers[0]!.waitFor(/"msg":"worker polling"/, 120_000)]);

    const final = await waitUntil(
      async () => (await query<{ deploymentRun: { status: string } }>(1, 'query($id: ID!) { deploymentRun(id: $id) { status } }', { id: runId })).deploymentRun.status,
      (status) => !['SCHEDULED', 'IN_PROGRESS'].includes(status),
      300_000,
      'the run to end',
    );
    // Each event carries the run as it is when delivered: the subscriber may still be catching up.
    const [{ last }] = (await database.sql`select max(seq)::int as last from run_progress_events where run_id = ${runId}`) as unknown as [{ last: number }];
    await waitUntil(async () => events.at(-1)?.seq ?? 0, (seq) => seq >= last, 120_000, `the subscription to deliver the run's last event (${last})`);

    // No spurious failure: every machine and every update succeeded.
    expect(final).toBe('SUCCEEDED');
    const machineRuns = await database.sql`select machine_id, status from machine_runs where run_id = ${runId}`;
    expect(machineRuns.length).toBe(MACHINES);
    expect(new Set(machineRuns.map((r) => r.machine_id as string)).size).toBe(MACHINES);
    expect(machineRuns.filter((r) => r.status !== 'SUCCEEDED')).toEqual([]);
    const results = await database.sql`select m.machine_id, u.name, u.status from update_results u join machine_runs m on m.id = u.machine_run_id where u.run_id = ${runId}`;
    expect(results.filter((r) => r.status !== 'SUCCEEDED')).toEqual([]);

    // Each machine's result recorded once, from one job: one install job per machine run, with its result.
    const jobs = await database.sql`select c.machine_id, count(*)::int as jobs, count(c.result)::int as results from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId} and c.kind = 'INSTALL' group by c.machine_id`;
    expect(jobs.filter((j) => j.jobs !== 1 || j.results !== 1)).toEqual([]);
    // Nothing installed twice, and what each machine installed is what the run recorded for it.
    const recorded = new Map<string, string[]>();
    for (const r of results) recorded.set(r.machine_id as string, [...(recorded.get(r.machine_id as string) ?? []), r.name as string].sort());
    const twice = fleet.agents.flatMap((a) => [...a.machine.installs].filter(([, n]) => n > 1).map(([name, n]) => `${a.hostname} ${name} ×${n}`));
    expect(twice).toEqual([]);
    expect(fleet.agents.filter((a) => a.counters.jobs > 1).map((a) => `${a.hostname}: ${a.counters.jobs} jobs`)).toEqual([]);
    for (const agent of fleet.agents) expect([...agent.machine.installs.keys()].sort(), agent.hostname).toEqual(recorded.get(agent.machineId!) ?? []);

    // The subscription on the surviving replica: every event of the run, once, in order, with no gap,
    // before the kill, while the replica and the worker were down, and after they came back.
    expect(subscriptionErrors).toEqual([]);
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(events.some((e) => e.receivedAt > restartedAt)).toBe(true);
    expect(events.at(-1)!.run.status).toBe(final);

    // The killed replica's agents (about a third) polled the survivors within seconds.
    expect(failoverMs).toBeLessThan(FAILOVER_BOUND_MS);
  }, 600_000);
});
