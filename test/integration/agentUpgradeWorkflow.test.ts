import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, ServerRefusal } from '../../src/agent/client.js';
import type { UpgradeCommand, UpgradeReport } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { startSimulatedFleet, type SimulatedFleet } from '../../src/simulator/fleet.js';
import { DEFAULT_PROFILE } from '../../src/simulator/syntheticMachine.js';
import { machineFacts } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack, waitUntil } from '../support/env.js';

/**
 * upgradeAgents end to end on the server side: the API records the upgrade with its signed release,
 * the real worker runs agentUpgradeWorkflow on the real Temporal dev server, agents get UPGRADE
 * commands over the agent protocol and report. The agents are the fleet simulator's virtual agents
 * (they check the release's signature against the key they pinned, then come back with the new
 * version) and, for the answers a healthy fleet does not give, agents scripted here.
 */
const SHIPPED = '0.9.0';

type UpgradeView = {
  id: string;
  status: string;
  counts: Record<string, number>;
  machines: { edges: Array<{ node: { machineName: string; status: string; code: string | null; message: string | null; attempts: number; fromVersion: string | null } }> };
};
const UPGRADE = 'id status counts { total pending inProgress succeeded failed rolledBack timedOut skipped notStarted canceled } machines(first: 100) { edges { node { machineName status code message attempts fromVersion } } }';

