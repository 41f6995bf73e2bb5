/**
 * Idle load: N agents at rest (issues 7 and 18). Each virtual agent (src/simulator, the agent's real
 * protocol client) enrolls, reports its first assessment, then checks in and long-polls for commands
 * like a real agent with nothing to do. Measured on the `fleetpatch server` processes: resident
 * memory (VmRSS), CPU and the long-polls they hold open (their own /metrics gauge) while the fleet
 * is at rest; PostgreSQL's CPU (the postmaster and its backends) and its transactions
 * (pg_stat_database; outside an explicit transaction each statement is one); and, after the window,
 * each API's heap once garbage is collected (testkit/heapProbe.mjs): what the agents really hold.
 *
 * Run:  npx tsx bench/idleAgents.ts [--machines 10000] [--seconds 60] [--profile DIR]
 *       npx tsx bench/idleAgents.ts --machines 50000 --apis 4 --simulators 8 [--seconds 60]
 * With --simulators S the agents run in S `fleetpatch simulate` processes (a process may open 20,000
 * files here, and an agent holds up to two connections: about 9,000 agents per process at most),
 * simulator i on API i mod A (--apis A: one API process per endpoint, as agents split over DNS
 * names or a balancer each would), each with an enrollment key of its own (as a fleet enrolled by
 * site would). Without it they run in this process, on the one API.
 * --api-node-options "..." : Node options of the API processes only (a V8 heap setting, e.g.
 * "--max-old-space-size=256"), not of this process or the simulators.
 * --profile DIR (one API): a CPU profile of the API over the window at rest and a heap snapshot at
 * its end, written to DIR (open them in Chrome DevTools).
 * --checkin-seconds N: the APIs' FLEETPATCH_CHECKIN_SECONDS (default theirs, 60). Agents take the
 * interval from the server's answers (enrollment and check-in), as real agents do.
 * --long-poll-seconds N: the APIs' FLEETPATCH_LONG_POLL_SECONDS (default theirs, 25; at most 60):
 * how long an agent's command poll stays open, so how often an idle agent asks again.
 * --pg-stats: PostgreSQL with pg_stat_statements; the statements every 30 s of the ramp-up (the
 * busiest by time, with their calls and mean time) and those of the window at rest (top-level
 * statements per agent per minute); every 30 s of the ramp-up also EXPLAIN (ANALYZE, BUFFERS) of
 * the check-in statement and what pg_stat_user_tables says of machines and agent_commands, and
 * every second which table an autovacuum worker is on.
 * --pg-setting NAME=VALUE (repeatable): a PostgreSQL server setting for the whole run, e.g.
 * plan_cache_mode=force_custom_plan. With --pg-stats, libraries given in shared_preload_libraries
 * are loaded besides pg_stat_statements.
 * --analyze-at SECONDS (repeatable): an ANALYZE of the database that many seconds into the ramp-up.
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sleep } from '../src/agent/sleep.js';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import { CHECK_IN_SQL } from '../src/db/machines.js';
import { openFilesWarning, startSimulatedFleet } from '../src/simulator/fleet.js';
import { DEFAULT_PROFILE } from '../src/simulator/syntheticMachine.js';
import { checkAborted, cleanupOnce, CLOCK_TICKS, installInterruptHandler, keepOutput, loadAverages, processCpuSeconds, runBenchmark, startApi, startStack, stopProcess, type Api, type Stack } from './freshness.js';

const FLEETPATCH_BIN = fileURLToPath(new URL('../bin/fleetpatch.js', import.meta.url));
const HEAP_PROBE = new URL('../testkit/heapProbe.mjs', import.meta.url).href;
const UPDATES_PER_MACHINE = 20;

const say = (line: string) => console.log(line);
const MiB = 1024 * 1024;

/** Resident memory of a process, from /proc (bytes). */
function residentBytes(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (!kib) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib) * 1024;
}

async function metricsText(baseUrl: string): Promise<string> {
  return fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(30_000) }).then((r) => r.text());
}

function sample(text: string, name: string): number {
  const value = new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1];
  if (value === undefined) throw new Error(`the API /metrics has no ${name}`);
  return Number(value);
}

async function longPollsOpen(baseUrl: string): Promise<number> {
  return sample(await metricsText(baseUrl), 'fleetpatch_agent_long_polls_open');
}

