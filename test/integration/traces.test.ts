import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import type { AgentCommand } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import { activeTracing, startTracing, stopTracing } from '../../src/telemetry/tracing.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack, testLogger, waitUntil } from '../support/env.js';

/** A span as an OTLP/HTTP JSON export carries it. */
interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: Record<string, unknown>;
  service: string;
}

interface OtlpJson {
  resourceSpans: Array<{
    resource: { attributes: Array<{ key: string; value: Record<string, unknown> }> };
    scopeSpans: Array<{ spans: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: Array<{ key: string; value: Record<string, unknown> }> }> }>;
  }>;
}

const valueOf = (value: Record<string, unknown>) => Object.values(value)[0];
const attributesOf = (list: Array<{ key: string; value: Record<string, unknown> }> = []) => Object.fromEntries(list.map((a) => [a.key, valueOf(a.value)]));

/**
 * A real OTLP/HTTP receiver: what an OpenTelemetry Collector, Jaeger or Tempo listens on at
 * /v1/traces, taking the JSON encoding the exporter sends. It keeps every span and every body.
 */
async function startOtlpReceiver() {
  const spans: ExportedSpan[] = [];
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
        res.writeHead(415).end();
        return;
      }
      bodies.push(body);
      const message = JSON.parse(body) as OtlpJson;
      for (const resourceSpans of message.resourceSpans) {
        const service = String(attributesOf(resourceSpans.resource.attributes)['service.name']);
        for (const scope of resourceSpans.scopeSpans) {
          for (const s of scope.spans) spans.push({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, name: s.name, attributes: attributesOf(s.attributes), service });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, bodies, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/**
 * Traces across the path of a deployment: the GraphQL mutation, the Temporal client's start, the
 * run's workflow, the advance that hands the install job over, and the agent's result on it, all
 * in one trace, exported over OTLP/HTTP to a receiver in the test. The API,
 * the worker and the real Temporal dev server in this process; an agent speaking the agent protocol.
 */
describe('traces: one deployment run, API to agent result, in one trace', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let stack: RunStack;
  let api: ApiServer;
  let token: string;
  let enrollKey: string;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    expect(activeTracing()).toBeUndefined();
    expect(await startTracing('fleetpatch-test', testLogger, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url })).toBeDefined();
    stack = await startRunStack({ workerIdentity: 'traces-worker' });
    ({ api } = stack);
    token = await stack.token('OPERATOR');
    enrollKey = await stack.enrollmentKey('traces');
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
    await stopTracing();
    await receiver?.close();
  });

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(api.url, q, { token, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  it('connects the runDeploymentNow mutation, its workflow, the activity that hands the job over and the agent result on it', async () => {
    const base = api.url.replace('/graphql', '');
    const enrolled = await new AgentClient(base).enroll(enrollKey, machineFacts({ hostname: 'traced-01', bootId: 'boot-1' }));
    const agent = new AgentClient(base, enrolled.credential);
    await agent.sendReport(assessmentReport([pendingUpdate({ name: 'openssl', classification: 'SECURITY', installedVersion: '3.0.1-1', availableVersion: '3.0.1-2' })]));
    const deploymentId = (
      await query<{ createDeployment: { id: string } }>('mutation CreateTraced($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
        input: { name: 'traced', osType: 'LINUX', machineIds: [enrolled.machineId], classifications: ['SECURITY'], windowMinutes: 60, rebootSetting: 'NEVER' },
      })
    ).createDeployment.id;
    const runId = (await query<{ runDeploymentNow: { id: string } }>('mutation RunTraced($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deploymentId })).runDeploymentNow.id;

    const job = await waitUntil(async () => (await agent.commands(0)).commands.find((c) => c.kind === 'INSTALL'), (c): c is AgentCommand => c !== undefined, 60_000, 'the install job');
    // A batched run (docs/deployments.md) hands the job over from its advance, whose trace the job keeps: the result joins it.
    const at = new Date().toISOString();
    const updates = job!.install!.updates.map((u) => ({ name: u.name, arch: u.arch, status: 'SUCCEEDED' as const, exitCode: 0, errorText: null, reason: null, installedVersion: u.availableVersion, startedAt: at, endedAt: at }));
    expect(await agent.sendJobResult(job!.id, { updates, rebootRequired: false, rebooting: false, timedOut: false, error: null, bootId: 'boot-1' })).toEqual({ accepted: true });
    await waitUntil(async () => (await query<{ deploymentRun: { status: string } }>('query($id: ID!) { deploymentRun(id: $id) { status } }', { id: runId })).deploymentRun.status, (s) => s === 'SUCCEEDED', 60_000, 'the run to succeed');

    // Workflow spans leave the worker when their workflow completes; the batch processor sends them on flush.
    const pathUp = (from: ExportedSpan) => {
      const byId = new Map(receiver.spans.map((s) => [s.spanId, s]));
      const spans: ExportedSpan[] = [];
      for (let span: ExportedSpan | undefined = from; span; span = span.parentSpanId ? byId.get(span.parentSpanId) : undefined) spans.push(span);
      return spans;
    };
    const chain = await waitUntil(
      async () => {
        await activeTracing()!.forceFlush();
        const resultSpan = receiver.spans.find((s) => s.name === 'POST /agent/v1/jobs/:jobId/result' && s.attributes['fleetpatch.job.id'] === job!.id);
        return resultSpan ? pathUp(resultSpan) : [];
      },
      (spans) => spans.at(-1)?.parentSpanId === undefined && spans.length > 1,
      30_000,
      'the spans from the agent result up to the mutation',
    );
    const result = chain[0]!;
    const byId = new Map(receiver.spans.map((s) => [s.spanId, s]));
    const names = chain.map((s) => s.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'POST /agent/v1/jobs/:jobId/result',
        'RunActivity:advanceMachines',
        'StartActivity:advanceMachines',
        'RunWorkflow:deploymentRunWorkflow',
        'StartWorkflow:deploymentRunWorkflow',
        'mutation RunTraced',
      ]),
    );
    // The order of the path: the mutation is the root, the agent's result the deepest.
    const order = ['mutation RunTraced', 'StartWorkflow:deploymentRunWorkflow', 'RunWorkflow:deploymentRunWorkflow', 'RunActivity:advanceMachines', 'POST /agent/v1/jobs/:jobId/result'];
    expect(order.map((n) => names.indexOf(n))).toEqual([...order.map((n) => names.indexOf(n))].sort((a, b) => b - a));
    expect(chain.at(-1)!.name).toBe('mutation RunTraced');
    expect(chain.at(-1)!.parentSpanId).toBeUndefined();
    const traceId = result.traceId;
    expect(new Set(chain.map((s) => s.traceId))).toEqual(new Set([traceId]));

    const trace = receiver.spans.filter((s) => s.traceId === traceId);
    const mutation = chain.at(-1)!;
    expect(mutation.attributes).toMatchObject({ 'graphql.operation.type': 'mutation', 'graphql.operation.name': 'RunTraced' });
    // The agent's result is stored in statements of their own (no activity waits for it: the run's advance reads it).
    expect(trace.some((s) => s.parentSpanId === result.spanId && s.attributes['db.system'] === 'postgresql' && /^UPDATE agent_commands$/.test(s.name))).toBe(true);
    // Statements under the mutation and the activities, with placeholders for every value.
    const statements = trace.filter((s) => s.attributes['db.system'] === 'postgresql');
    expect(statements.some((s) => byId.get(s.parentSpanId!)?.name === 'mutation RunTraced')).toBe(true);
    expect(statements.some((s) => byId.get(s.parentSpanId!)?.name.startsWith('RunActivity:'))).toBe(true);
    expect(statements.every((s) => typeof s.attributes['db.query.text'] === 'string')).toBe(true);
    // The whole run is one trace: the first mutation (createDeployment) is another one, and nothing else joined this one.
    expect(receiver.spans.find((s) => s.name === 'mutation CreateTraced')!.traceId).not.toBe(traceId);

    // Never recorded: the API token, the enrollment key, the machine's credential, nor any value a statement was given.
    const exported = receiver.bodies.join('\n');
    for (const secret of [token, enrollKey, enrolled.credential, 'openssl']) expect(exported).not.toContain(secret);
  });
});
