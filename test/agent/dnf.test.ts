import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interpreterFromShebang } from '../../src/agent/backends/dnf/parse.js';
import { dnfBackend } from '../../src/agent/backends/dnf/run.js';
import { yumBackend } from '../../src/agent/backends/yum/run.js';
import { BackendError, type BackendContext, type PendingUpdate } from '../../src/agent/backends/types.js';
import { exec } from '../../src/agent/exec.js';
import { FIXTURE_PACKAGES, type FixturePackage } from '../../testkit/catalog.js';
import { buildDnfMachine, buildRpms, DNF_REPOSITORIES, type DnfMachine } from '../../testkit/dnf.js';

/*
 * The dnf backend against the real dnf 4 and rpm, on Rocky-9-like fixture roots built from the
 * catalog (testkit/dnf.ts). One machine is built per file; a test that changes a machine
 * works on its own copy (cp -a) of the root.
 */

let tmp: string;
let machine: DnfMachine;
let unreachableMachine: DnfMachine;
let copies = 0;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetpatch-dnf-'));
  [machine, unreachableMachine] = await Promise.all([
    buildDnfMachine(path.join(tmp, 'machine')),
    buildDnfMachine(path.join(tmp, 'unreachable'), { unreachableRepository: true }),
  ]);
});

afterAll(async () => {
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

/** A machine of its own for a test that changes it: a copy of the built root, same repositories. */
async function freshMachine(from: DnfMachine = machine): Promise<BackendContext> {
  const dir = path.join(tmp, `copy-${++copies}`);
  await fs.mkdir(dir, { recursive: true });
  const result = await exec('cp', ['-a', from.root, path.join(dir, 'root')]);
  if (result.exitCode !== 0) throw new Error(result.stderr);
  const workDir = path.join(dir, 'work');
  await fs.mkdir(workDir);
  return { root: path.join(dir, 'root'), env: from.env, workDir };
}

/** What rpm itself says is installed (not the backend's read-back). */
async function rpmVersion(ctx: BackendContext, name: string): Promise<string | null> {
  const result = await exec('rpm', ['--root', ctx.root, '-q', '--qf', '%{VERSION}-%{RELEASE}\\n', name], { env: ctx.env });
  return result.exitCode === 0 ? result.stdout.trim() : null;
}

function catalogPackage(name: string): FixturePackage {
  return FIXTURE_PACKAGES.find((p) => p.name === name)!;
}

/** The catalog's pending updates as the dnf backend must report them. */
function expectedUpdates(): PendingUpdate[] {
  return FIXTURE_PACKAGES.filter((p) => p.available !== null)
    .map((p) => ({
      name: p.name,
      installedVersion: p.installed,
      availableVersion: p.available!,
      arch: 'noarch',
      classification: p.classification,
      severity: p.severity,
      advisoryIds: p.advisoryId ? [p.advisoryId] : [],
      cveIds: [...p.cveIds].sort(),
      rebootSuggested: p.rebootSuggested,
      repository: DNF_REPOSITORIES.updates,
      ...(p.advisoryId ? { advisoryIssuedAt: p.advisoryIssued } : {}),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function byName(updates: readonly PendingUpdate[]): PendingUpdate[] {
  return [...updates].sort((a, b) => a.name.localeCompare(b.name));
}

async function pendingUpdate(ctx: BackendContext, name: string): Promise<PendingUpdate> {
  const found = (await dnfBackend.assess(ctx)).updates.find((u) => u.name === name);
  if (!found) throw new Error(`${name} is not pending`);
  return found;
}

async function caught(promise: Promise<unknown>): Promise<BackendError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof BackendError) return error;
    throw error;
  }
  throw new Error('expected a BackendError');
}

/** The Python dnf itself runs on (on this Debian host the python3 in PATH may be another one). */
async function dnfPython(): Promise<string> {
  const script = await fs.readFile(await fs.realpath('/usr/bin/dnf'), 'utf8');
  return interpreterFromShebang(script.split('\n')[0]!)![0]!;
}

/** Starts a real process that takes a lock and keeps it until killed; resolves once it holds it. */
async function holdLock(code: string, ...args: string[]): Promise<ChildProcess> {
  const child = spawn(await dnfPython(), ['-c', code, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('locked')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`lock holder exited with ${code}: ${stderr}`)));
  });
  return child;
}

