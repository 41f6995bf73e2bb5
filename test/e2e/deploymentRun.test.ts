import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { connectTemporal } from '../../src/temporal/connection.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { buildFixtureMachine, fleetStackEnv, SupervisedAgent, type Backend, type FixtureMachine } from '../support/fleet.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/** The version of a package in a fixture machine's own package database. */
function installedVersion(machine: FixtureMachine, name: string): string {
  if (machine.backend === 'apt') {
    return execFileSync('dpkg-query', ['--admindir', path.join(machine.root, 'var/lib/dpkg'), '-W', '-f', '${Version}', name], { encoding: 'utf8' });
  }
  return execFileSync('rpm', ['--root', machine.root, '-q', '--qf', '%{VERSION}-%{RELEASE}', name], { encoding: 'utf8', env: machine.env });
}

type UpdateView = { name: string; status: string; predictedStatus: string; exitCode: number | null; errorText: string | null; reason: string | null };
type MachineRunView = { machineName: string; status: string; rebootOutcome: string | null; error: string | null; updates: UpdateView[]; jobStream: Array<{ stream: string; line: string }> };
type RunView = { id: string; status: string; counts: Record<string, number>; predictedCounts: Record<string, number>; machineRuns: MachineRunView[]; logs: Array<{ line: string }> };
const RUN = `id status counts { total succeeded failed notAttempted notSelected pending inProgress } predictedCounts { succeeded notAttempted notSelected }
  machineRuns(first: 10) { edges { node { machineName status rebootOutcome error updates { name status predictedStatus exitCode errorText reason } jobStream(first: 500) { edges { node { stream line } } } } } } logs(first: 2000) { edges { node { line } } }`;
type Page<T> = { edges: Array<{ node: T }> };
type RunAnswer = Omit<RunView, 'machineRuns' | 'logs'> & { machineRuns: Page<Omit<MachineRunView, 'jobStream'> & { jobStream: Page<{ stream: string; line: string }> }>; logs: Page<{ line: string }> };
/** The run's pages as plain lists (one page of each holds a test run's machines and lines). */
const runView = (run: RunAnswer): RunView => ({
  ...run,
  machineRuns: run.machineRuns.edges.map(({ node }) => ({ ...node, jobStream: node.jobStream.edges.map((e) => e.node) })),
  logs: run.logs.edges.map((e) => e.node),
});

/**
 * The seed's second half, end to end: the server and the worker as processes, the real Temporal
 * dev server, bundled agents on apt, dnf and zypper machines that really install and reboot.
 * Each test that installs, reboots or stops an agent has machines of its own, so that any test
 * passes alone and in any order; the two that only read share one fleet.
 */
