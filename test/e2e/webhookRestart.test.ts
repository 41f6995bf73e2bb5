import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/client.js';
import { createWebhookSubscription, recordRunWebhookEvent } from '../../src/db/webhooks.js';
import { newWebhookSecret } from '../../src/webhooks/signature.js';
import { connectTestDatabase, freshDatabase, temporalSettings } from '../support/env.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';
import { startWebhookReceiver } from '../support/webhookReceiver.js';

/**
 * Deliveries outlive the worker: `fleetpatch worker` is SIGKILLed with a delivery waiting for its
 * retry, and an event is recorded while no worker runs; a new worker delivers both, each once.
 */
describe('webhook deliveries across a killed worker', () => {
  const settings = temporalSettings(`webhooks-${randomUUID()}`);
  const workers: Spawned[] = [];
  let database: Database;
  let drop: () => Promise<void>;
  let databaseUrl: string;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    databaseUrl = fresh.url;
    database = connectTestDatabase(fresh.url);
    receiver = await startWebhookReceiver();
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => stop(w, 'SIGKILL')));
    await receiver?.close();
    await database?.close();
    await drop?.();
  });

  function startWorker(): Spawned {
    const worker = spawnFleetpatch(['worker'], {
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: settings.address,
      FLEETPATCH_TASK_QUEUE: settings.taskQueue,
      FLEETPATCH_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/32',
      // The retry is due 4 s after the first attempt: the worker is killed before it.
      FLEETPATCH_WEBHOOK_RETRY_DELAYS: '4,4,4',
      FLEETPATCH_WEBHOOK_POLL_SECONDS: '0.2',
    });
    workers.push(worker);
    return worker;
  }

  /** A run's RUN_ENDED event, recorded the way finishRun records it: in a transaction, through the outbox. */
  async function runEnded(): Promise<string> {
    const [deployment] = await database.sql<Array<{ id: string }>>`insert into deployments (name, os_type, classifications, window_minutes, reboot_setting) values (${`hooked ${randomUUID()}`}, 'LINUX', '{SECURITY}', 30, 'IF_REQUIRED') returning id`;
    const [run] = await database.sql<Array<{ id: string }>>`insert into deployment_runs (deployment_id, workflow_id, trigger, status) values (${deployment!.id}, ${`deployment-run:${randomUUID()}`}, 'MANUAL', 'SUCCEEDED') returning id`;
    await database.db.transaction((tx) => recordRunWebhookEvent(tx as never, run!.id, (ref) => ({ type: 'RUN_ENDED', run: { ...ref, status: 'SUCCEEDED', error: null } })));
    return run!.id;
  }

  const deliveriesOf = (runId: string) =>
    database.sql<Array<{ id: string; status: string; attempts: number; lease_until: Date | null }>>`
      select d.id, d.status, d.attempts, d.lease_until from webhook_deliveries d join webhook_events e on e.id = d.event_id where e.data->'run'->>'id' = ${runId}`;

  it('delivers once after the restart what was waiting for a retry, and what happened meanwhile', async () => {
    const secret = newWebhookSecret();
    await createWebhookSubscription(database.db, { url: receiver.url('/restart'), description: null, events: ['RUN_ENDED'], disconnectedMinutes: null, nonCompliantDays: null, secret, enabled: true });
    receiver.secret('/restart', secret);
    receiver.answer('/restart', [503]);

    const first = startWorker();
    await first.waitFor(/"msg":"worker polling"/);
    const before = await runEnded();
    // The first attempt met a 503 and is recorded: PENDING, one attempt, nothing holds it.
    await expect.poll(async () => (await deliveriesOf(before)).map((d) => `${d.status} ${d.attempts} ${d.lease_until === null}`), { timeout: 30_000, interval: 50 }).toEqual(['PENDING 1 true']);
    expect(await stop(first, 'SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    expect(receiver.received.map((r) => r.status)).toEqual([503]);

    // While no worker runs, another run ends: its event waits in the outbox.
    const meanwhile = await runEnded();

    const second = startWorker();
    await second.waitFor(/"msg":"worker polling"/);
    await expect.poll(async () => [...(await deliveriesOf(before)), ...(await deliveriesOf(meanwhile))].map((d) => d.status), { timeout: 30_000, interval: 100 }).toEqual(['DELIVERED', 'DELIVERED']);
    // Each run's event reached the receiver once with a 2xx: the first after its 503, as the same
    // delivery; which of the two came first after the restart depends on when the retry fell due.
    const of = (runId: string) => receiver.received.filter((r) => (JSON.parse(r.body) as { data: { run: { id: string } } }).data.run.id === runId);
    expect(of(before).map((r) => r.status)).toEqual([503, 200]);
    expect(of(meanwhile).map((r) => r.status)).toEqual([200]);
    expect(receiver.received.map((r) => r.signatureProblem)).toEqual([null, null, null]);
    expect(of(before)[0]!.headers['fleetpatch-delivery']).toBe(of(before)[1]!.headers['fleetpatch-delivery']);
    expect((await deliveriesOf(before))[0]!.attempts).toBe(2);
    await stop(second, 'SIGTERM');
  }, 120_000);
});