/** Ends the lock holder and waits until it is gone (dnf frees a lock whose pid is dead). */
async function release(holder: ChildProcess): Promise<void> {
  if (holder.exitCode !== null || holder.signalCode !== null) return;
  const exited = new Promise((resolve) => holder.once('exit', resolve));
  holder.kill();
  await exited;
}

/** dnf's own lock (dnf/lock.py): a pid file naming a live process. exit_on_lock makes dnf give up on it. */
const HOLD_DNF_LOCK = `
import sys, time, dnf.lock
build = {'metadata': dnf.lock.build_metadata_lock, 'rpmdb': dnf.lock.build_rpmdb_lock}[sys.argv[1]]
with build(sys.argv[2], True):
    print('locked', flush=True)
    time.sleep(600)
`;

/** rpm's transaction lock: an fcntl lock on <dbpath>/.rpm.lock, as a running rpm -i holds it. */
const HOLD_RPM_LOCK = `
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX)
print('locked', flush=True)
time.sleep(600)
`;

describe('dnf backend: assessment on a real dnf', () => {
  it('lists exactly the catalog pending updates with versions, classification, advisories, CVEs and reboot hints', async () => {
    const ctx = await freshMachine();
    const assessment = await dnfBackend.assess(ctx);

    expect(byName(assessment.updates)).toEqual(expectedUpdates());
    expect(assessment.repositoryProblems).toEqual([]);

    const libssl = assessment.updates.find((u) => u.name === 'demo-libssl')!;
    expect(libssl).toMatchObject({ classification: 'CRITICAL', severity: 'CRITICAL', advisoryIds: ['DEMO-2025:0001'] });
    expect(libssl.cveIds).toEqual(['CVE-2025-0001', 'CVE-2025-0011']);
    // updateinfo's <issued date>, not its later <updated date>.
    expect(libssl.advisoryIssuedAt).toBe('2025-01-15T00:00:00.000Z');
    expect(assessment.updates.find((u) => u.name === 'linux-image-demo')).toMatchObject({ rebootSuggested: true, severity: 'MODERATE' });
    // Pulled in by demo-app 2.0's Requires: not installed yet.
    expect(assessment.updates.find((u) => u.name === 'demo-newdep')).toMatchObject({ installedVersion: null, availableVersion: '1.0-1' });
    expect(assessment.updates.map((u) => u.name)).not.toContain('demo-stable');
  });

  it('reports no pending reboot on a machine whose packages were installed before boot', async () => {
    const ctx = await freshMachine();
    expect((await dnfBackend.assess(ctx)).rebootPending).toBe(false);
  });

  it('reports an unreachable repository with dnf reason and still lists the other repositories updates', async () => {
    const ctx = await freshMachine(unreachableMachine);
    const started = Date.now();
    const assessment = await dnfBackend.assess(ctx);

    expect(Date.now() - started).toBeLessThan(20_000);
    expect(assessment.repositoryProblems).toHaveLength(1);
    expect(assessment.repositoryProblems[0]!.repository).toBe(DNF_REPOSITORIES.unreachable);
    expect(assessment.repositoryProblems[0]!.message).toMatch(/Failed to download metadata for repo 'fixture-unreachable'/);
    expect(assessment.repositoryProblems[0]!.message).toMatch(/127\.0\.0\.1/);
    expect(byName(assessment.updates)).toEqual(expectedUpdates());
  });

  it('fails fast with LOCKED while another process holds dnf metadata lock', async () => {
    const ctx = await freshMachine();
    const holder = await holdLock(HOLD_DNF_LOCK, 'metadata', path.join(ctx.root, 'var/cache/dnf'));
    try {
      const started = Date.now();
      const error = await caught(dnfBackend.assess(ctx));
      expect(error.code).toBe('LOCKED');
      expect(error.message).toMatch(new RegExp(`locked by ${holder.pid}`));
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await release(holder);
    }
    // Once the holder is gone the machine assesses again.
    expect((await dnfBackend.assess(ctx)).updates.length).toBeGreaterThan(0);
  });

  it('reports COMMAND_FAILED with dnf reason when the machine dnf.conf cannot be read', async () => {
    const ctx = await freshMachine();
    await fs.writeFile(path.join(ctx.root, 'etc/dnf/dnf.conf'), '[main\ngpgcheck=0\n');
    const error = await caught(dnfBackend.assess(ctx));
    expect(error.code).toBe('COMMAND_FAILED');
    expect(error.message).toMatch(/ConfigError: Parsing file ".*etc\/dnf\/dnf\.conf" failed/);
  });

  it('reports NOT_INSTALLED on a machine without dnf', async () => {
    const ctx = await freshMachine();
    const emptyBin = path.join(ctx.workDir, 'bin');
    await fs.mkdir(emptyBin);
    const error = await caught(dnfBackend.assess({ ...ctx, env: { ...ctx.env, PATH: emptyBin } }));
    expect(error.code).toBe('NOT_INSTALLED');
  });
});

