import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import { startSimulatedFleet, type SimulatedFleet } from '../../src/simulator/fleet.js';
import type { TemporalSettings } from '../../src/temporal/connection.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startRunStack, type RunStack, waitUntil } from '../support/env.js';
import { enrollMachine } from '../support/machines.js';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One sample's value from Prometheus text, by metric name and exact label set ('' for none). */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** What an operator's Prometheus scrapes from the API and from the worker. */
describe('metrics in Prometheus format', () => {
  let stack: RunStack;
  let settings: TemporalSettings;
  let api: ApiServer;
  let base: string;
  let token: string;
  let enrollKey: string;
  let workerMetrics: string;
  let fleet: SimulatedFleet | undefined;

  beforeAll(async () => {
    const port = await freePort();
    workerMetrics = `http://127.0.0.1:${port}/metrics`;
    stack = await startRunStack({ worker: { metricsAddress: `127.0.0.1:${port}` } });
    ({ settings, api, base } = stack);
    token = await stack.token('OPERATOR');
    enrollKey = await stack.enrollmentKey('metrics');
  });

  afterAll(async () => {
    await fleet?.stop();
    await stack?.close();
  });

  const scrape = async (url = `${base}/metrics`) => {
    const response = await fetch(url);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    return response.text();
  };

  it('counts agent check-ins, reports ingested and the long-polls open right now', async () => {
    const { agent } = await enrollMachine(base, enrollKey, { facts: { hostname: 'metrics-01' } });
    await agent.checkIn(machineFacts({ hostname: 'metrics-01' }));
    await agent.checkIn(machineFacts({ hostname: 'metrics-01' }));
    const report = assessmentReport([pendingUpdate({ name: 'openssl', classification: 'SECURITY' })]);
    await agent.sendReport(report);
    await agent.sendReport(report); // resent after a lost answer: stored once
    const polling = new AbortController();
    const poll = agent.commands(30, polling.signal).catch(() => undefined);
    await waitUntil(scrape, (text) => sample(text, 'fleetpatch_agent_long_polls_open') === 1, 5000, 'the long-poll to count as open');
    polling.abort();
    await poll;
    const text = await waitUntil(scrape, (t) => sample(t, 'fleetpatch_agent_long_polls_open') === 0, 5000, 'the closed long-poll to be gone');
    expect(sample(text, 'fleetpatch_agent_checkins_total')).toBe(2);
    expect(sample(text, 'fleetpatch_assessment_reports_ingested_total')).toBe(1);
    expect(sample(text, 'fleetpatch_agent_requests_total', 'route="POST /agent/v1/assessments",status="200"')).toBe(1);
    expect(sample(text, 'fleetpatch_agent_requests_total', 'route="POST /agent/v1/enroll",status="201"')).toBe(1);
    expect(sample(text, 'fleetpatch_agent_requests_total', 'route="GET /agent/v1/commands",status="aborted"')).toBe(1);
    // Node's own figures of the API process.
    expect(sample(text, 'fleetpatch_api_process_resident_memory_bytes')).toBeGreaterThan(10_000_000);
  });

  it('counts GraphQL operations by the names the server knows, and their errors by the code the client got', async () => {
    await graphql(api.url, 'query Computers { machines(first: 5) { totalCount } }', { token });
    await graphql(api.url, 'query Computers { machines(first: 5) { totalCount } }', { token });
    await graphql(api.url, 'mutation badDeployment { createDeployment(input: {name: "too short", osType: LINUX, machineIds: [], classifications: [SECURITY], windowMinutes: 5}) { id } }', { token });
    // A malformed id: BAD_USER_INPUT for the client (formatError), and so in the metrics.
    await graphql(api.url, 'query Machine { machine(id: "../etc/passwd") { name } }', { token });
    // Names the server does not know, long and all different: one label, `other`, however many.
    for (let i = 0; i < 45; i++) await graphql(api.url, `query n${i}${'x'.repeat(20_000)} { __typename }`);
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text.length).toBeLessThan(200_000);
    expect(sample(text, 'fleetpatch_graphql_operations_total', 'operation="Computers",type="query"')).toBe(2);
    expect(sample(text, 'fleetpatch_graphql_operations_total', 'operation="other",type="mutation"')).toBe(1);
    expect(sample(text, 'fleetpatch_graphql_operations_total', 'operation="other",type="query"')).toBe(45);
    expect(sample(text, 'fleetpatch_graphql_errors_total', 'operation="other",code="BAD_USER_INPUT"')).toBe(1);
    expect(sample(text, 'fleetpatch_graphql_errors_total', 'operation="Machine",code="BAD_USER_INPUT"')).toBe(1);
    expect(text).not.toContain('code="INTERNAL"');
    expect(sample(text, 'fleetpatch_graphql_operation_duration_seconds_count', 'operation="Computers"')).toBe(2);
  });

  it('shows runs by status on the API, and the Temporal SDK metrics on the worker', async () => {
    fleet = await startSimulatedFleet({
      server: base,
      enrollKey,
      machines: 2,
      profile: { updatesPerMachine: 3, criticalShare: 0.5, securityShare: 0.5, rebootSuggestedShare: 0, installSeconds: 0, failureRate: 0, rebootSeconds: 0 },
      prefix: 'metrics-sim',
      rampConcurrency: 2,
      seed: 3,
    });
    const send = async <T>(q: string, variables: Record<string, unknown>) => (await graphql<T>(api.url, q, { token, variables })).data!;
    const { createDeployment } = await send<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      input: { name: 'metrics run', osType: 'LINUX', machineIds: fleet.agents.map((a) => a.machineId), classifications: ['CRITICAL', 'SECURITY'], windowMinutes: 30, rebootSetting: 'NEVER' },
    });
    await send('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    await waitUntil(scrape, (text) => sample(text, 'fleetpatch_deployment_runs', 'status="SUCCEEDED"') === 1, 60_000, 'the run to show as SUCCEEDED');

    // One workflow completes on this worker: the run, just after it stores its status (a batched run has no workflow per machine).
    const completed = (t: string) =>
      t.split('\n').filter((l) => l.startsWith('temporal_workflow_completed_total{') && l.includes(`task_queue="${settings.taskQueue}"`)).reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    const text = await waitUntil(() => scrape(workerMetrics), (t) => completed(t) === 1, 10_000, 'the completed run workflow in the worker metrics');
    expect(text).toMatch(/^temporal_activity_execution_latency_bucket\{activity_type="beginBatchedRun",.*le="0.5"\}/m);
  });
});
