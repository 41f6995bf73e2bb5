import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { aptBackend } from '../../src/agent/backends/apt/run.js';
import { freePort } from '../../src/net.js';
import { FIXTURE_PACKAGES, aptClassification } from '../../testkit/catalog.js';
import { buildAptMachine } from '../../testkit/apt.js';
import { buildDnfMachine } from '../../testkit/dnf.js';
import { buildZypperMachine } from '../../testkit/zypper.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { buildFixtureMachine } from '../support/fleet.js';
import { holdLock } from '../support/locks.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';
import type { Database } from '../../src/db/client.js';

const AGENT_BUNDLE = new URL('../../dist/agent/fleetpatch-agent.mjs', import.meta.url).pathname;

interface FixtureMachine {
  name: string;
  root: string;
  env: NodeJS.ProcessEnv;
  stateDir: string;
  /** DMI strings under <root>/sys/class/dmi/id, as the cloud writes them. */
  dmi: Record<string, string>;
  environment: string;
  agent?: ChildProcess;
  output: string;
  id?: string;
}

/**
 * The seed's first half, end to end: the real server process, and three real agents (the bundled
 * agent file) on three fixture machines with the real apt, dnf and zypper. The tests that make a
 * machine stale, stop its agent or stop the server have a machine (and a server) of their own, so
 * that any test passes alone and in any order.
 */
