import { compareEditions, rpmVersionCompare } from '../../src/agent/backends/rpm.js';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec } from '../../src/agent/exec.js';
import { BackendError, type BackendContext, type PendingUpdate } from '../../src/agent/backends/types.js';
import { zypperBackend } from '../../src/agent/backends/zypper/run.js';
import { FIXTURE_PACKAGES } from '../../testkit/catalog.js';
import { buildZypperMachine, UNREACHABLE_REPOSITORY_URL, ZYPPER_REPOSITORIES, type ZypperMachine } from '../../testkit/zypper.js';

// The real zypper and rpm of this host, on SLES fixture roots (testkit/zypper.ts).

let dir: string;
let machine: ZypperMachine;
let copies = 0;

/** What the catalog says every fixture machine must show, as zypper on SLES reports it. */
const expectedUpdates: PendingUpdate[] = FIXTURE_PACKAGES.filter((p) => p.available)
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
    repository: ZYPPER_REPOSITORIES.updates,
    ...(p.advisoryId ? { advisoryIssuedAt: p.advisoryIssued } : {}),
  }))
  .sort((a, b) => a.name.localeCompare(b.name));

/** A machine of its own: a copy of the built root (repositories stay shared, read-only). */
async function freshMachine(): Promise<BackendContext> {
  const name = `machine-${++copies}`;
  const root = path.join(dir, name);
  const result = await exec('cp', ['-a', machine.root, root]);
  if (result.exitCode !== 0) throw new Error(result.stderr);
  const workDir = path.join(dir, `${name}-work`);
  await fs.mkdir(workDir);
  return { root, env: machine.env, workDir };
}

async function rpmQuery(ctx: BackendContext, name: string): Promise<string> {
  const result = await exec('rpm', ['--root', ctx.root, '-q', name], { env: ctx.env });
  return result.stdout.trim();
}

const update = (updates: readonly PendingUpdate[], name: string) => {
  const found = updates.find((u) => u.name === name);
  if (!found) throw new Error(`${name} is not pending`);
  return found;
};

