import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, type ExecResult } from '../../src/agent/exec.js';
import pkg from '../../package.json' with { type: 'json' };
import { ARCHES, debPackage, packageVersion, rpmPackage } from '../../scripts/agentPackages.mjs';
import { buildAptMachine } from '../../testkit/apt.js';
import { buildDnfMachine, type DnfMachine } from '../../testkit/dnf.js';
import { buildZypperMachine } from '../../testkit/zypper.js';
import { inChroot, parseAptSimulation, restoreDebianRoot } from '../fixtures/debianRoot.js';

// The agent as it reaches real machines: the self-contained executables and the .deb/.rpm packages
// of `npm run package` (built here if dist/ does not hold them for this code yet; .ci/run builds
// them before the suite), installed with the real dpkg into a real Debian 12 root without Node.js
// and with the real rpm into a dnf fixture machine. Needs root (chroot, mount namespaces).

const REPOSITORY = new URL('../..', import.meta.url).pathname;
const EXECUTABLES = path.join(REPOSITORY, 'dist/executables');
const PACKAGES = path.join(REPOSITORY, 'dist/packages');
const BUNDLE = path.join(REPOSITORY, 'dist/agent/fleetpatch-agent.mjs');
const VERSION = packageVersion(pkg.version);
/** A later version of the same package, to upgrade to (sorts after VERSION for dpkg and rpm). */
const NEXT_VERSION = `${VERSION}.1`;
const DEB = path.join(PACKAGES, `fleetpatch-agent_${VERSION}_amd64.deb`);
const RPM = path.join(PACKAGES, `fleetpatch-agent-${VERSION}-1.x86_64.rpm`);
const X64 = path.join(EXECUTABLES, 'fleetpatch-agent-linux-x64');
const ARM64 = path.join(EXECUTABLES, 'fleetpatch-agent-linux-arm64');
const WINDOWS = path.join(EXECUTABLES, 'fleetpatch-agent-windows-x64.exe');
const UNIT = 'fleetpatch-agent.service';
/** What an enrolled agent keeps (src/agent/state.ts), as it writes it. */
const IDENTITY = JSON.stringify({ server: 'https://fleetpatch.test', machineId: '3f1c1b4e-0000-4000-8000-000000000001', credential: 'fpm_test' }, null, 2);

let work: string;

async function must(result: Promise<ExecResult>, what: string): Promise<ExecResult> {
  const r = await result;
  if (r.exitCode !== 0) throw new Error(`${what} exited ${r.exitCode ?? r.signal}:\n${r.stderr}\n${r.stdout}`);
  return r;
}

/** name → [installed, available] of an `assess --json` answer. */
function assessedVersions(stdout: string): Map<string, [string | null, string]> {
  const updates = (JSON.parse(stdout) as { updates: Array<{ name: string; installedVersion: string | null; availableVersion: string }> }).updates;
  return new Map(updates.map((u) => [u.name, [u.installedVersion, u.availableVersion]]));
}

