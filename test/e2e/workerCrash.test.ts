import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createSelfCheck, findSelfCheck } from '../../src/db/selfChecks.js';
import { connectTemporal } from '../../src/temporal/connection.js';
import { workflowIds } from '../../src/workflows/config.js';
import { selfCheckWorkflow } from '../../src/workflows/selfCheck.js';
import { connectTestDatabase, databaseUrl, temporalSettings } from '../support/env.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

describe('a worker killed in the middle of a workflow', () => {
  const database = connectTestDatabase();
  const settings = temporalSettings(`crash-${randomUUID()}`);
  const workers: Spawned[] = [];

  function startWorker(): Spawned {
    const worker = spawnFleetpatch(['worker'], {
      DATABASE_URL: databaseUrl(),
      TEMPORAL_ADDRESS: settings.address,
      FLEETPATCH_TASK_QUEUE: settings.taskQueue,
    });
    workers.push(worker);
    return worker;
  }

  afterAll(async () => {
    await Promise.all(workers.map((w) => stop(w, 'SIGKILL')));
    await database.close();
  });

  it('completes on a new worker, its timer kept by Temporal', async () => {
    const temporal = await connectTemporal(settings);
    const first = startWorker();
    await first.waitFor(/"msg":"worker polling"/);

    const row = await createSelfCheck(database.db);
    const handle = await temporal.client.workflow.start(selfCheckWorkflow, {
      taskQueue: settings.taskQueue,
      workflowId: workflowIds.selfCheck(row.id),
      args: [{ selfCheckId: row.id, waitSeconds: 4 }],
    });

    // Wait until the first worker has run the workflow up to its timer, then kill it outright.
    for (;;) {
      const history = await handle.fetchHistory();
      if (history.events?.some((e) => e.timerStartedEventAttributes)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await stop(first, 'SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });

    const second = startWorker();
    await second.waitFor(/"msg":"worker polling"/);
    const result = await handle.result();

    expect(result.workerIdentity).toBe(`${second.child.pid}@${(await import('node:os')).hostname()}`);
    const stored = await findSelfCheck(database.db, row.id);
    expect(stored?.completedAt).not.toBeNull();
    const history = await handle.fetchHistory();
    // One timer, started once: the new worker replayed the history instead of starting over.
    expect(history.events?.filter((e) => e.timerStartedEventAttributes)).toHaveLength(1);
    await temporal.close();
  });
});
