import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import { createEnrollmentKey } from '../../src/db/enrollmentKeys.js';
import { startSimulatedFleet, type SimulatedFleet } from '../../src/simulator/fleet.js';
import { SyntheticMachine, type FleetProfile } from '../../src/simulator/syntheticMachine.js';
import { graphql, startRunStack, type RunStack, waitUntil } from '../support/env.js';

const PROFILE: FleetProfile = { updatesPerMachine: 8, criticalShare: 0.2, securityShare: 0.4, rebootSuggestedShare: 0, installSeconds: 0.1, failureRate: 0, rebootSeconds: 1 };

/** The simulated fleet on the real API, the real worker and the real Temporal: what an operator sees of it. */
describe('fleetpatch simulate: virtual agents on the real agent protocol', () => {
  let stack: RunStack;
  let api: ApiServer;
  let token: string;
  let fleet: SimulatedFleet;
  const progress: Array<[number, number]> = [];

  beforeAll(async () => {
    stack = await startRunStack();
    ({ api } = stack);
    token = await stack.token('OPERATOR');
    const { secret } = await createEnrollmentKey(stack.database.db, { description: 'simulated fleet', expiresAt: null, maxUses: null, defaultTags: ['simulated'] });
    fleet = await startSimulatedFleet({ server: api.url, enrollKey: secret, machines: 4, profile: PROFILE, prefix: 'vm', rampConcurrency: 2, seed: 7, onProgress: (joined, total) => progress.push([joined, total]), progressMs: 0 });
  });

  afterAll(async () => {
    await fleet?.stop();
    await stack?.close();
  });

  async function query<T>(q: string, variables: Record<string, unknown> = {}): Promise<T> {
    const response = await graphql<T>(api.url, q, { token, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  it('enrolls every machine with its synthetic pending updates, and says how the ramp-up goes', async () => {
    expect(fleet.joinFailures).toBe(0);
    expect(progress.at(-1)).toEqual([4, 4]);
    const { machines } = await query<{ machines: { totalCount: number; edges: Array<{ node: { name: string; compliance: string; criticalAndSecurityCount: number; otherCount: number; agentReadiness: string } }> } }>(
      '{ machines(first: 10, orderBy: {field: NAME}) { totalCount edges { node { name compliance criticalAndSecurityCount otherCount agentReadiness } } } }',
    );
    expect(machines.totalCount).toBe(4);
    const expected = [0, 1, 2, 3].map((i) => new SyntheticMachine(i, PROFILE, 7).pendingUpdates());
    expect(machines.edges.map((e) => e.node)).toEqual(
      expected.map((updates, i) => {
        const securityCount = updates.filter((u) => u.classification !== 'OTHER').length;
        return { name: `vm-0000${i + 1}`, compliance: securityCount > 0 ? 'NON_COMPLIANT' : 'COMPLIANT', criticalAndSecurityCount: securityCount, otherCount: updates.length - securityCount, agentReadiness: 'READY' };
      }),
    );
  });

  it('runs a deployment to the end on them: installs, reboots, fresh assessments, compliance follows', async () => {
    const ids = fleet.agents.map((a) => a.machineId!);
    const { createDeployment } = await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      input: { name: 'simulated patching', osType: 'LINUX', machineIds: ids, classifications: ['CRITICAL', 'SECURITY'], windowMinutes: 30, rebootSetting: 'ALWAYS' },
    });
    const { runDeploymentNow } = await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    const run = await waitUntil(
      () => query<{ deploymentRun: { status: string; counts: { succeeded: number; failed: number }; machineRuns: { edges: Array<{ node: { status: string; rebootOutcome: string | null } }> } } }>(
        'query($id: ID!) { deploymentRun(id: $id) { status counts { succeeded failed } machineRuns { edges { node { status rebootOutcome } } } } }',
        { id: runDeploymentNow.id },
      ),
      (r) => /SUCCEEDED|FAILED|CANCELED/.test(r.deploymentRun.status),
      90_000,
      'the run to end',
    );
    const selected = [0, 1, 2, 3].reduce((sum, i) => sum + new SyntheticMachine(i, PROFILE, 7).pendingUpdates().filter((u) => u.classification !== 'OTHER').length, 0);
    expect(run.deploymentRun.status).toBe('SUCCEEDED');
    expect(run.deploymentRun.counts).toEqual({ succeeded: selected, failed: 0 });
    expect(run.deploymentRun.machineRuns.edges.map((e) => e.node)).toEqual(ids.map(() => ({ status: 'SUCCEEDED', rebootOutcome: 'REBOOTED' })));
    expect(fleet.totals()).toMatchObject({ reboots: 4, updatesInstalled: selected, updatesFailed: 0 });
    // The run asks each machine for a fresh assessment: no critical or security update is left.
    await waitUntil(
      () => query<{ complianceSummary: { compliant: number } }>('{ complianceSummary { compliant } }'),
      (r) => r.complianceSummary.compliant === 4,
      30_000,
      'every machine COMPLIANT',
    );
  });
});
