import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createFleetWorker } from '../../src/temporal/worker.js';
import { databaseUrl, temporalSettings, testLogger } from '../support/env.js';

/**
 * `fleetpatch worker` stops on a SIGTERM that comes right after it said "worker polling": the
 * webhook delivery loop starts before the Temporal worker runs, and a stop asked for in between
 * used to be dropped (the SDK stops only a RUNNING worker), so the process never exited.
 */
describe('a fleet worker asked to stop while it starts', () => {
  it('stops, with its delivery loop, instead of running on', async () => {
    const fleetWorker = await createFleetWorker({ databaseUrl: databaseUrl(), temporal: temporalSettings(), logger: testLogger, webhooks: loadConfig({}).webhooks });
    const running = fleetWorker.run();
    await fleetWorker.shutdown();
    await expect(running).resolves.toBeUndefined();
    expect(fleetWorker.worker.getState()).not.toBe('RUNNING');
  });
});