/** Requests the agent endpoint has answered so far (every route and status), and check-ins, from the API's /metrics. */
async function agentRequestsServed(baseUrl: string): Promise<{ requests: number; checkIns: number }> {
  const text = await metricsText(baseUrl);
  let requests = 0;
  for (const match of text.matchAll(/^fleetpatch_agent_requests_total\{[^}]*\} (\S+)$/gm)) requests += Number(match[1]);
  return { requests, checkIns: sample(text, 'fleetpatch_agent_checkins_total') };
}

/** The API's V8 heap in use and its memory outside the heap (buffers), from its /metrics. */
async function apiHeap(baseUrl: string): Promise<{ used: number; total: number; external: number }> {
  const text = await metricsText(baseUrl);
  return { used: sample(text, 'fleetpatch_api_nodejs_heap_size_used_bytes'), total: sample(text, 'fleetpatch_api_nodejs_heap_size_total_bytes'), external: sample(text, 'fleetpatch_api_nodejs_external_memory_bytes') };
}

/** The API's heap after a full collection (the heap probe's next line), in bytes. */
async function liveHeap(api: Api, seq: number): Promise<number> {
  process.kill(api.pid, 'SIGUSR2');
  const by = Date.now() + 60_000;
  const pattern = new RegExp(`heap-probe (\\{"seq":${seq},[^\\n]*\\})`);
  for (;;) {
    const match = pattern.exec(api.output());
    if (match) return (JSON.parse(match[1]!) as { heapUsed: number }).heapUsed;
    if (Date.now() > by) throw new Error(`API ${api.pid}: no heap probe ${seq} within 60 s`);
    await sleep(200);
  }
}

/** CPU seconds of PostgreSQL so far: the postmaster, its backends and workers, and those that have exited. */
function postgresCpuSeconds(postmaster: number): number {
  let sum = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    // Field 4 is the parent pid; utime, stime, cutime, cstime are fields 14 to 17.
    const pid = Number(entry);
    if (pid === postmaster) sum += (fields[11]! + fields[12]! + fields[13]! + fields[14]!) / CLOCK_TICKS;
    else if (fields[1] === postmaster) sum += (fields[11]! + fields[12]!) / CLOCK_TICKS;
  }
  return sum;
}

/** The agents: in this process, or in `fleetpatch simulate` processes. */
interface Agents {
  /** Processes that run them (this one, or the simulators). */
  pids: number[];
  /** Stops them; their request errors (ramp-up included: agents retry them) and the last one. */
  stop(): Promise<{ errors: number; lastError?: string }>;
}

async function inProcessAgents(api: Api, key: string, n: number): Promise<Agents> {
  const rampStart = performance.now();
  const fleet = await startSimulatedFleet({
    server: api.baseUrl,
    enrollKey: key,
    machines: n,
    profile: { ...DEFAULT_PROFILE, updatesPerMachine: UPDATES_PER_MACHINE },
    prefix: 'idle',
    rampConcurrency: 50,
    seed: 1,
    progressMs: 5000,
    onProgress: (joined, total, failed) => say(`  ${joined} / ${total} joined${failed ? `, ${failed} failed` : ''} (${((performance.now() - rampStart) / 1000).toFixed(0)} s)`),
  });
  if (fleet.joinFailures > 0) {
    await fleet.stop();
    throw new Error(`${fleet.joinFailures} machines could not join: ${fleet.firstJoinError}`);
  }
  return {
    pids: [process.pid],
    async stop() {
      const { errors, lastError } = fleet.totals();
      await fleet.stop();
      return { errors, lastError };
    },
  };
}

/** Waits until every simulator says its fleet is up; throws when one exits or some machines could not join. */
async function simulatorsUp(sims: ReadonlyArray<{ child: ChildProcess; output: () => string }>, n: number, rampStart: number): Promise<void> {
  const count = sims.length;
  for (;;) {
    checkAborted();
    const up = sims.filter((s) => /simulate: fleet up/.test(s.output())).length;
    const gone = sims.find((s) => s.child.exitCode !== null);
    if (gone) throw new Error(`a simulator exited:\n${gone.output()}`);
    const joined = sims.reduce((sum, s) => sum + Number([...s.output().matchAll(/simulate: (\d+)\/\d+ machines enrolled/g)].at(-1)?.[1] ?? 0), 0);
    say(`  ${joined} / ${n} joined, ${up} of ${count} simulators up (${((performance.now() - rampStart) / 1000).toFixed(0)} s)`);
    if (up === count) break;
    await sleep(10_000);
  }
  const refused = sims.map((s) => /simulate: (\d+) machine\(s\) could not join; first reason: (.*)/.exec(s.output())).find(Boolean);
  if (refused) throw new Error(`${refused[1]} machines could not join: ${refused[2]}`);
}

