/**
 * The replay of a run's progress (issue 19, "the replay's cost at 100k progress events"): a run with
 * `--events` stored events (LINES events of one job stream line each, as an agent's batches make
 * them, and every 50th a RUN event), then `deploymentRunProgress(runId, after)` over graphql-ws from
 * 0 (the whole history: a console or CLI that subscribes after a run has ended) and from the last
 * 1,000 (a client coming back after a dropped socket): time to the first event and to the last, and
 * events per second. Three runs each, one after the other; per run the time, and the median and
 * spread of the three.
 *
 * The server: a stack of its own (PostgreSQL, Temporal, `fleetpatch server`); the events are written
 * straight into PostgreSQL (what the product writes as a run goes, without running one).
 *
 * Run:  npx tsx bench/runProgressReplay.ts [--events 100000]
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests).
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { AgentClient } from '../src/agent/client.js';
import type { MachineFacts } from '../src/agent/protocol.js';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import { createApiToken } from '../src/db/tokens.js';
import { installInterruptHandler, loadAverages, quantile, runBenchmark, startStack } from './freshness.js';

const say = (line: string) => console.log(line);
const ms = (v: number) => `${Math.round(v)} ms`;

const SUBSCRIPTION = 'subscription($runId: ID!, $after: Int) { deploymentRunProgress(runId: $runId, after: $after) { seq kind run { status } lines { id line } } }';

async function graphql<T>(url: string, token: string, query: string, variables: Record<string, unknown>): Promise<T> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  const body = (await response.json()) as { data?: T; errors?: unknown };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data!;
}

/** Subscribes after `after` and waits for the event numbered `last`: ms to the first event and to the last. */
function replay(wsUrl: string, token: string, runId: string, after: number, last: number): Promise<{ first: number; all: number; received: number }> {
  return new Promise((resolve, reject) => {
    const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    const started = performance.now();
    let first = Number.NaN;
    let received = 0;
    let expected = after + 1;
    const unsubscribe = client.subscribe<{ deploymentRunProgress: { seq: number } }>(
      { query: SUBSCRIPTION, variables: { runId, after } },
      {
        next: (message) => {
          const seq = message.data?.deploymentRunProgress.seq;
          if (seq !== expected) {
            unsubscribe();
            void client.dispose();
            reject(new Error(`expected event ${expected}, got ${JSON.stringify(message)}`));
            return;
          }
          if (Number.isNaN(first)) first = performance.now() - started;
          received += 1;
          expected += 1;
          if (seq === last) {
            const all = performance.now() - started;
            unsubscribe();
            void client.dispose();
            resolve({ first, all, received });
          }
        },
        error: (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))),
        complete: () => undefined,
      },
    );
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { events: { type: 'string', default: '100000' } } });
  const events = Number(values.events);
  installInterruptHandler();
  const load = os.loadavg();
  const stack = await startStack({ label: 'run-progress-replay' });
  try {
    const token = (await createApiToken(stack.database.db, { name: 'bench operator', role: 'OPERATOR' })).secret;
    // A deployment needs a machine to target: one, enrolled through the agent endpoint.
    const { secret: enrollKey } = await createEnrollmentKey(stack.database.db, { description: 'bench', expiresAt: null, maxUses: null, defaultTags: [] });
    const machine: MachineFacts = { hostname: 'replay-01', osType: 'LINUX', osName: 'Debian GNU/Linux 12 (bookworm)', osVersion: '12', kernel: '6.1.0-28-amd64', agentVersion: '0.1.0', bootId: crypto.randomUUID(), packageManager: 'apt', environment: 'ON_PREMISES', warnings: [] };
    const enrolled = await new AgentClient(stack.baseUrl).enroll(enrollKey, machine);
    await new AgentClient(stack.baseUrl, enrolled.credential).checkIn(machine);
    const { createDeployment } = await graphql<{ createDeployment: { id: string } }>(stack.graphqlUrl, token, 'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      input: { name: 'replay bench', osType: 'LINUX', machineIds: [enrolled.machineId], classifications: ['SECURITY'], windowMinutes: 60, onDemandOnly: true },
    });
    const sql = stack.database.sql;
    const [run] = await sql<Array<{ id: string }>>`
      insert into deployment_runs (deployment_id, workflow_id, trigger, status, started_at, ended_at, progress_seq)
      values (${createDeployment.id}, ${`bench-replay-${Date.now()}`}, 'MANUAL', 'SUCCEEDED', now(), now(), ${events}) returning id`;
    const runId = run!.id;
    // One job stream line per LINES event; every 50th event a RUN event.
    await sql`insert into run_logs (run_id, stream, line) select ${runId}, 'stdout', 'Setting up sim-pkg-' || i || ' (1.0-2) ...' from generate_series(1, ${events}) i`;
    const [lines] = await sql<Array<{ first: string }>>`select min(id) as first from run_logs where run_id = ${runId}`;
    const firstLine = lines!.first;
    await sql`
      insert into run_progress_events (run_id, seq, kind, first_line_id, last_line_id)
      select ${runId}, i, case when i % 50 = 0 then 'RUN' else 'LINES' end,
             case when i % 50 = 0 then null else ${firstLine}::bigint + i - 1 end,
             case when i % 50 = 0 then null else ${firstLine}::bigint + i - 1 end
      from generate_series(1, ${events}) i`;
    await sql`analyze run_progress_events`;
    await sql`analyze run_logs`;
    say(`deploymentRunProgress replay of a run with ${events.toLocaleString('en')} stored events (${Math.round((events * 49) / 50).toLocaleString('en')} LINES of one line, the rest RUN), over graphql-ws from ${stack.wsUrl}`);
    for (const [label, after] of [['whole history (after: 0)', 0], ['last 1,000 (after: events - 1000)', Math.max(0, events - 1000)]] as const) {
      const alls: number[] = [];
      for (let i = 1; i <= 3; i++) {
        const r = await replay(stack.wsUrl, token, runId, after, events);
        alls.push(r.all);
        say(`  ${label}, run ${i}: first event ${ms(r.first)}, all ${r.received.toLocaleString('en')} in ${ms(r.all)} (${Math.round(r.received / (r.all / 1000)).toLocaleString('en')} events/s)`);
      }
      say(`  ${label}: median ${ms(quantile(alls, 0.5))} (${ms(Math.min(...alls))}–${ms(Math.max(...alls))})`);
    }
    say(loadAverages(load));
  } finally {
    await stack.stop();
  }
}

await runBenchmark(main);
