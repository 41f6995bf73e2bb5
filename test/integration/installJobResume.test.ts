import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import type { AgentClient } from '../../src/agent/client.js';
import { JobStore } from '../../src/agent/jobStore.js';
import type { InstallJob, JobResult } from '../../src/agent/protocol.js';
import { Agent } from '../../src/agent/runner.js';
import { saveIdentity } from '../../src/agent/state.js';
import type { Database } from '../../src/db/client.js';
import { finishMachineRun } from '../../src/db/runs.js';
import { buildAptMachine } from '../../testkit/apt.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { startApiOnFreshDatabase, waitUntil } from '../support/env.js';
import { handOverTestInstallJob } from '../support/installJobs.js';
import { enrollMachine, enrollmentKey } from '../support/machines.js';

/**
 * Every point where an agent can die during an install job, as the state dir it leaves behind, and
 * what the real agent (in this process, on a real apt machine, against a real API) does with it at
 * its next start: each ends with the job's updates installed at most once, its result delivered
 * once, the reboot it announced started once, and a withdrawn job left alone. The kill in the
 * middle of an update itself is in test/e2e/agentRestart.test.ts (a real process, SIGKILL).
 */
describe('an agent that starts again after dying at each point of an install job', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-job-resume-'));
  let database: Database;
  let close: () => Promise<void>;
  let base: string;
  let client: AgentClient;
  let identity: { server: string; machineId: string; credential: string };
  let root: string;
  let env: NodeJS.ProcessEnv;
  const bootIdFile = path.join(work, 'boot_id');
  const rebootMarker = path.join(work, 'reboots');
  const rebootsStarted = () => (fs.existsSync(rebootMarker) ? fs.readFileSync(rebootMarker, 'utf8').split('\n').filter(Boolean).length : 0);

  beforeAll(async () => {
    const started = await startApiOnFreshDatabase();
    ({ database, close, base } = started);
    const enrolled = await enrollMachine(base, await enrollmentKey(database, 'job resume'), { facts: { hostname: 'resume-01' } });
    client = enrolled.agent;
    identity = { server: base, machineId: enrolled.machineId, credential: enrolled.credential };
    ({ root, env } = await buildAptMachine(path.join(work, 'apt')));
    fs.writeFileSync(bootIdFile, `${randomUUID()}\n`);
  }, 120_000);

  afterAll(async () => {
    await close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const update = (name: string): PendingUpdate => pendingUpdate({ name, classification: 'SECURITY' });

  const installJob = (deployment: string, updates: PendingUpdate[], rebootSetting: InstallJob['rebootSetting'] = 'NEVER') =>
    handOverTestInstallJob(database, { machineId: identity.machineId, machineName: 'resume-01', deployment, updates, rebootSetting });

  /** A state dir as the dead agent left it: its identity, and `prepare` writes the rest. */
  function stateDir(name: string, prepare: (store: JobStore) => void = () => undefined): string {
    const dir = path.join(work, name);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    saveIdentity(dir, identity);
    prepare(new JobStore(dir));
    return dir;
  }

  /** Starts the agent on `dir` until `done` holds, then stops it; returns its log messages. */
  async function startAgent(dir: string, done: () => Promise<boolean> | boolean): Promise<string[]> {
    const messages: string[] = [];
    const stop = new AbortController();
    const reboot = `echo started >> '${rebootMarker}'`;
    const running = Agent.start(
      { server: base, enrollKey: undefined, stateDir: dir, root, assessOnly: false, bootIdFile, rebootCommand: reboot, env, log: (_level, msg) => messages.push(msg) },
      stop.signal,
    );
    try {
      await waitUntil(async () => (await done()) && messages.includes('assessment done'), (ok) => ok, 60_000, 'the agent to be done');
    } finally {
      stop.abort();
      await running;
    }
    return messages;
  }

  const storedResult = async (jobId: string) => ((await database.sql`select result from agent_commands where id = ${jobId}`)[0]!.result as JobResult | null) ?? null;
  const dpkgInstalls = (name: string) =>
    fs
      .readFileSync(path.join(root, 'var/log/dpkg.log'), 'utf8')
      .split('\n')
      .filter((l) => / status installed /.test(l) && l.includes(` ${name}:`) && l.endsWith(' 1.1-1')).length;
  const finishedAs = (dir: string, jobId: string) => new JobStore(dir).load(jobId)?.finished ?? null;

  it('died after taking the job, before writing it down: the server hands it out again at the first poll, and it runs once', async () => {
    const { jobId } = await installJob('taken, not written', [update('demo-tool')]);
    expect((await client.commands(0)).commands.map((c) => c.id)).toEqual([jobId]); // what the dead agent took
    const dir = stateDir('taken-not-written');
    await startAgent(dir, async () => (await storedResult(jobId)) !== null && finishedAs(dir, jobId) === 'DONE');
    expect((await storedResult(jobId))!.updates).toMatchObject([{ name: 'demo-tool', status: 'SUCCEEDED' }]);
    expect(dpkgInstalls('demo-tool')).toBe(1);
  });

  it('died with the job written down and nothing started: takes it back from disk first, and it runs once', async () => {
    const { jobId, job } = await installJob('written, not started', [update('demo-libssl')]);
    await client.commands(0);
    const dir = stateDir('written-not-started', (store) => store.receive(jobId, job));
    const messages = await startAgent(dir, async () => (await storedResult(jobId)) !== null && finishedAs(dir, jobId) === 'DONE');
    expect(messages).toContain('taking back an unfinished install job');
    expect((await storedResult(jobId))!.updates).toMatchObject([{ name: 'demo-libssl', status: 'SUCCEEDED' }]);
    expect(dpkgInstalls('demo-libssl')).toBe(1);
  });

  it('died after computing the result, before delivering it: delivers that result, installing nothing again', async () => {
    const { jobId, job } = await installJob('result not delivered', [update('demo-editor')]);
    await client.commands(0);
    // The result says demo-editor was installed; whatever dpkg says, the agent must not run it again.
    const result: JobResult = {
      updates: [{ name: 'demo-editor', arch: 'all', status: 'SUCCEEDED', exitCode: 0, errorText: null, reason: null, installedVersion: '1.1-1', startedAt: new Date().toISOString(), endedAt: new Date().toISOString() }],
      rebootRequired: false,
      rebooting: false,
      bootId: fs.readFileSync(bootIdFile, 'utf8').trim(),
      timedOut: false,
      error: null,
    };
    const dir = stateDir('result-not-delivered', (store) => store.save(jobId, { ...store.receive(jobId, job), seq: 3, updates: { 'demo-editor/all': result.updates[0]! }, result }));
    await startAgent(dir, async () => (await storedResult(jobId)) !== null && finishedAs(dir, jobId) === 'DONE');
    expect(await storedResult(jobId)).toEqual(result);
    expect(dpkgInstalls('demo-editor')).toBe(0);
    expect(rebootsStarted()).toBe(0);
  });

  it('died after delivering a result that reboots, before the reboot: starts the reboot once, and not again at a later start', async () => {
    const { jobId, job } = await installJob('delivered, reboot not started', [update('demo-stable')], 'ALWAYS');
    await client.commands(0);
    const result: JobResult = { updates: [], rebootRequired: false, rebooting: true, bootId: fs.readFileSync(bootIdFile, 'utf8').trim(), timedOut: false, error: null };
    expect(await client.sendJobResult(jobId, result)).toEqual({ accepted: true });
    const dir = stateDir('reboot-not-started', (store) => store.save(jobId, { ...store.receive(jobId, job), seq: 2, result, resultDelivered: true }));
    // The reboot command runs apart from the agent: its mark is the signal.
    await startAgent(dir, () => finishedAs(dir, jobId) === 'DONE' && rebootsStarted() === 1);
    await startAgent(dir, () => true);
    expect(rebootsStarted()).toBe(1);
  });

  it('died during the reboot it announced (the boot id changed since): nothing left to do, no second reboot', async () => {
    const { jobId, job } = await installJob('rebooted', [update('demo-stable')], 'ALWAYS');
    await client.commands(0);
    const result: JobResult = { updates: [], rebootRequired: false, rebooting: true, bootId: fs.readFileSync(bootIdFile, 'utf8').trim(), timedOut: false, error: null };
    await client.sendJobResult(jobId, result);
    const dir = stateDir('rebooted', (store) => store.save(jobId, { ...store.receive(jobId, job), seq: 2, result, resultDelivered: true }));
    fs.writeFileSync(bootIdFile, `${randomUUID()}\n`);
    const before = rebootsStarted();
    await startAgent(dir, () => finishedAs(dir, jobId) === 'DONE');
    expect(rebootsStarted()).toBe(before);
  });

  it('comes back to a job on disk whose machine run ended meanwhile: drops it, installing nothing', async () => {
    const { jobId, job, machineRunId } = await installJob('withdrawn while away', [update('demo-app'), update('demo-editor')]);
    await client.commands(0);
    const dir = stateDir('withdrawn', (store) => store.receive(jobId, job));
    await finishMachineRun(database.db, machineRunId, { status: 'FAILED', rebootOutcome: null, error: 'The agent stopped reporting during the install.' });
    const messages = await startAgent(dir, () => finishedAs(dir, jobId) === 'WITHDRAWN');
    expect(messages).toContain('job withdrawn by the server; dropped');
    expect(dpkgInstalls('demo-app')).toBe(0);
    expect(dpkgInstalls('demo-editor')).toBe(0);
    expect(await storedResult(jobId)).toBeNull();
  });
});
