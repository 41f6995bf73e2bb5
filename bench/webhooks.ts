/**
 * Webhook delivery: latency and throughput of the delivery loop (src/webhooks/deliverer.ts) with
 * its default settings (8 in flight, NOTIFY wake-up, 5 s poll), on an embedded PostgreSQL, to a
 * local receiver that answers 200 at once.
 *
 * - latency: `--events` events recorded one at a time, `--gap-ms` apart, each in its own
 *   transaction through the outbox (recordWebhookEvent, as finishRun records RUN_ENDED); from the
 *   commit to the receiver's arrival: p50, p95, max.
 * - throughput: `--burst` events recorded in one transaction (a backlog, as after a receiver's
 *   outage or a large run ending); from its commit to the last arrival: deliveries per second, the
 *   loop's own capacity.
 *
 * Three rounds of each; the producer, the loop and the receiver share this one process (and the
 * machine's two CPUs with PostgreSQL).
 *
 * Run:  npx tsx bench/webhooks.ts [--events 200] [--gap-ms 20] [--burst 2000]
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { connectDatabase, type Database } from '../src/db/client.js';
import { migrateDatabase } from '../src/db/migrate.js';
import { createWebhookSubscription, recordWebhookEvent } from '../src/db/webhooks.js';
import { startEmbeddedPostgres } from '../src/devstack/embeddedPostgres.js';
import { createLogger } from '../src/logger.js';
import { freePort } from '../src/net.js';
import { WebhookDeliverer } from '../src/webhooks/deliverer.js';
import { newWebhookSecret } from '../src/webhooks/signature.js';

const { values } = parseArgs({ options: { events: { type: 'string', default: '200' }, 'gap-ms': { type: 'string', default: '20' }, burst: { type: 'string', default: '2000' } } });
const EVENTS = Number(values.events);
const GAP_MS = Number(values['gap-ms']);
const BURST = Number(values.burst);
const logger = createLogger({ level: 'warn', format: 'json', name: 'bench' });

const quantile = (xs: readonly number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.max(0, Math.ceil(q * xs.length) - 1))]!;
const median = (xs: readonly number[]) => quantile(xs, 0.5);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The receiver: when each run's event arrived (by run id). */
const arrived = new Map<string, number>();
let waiters: Array<() => void> = [];
const receiver = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const at = performance.now();
    const document = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: { run: { id: string } } };
    arrived.set(document.data.run.id, at);
    res.writeHead(204).end();
    waiters.forEach((w) => w());
  });
});

async function untilArrived(ids: readonly string[]): Promise<void> {
  while (!ids.every((id) => arrived.has(id))) await new Promise<void>((resolve) => waiters.push(resolve)).then(() => (waiters = []));
}

/** One event in its own transaction, as the product records one; resolves at its commit with the commit's time. */
async function recordOne(database: Database): Promise<{ id: string; committedAt: number }> {
  const id = randomUUID();
  await database.db.transaction((tx) => recordWebhookEvent(tx as never, { type: 'RUN_ENDED', run: { id, deploymentId: id, deploymentName: 'bench', status: 'SUCCEEDED', error: null } }));
  return { id, committedAt: performance.now() };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-bench-webhooks-'));
fs.chmodSync(dir, 0o755);
const loadAtStart = os.loadavg();
const pg = await startEmbeddedPostgres({ dir, port: await freePort(), database: 'bench', logger });
let code = 0;
try {
  await migrateDatabase(pg.url);
  const database = connectDatabase(pg.url);
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  await createWebhookSubscription(database.db, { url, description: null, events: ['RUN_ENDED'], disconnectedMinutes: null, nonCompliantDays: null, secret: newWebhookSecret(), enabled: true });
  const settings = { ...loadConfig({}).webhooks, allowedNetworks: loadConfig({ FLEETPATCH_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/32' }).webhooks.allowedNetworks };
  const deliverer = new WebhookDeliverer({ db: database.db, sql: database.sql, logger, settings });
  await deliverer.start();

  const latencyRounds: Array<{ p50: number; p95: number; max: number }> = [];
  const throughputRounds: Array<{ perSecond: number }> = [];
  for (let round = 0; round < 3; round++) {
    const recorded: Array<{ id: string; committedAt: number }> = [];
    for (let i = 0; i < EVENTS; i++) {
      recorded.push(await recordOne(database));
      await sleep(GAP_MS);
    }
    await untilArrived(recorded.map((r) => r.id));
    const latencies = recorded.map((r) => arrived.get(r.id)! - r.committedAt);
    latencyRounds.push({ p50: median(latencies), p95: quantile(latencies, 0.95), max: Math.max(...latencies) });

    const burst = Array.from({ length: BURST }, () => randomUUID());
    await database.db.transaction(async (tx) => {
      for (const id of burst) await recordWebhookEvent(tx as never, { type: 'RUN_ENDED', run: { id, deploymentId: id, deploymentName: 'bench', status: 'SUCCEEDED', error: null } });
    });
    const committed = performance.now();
    await untilArrived(burst);
    const last = Math.max(...burst.map((id) => arrived.get(id)!));
    throughputRounds.push({ perSecond: (BURST / (last - committed)) * 1000 });
    console.log(`round ${round + 1}: latency p50 ${latencyRounds.at(-1)!.p50.toFixed(1)} ms, p95 ${latencyRounds.at(-1)!.p95.toFixed(1)} ms, max ${latencyRounds.at(-1)!.max.toFixed(1)} ms; backlog of ${BURST}: ${throughputRounds.at(-1)!.perSecond.toFixed(0)} deliveries/s`);
  }
  const spread = (xs: number[], digits: number) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
  console.log(`latency p95: median of rounds ${spread(latencyRounds.map((r) => r.p95), 1)} ms; p50 ${spread(latencyRounds.map((r) => r.p50), 1)} ms`);
  console.log(`throughput: median of rounds ${spread(throughputRounds.map((r) => r.perSecond), 0)} deliveries/s`);
  console.log(`load average (1/5/15 min) at start ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}, at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} CPUs)`);
  await deliverer.stop();
  await database.close();
} catch (error) {
  console.error(error);
  code = 1;
} finally {
  receiver.close();
  await pg.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
