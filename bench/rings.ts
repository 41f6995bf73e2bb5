/**
 * Rollouts in rings (issue 16): what a ring that waits costs in Temporal, and a run of N machines in
 * three rings on simulated agents: time per ring and history events per machine, against the 21
 * events per machine of a run without rings (BENCHMARKS.md, bench/dispatch.ts).
 *
 * Each round starts a fresh server side (bench/freshness.ts's startStack: embedded PostgreSQL,
 * headless Temporal dev server, `fleetpatch server`) and `fleetpatch worker` as its own process, then:
 *
 * 1. starts N virtual agents of the fleet simulator (src/simulator: the real agent protocol, installs
 *    that take no time and never fail, --updates pending SECURITY/CRITICAL updates each);
 * 2. creates a deployment over them in three rings: 10 % of the targets (gate: soak --soak-seconds),
 *    40 % of the rest (gate: an operator's approval), then the rest; `runDeploymentNow`;
 * 3. when ring 2 waits for its approval, reads the run workflow's history, waits --idle-seconds, and
 *    reads it again: the events a waiting ring costs (and whether its last workflow task is done);
 * 4. approves ring 2 over GraphQL and waits for the run to end; then reads per ring its start and
 *    end (RunRing.startedAt/endedAt) and from Temporal the parent's history and every child's.
 *
 * Run:  npx tsx bench/rings.ts [--machines 1000] [--rounds 3] [--updates 5] [--soak-seconds 5] [--idle-seconds 30] [--timeout-seconds 600]
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { sleep } from '../src/agent/sleep.js';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import { findRun } from '../src/db/runs.js';
import { createApiToken } from '../src/db/tokens.js';
import { startSimulatedFleet, type SimulatedFleet } from '../src/simulator/fleet.js';
import { DEFAULT_PROFILE } from '../src/simulator/syntheticMachine.js';
import { workflowIds } from '../src/workflows/config.js';
import { benchAbort, checkAborted, cleanupOnce, installInterruptHandler, loadAverages, mapLimit, quantile, runBenchmark, startStack, stopProcess, type Stack } from './freshness.js';

const FLEETPATCH_BIN = fileURLToPath(new URL('../bin/fleetpatch.js', import.meta.url));
const TASK_QUEUE = 'fleetpatch-bench-rings';
const ENDED = /^(SUCCEEDED|PARTIALLY_FAILED|FAILED|CANCELED|HALTED)$/;
const say = (line: string) => console.log(line);

/** `fleetpatch worker` on the stack, polling TASK_QUEUE; resolves once it polls. */
async function startWorker(stack: Stack): Promise<{ child: ChildProcess; stop: () => Promise<void>; output: () => string }> {
  const child = spawn(process.execPath, [FLEETPATCH_BIN, 'worker'], {
    env: { ...process.env, DATABASE_URL: stack.databaseUrl, TEMPORAL_ADDRESS: stack.temporal.address, FLEETPATCH_TASK_QUEUE: TASK_QUEUE, LOG_LEVEL: 'info', LOG_FORMAT: 'json', NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const take = (chunk: Buffer) => void (output = (output + chunk.toString('utf8')).slice(-8000));
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const stop = cleanupOnce(() => stopProcess(child));
  const deadline = Date.now() + 120_000;
  while (!/"msg":"worker polling"/.test(output)) {
    if (benchAbort.signal.aborted || child.exitCode !== null || Date.now() > deadline) {
      await stop();
      checkAborted();
      throw new Error(`fleetpatch worker did not start polling (exit ${child.exitCode}):\n${output}`);
    }
    await sleep(100);
  }
  return { child, stop, output: () => output };
}

interface History {
  events: number;
  /** Its last event completes a workflow task: nothing more happens until a signal, a timer or a child. */
  idle: boolean;
  byType: Map<string, number>;
}

async function history(client: Client, workflowId: string): Promise<History> {
  const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const byType = new Map<string, number>();
  for (const event of events) {
    const key = Object.keys(event).find((k) => k.endsWith('EventAttributes') && (event as Record<string, unknown>)[k] != null) ?? 'unknown';
    const type = key.replace(/EventAttributes$/, '');
    byType.set(type, (byType.get(type) ?? 0) + 1);
  }
  return { events: events.length, idle: Boolean(events.at(-1)?.workflowTaskCompletedEventAttributes), byType };
}

interface RingFigures {
  name: string;
  machines: number;
  status: string;
  startedAt: string | null;
  endedAt: string | null;
}

interface RoundResult {
  n: number;
  error?: string;
  enrollSeconds?: number;
  runSeconds?: number;
  status?: string;
  rings: RingFigures[];
  idle?: { seconds: number; before: number; after: number; idleBefore: boolean; idleAfter: boolean };
  parent?: History;
  childEvents: number[];
  childReadFailures: number;
  duplicates: number;
}

async function round(n: number, options: { updates: number; soakSeconds: number; idleSeconds: number; timeoutSeconds: number }): Promise<RoundResult> {
  const result: RoundResult = { n, rings: [], childEvents: [], childReadFailures: 0, duplicates: 0 };
  say(`\n== ${n} machines in three rings ==`);
  const stack = await startStack({ label: `rings-${n}`, serverEnv: { FLEETPATCH_TASK_QUEUE: TASK_QUEUE } });
  let fleet: SimulatedFleet | undefined;
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  let connection: Connection | undefined;
  const onAbort = () => void fleet?.stop();
  benchAbort.signal.addEventListener('abort', onAbort, { once: true });
  try {
    worker = await startWorker(stack);
    const admin = (await createApiToken(stack.database.db, { name: 'bench admin', role: 'ADMIN' })).secret;
    const { secret: enrollKey } = await createEnrollmentKey(stack.database.db, { description: 'bench rings', expiresAt: null, maxUses: null, defaultTags: [] });
    const graphql = async <T>(query: string, variables: Record<string, unknown> = {}): Promise<T> => {
      const response = await fetch(stack.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(60_000),
      });
      const body = (await response.json()) as { data?: T; errors?: unknown };
      if (body.errors || !body.data) throw new Error(`GraphQL: ${JSON.stringify(body.errors ?? body)}`);
      return body.data;
    };

    const enrollStart = performance.now();
    fleet = await startSimulatedFleet({
      server: stack.baseUrl,
      enrollKey,
      machines: n,
      profile: { ...DEFAULT_PROFILE, updatesPerMachine: options.updates, criticalShare: 0.2, securityShare: 0.8, rebootSuggestedShare: 0, installSeconds: 0, failureRate: 0, rebootSeconds: 1 },
      prefix: `ring-${n}`,
      rampConcurrency: 50,
      seed: 7,
    });
    if (fleet.joinFailures > 0) throw new Error(`${fleet.joinFailures} machine(s) could not join: ${fleet.firstJoinError}`);
    const jobs = new Map<string, number>();
    for (const agent of fleet.agents) agent.onJob = () => void jobs.set(agent.machineId!, (jobs.get(agent.machineId!) ?? 0) + 1);
    result.enrollSeconds = (performance.now() - enrollStart) / 1000;
    say(`  ${n} machines enrolled and assessed in ${result.enrollSeconds.toFixed(1)} s`);
    await sleep(2000 + 4 * n, benchAbort.signal);
    checkAborted();

    const input = {
      name: `rings ${n}`,
      osType: 'LINUX',
      machineIds: fleet.agents.map((a) => a.machineId),
      classifications: ['CRITICAL', 'SECURITY'],
      windowMinutes: 60,
      rebootSetting: 'NEVER',
      onDemandOnly: true,
      rings: [
        { name: 'canary', percent: 10, gate: { soakSeconds: options.soakSeconds } },
        { name: 'early', percent: 40, gate: { requireApproval: true } },
        { name: 'rest', percent: 100 },
      ],
    };
    const { createDeployment } = await graphql<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input });
    connection = await Connection.connect({ address: stack.temporal.address });
    const temporal = new Client({ connection, namespace: 'default' });
    const t0 = Date.now();
    const runId = (await graphql<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id })).runDeploymentNow.id;
    type View = { deploymentRun: { status: string; rings: Array<{ name: string; status: string; machineCount: number; startedAt: string | null; endedAt: string | null }> } };
    const look = async () => (await graphql<View>('query($id: ID!) { deploymentRun(id: $id) { status rings { name status machineCount startedAt endedAt } } }', { id: runId })).deploymentRun;
    const until = async (done: (v: View['deploymentRun']) => boolean, what: string) => {
      for (;;) {
        checkAborted();
        const view = await look().catch(() => undefined);
        if (view && done(view)) return view;
        if (view && ENDED.test(view.status)) throw new Error(`the run ended ${view.status} before ${what}`);
        if (Date.now() - t0 > options.timeoutSeconds * 1000) throw new Error(`timed out waiting for ${what}`);
        await sleep(250, benchAbort.signal);
      }
    };

    await until((v) => v.rings[1]?.status === 'WAITING_FOR_APPROVAL', 'ring 2 to wait for approval');
    const workflowId = (await findRun(stack.database.db, runId))!.workflowId;
    // The wait's cost: the history once its last workflow task is done, then again after idleSeconds.
    let before = await history(temporal, workflowId);
    while (!before.idle) {
      await sleep(200, benchAbort.signal);
      before = await history(temporal, workflowId);
    }
    say(`  ring 2 waits for approval at ${((Date.now() - t0) / 1000).toFixed(1)} s; history ${before.events} events; idle for ${options.idleSeconds} s`);
    await sleep(options.idleSeconds * 1000, benchAbort.signal);
    const after = await history(temporal, workflowId);
    result.idle = { seconds: options.idleSeconds, before: before.events, after: after.events, idleBefore: before.idle, idleAfter: after.idle };

    await graphql('mutation($runId: ID!) { approveRing(runId: $runId, ring: 2) { id } }', { runId });
    const ended = await until((v) => ENDED.test(v.status), 'the run to end');
    result.runSeconds = (Date.now() - t0) / 1000;
    result.status = ended.status;
    result.rings = ended.rings.map((r) => ({ name: r.name, machines: r.machineCount, status: r.status, startedAt: r.startedAt, endedAt: r.endedAt }));
    result.parent = await history(temporal, workflowId);
    const children = await mapLimit(fleet.agents, 16, (a) => history(temporal, workflowIds.machineRun(runId, a.machineId!)).catch(() => undefined));
    result.childEvents = children.filter((c): c is History => c !== undefined).map((c) => c.events);
    result.childReadFailures = children.length - result.childEvents.length;
    result.duplicates = [...jobs.values()].filter((count) => count > 1).length;
    say(`  run ${ended.status} after ${result.runSeconds.toFixed(1)} s`);
  } catch (error) {
    result.error = (error as Error).message;
    say(`  FAILED: ${result.error}\n  worker output: ${worker?.output().slice(-1500) ?? ''}`);
  } finally {
    benchAbort.signal.removeEventListener('abort', onAbort);
    await fleet?.stop();
    await connection?.close();
    await worker?.stop();
    await stack.stop();
  }
  return result;
}

