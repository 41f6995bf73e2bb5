import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import type { JobEvents, JobResult } from '../../src/agent/protocol.js';
import type { Database } from '../../src/db/client.js';
import { finishMachineRun } from '../../src/db/runs.js';
import { machineFacts } from '../../testkit/agentFacts.js';
import { startApiOnFreshDatabase } from '../support/env.js';
import { handOverTestInstallJob } from '../support/installJobs.js';
import { enrollMachine, enrollmentKey } from '../support/machines.js';
import { tcpRelay } from '../support/operatorCli.js';

/**
 * The server's side of an agent that lost track of its commands (it restarted, or a poll's answer
 * was lost): it gets every command it has not completed again at once, instead of after the
 * five-minute redelivery or the install heartbeat; and a job withdrawn meanwhile is refused, so an
 * agent that took it back from disk goes no further with it.
 */
describe('redelivery to an agent that lost track', () => {
  let database: Database;
  let close: () => Promise<void>;
  let base: string;
  let agent: AgentClient;
  let machineId: string;
  let credential: string;

  beforeAll(async () => {
    const started = await startApiOnFreshDatabase();
    ({ database, close, base } = started);
    ({ agent, machineId, credential } = await enrollMachine(base, await enrollmentKey(database, 'redelivery'), { facts: { hostname: 'restarting-01' } }));
  });

  afterAll(async () => {
    await close();
  });

  const installJob = (deployment: string) => handOverTestInstallJob(database, { machineId, machineName: 'restarting-01', deployment });

  it('hands out again, at once, every command the agent has not completed when it asks for a redelivery, and only then', async () => {
    const { jobId, job } = await installJob('lost track');
    expect((await agent.commands(0)).commands).toEqual([{ id: jobId, kind: 'INSTALL', install: job }]);
    // Taken: a plain poll does not see it again (an agent that holds a long job is not bothered).
    expect((await agent.commands(0)).commands).toEqual([]);
    // The agent restarted (or its last poll failed): the same job, the same id, at once, even on a
    // long-poll (it answers without waiting, with nothing when nothing is open).
    const asked = Date.now();
    expect((await agent.commands(20, undefined, true)).commands).toEqual([{ id: jobId, kind: 'INSTALL', install: job }]);
    expect(await agent.commands(20, undefined, true)).toEqual({ commands: [{ id: jobId, kind: 'INSTALL', install: job }] });
    expect(Date.now() - asked).toBeLessThan(15_000);

    // A job with its result is completed: never handed out again.
    const result: JobResult = { updates: [], rebootRequired: false, rebooting: false, bootId: null, timedOut: false, error: null };
    expect(await agent.sendJobResult(jobId, result)).toEqual({ accepted: true });
    const nothingOpen = Date.now();
    expect((await agent.commands(20, undefined, true)).commands).toEqual([]);
    expect(Date.now() - nothingOpen).toBeLessThan(15_000);
  });

  it('hands the job to an agent whose poll answer was lost with the API process that took it', async () => {
    const { jobId, job } = await installJob('answer lost');
    // The agent reaches the API through a relay, on one kept-alive connection.
    const relay = await tcpRelay(new URL(base).host);
    try {
      const behind = new AgentClient(`http://${relay.address}`, credential);
      await behind.checkIn(machineFacts({ hostname: 'restarting-01' }));
      // The poll takes the job (marked delivered), and its answer never reaches the agent, as when
      // the API process dies at that moment; the agent sends the poll again on a new connection
      // (through the balancer, to another replica) and must get the job there, at once.
      const dropped = relay.dropNextAnswer();
      const asked = Date.now();
      const { commands } = await behind.commands(20);
      await dropped;
      expect(commands).toEqual([{ id: jobId, kind: 'INSTALL', install: job }]);
      expect(Date.now() - asked).toBeLessThan(15_000);
    } finally {
      relay.close();
      // Completed, so that the tests after this one find no job open.
      await agent.sendJobResult(jobId, { updates: [], rebootRequired: false, rebooting: false, bootId: null, timedOut: false, error: null });
    }
  });

  it('refuses progress and a result for a job withdrawn while the agent was away (409), storing nothing', async () => {
    const { jobId, machineRunId } = await installJob('withdrawn while away');
    expect((await agent.commands(0)).commands.map((c) => c.id)).toEqual([jobId]);
    // The machine run ended without the agent (its heartbeat window passed): the job is withdrawn.
    await finishMachineRun(database.db, machineRunId, { status: 'FAILED', rebootOutcome: null, error: 'The agent stopped reporting during the install.' });
    const resultsBefore = await database.sql`select name, status, error_text from update_results where machine_run_id = ${machineRunId}`;
    const logsBefore = await database.sql`select count(*)::int as n from run_logs where machine_run_id = ${machineRunId}`;

    // A withdrawn job is not handed out again, redelivery or not.
    expect((await agent.commands(0, undefined, true)).commands).toEqual([]);
    const events: JobEvents = { seq: 1, lines: [{ at: new Date().toISOString(), stream: 'agent', text: 'job taken back after the agent restarted' }], updates: [] };
    await expect(agent.sendJobEvents(jobId, events)).rejects.toMatchObject({ status: 409, code: 'CONFLICT', message: expect.stringMatching(/withdrawn/) });
    const result: JobResult = { updates: [{ name: 'openssl', arch: 'all', status: 'SUCCEEDED', exitCode: 0, errorText: null, reason: null, installedVersion: '1.1-1', startedAt: null, endedAt: null }], rebootRequired: true, rebooting: true, bootId: 'b', timedOut: false, error: null };
    await expect(agent.sendJobResult(jobId, result)).rejects.toMatchObject({ status: 409, code: 'CONFLICT' });

    expect(await database.sql`select name, status, error_text from update_results where machine_run_id = ${machineRunId}`).toEqual(resultsBefore);
    expect(await database.sql`select count(*)::int as n from run_logs where machine_run_id = ${machineRunId}`).toEqual(logsBefore);
    const [command] = await database.sql`select result from agent_commands where id = ${jobId}`;
    expect(command!.result).toBeNull();
  });

  it('answers a redelivery flag it cannot read with 400', async () => {
    const credential = (agent as unknown as { credential: string }).credential;
    for (const query of ['redeliver=0', 'redeliver=yes', 'redeliver=1&redeliver=1']) {
      const response = await fetch(`${base}/agent/v1/commands?waitSeconds=0&${query}`, { headers: { authorization: `Bearer ${credential}` } });
      expect([query, response.status]).toEqual([query, 400]);
      expect(await response.json()).toMatchObject({ error: { code: 'BAD_USER_INPUT', message: expect.stringContaining('redeliver') } });
    }
  });
});
