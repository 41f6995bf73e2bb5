import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildAptMachine } from '../../testkit/apt.js';
import { buildDnfMachine } from '../../testkit/dnf.js';
import { buildZypperMachine } from '../../testkit/zypper.js';

export const AGENT_BUNDLE = new URL('../../dist/agent/fleetpatch-agent.mjs', import.meta.url).pathname;
/**
 * How a supervised agent starts: the bundle on this Node.js, or, with FLEETPATCH_TEST_AGENT_EXECUTABLE
 * set (e.g. to dist/executables/fleetpatch-agent-linux-x64), a self-contained executable, to run the
 * same deployments on what the packages install.
 */
export const AGENT_COMMAND = process.env.FLEETPATCH_TEST_AGENT_EXECUTABLE ? [process.env.FLEETPATCH_TEST_AGENT_EXECUTABLE] : [process.execPath, AGENT_BUNDLE];

export type Backend = 'apt' | 'dnf' | 'zypper';

/**
 * Environment of `fleetpatch server` / `worker` processes driving the fixture fleet: its own task
 * queue, and agent timings short enough for a test (check-in every second, 5 s polls, 20 s install
 * heartbeat, 60 s reboot wait).
 */
export function fleetStackEnv(options: { databaseUrl: string; temporalAddress: string; port: number; taskQueue: string }): NodeJS.ProcessEnv {
  return {
    DATABASE_URL: options.databaseUrl,
    TEMPORAL_ADDRESS: options.temporalAddress,
    FLEETPATCH_TASK_QUEUE: options.taskQueue,
    PORT: String(options.port),
    HOST: '127.0.0.1',
    FLEETPATCH_CHECKIN_SECONDS: '1',
    FLEETPATCH_LONG_POLL_SECONDS: '5',
    FLEETPATCH_INSTALL_HEARTBEAT_SECONDS: '20',
    FLEETPATCH_REBOOT_TIMEOUT_SECONDS: '60',
  };
}

/** A fixture machine as the agent sees it, with the cloud it pretends to run in. */
export interface FixtureMachine {
  backend: Backend;
  name: string;
  root: string;
  env: NodeJS.ProcessEnv;
  stateDir: string;
  /** The file the agent reads its boot id from: a simulated reboot writes a new one. */
  bootIdFile: string;
  environment: 'AWS' | 'AZURE' | 'GCP';
}

const CLOUDS: Record<Backend, { name: string; environment: FixtureMachine['environment']; dmi: Record<string, string> }> = {
  apt: { name: 'debian-01', environment: 'AWS', dmi: { sys_vendor: 'Amazon EC2', product_name: 'm5.large', bios_vendor: 'Amazon EC2' } },
  dnf: { name: 'rocky-01', environment: 'AZURE', dmi: { sys_vendor: 'Microsoft Corporation', product_name: 'Virtual Machine', chassis_asset_tag: '7783-7084-3265-9085-8269-3286-77' } },
  zypper: { name: 'sles-01', environment: 'GCP', dmi: { sys_vendor: 'Google', product_name: 'Google Compute Engine' } },
};

const BUILDERS: Record<Backend, (dir: string) => Promise<{ root: string; env: NodeJS.ProcessEnv }>> = { apt: buildAptMachine, dnf: buildDnfMachine, zypper: buildZypperMachine };

/**
 * One real machine of `backend` under `work` (in its own folder), with its hostname, DMI strings and
 * boot id. Named after its cloud (`debian-01`, `rocky-01`, `sles-01`) plus `suffix`, so that
 * several fleets can share one server.
 */
export async function buildFixtureMachine(work: string, backend: Backend, suffix = ''): Promise<FixtureMachine> {
  const { root, env } = await BUILDERS[backend](path.join(work, backend));
  const cloud = CLOUDS[backend];
  const name = `${cloud.name}${suffix}`;
  fs.writeFileSync(path.join(root, 'etc/hostname'), `${name}\n`);
  const dmiDir = path.join(root, 'sys/class/dmi/id');
  fs.mkdirSync(dmiDir, { recursive: true });
  for (const [field, value] of Object.entries(cloud.dmi)) fs.writeFileSync(path.join(dmiDir, field), `${value}\n`);
  const bootIdFile = path.join(work, `${backend}-boot_id`);
  fs.writeFileSync(bootIdFile, `${crypto.randomUUID()}\n`);
  return { backend, name, root, env, stateDir: path.join(work, `${backend}-state`), bootIdFile, environment: cloud.environment };
}

/** Real machines (apt, dnf, zypper, or those given) under `work`, named with `suffix`. */
export async function buildFleet<B extends Backend = Backend>(work: string, backends: readonly B[] = ['apt', 'dnf', 'zypper'] as B[], suffix = ''): Promise<Record<B, FixtureMachine>> {
  const built = await Promise.all(backends.map((backend) => buildFixtureMachine(work, backend, suffix)));
  return Object.fromEntries(backends.map((backend, i) => [backend, built[i]!])) as Record<B, FixtureMachine>;
}

/**
 * The bundled agent for a fixture machine, kept running like systemd's Restart=always. Its reboot
 * command writes a new boot id and stops the agent, which comes back as after a real reboot.
 */
export class SupervisedAgent {
  child: ChildProcess | undefined;
  output = '';
  starts = 0;
  private stopped = false;

  constructor(
    readonly machine: FixtureMachine,
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
    const child = spawn(
      AGENT_COMMAND[0]!,
      [...AGENT_COMMAND.slice(1), 'run', '--server', this.server, '--enroll-key', this.enrollKey, '--state-dir', this.machine.stateDir, '--root', this.machine.root, '--boot-id-file', this.machine.bootIdFile, '--reboot-command', reboot],
      { env: this.machine.env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.starts += 1;
    this.child = child;
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.once('exit', () => {
      if (!this.stopped) setTimeout(() => this.spawn(), 300);
    });
  }

  /** Stops it for good (SIGKILL: a crash). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.stopped = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }
}
