import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { connectTemporal } from '../../src/temporal/connection.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { buildFleet, fleetStackEnv, SupervisedAgent, type Backend, type FixtureMachine } from '../support/fleet.js';
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
 * dev server, three bundled agents on apt, dnf and zypper machines that really install and reboot.
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
  let fleet: Record<Backend, FixtureMachine>;
  const agents: SupervisedAgent[] = [];
  const ids: Record<string, string> = {};
  const clients: Client[] = [];

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(url, q, { token: operator, variables });
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
    const { createEnrollmentKey } = await query<{ createEnrollmentKey: { secret: string } }>('mutation { createEnrollmentKey(input: {description: "deployments"}) { secret } }');
    fleet = await buildFleet(work);
    for (const machine of Object.values(fleet)) agents.push(new SupervisedAgent(machine, url.replace('/graphql', ''), createEnrollmentKey.secret).start());
    const assessed = async () => (await query<{ machines: { edges: Array<{ node: { id: string; name: string; lastAssessedAt: string | null } }> } }>('{ machines { edges { node { id name lastAssessedAt } } } }')).machines.edges.map((e) => e.node);
    await waitUntil(assessed, (machines) => machines.filter((m) => m.lastAssessedAt).length === 3, 90_000, 'three assessed machines');
    for (const m of await assessed()) ids[m.name] = m.id;
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

  const deploymentInput = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    osType: 'LINUX',
    machineIds: Object.values(ids),
    classifications: ['CRITICAL', 'SECURITY'],
    windowMinutes: 60,
    rebootSetting: 'IF_REQUIRED',
    ...extra,
  });

  async function recordHistories(runId: string, dir: string): Promise<void> {
    const temporal = await connectTemporal(temporalSettings());
    const [run] = await database.sql<Array<{ workflow_id: string }>>`select workflow_id from deployment_runs where id = ${runId}`;
    const debian = ids['debian-01']!;
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
      { input: deploymentInput('preview only') },
    );
    const sles = previewDeployment.machines.find((m) => m.machine.name === 'sles-01')!;
    expect(sles.toInstall.map((u) => u.name)).toEqual(['demo-libssl', 'demo-tool', 'linux-image-demo', 'demo-broken']);
    expect(sles.notSelected.map((n) => n.update.name).sort()).toEqual(['demo-app', 'demo-editor', 'demo-newdep']);
    expect(sles.notSelected[0]!.reason).toMatch(/classification OTHER/);
    expect(sles).toMatchObject({ predictedNotAttempted: [], rebootReserveSeconds: 600, willReboot: 'IF_REQUIRED' });
    expect(previewDeployment.machines).toHaveLength(3);
  });

  it('runs critical and security updates: results match each package database, the failure is precise, reboots come back, the run is PARTIALLY_FAILED', async () => {
    const { createDeployment } = await query<{ createDeployment: { id: string; nextRunAt: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id nextRunAt } }', { input: deploymentInput('critical and security') });
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
    if (process.env.DEBUG_RUN) console.error(JSON.stringify(run, null, 1).slice(0, 6000), agents.map((a) => a.output.slice(-3000)).join('\n----\n'), worker.output().slice(-4000));
    expect(run.status).toBe('PARTIALLY_FAILED');
    const exitCodes: Record<Backend, number> = { apt: 100, dnf: 1, zypper: 8 };
    for (const machine of Object.values(fleet)) {
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
    expect(agents.every((a) => a.starts === 2)).toBe(true);

    // RECORD_HISTORY=<dir> saves this run's workflow histories for the replay test (test/history_files/).
    if (process.env.RECORD_HISTORY) await recordHistories(runDeploymentNow.id, process.env.RECORD_HISTORY);

    // Compliance reflects the result: only the failed update is still missing.
    await expect
      .poll(async () => (await query<{ machines: { edges: Array<{ node: { criticalAndSecurityCount: number } }> } }>('{ machines { edges { node { criticalAndSecurityCount } } } }')).machines.edges.map((e) => e.node.criticalAndSecurityCount), { timeout: 30_000, interval: 500 })
      .toEqual([1, 1, 1]);

    // The subscription saw updates change and the job stream arrive while it ran.
    expect(events.some((e) => e.kind === 'UPDATES' && e.updates.some((u) => u.name === 'demo-libssl' && u.status === 'SUCCEEDED'))).toBe(true);
    expect(events.some((e) => e.kind === 'LINES' && e.lines.length > 0)).toBe(true);
  });

  it('leaves NOT_ATTEMPTED what the window cannot hold, from measured durations', async () => {
    // debian-01 has learned that demo-editor takes 35 minutes: a 30-minute window cannot hold it.
    await database.sql`insert into update_durations (machine_id, name, average_seconds, samples) values (${ids['debian-01']!}, 'demo-editor', 2100, 3)`;
    const input = deploymentInput('others - short window', { machineIds: [ids['debian-01']], classifications: ['OTHER'], windowMinutes: 30, rebootSetting: 'NEVER' });
    const { createDeployment } = await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input });
    const { runDeploymentNow } = await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    const run = await waitForEnd(runDeploymentNow.id);
    const updates = run.machineRuns[0]!.updates;
    expect(updates.find((u) => u.name === 'demo-editor')).toMatchObject({ status: 'NOT_ATTEMPTED', predictedStatus: 'NOT_ATTEMPTED', reason: expect.stringContaining('Not enough time left') });
    expect(updates.find((u) => u.name === 'demo-app')).toMatchObject({ status: 'SUCCEEDED' });
    expect(updates.find((u) => u.name === 'demo-newdep')).toMatchObject({ status: 'SUCCEEDED' });
    expect(run.status).toBe('SUCCEEDED');
    expect(installedVersion(fleet.apt, 'demo-editor')).toBe('1.0-1');
  });

  async function startRun(name: string, extra: Record<string, unknown>): Promise<string> {
    const { createDeployment } = await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input: deploymentInput(name, extra) });
    return (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id })).runDeploymentNow.id;
  }

  const machineRunStatuses = async (runId: string) =>
    (await query<{ deploymentRun: { machineRuns: Page<{ status: string }> } }>('query($id: ID!) { deploymentRun(id: $id) { machineRuns { edges { node { status } } } } }', { id: runId })).deploymentRun.machineRuns.edges.map((e) => e.node.status);

  /** How often dpkg configured a package on the apt machine (its own log): installs counted by dpkg itself. */
  const dpkgInstalls = (name: string) =>
    fs.readFileSync(path.join(fleet.apt.root, 'var/log/dpkg.log'), 'utf8').split('\n').filter((l) => l.includes(`status installed ${name}:`)).length;

  it('survives the worker being killed mid-run: the run completes and nothing is installed twice', async () => {
    const editorInstallsBefore = dpkgInstalls('demo-editor');
    const runId = await startRun('others - worker crash', { classifications: ['OTHER'], rebootSetting: 'NEVER' });
    await expect.poll(async () => (await machineRunStatuses(runId)).some((s) => s !== 'PENDING'), { timeout: 30_000, interval: 100 }).toBe(true);
    expect(await stop(worker, 'SIGKILL')).toMatchObject({ signal: 'SIGKILL' });
    await new Promise((r) => setTimeout(r, 2000));
    startWorker();
    const run = await waitForEnd(runId);
    expect(run.status).toBe('SUCCEEDED');
    for (const machine of Object.values(fleet)) {
      const updates = run.machineRuns.find((m) => m.machineName === machine.name)!.updates.filter((u) => u.status !== 'NOT_SELECTED');
      expect(updates.every((u) => u.status === 'SUCCEEDED'), machine.name).toBe(true);
      expect(installedVersion(machine, 'demo-editor')).toBe('1.1-1');
    }
    expect(dpkgInstalls('demo-editor')).toBe(editorInstallsBefore + 1);
  });

  it('survives the API being restarted mid-run: agents reconnect and every result arrives', async () => {
    const runId = await startRun('reboot only - api restart', { classifications: [], rebootSetting: 'REBOOT_ONLY' });
    await expect.poll(async () => (await machineRunStatuses(runId)).some((s) => s === 'IN_PROGRESS' || s === 'REBOOTING'), { timeout: 30_000, interval: 100 }).toBe(true);
    await stop(server, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    server = spawnFleetpatch(['server'], env);
    await server.waitFor(/"msg":"API listening"/);
    const run = await waitForEnd(runId);
    if (run.status !== 'SUCCEEDED') console.error(JSON.stringify(run.machineRuns.map((m) => [m.machineName, m.status, m.rebootOutcome, m.error])));
    expect(run.status).toBe('SUCCEEDED');
    expect(run.machineRuns.map((m) => [m.status, m.rebootOutcome])).toEqual([['SUCCEEDED', 'REBOOTED'], ['SUCCEEDED', 'REBOOTED'], ['SUCCEEDED', 'REBOOTED']]);
  });

  it('ends the machine run of a dead agent with a clear reason, and the agent never runs the withdrawn job later', async () => {
    const zypperAgent = agents.find((a) => a.machine.backend === 'zypper')!;
    await zypperAgent.kill();
    // Only demo-broken is still missing on sles-01 (its %pre fails).
    const runId = await startRun('security - dead agent', { machineIds: [ids['sles-01']], rebootSetting: 'NEVER' });
    const run = await waitForEnd(runId);
    expect(run.status).toBe('FAILED');
    expect(run.machineRuns[0]).toMatchObject({ status: 'FAILED', error: expect.stringContaining('The agent stopped reporting during the install') });
    expect(run.machineRuns[0]!.updates.find((u) => u.name === 'demo-broken')).toMatchObject({ status: 'NOT_ATTEMPTED' });
    // Back later, the agent does not run the job the run gave up on.
    const seen = zypperAgent.output.length;
    zypperAgent.start();
    await expect.poll(() => zypperAgent.output.slice(seen).includes('assessment done'), { timeout: 30_000 }).toBe(true);
    await new Promise((r) => setTimeout(r, 3000));
    expect(zypperAgent.output.slice(seen)).not.toContain('job ');
  });

  it('never installs two deployments on the same machine at the same time', async () => {
    // Two runs at once on debian-01, both with demo-broken (still missing there): the agent takes
    // one job at a time, so the two attempts follow each other.
    const [first, second] = await Promise.all(['at once - a', 'at once - b'].map((name) => startRun(name, { machineIds: [ids['debian-01']], rebootSetting: 'NEVER' })));
    await Promise.all([waitForEnd(first!), waitForEnd(second!)]);
    const attempts = await database.sql<Array<{ started_at: string; ended_at: string }>>`
      select started_at, ended_at from update_results where name = 'demo-broken' and run_id in (${first!}, ${second!}) order by started_at`;
    expect(attempts).toHaveLength(2);
    expect(Date.parse(attempts[0]!.ended_at)).toBeLessThanOrEqual(Date.parse(attempts[1]!.started_at));
  });

  it('answers invalid deployments with the field and the rule, and a duplicate name with CONFLICT', async () => {
    const attempt = async (input: Record<string, unknown>) => (await graphql(url, 'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { token: operator, variables: { input } })).errors?.[0];
    expect(await attempt(deploymentInput('critical and security'))).toMatchObject({ extensions: { code: 'CONFLICT', field: 'name' } });
    expect(await attempt(deploymentInput('past', { schedule: { startAt: '2020-01-01T00:00:00Z' } }))).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'schedule.startAt' }, message: expect.stringContaining('in the past') });
    expect(await attempt(deploymentInput('zone', { schedule: { timeZone: 'Mars/Olympus' } }))).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'schedule.timeZone' } });
    expect(await attempt(deploymentInput('window', { windowMinutes: 400 }))).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'windowMinutes' } });
    expect(await attempt(deploymentInput('windows machines', { osType: 'WINDOWS', classifications: ['CRITICAL'] }))).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'machineIds' }, message: expect.stringContaining('debian-01') });
    expect(await attempt(deploymentInput('nobody', { machineIds: [], targetFilter: { tags: ['no-such-tag'] } }))).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'machineIds' } });
  });
});