function modeOf(file: string): string {
  return (fs.statSync(file).mode & 0o7777).toString(8);
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-packages-test-'));
  // Up to date in a second when dist/ already holds them for this code (both scripts say so).
  await must(exec(process.execPath, ['scripts/build-agent-executables.mjs'], { cwd: REPOSITORY, timeoutMs: 600_000 }), 'build-agent-executables');
  await must(exec(process.execPath, ['scripts/package-agent.mjs'], { cwd: REPOSITORY, timeoutMs: 2_400_000 }), 'package-agent');
}, 2_500_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('the agent executables', () => {
  it('answer --version and --help (theirs and each command\'s) like the agent, with no Node.js beside them', async () => {
    const lonely = path.join(work, 'lonely');
    fs.mkdirSync(lonely);
    fs.copyFileSync(X64, path.join(lonely, 'fleetpatch-agent'));
    const env = { PATH: lonely }; // no node to be found
    expect((await must(exec(path.join(lonely, 'fleetpatch-agent'), ['--version'], { env, cwd: lonely }), '--version')).stdout).toBe(`${pkg.version}\n`);
    const help = await must(exec(path.join(lonely, 'fleetpatch-agent'), ['--help'], { env, cwd: lonely }), '--help');
    expect(help.stdout).toMatch(/^Usage: fleetpatch-agent /);
    expect(help.stdout).toMatch(/^ {2}run \[options\] /m);
    expect(help.stdout).toMatch(/^ {2}assess \[options\] /m);
    const run = await must(exec(path.join(lonely, 'fleetpatch-agent'), ['run', '--help'], { env, cwd: lonely }), 'run --help');
    expect(run.stdout).toContain('--server <url>');
    expect(run.stdout).toContain('--enroll-key-file <file>');
    const assess = await must(exec(path.join(lonely, 'fleetpatch-agent'), ['assess', '--help'], { env, cwd: lonely }), 'assess --help');
    expect(assess.stdout).toContain('--root <dir>');
    expect(assess.stdout).toContain('--json');
  });

  it('refuse at once a run whose --server is empty, as the unit passes it while agent.env names no server', async () => {
    const state = fs.mkdtempSync(path.join(work, 'state-'));
    // With a key, so that the server is what is missing: before, the agent retried "ERR_INVALID_URL" for good.
    const refused = await exec(X64, ['run', '--server', '', '--state-dir', state], { env: { PATH: '/usr/bin:/bin', FLEETPATCH_ENROLL_KEY: 'fpe_test' }, timeoutMs: 15_000 });
    expect({ exitCode: refused.exitCode, stderr: refused.stderr }).toEqual({
      exitCode: 1,
      stderr: 'fleetpatch-agent: --server must be the http:// or https:// URL of the fleetpatch server, e.g. https://fleetpatch.example.com; got "".\n',
    });
  });

  it('linux-x64 assesses apt, dnf and zypper machines exactly as the Node.js bundle does', async () => {
    const machines = await Promise.all([
      buildAptMachine(path.join(work, 'apt')),
      buildDnfMachine(path.join(work, 'dnf')),
      buildZypperMachine(path.join(work, 'zypper')),
    ]);
    for (const machine of machines) {
      const args = ['assess', '--root', machine.root, '--json'];
      const fromExecutable = JSON.parse((await must(exec(X64, args, { env: machine.env }), `executable ${args.join(' ')}`)).stdout) as { updates: unknown[]; machine: { packageManager: string } };
      const fromBundle = JSON.parse((await must(exec(process.execPath, [BUNDLE, ...args], { env: machine.env }), `bundle ${args.join(' ')}`)).stdout) as { updates: unknown[] };
      expect(fromExecutable.updates.length, fromExecutable.machine.packageManager).toBeGreaterThan(0);
      expect(fromExecutable.updates).toEqual(fromBundle.updates);
    }
  });

  it('linux-arm64 runs on an arm64 CPU (emulated by qemu-user) and assesses an apt machine', async () => {
    const machine = await buildAptMachine(path.join(work, 'apt-arm64'));
    const version = await must(exec('qemu-aarch64', ['-L', '/usr/aarch64-linux-gnu', ARM64, '--version']), 'qemu-aarch64 --version');
    expect(version.stdout).toBe(`${pkg.version}\n`);
    const assessed = await must(exec('qemu-aarch64', ['-L', '/usr/aarch64-linux-gnu', ARM64, 'assess', '--root', machine.root, '--json'], { env: machine.env, timeoutMs: 120_000 }), 'qemu-aarch64 assess');
    const fromBundle = await must(exec(process.execPath, [BUNDLE, 'assess', '--root', machine.root, '--json'], { env: machine.env }), 'bundle assess');
    expect(assessedVersions(assessed.stdout)).toEqual(assessedVersions(fromBundle.stdout));
  });

  it('windows-x64 is an x64 Windows program that carries the agent and its PowerShell script (not run: no Windows here)', () => {
    const exe = fs.readFileSync(WINDOWS);
    expect(exe.subarray(0, 2).toString('latin1')).toBe('MZ');
    const pe = exe.readUInt32LE(0x3c);
    expect(exe.subarray(pe, pe + 4).toString('latin1')).toBe('PE\0\0');
    expect(exe.readUInt16LE(pe + 4)).toBe(0x8664); // IMAGE_FILE_MACHINE_AMD64
    // The script is a string literal in the program, whose quoting Bun chooses: every line without a
    // character it might escape must be there as it is.
    const lines = fs.readFileSync(path.join(REPOSITORY, 'src/agent/backends/windows.ps1'), 'utf8').split('\n').filter((l) => l.trim().length >= 20 && !/["'`\\$]/.test(l));
    expect(lines.length).toBeGreaterThan(20);
    expect(lines.filter((l) => !exe.includes(Buffer.from(l)))).toEqual([]);
    expect(exe.includes(Buffer.from('fleetpatch agent: the program on each managed machine'))).toBe(true);
  });
});

describe('the .deb in a real Debian 12 root without Node.js', () => {
  let root: string;
  const chroot = (...argv: string[]) => inChroot(root, argv);
  const identityFile = () => path.join(root, 'var/lib/fleetpatch-agent/identity.json');
  const enabledLink = () => path.join(root, 'etc/systemd/system/multi-user.target.wants', UNIT);
  /** The link is absolute inside the root: look at the link itself, not where it points on this host. */
  const enabled = () => fs.lstatSync(enabledLink(), { throwIfNoEntry: false })?.isSymbolicLink() ?? false;
  const dpkgInstall = async (deb: string) => {
    fs.copyFileSync(deb, path.join(root, 'tmp', path.basename(deb)));
    return must(chroot('dpkg', '-i', `/tmp/${path.basename(deb)}`), `dpkg -i ${path.basename(deb)}`);
  };

  beforeAll(async () => {
    root = await restoreDebianRoot(path.join(work, 'debian'), (line) => console.error(line));
  }, 1_200_000);

  it('installs the executable, the unit (enabled, verified by systemd-analyze) and the settings; the installed agent lists what apt-get -s dist-upgrade lists', async () => {
    expect((await chroot('sh', '-c', 'command -v node nodejs')).exitCode).not.toBe(0);
    const installed = await dpkgInstall(DEB);
    expect(installed.stdout).toContain('systemd is not running; the agent starts at the next boot');

    expect(modeOf(path.join(root, 'usr/bin/fleetpatch-agent'))).toBe('755');
    expect(modeOf(path.join(root, 'etc/fleetpatch-agent/agent.env'))).toBe('600');
    expect(modeOf(path.join(root, 'var/lib/fleetpatch-agent'))).toBe('700');
    expect(fs.readlinkSync(enabledLink())).toMatch(/\/lib\/systemd\/system\/fleetpatch-agent\.service$/);
    expect((await chroot('dpkg-query', '-W', '-f=${Conffiles}', 'fleetpatch-agent')).stdout).toContain('/etc/fleetpatch-agent/agent.env');
    const verify = await chroot('systemd-analyze', 'verify', `/usr/lib/systemd/system/${UNIT}`);
    expect({ exitCode: verify.exitCode, output: verify.stderr + verify.stdout }).toEqual({ exitCode: 0, output: '' });

    expect((await must(chroot('fleetpatch-agent', '--version'), '--version')).stdout).toBe(`${pkg.version}\n`);
    const assessed = await must(chroot('fleetpatch-agent', 'assess', '--json'), 'fleetpatch-agent assess --json');
    const facts = JSON.parse(assessed.stdout) as { machine: { osName: string; packageManager: string } };
    expect(facts.machine).toMatchObject({ osName: 'Debian GNU/Linux 12 (bookworm)', packageManager: 'apt' });
    const simulated = parseAptSimulation((await must(chroot('apt-get', '-s', '-q', 'dist-upgrade'), 'apt-get -s dist-upgrade')).stdout);
    expect(simulated.size).toBeGreaterThan(0);
    expect(assessedVersions(assessed.stdout)).toEqual(simulated);
  });

  it('upgrade and reinstall keep the identity, the settings and the choice to run; removal stops and disables but keeps the identity; purge forgets it', async () => {
    if (!fs.existsSync(path.join(root, 'usr/bin/fleetpatch-agent'))) await dpkgInstall(DEB);
    // An enrolled machine whose administrator filled in the settings.
    fs.writeFileSync(identityFile(), IDENTITY, { mode: 0o600 });
    const settings = fs.readFileSync(path.join(root, 'etc/fleetpatch-agent/agent.env'), 'utf8').replace('FLEETPATCH_SERVER=\n', 'FLEETPATCH_SERVER=https://fleetpatch.test\n');
    fs.writeFileSync(path.join(root, 'etc/fleetpatch-agent/agent.env'), settings);
    const expectKept = () => {
      expect(fs.readFileSync(identityFile(), 'utf8')).toBe(IDENTITY);
      expect(modeOf(identityFile())).toBe('600');
      expect(fs.readFileSync(path.join(root, 'etc/fleetpatch-agent/agent.env'), 'utf8')).toBe(settings);
    };

    const next = debPackage({ work: path.join(work, 'deb-build'), out: work, version: NEXT_VERSION, arch: ARCHES[0]!, compression: 'none' });
    await dpkgInstall(next);
    expect((await chroot('dpkg-query', '-W', '-f=${Version} ${db:Status-Abbrev}', 'fleetpatch-agent')).stdout.trim()).toBe(`${NEXT_VERSION} ii`);
    expectKept();
    expect(enabled()).toBe(true);

    await dpkgInstall(next); // reinstall, same version
    expectKept();

    await must(chroot('dpkg', '--remove', 'fleetpatch-agent'), 'dpkg --remove');
    expect(fs.existsSync(path.join(root, 'usr/bin/fleetpatch-agent'))).toBe(false);
    expect(enabled()).toBe(false);
    expectKept();

    await dpkgInstall(DEB); // back (a downgrade from the removed version): enabled again, same machine
    expect(enabled()).toBe(true);
    expectKept();

    await must(chroot('dpkg', '--purge', 'fleetpatch-agent'), 'dpkg --purge');
    expect(fs.existsSync(path.join(root, 'var/lib/fleetpatch-agent'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'etc/fleetpatch-agent'))).toBe(false);
    expect(enabled()).toBe(false);
  });
});

describe('the .rpm in a dnf machine root', () => {
  let machine: DnfMachine;
  /** rpm --root, with the host's /dev inside the root for its scriptlets, in a mount namespace of its own. */
  const rpm = (...args: string[]) =>
    exec('unshare', ['--mount', '--propagation', 'private', '--fork', 'sh', '-c', 'mkdir -p "$0/dev" && mount --rbind /dev "$0/dev" && exec rpm --root "$0" "$@"', machine.root, ...args], { env: machine.env, timeoutMs: 300_000 });
  const inRoot = (file: string) => path.join(machine.root, file);

  beforeAll(async () => {
    machine = await buildDnfMachine(path.join(work, 'rpm-machine'));
    // The fixture's packages are data only; a real RHEL root has a shell and coreutils for the
    // scriptlets, here BusyBox (statically linked) gives them the same commands.
    fs.mkdirSync(inRoot('usr/bin'), { recursive: true });
    fs.copyFileSync('/bin/busybox', inRoot('usr/bin/busybox'));
    for (const applet of ['sh', 'mkdir', 'chmod', 'grep']) fs.symlinkSync('busybox', inRoot(`usr/bin/${applet}`));
    fs.symlinkSync('usr/bin', inRoot('bin'));
  });

  it('declares only the C library it needs, for its architecture', async () => {
    const requires = (await must(exec('rpm', ['-qp', '--requires', RPM]), 'rpm -qpR')).stdout.split('\n');
    expect(requires).toContain('libc.so.6(GLIBC_2.17)(64bit)');
    expect(requires.filter((r) => /^lib/.test(r) && !/^lib(c|dl|m|pthread)\.so/.test(r))).toEqual([]);
    expect(requires.filter((r) => /GLIBC_2\.(1[89]|[2-9]\d)/.test(r))).toEqual([]);
    const arm = path.join(PACKAGES, `fleetpatch-agent-${VERSION}-1.aarch64.rpm`);
    expect((await must(exec('rpm', ['-qp', '--qf', '%{ARCH}', arm]), 'rpm -qp arch')).stdout).toBe('aarch64');
  });

  it('installs its files and runs its scripts; upgrade and reinstall keep the identity and the settings; erasing keeps the identity', async () => {
    // --nodeps: the fixture's rpm database has no glibc package to satisfy libc.so.6 (checked above).
    const installed = await must(rpm('-i', '--nodeps', RPM), 'rpm -i');
    expect(installed.stdout).toContain('fleetpatch-agent: no systemd here; start the agent with: /usr/bin/fleetpatch-agent run');
    expect((await must(rpm('-ql', 'fleetpatch-agent'), 'rpm -ql')).stdout.trim().split('\n').sort()).toEqual([
      '/etc/fleetpatch-agent',
      '/etc/fleetpatch-agent/agent.env',
      '/usr/bin/fleetpatch-agent',
      '/usr/lib/systemd/system/fleetpatch-agent.service',
    ]);
    expect((await must(rpm('-qc', 'fleetpatch-agent'), 'rpm -qc')).stdout.trim()).toBe('/etc/fleetpatch-agent/agent.env');
    expect(modeOf(inRoot('usr/bin/fleetpatch-agent'))).toBe('755');
    expect(modeOf(inRoot('etc/fleetpatch-agent/agent.env'))).toBe('600');
    expect(modeOf(inRoot('var/lib/fleetpatch-agent'))).toBe('700'); // made by %post
    expect(fs.readFileSync(inRoot('usr/lib/systemd/system/fleetpatch-agent.service'), 'utf8')).toBe(fs.readFileSync(path.join(REPOSITORY, 'packaging/linux/fleetpatch-agent.service'), 'utf8'));
    expect((await must(rpm('-V', '--nodeps', 'fleetpatch-agent'), 'rpm -V')).stdout).toBe('');

    fs.writeFileSync(inRoot('var/lib/fleetpatch-agent/identity.json'), IDENTITY, { mode: 0o600 });
    const settings = fs.readFileSync(inRoot('etc/fleetpatch-agent/agent.env'), 'utf8').replace('FLEETPATCH_SERVER=\n', 'FLEETPATCH_SERVER=https://fleetpatch.test\n');
    fs.writeFileSync(inRoot('etc/fleetpatch-agent/agent.env'), settings);
    const expectKept = () => {
      expect(fs.readFileSync(inRoot('var/lib/fleetpatch-agent/identity.json'), 'utf8')).toBe(IDENTITY);
      expect(fs.readFileSync(inRoot('etc/fleetpatch-agent/agent.env'), 'utf8')).toBe(settings);
      expect(fs.existsSync(inRoot('etc/fleetpatch-agent/agent.env.rpmnew'))).toBe(false);
    };

    const buildDir = path.join(work, 'rpm-build');
    fs.mkdirSync(buildDir, { recursive: true });
    const next = rpmPackage({ work: buildDir, out: work, version: NEXT_VERSION, arch: ARCHES[0]!, compression: 'none' });
    await must(rpm('-U', '--nodeps', next), 'rpm -U');
    expect((await must(rpm('-q', 'fleetpatch-agent'), 'rpm -q')).stdout.trim()).toBe(`fleetpatch-agent-${NEXT_VERSION}-1.x86_64`);
    expectKept();

    await must(rpm('-U', '--replacepkgs', '--nodeps', next), 'rpm -U --replacepkgs');
    expectKept();

    await must(rpm('-e', 'fleetpatch-agent'), 'rpm -e');
    expect(fs.existsSync(inRoot('usr/bin/fleetpatch-agent'))).toBe(false);
    expect(fs.readFileSync(inRoot('var/lib/fleetpatch-agent/identity.json'), 'utf8')).toBe(IDENTITY);
  });
});