describe('update deployments on three machines', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-deploy-'));
  let env: NodeJS.ProcessEnv;
  let server: Spawned;
  let worker: Spawned;
  let url: string;
  let database: Database;
  let drop: () => Promise<void>;
  let operator: string;
  let enrollKey: string;
  /** The fleet of the tests that change nothing on a machine. */
  let untouched: TestFleet;
  const agents: SupervisedAgent[] = [];
  const clients: Client[] = [];

  async function query<T>(q: string, variables?: Record<string, unknown>, api = url): Promise<T> {
    const response = await graphql<T>(api, q, { token: operator, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  const startWorker = () => (worker = spawnFleetpatch(['worker'], env));

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    operator = await tokenFor(database, 'ADMIN');
    const port = await freePort();
    env = fleetStackEnv({ databaseUrl: fresh.url, temporalAddress: temporalSettings().address, port, taskQueue: `deploy-${randomUUID()}` });
    url = `http://127.0.0.1:${port}/graphql`;
    server = spawnFleetpatch(['server'], env);
    startWorker();
    await Promise.all([server.waitFor(/"msg":"API listening"/), worker.waitFor(/"msg":"worker polling"/)]);
    const { createEnrollmentKey } = await query<{ createEnrollmentKey: { secret: string } }>('mutation { createEnrollmentKey(input: {description: "deployments", unlimitedUses: true}) { secret } }');
    // More than the ten machines a key enrolls by default: every test that changes machines has its own.
    enrollKey = createEnrollmentKey.secret;
    untouched = await startFleet('untouched');
  }, 240_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await Promise.all(agents.map((a) => a.kill()));
    await stop(worker);
    await stop(server);
    await database.close();
    await drop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  interface TestFleet {
    machines: Partial<Record<Backend, FixtureMachine>>;
    agents: SupervisedAgent[];
    /** Machine ids by backend. */
    ids: Partial<Record<Backend, string>>;
  }

  /**
   * Machines of their own (`label` names their folder and ends their names: debian-01-label), their
   * agents running (until afterAll) and each machine assessed once.
   */
  async function startFleet(label: string, backends: readonly Backend[] = ['apt', 'dnf', 'zypper'], fleet: TestFleet = { machines: {}, agents: [], ids: {} }): Promise<TestFleet> {
    const built = await Promise.all(backends.map((backend) => buildFixtureMachine(path.join(work, label), backend, `-${label}`)));
    for (const machine of built) {
      fleet.machines[machine.backend] = machine;
      fleet.agents.push(new SupervisedAgent(machine, url.replace('/graphql', ''), enrollKey).start());
    }
    agents.push(...fleet.agents);
    const names = new Map(built.map((m) => [m.name, m.backend]));
    type Listed = { machines: { edges: Array<{ node: { id: string; name: string; lastAssessedAt: string | null } }> } };
    const assessed = async () =>
      (await query<Listed>('query($f: MachineFilter) { machines(first: 500, filter: $f) { edges { node { id name lastAssessedAt } } } }', { f: { nameContains: `-${label}` } })).machines.edges
        .map((e) => e.node)
        .filter((m) => names.has(m.name) && m.lastAssessedAt);
    for (const m of await waitUntil(assessed, (machines) => machines.length === built.length, 120_000, `the ${label} machines assessed`)) fleet.ids[names.get(m.name)!] = m.id;
    return fleet;
  }

  /** Machines for the test that calls it alone: their agents stop when it ends. */
  function fleetOfThisTest(label: string, backends?: readonly Backend[]): Promise<TestFleet> {
    const fleet: TestFleet = { machines: {}, agents: [], ids: {} };
    onTestFinished(async () => {
      await Promise.all(fleet.agents.map((a) => a.kill()));
    });
    return startFleet(label, backends, fleet);
  }

  const machinesOf = (fleet: TestFleet) => Object.values(fleet.machines);

  const deploymentInput = (name: string, fleet: TestFleet, extra: Record<string, unknown> = {}) => ({
    name,
    osType: 'LINUX',
    machineIds: Object.values(fleet.ids),
    classifications: ['CRITICAL', 'SECURITY'],
    windowMinutes: 60,
    rebootSetting: 'IF_REQUIRED',
    ...extra,
  });

  async function recordHistories(runId: string, debian: string, dir: string): Promise<void> {
    const temporal = await connectTemporal(temporalSettings());
    const [run] = await database.sql<Array<{ workflow_id: string }>>`select workflow_id from deployment_runs where id = ${runId}`;
    for (const [file, workflowId] of [['deploymentRun.json', run!.workflow_id], ['machineRun.json', `machine-run:${runId}:${debian}`]] as const) {
      const history = await temporal.client.workflow.getHandle(workflowId).fetchHistory();
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, file), historyToJSON(history));
    }
    await temporal.close();
  }

  async function waitForEnd(runId: string): Promise<RunView> {
    await expect
      .poll(async () => (await query<{ deploymentRun: { status: string } }>('query($id: ID!) { deploymentRun(id: $id) { status } }', { id: runId })).deploymentRun.status, { timeout: 150_000, interval: 500 })
      .not.toMatch(/^(SCHEDULED|IN_PROGRESS)$/);
    return runView((await query<{ deploymentRun: RunAnswer }>(`query($id: ID!) { deploymentRun(id: $id) { ${RUN} } }`, { id: runId })).deploymentRun);
  }

  it('previews per machine what would be installed, what is not selected, and what would not fit', async () => {
    const { previewDeployment } = await query<{ previewDeployment: { machines: Array<{ machine: { name: string }; toInstall: Array<{ name: string }>; notSelected: Array<{ update: { name: string }; reason: string }>; predictedNotAttempted: Array<{ name: string }>; rebootReserveSeconds: number; willReboot: string }> } }>(
      `query($input: DeploymentInput!) { previewDeployment(input: $input) { machines { machine { name } toInstall { name } notSelected { update { name } reason } predictedNotAttempted { name } rebootReserveSeconds willReboot } } }`,
      { input: deploymentInput('preview only', untouched) },
    );
    const sles = previewDeployment.machines.find((m) => m.machine.name === untouched.machines.zypper!.name)!;
    expect(sles.toInstall.map((u) => u.name)).toEqual(['demo-libssl', 'demo-tool', 'linux-image-demo', 'demo-broken']);
    expect(sles.notSelected.map((n) => n.update.name).sort()).toEqual(['demo-app', 'demo-editor', 'demo-newdep']);
    expect(sles.notSelected[0]!.reason).toMatch(/classification OTHER/);
    expect(sles).toMatchObject({ predictedNotAttempted: [], rebootReserveSeconds: 600, willReboot: 'IF_REQUIRED' });
    expect(previewDeployment.machines).toHaveLength(3);
  });

  it('runs critical and security updates: results match each package database, the failure is precise, reboots come back, the run is PARTIALLY_FAILED', async () => {
    const fleet = await fleetOfThisTest('cs');
    const { createDeployment } = await query<{ createDeployment: { id: string; nextRunAt: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id nextRunAt } }', { input: deploymentInput('critical and security', fleet) });
    // The default start is now + 30 minutes, as in the seed.
    expect(Date.parse(createDeployment.nextRunAt) - Date.now()).toBeGreaterThan(29 * 60_000);

    const { runDeploymentNow } = await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    const events: Array<{ kind: string; updates: Array<{ name: string; status: string }>; lines: Array<{ line: string }> }> = [];
    const client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${operator}` } });
    clients.push(client);
    client.subscribe<{ deploymentRunProgress: (typeof events)[number] }>(
      { query: 'subscription($id: ID!) { deploymentRunProgress(runId: $id) { kind updates { name status } lines { line } } }', variables: { id: runDeploymentNow.id } },
      { next: (message) => message.data && events.push(message.data.deploymentRunProgress), error: () => undefined, complete: () => undefined },
    );

    const run = await waitForEnd(runDeploymentNow.id);
    if (process.env.DEBUG_RUN) console.error(JSON.stringify(run, null, 1).slice(0, 6000), fleet.agents.map((a) => a.output.slice(-3000)).join('\n----\n'), worker.output().slice(-4000));
    expect(run.status).toBe('PARTIALLY_FAILED');
    const exitCodes: Record<Backend, number> = { apt: 100, dnf: 1, zypper: 8 };
    for (const machine of machinesOf(fleet)) {
      const machineRun = run.machineRuns.find((m) => m.machineName === machine.name)!;
      const result = (name: string) => machineRun.updates.find((u) => u.name === name)!;
      // What fleetpatch says agrees with the machine's own package database.
      for (const name of ['demo-libssl', 'demo-tool', 'linux-image-demo']) {
        expect(result(name).status, `${machine.name} ${name}`).toBe('SUCCEEDED');
        // Each its own outcome: on apt, demo-broken (first by name) left half-configured does not lend its exit code and error to the updates after it.
        if (machine.backend === 'apt') expect(result(name), `${machine.name} ${name}`).toMatchObject({ exitCode: 0, errorText: null });
        expect(installedVersion(machine, name)).toBe(name === 'linux-image-demo' ? '5.1-1' : '1.1-1');
      }
      expect(result('demo-broken')).toMatchObject({ status: 'FAILED', exitCode: exitCodes[machine.backend] });
      expect(result('demo-broken').errorText).toBeTruthy();
      for (const name of ['demo-editor', 'demo-app', 'demo-newdep']) expect(result(name)).toMatchObject({ status: 'NOT_SELECTED', predictedStatus: 'NOT_SELECTED' });
      expect(installedVersion(machine, 'demo-editor')).toBe('1.0-1');
      // The kernel update asked for a reboot: the machine rebooted and its agent came back.
      expect(machineRun).toMatchObject({ status: 'FAILED', rebootOutcome: 'REBOOTED' });
      expect(machineRun.jobStream.some((l) => /demo-libssl/.test(l.line) && l.stream === 'stdout')).toBe(true);
    }
    expect(run.counts).toMatchObject({ total: 21, succeeded: 9, failed: 3, notSelected: 9, pending: 0, inProgress: 0 });
    expect(run.predictedCounts).toMatchObject({ succeeded: 12, notAttempted: 0, notSelected: 9 });
    expect(fleet.agents.every((a) => a.starts === 2)).toBe(true);

    // RECORD_HISTORY=<dir> saves this run's workflow histories for the replay test (test/history_files/).
    if (process.env.RECORD_HISTORY) await recordHistories(runDeploymentNow.id, fleet.ids.apt!, process.env.RECORD_HISTORY);

    // Compliance reflects the result: only the failed update is still missing.
    const counts = async () =>
      Promise.all(Object.values(fleet.ids).map(async (id) => (await query<{ machine: { criticalAndSecurityCount: number } }>('query($id: ID!) { machine(id: $id) { criticalAndSecurityCount } }', { id })).machine.criticalAndSecurityCount));
    await expect.poll(counts, { timeout: 30_000, interval: 500 }).toEqual([1, 1, 1]);

    // The subscription saw updates change and the job stream arrive while it ran.
    expect(events.some((e) => e.kind === 'UPDATES' && e.updates.some((u) => u.name === 'demo-libssl' && u.status === 'SUCCEEDED'))).toBe(true);
    expect(events.some((e) => e.kind === 'LINES' && e.lines.length > 0)).toBe(true);
  });

  it('leaves NOT_ATTEMPTED what the window cannot hold, from measured durations', async () => {
    const fleet = await fleetOfThisTest('window', ['apt']);
    // The Debian machine has learned that demo-editor takes 35 minutes: a 30-minute window cannot hold it.
    await database.sql`insert into update_durations (machine_id, name, average_seconds, samples) values (${fleet.ids.apt!}, 'demo-editor', 2100, 3)`;
    const input = deploymentInput('others - short window', fleet, { classifications: ['OTHER'], windowMinutes: 30, rebootSetting: 'NEVER' });
    const { createDeployment } = await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input });
    const { runDeploymentNow } = await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    const run = await waitForEnd(runDeploymentNow.id);
    const updates = run.machineRuns[0]!.updates;
    expect(updates.find((u) => u.name === 'demo-editor')).toMatchObject({ status: 'NOT_ATTEMPTED', predictedStatus: 'NOT_ATTEMPTED', reason: expect.stringContaining('Not enough time left') });
    expect(updates.find((u) => u.name === 'demo-app')).toMatchObject({ status: 'SUCCEEDED' });
    expect(updates.find((u) => u.name === 'demo-newdep')).toMatchObject({ status: 'SUCCEEDED' });
    expect(run.status).toBe('SUCCEEDED');
    expect(installedVersion(fleet.machines.apt!, 'demo-editor')).toBe('1.0-1');
  });

  /** Creates the deployment and runs it now, through the API at `api` (this file's by default). */
  async function startRun(name: string, fleet: TestFleet, extra: Record<string, unknown>, api = url): Promise<string> {
    const { createDeployment } = await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input: deploymentInput(name, fleet, extra) }, api);
    return (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id }, api)).runDeploymentNow.id;
  }

  const machineRunStatuses = async (runId: string) =>
    (await query<{ deploymentRun: { machineRuns: Page<{ status: string }> } }>('query($id: ID!) { deploymentRun(id: $id) { machineRuns { edges { node { status } } } } }', { id: runId })).deploymentRun.machineRuns.edges.map((e) => e.node.status);

  /** How often dpkg configured a package on an apt machine (its own log): installs counted by dpkg itself. */
  const dpkgInstalls = (machine: FixtureMachine, name: string) =>
    fs.readFileSync(path.join(machine.root, 'var/log/dpkg.log'), 'utf8').split('\n').filter((l) => l.includes(`status installed ${name}:`)).length;

  /** Updates of the run whose install ended (SUCCEEDED or FAILED). */
  const installsEnded = async (runId: string) =>
    Number((await database.sql`select count(*)::int as n from update_results where run_id = ${runId} and status in ('SUCCEEDED', 'FAILED')`)[0]!.n);

  it('survives the worker being killed mid-run: the run completes and nothing is installed twice', async () => {
    const fleet = await fleetOfThisTest('crash');
    const editorInstallsBefore = dpkgInstalls(fleet.machines.apt!, 'demo-editor');
    const runId = await startRun('others - worker crash', fleet, { classifications: ['OTHER'], rebootSetting: 'NEVER' });
    await expect.poll(async () => (await machineRunStatuses(runId)).some((s) => s !== 'PENDING'), { timeout: 30_000, interval: 100 }).toBe(true);
    const endedBefore = await installsEnded(runId);
    expect(await stop(worker, 'SIGKILL')).toMatchObject({ signal: 'SIGKILL' });
    // The agents go on installing with no worker running: a result lands in the meantime.
    await waitUntil(() => installsEnded(runId), (ended) => ended > endedBefore, 60_000, 'an install to end while no worker runs');
    startWorker();
    const run = await waitForEnd(runId);
    expect(run.status).toBe('SUCCEEDED');
    for (const machine of machinesOf(fleet)) {
      const updates = run.machineRuns.find((m) => m.machineName === machine.name)!.updates.filter((u) => u.status !== 'NOT_SELECTED');
      expect(updates.every((u) => u.status === 'SUCCEEDED'), machine.name).toBe(true);
      expect(installedVersion(machine, 'demo-editor')).toBe('1.1-1');
    }
    expect(dpkgInstalls(fleet.machines.apt!, 'demo-editor')).toBe(editorInstallsBefore + 1);
  });

  it('survives the API being restarted mid-run: agents reconnect and every result arrives', async () => {
    const fleet = await fleetOfThisTest('restart');
    const runId = await startRun('reboot only - api restart', fleet, { classifications: [], rebootSetting: 'REBOOT_ONLY' });
    await expect.poll(async () => (await machineRunStatuses(runId)).some((s) => s === 'IN_PROGRESS' || s === 'REBOOTING'), { timeout: 30_000, interval: 100 }).toBe(true);
    const seen = fleet.agents.map((a) => a.output.length);
    await stop(server, 'SIGKILL');
    // Every agent has found the API gone (a request of its failed) before it comes back.
    await waitUntil(async () => fleet.agents.filter((a, i) => /"msg":"[^"]* failed/.test(a.output.slice(seen[i]))).length, (failed) => failed === fleet.agents.length, 30_000, 'every agent to miss the API');
    server = spawnFleetpatch(['server'], env);
    await server.waitFor(/"msg":"API listening"/);
    const run = await waitForEnd(runId);
    if (run.status !== 'SUCCEEDED') console.error(JSON.stringify(run.machineRuns.map((m) => [m.machineName, m.status, m.rebootOutcome, m.error])));
    expect(run.status).toBe('SUCCEEDED');
    expect(run.machineRuns.map((m) => [m.status, m.rebootOutcome])).toEqual([['SUCCEEDED', 'REBOOTED'], ['SUCCEEDED', 'REBOOTED'], ['SUCCEEDED', 'REBOOTED']]);
  });

  it('ends the machine run of a dead agent with a clear reason, and the agent never runs the withdrawn job later', async () => {
    const fleet = await fleetOfThisTest('dead', ['zypper']);
    const zypperAgent = fleet.agents[0]!;
    await zypperAgent.kill();
    // The run is started on an API of its own whose runs give up on an agent after 3 s of silence
    // (as the integration tests' runs of silent agents do): this file's 20 s must stay above the
    // 15 s keep-alive of the live agents of the other tests, but a dead agent sends nothing at all,
    // so the length of the silence only sets how long the test waits (twice: the install's one
    // retry offers the job again).
    const quickPort = await freePort();
    const quickApi = spawnFleetpatch(['server'], { ...env, PORT: String(quickPort), FLEETPATCH_INSTALL_HEARTBEAT_SECONDS: '3' });
    onTestFinished(async () => {
      await stop(quickApi);
    });
    await quickApi.waitFor(/"msg":"API listening"/);
    const runId = await startRun('security - dead agent', fleet, { rebootSetting: 'NEVER' }, `http://127.0.0.1:${quickPort}/graphql`);
    const run = await waitForEnd(runId);
    expect(run.status).toBe('FAILED');
    expect(run.machineRuns[0]).toMatchObject({ status: 'FAILED', error: expect.stringContaining('The agent stopped reporting during the install') });
    expect(run.machineRuns[0]!.updates.find((u) => u.name === 'demo-broken')).toMatchObject({ status: 'NOT_ATTEMPTED' });
    // Back later, the agent does not run the job the run gave up on: once it has taken a command
    // queued after that job, it would have had the job too.
    const seen = zypperAgent.output.length;
    zypperAgent.start();
    const { assessMachines } = await query<{ assessMachines: Array<{ commandId: string }> }>('mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { commandId } }', { ids: [fleet.ids.zypper] });
    const delivered = async (id: string) => (await database.sql`select delivered_at is not null as delivered from agent_commands where id = ${id}`)[0]!.delivered as boolean;
    await waitUntil(() => delivered(assessMachines[0]!.commandId), (yes) => yes, 60_000, 'the agent to take the assessment command');
    const jobs = await database.sql`select c.delivered_at is not null as delivered, c.canceled_at is not null as canceled from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId}`;
    expect(jobs).toEqual([{ delivered: false, canceled: true }]);
    expect(zypperAgent.output.slice(seen)).not.toContain('job ');
  });

  it('never installs two deployments on the same machine at the same time', async () => {
    const fleet = await fleetOfThisTest('once', ['apt']);
    // Two runs at once on the Debian machine, both with demo-broken (it fails, so it is still
    // missing for the second): the agent takes one job at a time, so the two attempts follow each other.
    const [first, second] = await Promise.all(['at once - a', 'at once - b'].map((name) => startRun(name, fleet, { rebootSetting: 'NEVER' })));
    await Promise.all([waitForEnd(first!), waitForEnd(second!)]);
    const attempts = await database.sql<Array<{ started_at: string; ended_at: string }>>`
      select started_at, ended_at from update_results where name = 'demo-broken' and run_id in (${first!}, ${second!}) order by started_at`;
    expect(attempts).toHaveLength(2);
    expect(Date.parse(attempts[0]!.ended_at)).toBeLessThanOrEqual(Date.parse(attempts[1]!.started_at));
  });

  it('answers invalid deployments with the field and the rule, and a duplicate name with CONFLICT', async () => {
    const attempt = async (input: Record<string, unknown>) => (await graphql(url, 'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { token: operator, variables: { input } })).errors?.[0];
    expect(await attempt(deploymentInput('taken', untouched, { schedule: { startAt: new Date(Date.now() + 86_400_000).toISOString() } }))).toBeUndefined();
    expect(await attempt(deploymentInput('taken', untouched))).toMatchObject({ extensions: { code: 'CONFLICT', field: 'name' } });
    expect(await attempt(deploymentInput('past', untouched, { schedule: { startAt: '2020-01-01T00:00:00Z' } }))).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'schedule.startAt' }, message: expect.stringContaining('in the past') });
    expect(await attempt(deploymentInput('zone', untouched, { schedule: { timeZone: 'Mars/Olympus' } }))).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'schedule.timeZone' } });
    expect(await attempt(deploymentInput('window', untouched, { windowMinutes: 400 }))).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'windowMinutes' } });
    expect(await attempt(deploymentInput('windows machines', untouched, { osType: 'WINDOWS', classifications: ['CRITICAL'] }))).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'machineIds' }, message: expect.stringContaining('debian-01') });
    expect(await attempt(deploymentInput('nobody', untouched, { machineIds: [], targetFilter: { tags: ['no-such-tag'] } }))).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'machineIds' } });
  });
});
