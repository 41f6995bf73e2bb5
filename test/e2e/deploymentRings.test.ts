import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { connectTemporal, type TemporalClient } from '../../src/temporal/connection.js';
import { publishZypperUpdate } from '../../testkit/zypper.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { buildFleet, fleetStackEnv, SupervisedAgent, type FixtureMachine } from '../support/fleet.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/** The version of a package in a fixture machine's own package database. */
function installedVersion(machine: FixtureMachine, name: string): string {
  if (machine.backend === 'apt') {
    return execFileSync('dpkg-query', ['--admindir', path.join(machine.root, 'var/lib/dpkg'), '-W', '-f', '${Version}', name], { encoding: 'utf8' });
  }
  return execFileSync('rpm', ['--root', machine.root, '-q', '--qf', '%{VERSION}-%{RELEASE}\\n', name], { encoding: 'utf8', env: machine.env }).trim();
}

type RingView = { ring: number; name: string; status: string; machineCount: number; failedCount: number | null; startedAt: string | null; endedAt: string | null; soakEndsAt: string | null; reason: string | null; decidedBy: string | null };
type UpdateView = { name: string; targetVersion: string; status: string; reason: string | null };
type RunView = { status: string; error: string | null; updateSet: Array<{ name: string; version: string }> | null; rings: RingView[]; machineRuns: Array<{ machineName: string; ring: number | null; status: string; updates: UpdateView[] }> };
const RUN = `status error updateSet { name version } rings { ring name status machineCount failedCount startedAt endedAt soakEndsAt reason decidedBy }
  machineRuns(first: 10) { edges { node { machineName ring status updates { name targetVersion status reason } } } }`;

/**
 * Rollouts in rings end to end (issue 16): the server and the worker as processes, the real Temporal
 * dev server, and the bundled agents on apt, dnf and zypper fixture machines that really install.
 * Three rings of one machine each: the canary (Debian) soaks, the second (Rocky) waits for an
 * approval given over GraphQL while the worker is SIGKILLed and started again, the third (SLES)
 * installs only the canary's versions although a newer one was published into its repository.
 */