const mean = (values: number[]) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : Number.NaN);
const seconds = (from: string | null, to: string | null) => (from && to ? (Date.parse(to) - Date.parse(from)) / 1000 : Number.NaN);

function report(results: RoundResult[]): void {
  say('\n=== per round ===');
  for (const [i, r] of results.entries()) {
    if (r.error) {
      say(`round ${i + 1}: ERROR ${r.error}`);
      continue;
    }
    const rings = r.rings.map((g, k) => {
      const next = r.rings[k + 1];
      const gate = next ? ` then gate ${seconds(g.endedAt, next.startedAt).toFixed(1)} s` : '';
      return `${g.name} ${g.machines} machines ${seconds(g.startedAt, g.endedAt).toFixed(1)} s${gate}`;
    });
    const parentPerMachine = r.parent!.events / r.n;
    say(
      `round ${i + 1}: ${r.status} in ${r.runSeconds!.toFixed(1)} s (approval given after the idle wait); ${rings.join('; ')}; ` +
        `waiting ring: ${r.idle!.after - r.idle!.before} events in ${r.idle!.seconds} s (history ${r.idle!.before} → ${r.idle!.after}, idle ${r.idle!.idleBefore}/${r.idle!.idleAfter}); ` +
        `parent ${r.parent!.events} events (${parentPerMachine.toFixed(2)}/machine), children mean ${mean(r.childEvents).toFixed(1)} (${r.childEvents.length} read${r.childReadFailures ? `, ${r.childReadFailures} failed` : ''}), ` +
        `events per machine ${(parentPerMachine + mean(r.childEvents)).toFixed(2)}; machines given a job twice: ${r.duplicates}`,
    );
    say(`  parent events by type: ${[...r.parent!.byType].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  const ok = results.filter((r) => !r.error);
  if (ok.length === 0) return;
  const summary = (label: string, values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    say(`${label}: median ${quantile(sorted, 0.5).toFixed(2)}, min ${sorted[0]!.toFixed(2)}, max ${sorted.at(-1)!.toFixed(2)} (${sorted.map((v) => v.toFixed(2)).join(', ')})`);
  };
  say('\n=== over the rounds ===');
  for (let k = 0; k < 3; k++) {
    summary(`ring ${k + 1} (${ok[0]!.rings[k]?.machines} machines), start → end, s`, ok.map((r) => seconds(r.rings[k]!.startedAt, r.rings[k]!.endedAt)));
  }
  summary('events in the idle wait', ok.map((r) => r.idle!.after - r.idle!.before));
  summary('parent events per machine', ok.map((r) => r.parent!.events / r.n));
  summary('events per machine (parent share + child)', ok.map((r) => r.parent!.events / r.n + mean(r.childEvents)));
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      machines: { type: 'string', default: '1000' },
      rounds: { type: 'string', default: '3' },
      updates: { type: 'string', default: '5' },
      'soak-seconds': { type: 'string', default: '5' },
      'idle-seconds': { type: 'string', default: '30' },
      'timeout-seconds': { type: 'string', default: '600' },
    },
  });
  const n = Number(values.machines);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(n) || n < 3) throw new Error(`--machines: a whole number of at least 3; got ${values.machines}`);
  const options = { updates: Number(values.updates), soakSeconds: Number(values['soak-seconds']), idleSeconds: Number(values['idle-seconds']), timeoutSeconds: Number(values['timeout-seconds']) };
  const loadAtStart = os.loadavg();
  say(`rings benchmark: ${n} machines in three rings (10 %, 40 % of the rest, the rest), ${rounds} round(s), soak ${options.soakSeconds} s, idle wait ${options.idleSeconds} s; ${new Date().toISOString()}`);
  installInterruptHandler();
  const results: RoundResult[] = [];
  for (let i = 0; i < rounds && !benchAbort.signal.aborted; i++) results.push(await round(n, options));
  if (benchAbort.signal.aborted) return 130;
  report(results);
  say(`\n${loadAverages(loadAtStart)}`);
  return results.some((r) => r.error) ? 1 : 0;
}

await runBenchmark(main);
