import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, type ExecResult } from '../../src/agent/exec.js';
import type { Database } from '../../src/db/client.js';
import { findEnrollmentKeyBySecret } from '../../src/db/enrollmentKeys.js';
import { freePort } from '../../src/net.js';
import pkg from '../../package.json' with { type: 'json' };
import { ARCHES, debPackage, packageVersion } from '../../scripts/agentPackages.mjs';
import { CHROOT_ENV, inChroot, restoreDebianRoot } from '../fixtures/debianRoot.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/**
 * The one-line install, as a new user runs it: an admin creates an enrollment key, GraphQL gives the
 * command, and the command runs as root inside a real Debian 12 root (debootstrap, cached; with curl
 * and sudo, as a cloud image has them; no Node.js), reaching a real `fleetpatch server` on this
 * machine over loopback. The server offers the agent's real .deb (built here from the executable of
 * `npm run agent-executables`, uncompressed) and its install.sh. Needs root (chroot, namespaces).
 */
const REPOSITORY = new URL('../..', import.meta.url).pathname;
const VERSION = packageVersion(pkg.version);

describe('install.sh from the server into a Debian 12 machine', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-install-script-'));
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

  /** A new key and the Linux command GraphQL gives for it. */
  async function newKey(maxUses = 1): Promise<{ secret: string; command: string }> {
    const { createEnrollmentKey } = await query<{ createEnrollmentKey: { secret: string; installCommands: { linux: string } } }>(
      'mutation($max: Int) { createEnrollmentKey(input: {description: "install.sh", maxUses: $max}) { secret installCommands { linux } } }',
      { max: maxUses },
    );
    return { secret: createEnrollmentKey.secret, command: createEnrollmentKey.installCommands.linux };
  }

  /** Runs a shell command line as root inside the Debian root. */
  const asRoot = (line: string, env: Record<string, string> = {}) =>
    inChroot(root, ['env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), 'sh', '-c', line], { timeoutMs: 300_000 });

  /** What this machine has of the agent: nothing at all after a failed install. */
  async function nothingInstalled(): Promise<void> {
    expect((await inChroot(root, ['dpkg-query', '-W', '-f=${Status}', 'fleetpatch-agent'])).stdout).not.toContain('ok installed');
    for (const leftover of ['usr/bin/fleetpatch-agent', 'etc/fleetpatch-agent', 'var/lib/fleetpatch-agent']) expect(fs.existsSync(path.join(root, leftover)), leftover).toBe(false);
  }

  const lines = (r: ExecResult) => ({ exitCode: r.exitCode, stdout: r.stdout.split('\n').filter(Boolean), stderr: r.stderr.split('\n').filter(Boolean) });

  beforeAll(async () => {
    // The executables (seconds when up to date), then the .deb from them: what `npm run package` makes, without its minutes of xz.
    const built = await exec(process.execPath, ['scripts/build-agent-executables.mjs', '--platform', 'linux-x64', '--platform', 'linux-arm64', '--platform', 'windows-x64'], { cwd: REPOSITORY, timeoutMs: 600_000 });
    if (built.exitCode !== 0) throw new Error(`build-agent-executables: ${built.stderr}`);
    const packages = path.join(work, 'dist/packages');
    fs.mkdirSync(packages, { recursive: true });
    const deb = debPackage({ work: path.join(work, 'deb-build'), out: packages, version: VERSION, arch: ARCHES[0]!, compression: 'none' });
    const bytes = fs.readFileSync(deb);
    const file = { name: path.basename(deb), format: 'deb', arch: 'amd64', platform: 'linux-x64', sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
    fs.writeFileSync(path.join(packages, 'manifest.json'), JSON.stringify({ version: pkg.version, files: [file] }));

    root = await restoreDebianRoot(path.join(work, 'debian'), (line) => console.error(line), { packages: ['curl', 'sudo'] });
    // The machine knows its own name, as an installed one does (sudo says so otherwise); the chroot
    // shares this host's name.
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
      FLEETPATCH_TASK_QUEUE: `install-${randomUUID()}`,
      PORT: String(port),
      HOST: '127.0.0.1',
      FLEETPATCH_CHECKIN_SECONDS: '2',
      FLEETPATCH_AGENT_DIST_DIR: path.join(work, 'dist'),
      FLEETPATCH_RELEASE_KEY_FILE: path.join(work, 'release-key.json'),
    });
    await server.waitFor(/"msg":"API listening"/);
  }, 1_200_000);

  /** Stops an agent started through unshare: unshare --fork ignores SIGTERM itself, so the whole group is told. */
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

  it('refuses a distribution it has no package for, in one line, installing nothing', async () => {
    const { command } = await newKey();
    const release = fs.readFileSync(path.join(root, 'etc/os-release'));
    fs.rmSync(path.join(root, 'etc/os-release'));
    fs.writeFileSync(path.join(root, 'etc/os-release'), 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n');
    try {
      expect(lines(await asRoot(command))).toEqual({
        exitCode: 1,
        stdout: [],
        stderr: ['fleetpatch install: this distribution (Alpine Linux v3.20, ID=alpine) is not supported: fleetpatch-agent installs on Debian, Ubuntu, RHEL and its rebuilds, Fedora, Amazon Linux and SUSE.'],
      });
    } finally {
      fs.rmSync(path.join(root, 'etc/os-release'));
      fs.writeFileSync(path.join(root, 'etc/os-release'), release);
    }
    await nothingInstalled();
  });

  it('refuses a wrong key before installing anything, with the server\'s reason', async () => {
    const { command, secret } = await newKey();
    expect(lines(await asRoot(command.replace(secret, 'fpe_ThisIsNotAKeyTheServerGaveOut')))).toEqual({
      exitCode: 1,
      stdout: [],
      stderr: ['fleetpatch install: the server refused the enrollment key: This enrollment key is not known to the server. Ask an admin for a valid key.'],
    });
    await nothingInstalled();
  });

  it('says in one line that it cannot reach the server, installing nothing', async () => {
    const { secret } = await newKey();
    const closed = await freePort();
    const ran = lines(await asRoot(`curl -fsSL ${base}/agent/install.sh | sudo FLEETPATCH_ENROLL_KEY=${secret} FLEETPATCH_SERVER=http://127.0.0.1:${closed} sh`));
    expect({ exitCode: ran.exitCode, stdout: ran.stdout, lines: ran.stderr.length }).toEqual({ exitCode: 1, stdout: [], lines: 1 });
    expect(ran.stderr[0]).toMatch(new RegExp(`^fleetpatch install: cannot reach the fleetpatch server at http://127\\.0\\.0\\.1:${closed}: curl: \\(7\\) Failed to connect to 127\\.0\\.0\\.1 port ${closed}`));
    await nothingInstalled();
  }, 180_000);

  it('takes the package away again when the enrollment fails after the install', async () => {
    const { command } = await newKey();
    const hostname = fs.readFileSync(path.join(root, 'etc/hostname'));
    // A hostname the server refuses (a bidi override character): the key is fine, the enrollment is not.
    fs.writeFileSync(path.join(root, 'etc/hostname'), 'web\u202e01\n');
    try {
      const ran = lines(await asRoot(command));
      expect(ran.exitCode).toBe(1);
      expect(ran.stderr).toHaveLength(1);
      expect(ran.stderr[0]).toMatch(/^fleetpatch install: the enrollment failed, so the package was removed again: The server refused the enrollment \(400 BAD_USER_INPUT\): facts\.hostname: .*U\+202E/);
    } finally {
      fs.writeFileSync(path.join(root, 'etc/hostname'), hostname);
    }
    await nothingInstalled();
  }, 180_000);

  it('installs, enrolls and prints the machine id; says how to start the agent where systemd does not run; the agent then reports the machine', async () => {
    const { command, secret } = await newKey();
    expect((await asRoot('command -v node nodejs')).exitCode).not.toBe(0);
    const began = Date.now();
    const ran = lines(await asRoot(command));
    const seconds = (Date.now() - began) / 1000;
    expect(ran.stderr).toEqual([]);
    expect(ran.exitCode).toBe(0);
    expect(ran.stdout.join('\n')).toMatch(/^fleetpatch install: fleetpatch-agent \S+ is installed; this machine is enrolled as [0-9a-f-]{36}$/m);
    const enrolled = /^fleetpatch install: fleetpatch-agent (\S+) is installed; this machine is enrolled as ([0-9a-f-]{36})$/m.exec(ran.stdout.join('\n'));
    expect(enrolled?.[1]).toBe(VERSION);
    const machineId = enrolled![2]!;
    console.error(`install.sh to enrolled: ${seconds.toFixed(1)} s`);
    const startLine = `/usr/bin/fleetpatch-agent run --server ${base} --state-dir /var/lib/fleetpatch-agent`;
    expect(ran.stdout).toEqual([
      `fleetpatch install: downloading fleetpatch-agent_${VERSION}_amd64.deb from ${base}`,
      `fleetpatch install: installing fleetpatch-agent ${VERSION} with apt-get`,
      enrolled![0],
      `fleetpatch install: systemd is not running here (a container or chroot), so nothing starts the agent now; the service is enabled for the next boot. To start it now: ${startLine}`,
    ]);

    const env = fs.readFileSync(path.join(root, 'etc/fleetpatch-agent/agent.env'), 'utf8');
    expect((fs.statSync(path.join(root, 'etc/fleetpatch-agent/agent.env')).mode & 0o777).toString(8)).toBe('600');
    expect(env).toMatch(new RegExp(`^FLEETPATCH_SERVER=${base.replace(/\./g, '\\.')}$`, 'm'));
    // Used once, then not kept.
    expect(env).toMatch(/^FLEETPATCH_ENROLL_KEY=$/m);
    expect(env).not.toContain(secret);
    expect(JSON.parse(fs.readFileSync(path.join(root, 'var/lib/fleetpatch-agent/identity.json'), 'utf8'))).toMatchObject({ machineId, server: base });
    expect(fs.existsSync(path.join(root, 'var/lib/fleetpatch-agent/release-key.json'))).toBe(true);
    expect(fs.lstatSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/fleetpatch-agent.service')).isSymbolicLink()).toBe(true);
    expect((await query<{ machine: { id: string; name: string } }>('query($id: ID!) { machine(id: $id) { id name } }', { id: machineId })).machine.id).toBe(machineId);

    // What the user does next: the command it printed, as a service manager would run it (with agent.env).
    const agent = spawn('unshare', ['--mount', '--propagation', 'private', '--fork', '--kill-child', 'sh', '-c', 'mount --rbind /dev "$0/dev" && mount -t proc proc "$0/proc" && exec chroot "$0" sh -c "set -a; . /etc/fleetpatch-agent/agent.env; exec $1"', root, startLine], {
      env: CHROOT_ENV,
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    started.push(agent);
    let output = '';
    agent.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const assessed = await waitUntil(
      async () => (await query<{ machine: { lastAssessedAt: string | null; criticalAndSecurityCount: number; otherCount: number; agentVersion: string } }>('query($id: ID!) { machine(id: $id) { lastAssessedAt criticalAndSecurityCount otherCount agentVersion } }', { id: machineId })).machine,
      (m) => m.lastAssessedAt !== null,
      120_000,
      `the machine assessed (agent output: ${output.slice(-2000)})`,
    );
    expect(assessed.agentVersion).toBe(pkg.version);
    expect(assessed.criticalAndSecurityCount + assessed.otherCount).toBeGreaterThan(0);
    stopAgent(agent);
    await new Promise((resolve) => (agent.exitCode !== null ? resolve(null) : agent.once('exit', resolve)));

    // Run again on the enrolled machine: the same machine, the key not used.
    const { command: again, secret: second } = await newKey();
    const rerun = lines(await asRoot(again));
    expect(rerun.exitCode).toBe(0);
    expect(rerun.stdout).toContain(`fleetpatch install: fleetpatch-agent ${VERSION} is installed; this machine is enrolled as ${machineId}`);
    expect((await findEnrollmentKeyBySecret(database.db, second))?.useCount).toBe(0);
  }, 300_000);

  it('without systemctl at all, says how to start the agent instead of failing silently', async () => {
    await asRoot('dpkg --purge fleetpatch-agent');
    await nothingInstalled();
    fs.renameSync(path.join(root, 'usr/bin/systemctl'), path.join(root, 'usr/bin/systemctl.away'));
    try {
      const { command } = await newKey();
      const ran = lines(await asRoot(command));
      expect(ran.exitCode).toBe(0);
      expect(ran.stderr).toEqual([]);
      expect(ran.stdout.at(-1)).toBe(
        `fleetpatch install: there is no systemd here, so nothing starts the agent: start it with  /usr/bin/fleetpatch-agent run --server ${base} --state-dir /var/lib/fleetpatch-agent  and keep it running with this machine's service manager.`,
      );
      expect(ran.stdout.at(-2)).toMatch(/this machine is enrolled as [0-9a-f-]{36}$/);
    } finally {
      fs.renameSync(path.join(root, 'usr/bin/systemctl.away'), path.join(root, 'usr/bin/systemctl'));
    }
  }, 180_000);
});
