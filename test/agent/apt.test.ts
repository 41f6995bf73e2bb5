import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aptBackend } from '../../src/agent/backends/apt/run.js';
import { BackendError, type BackendContext, type PendingUpdate } from '../../src/agent/backends/types.js';
import { exec } from '../../src/agent/exec.js';
import { buildAptMachine, debArchitecture } from '../../testkit/apt.js';
import { aptClassification, FIXTURE_PACKAGES } from '../../testkit/catalog.js';
import { holdLock } from '../support/locks.js';

// Real apt-get and dpkg on fixture roots built from the catalog (testkit/apt.ts).

interface Machine {
  root: string;
  ctx: BackendContext;
}

let base: string;
const machines = new Map<string, Machine>();
const machine = (name: string): Machine => machines.get(name)!;

async function build(name: string, options?: { unreachableRepository?: boolean }): Promise<void> {
  const dir = path.join(base, name);
  const { root, env } = await buildAptMachine(dir, options);
  machines.set(name, { root, ctx: { root, env, workDir: path.join(dir, 'agent') } });
}

beforeAll(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetpatch-apt-'));
  await Promise.all([
    build('fresh'),
    build('unreachable', { unreachableRepository: true }),
    build('installs'),
    build('kernel'),
    build('broken'),
    build('run-link'),
  ]);
});

afterAll(async () => {
  if (base) await fs.rm(base, { recursive: true, force: true });
});

/** What dpkg itself says: `<version> <status abbrev>`, e.g. `1.1-1 ii`. */
async function dpkgSays(root: string, name: string): Promise<string> {
  const r = await exec('dpkg-query', [`--admindir=${root}/var/lib/dpkg`, '-W', '-f=${Version} ${db:Status-Abbrev}', name]);
  return r.stdout.trim();
}

async function assessed(m: Machine, name: string): Promise<PendingUpdate> {
  const update = (await aptBackend.assess(m.ctx)).updates.find((u) => u.name === name);
  if (!update) throw new Error(`${name} is not pending`);
  return update;
}

async function expectedUpdates(): Promise<PendingUpdate[]> {
  const pending = FIXTURE_PACKAGES.filter((p) => p.available !== null);
  return Promise.all(
    pending.map(async (p) => ({
      name: p.name,
      installedVersion: p.installed,
      availableVersion: p.available!,
      arch: await debArchitecture(p),
      classification: aptClassification(p),
      severity: null,
      advisoryIds: [],
      cveIds: [],
      rebootSuggested: p.rebootSuggested,
      repository: aptClassification(p) === 'SECURITY' ? 'Debian-Security:12/stable-security' : 'Debian:12-updates/stable-updates',
      // From the Packages `Source:` field, only where the source's name differs (linux-image-demo from linux).
      ...(p.sourcePackage ? { sourcePackage: p.sourcePackage } : {}),
    })),
  );
}

const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);