async function simulatorProcesses(stack: Stack, apis: Api[], n: number, count: number): Promise<Agents> {
  const sims: Array<{ child: ChildProcess; output: () => string; stop: () => Promise<void> }> = [];
  for (let i = 0; i < count; i++) {
    const machines = Math.floor(n / count) + (i < n % count ? 1 : 0);
    const files = openFilesWarning(machines);
    if (files) say(`  warning (simulator ${i}): ${files}`);
    const { secret } = await createEnrollmentKey(stack.database.db, { description: `bench idle agents ${i}`, expiresAt: null, maxUses: null, defaultTags: [] });
    const args = ['simulate', '--server', apis[i % apis.length]!.baseUrl, '--enroll-key', secret, '--machines', String(machines), '--updates', String(UPDATES_PER_MACHINE), '--prefix', `idle${i}`, '--seed', String(i + 1), '--ramp', '50'];
    const child = spawn(process.execPath, [FLEETPATCH_BIN, ...args], { env: { ...process.env, NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'pipe'] });
    sims.push({ child, output: keepOutput(child), stop: cleanupOnce(() => stopProcess(child, 120_000)) });
  }
  const rampStart = performance.now();
  try {
    await simulatorsUp(sims, n, rampStart);
  } catch (error) {
    // Stopped here: the caller has no Agents to stop yet, and they would outlive the benchmark.
    await Promise.all(sims.map((s) => s.stop()));
    throw error;
  }
  return {
    pids: sims.map((s) => s.child.pid!),
    async stop() {
      await Promise.all(sims.map((s) => s.stop()));
      let errors = 0;
      let lastError: string | undefined;
      for (const s of sims) {
        const status = [...s.output().matchAll(/simulate: check-ins \d+, .*errors (\d+)(?: \(last: (.*)\))?$/gm)].at(-1);
        if (!status) throw new Error(`a simulator printed no totals:\n${s.output().slice(-2000)}`);
        errors += Number(status[1]);
        lastError = status[2] ?? lastError;
      }
      return { errors, lastError };
    },
  };
}

/** Per statement (pg_stat_statements' queryid, top level and nested apart): calls and execution time so far. */
type StatementTotals = Map<string, { calls: number; ms: number; toplevel: boolean; query: string }>;

interface StatementCounter {
  read(): Promise<StatementTotals>;
}

async function statementCounter(stack: Stack): Promise<StatementCounter> {
  await stack.database.sql`create extension if not exists pg_stat_statements`;
  return {
    async read() {
      const rows = await stack.database.sql<Array<{ key: string; calls: string; ms: number; toplevel: boolean; query: string }>>`
        select queryid::text || ':' || toplevel::text as key, calls::text as calls, total_exec_time::float8 as ms, toplevel,
          left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 90) as query
        from pg_stat_statements where dbid = (select oid from pg_database where datname = current_database()) and query not like '%pg_stat_%'`;
      return new Map(rows.map((r) => [r.key, { calls: Number(r.calls), ms: r.ms, toplevel: r.toplevel, query: r.query }]));
    },
  };
}

function statementDelta(before: StatementTotals, after: StatementTotals): { topLevelCalls: number; rows: Array<{ calls: number; ms: number; toplevel: boolean; query: string }> } {
  const rows = [...after].map(([key, a]) => {
    const b = before.get(key);
    return { ...a, calls: a.calls - (b?.calls ?? 0), ms: a.ms - (b?.ms ?? 0) };
  });
  return { topLevelCalls: rows.filter((r) => r.toplevel).reduce((sum, r) => sum + r.calls, 0), rows: rows.filter((r) => r.calls > 0).sort((x, y) => y.ms - x.ms) };
}

function statementLines(delta: ReturnType<typeof statementDelta>, seconds: number, top: number): string[] {
  return delta.rows.slice(0, top).map((r) => `${(r.calls / seconds).toFixed(1)} calls/s, mean ${(r.ms / Math.max(1, r.calls)).toFixed(3)} ms, ${((r.ms / seconds / 10)).toFixed(1)} % of a backend's time${r.toplevel ? '' : ' (nested)'}: ${r.query}`);
}

