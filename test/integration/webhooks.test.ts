import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/client.js';
import { createLogger } from '../../src/logger.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack } from '../support/env.js';
import { enrollMachine } from '../support/machines.js';
import { startWebhookReceiver } from '../support/webhookReceiver.js';

type Receiver = Awaited<ReturnType<typeof startWebhookReceiver>>;

const WEBHOOK = 'id url description events disconnectedMinutes nonCompliantDays enabled createdAt updatedAt';
const DELIVERY = 'id webhookId eventId eventType status attempts lastAttemptAt lastStatusCode lastError nextAttemptAt createdAt deliveredAt document';

interface DeliveryView {
  id: string;
  eventType: string;
  status: string;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  document: { id: string; type: string; data: Record<string, unknown> };
}

/**
 * Webhooks end to end on the real parts: a deployment run started over GraphQL and run by Temporal
 * records its events in the outbox with its changes; the worker's delivery loop signs and posts
 * them to a real HTTP receiver, which checks each signature on its own and answers 500 twice
 * before it takes one; the delivery log over GraphQL; secrets in no answer, log or audit entry.
 */
describe('webhooks', () => {
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-webhook-logs-'));
  let stack: RunStack;
  let api: ApiServer;
  let database: Database;
  let admin: string;
  let operator: string;
  let receiver: Receiver;
  let machineId: string;
  let secondMachineId: string;
  const secretsSeen: string[] = [];

  beforeAll(async () => {
    receiver = await startWebhookReceiver();
    // Everything both processes log, at their most talkative, goes to files the last test greps for secrets.
    const logger = (name: string) => createLogger({ level: 'debug', format: 'json', name, destination: pino.destination({ dest: path.join(logDir, `${name}.log`), sync: true }) });
    const webhooks = {
      ...loadConfig({ FLEETPATCH_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/32' }).webhooks,
      // Short retries, polls and scans: the schedule itself is unit-tested (test/unit/webhooks.test.ts).
      retryDelaysSeconds: [0.5, 0.5, 0.5, 0.5],
      pollMs: 200,
      thresholdScanMs: 300,
    };
    stack = await startRunStack({ env: { FLEETPATCH_INSTALL_HEARTBEAT_SECONDS: '3' }, logger, worker: { webhooks } });
    ({ api, database } = stack);
    admin = await stack.token('ADMIN');
    operator = await stack.token('OPERATOR');
    const key = await stack.enrollmentKey('webhooks');
    ({ machineId } = await enrollMachine(api.url, key, { facts: { hostname: 'hook-01' }, updates: [pendingUpdate({ name: 'openssl', classification: 'SECURITY' })] }));
    ({ machineId: secondMachineId } = await enrollMachine(api.url, key, { facts: { hostname: 'hook-02' }, updates: [pendingUpdate({ name: 'openssl', classification: 'SECURITY' })] }));
  });

  afterAll(async () => {
    await stack?.close();
    await receiver?.close();
  });

  async function ask<T>(query: string, variables: Record<string, unknown> = {}, token = admin): Promise<T> {
    const response = await graphql<T>(api.url, query, { token, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  async function createWebhook(input: Record<string, unknown>): Promise<{ id: string; secret: string }> {
    const created = await ask<{ createWebhook: { secret: string; webhook: { id: string } } }>(`mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { secret webhook { ${WEBHOOK} } } }`, { input });
    secretsSeen.push(created.createWebhook.secret);
    return { id: created.createWebhook.webhook.id, secret: created.createWebhook.secret };
  }

  const deliveries = async (webhookId: string, first = 50) =>
    (await ask<{ webhookDeliveries: { totalCount: number; edges: Array<{ node: DeliveryView }> } }>(`query($id: ID!, $first: Int) { webhookDeliveries(webhookId: $id, first: $first) { totalCount edges { node { ${DELIVERY} } } } }`, { id: webhookId, first })).webhookDeliveries;

  it('refuses bad input with BAD_USER_INPUT at its field', async () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ url: 'ftp://hooks.example.com/x', events: ['RUN_ENDED'] }, 'url', /http:\/\/ or https:\/\//],
      [{ url: 'file:///etc/passwd', events: ['RUN_ENDED'] }, 'url', /http:\/\/ or https:\/\//],
      [{ url: 'https://user:pw@hooks.example.com/', events: ['RUN_ENDED'] }, 'url', /user name or password/],
      [{ url: 'https://hooks.example.com/', events: [] }, 'events', /at least one/],
      [{ url: 'https://hooks.example.com/', events: ['RUN_ENDED', 'RUN_EXPLODED'] }, 'events', /Unknown event\(s\): RUN_EXPLODED/],
      [{ url: 'https://hooks.example.com/', events: ['MACHINE_DISCONNECTED'], disconnectedMinutes: 1 }, 'disconnectedMinutes', /from 5 to 43200/],
      [{ url: 'https://hooks.example.com/', events: ['MACHINE_NON_COMPLIANT'], nonCompliantDays: 1000 }, 'nonCompliantDays', /from 1 to 365/],
    ];
    for (const [input, field, message] of cases) {
      const response = await graphql(api.url, 'mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }', { token: admin, variables: { input } });
      expect(response.errors?.[0], JSON.stringify(input)).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field }, message: expect.stringMatching(message) });
    }
    const { id } = await createWebhook({ url: 'https://hooks.example.com/ok', events: ['RUN_ENDED'], enabled: false });
    const update = await graphql(api.url, 'mutation($id: ID!) { updateWebhook(id: $id, input: { events: [] }) { id } }', { token: admin, variables: { id } });
    expect(update.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'events' });
    const missing = await graphql(api.url, 'mutation { deleteWebhook(id: "00000000-0000-4000-8000-000000000000") { id } }', { token: admin });
    expect(missing.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect((await graphql(api.url, '{ webhooks { totalCount } }', { token: operator })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    await ask('mutation($id: ID!) { deleteWebhook(id: $id) { id } }', { id });
  });

  it('delivers a run\'s events signed, retries a receiver that answers 500 twice, and logs every attempt', async () => {
    receiver.answer('/flaky', [500, 500]);
    const flaky = await createWebhook({ url: receiver.url('/flaky'), events: ['RUN_ENDED'], description: 'ops pager' });
    receiver.secret('/flaky', flaky.secret);
    const all = await createWebhook({ url: receiver.url('/all'), events: ['RUN_STARTED', 'RUN_ENDED', 'MACHINE_RUN_FAILED'] });
    receiver.secret('/all', all.secret);

    // A real run: no agent answers, so its machine run fails and the run ends FAILED.
    const deployment = await ask<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      input: { name: 'hooked', osType: 'LINUX', machineIds: [machineId], classifications: ['SECURITY'], windowMinutes: 30, onDemandOnly: true },
    }, operator);
    const runId = (await ask<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deployment.createDeployment.id }, operator)).runDeploymentNow.id;

    await expect.poll(() => receiver.received.filter((r) => r.path === '/flaky').map((r) => r.status), { timeout: 60_000, interval: 200 }).toEqual([500, 500, 200]);
    const flakyRequests = receiver.received.filter((r) => r.path === '/flaky');
    // Every attempt is the same delivery, the same bytes, each signed with the subscription's secret.
    expect(flakyRequests.map((r) => r.signatureProblem)).toEqual([null, null, null]);
    expect(new Set(flakyRequests.map((r) => r.headers['fleetpatch-delivery'])).size).toBe(1);
    expect(new Set(flakyRequests.map((r) => r.body)).size).toBe(1);
    expect(flakyRequests[0]!.headers).toMatchObject({ 'content-type': 'application/json', 'fleetpatch-event': 'RUN_ENDED' });
    const document = JSON.parse(flakyRequests[0]!.body) as { id: string; type: string; occurredAt: string; data: { run: Record<string, unknown> } };
    expect(document).toMatchObject({ type: 'RUN_ENDED', data: { run: { id: runId, deploymentId: deployment.createDeployment.id, deploymentName: 'hooked', status: 'FAILED' } } });

    // The other subscription got each of its events once, in the order they happened.
    await expect.poll(() => receiver.received.filter((r) => r.path === '/all').map((r) => JSON.parse(r.body).type).sort(), { timeout: 30_000 }).toEqual(['MACHINE_RUN_FAILED', 'RUN_ENDED', 'RUN_STARTED']);
    const allRequests = receiver.received.filter((r) => r.path === '/all');
    expect(allRequests.map((r) => r.signatureProblem)).toEqual([null, null, null]);
    const failed = JSON.parse(allRequests.find((r) => JSON.parse(r.body).type === 'MACHINE_RUN_FAILED')!.body) as { data: { machineRun: Record<string, unknown> } };
    expect(failed.data.machineRun).toMatchObject({ machineId, machineName: 'hook-01', status: expect.stringMatching(/^(FAILED|TIMED_OUT)$/) });
    // The same event has the same id at every subscription (a receiver deduplicates on it).
    expect(JSON.parse(allRequests.find((r) => JSON.parse(r.body).type === 'RUN_ENDED')!.body).id).toBe(document.id);

    // The delivery log: three attempts, the last error gone once delivered, the 500s' answer kept meanwhile.
    await expect.poll(async () => (await deliveries(flaky.id)).edges.map((e) => e.node.status), { timeout: 10_000 }).toEqual(['DELIVERED']);
    const log = await deliveries(flaky.id);
    expect(log.totalCount).toBe(1);
    expect(log.edges[0]!.node).toMatchObject({ eventType: 'RUN_ENDED', status: 'DELIVERED', attempts: 3, lastStatusCode: 200, lastError: null, nextAttemptAt: null, document: { id: document.id, type: 'RUN_ENDED' } });

    // Pages: one delivery at a time through the other subscription's three.
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 4; page++) {
      const result: { webhookDeliveries: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: Array<{ node: { id: string } }> } } = await ask('query($id: ID!, $after: String) { webhookDeliveries(webhookId: $id, first: 1, after: $after) { pageInfo { hasNextPage endCursor } edges { node { id } } } }', { id: all.id, after });
      seen.push(...result.webhookDeliveries.edges.map((e) => e.node.id));
      after = result.webhookDeliveries.pageInfo.endCursor;
      if (!result.webhookDeliveries.pageInfo.hasNextPage) break;
    }
    expect(new Set(seen).size).toBe(3);
  }, 120_000);

  it('announces a ring waiting for approval and a run halted by its gate, from ringed runs', async () => {
    const rings = await createWebhook({ url: receiver.url('/rings'), events: ['RING_WAITING_FOR_APPROVAL', 'RUN_HALTED'] });
    receiver.secret('/rings', rings.secret);
    const ringed = async (name: string, gate: Record<string, unknown>) => {
      const created = await ask<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
        input: {
          name,
          osType: 'LINUX',
          machineIds: [machineId, secondMachineId],
          classifications: ['SECURITY'],
          windowMinutes: 30,
          onDemandOnly: true,
          rings: [{ name: 'canary', machineIds: [machineId], gate }, { name: 'rest', percent: 100 }],
        },
      }, operator);
      return (await ask<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: created.createDeployment.id }, operator)).runDeploymentNow.id;
    };
    const received = () => receiver.received.filter((r) => r.path === '/rings').map((r) => JSON.parse(r.body) as { type: string; data: { run: { id: string }; ring: { number: number; name: string }; reason?: string } });

    // No agent answers, so the canary's machine fails: a gate that allows no failure halts the run.
    const halting = await ringed('halting rings', {});
    await expect.poll(() => received().filter((d) => d.data.run.id === halting).map((d) => d.type), { timeout: 60_000, interval: 200 }).toEqual(['RUN_HALTED']);
    const halted = received().find((d) => d.data.run.id === halting)!;
    expect(halted.data.ring).toEqual({ number: 1, name: 'canary' });
    expect(halted.data.reason).toMatch(/^canary: 1 of 1 machine\(s\) failed/);

    // A gate that tolerates the failure and asks for an approval waits for it.
    const waiting = await ringed('approved rings', { maxFailures: { value: 100, unit: 'PERCENT' }, requireApproval: true });
    await expect.poll(() => received().filter((d) => d.data.run.id === waiting).map((d) => d.type), { timeout: 60_000, interval: 200 }).toEqual(['RING_WAITING_FOR_APPROVAL']);
    expect(received().find((d) => d.data.run.id === waiting)!.data.ring).toEqual({ number: 1, name: 'canary' });
    expect(receiver.received.filter((r) => r.path === '/rings').map((r) => r.signatureProblem)).toEqual([null, null]);
    for (const runId of [halting, waiting]) await ask('mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }', { id: runId }, operator);
    await ask('mutation($id: ID!) { deleteWebhook(id: $id) { id } }', { id: rings.id });
  }, 120_000);

  it('shows the receiver\'s error and the next attempt while a delivery is failing, and stops after the schedule', async () => {
    receiver.answer('/down', [503, 503, 503, 503, 503, 503]);
    const down = await createWebhook({ url: receiver.url('/down'), events: ['MACHINE_DISCONNECTED'], disconnectedMinutes: 5 });
    receiver.secret('/down', down.secret);
    // The machine's last check-in, 10 minutes ago: past the subscription's 5.
    await database.sql`update machines set last_seen_at = now() - interval '10 minutes' where id = ${machineId}`;
    await expect.poll(async () => (await deliveries(down.id)).edges[0]?.node.attempts ?? 0, { timeout: 30_000, interval: 100 }).toBeGreaterThanOrEqual(1);
    const failing = (await deliveries(down.id)).edges[0]!.node;
    if (failing.status === 'PENDING' && failing.attempts < 5) {
      expect(failing.lastStatusCode).toBe(503);
      expect(failing.lastError).toBe('HTTP 503: receiver says 503');
    }
    // Four retries after the first attempt, then FAILED for good: five attempts in all.
    await expect.poll(async () => (await deliveries(down.id)).edges.map((e) => `${e.node.status} ${e.node.attempts}`), { timeout: 30_000, interval: 200 }).toEqual(['FAILED 5']);
    const [final] = (await deliveries(down.id)).edges;
    expect(final!.node).toMatchObject({ lastStatusCode: 503, lastError: 'HTTP 503: receiver says 503', nextAttemptAt: null });
    expect(final!.node.document).toMatchObject({ type: 'MACHINE_DISCONNECTED', data: { machine: { id: machineId, name: 'hook-01' }, thresholdMinutes: 5 } });
    // The scans that followed made no second event for the same disconnection.
    expect((await deliveries(down.id)).totalCount).toBe(1);
    expect(receiver.received.filter((r) => r.path === '/down').map((r) => r.signatureProblem)).toEqual([null, null, null, null, null]);
    await database.sql`update machines set last_seen_at = now() where id = ${machineId}`;
    await ask('mutation($id: ID!) { deleteWebhook(id: $id) { id } }', { id: down.id });
  }, 60_000);

  it('announces a machine non-compliant for longer than the threshold, once per streak', async () => {
    const hook = await createWebhook({ url: receiver.url('/stale'), events: ['MACHINE_NON_COMPLIANT'], nonCompliantDays: 7 });
    receiver.secret('/stale', hook.secret);
    // hook-02's only assessment (a missing security update) dates from ten days ago: its streak began then.
    const [assessment] = await database.sql<Array<{ assessed_at: Date | string }>>`update assessments set assessed_at = now() - interval '10 days' where machine_id = ${secondMachineId} returning assessed_at`;
    await expect.poll(() => receiver.received.filter((r) => r.path === '/stale').length, { timeout: 30_000, interval: 100 }).toBe(1);
    const [delivery] = receiver.received.filter((r) => r.path === '/stale');
    expect(delivery!.signatureProblem).toBeNull();
    expect(JSON.parse(delivery!.body)).toMatchObject({
      type: 'MACHINE_NON_COMPLIANT',
      data: { machine: { id: secondMachineId, name: 'hook-02', nonCompliantSince: new Date(assessment!.assessed_at).toISOString() }, thresholdDays: 7 },
    });
    // hook-01's streak is younger than a week: nothing for it; and the scans that follow make nothing new.
    await expect.poll(async () => (await deliveries(hook.id)).edges.map((e) => e.node.status), { timeout: 10_000 }).toEqual(['DELIVERED']);
    expect((await deliveries(hook.id)).totalCount).toBe(1);
    await database.sql`update assessments set assessed_at = now() where machine_id = ${secondMachineId}`;
    await ask('mutation($id: ID!) { deleteWebhook(id: $id) { id } }', { id: hook.id });
  }, 60_000);

  it('refuses a private address that is not allowed, and says so in the log', async () => {
    const blocked = await createWebhook({ url: 'http://169.254.169.254/latest/meta-data', events: ['MACHINE_DISCONNECTED'], disconnectedMinutes: 5 });
    await database.sql`update machines set last_seen_at = now() - interval '10 minutes' where id = ${machineId}`;
    await expect.poll(async () => (await deliveries(blocked.id)).edges[0]?.node.lastError ?? null, { timeout: 30_000, interval: 100 }).toMatch(/169\.254\.169\.254 is not a public address/);
    await database.sql`update machines set last_seen_at = now() where id = ${machineId}`;
    await ask('mutation($id: ID!) { deleteWebhook(id: $id) { id } }', { id: blocked.id });
  }, 60_000);

  it('never shows a secret again: not in GraphQL, the audit log or the logs, rotated ones included', async () => {
    const hook = await createWebhook({ url: receiver.url('/rotated'), events: ['RUN_ENDED'] });
    const rotated = await ask<{ rotateWebhookSecret: { secret: string } }>('mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { id } } }', { id: hook.id });
    secretsSeen.push(rotated.rotateWebhookSecret.secret);
    expect(rotated.rotateWebhookSecret.secret).not.toBe(hook.secret);
    await ask('mutation($id: ID!) { updateWebhook(id: $id, input: { description: "changed", enabled: false }) { id } }', { id: hook.id });

    const listed = await ask(`{ webhooks(first: 100) { totalCount edges { node { ${WEBHOOK} } } } }`);
    const one = await ask(`query($id: ID!) { webhook(id: $id) { ${WEBHOOK} } }`, { id: hook.id });
    const log = await ask(`{ webhookDeliveries(first: 100) { edges { node { ${DELIVERY} } } } }`);
    const audit = await ask('{ auditEvents(first: 200) { edges { node { action targetId details } } } }');
    const typeFields = await ask<{ __type: { fields: Array<{ name: string }> } }>('{ __type(name: "Webhook") { fields { name } } }');
    expect(typeFields.__type.fields.map((f) => f.name)).not.toContain('secret');
    const auditText = JSON.stringify(audit);
    expect(auditText).toContain('createWebhook');
    expect(auditText).toContain('rotateWebhookSecret');
    expect(auditText).toContain(hook.id);
    const logs = fs.readdirSync(logDir).map((f) => fs.readFileSync(path.join(logDir, f), 'utf8')).join('\n');
    expect(logs.length).toBeGreaterThan(0);
    expect(secretsSeen.length).toBeGreaterThanOrEqual(5);
    for (const secret of secretsSeen) {
      for (const [what, text] of [['webhooks', JSON.stringify(listed)], ['webhook', JSON.stringify(one)], ['deliveries', JSON.stringify(log)], ['audit', auditText], ['logs', logs]] as const) {
        expect(text.includes(secret), `a secret in ${what}`).toBe(false);
      }
    }
  });
});
