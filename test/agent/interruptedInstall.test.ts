import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aptConfigForRoot } from '../../src/agent/backends/apt/parse.js';
import { aptBackend } from '../../src/agent/backends/apt/run.js';
import type { BackendContext, PendingUpdate } from '../../src/agent/backends/types.js';
import { exec, observeSpawns } from '../../src/agent/exec.js';
import { observeProcess, recordProcess } from '../../src/agent/processes.js';
import { buildAptMachine } from '../../testkit/apt.js';
import { SLOW_PACKAGE, slowInstallSignals } from '../../testkit/catalog.js';

/** Resolves once `file` exists (the fixture's maintainer script creates it). */
async function fileAppears(file: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * What an agent that restarted in the middle of an install finds on a real apt machine, and what it
 * does about it: the package manager it had started (recognised by its process id and start
 * time), dpkg interrupted by a kill (repaired as dpkg prescribes, finishing the interrupted
 * configure once), and the package database read back.
 */
describe('an install the agent did not see end (apt)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-interrupted-'));
  let ctx: BackendContext;
  const slow: PendingUpdate = { name: 'demo-slow', installedVersion: '1.0-1', availableVersion: '1.1-1', arch: 'all', classification: 'SECURITY', severity: null, advisoryIds: [], cveIds: [], rebootSuggested: false, repository: null };
  const tool: PendingUpdate = { ...slow, name: 'demo-tool' };
  const dpkgLog = () => fs.readFileSync(path.join(ctx.root, 'var/log/dpkg.log'), 'utf8');
  /** How often dpkg finished installing the update's version (its own log): installs counted by dpkg itself. */
  const configured = (name: string) => dpkgLog().split('\n').filter((l) => / status installed /.test(l) && l.includes(` ${name}:`) && l.endsWith(' 1.1-1')).length;

  beforeAll(async () => {
    const machine = await buildAptMachine(dir, { extraPackages: [SLOW_PACKAGE] });
    ctx = { root: machine.root, env: machine.env, workDir: path.join(dir, 'work') };
    await aptBackend.assess(ctx);
  }, 120_000);

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('records the processes an install starts, and knows them again (or their end) later', async () => {
    const seen: Array<ReturnType<typeof recordProcess>> = [];
    await observeSpawns(
      (pid) => seen.push(recordProcess(pid)),
      async () => {
        await exec('true', []);
        await new Promise((r) => setTimeout(r, 0));
        await exec('sh', ['-c', 'exit 0']);
      },
    );
    expect(seen).toHaveLength(2);
    expect(seen.every((p) => p.startTicks !== null && /^\d+$/.test(p.startTicks))).toBe(true);
    // Both ended: no process has their ids any more, or another one (another start time) does.
    for (const p of seen) {
      const now = observeProcess(p.pid);
      expect(now === null || now.startTicks !== p.startTicks || now.exited).toBe(true);
    }
    // A process that runs is seen with the start time it was recorded with.
    const sleeper = spawn('sleep', ['30']);
    const record = recordProcess(sleeper.pid!);
    expect(observeProcess(sleeper.pid!)).toEqual({ startTicks: record.startTicks, exited: false });
    sleeper.kill('SIGKILL');
    await new Promise((r) => sleeper.once('exit', r));
    expect(observeProcess(sleeper.pid!)).toBeNull();
  });

  it('lets a program write its output to files while the agent reads it line by line, and removes them', async () => {
    const outputDir = path.join(dir, 'output');
    const lines: Array<[string, string]> = [];
    const seen: number[] = [];
    const result = await observeSpawns(
      (pid) => seen.push(pid),
      () => exec('sh', ['-c', 'echo one; echo two >&2; sleep 0.3; printf three'], { onLine: (line, stream) => lines.push([stream, line]) }),
      { outputDir },
    );
    expect(result).toEqual({ exitCode: 0, signal: null, stdout: 'one\nthree', stderr: 'two\n' });
    expect(lines).toEqual(expect.arrayContaining([['stdout', 'one'], ['stderr', 'two'], ['stdout', 'three']]));
    expect(seen).toHaveLength(1);
    expect(fs.readdirSync(outputDir)).toEqual([]);
  });

  it('repairs dpkg killed in the middle of a configure, finishing that install once, so later installs run', async () => {
    expect(await aptBackend.recoverInterrupted!(ctx, () => undefined)).toBeUndefined(); // nothing to repair yet

    // apt-get and everything under it killed in the postinst, as a power cut or a killed service would.
    const aptConfig = path.join(dir, 'apt.conf');
    fs.writeFileSync(aptConfig, aptConfigForRoot(ctx.root));
    const signals = slowInstallSignals(ctx.root, 'demo-slow');
    const apt = spawn('apt-get', ['-y', '-q', '-o', 'Dpkg::Use-Pty=0', 'install', '--only-upgrade', 'demo-slow=1.1-1'], {
      env: { ...ctx.env, APT_CONFIG: aptConfig, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' },
      detached: true,
      stdio: 'ignore',
    });
    const exited = new Promise((r) => apt.once('exit', r));
    await fileAppears(signals.started);
    process.kill(-apt.pid!, 'SIGKILL');
    await exited;

    // dpkg has the new version unpacked, not configured: not installed.
    expect(await aptBackend.installedState!(ctx, slow)).toEqual({ installed: false, installedVersion: '1.1-1' });
    const blocked = await aptBackend.installUpdate(ctx, tool, () => undefined);
    expect(blocked).toMatchObject({ status: 'FAILED', errorText: expect.stringContaining('dpkg was interrupted') });

    fs.writeFileSync(signals.release, '');
    const lines: string[] = [];
    const repaired = await aptBackend.recoverInterrupted!(ctx, (line) => lines.push(line));
    expect(repaired).toEqual({ exitCode: 0, errorText: null });
    expect(lines.join('\n')).toMatch(/Setting up demo-slow \(1\.1-1\)/);
    expect(await aptBackend.installedState!(ctx, slow)).toEqual({ installed: true, installedVersion: '1.1-1' });
    expect(configured('demo-slow')).toBe(1);
    expect(await aptBackend.recoverInterrupted!(ctx, () => undefined)).toBeUndefined();

    expect(await aptBackend.installUpdate(ctx, tool, () => undefined)).toMatchObject({ status: 'SUCCEEDED', installedVersion: '1.1-1' });
    expect(configured('demo-tool')).toBe(1);
  }, 120_000);
});