/**
 * The check-in statement's plan as it runs now, for one enrolled machine: EXPLAIN (ANALYZE, BUFFERS)
 * of the statement the API prepares, with a refresh time that makes it write the row (as an agent's
 * first check-in does), in a transaction rolled back. Planned for these parameters (a custom plan):
 * the generic plan is not the dip's cause (BENCHMARKS.md).
 */
async function explainCheckIn(stack: Stack): Promise<string[] | undefined> {
  const [m] = await stack.database.sql<Array<Record<string, unknown>>>`
    select credential_hash, os_type::text, name, os_name, os_version, kernel, environment::text, agent_version, boot_id, package_manager, warnings, agent_capabilities
    from machines where credential_hash is not null and removed_at is null order by random() limit 1`;
  if (!m) return undefined;
  const now = new Date().toISOString();
  const params = [m.credential_hash, m.os_type, m.name, m.os_name, m.os_version, m.kernel, m.environment, m.agent_version, m.boot_id, m.package_manager, m.warnings, m.agent_capabilities, now, now, null];
  let plan: string[] = [];
  const rolledBack = new Error('rolled back');
  await stack.database.sql
    .begin(async (tx) => {
      const rows = await tx.unsafe<Array<{ 'QUERY PLAN': string }>>(`explain (analyze, buffers) ${CHECK_IN_SQL}`, params as never[]);
      plan = rows.map((r) => r['QUERY PLAN']);
      throw rolledBack;
    })
    .catch((error: unknown) => {
      if (error !== rolledBack) throw error;
    });
  return plan;
}

