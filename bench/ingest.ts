/**
 * Ingest: N machines send their first assessment of about M pending updates each through the real
 * agent endpoint; reports/s and rows/s, beside the ceiling of issue 18: `psql \copy` of the same
 * rows from a file into a table of the same shape and keys on the same PostgreSQL in the same run.
 *
 * 1. A fresh stack (bench/freshness.ts's startStack: embedded PostgreSQL, Temporal dev server,
 *    `fleetpatch server` as its own process). N virtual agents (src/simulator) enroll, not timed.
 * 2. Timed: every machine's first report (`POST /agent/v1/assessments`, AgentClient), at most
 *    --concurrency in flight. The API validates, stores the assessment, its rows and the
 *    machine's counts in one transaction, and publishes the change.
 * 3. The ceiling, timed three times: the rows the API stored, written to a file by `psql \copy ...
 *    to` (untimed), then `psql \copy bench_copy from` that file (psql's own COPY text, sent by a C
 *    client), into `bench_copy`, created `LIKE pending_updates INCLUDING ALL` (same columns,
 *    primary key and defaults; no triggers), emptied before each. Timed on PostgreSQL's clock
 *    within psql's session, so psql's start and connection are left out. The median of the three is
 *    the rate compared. (Until issue 18 the ceiling was a COPY streamed from this Node process, at
 *    about 95k rows/s: psql's runs at 101-164k, so ratios against the old one read 1.7-2x high.)
 * 4. The API's /metrics confirms the count of reports ingested. Printed beside the rates: CPU per
 *    report of the API, PostgreSQL and this process (the virtual agents), and how many
 *    transactions stored the reports (the API groups reports that arrive together).
 *
 * With --rereports, every machine first sends (untimed) a report listing the same updates: the
 * timed reports are then each machine's second, changing no machine's pending updates, as most
 * reports of a running fleet do.
 *
 * With --pg-stats, PostgreSQL runs with pg_stat_statements (statements inside triggers counted too)
 * and counts PL/pgSQL functions' calls and own time; the timed part's statements and functions are
 * printed by their total time, per report: where PostgreSQL's
 * time goes. The extension costs some of that time itself; compare rates without it.
 *
 * With --without a,b,c, the named indexes and triggers are dropped after the enrollments (before
 * the timed part): what they cost ingest, against a run with them (issue 18, goal 2: the fleet
 * view's read indexes and maintained counts).
 *
 * With --fixes K, K imported fixes per package of the simulated catalog (bookworm, reached by its security
 * updates) are stored before the timed part: the ingest then computes each machine's imported-fix
 * exposures (migration 0048) as on a Debian fleet with the tracker imported.
 *
 * With --tags a,b, every machine enrolls with those tags (its enrollment key's): a first report then
 * changes the state of a tagged machine, which moves its tag counts and restates its tag rows (0057).
 *
 * Run:  npx tsx bench/ingest.ts [--machines 1000] [--updates 50] [--concurrency 16] [--rereports] [--cpu-prof DIR] [--pg-stats] [--without index,trigger,...] [--fixes K] [--tags a,b]
 * Needs dist/ (`npm run build`), the Temporal CLI (found or built as for the tests) and psql
 * (FLEETPATCH_PSQL, else `psql` on the PATH).
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { AssessmentReport } from '../src/agent/protocol.js';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import { SyntheticMachine, DEFAULT_PROFILE } from '../src/simulator/syntheticMachine.js';
import { VirtualAgent } from '../src/simulator/virtualAgent.js';
import { installInterruptHandler, loadAverages, mapLimit, processCpuSeconds, quantile, runBenchmark, startStack, type Stack } from './freshness.js';

const say = (line: string) => console.log(line);

/** Runs a psql script (its standard input) against the stack's database; answers what it printed. */
function psql(databaseUrl: string, script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.env.FLEETPATCH_PSQL ?? 'psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', databaseUrl, '-f', '-'], { maxBuffer: 1 << 20 }, (error, stdout, stderr) =>
      error ? reject(new Error(`psql failed: ${stderr || error.message}`)) : resolve(stdout),
    );
    child.stdin!.end(script);
  });
}

