import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ScriptJobStep } from '../../src/agent/protocol.js';
import { jobRunnerHarness, type JobRunOptions } from '../support/jobRunner.js';

/**
 * The install job's PRE scripts as the agent runs them (real processes, a package backend that
 * records what it is asked to install): a failed script installs nothing, a CONTINUE one does not
 * stop the job, and a script the agent was running when it stopped is failed, never run again.
 */
describe('an install job with scripts', () => {
  const harness = jobRunnerHarness();
  afterAll(() => harness.cleanUp());
  const dir = fs.mkdtempSync(path.join(harness.dir, 'markers-'));

  const script = (s: Partial<ScriptJobStep>): ScriptJobStep => ({ index: 0, name: 'drain', phase: 'PRE', onFailure: 'SKIP_INSTALLS', inline: 'true', path: null, interpreter: '/bin/sh', timeoutSeconds: 30, ...s });
  const runJob = (scripts: ScriptJobStep[], prepare?: JobRunOptions['prepare']) => harness.runJob({ scripts, prepare }).then((r) => ({ ...r, result: r.result! }));

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