describe('dnf backend: installing one update with the real dnf', () => {
  it('installs demo-tool 1.1-1, streams dnf output, and the next assessment no longer lists it', async () => {
    const ctx = await freshMachine();
    const update = await pendingUpdate(ctx, 'demo-tool');
    const before = await dnfBackend.databaseFingerprint(ctx);
    const lines: string[] = [];

    const outcome = await dnfBackend.installUpdate(ctx, update, (line) => lines.push(line));

    expect(outcome).toEqual({ status: 'SUCCEEDED', exitCode: 0, errorText: null, installedVersion: '1.1-1', rebootRequired: false });
    expect(await rpmVersion(ctx, 'demo-tool')).toBe('1.1-1');
    expect(lines.some((l) => l.includes('demo-tool-1.1-1.noarch'))).toBe(true);
    expect(lines).toContain('Complete!');
    expect(await dnfBackend.databaseFingerprint(ctx)).not.toBe(before);
    const after = await dnfBackend.assess(ctx);
    expect(after.updates.map((u) => u.name)).not.toContain('demo-tool');
    expect(after.updates.map((u) => u.name)).toContain('demo-libssl');
  });

  it('reports demo-broken as FAILED with dnf error lines and exit code, and rpm keeps the old version', async () => {
    const ctx = await freshMachine();
    const update = await pendingUpdate(ctx, 'demo-broken');
    const lines: string[] = [];

    const outcome = await dnfBackend.installUpdate(ctx, update, (line) => lines.push(line));

    expect(outcome.status).toBe('FAILED');
    expect(outcome.exitCode).toBe(1);
    expect(outcome.installedVersion).toBe(catalogPackage('demo-broken').installed);
    expect(await rpmVersion(ctx, 'demo-broken')).toBe('1.0-1');
    const errorLines = outcome.errorText!.split('\n');
    expect(errorLines).toContain('Error: Transaction failed');
    expect(errorLines).toContain('Error in PREIN scriptlet in rpm package demo-broken');
    expect(outcome.errorText).toMatch(/refusing to install/);
    // dnf's error lines, not its whole output.
    expect(outcome.errorText).not.toMatch(/Transaction Summary|Verifying|Dependencies resolved/);
    expect(lines.length).toBeGreaterThan(errorLines.length);
    expect((await dnfBackend.assess(ctx)).updates.map((u) => u.name)).toContain('demo-broken');
  });

  it('needs a reboot after linux-image-demo, whose advisory suggests one', async () => {
    const ctx = await freshMachine();
    const update = await pendingUpdate(ctx, 'linux-image-demo');

    const outcome = await dnfBackend.installUpdate(ctx, update, () => {});

    expect(outcome).toMatchObject({ status: 'SUCCEEDED', installedVersion: '5.1-1', rebootRequired: true });
    expect((await dnfBackend.assess(ctx)).rebootPending).toBe(true);
  });

  it('installs demo-app 2.0-1 with the new package it requires, and the new package on its own', async () => {
    const ctx = await freshMachine();
    const app = await pendingUpdate(ctx, 'demo-app');
    expect(await dnfBackend.installUpdate(ctx, app, () => {})).toMatchObject({ status: 'SUCCEEDED', installedVersion: '2.0-1' });
    expect(await rpmVersion(ctx, 'demo-newdep')).toBe('1.0-1');

    const other = await freshMachine();
    const newdep = await pendingUpdate(other, 'demo-newdep');
    expect(await dnfBackend.installUpdate(other, newdep, () => {})).toMatchObject({ status: 'SUCCEEDED', installedVersion: '1.0-1' });
    expect(await rpmVersion(other, 'demo-app')).toBe('1.0-1');
  });

  it('reports a failing %post as FAILED with exit code 0: the package is installed but its scriptlet did not run through', async () => {
    const ctx = await freshMachine();
    // A package outside the catalog: its %post fails (dnf exits 0, the error is only on stderr).
    const extra = path.join(ctx.workDir, 'postfail');
    const [rpm] = await buildRpms(extra, ctx.env, [{ name: 'demo-postfail', evr: '1.1-1', postLua: 'error("demo-postfail: %post failed on purpose")' }]);
    const repo = path.join(extra, 'repo');
    await fs.mkdir(repo);
    await fs.copyFile(rpm!, path.join(repo, path.basename(rpm!)));
    expect((await exec('createrepo_c', ['-q', '--no-database', repo])).exitCode).toBe(0);
    await fs.writeFile(path.join(ctx.root, 'etc/yum.repos.d/postfail.repo'), `[postfail]\nname=postfail\nbaseurl=file://${repo}\ngpgcheck=0\n`);
    const update: PendingUpdate = {
      name: 'demo-postfail',
      installedVersion: null,
      availableVersion: '1.1-1',
      arch: 'noarch',
      classification: 'OTHER',
      severity: null,
      advisoryIds: [],
      cveIds: [],
      rebootSuggested: false,
      repository: 'postfail',
    };

    const outcome = await dnfBackend.installUpdate(ctx, update, () => {});

    expect(outcome).toMatchObject({ status: 'FAILED', exitCode: 0, installedVersion: '1.1-1' });
    expect(outcome.errorText).toMatch(/Error in POSTIN scriptlet in rpm package demo-postfail/);
    expect(outcome.errorText).toMatch(/%post failed on purpose/);
    expect(await rpmVersion(ctx, 'demo-postfail')).toBe('1.1-1');
  });

  it('throws LOCKED while another process holds dnf rpmdb lock, and installs nothing', async () => {
    const ctx = await freshMachine();
    const update = await pendingUpdate(ctx, 'demo-tool');
    const holder = await holdLock(HOLD_DNF_LOCK, 'rpmdb', path.join(ctx.root, 'var/lib/dnf'));
    try {
      const started = Date.now();
      const error = await caught(dnfBackend.installUpdate(ctx, update, () => {}));
      expect(error.code).toBe('LOCKED');
      expect(error.details.exitCode).toBe(200);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await release(holder);
    }
    expect(await rpmVersion(ctx, 'demo-tool')).toBe('1.0-1');
  });

  it('throws LOCKED while another rpm process holds the rpm transaction lock', async () => {
    const ctx = await freshMachine();
    const update = await pendingUpdate(ctx, 'demo-tool');
    const holder = await holdLock(HOLD_RPM_LOCK, path.join(ctx.root, 'var/lib/rpm/.rpm.lock'));
    try {
      const error = await caught(dnfBackend.installUpdate(ctx, update, () => {}));
      expect(error.code).toBe('LOCKED');
      expect(error.details.output).toMatch(/can't create transaction lock/);
    } finally {
      await release(holder);
    }
    expect(await rpmVersion(ctx, 'demo-tool')).toBe('1.0-1');
  });
});

describe('yum backend through dnf yum-compatible command line (what yum is on EL8+; EL7 yum 3 is not available here)', () => {
  it('lists the updates with advisories and CVEs read from yum check-update and updateinfo list text', async () => {
    const ctx = await freshMachine(unreachableMachine);
    const bin = path.join(ctx.workDir, 'bin');
    await fs.mkdir(bin);
    await fs.symlink(await fs.realpath('/usr/bin/dnf'), path.join(bin, 'yum'));
    const env = { ...ctx.env, PATH: `${bin}:${ctx.env.PATH ?? ''}` };

    const assessment = await yumBackend.assess({ ...ctx, env });

    // Text output carries neither new dependencies, reboot_suggested nor issue dates: the core-package rule only.
    const expected = expectedUpdates()
      .filter((u) => u.installedVersion !== null)
      .map(({ advisoryIssuedAt: _, ...u }) => ({ ...u, rebootSuggested: false }));
    expect(byName(assessment.updates)).toEqual(expected);
    expect(assessment.repositoryProblems.map((p) => p.repository)).toEqual([DNF_REPOSITORIES.unreachable]);
    expect(assessment.rebootPending).toBe(false);

    const tool = assessment.updates.find((u) => u.name === 'demo-tool')!;
    expect(await yumBackend.installUpdate({ ...ctx, env }, tool, () => {})).toMatchObject({ status: 'SUCCEEDED', installedVersion: '1.1-1' });
    expect(await rpmVersion(ctx, 'demo-tool')).toBe('1.1-1');
  });
});