describe('a rollout in three rings on real machines', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-rings-'));
  let env: NodeJS.ProcessEnv;
  let server: Spawned;
  let worker: Spawned;
  let url: string;
  let database: Database;
  let drop: () => Promise<void>;
  let temporal: TemporalClient;
  let operator: string;
  let fleet: Record<'apt' | 'dnf' | 'zypper', FixtureMachine>;
  const ids: Record<string, string> = {};
  const agents: SupervisedAgent[] = [];

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
    operator = await tokenFor(database, 'OPERATOR');
    const port = await freePort();
    env = fleetStackEnv({ databaseUrl: fresh.url, temporalAddress: temporalSettings().address, port, taskQueue: `rings-${randomUUID()}` });
    url = `http://127.0.0.1:${port}/graphql`;
    server = spawnFleetpatch(['server'], env);
    startWorker();
    [fleet] = await Promise.all([buildFleet(work), server.waitFor(/"msg":"API listening"/), worker.waitFor(/"msg":"worker polling"/)]);
    temporal = await connectTemporal(temporalSettings());
    const admin = await tokenFor(database, 'ADMIN');
    const key = await graphql<{ createEnrollmentKey: { secret: string } }>(url, 'mutation { createEnrollmentKey(input: {description: "rings"}) { secret } }', { token: admin });
    for (const machine of Object.values(fleet)) agents.push(new SupervisedAgent(machine, url.replace('/graphql', ''), key.data!.createEnrollmentKey.secret).start());
    type Listed = { machines: { edges: Array<{ node: { id: string; name: string; lastAssessedAt: string | null } }> } };
    const assessed = async () => (await query<Listed>('{ machines { edges { node { id name lastAssessedAt } } } }')).machines.edges.map((e) => e.node).filter((m) => m.lastAssessedAt);
    for (const m of await waitUntil(assessed, (machines) => machines.length === 3, 120_000, 'three assessed machines')) ids[m.name] = m.id;
  }, 240_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.kill()));
    if (worker) await stop(worker, 'SIGKILL');
    if (server) await stop(server);
    await temporal?.close();
    await database?.close();
    await drop?.();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const run = async (runId: string): Promise<RunView> => {
    const answer = (await query<{ deploymentRun: Omit<RunView, 'machineRuns'> & { machineRuns: { edges: Array<{ node: RunView['machineRuns'][number] }> } } }>(`query($id: ID!) { deploymentRun(id: $id) { ${RUN} } }`, { id: runId })).deploymentRun;
    return { ...answer, machineRuns: answer.machineRuns.edges.map((e) => e.node) };
  };
  const untilRun = (runId: string, done: (view: RunView) => boolean, what: string, timeoutMs = 120_000) => waitUntil(() => run(runId), done, timeoutMs, what);
  /** The run can go no further without an operator, or has ended (a wait stops early on it, with what it saw). */
  const stopped = (view: RunView) => ['SUCCEEDED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED', 'HALTED'].includes(view.status);
  const ringStatuses = (view: RunView) => view.rings.map((r) => r.status);
  /** The run workflow's history: its length, whether its last workflow task is done (nothing more until something happens), and its timers. */
  const history = async (runId: string) => {
    const [row] = await database.sql<Array<{ workflow_id: string }>>`select workflow_id from deployment_runs where id = ${runId}`;
    const events = (await temporal.client.workflow.getHandle(row!.workflow_id).fetchHistory()).events!;
    return { length: events.length, idle: Boolean(events.at(-1)?.workflowTaskCompletedEventAttributes), timersStarted: events.filter((e) => e.timerStartedEventAttributes).length };
  };
  /** INSTALL jobs the server handed each machine's agent in this run. */
  const installJobs = async (runId: string) =>
    Object.fromEntries(
      (await database.sql<Array<{ name: string; jobs: number }>>`
        select m.name, count(c.id)::int as jobs from machine_runs r join machines m on m.id = r.machine_id left join agent_commands c on c.machine_run_id = r.id
        where r.run_id = ${runId} group by m.name`).map((r) => [r.name, r.jobs]),
    );
  /** How many times dpkg's own log says the Debian machine's package reached `version`. */
  const dpkgInstalls = (name: string, version: string) =>
    fs.readFileSync(path.join(fleet.apt.root, 'var/log/dpkg.log'), 'utf8').split('\n').filter((l) => l.includes(`status installed ${name}:`) && l.endsWith(` ${version}`)).length;

  it('soaks the canary, waits for an approval across a worker SIGKILL, and gives the last ring exactly the canary\'s versions', async () => {
    const [debian, rocky, sles] = [fleet.apt, fleet.dnf, fleet.zypper];
    const input = {
      name: 'three rings on real machines',
      osType: 'LINUX',
      machineIds: Object.values(ids),
      classifications: ['CRITICAL', 'SECURITY'],
      // demo-broken fails on every machine by design: the canary is to succeed here.
      excludePatterns: ['demo-broken'],
      windowMinutes: 60,
      rebootSetting: 'NEVER',
      onDemandOnly: true,
      rings: [
        { name: 'canary', machineIds: [ids[debian.name]], gate: { soakSeconds: 3 } },
        { name: 'early', filter: { nameContains: 'rocky' }, gate: { requireApproval: true } },
        { name: 'everyone else', percent: 100 },
      ],
    };
    const { createDeployment } = await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input });
    const runId = (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id })).runDeploymentNow.id;

    // Ring 1 installs, then soaks: the update set is what its plan selected, at the canary's versions.
    const soaking = await untilRun(runId, (v) => v.rings[0]?.status === 'SOAKING' || stopped(v), 'the canary to soak');
    expect(ringStatuses(soaking)).toEqual(['SOAKING', 'PENDING', 'PENDING']);
    expect(soaking.updateSet).toEqual([
      { name: 'demo-libssl', version: '1.1-1' },
      { name: 'demo-tool', version: '1.1-1' },
      { name: 'linux-image-demo', version: '5.1-1' },
    ]);
    const soakEndsAt = Date.parse(soaking.rings[0]!.soakEndsAt!);
    expect(soakEndsAt - Date.parse(soaking.rings[0]!.endedAt!)).toBeGreaterThanOrEqual(3000);
    for (const [name, version] of [['demo-libssl', '1.1-1'], ['demo-tool', '1.1-1'], ['linux-image-demo', '5.1-1']]) expect(installedVersion(debian, name!)).toBe(version);

    // The soak elapses (a timer in Temporal); then ring 2 runs and waits for its approval.
    const waiting = await untilRun(runId, (v) => v.rings[1]?.status === 'WAITING_FOR_APPROVAL' || stopped(v), 'ring 2 to wait for approval');
    expect(ringStatuses(waiting)).toEqual(['PROMOTED', 'WAITING_FOR_APPROVAL', 'PENDING']);
    expect(Date.parse(waiting.rings[1]!.startedAt!)).toBeGreaterThanOrEqual(soakEndsAt);
    expect(installedVersion(rocky, 'demo-tool')).toBe('1.1-1');
    expect(installedVersion(sles, 'demo-tool')).toBe('1.0-1');

    // Meanwhile a newer demo-libssl is published into the last ring's repository, and its machine sees it.
    await publishZypperUpdate(path.dirname(sles.root), sles.env, { name: 'demo-libssl', version: '1.2-1', advisoryId: 'DEMO-2025:0101' });
    await query('mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { requested } }', { ids: [ids[sles.name]] });
    type Pending = { machine: { pendingUpdates: { edges: Array<{ node: { name: string; availableVersion: string } }> } } };
    await waitUntil(
      async () => (await query<Pending>('query($id: ID!) { machine(id: $id) { pendingUpdates(first: 50) { edges { node { name availableVersion } } } } }', { id: ids[sles.name] })).machine.pendingUpdates.edges.map((e) => e.node),
      (updates) => updates.some((u) => u.name === 'demo-libssl' && u.availableVersion === '1.2-1'),
      60_000,
      'the SLES machine to see demo-libssl 1.2-1',
    );

    // The worker is SIGKILLed while the ring waits, and another one starts: the wait holds no timer
    // and costs no event, before, during and after.
    const before = await waitUntil(() => history(runId), (h) => h.idle, 30_000, 'the run workflow to wait');
    expect(await stop(worker, 'SIGKILL')).toMatchObject({ signal: 'SIGKILL' });
    startWorker();
    await worker.waitFor(/"msg":"worker polling"/);
    expect(await history(runId)).toEqual(before);
    expect(ringStatuses(await run(runId))).toEqual(['PROMOTED', 'WAITING_FOR_APPROVAL', 'PENDING']);

    // Approved over GraphQL: the new worker takes the run on from where it waited.
    await query('mutation($runId: ID!, $ring: Int!) { approveRing(runId: $runId, ring: $ring) { id } }', { runId, ring: 2 });
    const ended = await untilRun(runId, stopped, 'the run to end', 180_000);
    expect(ended.status).toBe('SUCCEEDED');
    expect(ringStatuses(ended)).toEqual(['PROMOTED', 'PROMOTED', 'DONE']);
    expect(ended.rings[1]!.decidedBy).toBe('test OPERATOR');
    expect(ended.machineRuns.map((m) => [m.machineName, m.ring, m.status])).toEqual([
      [debian.name, 1, 'SUCCEEDED'],
      [rocky.name, 2, 'SUCCEEDED'],
      [sles.name, 3, 'SUCCEEDED'],
    ]);

    // Ring 3 took the set's versions and nothing newer: demo-libssl 1.2-1 is not in the set.
    const third = ended.machineRuns.find((m) => m.machineName === sles.name)!.updates.filter((u) => u.status !== 'NOT_SELECTED' || u.reason === "not in the run's approved set");
    expect(third.map((u) => [u.name, u.targetVersion, u.status, u.reason]).sort()).toEqual([
      ['demo-libssl', '1.2-1', 'NOT_SELECTED', "not in the run's approved set"],
      ['demo-tool', '1.1-1', 'SUCCEEDED', null],
      ['linux-image-demo', '5.1-1', 'SUCCEEDED', null],
    ]);
    expect(installedVersion(sles, 'demo-libssl')).toBe('1.0-1');
    for (const machine of [debian, rocky, sles]) {
      expect(installedVersion(machine, 'demo-tool'), machine.name).toBe('1.1-1');
      expect(installedVersion(machine, 'linux-image-demo'), machine.name).toBe('5.1-1');
    }
    expect(installedVersion(rocky, 'demo-libssl')).toBe('1.1-1');

    // Nothing installed twice: one job per machine, and each package once in dpkg's own log.
    expect(await installJobs(runId)).toEqual({ [debian.name]: 1, [rocky.name]: 1, [sles.name]: 1 });
    for (const [name, version] of [['demo-libssl', '1.1-1'], ['demo-tool', '1.1-1'], ['linux-image-demo', '5.1-1']] as const) expect(dpkgInstalls(name, version), name).toBe(1);
    // One soak timer in the whole history: the restarted worker replayed it, it did not start it again.
    expect((await history(runId)).timersStarted).toBe(1);
  }, 420_000);
});