describe('apt backend: assessment (real apt-get on a Debian 12 root)', () => {
  it('lists exactly the catalog pending updates with versions, arch, classification and origin', async () => {
    const result = await aptBackend.assess(machine('fresh').ctx);

    expect([...result.updates].sort(byName)).toEqual((await expectedUpdates()).sort(byName));
    expect(result.repositoryProblems).toEqual([]);
    expect(result.rebootPending).toBe(false);
  });

  it("reports the source package of a binary whose name differs from its source's (the Debian tracker names sources)", async () => {
    const { updates } = await aptBackend.assess(machine('fresh').ctx);
    expect(updates.filter((u) => u.sourcePackage !== undefined).map((u) => [u.name, u.sourcePackage])).toEqual([['linux-image-demo', 'linux']]);
  });

  it('reports the new dependency as new, leaves up-to-date packages out, never says CRITICAL', async () => {
    const { updates } = await aptBackend.assess(machine('fresh').ctx);

    expect(updates.find((u) => u.name === 'demo-newdep')).toMatchObject({ installedVersion: null, availableVersion: '1.0-1' });
    expect(updates.map((u) => u.name)).not.toContain('demo-stable');
    expect(updates.filter((u) => u.classification === 'CRITICAL')).toEqual([]);
    expect(updates.filter((u) => u.rebootSuggested).map((u) => u.name)).toEqual(['linux-image-demo']);
  });

  it('reports an unreachable repository with apt reason, and still lists the updates of the others', async () => {
    const result = await aptBackend.assess(machine('unreachable').ctx);

    expect(result.repositoryProblems).toEqual([
      { repository: 'http://127.0.0.1:9/debian bookworm', message: expect.stringMatching(/Could not connect to 127\.0\.0\.1:9/) as string },
    ]);
    expect(result.updates.map((u) => u.name).sort()).toEqual((await expectedUpdates()).map((u) => u.name).sort());
  });

  it('keeps going when apt-get update fails (exit 100) on one repository, and names it', async () => {
    const m = machine('unreachable');
    // Not in the fixture: a source whose folder is gone (no Trusted: yes, so apt wants a Release file).
    const source = path.join(m.root, 'etc/apt/sources.list.d/gone.sources');
    await fs.writeFile(source, 'Types: deb\nURIs: file:///nonexistent/fleetpatch-repo\nSuites: bookworm\nComponents: main\n');
    try {
      const result = await aptBackend.assess(m.ctx);

      expect([...result.repositoryProblems].sort((a, b) => a.repository.localeCompare(b.repository))).toEqual([
        {
          repository: 'file:/nonexistent/fleetpatch-repo bookworm',
          message: expect.stringMatching(/File not found.*\/nonexistent\/fleetpatch-repo\/dists\/bookworm\/Release.*does not have a Release file/) as string,
        },
        { repository: 'http://127.0.0.1:9/debian bookworm', message: expect.stringMatching(/Could not connect/) as string },
      ]);
      expect(result.updates.map((u) => u.name).sort()).toEqual((await expectedUpdates()).map((u) => u.name).sort());
    } finally {
      await fs.rm(source);
    }
  });

  it('throws LOCKED when another process holds the apt lists lock', async () => {
    const m = machine('fresh');
    const release = await holdLock(path.join(m.root, 'var/lib/apt/lists/lock'));
    try {
      const started = Date.now();
      const error = await aptBackend.assess(m.ctx).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect(error).toMatchObject({ code: 'LOCKED', message: expect.stringContaining('Could not get lock') as string });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await release();
    }
    // Released: the same machine assesses normally.
    expect((await aptBackend.assess(m.ctx)).updates.length).toBeGreaterThan(0);
  });

  it('throws COMMAND_FAILED with apt exit code and error lines when apt cannot read its sources', async () => {
    const m = machine('fresh');
    const source = path.join(m.root, 'etc/apt/sources.list.d/broken.sources');
    await fs.writeFile(source, 'Types: deb\nSuites: bookworm\n');
    try {
      const error = await aptBackend.assess(m.ctx).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect(error).toMatchObject({ code: 'COMMAND_FAILED', details: { exitCode: 100 } });
      expect((error as BackendError).message).toContain(`E: Malformed entry 1 in sources file ${source} (URI)`);
    } finally {
      await fs.rm(source);
    }
  });

  it('throws NOT_INSTALLED when there is no apt-get', async () => {
    const m = machine('fresh');
    const empty = await fs.mkdtemp(path.join(base, 'empty-path-'));
    await expect(aptBackend.assess({ ...m.ctx, env: { ...m.ctx.env, PATH: empty } })).rejects.toMatchObject({ code: 'NOT_INSTALLED' });
  });

  it('reads reboot-required inside the root, even through an absolute var/run link, never on the host', async () => {
    const m = machine('run-link');
    // As in a debootstrap root: var/run is an absolute link. Its target here is a host folder that
    // does have a reboot-required file; the machine's own <root>/<target> does not.
    const hostRun = await fs.mkdtemp(path.join(base, 'host-run-'));
    await fs.writeFile(path.join(hostRun, 'reboot-required'), '*** System restart required ***\n');
    await fs.rm(path.join(m.root, 'var/run'));
    await fs.symlink(hostRun, path.join(m.root, 'var/run'));

    expect((await aptBackend.assess(m.ctx)).rebootPending).toBe(false);

    await fs.mkdir(path.join(m.root, hostRun), { recursive: true });
    await fs.writeFile(path.join(m.root, hostRun, 'reboot-required'), '*** System restart required ***\n');
    expect((await aptBackend.assess(m.ctx)).rebootPending).toBe(true);
  });
});