/** Every 30 s of the ramp-up: PostgreSQL's transactions and its busiest statements over the 30 s before. */
function sampleRamp(stack: Stack, statements: StatementCounter, xacts: () => Promise<number>, rampStart: number): { stop(): Promise<void> } {
  let stopped = false;
  // Rows of machines written (a check-in writes only when a fact changed or last-seen is old), HOT or not.
  const machineWrites = async () => {
    const [row] = await stack.database.sql<Array<{ updates: string; hot: string }>>`select n_tup_upd::text as updates, n_tup_hot_upd::text as hot from pg_stat_user_tables where relname = 'machines'`;
    return { updates: Number(row?.updates ?? 0), hot: Number(row?.hot ?? 0) };
  };
  // What autovacuum and the statistics say of the tables a check-in reads and writes: when their
  // first ANALYZE or VACUUM came, and how many row versions it had to consider.
  const tableStats = async () =>
    stack.database.sql<Array<{ relname: string; live: string; dead: string; modified: string; analyzes: string; autoanalyzes: string; vacuums: string; reltuples: number; relpages: number; analyzed: string | null; vacuumed: string | null }>>`
      select s.relname, s.n_live_tup::text as live, s.n_dead_tup::text as dead, s.n_mod_since_analyze::text as modified,
        to_char(greatest(s.last_analyze, s.last_autoanalyze) at time zone 'UTC', 'HH24:MI:SS') as analyzed, to_char(greatest(s.last_vacuum, s.last_autovacuum) at time zone 'UTC', 'HH24:MI:SS') as vacuumed,
        (s.analyze_count + s.autoanalyze_count)::text as analyzes, s.autoanalyze_count::text as autoanalyzes, (s.vacuum_count + s.autovacuum_count)::text as vacuums,
        c.reltuples::float8 as reltuples, c.relpages as relpages
      from pg_stat_user_tables s join pg_class c on c.oid = s.relid where s.relname in ('machines', 'agent_commands') order by 1`;
  // Every second: what the backends running a check-in wait for (none: on a CPU, or waiting for one),
  // and each autovacuum worker's table and phase, printed when it changes.
  const waits = new Map<string, number>();
  let waitSamples = 0;
  let autovacuumSeen = '';
  const waitLoop = (async () => {
    while (!stopped) {
      const rows = await stack.database.sql<Array<{ wait: string; n: number }>>`
        select coalesce(wait_event_type || ':' || wait_event, 'running') as wait, count(*)::int as n
        from pg_stat_activity where state = 'active' and query like ${CHECK_IN_SQL.slice(0, 30) + '%'} group by 1`;
      waitSamples++;
      for (const r of rows) waits.set(r.wait, (waits.get(r.wait) ?? 0) + r.n);
      const workers = await stack.database.sql<Array<{ query: string }>>`
        select regexp_replace(query, '^autovacuum: ', '') as query from pg_stat_activity where backend_type = 'autovacuum worker' and query <> '' order by 1`;
      const now = workers.map((w) => w.query).join('; ');
      if (now !== autovacuumSeen) {
        say(`    autovacuum at ${((performance.now() - rampStart) / 1000).toFixed(0)} s: ${now || 'none running'}`);
        autovacuumSeen = now;
      }
      await sleep(1000);
    }
  })();
  const loop = (async () => {
    let before = await statements.read();
    let xactsBefore = await xacts();
    let writesBefore = await machineWrites();
    let at = performance.now();
    while (!stopped) {
      while (!stopped && performance.now() - at < 30_000) await sleep(250);
      const now = performance.now();
      const after = await statements.read();
      const xactsAfter = await xacts();
      const writesAfter = await machineWrites();
      const seconds = (now - at) / 1000;
      const delta = statementDelta(before, after);
      const updates = writesAfter.updates - writesBefore.updates;
      say(
        `  pg at ${((now - rampStart) / 1000).toFixed(0)} s (${new Date().toISOString().slice(11, 19)} UTC): ${((xactsAfter - xactsBefore) / seconds).toFixed(0)} transactions/s, ${(delta.topLevelCalls / seconds).toFixed(0)} top-level statements/s, ` +
          `machine rows updated ${(updates / seconds).toFixed(0)}/s (${updates ? Math.round((100 * (writesAfter.hot - writesBefore.hot)) / updates) : 0} % HOT); busiest over the last ${seconds.toFixed(0)} s:`,
      );
      for (const line of statementLines(delta, seconds, 5)) say(`    ${line}`);
      for (const line of (await explainCheckIn(stack)) ?? []) say(`    | ${line}`);
      for (const t of await tableStats()) {
        say(`    ${t.relname}: ${t.live} live, ${t.dead} dead, ${t.modified} modified since analyze, ${t.analyzes} analyzes (${t.autoanalyzes} by autovacuum; last ${t.analyzed ?? 'never'} UTC), ${t.vacuums} vacuums (last ${t.vacuumed ?? 'never'} UTC); planner's pg_class ${t.reltuples} tuples, ${t.relpages} pages`);
      }
      const waiting = [...waits].sort((a, b) => b[1] - a[1]).map(([wait, n]) => `${wait} ${(n / Math.max(1, waitSamples)).toFixed(2)}`);
      say(`    check-ins in progress (mean of ${waitSamples} samples, by what they wait for): ${waiting.join(', ') || 'none'}`);
      waits.clear();
      waitSamples = 0;
      [before, xactsBefore, writesBefore, at] = [after, xactsAfter, writesAfter, now];
    }
  })();
  // Handled from the start: a sampler that fails (its connection closed by an interrupt) must not end the process.
  const settled = Promise.all([loop, waitLoop]).catch((error: unknown) => {
    stopped = true;
    say(`  (the ramp's statement sampler failed: ${(error as Error).message})`);
  });
  return {
    async stop() {
      stopped = true;
      await settled;
    },
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      machines: { type: 'string', default: '10000' },
      seconds: { type: 'string', default: '60' },
      apis: { type: 'string', default: '1' },
      simulators: { type: 'string', default: '0' },
      profile: { type: 'string' },
      'api-node-options': { type: 'string', default: '' },
      'checkin-seconds': { type: 'string' },
      'long-poll-seconds': { type: 'string' },
      'pg-stats': { type: 'boolean', default: false },
      'pg-setting': { type: 'string', multiple: true, default: [] },
      'analyze-at': { type: 'string', multiple: true, default: [] },
    },
  });
  const n = Number(values.machines);
  const seconds = Number(values.seconds);
  const apiCount = Number(values.apis);
  const simulatorCount = Number(values.simulators);
  const checkInSeconds = values['checkin-seconds'] === undefined ? undefined : Number(values['checkin-seconds']);
  if (checkInSeconds !== undefined && !(checkInSeconds > 0)) throw new Error('--checkin-seconds takes a positive number');
  const longPollSeconds = values['long-poll-seconds'] === undefined ? undefined : Number(values['long-poll-seconds']);
  if (longPollSeconds !== undefined && !(longPollSeconds > 0 && longPollSeconds <= 60)) throw new Error('--long-poll-seconds takes a number from 1 to 60');
  const pgSettings: Record<string, string> = {};
  for (const setting of values['pg-setting']) {
    const [name, value] = setting.split(/=(.*)/s);
    if (!name || value === undefined) throw new Error(`--pg-setting takes NAME=VALUE, not ${setting}`);
    pgSettings[name] = value;
  }
  if (values['pg-stats']) {
    const preload = [pgSettings.shared_preload_libraries, 'pg_stat_statements'].filter(Boolean).join(',');
    Object.assign(pgSettings, { shared_preload_libraries: preload, 'pg_stat_statements.max': '10000' });
  }
  const analyzeAt = values['analyze-at'].map(Number);
  if (analyzeAt.some((at) => !(at >= 0))) throw new Error('--analyze-at takes seconds into the ramp-up');
  if (apiCount > 1 && simulatorCount < apiCount) throw new Error('--apis above 1 needs at least as many --simulators (the agents of one simulator go to one API)');
  const loadAtStart = os.loadavg();
  installInterruptHandler();
  say(
    `idle agents benchmark: ${n} virtual agents at rest on ${apiCount} API process(es), ${simulatorCount ? `in ${simulatorCount} simulator processes` : 'in this process'}, measured for ${seconds} s` +
      (values['api-node-options'] ? `; API Node options: ${values['api-node-options']}` : '') +
      `; check-ins every ${checkInSeconds ?? 'default (60)'} s, long-polls of ${longPollSeconds ?? 'default (25)'} s` +
      (Object.keys(pgSettings).length ? `; PostgreSQL ${Object.entries(pgSettings).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''),
  );
  if (!simulatorCount) {
    const files = openFilesWarning(n);
    if (files) say(`  warning: ${files}`);
  }
  const profileDir = values.profile ? path.resolve(values.profile) : undefined;
  const preload = fileURLToPath(new URL('./profileOnSignal.mjs', import.meta.url));
  // Both preloads answer SIGUSR2: with a profile, its heap snapshot stands for the heap probe.
  const nodeOptions = [process.env.NODE_OPTIONS ?? '', values['api-node-options'], profileDir ? `--import=${preload}` : `--import=${HEAP_PROBE}`].join(' ').trim();
  const apiEnv = {
    NODE_OPTIONS: nodeOptions,
    ...(profileDir ? { FLEETPATCH_PROFILE_DIR: profileDir } : {}),
    ...(checkInSeconds !== undefined ? { FLEETPATCH_CHECKIN_SECONDS: String(checkInSeconds) } : {}),
    ...(longPollSeconds !== undefined ? { FLEETPATCH_LONG_POLL_SECONDS: String(longPollSeconds) } : {}),
  };
  const stack = await startStack({ label: 'idle', serverEnv: apiEnv, postgresSettings: pgSettings });
  const stackOutput = stack.serverOutput;
  const apis: Array<Api & { stop?: () => Promise<void> }> = [{ pid: stack.server.pid!, baseUrl: stack.baseUrl, output: stackOutput }];
  let agents: Agents | undefined;
  let rampSampler: { stop(): Promise<void> } | undefined;
  try {
    const rateLimitsOff = { FLEETPATCH_API_RATE_LIMIT: '0', FLEETPATCH_AGENT_RATE_LIMIT: '0', FLEETPATCH_ENROLL_RATE_LIMIT: '0' };
    for (let i = 1; i < apiCount; i++) apis.push(await startApi(stack, { ...rateLimitsOff, ...apiEnv }));
    const rssAtStart = apis.map((api) => residentBytes(api.pid));
    const backend = Number((await stack.database.sql`select pg_backend_pid() as pid`)[0]!.pid);
    const postmaster = Number(fs.readFileSync(`/proc/${backend}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    const statements = values['pg-stats'] ? await statementCounter(stack) : undefined;
    const xacts = async () => Number((await stack.database.sql`select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()`)[0]!.n);
    const rampStart = performance.now();
    rampSampler = statements ? sampleRamp(stack, statements, xacts, rampStart) : undefined;
    // The experiment of a manual ANALYZE while the agents enroll (what autovacuum would do later).
    const analyzes = analyzeAt.map((at) =>
      setTimeout(() => {
        const start = performance.now();
        stack.database.sql`analyze`.then(
          () => say(`  analyze at ${at} s took ${((performance.now() - start) / 1000).toFixed(1)} s`),
          (error: unknown) => say(`  analyze at ${at} s failed: ${(error as Error).message}`),
        );
      }, at * 1000),
    );
    if (simulatorCount) agents = await simulatorProcesses(stack, apis, n, simulatorCount);
    else {
      const { secret } = await createEnrollmentKey(stack.database.db, { description: 'bench idle agents', expiresAt: null, maxUses: null, defaultTags: [] });
      agents = await inProcessAgents(apis[0]!, secret, n);
    }
    // At rest: (nearly) every agent is inside a long-poll.
    const openNow = async () => (await Promise.all(apis.map((api) => longPollsOpen(api.baseUrl)))).reduce((a, b) => a + b, 0);
    const settleBy = Date.now() + 300_000;
    let open = await openNow();
    while (open < n * 0.95) {
      if (Date.now() > settleBy) throw new Error(`only ${open} of ${n} long-polls open after 5 minutes`);
      await sleep(2000);
      open = await openNow();
    }
    for (const timer of analyzes) clearTimeout(timer);
    const restAfter = (performance.now() - rampStart) / 1000;
    await rampSampler?.stop();
    say(`  at rest after ${restAfter.toFixed(0)} s: ${open} long-polls open`);

    if (profileDir) process.kill(apis[0]!.pid, 'SIGUSR2');
    const servedBefore = await Promise.all(apis.map((api) => agentRequestsServed(api.baseUrl)));
    const cpuBefore = apis.map((api) => processCpuSeconds(api.pid).own);
    const agentCpuBefore = agents.pids.map((pid) => processCpuSeconds(pid).own);
    const pgCpuBefore = postgresCpuSeconds(postmaster);
    const xactsBefore = await xacts();
    const statementsBefore = await statements?.read();
    const started = performance.now();
    const rss: number[][] = apis.map(() => []);
    const polls: number[] = [];
    while (performance.now() - started < seconds * 1000) {
      await sleep(5000);
      apis.forEach((api, i) => rss[i]!.push(residentBytes(api.pid)));
      polls.push(await openNow());
    }
    const elapsed = (performance.now() - started) / 1000;
    const cpu = apis.map((api, i) => processCpuSeconds(api.pid).own - cpuBefore[i]!);
    const agentCpu = agents.pids.reduce((sum, pid, i) => sum + processCpuSeconds(pid).own - agentCpuBefore[i]!, 0);
    const pgCpu = postgresCpuSeconds(postmaster) - pgCpuBefore;
    const transactions = (await xacts()) - xactsBefore;
    const statementsAtRest = statements && statementsBefore ? statementDelta(statementsBefore, await statements.read()) : undefined;
    const servedAfter = await Promise.all(apis.map((api) => agentRequestsServed(api.baseUrl)));
    const heaps = await Promise.all(apis.map((api) => apiHeap(api.baseUrl)));
    const pollsAtEnd = await Promise.all(apis.map((api) => longPollsOpen(api.baseUrl)));
    const agentRss = agents.pids.reduce((sum, pid) => sum + residentBytes(pid), 0);
    const requests = servedAfter.reduce((sum, s, i) => sum + s.requests - servedBefore[i]!.requests, 0);
    const checkIns = servedAfter.reduce((sum, s, i) => sum + s.checkIns - servedBefore[i]!.checkIns, 0);
    if (profileDir) {
      process.kill(apis[0]!.pid, 'SIGUSR2');
      const by = Date.now() + 120_000;
      while (!fs.existsSync(path.join(profileDir, 'done')) && Date.now() < by) await sleep(1000);
      say(`API CPU profile and heap snapshot in ${profileDir}`);
    }
    // After the window (a full collection costs the API a pause): what the agents really hold.
    const live = profileDir ? apis.map(() => NaN) : await Promise.all(apis.map((api) => liveHeap(api, 1)));
    const { errors, lastError } = await agents.stop();
    agents = undefined;

    const maxRss = rss.map((samples) => Math.max(...samples));
    const totalCpu = cpu.reduce((a, b) => a + b, 0);
    say('');
    say('| API process | long-polls open at the end | RSS at start | RSS at rest (max) | CPU at rest | V8 heap used / total at the end | heap after a full collection |');
    say('|---|---|---|---|---|---|---|');
    for (const i of apis.keys()) {
      say(
        `| ${i} | ${pollsAtEnd[i]} | ${(rssAtStart[i]! / MiB).toFixed(0)} MiB | ${(maxRss[i]! / MiB).toFixed(0)} MiB | ${((cpu[i]! / elapsed) * 100).toFixed(1)} % of one core | ${(heaps[i]!.used / MiB).toFixed(0)} / ${(heaps[i]!.total / MiB).toFixed(0)} MiB | ${(live[i]! / MiB).toFixed(0)} MiB |`,
      );
    }
    say('');
    say(`long-polls open (all APIs, every 5 s): min ${Math.min(...polls)}, max ${Math.max(...polls)}`);
    say(`check-ins ${(checkIns / elapsed).toFixed(1)}/s, other agent requests (long-polls) ${((requests - checkIns) / elapsed).toFixed(1)}/s; agent requests answered ${requests} (${(requests / elapsed).toFixed(1)}/s), ${((totalCpu * 1000) / Math.max(1, requests)).toFixed(2)} ms of API CPU per request`);
    say(
      `per agent at rest: API RSS ${(((maxRss.reduce((a, b) => a + b, 0) - rssAtStart.reduce((a, b) => a + b, 0)) / n) / 1024).toFixed(1)} KiB above the start, ` +
        `API heap after a full collection ${((live.reduce((a, b) => a + b, 0) / n) / 1024).toFixed(1)} KiB (the idle API's own heap included), ` +
        `API CPU ${((totalCpu / elapsed / n) * 1e6).toFixed(1)} µs/s, PostgreSQL CPU ${((pgCpu / elapsed / n) * 1e6).toFixed(1)} µs/s, ` +
        `PostgreSQL transactions ${((transactions / elapsed / n) * 60).toFixed(3)} per minute (each statement outside a transaction is one)`,
    );
    say(`PostgreSQL at rest: ${((pgCpu / elapsed) * 100).toFixed(1)} % of one core, ${(transactions / elapsed).toFixed(1)} transactions/s`);
    // Per check-in: what scales with the interval (PostgreSQL's work at rest is the check-ins; the APIs' also has the long-polls, per request above).
    if (checkIns > 0) {
      say(
        `per check-in at rest: PostgreSQL CPU ${((pgCpu * 1e6) / checkIns).toFixed(0)} µs, ${(transactions / checkIns).toFixed(3)} transactions` +
          (statementsAtRest ? `, ${(statementsAtRest.topLevelCalls / checkIns).toFixed(3)} top-level statements` : '') +
          ` (the APIs' background statements included); check-ins ${((checkIns / elapsed / n) * 60).toFixed(3)} per agent per minute`,
      );
    }
    if (statementsAtRest) {
      say(`PostgreSQL statements at rest (pg_stat_statements, top level): ${((statementsAtRest.topLevelCalls / elapsed / n) * 60).toFixed(3)} per agent per minute, ${(statementsAtRest.topLevelCalls / elapsed).toFixed(1)}/s`);
      for (const line of statementLines(statementsAtRest, elapsed, 6)) say(`  ${line}`);
    }
    say(`agents: ${errors} request errors (ramp-up included; agents retry them)${lastError ? `, the last "${lastError}"` : ''}; their process(es): RSS ${(agentRss / MiB).toFixed(0)} MiB, CPU ${((agentCpu / elapsed) * 100).toFixed(1)} % of one core (${((agentCpu / elapsed / n) * 1e6).toFixed(1)} µs/s per agent)`);
    say(`time to rest (ramp-up start to 95 % of the long-polls open): ${restAfter.toFixed(0)} s`);
    // Issue 18's target: under 512 MiB per API process with 10,000 agents and not one failed request.
    const perApi = n / apis.length;
    say(`target: ${perApi} idle agents under 512 MiB per API process with no failed request: ${Math.max(...maxRss) < 512 * MiB && errors === 0 ? 'met' : 'MISSED'}`);
    say(loadAverages(loadAtStart));
    return 0;
  } finally {
    await rampSampler?.stop();
    await agents?.stop().catch(() => undefined);
    for (const api of apis.slice(1)) await api.stop?.();
    await stack.stop();
  }
}

await runBenchmark(main);
