import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnrollmentKey } from '../../src/db/enrollmentKeys.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';

const AGENT_BUNDLE = new URL('../../dist/agent/fleetpatch-agent.mjs', import.meta.url).pathname;

/**
 * `--enroll-key KEY` puts the key in the process's command line, which every local user reads in
 * `ps`: the agent also takes it from a file and from the environment, which stay private.
 */
describe('agent enrollment key from a file or the environment', () => {
  let stack: Awaited<ReturnType<typeof startApiOnFreshDatabase>>;
  let admin: string;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-enroll-key-'));
  // The smallest system the apt backend recognises: enrollment needs no more (its assessments fail).
  const root = path.join(work, 'root');
  fs.mkdirSync(path.join(root, 'var/lib/dpkg'), { recursive: true });
  fs.writeFileSync(path.join(root, 'var/lib/dpkg/status'), '');
  fs.mkdirSync(path.join(root, 'etc'));
  fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n');
  const agents: ChildProcess[] = [];

  beforeAll(async () => {
    stack = await startApiOnFreshDatabase();
    admin = await tokenFor(stack.database, 'ADMIN');
  });

  afterAll(async () => {
    for (const agent of agents) agent.kill('SIGTERM');
    await Promise.all(agents.map((agent) => new Promise((resolve) => (agent.exitCode !== null ? resolve(null) : agent.once('exit', resolve)))));
    await stack.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  async function newKey(): Promise<string> {
    return (await createEnrollmentKey(stack.database.db, { description: 'enroll key test', expiresAt: null, maxUses: 1, defaultTags: [] })).secret;
  }

  /** Starts the bundled agent and resolves with its machine id once it has enrolled. */
  function enroll(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ agent: ChildProcess; machineId: string }> {
    const stateDir = path.join(work, name);
    const agent = spawn(process.execPath, [AGENT_BUNDLE, 'run', '--server', stack.base, '--state-dir', stateDir, '--root', root, '--assess-only', ...args], {
      env: { ...process.env, FLEETPATCH_ENROLL_KEY: undefined, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    agents.push(agent);
    let output = '';
    return new Promise((resolve, reject) => {
      agent.stderr!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const enrolled = /"msg":"enrolled","machineId":"([^"]+)"/.exec(output);
        if (enrolled) resolve({ agent, machineId: enrolled[1]! });
      });
      agent.once('exit', (code) => reject(new Error(`agent exited (${code}) before enrolling:\n${output}`)));
    });
  }

  const commandLine = (pid: number) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');

  it('enrolls with --enroll-key-file, and the key is nowhere in its command line', async () => {
    const key = await newKey();
    const file = path.join(work, 'enroll-key');
    fs.writeFileSync(file, `${key}\n`, { mode: 0o600 });
    const { agent, machineId } = await enroll('from-file', ['--enroll-key-file', file]);
    expect(commandLine(agent.pid!)).not.toContain(key);
    const machine = await graphql<{ machine: { id: string } | null }>(stack.api.url, 'query ($id: ID!) { machine(id: $id) { id } }', { token: admin, variables: { id: machineId } });
    expect(machine.data?.machine?.id).toBe(machineId);
  });

  it('enrolls with FLEETPATCH_ENROLL_KEY, and the key is nowhere in its command line', async () => {
    const key = await newKey();
    const { agent, machineId } = await enroll('from-env', [], { FLEETPATCH_ENROLL_KEY: key });
    expect(commandLine(agent.pid!)).not.toContain(key);
    const machine = await graphql<{ machine: { id: string } | null }>(stack.api.url, 'query ($id: ID!) { machine(id: $id) { id } }', { token: admin, variables: { id: machineId } });
    expect(machine.data?.machine?.id).toBe(machineId);
  });

  it('says in one line what is wrong with a key file', async () => {
    const exitOf = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const agent = spawn(process.execPath, [AGENT_BUNDLE, 'run', '--server', stack.base, '--state-dir', path.join(work, 'refused'), '--root', root, ...args], {
          env: { ...process.env, FLEETPATCH_ENROLL_KEY: undefined },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        agent.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        agent.once('close', (code) => resolve({ code, stderr }));
      });
    const missing = path.join(work, 'no-such-file');
    expect(await exitOf(['--enroll-key-file', missing])).toEqual({ code: 1, stderr: `fleetpatch-agent: --enroll-key-file ${missing} cannot be read (ENOENT).\n` });
    const empty = path.join(work, 'empty-key');
    fs.writeFileSync(empty, '\n', { mode: 0o600 });
    expect(await exitOf(['--enroll-key-file', empty])).toEqual({ code: 1, stderr: `fleetpatch-agent: --enroll-key-file ${empty} must hold the enrollment key alone, on one line; it is empty.\n` });
    expect(await exitOf([])).toEqual({
      code: 1,
      stderr: `fleetpatch-agent: This agent is not enrolled yet (no identity in ${path.join(work, 'refused')}): give it an enrollment key with --enroll-key-file FILE, the environment variable FLEETPATCH_ENROLL_KEY, or --enroll-key KEY.\n`,
    });
  });
});
