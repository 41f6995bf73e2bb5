import { describe, expect, it } from 'vitest';
import { freePort } from '../../src/net.js';
import { databaseUrl, temporalSettings } from '../support/env.js';
import { spawnFleetpatch, stop } from '../support/processes.js';

/**
 * systemd, Docker and process supervisors stop a service with one SIGTERM (or SIGINT) to its pid
 * alone, not to its process group as a terminal's Ctrl-C does. NODE_ENV is left unset as on a
 * server: under NODE_ENV=test (what vitest sets) Apollo installed no signal handlers of its own,
 * and those handlers were what turned one signal into two.
 */
describe('one signal to the pid alone stops a command once, in order', () => {
  const env = () => ({ DATABASE_URL: databaseUrl(), TEMPORAL_ADDRESS: temporalSettings().address, NODE_ENV: undefined });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`fleetpatch server on ${signal}`, async () => {
      const server = spawnFleetpatch(['server'], { ...env(), PORT: String(await freePort()), HOST: '127.0.0.1' });
      await server.waitFor(/"msg":"API listening"/);
      expect(await stop(server, signal)).toEqual({ code: 0, signal: null });
      expect(server.output().match(/"msg":"stopping"/g)).toHaveLength(1);
      expect(server.output()).not.toContain('second signal');
    });
  }

  it('fleetpatch worker on SIGTERM', async () => {
    const worker = spawnFleetpatch(['worker'], { ...env(), FLEETPATCH_TASK_QUEUE: temporalSettings().taskQueue });
    await worker.waitFor(/"msg":"worker polling"/);
    expect(await stop(worker, 'SIGTERM')).toEqual({ code: 0, signal: null });
    expect(worker.output().match(/"msg":"stopping"/g)).toHaveLength(1);
    expect(worker.output()).not.toContain('second signal');
  });
});