async function expectBackendError(promise: Promise<unknown>, code: BackendError['code']): Promise<BackendError> {
  const error = await promise.then(
    () => {
      throw new Error(`expected BackendError ${code}, got success`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BackendError);
  expect((error as BackendError).code).toBe(code);
  return error as BackendError;
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetpatch-zypper-'));
  machine = await buildZypperMachine(path.join(dir, 'fixture'));
});

afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('zypper backend on a SLES machine', () => {
  it('lists exactly the pending updates of the catalog, with their patches', async () => {
    const ctx = await freshMachine();
    const assessment = await zypperBackend.assess(ctx);

    expect(assessment.updates).toEqual(expectedUpdates);
    expect(assessment.repositoryProblems).toEqual([]);
    expect(assessment.rebootPending).toBe(false);

    const libssl = update(assessment.updates, 'demo-libssl');
    expect(libssl).toMatchObject({ classification: 'CRITICAL', severity: 'CRITICAL', advisoryIds: ['DEMO-2025:0001'], cveIds: ['CVE-2025-0001', 'CVE-2025-0011'], advisoryIssuedAt: '2025-01-15T00:00:00.000Z' });
    expect(update(assessment.updates, 'linux-image-demo').rebootSuggested).toBe(true);
    expect(update(assessment.updates, 'demo-newdep')).toMatchObject({ installedVersion: null, availableVersion: '1.0-1', repository: ZYPPER_REPOSITORIES.updates });
    expect(assessment.updates.some((u) => u.name === 'demo-stable')).toBe(false);
  });

  it('installs one update and reads the new version back from rpm', async () => {
    const ctx = await freshMachine();
    const before = await zypperBackend.databaseFingerprint(ctx);
    const lines: string[] = [];
    const outcome = await zypperBackend.installUpdate(ctx, update(expectedUpdates, 'demo-tool'), (line) => lines.push(line));

    expect(outcome).toEqual({ status: 'SUCCEEDED', exitCode: 0, errorText: null, installedVersion: '1.1-1', rebootRequired: false });
    expect(await rpmQuery(ctx, 'demo-tool')).toBe('demo-tool-1.1-1.noarch');
    expect(lines.some((l) => l.includes('Installing: demo-tool-1.1-1.noarch'))).toBe(true);
    // Only that package: the other updates are still pending.
    expect(await rpmQuery(ctx, 'demo-libssl')).toBe('demo-libssl-1.0-1.noarch');
    expect(await zypperBackend.databaseFingerprint(ctx)).not.toBe(before);
    const after = await zypperBackend.assess(ctx);
    expect(after.updates.map((u) => u.name)).toEqual(expectedUpdates.map((u) => u.name).filter((n) => n !== 'demo-tool'));
  });

  it('reports a failing %pre as FAILED with zypper’s error and exit code 8, keeping the old version', async () => {
    const ctx = await freshMachine();
    const outcome = await zypperBackend.installUpdate(ctx, update(expectedUpdates, 'demo-broken'), () => {});

    expect(outcome.status).toBe('FAILED');
    expect(outcome.exitCode).toBe(8);
    expect(outcome.errorText).toMatch(/^Installation of demo-broken-1\.1-1\.noarch failed:/);
    expect(outcome.errorText).toContain('demo-broken 1.1-1: pre-install check failed on purpose');
    expect(outcome.installedVersion).toBe('1.0-1');
    expect(await rpmQuery(ctx, 'demo-broken')).toBe('demo-broken-1.0-1.noarch');
  });

  it('needs a reboot after the kernel update, and says so in the next assessment', async () => {
    const ctx = await freshMachine();
    const outcome = await zypperBackend.installUpdate(ctx, update(expectedUpdates, 'linux-image-demo'), () => {});

    expect(outcome).toMatchObject({ status: 'SUCCEEDED', installedVersion: '5.1-1', rebootRequired: true });
    const assessment = await zypperBackend.assess(ctx);
    expect(assessment.rebootPending).toBe(true);
    expect(assessment.updates.some((u) => u.name === 'linux-image-demo')).toBe(false);
  });

  it('pulls in the new dependency of an update', async () => {
    const ctx = await freshMachine();
    const outcome = await zypperBackend.installUpdate(ctx, update(expectedUpdates, 'demo-app'), () => {});

    expect(outcome).toMatchObject({ status: 'SUCCEEDED', installedVersion: '2.0-1' });
    expect(await rpmQuery(ctx, 'demo-newdep')).toBe('demo-newdep-1.0-1.noarch');
  });

  it('reports a dependency that cannot be installed as FAILED with zypper’s problem text', async () => {
    const ctx = await freshMachine();
    // An administrator's package lock keeps the new dependency of demo-app 2.0-1 out.
    const lock = await exec('zypper', ['--root', ctx.root, '--non-interactive', 'addlock', 'demo-newdep'], { env: ctx.env });
    expect(lock.exitCode).toBe(0);
    const outcome = await zypperBackend.installUpdate(ctx, update(expectedUpdates, 'demo-app'), () => {});

    expect(outcome).toMatchObject({ status: 'FAILED', exitCode: 4, installedVersion: '1.0-1' });
    expect(outcome.errorText).toMatch(/^Problem: demo-app-2\.0-1\.noarch requires demo-newdep, but this requirement cannot be provided/);
    expect(outcome.errorText).not.toContain('Choose from above solutions');
  });

  it('reports a failing %post as FAILED although zypper exits 0, with the new version installed', async () => {
    // Not a catalog package: one more package whose %post fails, in a repository of its own.
    const ctx = await freshMachine();
    const work = path.join(dir, 'postfail');
    await fs.mkdir(path.join(work, 'repo'), { recursive: true });
    const spec = path.join(work, 'demo-postfail.spec');
    await fs.writeFile(
      spec,
      ['Name: demo-postfail', 'Version: 1.0', 'Release: 1', 'Summary: post fails', 'License: Apache-2.0', 'BuildArch: noarch', '%description', 'x', '%post -p <lua>', 'error("post-install step failed on purpose")', '%files', ''].join('\n'),
    );
    const run = async (command: string, args: string[]) => {
      const result = await exec(command, args, { env: ctx.env });
      if (result.exitCode !== 0) throw new Error(`${command}: ${result.stdout}${result.stderr}`);
    };
    await run('rpmbuild', ['-bb', '--quiet', '--define', `_topdir ${path.join(work, 'build')}`, spec]);
    await fs.copyFile(path.join(work, 'build', 'RPMS', 'noarch', 'demo-postfail-1.0-1.noarch.rpm'), path.join(work, 'repo', 'demo-postfail-1.0-1.noarch.rpm'));
    await run('createrepo_c', ['--quiet', path.join(work, 'repo')]);
    await run('zypper', ['--root', ctx.root, '--non-interactive', 'addrepo', '--no-gpgcheck', `file://${path.join(work, 'repo')}`, 'postfail']);

    const pending: PendingUpdate = { ...update(expectedUpdates, 'demo-newdep'), name: 'demo-postfail', repository: 'postfail' };
    const outcome = await zypperBackend.installUpdate(ctx, pending, () => {});

    expect(outcome.status).toBe('FAILED');
    expect(outcome.exitCode).toBe(0);
    expect(outcome.errorText).toContain('post-install step failed on purpose');
    expect(outcome.installedVersion).toBe('1.0-1');
  });

  it('answers LOCKED while another process holds the zypp lock', async () => {
    const ctx = await freshMachine();
    const holder: ChildProcess = spawn('sleep', ['120'], { stdio: 'ignore' });
    try {
      await fs.writeFile(path.join(ctx.root, 'run', 'zypp.pid'), `${holder.pid}\n`);
      const error = await expectBackendError(zypperBackend.assess(ctx), 'LOCKED');
      expect(error.message).toContain(`pid ${holder.pid}`);
      await expectBackendError(
        zypperBackend.installUpdate(ctx, update(expectedUpdates, 'demo-tool'), () => {}),
        'LOCKED',
      );
    } finally {
      holder.kill();
    }
    expect(await rpmQuery(ctx, 'demo-tool')).toBe('demo-tool-1.0-1.noarch');
  });

  it('keeps the database fingerprint while only reading', async () => {
    const ctx = await freshMachine();
    const before = await zypperBackend.databaseFingerprint(ctx);
    await zypperBackend.assess(ctx);
    await exec('rpm', ['--root', ctx.root, '-qa'], { env: ctx.env });
    expect(await zypperBackend.databaseFingerprint(ctx)).toBe(before);
  });

  it('keeps libzypp’s log in the work folder when the environment names none', async () => {
    const ctx = await freshMachine();
    const { ZYPP_LOGFILE: _log, TMPDIR: _tmp, ...env } = machine.env;
    await zypperBackend.assess({ ...ctx, env });
    expect((await fs.stat(path.join(ctx.workDir, 'zypper.log'))).size).toBeGreaterThan(0);
  });

  it('answers NOT_INSTALLED without zypper', async () => {
    const ctx = await freshMachine();
    await expectBackendError(zypperBackend.assess({ ...ctx, env: { ...ctx.env, PATH: path.join(dir, 'no-such-bin') } }), 'NOT_INSTALLED');
  });
});

describe('zypper backend with an unreachable repository', () => {
  it('reports the repository and still lists the updates of the others', async () => {
    const unreachable = await buildZypperMachine(path.join(dir, 'fixture-unreachable'), { unreachableRepository: true });
    const workDir = path.join(dir, 'unreachable-work');
    await fs.mkdir(workDir);
    const ctx = { root: unreachable.root, env: unreachable.env, workDir };

    const assessment = await zypperBackend.assess(ctx);

    expect(assessment.repositoryProblems).toHaveLength(1);
    const [problem] = assessment.repositoryProblems;
    expect(problem!.repository).toBe(ZYPPER_REPOSITORIES.unreachable);
    expect(problem!.message).toContain(UNREACHABLE_REPOSITORY_URL);
    expect(problem!.message).toMatch(/Failed to connect to 127\.0\.0\.1 port 9/);
    expect(assessment.updates).toEqual(expectedUpdates);

    // The skipped repository does not fail an install from the others (zypper exits 106).
    const outcome = await zypperBackend.installUpdate(ctx, update(expectedUpdates, 'demo-tool'), () => {});
    expect(outcome).toMatchObject({ status: 'SUCCEEDED', exitCode: 106, installedVersion: '1.1-1' });
  });
});

describe('rpm version order (the real rpm)', () => {
  it('orders versions as rpm does', async () => {
    const pairs: Array<[string, string]> = [
      ['1.0', '1.0'],
      ['1.0', '1.1'],
      ['1.10', '1.9'],
      ['1.0a', '1.0'],
      ['1.0~rc1', '1.0'],
      ['1.0^git1', '1.0'],
      ['1.0^git1', '1.0.1'],
      ['2.0', '2.0.0'],
      ['5.14.21', '5.3.18'],
      ['1.0.a', '1.0.1'],
      ['001', '1'],
      ['a', 'b'],
      ['1_2', '1.2'],
    ];
    // rpm's own comparison, through its Lua interpreter.
    const calls = pairs.map(([a, b]) => `rpm.vercmp("${a}", "${b}")`).join(', ');
    const result = await exec('rpm', ['--eval', `%{lua: print(table.concat({${calls}}, ","))}`], { env: machine.env });
    const fromRpm = result.stdout.trim().split(',').map(Number);
    expect(pairs.map(([a, b]) => Math.sign(rpmVersionCompare(a, b)))).toEqual(fromRpm);
    expect(compareEditions('1:1.0-1', '2.0-1')).toBe(1);
    expect(compareEditions('1.0-2', '1.0-10')).toBe(-1);
    expect(compareEditions('1.1-1', '1.1')).toBe(0);
  });
});