describe('apt backend: installing one update (real apt-get and dpkg)', () => {
  it('upgrades demo-tool: SUCCEEDED, dpkg shows 1.1-1, output streamed, no longer pending', async () => {
    const m = machine('installs');
    const update = await assessed(m, 'demo-tool');
    const before = await aptBackend.databaseFingerprint(m.ctx);
    const lines: string[] = [];

    const outcome = await aptBackend.installUpdate(m.ctx, update, (line) => lines.push(line));

    expect(outcome).toEqual({ status: 'SUCCEEDED', exitCode: 0, errorText: null, installedVersion: '1.1-1', rebootRequired: false });
    expect(await dpkgSays(m.root, 'demo-tool')).toBe('1.1-1 ii');
    expect(lines).toContain('Unpacking demo-tool (1.1-1) over (1.0-1) ...');
    expect(lines).toContain('Setting up demo-tool (1.1-1) ...');
    expect(await aptBackend.databaseFingerprint(m.ctx)).not.toBe(before);
    expect((await aptBackend.assess(m.ctx)).updates.map((u) => u.name)).not.toContain('demo-tool');
  });

  it('installs a package an update pulls in new, and an update that needs it', async () => {
    const m = machine('installs');
    const newdep = await assessed(m, 'demo-newdep');
    expect(await aptBackend.installUpdate(m.ctx, newdep, () => {})).toMatchObject({ status: 'SUCCEEDED', installedVersion: '1.0-1' });
    expect(await dpkgSays(m.root, 'demo-newdep')).toBe('1.0-1 ii');

    const app = await assessed(m, 'demo-app');
    expect(await aptBackend.installUpdate(m.ctx, app, () => {})).toMatchObject({ status: 'SUCCEEDED', exitCode: 0, installedVersion: '2.0-1' });
    expect(await dpkgSays(m.root, 'demo-app')).toBe('2.0-1 ii');
  });

  it('a fresh machine has no reboot pending; after the kernel update it has, and the outcome says so', async () => {
    const m = machine('kernel');
    expect((await aptBackend.assess(m.ctx)).rebootPending).toBe(false);

    const outcome = await aptBackend.installUpdate(m.ctx, await assessed(m, 'linux-image-demo'), () => {});

    expect(outcome).toMatchObject({ status: 'SUCCEEDED', installedVersion: '5.1-1', rebootRequired: true });
    expect(await fs.readFile(path.join(m.root, 'run/reboot-required.pkgs'), 'utf8')).toBe('linux-image-demo\n');
    const after = await aptBackend.assess(m.ctx);
    expect(after.rebootPending).toBe(true);
    expect(after.updates.map((u) => u.name)).not.toContain('linux-image-demo');
  });

  it('throws LOCKED when another process holds the dpkg frontend lock, and installs nothing', async () => {
    const m = machine('fresh');
    const update = await assessed(m, 'demo-tool');
    const release = await holdLock(path.join(m.root, 'var/lib/dpkg/lock-frontend'));
    try {
      const started = Date.now();
      const error = await aptBackend.installUpdate(m.ctx, update, () => {}).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect(error).toMatchObject({ code: 'LOCKED', message: expect.stringContaining('lock-frontend') as string });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await release();
    }
    expect(await dpkgSays(m.root, 'demo-tool')).toBe('1.0-1 ii');
  });
});

