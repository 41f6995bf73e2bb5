import { CompleteAsyncError } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../src/activities/index.js';
import type { BegunRun } from '../../src/activities/deployments.js';
import { connectDatabase, isDatabaseUnavailable, type Database } from '../../src/db/client.js';
import { insertDeployment } from '../../src/db/deployments.js';
import { createEnrollmentKey } from '../../src/db/enrollmentKeys.js';
import { enrollMachine } from '../../src/db/machines.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { createFleetPubSub, type FleetPubSub } from '../../src/events/pubsub.js';
import { machineFacts } from '../../testkit/agentFacts.js';
import { startRestartablePostgres, type Restartable } from '../support/restartable.js';

/** The query's outcome, or 'HUNG' when it has not settled within the time. */
function settleWithin(promise: Promise<unknown>, ms: number): Promise<'OK' | 'HUNG' | { error: string }> {
  return Promise.race([
    promise.then(
      () => 'OK' as const,
      (error: unknown) => ({ error: String((error as { code?: string }).code ?? error) }),
    ),
    new Promise<'HUNG'>((resolve) => setTimeout(() => resolve('HUNG'), ms).unref()),
  ]);
}

/**
 * PostgreSQL killed (SIGKILL) and started again under a connected pool and a LISTEN: the pool's
 * connections and the LISTEN come back by themselves, and queries meanwhile fail at once instead
 * of waiting for a connection that never comes.
 */
describe('connectDatabase across a PostgreSQL restart', () => {
  let pg: Restartable & { url: string };
  let database: Database;
  let pubsub: FleetPubSub;
  let listenings = 0;

  beforeAll(async () => {
    pg = await startRestartablePostgres();
    await migrateDatabase(pg.url);
    database = connectDatabase(pg.url, { max: 3 });
    pubsub = await createFleetPubSub(database.sql);
    pubsub.observe({ listening: () => listenings++ });
  });

  afterAll(async () => {
    await database?.close();
    await pg?.stop();
  });

  it('fails queries at once while PostgreSQL is down, and works again once it is back', async () => {
    await expect(settleWithin(database.sql`select 1`, 5000)).resolves.toBe('OK');
    const listeningsBefore = listenings;
    await pg.kill();

    // More queries than the pool holds connections: each failed attempt used to keep its
    // connection slot forever, and the fourth query waited for good.
    for (let i = 0; i < 8; i++) {
      const outcome = await settleWithin(database.sql`select 1`, 5000);
      expect(outcome, `query ${i + 1} while PostgreSQL is down`).not.toBe('HUNG');
      expect(outcome).not.toBe('OK');
    }

    await pg.start();
    await expect.poll(() => settleWithin(database.sql`select 1`, 5000), { timeout: 15_000, interval: 200 }).toBe('OK');

    // The LISTEN is back too (observers are told, so that they re-read what they missed), and
    // an event published now reaches this process's subscribers.
    await expect.poll(() => listenings, { timeout: 15_000, interval: 100 }).toBeGreaterThan(listeningsBefore);
    const received = (async () => {
      for await (const event of pubsub.subscribe('selfCheckCompleted')) return event;
    })();
    await expect
      .poll(
        async () => {
          pubsub.publish('selfCheckCompleted', { selfCheckId: 'after-restart' });
          return settleWithin(received, 500);
        },
        { timeout: 10_000 },
      )
      .toBe('OK');
    await expect(received).resolves.toEqual({ selfCheckId: 'after-restart' });
  });

  it("hands an install job over once PostgreSQL is back, instead of failing the machine on the install activity's one retry", async () => {
    const { secret } = await createEnrollmentKey(database.db, { description: 'restart', expiresAt: null, maxUses: null, defaultTags: [] });
    const enrolled = await enrollMachine(database.db, secret, machineFacts({ hostname: 'restart-01' }), new Date());
    if (!enrolled.enrolled) throw new Error(enrolled.reason);
    const deployment = await insertDeployment(database.db, {
      name: 'restart',
      osType: 'LINUX',
      machineIds: [enrolled.machine.id],
      classifications: ['SECURITY'],
      schedule: { startAt: new Date().toISOString(), timeZone: 'UTC', recurrence: { frequency: 'ONCE' }, endAt: null },
      windowMinutes: 60,
      rebootSetting: 'NEVER',
    });
    if (deployment === 'NAME_TAKEN') throw new Error('name taken');
    const activities = createActivities({ db: database.db, pubsub, workerIdentity: 'restart-test' });
    const begun = (await new MockActivityEnvironment().run(activities.beginDeploymentRun, { deploymentId: deployment.id, workflowId: `restart-${deployment.id}`, trigger: 'MANUAL' as const })) as BegunRun;
    const machineRunId = begun.machines[0]!.machineRunId;

    await pg.kill();
    // The activity meets the outage and says it is alive (a heartbeat) while it waits: PostgreSQL comes back then.
    // Its warnings about the outage are expected: not printed.
    const quiet = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
    const env = new MockActivityEnvironment(undefined, { logger: quiet });
    env.once('heartbeat', () => void pg.start());
    const outcome = await env.run(activities.dispatchInstall, { machineRunId, graceSeconds: 60 }).then(
      () => 'returned',
      (error: unknown) => error,
    );
    // Completed later by the API with the agent's result: the job is with the agent.
    expect(outcome).toBeInstanceOf(CompleteAsyncError);
    // Read as the product reads after an outage: a pooled connection whose backend the restart
    // ended fails its next query (57P01) and reconnects, so an unavailable answer is asked again.
    await expect
      .poll(() => database.sql`select kind from agent_commands where machine_run_id = ${machineRunId}`.then((rows) => [...rows], (error: unknown) => (isDatabaseUnavailable(error) ? 'unavailable' : error)), { timeout: 15_000, interval: 200 })
      .toEqual([{ kind: 'INSTALL' }]);
  });
});
