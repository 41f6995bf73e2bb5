/**
 * A change of the compliance thresholds on a generated fleet (bench/fleetGenerate.ts; issue 18,
 * goal 2: no read path reads the whole fleet). Before migration 0054 the first summary read with
 * new thresholds re-evaluated every machine in its own statement (syncFleetSummaryThresholds:
 * one UPDATE of every live machine, every machine row held to its end); now it writes one row and
 * the upkeep's sweep re-evaluates the machines in batches (src/db/fleetSummary.ts).
 *
 * Per run, one change (the disconnected threshold between the generator's week and two weeks, so
 * that runs alternate and the fleet ends as it was after an even number):
 * - the change and the first summary read with it, every machine lapsed (the reader evaluates
 *   them itself); the computers page sorted by compliance then;
 * - the sweep to its end (fleetSummaryUpkeep, as the API runs it: the table in its own order, 200
 *   pages a statement): its time, and a summary read when half the table is read;
 * - a writer beside it: a machine's last_seen_at written every 100 ms (the column a check-in
 *   writes, through the same triggers), each write's latency;
 * - then VACUUM of machines (each re-evaluation leaves a dead version of every machine row), timed.
 * With --old, one more change per run (to three weeks), made the way before 0054: the one UPDATE of
 * every machine, with the same writer beside it (statement_timeout off: the API's 60 s cut it at
 * 1,000,000). The fleet ends with the generator's thresholds.
 *
 * Run:  npx tsx bench/thresholdChange.ts --dir /var/tmp/fleetpatch-fleet-1m [--runs 3] [--old]
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { loadConfig } from '../src/config.js';
import { fleetSummaryUpkeep, maintainedComplianceSummary, syncFleetSummaryThresholds } from '../src/db/fleetSummary.js';
import { listMachines } from '../src/db/machines.js';
import * as schema from '../src/db/schema.js';
import type { FleetThresholds } from '../src/fleet/compliance.js';
import { BENCH_THRESHOLDS_ENV, startFleetDatabase } from './fleetGenerate.js';
import { loadAverages, quantile, runBenchmark } from './freshness.js';

const say = (line: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`);

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await run();
  return { ms: performance.now() - t, value };
}

/** A machine's last_seen_at written every 100 ms until stopped: each write's latency (ms). */
function startWriter(sql: postgres.Sql, ids: readonly string[]): { stop(): Promise<number[]> } {
  const latencies: number[] = [];
  let stopped = false;
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const t = performance.now();
      await sql`update machines set last_seen_at = last_seen_at + interval '1 millisecond' where id = ${ids[i % ids.length]!}`;
      latencies.push(performance.now() - t);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return latencies;
    },
  };
}