/** An agent that answers UPGRADE commands as told, one answer per command, in order ('SILENT': never). */
class ScriptedAgent {
  readonly client: AgentClient;
  machineId = '';
  readonly commands: Array<{ id: string; upgrade: UpgradeCommand }> = [];
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly server: string,
    readonly name: string,
    private readonly answers: Array<Omit<UpgradeReport, 'fromVersion' | 'toVersion'> | 'SILENT'>,
  ) {
    this.client = new AgentClient(server);
  }

  async start(enrollKey: string): Promise<this> {
    const enrolled = await this.client.enroll(enrollKey, machineFacts({ hostname: this.name, agentVersion: '0.1.0' }));
    this.machineId = enrolled.machineId;
    this.client.setCredential(enrolled.credential);
    await this.client.checkIn(machineFacts({ hostname: this.name, agentVersion: '0.1.0' }));
    this.loop = (async () => {
      while (!this.stopped) {
        const { commands } = await this.client.commands(1);
        for (const command of commands) {
          if (command.kind !== 'UPGRADE' || !command.upgrade) continue;
          this.commands.push({ id: command.id, upgrade: command.upgrade });
          const answer = this.answers[this.commands.length - 1] ?? 'SILENT';
          if (answer !== 'SILENT') await this.client.sendUpgradeReport(command.id, { ...answer, fromVersion: '0.1.0', toVersion: command.upgrade.version });
        }
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

describe('agent upgrades as a workflow', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-upgrade-workflow-'));
  let stack: RunStack;
  let database: Database;
  let api: ApiServer;
  let base: string;
  let operator: string;
  let enrollKey: string;
  let fleet: SimulatedFleet | undefined;
  const scripted: ScriptedAgent[] = [];

  beforeAll(async () => {
    // The release: one linux-x64 executable (a stand-in: virtual agents do not download it).
    fs.mkdirSync(path.join(work, 'dist/executables'), { recursive: true });
    fs.writeFileSync(path.join(work, 'dist/executables/fleetpatch-agent-linux-x64'), 'executable');
    const sha256 = createHash('sha256').update('executable').digest('hex');
    fs.writeFileSync(path.join(work, 'dist/executables/manifest.json'), JSON.stringify({ version: SHIPPED, files: [{ platform: 'linux-x64', name: 'fleetpatch-agent-linux-x64', sha256, size: 10 }] }));

    stack = await startRunStack({
      env: { FLEETPATCH_CHECKIN_SECONDS: '1', FLEETPATCH_LONG_POLL_SECONDS: '2', FLEETPATCH_UPGRADE_BUSY_RETRY_SECONDS: '1', FLEETPATCH_AGENT_RATE_LIMIT: '0' },
      agentDistribution: { distDir: path.join(work, 'dist'), releaseKeyFile: path.join(work, 'release-key.json') },
      workerIdentity: 'upgrade-worker',
    });
    ({ database, api, base } = stack);
    operator = await stack.token('OPERATOR');
    enrollKey = await stack.enrollmentKey('upgrades');
  }, 120_000);

  afterAll(async () => {
    await fleet?.stop();
    await Promise.all(scripted.map((a) => a.stop()));
    await stack?.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(api.url, q, { token: operator, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  async function upgrade(input: Record<string, unknown>): Promise<string> {
    return (await query<{ upgradeAgents: { id: string } }>('mutation($input: UpgradeAgentsInput!) { upgradeAgents(input: $input) { id } }', { input })).upgradeAgents.id;
  }

  async function ended(id: string): Promise<UpgradeView> {
    return waitUntil(async () => (await query<{ agentUpgrade: UpgradeView }>(`query($id: ID!) { agentUpgrade(id: $id) { ${UPGRADE} } }`, { id })).agentUpgrade, (u) => u.status !== 'IN_PROGRESS', 90_000, `agent upgrade ${id} to end`);
  }

  const byName = (view: UpgradeView) => Object.fromEntries(view.machines.edges.map((e) => [e.node.machineName, e.node]));

  it('upgrades every connected Linux agent, at most maxConcurrent at once, and says why it left out the others', async () => {
    let upgrading = 0;
    let most = 0;
    fleet = await startSimulatedFleet({ server: base, enrollKey, machines: 6, profile: { ...DEFAULT_PROFILE, updatesPerMachine: 2, agentVersion: '0.1.0', upgradeSeconds: 0.6 }, prefix: 'sim', rampConcurrency: 6, seed: 1 });
    for (const agent of fleet.agents) {
      agent.onUpgrade = (phase) => {
        upgrading += phase === 'BEGIN' ? 1 : -1;
        most = Math.max(most, upgrading);
      };
    }
    // A Windows Server, and a Linux machine not heard from for an hour.
    const windows = new AgentClient(base);
    await windows.enroll(enrollKey, machineFacts({ hostname: 'win-01', osType: 'WINDOWS', agentVersion: '0.1.0' }));
    const gone = new AgentClient(base);
    const goneId = (await gone.enroll(enrollKey, machineFacts({ hostname: 'gone-01', agentVersion: '0.1.0' }))).machineId;
    await database.sql`update machines set last_seen_at = now() - interval '1 hour' where id = ${goneId}`;

    const before = await query<{ agentVersions: { outdatedMachines: number; versions: Array<{ version: string; machines: number; outdated: boolean }> } }>('{ agentVersions { outdatedMachines versions { version machines outdated } } }');
    expect(before.agentVersions).toEqual({ outdatedMachines: 8, versions: [{ version: '0.1.0', machines: 8, outdated: true }] });

    const view = await ended(await upgrade({ allMachines: true, maxConcurrent: { value: 2, unit: 'COUNT' } }));
    expect(view.status).toBe('SUCCEEDED');
    expect(view.counts).toMatchObject({ total: 8, succeeded: 6, skipped: 2, failed: 0 });
    const machines = byName(view);
    expect(machines['sim-00001']).toMatchObject({ status: 'SUCCEEDED', code: 'UPGRADED', fromVersion: '0.1.0', attempts: 1, message: `Upgraded from version 0.1.0 to ${SHIPPED}; the new agent checked in.` });
    expect(machines['win-01']).toMatchObject({ status: 'SKIPPED', code: 'NOT_SUPPORTED' });
    expect(machines['gone-01']).toMatchObject({ status: 'SKIPPED', code: 'DISCONNECTED' });
    // Rate control: two at a time, and really two.
    expect(most).toBe(2);

    await waitUntil(
      async () => (await query<{ agentVersions: { versions: Array<{ version: string; machines: number; outdated: boolean }> } }>('{ agentVersions { versions { version machines outdated } } }')).agentVersions.versions,
      (versions) => versions.some((v) => v.version === SHIPPED && v.machines === 6),
      10_000,
      'six machines reporting the shipped version',
    );
    const listed = await query<{ machines: { edges: Array<{ node: { name: string; agentVersion: string; outdated: boolean } }> } }>('{ machines(first: 20) { edges { node { name agentVersion outdated } } } }');
    expect(listed.machines.edges.map((e) => e.node).filter((m) => m.name.startsWith('sim-'))).toEqual(expect.arrayContaining([{ name: 'sim-00003', agentVersion: SHIPPED, outdated: false }]));
    expect(listed.machines.edges.map((e) => e.node).find((m) => m.name === 'gone-01')).toEqual({ name: 'gone-01', agentVersion: '0.1.0', outdated: true });
  });

  it('asks an agent that is busy with an install job again later, and upgrades it then', async () => {
    const busy = await new ScriptedAgent(base, 'busy-01', [
      { status: 'BUSY', code: 'INSTALL_JOB_RUNNING', message: 'The agent is running install job j1: it upgrades only between jobs, and upgraded nothing.' },
      { status: 'SUCCEEDED', code: 'UPGRADED', message: 'Upgraded.' },
    ]).start(enrollKey);
    scripted.push(busy);
    const view = await ended(await upgrade({ machineIds: [busy.machineId] }));
    expect(view.status).toBe('SUCCEEDED');
    expect(byName(view)['busy-01']).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    expect(busy.commands).toHaveLength(2);
    expect(busy.commands[0]!.id).not.toBe(busy.commands[1]!.id);
  });

  it("keeps each agent's own result, and starts no new machine once the failures reach maxFailures", async () => {
    const message = 'The signature of version 0.9.0 (linux-x64, sha256 …) does not verify with the release key this agent pinned (SHA256:…): nothing was downloaded or replaced.';
    const agents = await Promise.all([
      new ScriptedAgent(base, 'cohort-a', [{ status: 'FAILED', code: 'BAD_SIGNATURE', message }]).start(enrollKey),
      new ScriptedAgent(base, 'cohort-b', [{ status: 'SUCCEEDED', code: 'UPGRADED', message: 'Upgraded.' }]).start(enrollKey),
      new ScriptedAgent(base, 'cohort-c', [{ status: 'SUCCEEDED', code: 'UPGRADED', message: 'Upgraded.' }]).start(enrollKey),
    ]);
    scripted.push(...agents);
    const view = await ended(await upgrade({ machineIds: agents.map((a) => a.machineId), maxConcurrent: { value: 1, unit: 'COUNT' }, maxFailures: { value: 1, unit: 'COUNT' } }));
    expect(view.status).toBe('FAILED');
    const machines = byName(view);
    expect(machines['cohort-a']).toMatchObject({ status: 'FAILED', code: 'BAD_SIGNATURE', message });
    expect(machines['cohort-b']).toMatchObject({ status: 'NOT_STARTED', message: "Not started: 1 machine(s) had failed, reaching the upgrade's maximum failures." });
    expect(machines['cohort-c']).toMatchObject({ status: 'NOT_STARTED' });
    expect(agents[1]!.commands).toHaveLength(0);
  });

  it('cancels: the waiting machine ends CANCELED, and its late report is refused', async () => {
    const silent = await new ScriptedAgent(base, 'silent-01', ['SILENT']).start(enrollKey);
    scripted.push(silent);
    const id = await upgrade({ machineIds: [silent.machineId] });
    await waitUntil(async () => silent.commands.length, (n) => n === 1, 30_000, 'the command to reach the agent');
    await query('mutation($id: ID!) { cancelAgentUpgrade(id: $id) { id } }', { id });
    const view = await ended(id);
    expect(view.status).toBe('CANCELED');
    expect(byName(view)['silent-01']).toMatchObject({ status: 'CANCELED', code: 'CANCELED' });
    const late = await silent.client.sendUpgradeReport(silent.commands[0]!.id, { status: 'SUCCEEDED', code: 'UPGRADED', message: 'late', fromVersion: '0.1.0', toVersion: SHIPPED }).catch((error: unknown) => error);
    expect(late).toBeInstanceOf(ServerRefusal);
    expect(late).toMatchObject({ status: 409, code: 'CONFLICT' });
    const again = await graphql<unknown>(api.url, 'mutation($id: ID!) { cancelAgentUpgrade(id: $id) { id } }', { token: operator, variables: { id } });
    expect(again.errors?.[0]).toMatchObject({ message: 'This upgrade already ended (CANCELED); there is nothing to cancel.', extensions: { code: 'CONFLICT' } });
  });

  it('refuses an upgrade that names no machine the right way, or machines it does not know, with the field', async () => {
    const none = await graphql<unknown>(api.url, 'mutation { upgradeAgents(input: {}) { id } }', { token: operator });
    expect(none.errors?.[0]).toMatchObject({ message: 'Choose the machines one way: allMachines: true, machineIds, or filter.', extensions: { code: 'BAD_USER_INPUT', field: 'input' } });
    const unknown = await graphql<unknown>(api.url, 'mutation { upgradeAgents(input: {machineIds: ["3f0c2a9e-5b1d-4c7e-9a2f-0d8e6b4c1a7f"]}) { id } }', { token: operator });
    expect(unknown.errors?.[0]).toMatchObject({ message: 'No machine with id 3f0c2a9e-5b1d-4c7e-9a2f-0d8e6b4c1a7f (removed machines cannot be upgraded).', extensions: { code: 'BAD_USER_INPUT', field: 'machineIds' } });
  });
});
