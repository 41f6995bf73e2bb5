import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ScriptJobStep } from '../../src/agent/protocol.js';
import { runScriptStep } from '../../src/agent/scripts.js';

/** The agent's script steps on real processes: output lines as they come, exit codes, the timeout, a missing interpreter. */
describe('runScriptStep', () => {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-scripts-'));
  afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

  const step = (s: Partial<ScriptJobStep>): ScriptJobStep => ({ index: 0, name: 'check', phase: 'PRE', onFailure: 'SKIP_INSTALLS', inline: 'true', path: null, interpreter: '/bin/sh', timeoutSeconds: 30, ...s });
  const run = async (s: Partial<ScriptJobStep>) => {
    const lines: Array<[string, string]> = [];
    const outcome = await runScriptStep(step(s), { workDir, env: { PATH: process.env.PATH }, context: { FLEETPATCH_ROOT: '/srv/root' }, signal: new AbortController().signal, onLine: (stream, text) => lines.push([stream, text]) });
    return { ...outcome, lines };
  };

  it('streams stdout and stderr with the step and run context in the environment', async () => {
    const r = await run({ inline: 'echo "$FLEETPATCH_STEP_NAME $FLEETPATCH_STEP_PHASE $FLEETPATCH_ROOT"\necho oops >&2\n' });
    expect(r).toEqual({ exitCode: 0, failure: null, lines: [['stdout', 'check PRE /srv/root'], ['stderr', 'oops']] });
  });

  it('fails with the exit code', async () => {
    expect(await run({ inline: 'exit 7' })).toMatchObject({ exitCode: 7, failure: 'exited with code 7' });
  });

  it('runs a script that is a file on the machine, with another interpreter', async () => {
    const file = path.join(workDir, 'health.sh');
    fs.writeFileSync(file, 'echo "${BASH_VERSION:+bash}"\n');
    expect(await run({ inline: null, path: file, interpreter: 'bash' })).toMatchObject({ exitCode: 0, lines: [['stdout', 'bash']] });
  });

  it('stops the whole process group at its timeout, children included', async () => {
    const started = Date.now();
    // The child keeps stdout open: only stopping the group ends the step.
    const r = await run({ inline: 'sleep 60 &\necho started\nwait\n', timeoutSeconds: 1 });
    expect(r.failure).toBe('stopped at its timeout of 1 s');
    expect(r.lines).toEqual([['stdout', 'started']]);
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('fails when the interpreter does not exist', async () => {
    expect(await run({ interpreter: '/nonexistent/sh' })).toMatchObject({ exitCode: null, failure: 'could not start /nonexistent/sh: spawn /nonexistent/sh ENOENT' });
  });
});