const writes = (ms: number[]) => `${ms.length} writes, p50 ${quantile(ms, 0.5).toFixed(1)} ms, p99 ${quantile(ms, 0.99).toFixed(1)} ms, max ${Math.max(...ms).toFixed(0)} ms`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, runs: { type: 'string', default: '3' }, old: { type: 'boolean', default: false } } });
  if (!values.dir) throw new Error('--dir is required: the folder of a fleet made by bench/fleetGenerate.ts');
  const loadAtStart = os.loadavg();
  const started = await timed(() => startFleetDatabase(values.dir!));
  const pg = started.value;
  say(`database started and migrated in ${(started.ms / 1000).toFixed(1)} s`);
  // More connections than the sweep's one: the reads and the writer must not queue behind it.
  const sql = postgres(pg.url, { max: 4, onnotice: () => undefined, connection: { statement_timeout: 0 } });
  const db = drizzle(sql, { schema });
  try {
    const [fleet] = await sql<Array<{ n: number }>>`select count(*)::int as n from machines where removed_at is null`;
    const ids = (await sql<Array<{ id: string }>>`select id from machines where removed_at is null order by md5(id::text) limit 1000`).map((r) => r.id);
    say(`${fleet!.n} live machines`);
    const week: FleetThresholds = loadConfig(BENCH_THRESHOLDS_ENV).thresholds;
    const twoWeeks: FleetThresholds = { ...week, disconnectedAfterMs: 2 * week.disconnectedAfterMs };
    const threeWeeks: FleetThresholds = { ...week, disconnectedAfterMs: 3 * week.disconnectedAfterMs };
    // Start from the generator's thresholds (a run cut short may have left the others).
    if (await syncFleetSummaryThresholds(db, week)) {
      say('back to the generator thresholds first');
      await fleetSummaryUpkeep(db, new Date());
      await sql`vacuum machines`;
    }
    const lapsed = async () => (await sql<Array<{ n: number }>>`select count(*)::int as n from machines where summary_generation < (select generation from fleet_summary_settings)`)[0]!.n;
    const figures: Record<string, number[]> = {};
    const note = (key: string, ms: number) => (figures[key] ??= []).push(ms);

    for (let run = 1; run <= Number(values.runs); run++) {
      const thresholds = run % 2 === 1 ? twoWeeks : week;
      const now = new Date();
      const change = await timed(async () => {
        await syncFleetSummaryThresholds(db, thresholds);
        return maintainedComplianceSummary(db, now, thresholds);
      });
      note('change and first read (every machine lapsed)', change.ms);
      say(`run ${run}: changed, first summary read in ${change.ms.toFixed(0)} ms (${await lapsed()} machines lapsed)`);
      const page = await timed(() => listMachines(db, { filter: {}, sort: { field: 'COMPLIANCE', direction: 'ASC' }, offset: 0, limit: 50, now, thresholds, count: false }));
      note('computers page by compliance (every machine lapsed)', page.ms);
      say(`run ${run}: computers page by compliance in ${page.ms.toFixed(0)} ms`);

      const writer = startWriter(sql, ids);
      let halfRead = false;
      const sweep = await timed(() =>
        fleetSummaryUpkeep(db, now, async ({ pagesRead, pages }) => {
          if (halfRead || pagesRead < pages / 2) return;
          halfRead = true;
          const half = await timed(() => maintainedComplianceSummary(db, now, thresholds));
          note('summary read, half swept', half.ms);
          say(`run ${run}: summary read with ${await lapsed()} machines lapsed in ${half.ms.toFixed(0)} ms`);
        }),
      );
      const latencies = await writer.stop();
      note('sweep', sweep.ms);
      note('writer max during the sweep', Math.max(...latencies));
      say(`run ${run}: swept ${sweep.value.moved} machines in ${(sweep.ms / 1000).toFixed(1)} s (${(sweep.value.moved / (sweep.ms / 1000)).toFixed(0)}/s); writer beside it: ${writes(latencies)}`);
      const after = await timed(() => maintainedComplianceSummary(db, now, thresholds));
      note('summary read after the sweep', after.ms);
      const vacuum = await timed(() => sql`vacuum machines`);
      note('vacuum', vacuum.ms);
      say(`run ${run}: summary read after the sweep in ${after.ms.toFixed(1)} ms; vacuum ${(vacuum.ms / 1000).toFixed(1)} s`);

      if (values.old) {
        // Before 0054: the thresholds stored and every machine re-evaluated in the reader's one
        // statement (to a third value, that the next run changes from).
        const oldWriter = startWriter(sql, ids);
        const old = await timed(async () => {
          await syncFleetSummaryThresholds(db, threeWeeks);
          await sql`update machines set summary_at = summary_at where removed_at is null`;
        });
        const oldLatencies = await oldWriter.stop();
        note('old: one statement', old.ms);
        note('old: writer max', Math.max(...oldLatencies));
        say(`run ${run}: the old one statement: ${(old.ms / 1000).toFixed(1)} s; writer beside it: ${writes(oldLatencies)}`);
        await sql`vacuum machines`;
      }
    }
    if (await syncFleetSummaryThresholds(db, week)) {
      say('back to the generator thresholds');
      await fleetSummaryUpkeep(db, new Date());
      await sql`vacuum machines`;
    }
    console.log(`\n${fleet!.n} machines, ${values.runs} runs (median, min–max):`);
    for (const [key, ms] of Object.entries(figures)) {
      const sorted = [...ms].sort((a, b) => a - b);
      console.log(`  ${key}: ${quantile(sorted, 0.5).toFixed(0)} ms (${sorted[0]!.toFixed(0)}–${sorted.at(-1)!.toFixed(0)})`);
    }
    say(loadAverages(loadAtStart));
  } finally {
    await sql.end();
    await pg.stop();
  }
}


await runBenchmark(main);