// These run in order on one machine: each starts from what the previous one left.
describe('apt backend: a failing maintainer script and what follows it', () => {
  it('demo-broken: FAILED with exit 100 and dpkg error lines; left half-configured and still pending', async () => {
    const m = machine('broken');
    const lines: string[] = [];

    const outcome = await aptBackend.installUpdate(m.ctx, await assessed(m, 'demo-broken'), (line) => lines.push(line));

    expect(outcome).toMatchObject({ status: 'FAILED', exitCode: 100, installedVersion: '1.1-1', rebootRequired: false });
    expect(outcome.errorText).toBe(
      [
        'dpkg: error processing package demo-broken (--configure):',
        ' installed demo-broken package post-installation script subprocess returned error exit status 1',
        'Errors were encountered while processing:',
        ' demo-broken',
        'E: Sub-process /usr/bin/dpkg returned an error code (1)',
      ].join('\n'),
    );
    // The whole transcript was streamed, the script's own message included; errorText is not all of it.
    expect(lines).toContain('demo-broken: post-installation failed on purpose (fixture)');
    expect(lines).toContain('Setting up demo-broken (1.1-1) ...');
    expect(await dpkgSays(m.root, 'demo-broken')).toBe('1.1-1 iF');
    // apt still has to configure it: it stays pending, at the version it was unpacked at.
    // It says why, so the same installed and available version is not a riddle.
    const pending = await assessed(m, 'demo-broken');
    expect(pending).toMatchObject({ installedVersion: '1.1-1', availableVersion: '1.1-1', classification: 'SECURITY' });
    expect(pending.note).toMatch(/^Half-configured \(dpkg status iF\): demo-broken 1\.1-1 is unpacked but configuring it failed/);
    expect((await aptBackend.assess(m.ctx)).updates.filter((u) => u.note !== undefined).map((u) => u.name)).toEqual(['demo-broken']);
  });

  it('then demo-editor: SUCCEEDED with its own outcome (exit 0, no error), demo-broken left half-configured as it was', async () => {
    const m = machine('broken');
    const lines: string[] = [];

    const outcome = await aptBackend.installUpdate(m.ctx, await assessed(m, 'demo-editor'), (line) => lines.push(line));

    expect(outcome).toEqual({ status: 'SUCCEEDED', exitCode: 0, errorText: null, installedVersion: '1.1-1', rebootRequired: false });
    expect(lines).toContain('Setting up demo-editor (1.1-1) ...');
    expect(lines.join('\n')).not.toContain('error processing package demo-broken');
    expect(await dpkgSays(m.root, 'demo-editor')).toBe('1.1-1 ii');
    expect(await dpkgSays(m.root, 'demo-broken')).toBe('1.1-1 iF');
    expect((await aptBackend.assess(m.ctx)).updates.map((u) => u.name)).not.toContain('demo-editor');
  });

  it('then demo-app and the package it pulls in new: both configured, SUCCEEDED with exit 0', async () => {
    const m = machine('broken');
    expect(await aptBackend.installUpdate(m.ctx, await assessed(m, 'demo-app'), () => {})).toEqual({ status: 'SUCCEEDED', exitCode: 0, errorText: null, installedVersion: '2.0-1', rebootRequired: false });
    expect(await dpkgSays(m.root, 'demo-app')).toBe('2.0-1 ii');
    expect(await dpkgSays(m.root, 'demo-newdep')).toBe('1.0-1 ii');
    expect(await dpkgSays(m.root, 'demo-broken')).toBe('1.1-1 iF');
  });

  it('installing demo-broken again retries its configuration and fails the same way', async () => {
    const m = machine('broken');

    const outcome = await aptBackend.installUpdate(m.ctx, await assessed(m, 'demo-broken'), () => {});

    expect(outcome).toMatchObject({ status: 'FAILED', exitCode: 100, installedVersion: '1.1-1' });
    expect(outcome.errorText).toContain('dpkg: error processing package demo-broken (--configure):');
    expect(await dpkgSays(m.root, 'demo-broken')).toBe('1.1-1 iF');
  });
});
