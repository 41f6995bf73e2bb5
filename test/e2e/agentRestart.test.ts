import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { buildAptMachine } from '../../testkit/apt.js';
import { buildDnfMachine } from '../../testkit/dnf.js';
import { SLOW_PACKAGE, slowInstallSignals } from '../../testkit/catalog.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { AGENT_COMMAND, fleetStackEnv } from '../support/fleet.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/**
 * The install heartbeat window of this stack: far longer than any test here may take, so that a
 * machine run that completes shows that the agent took its job back by itself, not that the
 * workflow gave up on a silent agent and retried.
 */
const HEARTBEAT_SECONDS = 600;

interface Machine {
  name: string;
  root: string;
  env: NodeJS.ProcessEnv;
  stateDir: string;
  bootIdFile: string;
}

/**
 * The bundled agent run as a service manager runs it: in its own process group (a killed service's
 * group is what a power cut or KillMode=control-group kills; KillMode=process, what the packaged
 * unit uses, kills the agent alone), started again when it exits, except after kill(). Its reboot
 * command writes a new boot id and stops it, as a reboot would.
 */
class AgentService {
  child: ChildProcess | undefined;
  output = '';
  /** When each start happened (ms). */
  readonly starts: number[] = [];
  private stopped = false;

  constructor(
    readonly machine: Machine,
    private readonly server: string,
    private readonly enrollKey: string,
  ) {}

  start(): this {
    this.stopped = false;
    this.spawn();
    return this;
  }

