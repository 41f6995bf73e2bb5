import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/client.js';
import { createEnrollmentKey } from '../../src/db/enrollmentKeys.js';
import { startSimulatedFleet } from '../../src/simulator/fleet.js';
import { DEFAULT_PROFILE } from '../../src/simulator/syntheticMachine.js';
import { startApiOnFreshDatabase } from '../support/env.js';

/**
 * A server too busy to answer at first (503 on the first enrollments, as a loaded API or its
 * proxy says) in front of the real API: the simulated fleet still joins whole, as real agents do.
 */
describe('simulated agents joining a busy server', () => {
  let database: Database;
  let close: () => Promise<void>;
  let busy: http.Server;
  let busyUrl: string;
  let refusals = 3;
  /** Enrollments passed on to the API whose answer is then lost (a proxy's 504: the API took too long). */
  let lostAnswers = 0;

  beforeAll(async () => {
    let target: string;
    ({ database, base: target, close } = await startApiOnFreshDatabase());
    busy = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (req.url?.endsWith('/enroll') && refusals > 0) {
          refusals--;
          res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"code":"INTERNAL","message":"busy"}}');
          return;
        }
        const body = Buffer.concat(chunks);
        fetch(target + req.url, {
          method: req.method,
          headers: { ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), 'content-type': 'application/json' },
          body: body.length > 0 ? body : undefined,
        })
          .then(async (answer) => {
            const text = Buffer.from(await answer.arrayBuffer());
            if (req.url?.endsWith('/enroll') && lostAnswers > 0) {
              lostAnswers--;
              res.writeHead(504, { 'content-type': 'application/json' }).end('{"error":{"code":"INTERNAL","message":"gateway timeout"}}');
              return;
            }
            res.writeHead(answer.status, { 'content-type': 'application/json' }).end(text);
          })
          .catch(() => res.writeHead(502).end());
      });
    });
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    busyUrl = `http://127.0.0.1:${(busy.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    busy?.closeAllConnections();
    await new Promise((resolve) => busy?.close(resolve));
    await close?.();
  });

  it('retries enrollment while the server answers 503, and every machine joins once', async () => {
    const { secret } = await createEnrollmentKey(database.db, { description: 'busy', expiresAt: null, maxUses: null, defaultTags: [] });
    const fleet = await startSimulatedFleet({ server: busyUrl, enrollKey: secret, machines: 2, profile: DEFAULT_PROFILE, prefix: 'busy', rampConcurrency: 2, seed: 3 });
    try {
      expect({ failures: fleet.joinFailures, joined: fleet.agents.length }).toEqual({ failures: 0, joined: 2 });
      expect(refusals).toBe(0);
      expect(fleet.totals().errors).toBe(3);
      const rows = await database.sql`select name from machines order by name`;
      expect(rows.map((r) => r.name)).toEqual(['busy-00001', 'busy-00002']);
    } finally {
      await fleet.stop();
    }
  });

  // Failed before the enrollment request id: each lost answer left a machine enrolled twice.
  it('enrolls each machine once when the answers to its first enrollments are lost after the API enrolled it', async () => {
    const { secret } = await createEnrollmentKey(database.db, { description: 'lost', expiresAt: null, maxUses: null, defaultTags: [] });
    lostAnswers = 2;
    const fleet = await startSimulatedFleet({ server: busyUrl, enrollKey: secret, machines: 2, profile: DEFAULT_PROFILE, prefix: 'lost', rampConcurrency: 2, seed: 4 });
    try {
      expect({ failures: fleet.joinFailures, joined: fleet.agents.length }).toEqual({ failures: 0, joined: 2 });
      expect(lostAnswers).toBe(0);
      const rows = await database.sql`select name from machines where name like 'lost-%' order by name`;
      expect(rows.map((r) => r.name)).toEqual(['lost-00001', 'lost-00002']);
      const [key] = await database.sql`select use_count from enrollment_keys where description = 'lost'`;
      expect(key!.use_count).toBe(2);
    } finally {
      await fleet.stop();
    }
  });
});
