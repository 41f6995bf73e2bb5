import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PackageBackend } from '../../src/agent/backends/types.js';
import type { AgentClient } from '../../src/agent/client.js';
import { InstallJobRunner } from '../../src/agent/jobs.js';
import { JobStore } from '../../src/agent/jobStore.js';
import type { InstallJob, JobEvents, JobResult, ScriptJobStep } from '../../src/agent/protocol.js';
import { emptyJobState } from '../../src/agent/resume.js';

/**
 * The install job's PRE scripts as the agent runs them (real processes, a package backend that
 * records what it is asked to install): a failed script installs nothing, a CONTINUE one does not
 * stop the job, and a script the agent was running when it stopped is failed, never run again.
 */
describe('an install job with scripts', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-job-steps-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  let counter = 0;

  const script = (s: Partial<ScriptJobStep>): ScriptJobStep => ({ index: 0, name: 'drain', phase: 'PRE', onFailure: 'SKIP_INSTALLS', inline: 'true', path: null, interpreter: '/bin/sh', timeoutSeconds: 30, ...s });

  async function runJob(scripts: ScriptJobStep[], prepare?: (store: JobStore, jobId: string, job: InstallJob) => void) {
    const jobId = `job-${++counter}`;
    const stateDir = path.join(dir, jobId);
    const store = new JobStore(stateDir);
    const installed: string[] = [];
    const events: JobEvents[] = [];
    let result: JobResult | undefined;
    const job: InstallJob = {
      runId: 'run',
      machineRunId: 'machine-run',
      deadline: new Date(Date.now() + 3600_000).toISOString(),
      graceSeconds: 60,
      rebootSetting: 'NEVER',
      rebootReserveSeconds: 0,
      updates: [{ name: 'demo-libssl', arch: null, installedVersion: '1.0-1', availableVersion: '1.1-1', classification: 'SECURITY', severity: null, advisoryIds: [], cveIds: [], rebootSuggested: false, repository: null, expectedSeconds: 5 }],
      scripts,
    };
    store.save(jobId, emptyJobState(job, new Date().toISOString()));
    prepare?.(store, jobId, job);
    const backend = {
      name: 'apt',
      assess: async () => ({ updates: [], rebootPending: false }),
      installUpdate: async (_ctx: unknown, update: { name: string; availableVersion: string }) => {
        installed.push(update.name);
        return { status: 'SUCCEEDED', exitCode: 0, errorText: null, installedVersion: update.availableVersion, rebootRequired: false };
      },
      rebootPending: async () => false,
    } as unknown as PackageBackend;
    const client = {
      sendJobEvents: async (_id: string, batch: JobEvents) => {
        events.push(batch);
        return { applied: true };
      },
      sendJobResult: async (_id: string, r: JobResult) => {
        result = r;
        return { accepted: true };
      },
    } as unknown as AgentClient;
    await new InstallJobRunner(jobId, {
      backend,
      ctx: { root: '/', env: { PATH: process.env.PATH }, workDir: stateDir },
      client,
      store,
      log: () => undefined,
      assessOnly: false,
      bootId: () => 'boot',
      reboot: () => undefined,
      signal: new AbortController().signal,
    }).run();
    return { installed, result: result!, lines: events.flatMap((e) => e.lines.map((l) => `${l.stream}: ${l.text}`)) };
  }

  it('runs the scripts before the updates, their output in the job stream', async () => {
    const { installed, result, lines } = await runJob([script({ inline: 'echo draining' }), script({ index: 1, name: 'stop', inline: 'echo stopping' })]);
    expect(installed).toEqual(['demo-libssl']);
    expect(result.steps!.map((s) => [s.name, s.status, s.exitCode])).toEqual([
      ['drain', 'SUCCEEDED', 0],
      ['stop', 'SUCCEEDED', 0],
    ]);
    expect(lines.indexOf('stdout: draining')).toBeLessThan(lines.indexOf('stdout: stopping'));
  });

  it('installs nothing after a failed script: the updates NOT_ATTEMPTED with its reason, the scripts after it NOT_RUN', async () => {
    const { installed, result } = await runJob([script({ inline: 'echo "freeze" >&2; exit 3' }), script({ index: 1, name: 'stop' })]);
    expect(installed).toEqual([]);
    expect(result.updates.map((u) => [u.name, u.status, u.reason])).toEqual([['demo-libssl', 'NOT_ATTEMPTED', 'Not attempted: Pre-step "drain" failed: exited with code 3.']]);
    expect(result.steps!.map((s) => [s.name, s.status])).toEqual([
      ['drain', 'FAILED'],
      ['stop', 'NOT_RUN'],
    ]);
    expect(result.rebooting).toBe(false);
  });

  it('goes on after a failed script that CONTINUEs', async () => {
    const { installed, result } = await runJob([script({ inline: 'exit 1', onFailure: 'CONTINUE' })]);
    expect(installed).toEqual(['demo-libssl']);
    expect(result.steps!.map((s) => s.status)).toEqual(['FAILED']);
  });

  it('fails a script it was running when the agent stopped, without running it again', async () => {
    const marker = path.join(dir, 'ran-twice');
    const { installed, result } = await runJob([script({ inline: `touch ${marker}` })], (store, jobId) => {
      const state = store.load(jobId)!;
      store.save(jobId, { ...state, runningStep: 0 });
    });
    expect(fs.existsSync(marker)).toBe(false);
    expect(installed).toEqual([]);
    expect(result.steps![0]).toMatchObject({ status: 'FAILED', message: 'the agent restarted while this script ran; it is not run again' });
  });
});
