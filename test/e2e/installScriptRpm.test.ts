import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, type ExecResult } from '../../src/agent/exec.js';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import pkg from '../../package.json' with { type: 'json' };
import { ARCHES, packageVersion, rpmPackage } from '../../scripts/agentPackages.mjs';
import { CHROOT_ENV, inChroot } from '../fixtures/debianRoot.js';
import { becomeDistribution, forgetBaseSystem, registerBaseSystem, restoreRpmRoot, RPM_OS_NAMES } from '../fixtures/rpmRoot.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/**
 * The one-line install on a machine whose package manager is dnf, then one whose is zypper: the
 * .rpm path of install.sh, run as root by the command GraphQL gives, against a real `fleetpatch
 * server` on this machine that offers the agent's real .rpm for x86_64 and aarch64. How real the
 * machine is (a Debian 12 root with Debian's rpm, dnf and zypper, made to look like Rocky Linux 9
 * and SLES 15): test/fixtures/rpmRoot.ts. Needs root (chroot, namespaces).
 */
const REPOSITORY = new URL('../..', import.meta.url).pathname;
const VERSION = packageVersion(pkg.version);
const X86_RPM = `fleetpatch-agent-${VERSION}-1.x86_64.rpm`;

describe('install.sh from the server into RPM machines (dnf, then zypper)', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-install-rpm-'));
  let root: string;
  let database: Database;
  let drop: () => Promise<void>;
  let server: Spawned;
  let url: string;
  let base: string;
  let admin: string;
  const started: ChildProcess[] = [];

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(url, q, { token: admin, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  async function newKey(): Promise<{ secret: string; command: string }> {
    const { createEnrollmentKey } = await query<{ createEnrollmentKey: { secret: string; installCommands: { linux: string } } }>(
      'mutation { createEnrollmentKey(input: {description: "install.sh rpm", maxUses: 1}) { secret installCommands { linux } } }',
    );
    return { secret: createEnrollmentKey.secret, command: createEnrollmentKey.installCommands.linux };
  }

  const asRoot = (line: string) => inChroot(root, ['sh', '-c', line], { timeoutMs: 300_000 });
  const lines = (r: ExecResult) => ({ exitCode: r.exitCode, stdout: r.stdout.split('\n').filter(Boolean), stderr: r.stderr.split('\n').filter(Boolean) });
  const rpmQuery = async () => (await inChroot(root, ['rpm', '-q', 'fleetpatch-agent'])).stdout.trim();

  async function nothingInstalled(): Promise<void> {
    expect(await rpmQuery()).toBe('package fleetpatch-agent is not installed');
    for (const leftover of ['usr/bin/fleetpatch-agent', 'etc/fleetpatch-agent', 'var/lib/fleetpatch-agent']) expect(fs.existsSync(path.join(root, leftover)), leftover).toBe(false);
  }

  /** What a user who followed the printed line and read agent.env would see of the installed files. */
  function installedAndEnrolled(secret: string): string {
    const envFile = path.join(root, 'etc/fleetpatch-agent/agent.env');
    expect((fs.statSync(envFile).mode & 0o777).toString(8)).toBe('600');
    const env = fs.readFileSync(envFile, 'utf8');
    expect(env).toMatch(new RegExp(`^FLEETPATCH_SERVER=${base.replace(/\./g, '\\.')}$`, 'm'));
    expect(env).toMatch(/^FLEETPATCH_ENROLL_KEY=$/m);
    expect(env).not.toContain(secret);
    return (JSON.parse(fs.readFileSync(path.join(root, 'var/lib/fleetpatch-agent/identity.json'), 'utf8')) as { machineId: string }).machineId;
  }

  beforeAll(async () => {
    const built = await exec(process.execPath, ['scripts/build-agent-executables.mjs', '--platform', 'linux-x64', '--platform', 'linux-arm64', '--platform', 'windows-x64'], { cwd: REPOSITORY, timeoutMs: 600_000 });
    if (built.exitCode !== 0) throw new Error(`build-agent-executables: ${built.stderr}`);
    // Both architectures' .rpm (uncompressed: what npm run package makes, without its minutes of xz),
    // so the script has to pick the one for this CPU.
    const packages = path.join(work, 'dist/packages');
    fs.mkdirSync(packages, { recursive: true });
    const files = ARCHES.map((arch) => {
      const file = rpmPackage({ work: path.join(work, 'rpm-build'), out: packages, version: VERSION, arch, compression: 'none' });
      const bytes = fs.readFileSync(file);
      return { name: path.basename(file), format: 'rpm', arch: arch.rpm, platform: arch.platform, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
    });
    fs.writeFileSync(path.join(packages, 'manifest.json'), JSON.stringify({ version: pkg.version, packageVersion: VERSION, files }));

    root = await restoreRpmRoot(path.join(work, 'machine'), 'rocky', (line) => console.error(line));
    fs.appendFileSync(path.join(root, 'etc/hosts'), `127.0.0.1\tlocalhost\n127.0.1.1\t${os.hostname()}\n`);
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    admin = await tokenFor(database, 'ADMIN');
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    url = `${base}/graphql`;
    server = spawnFleetpatch(['server'], {
      DATABASE_URL: fresh.url,
      TEMPORAL_ADDRESS: temporalSettings().address,
      FLEETPATCH_TASK_QUEUE: `install-rpm-${randomUUID()}`,
      PORT: String(port),
      HOST: '127.0.0.1',
      FLEETPATCH_CHECKIN_SECONDS: '2',
      FLEETPATCH_AGENT_DIST_DIR: path.join(work, 'dist'),
      FLEETPATCH_RELEASE_KEY_FILE: path.join(work, 'release-key.json'),
    });
    await server.waitFor(/"msg":"API listening"/);
  }, 1_200_000);

  /** unshare --fork ignores SIGTERM itself, so the whole group is told. */
  const stopAgent = (child: ChildProcess) => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGTERM');
  };

  afterAll(async () => {
    for (const child of started) stopAgent(child);
    await Promise.all(started.map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((resolve) => child.once('exit', resolve)) : undefined)));
    if (server) await stop(server);
    await database?.close();
    await drop?.();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('is a machine without apt or dpkg, whose rpm database holds its C library', async () => {
    expect((await asRoot('command -v apt-get || command -v dpkg || command -v zypper || command -v node')).exitCode).not.toBe(0);
    expect((await asRoot('command -v dnf && command -v rpm && command -v systemctl')).exitCode).toBe(0);
    expect((await inChroot(root, ['rpm', '-q', '--whatprovides', 'libc.so.6(GLIBC_2.17)(64bit)'])).stdout.trim()).toBe('base-system-12-1.x86_64');
  });

  /**
   * A machine whose package manager cannot satisfy the package (here: its C library unknown to the
   * rpm database): one line with the package manager's own reason, not its closing hint or prompt.
   */
  async function refusedByPackageManager(installer: 'dnf' | 'zypper', exitCode: number): Promise<void> {
    const { command } = await newKey();
    await forgetBaseSystem(root);
    try {
      const ran = lines(await asRoot(command));
      expect(ran.stderr).toEqual([`fleetpatch install: ${installer} could not install ${X86_RPM} (exit ${exitCode}): nothing provides ld-linux-x86-64.so.2()(64bit) needed by fleetpatch-agent-${VERSION}-1.x86_64`]);
      expect(ran.exitCode).toBe(1);
    } finally {
      await registerBaseSystem(root);
    }
    await nothingInstalled();
  }

  it('dnf: says in one line what dnf could not satisfy, installing nothing', async () => {
    await refusedByPackageManager('dnf', 1);
  }, 180_000);

  it('dnf: takes the package away again with rpm when the enrollment fails after the install', async () => {
    const { command } = await newKey();
    const hostname = fs.readFileSync(path.join(root, 'etc/hostname'));
    // A hostname the server refuses: the key is fine, the enrollment is not.
    fs.writeFileSync(path.join(root, 'etc/hostname'), 'db\u202e01\n');
    try {
      const ran = lines(await asRoot(command));
      expect(ran.stdout).toContain('fleetpatch install: installing fleetpatch-agent ' + VERSION + ' with dnf');
      expect(ran.exitCode).toBe(1);
      expect(ran.stderr).toHaveLength(1);
      expect(ran.stderr[0]).toMatch(/^fleetpatch install: the enrollment failed, so the package was removed again: The server refused the enrollment \(400 BAD_USER_INPUT\): facts\.hostname: .*U\+202E/);
    } finally {
      fs.writeFileSync(path.join(root, 'etc/hostname'), hostname);
    }
    await nothingInstalled();
  }, 180_000);

  it('dnf (Rocky Linux 9): picks the x86_64 .rpm, installs it with dnf, writes agent.env 0600, prints the machine id; the agent then reports the machine', async () => {
    const { command, secret } = await newKey();
    const ran = lines(await asRoot(command));
    expect(ran.stderr).toEqual([]);
    expect(ran.exitCode).toBe(0);
    const machineId = installedAndEnrolled(secret);
    expect(ran.stdout).toEqual([
      `fleetpatch install: downloading ${X86_RPM} from ${base}`,
      `fleetpatch install: installing fleetpatch-agent ${VERSION} with dnf`,
      `fleetpatch install: fleetpatch-agent ${VERSION} is installed; this machine is enrolled as ${machineId}`,
      `fleetpatch install: systemd is not running here (a container or chroot), so nothing starts the agent now; the service is enabled for the next boot. To start it now: /usr/bin/fleetpatch-agent run --server ${base} --state-dir /var/lib/fleetpatch-agent`,
    ]);
    // dnf installed it (its own history says so), rpm knows it, and %post enabled the unit.
    expect(await rpmQuery()).toBe(`fleetpatch-agent-${VERSION}-1.x86_64`);
    expect((await inChroot(root, ['dnf', '-q', 'history', 'info', 'last'])).stdout).toMatch(new RegExp(`Install\\s+fleetpatch-agent-${VERSION.replace(/\./g, '\\.')}-1\\.x86_64\\s+@+commandline`));
    expect(fs.lstatSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/fleetpatch-agent.service')).isSymbolicLink()).toBe(true);

    // The printed command, run as a service manager would (with agent.env): the dnf machine is assessed.
    const agent = spawn(
      'unshare',
      ['--mount', '--propagation', 'private', '--fork', '--kill-child', 'sh', '-c', 'mount --rbind /dev "$0/dev" && mount -t proc proc "$0/proc" && exec chroot "$0" sh -c "set -a; . /etc/fleetpatch-agent/agent.env; exec $1"', root, `/usr/bin/fleetpatch-agent run --server ${base} --state-dir /var/lib/fleetpatch-agent`],
      { env: CHROOT_ENV, stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    started.push(agent);
    let output = '';
    agent.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const assessed = await waitUntil(
      async () => (await query<{ machine: { lastAssessedAt: string | null; osName: string; packageManager: string | null; agentVersion: string } }>('query($id: ID!) { machine(id: $id) { lastAssessedAt osName packageManager agentVersion } }', { id: machineId })).machine,
      (m) => m.lastAssessedAt !== null,
      120_000,
      `the machine assessed (agent output: ${output.slice(-2000)})`,
    );
    expect(assessed).toMatchObject({ osName: RPM_OS_NAMES.rocky, packageManager: 'dnf', agentVersion: pkg.version });
    stopAgent(agent);
    await new Promise((resolve) => (agent.exitCode !== null ? resolve(null) : agent.once('exit', resolve)));
  }, 300_000);

  it('zypper (SLES 15) without systemctl: installs with zypper, prints the machine id and says how to start the agent', async () => {
    // Another machine: the agent erased, its identity forgotten, the distribution changed.
    await inChroot(root, ['rpm', '-e', 'fleetpatch-agent']);
    fs.rmSync(path.join(root, 'var/lib/fleetpatch-agent'), { recursive: true, force: true });
    fs.rmSync(path.join(root, 'etc/fleetpatch-agent'), { recursive: true, force: true });
    await nothingInstalled();
    becomeDistribution(root, 'sles');
    fs.renameSync(path.join(root, 'usr/bin/systemctl'), path.join(root, 'usr/bin/systemctl.away'));
    try {
      expect((await asRoot('command -v dnf || command -v yum')).exitCode).not.toBe(0);
      await refusedByPackageManager('zypper', 4);
      const { command, secret } = await newKey();
      const ran = lines(await asRoot(command));
      expect(ran.stderr).toEqual([]);
      expect(ran.exitCode).toBe(0);
      const machineId = installedAndEnrolled(secret);
      expect(ran.stdout).toEqual([
        `fleetpatch install: downloading ${X86_RPM} from ${base}`,
        `fleetpatch install: installing fleetpatch-agent ${VERSION} with zypper`,
        `fleetpatch install: fleetpatch-agent ${VERSION} is installed; this machine is enrolled as ${machineId}`,
        `fleetpatch install: there is no systemd here, so nothing starts the agent: start it with  /usr/bin/fleetpatch-agent run --server ${base} --state-dir /var/lib/fleetpatch-agent  and keep it running with this machine's service manager.`,
      ]);
      expect(await rpmQuery()).toBe(`fleetpatch-agent-${VERSION}-1.x86_64`);
      // zypper's own history records the install.
      expect(fs.readFileSync(path.join(root, 'var/log/zypp/history'), 'utf8')).toMatch(new RegExp(`\\|install\\|fleetpatch-agent\\|${VERSION.replace(/\./g, '\\.')}-1\\|x86_64\\|`));
      expect((await query<{ machine: { osName: string } }>('query($id: ID!) { machine(id: $id) { osName } }', { id: machineId })).machine.osName).toBe(RPM_OS_NAMES.sles);
    } finally {
      fs.renameSync(path.join(root, 'usr/bin/systemctl.away'), path.join(root, 'usr/bin/systemctl'));
    }
  }, 300_000);
});