/** CPU seconds used so far by the stack's PostgreSQL: the postmaster, its live children, and its exited children. */
async function postgresCpuSeconds(stack: Stack): Promise<number> {
  const [dir] = await stack.database.sql<Array<{ setting: string }>>`select setting from pg_settings where name = 'data_directory'`;
  const postmaster = Number(fs.readFileSync(path.join(dir!.setting, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const children = fs.readFileSync(`/proc/${postmaster}/task/${postmaster}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const own = processCpuSeconds(postmaster);
  let total = own.own + own.children;
  for (const pid of children) {
    try {
      total += processCpuSeconds(pid).own;
    } catch {
      // exited in between: counted in the postmaster's children from now on
    }
  }
  return total;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { machines: { type: 'string', default: '1000' }, updates: { type: 'string', default: '50' }, concurrency: { type: 'string', default: '16' }, rereports: { type: 'boolean', default: false }, 'cpu-prof': { type: 'string' }, 'pg-stats': { type: 'boolean', default: false }, without: { type: 'string', default: '' }, fixes: { type: 'string', default: '0' }, tags: { type: 'string', default: '' } } });
  const without = values.without.split(',').filter(Boolean);
  const n = Number(values.machines);
  const m = Number(values.updates);
  const concurrency = Number(values.concurrency);
  const loadAtStart = [...(await import('node:os')).loadavg()];
  installInterruptHandler();
  say(`ingest benchmark: ${n} machines × about ${m} pending updates, ${concurrency} reports in flight${values.rereports ? ', second reports (same updates)' : ''}${values.tags ? `, every machine tagged ${values.tags}` : ''}`);
  // --cpu-prof DIR: the API process writes a V8 CPU profile there when it stops (open it in Chrome's DevTools).
  // --pg-stats: PostgreSQL with pg_stat_statements (statements inside triggers and functions too); the timed part's statements printed by total time.
  const stack = await startStack({
    label: 'ingest',
    serverNodeArgs: values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`] : [],
    ...(values['pg-stats'] ? { postgresSettings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.max': '10000', 'pg_stat_statements.track': 'all', track_functions: 'pl' } } : {}),
  });
  try {
    const { secret } = await createEnrollmentKey(stack.database.db, { description: 'bench ingest', expiresAt: null, maxUses: null, defaultTags: values.tags.split(',').filter(Boolean) });
    const profile = { ...DEFAULT_PROFILE, updatesPerMachine: m };
    const enrollStart = performance.now();
    const agents = await mapLimit(
      Array.from({ length: n }, (_, i) => i),
      50,
      async (i) => {
        const agent = new VirtualAgent(stack.baseUrl, `ingest-${String(i).padStart(6, '0')}`, new SyntheticMachine(i, profile, 1), 0);
        const enrolled = await agent.client.enroll(secret, agent.facts());
        agent.client.setCredential(enrolled.credential);
        return { agent, client: agent.client, machineId: enrolled.machineId };
      },
    );
    say(`  ${n} machines enrolled in ${((performance.now() - enrollStart) / 1000).toFixed(1)} s (not timed below)`);

    // The reports, built before timing.
    const reports = agents.map(({ agent }): AssessmentReport => {
      const now = new Date().toISOString();
      return { id: randomUUID(), commandId: null, trigger: 'STARTUP', backend: 'apt', startedAt: now, finishedAt: now, result: { rebootPending: false, updates: agent.machine.pendingUpdates(), repositoryProblems: [] }, error: null };
    });
    const rows = reports.reduce((sum, r) => sum + r.result!.updates.length, 0);
    if (values.rereports) {
      // Not timed: a first report listing the same updates, so that the timed ones change no machine's pending updates.
      await mapLimit(agents.map((a, i) => ({ ...a, report: { ...reports[i]!, id: randomUUID() } })), concurrency, ({ client, report }) => client.sendReport(report));
    }
    // --without: what the named indexes and triggers cost, by the same run without them (dropped after the enrollments, before the timed part).
    for (const name of without) {
      const [trigger] = await stack.database.sql<Array<{ relation: string }>>`select tgrelid::regclass::text as relation from pg_trigger where tgname = ${name} and not tgisinternal`;
      await stack.database.sql.unsafe(trigger ? `drop trigger "${name}" on ${trigger.relation}` : `drop index "${name}"`);
    }
    if (without.length > 0) say(`  without ${without.join(', ')}`);
    // --fixes K: imported fixes (Debian tracker's source, bookworm) for the catalog's packages, K CVEs each, before the timed part:
    // each timed report's machine then has its imported-fix exposures computed (migration 0048), as on a Debian fleet with the
    // tracker imported. Fixed at the security update's version: every security update reaches its package's fixes.
    const fixesPerPackage = Number(values.fixes);
    if (fixesPerPackage > 0) {
      await stack.database.sql`insert into cve_tracker_fixes (source, cve_id, package, release, fixed_version, severity)
        select 'DEBIAN', 'CVE-2027-' || (10000 + i * 10 + k), p.name, 'bookworm', '1.' || i || '.0-1+deb12u1', 'MODERATE'
        from generate_series(0, 999) i cross join generate_series(1, ${fixesPerPackage}) k
        cross join lateral (values ('sim-pkg-' || i), ('linux-image-sim-' || i)) p(name)`;
      say(`  with ${fixesPerPackage} imported fixes per catalog package (bookworm)`);
    }
    if (values['pg-stats']) {
      await stack.database.sql`create extension if not exists pg_stat_statements`;
      await stack.database.sql`select pg_stat_statements_reset(), pg_stat_reset()`;
    }
    const [timedFrom] = await stack.database.sql<Array<{ at: string }>>`select clock_timestamp()::text as at`;

    const serverCpu = processCpuSeconds(stack.server.pid!).own;
    const serverSystem = processCpuSeconds(stack.server.pid!).system;
    const postgresCpu = await postgresCpuSeconds(stack);
    const benchCpu = process.cpuUsage();
    const latencies: number[] = [];
    const apiStart = performance.now();
    await mapLimit(
      agents.map((a, i) => ({ ...a, report: reports[i]! })),
      concurrency,
      async ({ client, report }) => {
        const t = performance.now();
        const answer = await client.sendReport(report);
        if (!answer.stored) throw new Error('a first report was not stored');
        latencies.push(performance.now() - t);
      },
    );
    const apiSeconds = (performance.now() - apiStart) / 1000;
    const serverCpuUsed = processCpuSeconds(stack.server.pid!).own - serverCpu;
    const serverSystemUsed = processCpuSeconds(stack.server.pid!).system - serverSystem;
    const postgresCpuUsed = (await postgresCpuSeconds(stack)) - postgresCpu;
    const benchCpuUsed = (({ user, system }) => (user + system) / 1e6)(process.cpuUsage(benchCpu));
    if (values['pg-stats']) {
      const statements = await stack.database.sql<Array<{ calls: string; ms: number; rows: string; toplevel: boolean; query: string }>>`
        select calls::text as calls, total_exec_time::float8 as ms, rows::text as rows, toplevel, left(regexp_replace(query, '\\s+', ' ', 'g'), 200) as query
        from pg_stat_statements where query not like '%pg_stat_statements%' order by total_exec_time desc limit 25`;
      say('pg_stat_statements during the timed part (ms per report = total / reports; nested statements run inside the top-level ones):');
      for (const s of statements) say(`  ${(s.ms / n).toFixed(3)} ms/report  ${s.calls} calls  ${s.rows} rows  ${s.toplevel ? 'top' : 'nested'}  ${s.query}`);
      // PL/pgSQL functions (track_functions = pl): their own time, without the functions they call.
      // A backend reports its counts once idle for 10 s at most (PGSTAT_IDLE_INTERVAL).
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      const functions = await stack.database.sql<Array<{ name: string; calls: string; self: number }>>`
        select funcname as name, calls::text as calls, self_time::float8 as self from pg_stat_user_functions order by self_time desc limit 8`;
      say('PL/pgSQL functions during the timed part (their own time):');
      for (const f of functions) say(`  ${(f.self / n).toFixed(3)} ms/report  ${f.calls} calls  ${f.name}`);
    }
    // Each group of reports is one transaction: its assessments share received_at (now() at its start).
    const [groups] = await stack.database.sql<Array<{ n: number }>>`select count(distinct received_at)::int as n from assessments where received_at >= ${timedFrom!.at}`;
    const [stored] = await stack.database.sql<Array<{ n: number }>>`select count(*)::int as n from pending_updates pu join assessments a on a.id = pu.assessment_id where a.received_at >= ${timedFrom!.at}`;
    if (stored!.n !== rows) throw new Error(`pending_updates holds ${stored!.n} rows, expected ${rows}`);

    // The ceiling: the same rows, by psql's \copy from a file, into a table of the same shape and keys.
    await stack.database.sql`create table bench_copy (like pending_updates including all)`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-ingest-'));
    const file = path.join(dir, 'rows.copy');
    const copySeconds: number[] = [];
    let copied = 0;
    try {
      await psql(
        stack.databaseUrl,
        `\\copy (select pu.* from pending_updates pu join assessments a on a.id = pu.assessment_id where a.received_at >= '${timedFrom!.at}') to '${file}'\n`,
      );
      for (let run = 0; run < 3; run++) {
        const seconds = await psql(
          stack.databaseUrl,
          [
            'truncate bench_copy;',
            'select extract(epoch from clock_timestamp()) as t0 \\gset',
            `\\copy bench_copy from '${file}'`,
            'select extract(epoch from clock_timestamp()) - :t0;',
          ].join('\n') + '\n',
        );
        copySeconds.push(Number(seconds.trim().split('\n').at(-1)));
        const [count] = await stack.database.sql<Array<{ n: number }>>`select count(*)::int as n from bench_copy`;
        copied = count!.n;
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    if (copied !== rows) throw new Error(`psql \\copy stored ${copied} rows, expected ${rows}`);

    const metrics = await fetch(`${stack.baseUrl}/metrics`).then((r) => r.text());
    const ingested = /^fleetpatch_assessment_reports_ingested_total (\S+)$/m.exec(metrics)?.[1];

    const apiRows = rows / apiSeconds;
    const copyRates = copySeconds.map((seconds) => copied / seconds);
    const copyRows = quantile(copyRates, 0.5);
    say('');
    say(`| path | reports | rows | seconds | reports/s | rows/s | per report p50 / p95 |`);
    say(`|---|---|---|---|---|---|---|`);
    say(`| agent endpoint (HTTP, ${concurrency} in flight) | ${n} | ${rows} | ${apiSeconds.toFixed(2)} | ${(n / apiSeconds).toFixed(0)} | ${apiRows.toFixed(0)} | ${quantile(latencies, 0.5).toFixed(0)} / ${quantile(latencies, 0.95).toFixed(0)} ms |`);
    say(`| psql \\copy from a file, same rows (median of 3) | - | ${copied} | ${quantile(copySeconds, 0.5).toFixed(2)} | - | ${copyRows.toFixed(0)} | - |`);
    say(`psql \\copy runs: ${copyRates.map((r) => r.toFixed(0)).join(', ')} rows/s`);
    say('');
    say(`ingest ÷ psql \\copy (rows/s): ${(apiRows / copyRows).toFixed(3)} (issue 18: ≥ 0.35 at 16 in flight, ≥ 0.5 at 64)`);
    say(`API process CPU during ingest: ${serverCpuUsed.toFixed(2)} s (${((serverCpuUsed / apiSeconds) * 100).toFixed(0)} % of one core); /metrics reports ingested: ${ingested ?? 'not found'}`);
    const perReport = (seconds: number) => `${((seconds * 1000) / n).toFixed(2)} ms`;
    say(`CPU per report: API ${perReport(serverCpuUsed)} (${perReport(serverSystemUsed)} of it in the kernel), PostgreSQL ${perReport(postgresCpuUsed)}, this benchmark's agents ${perReport(benchCpuUsed)}`);
    say(`transactions: ${groups!.n} for ${n} reports (${(n / groups!.n).toFixed(1)} reports per transaction)`);
    say(loadAverages(loadAtStart));
    return 0;
  } finally {
    await stack.stop();
  }
}

await runBenchmark(main);