describe('three machines with apt, dnf and zypper', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-e2e-'));
  let server: Spawned;
  let serverEnv: NodeJS.ProcessEnv;
  let url: string;
  let database: Database;
  let drop: () => Promise<void>;
  let admin: string;
  let enrollKey: string;
  const machines: Record<'apt' | 'dnf' | 'zypper', FixtureMachine> = {} as never;

  function startServer(): Spawned {
    server = spawnFleetpatch(['server'], serverEnv);
    return server;
  }

  function startAgent(m: FixtureMachine, server = url): void {
    m.output = '';
    m.agent = spawn(process.execPath, [AGENT_BUNDLE, 'run', '--server', server.replace('/graphql', ''), '--enroll-key', enrollKey, '--state-dir', m.stateDir, '--root', m.root], {
      env: m.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    m.agent.stderr!.on('data', (chunk: Buffer) => (m.output += chunk.toString()));
  }

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(url, q, { token: admin, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    admin = await tokenFor(database, 'ADMIN');
    const port = await freePort();
    serverEnv = {
      DATABASE_URL: fresh.url,
      TEMPORAL_ADDRESS: temporalSettings().address,
      PORT: String(port),
      HOST: '127.0.0.1',
      // Fast cadences so that the test sees in seconds what takes minutes in production.
      FLEETPATCH_CHECKIN_SECONDS: '1',
      FLEETPATCH_DISCONNECTED_AFTER_SECONDS: '4',
      FLEETPATCH_LONG_POLL_SECONDS: '5',
      FLEETPATCH_PACKAGE_DB_CHECK_SECONDS: '1',
    };
    url = `http://127.0.0.1:${port}/graphql`;
    await startServer().waitFor(/"msg":"API listening"/);
    enrollKey = (await query<{ createEnrollmentKey: { secret: string } }>('mutation { createEnrollmentKey(input: {description: "e2e", defaultTags: ["e2e"]}) { secret } }')).createEnrollmentKey.secret;

    const [apt, dnf, zypper] = await Promise.all([
      buildAptMachine(path.join(work, 'apt')),
      buildDnfMachine(path.join(work, 'dnf')),
      buildZypperMachine(path.join(work, 'zypper')),
    ]);
    const make = (name: string, built: { root: string; env: NodeJS.ProcessEnv }, environment: string, dmi: Record<string, string>): FixtureMachine => ({
      name,
      root: built.root,
      env: built.env,
      stateDir: path.join(work, `${name}-state`),
      dmi,
      environment,
      output: '',
    });
    machines.apt = make('debian-01', apt, 'AWS', { sys_vendor: 'Amazon EC2', product_name: 'm5.large', bios_vendor: 'Amazon EC2' });
    machines.dnf = make('rocky-01', dnf, 'AZURE', { sys_vendor: 'Microsoft Corporation', product_name: 'Virtual Machine', chassis_asset_tag: '7783-7084-3265-9085-8269-3286-77' });
    machines.zypper = make('sles-01', zypper, 'GCP', { sys_vendor: 'Google', product_name: 'Google Compute Engine' });
    for (const m of Object.values(machines)) {
      fs.writeFileSync(path.join(m.root, 'etc/hostname'), `${m.name}\n`);
      const dmiDir = path.join(m.root, 'sys/class/dmi/id');
      fs.mkdirSync(dmiDir, { recursive: true });
      for (const [field, value] of Object.entries(m.dmi)) fs.writeFileSync(path.join(dmiDir, field), `${value}\n`);
      startAgent(m);
    }
    const assessed = await waitUntil(fleet, (view) => Object.values(machines).every((m) => view[m.name]?.lastAssessedAt), 90_000, 'three assessed machines');
    for (const m of Object.values(machines)) m.id = assessed[m.name]!.id;
  }, 240_000);

  afterAll(async () => {
    for (const m of Object.values(machines)) m.agent?.kill('SIGKILL');
    await stop(server);
    await database.close();
    await drop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  type MachineView = {
    id: string;
    name: string;
    compliance: string;
    environment: string;
    osName: string;
    agentReadiness: string;
    criticalCount: number;
    securityCount: number;
    criticalAndSecurityCount: number;
    otherCount: number;
    packageManager: string;
    lastAssessedAt: string | null;
    tags: string[];
    pendingUpdates: Array<{ name: string; installedVersion: string | null; availableVersion: string; classification: string }>;
  };
  const VIEW = 'id name compliance environment osName agentReadiness criticalCount securityCount criticalAndSecurityCount otherCount packageManager lastAssessedAt tags pendingUpdates(first: 100) { edges { node { name installedVersion availableVersion classification } } }';

  async function fleet(): Promise<Record<string, MachineView>> {
    type Paged = Omit<MachineView, 'pendingUpdates'> & { pendingUpdates: { edges: Array<{ node: MachineView['pendingUpdates'][number] }> } };
    const data = await query<{ machines: { edges: Array<{ node: Paged }> } }>(`{ machines { edges { node { ${VIEW} } } } }`);
    return Object.fromEntries(data.machines.edges.map(({ node }) => [node.name, { ...node, pendingUpdates: node.pendingUpdates.edges.map((e) => e.node) }]));
  }

  /**
   * An apt machine for one test (named debian-01-<label>), its agent reporting to `server` until
   * the test ends, assessed once.
   */
  async function aptMachineOfThisTest(label: string, server = url): Promise<FixtureMachine> {
    const built = await buildFixtureMachine(path.join(work, label), 'apt', `-${label}`);
    const m: FixtureMachine = { name: built.name, root: built.root, env: built.env, stateDir: built.stateDir, dmi: {}, environment: built.environment, output: '' };
    startAgent(m, server);
    onTestFinished(() => void m.agent?.kill('SIGKILL'));
    m.id = (await waitUntil(fleet, (view) => !!view[m.name]?.lastAssessedAt, 90_000, `${m.name} assessed`))[m.name]!.id;
    return m;
  }

  it('shows the three machines with their environment, OS, compliance and the right counts', async () => {
    const view = await fleet();

    const pending = FIXTURE_PACKAGES.filter((p) => p.available);
    const securityOf = (classify: (p: (typeof pending)[number]) => string) => pending.filter((p) => ['CRITICAL', 'SECURITY'].includes(classify(p))).length;
    expect(view['debian-01']).toMatchObject({
      environment: 'AWS',
      osName: 'Debian GNU/Linux 12 (bookworm)',
      packageManager: 'apt',
      compliance: 'NON_COMPLIANT',
      agentReadiness: 'READY',
      criticalCount: 0, // apt has no severities
      criticalAndSecurityCount: securityOf(aptClassification),
      otherCount: pending.length - securityOf(aptClassification),
      tags: ['e2e'],
    });
    for (const [name, environment, packageManager] of [['rocky-01', 'AZURE', 'dnf'], ['sles-01', 'GCP', 'zypper']] as const) {
      expect(view[name]).toMatchObject({
        environment,
        packageManager,
        compliance: 'NON_COMPLIANT',
        agentReadiness: 'READY',
        criticalCount: 1,
        criticalAndSecurityCount: securityOf((p) => p.classification),
        otherCount: pending.length - securityOf((p) => p.classification),
      });
      expect(view[name]!.pendingUpdates[0]).toMatchObject({ name: 'demo-libssl', classification: 'CRITICAL', installedVersion: '1.0-1', availableVersion: '1.1-1' });
    }
    for (const m of Object.values(machines).map((x) => view[x.name]!)) {
      expect(m.pendingUpdates.find((u) => u.name === 'demo-newdep')).toMatchObject({ installedVersion: null, availableVersion: '1.0-1' });
      expect(m.pendingUpdates.map((u) => u.name)).not.toContain('demo-stable');
    }
  });

  it('brings an on-demand assessment to an agent within seconds', async () => {
    const id = machines.dnf.id!;
    const history = async () =>
      (await query<{ machine: { assessments: { totalCount: number; edges: Array<{ node: { trigger: string } }> } } }>(
        'query($id: ID!) { machine(id: $id) { assessments(first: 1) { totalCount edges { node { trigger } } } } }',
        { id },
      )).machine.assessments;
    const before = (await history()).totalCount;
    const asked = Date.now();
    await query('mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { requested } }', { ids: [id] });
    // The newest assessment, not the count: the agent's first scheduled assessment (requested 1 s
    // after start, while the startup one may still run) can land after `before` was read.
    await expect.poll(async () => (await history()).edges[0]?.node.trigger, { timeout: 20_000, interval: 200 }).toBe('COMMAND');
    expect((await history()).totalCount).toBeGreaterThanOrEqual(before + 1);
    expect(Date.now() - asked).toBeLessThan(10_000);
  });

  it('reports a held package manager lock as the reason the assessment failed, keeping the last good one', async () => {
    const m = machines.apt;
    const release = await holdLock(path.join(m.root, 'var/lib/apt/lists/lock'));
    try {
      await query('mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { requested } }', { ids: [m.id] });
      type Errored = { machine: { criticalAndSecurityCount: number; lastAssessmentError: { code: string; message: string } | null } };
      await expect.poll(async () => (await query<Errored>('query($id: ID!) { machine(id: $id) { criticalAndSecurityCount lastAssessmentError { code message } } }', { id: m.id })).machine.lastAssessmentError?.code, { timeout: 20_000, interval: 250 }).toBe('LOCKED');
      const { machine } = await query<Errored>('query($id: ID!) { machine(id: $id) { criticalAndSecurityCount lastAssessmentError { code message } } }', { id: m.id });
      expect(machine.lastAssessmentError!.message).toMatch(/lock/i);
      expect(machine.criticalAndSecurityCount).toBe(4);
    } finally {
      await release();
    }
  });

  it('flips a stale assessment to NOT_ASSESSED and a stopped agent to DISCONNECTED', async () => {
    const m = await aptMachineOfThisTest('stale');
    await database.sql`update machines set last_assessed_at = now() - interval '4 hours' where id = ${m.id!}`;
    expect((await fleet())[m.name]!.compliance).toBe('NOT_ASSESSED');

    m.agent!.kill('SIGTERM');
    await expect.poll(async () => (await fleet())[m.name]!.agentReadiness, { timeout: 20_000, interval: 500 }).toBe('DISCONNECTED');
  });

  it('loses no report while the server is down', async () => {
    // A server of its own (on the same database) to stop, and a machine whose agent reports to it.
    const port = await freePort();
    const ownEnv = { ...serverEnv, PORT: String(port) };
    let own = spawnFleetpatch(['server'], ownEnv);
    onTestFinished(() => stop(own).then(() => undefined));
    await own.waitFor(/"msg":"API listening"/);
    const m = await aptMachineOfThisTest('spool', `http://127.0.0.1:${port}/graphql`);
    const spool = path.join(m.stateDir, 'spool');
    const countAssessments = async () => Number((await database.sql`select count(*)::int as n from assessments where machine_id = ${m.id!}`)[0]!.n);
    await stop(own);
    const before = await countAssessments();

    // While the server is away, the package database changes (an install): the agent notices and
    // assesses, and keeps the report in its spool.
    const outcome = await aptBackend.installUpdate({ root: m.root, env: m.env, workDir: path.join(work, 'spool', 'apt-work') }, { name: 'demo-editor', installedVersion: '1.0-1', availableVersion: '1.1-1', arch: null, classification: 'OTHER', severity: null, advisoryIds: [], cveIds: [], rebootSuggested: false, repository: null }, () => undefined);
    expect(outcome.status).toBe('SUCCEEDED');
    await expect.poll(() => fs.readdirSync(spool).filter((f) => f.endsWith('.json')).length, { timeout: 30_000, interval: 250 }).toBeGreaterThan(0);
    const spooled = fs.readdirSync(spool).filter((f) => f.endsWith('.json')).length;

    own = spawnFleetpatch(['server'], ownEnv);
    await own.waitFor(/"msg":"API listening"/);
    await expect.poll(() => fs.readdirSync(spool).filter((f) => f.endsWith('.json')).length, { timeout: 30_000, interval: 250 }).toBe(0);
    expect(await countAssessments()).toBeGreaterThanOrEqual(before + spooled);
    const view = (await fleet())[m.name]!;
    expect(view.pendingUpdates.map((u) => u.name)).not.toContain('demo-editor');
    expect(view.compliance).toBe('NON_COMPLIANT');
  });
});
