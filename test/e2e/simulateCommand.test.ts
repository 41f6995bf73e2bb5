import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { createEnrollmentKey } from '../../src/db/enrollmentKeys.js';
import { graphql, startApiOnFreshDatabase, tokenFor, waitUntil } from '../support/env.js';
import { spawnFleetpatch } from '../support/processes.js';

/** `fleetpatch simulate` as an operator runs it: a fleet appears, the command says how the ramp-up goes, Ctrl-C stops it. */
describe('fleetpatch simulate', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let token: string;
  let enrollKey: string;

  beforeAll(async () => {
    ({ api, database, close } = await startApiOnFreshDatabase());
    token = await tokenFor(database, 'VIEWER');
    enrollKey = (await createEnrollmentKey(database.db, { description: 'simulate command', expiresAt: null, maxUses: null, defaultTags: [] })).secret;
  });

  afterAll(async () => {
    await close?.();
  });

  it('brings N machines with pending updates into the fleet, and stops on SIGINT', async () => {
    const sim = spawnFleetpatch(['simulate', '--server', api.url, '--enroll-key', enrollKey, '--machines', '6', '--updates', '10', '--ramp', '3', '--prefix', 'cli'], {});
    await sim.waitFor(/fleet up \(6 machines\)/);
    expect(sim.output()).toMatch(/simulate: 6\/6 machines enrolled and assessed \(\d+\.\d s\)/);
    const summary = await waitUntil(
      async () => (await graphql<{ complianceSummary: { total: number; ready: number }; machines: { edges: Array<{ node: { name: string; criticalAndSecurityCount: number; otherCount: number } }> } }>(api.url, '{ complianceSummary { total ready } machines(first: 10, orderBy: {field: NAME}) { edges { node { name criticalAndSecurityCount otherCount } } } }', { token })).data!,
      (d) => d.complianceSummary.ready === 6,
      10_000,
      'six READY machines',
    );
    expect(summary.machines.edges.map((e) => e.node.name)).toEqual(['cli-00001', 'cli-00002', 'cli-00003', 'cli-00004', 'cli-00005', 'cli-00006']);
    for (const { node } of summary.machines.edges) expect(node.criticalAndSecurityCount + node.otherCount).toBeGreaterThanOrEqual(5);
    sim.child.kill('SIGINT');
    expect(await sim.exited).toEqual({ code: 0, signal: null });
    expect(sim.output()).toMatch(/check-ins \d+, reports 6, jobs 0/);
  });

  it('refuses a wrong enrollment key with a message that says what to check', async () => {
    const sim = spawnFleetpatch(['simulate', '--server', api.url, '--enroll-key', 'not-a-key', '--machines', '2'], {});
    expect((await sim.exited).code).toBe(1);
    expect(sim.output()).toMatch(/fleetpatch: No machine could join: .*Check --server and that the enrollment key is valid\./);
  });
});