  private spawn(): void {
    const reboot = `sleep 1; cat /proc/sys/kernel/random/uuid > '${this.machine.bootIdFile}'; kill -TERM $PPID`;
    const { machine } = this;
    const [program, ...programArgs] = AGENT_COMMAND;
    const child = spawn(
      program!,
      [...programArgs, 'run', '--server', this.server, '--enroll-key', this.enrollKey, '--state-dir', machine.stateDir, '--root', machine.root, '--boot-id-file', machine.bootIdFile, '--reboot-command', reboot],
      { env: machine.env, stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    this.starts.push(Date.now());
    this.child = child;
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.once('exit', () => {
      if (!this.stopped && this.child === child) setTimeout(() => this.spawn(), 300);
    });
  }

  /** SIGKILL, of the agent alone or of its whole process group (the package manager it started too); not restarted. */
  async kill(scope: 'agent' | 'group' = 'agent'): Promise<void> {
    this.stopped = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(scope === 'group' ? -child.pid! : child.pid!, 'SIGKILL');
    await exited;
  }
}

/** The transactions that touched `name` in dnf's own history (the base install, then each update). */
function dnfTransactions(machine: Machine, name: string): number {
  const out = execFileSync(
    'dnf',
    ['-q', `--config=${path.join(machine.root, 'etc/dnf/dnf.conf')}`, `--installroot=${machine.root}`, `--setopt=reposdir=${path.join(machine.root, 'etc/yum.repos.d')}`, '--releasever=9', 'history', 'list', name],
    { encoding: 'utf8', env: machine.env },
  );
  return out.split('\n').filter((l) => /^\s*\d+\s+\|/.test(l)).length;
}

/** How often dpkg finished installing `name` at `version` (its own log): installs counted by dpkg itself. */
function dpkgInstalls(machine: Machine, name: string, version: string): number {
  const log = fs.readFileSync(path.join(machine.root, 'var/log/dpkg.log'), 'utf8');
  return log.split('\n').filter((l) => / status installed /.test(l) && l.includes(` ${name}:`) && l.endsWith(` ${version}`)).length;
}

/** The updates these tests deploy, with the version each installs. demo-slow is the second in the install order. */
const DEPLOYED: Record<string, string> = { 'demo-libssl': '1.1-1', 'demo-slow': '1.1-1', 'demo-tool': '1.1-1', 'linux-image-demo': '5.1-1' };

async function fileAppears(file: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type MachineRunView = { status: string; rebootOutcome: string | null; error: string | null; updates: Array<{ name: string; status: string; reason: string | null; errorText: string | null }> };

/**
 * Jobs survive the agent: a real agent process on real apt and dnf machines, killed in the middle of an
 * install (while a maintainer script waits for the test, so the kill lands there every time), and
 * started again with the same state dir. The machine run completes, each update is installed once
 * (dpkg's own log), and the time from the restart to the job going on is printed.
 */
describe('an agent that dies in the middle of an install job', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-restart-'));
  let server: Spawned;
  let worker: Spawned;
  let url: string;
  let database: Database;
  let drop: () => Promise<void>;
  let operator: string;
  let enrollKey: string;
  const machines: Record<'killed' | 'rebooted' | 'dnf', Machine> = {} as never;
  const agents: AgentService[] = [];
  const ids: Record<string, string> = {};

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(url, q, { token: operator, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    operator = await tokenFor(database, 'ADMIN');
    const port = await freePort();
    const env = { ...fleetStackEnv({ databaseUrl: fresh.url, temporalAddress: temporalSettings().address, port, taskQueue: `restart-${randomUUID()}` }), FLEETPATCH_INSTALL_HEARTBEAT_SECONDS: String(HEARTBEAT_SECONDS) };
    url = `http://127.0.0.1:${port}/graphql`;
    server = spawnFleetpatch(['server'], env);
    worker = spawnFleetpatch(['worker'], env);
    const built = await Promise.all(
      (['killed', 'rebooted', 'dnf'] as const).map(async (role) => {
        const dir = path.join(work, role);
        const { root, env: machineEnv } = await (role === 'dnf' ? buildDnfMachine : buildAptMachine)(dir, { extraPackages: [SLOW_PACKAGE] });
        const name = role === 'dnf' ? 'rocky-killed-01' : `${role}-01`;
        fs.writeFileSync(path.join(root, 'etc/hostname'), `${name}\n`);
        const bootIdFile = path.join(dir, 'boot_id');
        fs.writeFileSync(bootIdFile, `${randomUUID()}\n`);
        return [role, { name, root, env: machineEnv, stateDir: path.join(dir, 'state'), bootIdFile }] as const;
      }),
    );
    for (const [role, machine] of built) machines[role] = machine;
    await Promise.all([server.waitFor(/"msg":"API listening"/), worker.waitFor(/"msg":"worker polling"/)]);
    enrollKey = (await query<{ createEnrollmentKey: { secret: string } }>('mutation { createEnrollmentKey(input: {description: "restarts"}) { secret } }')).createEnrollmentKey.secret;
    for (const machine of Object.values(machines)) agents.push(new AgentService(machine, url.replace('/graphql', ''), enrollKey).start());
    const assessed = async () => (await query<{ machines: { edges: Array<{ node: { id: string; name: string; lastAssessedAt: string | null } }> } }>('{ machines { edges { node { id name lastAssessedAt } } } }')).machines.edges.map((e) => e.node);
    await waitUntil(assessed, (list) => list.filter((m) => m.lastAssessedAt).length === 3, 90_000, 'three assessed machines');
    for (const m of await assessed()) ids[m.name] = m.id;
  }, 240_000);

  // A failed wait shows only what the server saw: what the agents said is often the why.
  afterEach((context) => {
    if (context.task.result?.state !== 'fail') return;
    for (const agent of agents) console.error(`--- agent ${agent.machine.name} (${agent.starts.length} start(s)), its last output:\n${agent.output.slice(-4000)}`);
  });

  afterAll(async () => {
    // A package manager left waiting by a failed test would wait for ever: let it finish.
    for (const machine of Object.values(machines)) fs.writeFileSync(slowInstallSignals(machine.root, 'demo-slow').release, '');
    await Promise.all(agents.map((a) => a.kill('group')));
    await stop(worker);
    await stop(server);
    await database.close();
    await drop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  async function startRun(name: string, machine: Machine, rebootSetting: string): Promise<string> {
    const input = { name, osType: 'LINUX', machineIds: [ids[machine.name]], classifications: ['CRITICAL', 'SECURITY'], excludePatterns: ['demo-broken'], windowMinutes: 60, rebootSetting };
    const { createDeployment } = await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input });
    return (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id })).runDeploymentNow.id;
  }

  // The run's one machine: its job stream is in the run's logs (a query within the API's cost limit).
  const machineRun = async (runId: string) =>
    runView(
      (await query<{ deploymentRun: { status: string; machineRuns: { edges: Array<{ node: MachineRunView }> }; logs: { edges: Array<{ node: { line: string } }> } } }>(
        'query($id: ID!) { deploymentRun(id: $id) { status machineRuns { edges { node { status rebootOutcome error updates { name status reason errorText } } } } logs(first: 2000) { edges { node { line } } } } }',
        { id: runId },
      )).deploymentRun,
    );
  const runView = (run: { status: string; machineRuns: { edges: Array<{ node: MachineRunView }> }; logs: { edges: Array<{ node: { line: string } }> } }) => ({
    status: run.status,
    machineRuns: run.machineRuns.edges.map((e) => e.node),
    logs: run.logs.edges.map((e) => e.node),
  });

  /** Milliseconds from `since` until the run's job stream has a line matching `pattern` (the server has it). */
  async function untilJobLine(runId: string, pattern: RegExp, since: number): Promise<number> {
    await waitUntil(() => machineRun(runId), (run) => run.logs.some((l) => pattern.test(l.line)), 60_000, `a job line matching ${pattern}`);
    return Date.now() - since;
  }

  async function runEnd(runId: string) {
    return waitUntil(() => machineRun(runId), (run) => !/^(SCHEDULED|IN_PROGRESS)$/.test(run.status), 150_000, 'the run to end');
  }

  it('killed alone (SIGKILL, its package manager still running), it takes the job back within seconds, waits for that package manager, and goes on with the next update', async () => {
    const machine = machines.killed;
    const agent = agents[0]!;
    const signals = slowInstallSignals(machine.root, 'demo-slow');
    const runId = await startRun('restart - agent killed', machine, 'NEVER');
    await fileAppears(signals.started, 90_000);

    // Mid-install: demo-libssl done, demo-slow's postinst running under apt-get, which outlives the agent.
    await agent.kill('agent');
    agent.start();
    const restartedAt = agent.starts.at(-1)!;
    const takenBack = await untilJobLine(runId, /taken back after the agent restarted: 1 of 4 update\(s\) done before/, restartedAt);
    const waiting = await untilJobLine(runId, /demo-slow: the agent restarted while installing it; waiting for the package manager it had started/, restartedAt);
    console.log(`agent killed mid-install: restart → job taken back ${takenBack} ms, → waiting for its package manager ${waiting} ms (install heartbeat window ${HEARTBEAT_SECONDS} s)`);
    expect(agent.output).toContain('taking back an unfinished install job');

    // The package manager the agent had started finishes; the agent sees it and goes on.
    const released = Date.now();
    fs.writeFileSync(signals.release, '');
    const nextStarted = await untilJobLine(runId, /Unpacking demo-tool/, released);
    console.log(`agent killed mid-install: package manager done → next update installing ${nextStarted} ms`);

    const run = await runEnd(runId);
    const view = run.machineRuns[0]!;
    expect(run.status).toBe('SUCCEEDED');
    expect(view).toMatchObject({ status: 'SUCCEEDED', error: null });
    expect(view.updates.find((u) => u.name === 'demo-slow')).toMatchObject({
      status: 'SUCCEEDED',
      reason: 'The agent restarted while this update was being installed; the package database shows demo-slow 1.1-1 installed.',
    });
    // apt-get finished on its own, its maintainer script printing after the agent was gone: nothing
    // was left for a repair to do.
    expect(run.logs.some((l) => /its package manager is no longer running|had been interrupted/.test(l.line))).toBe(false);
    for (const [name, version] of Object.entries(DEPLOYED)) {
      expect(view.updates.find((u) => u.name === name)?.status, name).toBe('SUCCEEDED');
      expect(dpkgInstalls(machine, name, version), `${name} installs in dpkg.log`).toBe(1);
    }
  }, 300_000);

  it('killed with its whole process group and the machine restarted (new boot id), it repairs dpkg, resumes, delivers, and the workflow still waits for the reboot after the job', async () => {
    const machine = machines.rebooted;
    const agent = agents[1]!;
    const signals = slowInstallSignals(machine.root, 'demo-slow');
    const runId = await startRun('restart - machine restarted', machine, 'IF_REQUIRED');
    await fileAppears(signals.started, 90_000);

    // A power cut: agent, apt-get, dpkg and the maintainer script die at once; the machine boots again.
    await agent.kill('group');
    const bootAfterCut = randomUUID();
    fs.writeFileSync(machine.bootIdFile, `${bootAfterCut}\n`);
    agent.start();
    const restartedAt = agent.starts.at(-1)!;
    const takenBack = await untilJobLine(runId, /taken back after the agent restarted: 1 of 4 update\(s\) done before/, restartedAt);
    console.log(`machine restarted mid-install: restart → job taken back ${takenBack} ms`);

    // dpkg was interrupted: its repair finishes demo-slow's configure, whose script waits again for the test.
    await untilJobLine(runId, /demo-slow: the agent restarted while installing it \(the machine restarted too\); its package manager is no longer running/, restartedAt);
    fs.writeFileSync(signals.release, '');

    const run = await runEnd(runId);
    const view = run.machineRuns[0]!;
    expect(run.status).toBe('SUCCEEDED');
    expect(view).toMatchObject({ status: 'SUCCEEDED', rebootOutcome: 'REBOOTED', error: null });
    expect(view.updates.find((u) => u.name === 'demo-slow')).toMatchObject({
      status: 'SUCCEEDED',
      reason: 'The agent restarted while this update was being installed (the machine restarted too); the package database shows demo-slow 1.1-1 installed.',
    });
    expect(run.logs.some((l) => /the package manager had been interrupted; repaired/.test(l.line))).toBe(true);
    for (const [name, version] of Object.entries(DEPLOYED)) {
      expect(view.updates.find((u) => u.name === name)?.status, name).toBe('SUCCEEDED');
      expect(dpkgInstalls(machine, name, version), `${name} installs in dpkg.log`).toBe(1);
    }

    // The result named the boot after the power cut, and the machine run waited for the reboot the
    // job asked for (the agent's third start), not taking the restart in the middle for it.
    const [row] = await database.sql<Array<{ boot_id: string; ended_at: string; machine_boot: string }>>`
      select c.result->>'bootId' as boot_id, r.ended_at, m.boot_id as machine_boot
      from agent_commands c join machine_runs r on r.id = c.machine_run_id join machines m on m.id = r.machine_id
      where r.run_id = ${runId}`;
    expect(row!.boot_id).toBe(bootAfterCut);
    expect(row!.machine_boot).not.toBe(bootAfterCut);
    expect(agent.starts).toHaveLength(3);
    expect(Date.parse(row!.ended_at)).toBeGreaterThanOrEqual(agent.starts[2]!);
  }, 300_000);

  it('on dnf too: killed alone in a %post, it takes the job back, waits for dnf, and each update is one dnf transaction', async () => {
    const machine = machines.dnf;
    const agent = agents[2]!;
    const signals = slowInstallSignals(machine.root, 'demo-slow');
    const runId = await startRun('restart - dnf agent killed', machine, 'NEVER');
    await fileAppears(signals.started, 90_000);

    await agent.kill('agent');
    agent.start();
    const restartedAt = agent.starts.at(-1)!;
    const takenBack = await untilJobLine(runId, /taken back after the agent restarted: 1 of 4 update\(s\) done before/, restartedAt);
    await untilJobLine(runId, /demo-slow: the agent restarted while installing it; waiting for the package manager it had started/, restartedAt);
    console.log(`dnf agent killed mid-install: restart → job taken back ${takenBack} ms`);
    fs.writeFileSync(signals.release, '');

    const run = await runEnd(runId);
    const view = run.machineRuns[0]!;
    expect(run.status).toBe('SUCCEEDED');
    expect(view.updates.find((u) => u.name === 'demo-slow')).toMatchObject({
      status: 'SUCCEEDED',
      reason: 'The agent restarted while this update was being installed; the package database shows demo-slow 1.1-1 installed.',
    });
    for (const [name, version] of Object.entries(DEPLOYED)) {
      expect(view.updates.find((u) => u.name === name)?.status, name).toBe('SUCCEEDED');
      // One version in rpm's database (no half-done transaction), reached by one dnf transaction.
      expect(execFileSync('rpm', ['--root', machine.root, '-q', '--qf', '%{VERSION}-%{RELEASE}\n', name], { encoding: 'utf8', env: machine.env }).trim(), name).toBe(version);
      expect(dnfTransactions(machine, name), `${name} in dnf history`).toBe(2);
    }
  }, 300_000);
});
