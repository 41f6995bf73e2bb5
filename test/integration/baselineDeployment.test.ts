import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/runner.js';
import { saveIdentity } from '../../src/agent/state.js';
import type { ApiServer } from '../../src/api/server.js';
import { buildAptMachine } from '../../testkit/apt.js';
import { graphql, startRunStack, type RunStack, waitUntil } from '../support/env.js';
import { enrollMachine } from '../support/machines.js';

const DAY = 24 * 3600_000;

/**
 * A baseline end to end on a real apt machine (fixture root), with the real agent in this process,
 * the real API and a worker on the real Temporal dev server. The server's and the worker's clock is
 * the test's: it moves 8 days forward instead of anyone waiting a week.
 */
describe('a baseline on a real apt machine', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-baseline-'));
  let clock = new Date();
  const now = () => clock;
  let stack: RunStack;
  let api: ApiServer;
  let token: string;
  let machineId: string;
  let root: string;
  const stopAgent = new AbortController();
  let agentRunning: Promise<unknown>;
  const agentLog: string[] = [];

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(api.url, q, { token, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  const lastAssessedAt = async () => (await query<{ machine: { lastAssessedAt: string | null } }>('query($id: ID!) { machine(id: $id) { lastAssessedAt } }', { id: machineId })).machine.lastAssessedAt;
  /** Asks the agent for an assessment and waits until one newer than `after` is stored. */
  async function assessedAfter(after: number): Promise<void> {
    await query('mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { requested } }', { ids: [machineId] });
    await waitUntil(lastAssessedAt, (at) => at !== null && Date.parse(at) > after, 60_000, 'a fresh assessment');
  }
  const complianceNow = async () =>
    (await query<{ machine: { compliance: string; complianceReason: string; baseline: { name: string } } }>('query($id: ID!) { machine(id: $id) { compliance complianceReason baseline { name } } }', { id: machineId })).machine;
  const installedVersion = (name: string) => execFileSync('dpkg-query', ['--admindir', path.join(root, 'var/lib/dpkg'), '-W', '-f', '${Version}', name], { encoding: 'utf8' });

  beforeAll(async () => {
    stack = await startRunStack({ now });
    ({ api } = stack);
    token = await stack.token('OPERATOR');
    const { base } = stack;
    const enrolled = await enrollMachine(base, await stack.enrollmentKey('baseline'), { facts: { hostname: 'debian-baseline' } });
    machineId = enrolled.machineId;
    let env: NodeJS.ProcessEnv;
    ({ root, env } = await buildAptMachine(path.join(work, 'apt')));
    const stateDir = path.join(work, 'state');
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    saveIdentity(stateDir, { server: base, machineId, credential: enrolled.credential });
    const bootIdFile = path.join(work, 'boot_id');
    fs.writeFileSync(bootIdFile, `${randomUUID()}\n`);
    agentRunning = Agent.start(
      { server: base, enrollKey: undefined, stateDir, root, assessOnly: false, bootIdFile, rebootCommand: 'true', env, log: (_level, msg) => agentLog.push(msg) },
      stopAgent.signal,
    );
    await waitUntil(lastAssessedAt, (at) => at !== null, 60_000, 'the first assessment');
  }, 180_000);

  afterAll(async () => {
    stopAgent.abort();
    await agentRunning;
    await stack?.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('approving security updates after 7 days: compliant today, NON_COMPLIANT once the clock passes the 7th day', async () => {
    // The built-in baseline first: apt's security updates make it NON_COMPLIANT at once, as always.
    expect(await complianceNow()).toMatchObject({ compliance: 'NON_COMPLIANT', baseline: { name: 'Built-in: critical and security updates' } });

    await query('mutation($id: ID!) { setMachineTags(machineId: $id, tags: ["env:prod"]) { id } }', { id: machineId });
    await query('mutation($input: BaselineInput!) { createBaseline(input: $input) { id } }', {
      input: { name: 'production', osType: 'LINUX', tags: ['env:prod'], rules: [{ classifications: ['SECURITY', 'CRITICAL'], delayDays: 7 }], rejectedPatterns: ['demo-tool', 'demo-broken'] },
    });
    const today = await complianceNow();
    expect(today).toMatchObject({ compliance: 'COMPLIANT', baseline: { name: 'production' } });
    expect(today.complianceReason).toContain('become approved later');

    clock = new Date(clock.getTime() + 8 * DAY);
    // Its assessment is 8 days old by the new clock: the agent assesses again (its updates first seen 8 days ago).
    expect((await complianceNow()).compliance).toBe('NOT_ASSESSED');
    await assessedAfter(clock.getTime() - 60_000);
    const later = await complianceNow();
    expect(later.compliance).toBe('NON_COMPLIANT');
    expect(later.complianceReason).toMatch(/^Missing 2 update\(s\) approved by baseline "production": (demo-libssl|linux-image-demo) .*, (demo-libssl|linux-image-demo) /);
    expect(later.complianceReason).not.toMatch(/demo-tool|demo-broken/);
  });

  it('a deployment of what the baseline approves installs the approved updates and never the rejected ones', async () => {
    const { createDeployment } = await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      input: { name: 'baseline', osType: 'LINUX', machineIds: [machineId], useBaseline: true, includePatterns: ['demo-tool'], onDemandOnly: true, windowMinutes: 60, rebootSetting: 'NEVER' },
    });
    const { runDeploymentNow } = await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    type Run = { deploymentRun: { status: string; machineRuns: { edges: Array<{ node: { updates: Array<{ name: string; status: string; reason: string | null }> } }> } } };
    const run = await waitUntil(
      () => query<Run>('query($id: ID!) { deploymentRun(id: $id) { status machineRuns(first: 1) { edges { node { updates { name status reason } } } } } }', { id: runDeploymentNow.id }),
      (r) => !['SCHEDULED', 'IN_PROGRESS'].includes(r.deploymentRun.status),
      150_000,
      'the run to end',
    );
    const results = Object.fromEntries(run.deploymentRun.machineRuns.edges[0]!.node.updates.map((u) => [u.name, u]));
    expect(run.deploymentRun.status, JSON.stringify(run)).toBe('SUCCEEDED');
    expect(results['demo-libssl']!.status).toBe('SUCCEEDED');
    expect(results['linux-image-demo']!.status).toBe('SUCCEEDED');
    // Rejected: never installed, even though the deployment's include pattern names demo-tool.
    expect(results['demo-tool']).toMatchObject({ status: 'NOT_SELECTED', reason: 'rejected by baseline "production" (pattern "demo-tool")' });
    expect(results['demo-broken']).toMatchObject({ status: 'NOT_SELECTED', reason: 'rejected by baseline "production" (pattern "demo-broken")' });
    expect(results['demo-editor']).toMatchObject({ status: 'NOT_SELECTED', reason: 'not approved by baseline "production"' });
    // The machine's own package database agrees.
    expect(installedVersion('demo-libssl')).toBe('1.1-1');
    expect(installedVersion('demo-tool')).toBe('1.0-1');
    expect(installedVersion('demo-broken')).toBe('1.0-1');
  });
});
