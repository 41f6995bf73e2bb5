import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Database } from '../../src/db/client.js';
import { recordRunProgress } from '../../src/db/runProgress.js';
import { announceRunProgress, createFleetPubSub, type FleetPubSub } from '../../src/events/pubsub.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { freePort } from '../../src/net.js';
import { connectTestDatabase, graphql, tokenFor, waitUntil } from '../support/env.js';
import { buildFleet, fleetStackEnv, SupervisedAgent, type FixtureMachine } from '../support/fleet.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';
import { startRestartablePostgres, startRestartableTemporal, type Restartable } from '../support/restartable.js';

/**
 * PostgreSQL, then Temporal, killed with SIGKILL and started again under a running `fleetpatch
 * server`, `fleetpatch worker` and a real agent on an apt fixture machine, with a deployment run in
 * flight each time. Nothing is restarted but the dependency: everything must recover by itself and
 * nothing may be lost (a report made while PostgreSQL was away is stored once it is back; the runs
 * complete; subscriptions go on).
 */
describe('PostgreSQL and Temporal restarts under a running fleet', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-restart-'));
  let pg: Restartable & { url: string };
  let temporal: Restartable & { address: string };
  let server: Spawned;
  let worker: Spawned;
  let database: Database;
  let url: string;
  let token: string;
  let machine: FixtureMachine;
  let agent: SupervisedAgent;
  let machineId: string;
  let deploymentId: string;
  let client: Client;

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(url, q, { token, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  /**
   * Every event of a subscription, as it arrives, once it is live for sure: `publish` (an event of
   * the test's own, through PostgreSQL like any other process's) is sent until one arrives.
   */
  async function collect<T>(q: string, variables: Record<string, unknown>, publish: (pubsub: FleetPubSub) => void | Promise<void>): Promise<T[]> {
    const events: T[] = [];
    client.subscribe<T>({ query: q, variables }, { next: (m) => m.data && events.push(m.data), error: (e) => events.push({ error: e } as T), complete: () => undefined });
    pubsub ??= await createFleetPubSub(database.sql);
    await waitUntil(
      async () => {
        await publish(pubsub!);
        await new Promise((r) => setTimeout(r, 200));
        return events.length;
      },
      (n) => n > 0,
      30_000,
      'a live subscription',
    );
    expect(events.filter((e) => 'error' in (e as object))).toEqual([]);
    return events;
  }
  let pubsub: FleetPubSub | undefined;

  const spooled = () => fs.readdirSync(path.join(machine.stateDir, 'spool')).filter((f) => f.endsWith('.json'));
  /** The run's status and its machine's; UNAVAILABLE while the API still answers SERVICE_UNAVAILABLE (it looks for PostgreSQL's return once a second). */
  const runStatus = async (runId: string) => {
    const response = await graphql<{ deploymentRun: { status: string; machineRuns: { edges: Array<{ node: { status: string } }> } } }>(url, 'query($id: ID!) { deploymentRun(id: $id) { status machineRuns { edges { node { status } } } } }', { token, variables: { id: runId } });
    if (response.errors?.every((e) => e.extensions?.code === 'SERVICE_UNAVAILABLE')) return { status: 'UNAVAILABLE', machineRuns: [] };
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    const run = response.data!.deploymentRun;
    return { status: run.status, machineRuns: run.machineRuns.edges.map((e) => e.node) };
  };
  const ended = (run: { status: string }) => !['SCHEDULED', 'IN_PROGRESS', 'UNAVAILABLE'].includes(run.status);

  /**
   * The agent's `apt-get install` waits while this file exists: the test decides when an install
   * ends, so that the agent reports its progress and result while a dependency is away.
   */
  const hold = path.join(work, 'hold-installs');

  /** apt-get on the agent's PATH: holds an install (not an assessment) while `hold` exists, then runs the real one. */
  function holdingAptGet(): string {
    const bin = path.join(work, 'bin');
    fs.mkdirSync(bin, { recursive: true });
    const real = execFileSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).trim();
    const script = `#!/bin/sh\ncase " $* " in *" install "*) if [ -e '${hold}' ]; then touch '${hold}.entered'; while [ -e '${hold}' ]; do sleep 0.1; done; fi;; esac\nexec '${real}' "$@"\n`;
    fs.writeFileSync(path.join(bin, 'apt-get'), script, { mode: 0o755 });
    return bin;
  }

  /** Starts a run and waits until the agent is installing (held). */
  async function runWithInstallHeld(): Promise<string> {
    fs.rmSync(`${hold}.entered`, { force: true });
    fs.writeFileSync(hold, '');
    const { runDeploymentNow } = await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId });
    await waitUntilInstallHeld(runDeploymentNow.id);
    return runDeploymentNow.id;
  }

  async function waitUntilInstallHeld(runId: string): Promise<void> {
    await waitUntil(async () => fs.existsSync(`${hold}.entered`), Boolean, 90_000, 'the agent installing');
    // The job the agent installs is the run's advance's: it reads the result from PostgreSQL, nothing else waits for it.
    await waitUntil(
      async () => database.sql`select c.id from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId}`,
      (rows) => rows.length === 1,
      60_000,
      'the install job handed over',
    );
  }

  const releaseInstall = () => fs.rmSync(hold, { force: true });

  beforeAll(async () => {
    [pg, temporal] = await Promise.all([startRestartablePostgres(), startRestartableTemporal()]);
    await migrateDatabase(pg.url);
    database = connectTestDatabase(pg.url);
    token = await tokenFor(database, 'ADMIN');
    const port = await freePort();
    const env = {
      ...fleetStackEnv({ databaseUrl: pg.url, temporalAddress: temporal.address, port, taskQueue: `restart-${randomUUID()}` }),
      // The agent looks at its package database every second: touching it makes a report.
      FLEETPATCH_PACKAGE_DB_CHECK_SECONDS: '1',
      // Silences of the agent (stopped on purpose, then an outage) stay well within it.
      FLEETPATCH_INSTALL_HEARTBEAT_SECONDS: '90',
    };
    url = `http://127.0.0.1:${port}/graphql`;
    // Debug: the test waits for the server's line about a refused agent request.
    server = spawnFleetpatch(['server'], { ...env, LOG_LEVEL: 'debug' });
    worker = spawnFleetpatch(['worker'], env);
    await Promise.all([server.waitFor(/"msg":"API listening"/), worker.waitFor(/"msg":"worker polling"/)]);
    const { createEnrollmentKey } = await query<{ createEnrollmentKey: { secret: string } }>('mutation { createEnrollmentKey(input: {description: "restarts"}) { secret } }');
    machine = (await buildFleet(work, ['apt'])).apt;
    machine.env = { ...machine.env, PATH: `${holdingAptGet()}:${machine.env.PATH ?? ''}` };
    agent = new SupervisedAgent(machine, url.replace('/graphql', ''), createEnrollmentKey.secret).start();
    const assessed = await waitUntil(
      async () => (await query<{ machines: { edges: Array<{ node: { id: string; lastAssessedAt: string | null } }> } }>('{ machines { edges { node { id lastAssessedAt } } } }')).machines.edges,
      (edges) => edges.length === 1 && edges[0]!.node.lastAssessedAt !== null,
      90_000,
      'the machine assessed',
    );
    machineId = assessed[0]!.node.id;
    deploymentId = (
      await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
        input: { name: 'restarts', osType: 'LINUX', machineIds: [machineId], classifications: ['CRITICAL', 'SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER' },
      })
    ).createDeployment.id;
    client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
  }, 240_000);

  // A failure shows what the processes said last.
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      for (const [name, output] of [['server', server?.output()], ['worker', worker?.output()], ['agent', agent?.output]] as const) console.error(`--- ${name} (last lines)\n${(output ?? '').split('\n').slice(-40).join('\n')}`);
    });
  });

  afterAll(async () => {
    releaseInstall();
    await client?.dispose();
    await agent?.kill();
    if (worker) await stop(worker);
    if (server) await stop(server);
    await database?.close();
    await Promise.all([pg?.stop(), temporal?.stop()]);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('PostgreSQL killed: requests fail fast meanwhile; a report made meanwhile is stored once it is back, and subscriptions go on', async () => {
    const machineEvents = await collect<{ machineChanged: { id: string; lastAssessedAt: string } }>('subscription($id: ID) { machineChanged(machineId: $id) { id lastAssessedAt } }', { id: machineId }, (p) =>
      p.publish('machineChanged', { machineId }),
    );
    await pg.kill();
    const down = await graphql(url, '{ machines { totalCount } }', { token });
    expect(down.errors?.[0]?.extensions?.code).toBe('SERVICE_UNAVAILABLE');

    // The package database changes: the agent assesses, and its report waits in its spool.
    const status = path.join(machine.root, 'var/lib/dpkg/status');
    fs.utimesSync(status, new Date(), new Date(Date.now() + 60_000));
    await waitUntil(async () => spooled(), (files) => files.length > 0, 60_000, 'a report in the agent spool');
    const report = JSON.parse(fs.readFileSync(path.join(machine.stateDir, 'spool', spooled()[0]!), 'utf8')) as { id: string; finishedAt: string };

    await pg.start();

    await waitUntil(async () => database.sql`select id from assessments where id = ${report.id}`, (rows) => rows.length === 1, 60_000, 'the spooled report stored');
    await waitUntil(async () => spooled(), (files) => files.length === 0, 30_000, 'an empty spool');
    // The subscription opened before the outage hears of it.
    await waitUntil(async () => machineEvents, (events) => events.some((e) => e.machineChanged && Date.parse(e.machineChanged.lastAssessedAt) >= Date.parse(report.finishedAt)), 30_000, 'the new assessment on machineChanged');
    await waitUntil(async () => (await fetch(url.replace('/graphql', '/readyz'))).status, (s) => s === 200, 30_000, '/readyz');
  }, 180_000);

  it('PostgreSQL killed with a run in flight: the worker retries its steps and the agent keeps its progress and result until PostgreSQL is back, and the run completes', async () => {
    // The run's first step meets the outage: the worker (stopped until then) takes it after the kill.
    fs.rmSync(`${hold}.entered`, { force: true });
    fs.writeFileSync(hold, '');
    worker.child.kill('SIGSTOP');
    const { runDeploymentNow } = await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId });
    const runId = runDeploymentNow.id;
    await pg.kill();
    worker.child.kill('SIGCONT');
    await worker.waitFor(/"activityType":"begin(Batched|Deployment)Run"[^\n]*ECONNREFUSED|ECONNREFUSED[^\n]*"activityType":"begin(Batched|Deployment)Run"/, 60_000);
    await pg.start();
    await waitUntilInstallHeld(runId);

    const runEvents = await collect<{ deploymentRunProgress: { seq: number; kind: string; run: { status: string } } }>('subscription($id: ID!) { deploymentRunProgress(runId: $id) { seq kind run { status } } }', { id: runId }, async (p) =>
      announceRunProgress(p, runId, await recordRunProgress(database.db, runId, [{ kind: 'RUN' }])),
    );
    // Killed again while the agent installs: the install ends now, and its progress is answered 503 while PostgreSQL is away.
    await pg.kill();
    releaseInstall();
    await server.waitFor(/"dependency":"DATABASE","route":"POST \/jobs\/:jobId\/(events|result)"[^\n]*"msg":"agent request refused: dependency unavailable"/, 60_000);

    await pg.start();

    // Its progress and result are stored once PostgreSQL is back and complete the install step;
    // demo-broken fails as always, so PARTIALLY_FAILED.
    await waitUntil(() => runStatus(runId), ended, 120_000, 'the run to end');
    expect((await runStatus(runId)).status).toBe('PARTIALLY_FAILED');
    // The run's subscription heard its end, and every event of the run once, in order, though
    // PostgreSQL (and with it the NOTIFYs) was away meanwhile.
    await waitUntil(async () => runEvents, (events) => events.some((e) => e.deploymentRunProgress?.run.status === 'PARTIALLY_FAILED'), 30_000, 'the end of the run on its subscription');
    const seqs = runEvents.map((e) => e.deploymentRunProgress.seq);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
  }, 180_000);

  it('Temporal killed: mutations answer SERVICE_UNAVAILABLE at once; once it is back the run in flight completes, the worker goes on, subscriptions go on', async () => {
    const runId = await runWithInstallHeld();
    const runEvents = await collect<{ deploymentRunProgress: { seq: number; kind: string; run: { status: string } } }>('subscription($id: ID!) { deploymentRunProgress(runId: $id) { seq kind run { status } } }', { id: runId }, async (p) =>
      announceRunProgress(p, runId, await recordRunProgress(database.db, runId, [{ kind: 'RUN' }])),
    );

    await temporal.kill();
    const refused = await graphql(url, 'mutation($id: ID!) { pauseDeployment(id: $id) { id } }', { token, variables: { id: deploymentId } });
    expect(refused.errors?.[0]?.extensions).toEqual({ code: 'SERVICE_UNAVAILABLE', dependency: 'TEMPORAL' });

    // The install ends now: the result is stored (a batched run's advance reads it from
    // PostgreSQL; no activity waits for it), and the run cannot end before Temporal is back.
    releaseInstall();
    await waitUntil(
      async () => database.sql`select c.result is not null as done from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId}`,
      (rows) => rows[0]?.done === true,
      60_000,
      'the job result stored',
    );
    expect((await runStatus(runId)).status).toBe('IN_PROGRESS');

    await temporal.start();

    await waitUntil(() => runStatus(runId), ended, 120_000, 'the run to end');
    // Only demo-broken was left to install, and it fails again.
    expect((await runStatus(runId)).status).toBe('FAILED');
    await waitUntil(async () => runEvents, (events) => events.some((e) => e.deploymentRunProgress?.run.status === 'FAILED'), 30_000, 'the end of the run on its subscription');
    // The worker and the API's Temporal client are back: a mutation that needs Temporal works again.
    await waitUntil(async () => graphql(url, 'mutation($id: ID!) { pauseDeployment(id: $id) { paused } }', { token, variables: { id: deploymentId } }), (r) => r.data !== null && r.data !== undefined, 30_000, 'pauseDeployment to work');
    expect(server.child.exitCode).toBeNull();
    expect(worker.child.exitCode).toBeNull();
  }, 180_000);
});
