import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSelfCheck, findSelfCheck } from '../../src/db/selfChecks.js';
import type { Database } from '../../src/db/client.js';
import { createFleetPubSub } from '../../src/events/pubsub.js';
import type { TemporalClient, TemporalSettings } from '../../src/temporal/connection.js';
import { workflowIds } from '../../src/workflows/config.js';
import { selfCheckWorkflow } from '../../src/workflows/selfCheck.js';
import { startRunStack, type WorkerStack } from '../support/env.js';

describe('the worker on the real Temporal dev server', () => {
  let stack: WorkerStack;
  let settings: TemporalSettings;
  let database: Database;
  let temporal: TemporalClient;

  beforeAll(async () => {
    stack = await startRunStack({ api: false, workerIdentity: 'worker-under-test' });
    ({ settings, database, temporal } = stack);
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('runs a workflow whose activity writes to Postgres and announces it to subscribers', async () => {
    const pubsub = await createFleetPubSub(database.sql);
    const row = await createSelfCheck(database.db);
    // Consume from the start: the subscription listens from its first read on.
    const announced = (async () => {
      for await (const event of pubsub.subscribe('selfCheckCompleted')) {
        if (event.selfCheckId === row.id) return event;
      }
    })();

    const result = await temporal.client.workflow.execute(selfCheckWorkflow, {
      taskQueue: settings.taskQueue,
      workflowId: workflowIds.selfCheck(row.id),
      args: [{ selfCheckId: row.id, waitSeconds: 1 }],
    });

    expect(result).toEqual({ workerIdentity: 'worker-under-test' });
    const stored = await findSelfCheck(database.db, row.id);
    expect(stored?.workerIdentity).toBe('worker-under-test');
    expect(stored!.completedAt!.getTime() - stored!.requestedAt.getTime()).toBeGreaterThanOrEqual(1000);
    expect(await announced).toEqual({ selfCheckId: row.id });
  });

  it('treats a second start of the same business id as the same run', async () => {
    const row = await createSelfCheck(database.db);
    const options = { taskQueue: settings.taskQueue, workflowId: workflowIds.selfCheck(row.id), args: [{ selfCheckId: row.id, waitSeconds: 0 }] as const };
    const first = await temporal.client.workflow.start(selfCheckWorkflow, { ...options, args: [...options.args] });
    await expect(temporal.client.workflow.start(selfCheckWorkflow, { ...options, args: [...options.args] })).rejects.toThrow(/already started/i);
    expect(await first.result()).toEqual({ workerIdentity: 'worker-under-test' });
  });
});
