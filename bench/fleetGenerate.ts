/**
 * A synthetic fleet generated straight in PostgreSQL, for measuring the fleet view at sizes the
 * COPY loader of bench/fleetQueries.ts cannot reach in reasonable time (1,000,000 machines × ~46
 * pending updates: about 46M pending update rows, 12 GB). Everything is made by INSERT … SELECT over
 * generate_series in the server, nothing crosses the wire.
 *
 * The database lives in `--dir` (an embedded PostgreSQL cluster kept there, started again by
 * bench/fleetQueries.ts --dir and bench/fleetExplain.ts --dir), migrated to this tree's migrations.
 *
 * The fleet (deterministic in the machine's number i):
 * - a catalog of 200 updates (5 % CRITICAL, 30 % SECURITY with a CVE each, the rest OTHER), and
 *   one rare update listed by one machine in 100,000, naming a CVE of its own (`RARE_CVE`);
 * - machine i lists 25–75 consecutive catalog entries from an offset of its own (about 50); one
 *   machine in five lists only its OTHER ones (COMPLIANT): ~46 pending updates a machine;
 * - one machine in twenty NOT_ASSESSED (assessed 8 days ago), one in twenty DISCONNECTED (seen 8
 *   days ago), the others assessed in the last hour and seen in the last minute;
 * - agents of four versions, three tags (one machine in ten `env:prod`, one in a thousand `rare`);
 * - one machine in twenty-five overdue (an SLA due date two days past), one in twenty-five with a
 *   due date thirty days ahead (no baseline: the due dates are the summary's, not a policy's).
 *
 * The thresholds written to fleet_summary_settings are a week for both the assessment age and the
 * agent's silence (`BENCH_THRESHOLDS` below; the measuring benches start the server with the same):
 * there are no agents checking in, and with the default 180 s the whole fleet would turn
 * DISCONNECTED minutes after the generation, its upkeep sweeping a million machines under the
 * measurement. So the summary's clock moves nothing during a measurement; the upkeep's steady-state
 * cost (~90 machines a second at 1M machines assessed every 3 h) is not in these figures.
 *
 * The maintained figures are made by the code that maintains them: the machines' rows are inserted
 * with their triggers (each row's summary state and delta), the deltas folded once; the missing
 * update counts (and the CVE counts of migration 0043) are filled with the ingest's own delta
 * statement (src/db/fleetCounts.ts), 20,000 assessments at a time. Every machine is Debian 12 with
 * apt and no fix is imported: the CVE list's imported-fixes part finds nothing to compare. pending_updates' primary key is dropped for the load and built after it.
 *
 * --stale-statistics: no ANALYZE (nor VACUUM, which counts a table's rows) of any table, and autovacuum turned off for the fleet's tables, so
 * the fleet stays as PostgreSQL sees a new installation's bulk enrollment before any statistics
 * (for bench/fleetExplain.ts --analyze: the reads before and after each table's statistics).
 *
 * Run:  npx tsx bench/fleetGenerate.ts --dir /var/tmp/fleetpatch-fleet-1m --machines 1000000 [--stale-statistics]
 *       (nice it: `nice -n 19 npx tsx …`; it is a load, not a measurement)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type postgres from 'postgres';
import { connectDatabase, type Db } from '../src/db/client.js';
import { applyMissingUpdateDelta } from '../src/db/fleetCounts.js';
import { foldFleetSummaryDeltas, foldMachineTagDeltas } from '../src/db/fleetSummary.js';
import { migrateDatabase } from '../src/db/migrate.js';
import { startEmbeddedPostgres, type RunningPostgres } from '../src/devstack/embeddedPostgres.js';
import { createLogger } from '../src/logger.js';
import { freePort } from '../src/net.js';

/** The thresholds of a generated fleet, as server settings (see the header). */
export const BENCH_THRESHOLDS_ENV = {
  FLEETPATCH_DISCONNECTED_AFTER_SECONDS: String(7 * 24 * 3600),
  FLEETPATCH_LINUX_ASSESSMENT_MINUTES: String(7 * 24 * 60),
  FLEETPATCH_WINDOWS_ASSESSMENT_MINUTES: String(7 * 24 * 60),
} as const;

const WEEK_MS = 7 * 24 * 3600_000;

/** The tables the generation writes in bulk, vacuumed and analyzed after it (unless --stale-statistics). */
const STATISTICS_TABLES = ['machines', 'assessments', 'pending_updates', 'machine_tags', 'fleet_summary_deltas', 'machine_tag_deltas', 'missing_update_counts', 'missing_update_details'] as const;

/** The CVE the rare update names (one machine in 100,000 is exposed to it); the catalog's CVEs expose about one machine in five each. */
export const RARE_CVE = 'CVE-2026-99999';

/** The generated fleet's PostgreSQL, started on its folder (created and initialised the first time). */
export async function startFleetDatabase(dir: string): Promise<RunningPostgres> {
  fs.mkdirSync(dir, { recursive: true });
  // As root PostgreSQL runs as the postgres user, which must reach its folder.
  fs.chmodSync(dir, 0o755);
  const logger = createLogger({ level: 'warn', format: 'json', name: 'bench-fleet' });
  const pg = await startEmbeddedPostgres({ dir, port: await freePort(), database: 'fleetpatch_bench', logger });
  await migrateDatabase(pg.url);
  return pg;
}

const say = (line: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`);

async function step<T>(label: string, run: () => Promise<T>): Promise<T> {
  const t = performance.now();
  const result = await run();
  say(`${label}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
  return result;
}

async function generate(db: Db, sql: postgres.Sql, machines: number, staleStatistics = false): Promise<void> {
  if (staleStatistics) for (const table of STATISTICS_TABLES) await sql.unsafe(`alter table ${table} set (autovacuum_enabled = false)`);
  const [existing] = await sql<Array<{ n: number }>>`select count(*)::int as n from machines`;
  if (existing!.n > 0) throw new Error(`the database already holds ${existing!.n} machines: give an empty --dir`);
  await sql`update fleet_summary_settings set linux_assessment_max_age_ms = ${WEEK_MS}, windows_assessment_max_age_ms = ${WEEK_MS}, disconnected_after_ms = ${WEEK_MS}`;
  await sql`create unlogged table bench_catalog as
    select idx, 'pkg-' || lpad(idx::text, 3, '0') as name,
      (case when idx % 20 = 0 then 'CRITICAL' when idx % 20 <= 6 then 'SECURITY' else 'OTHER' end)::classification as classification,
      (case when idx % 20 = 0 then 'CRITICAL' when idx % 20 <= 3 then 'IMPORTANT' when idx % 20 <= 6 then 'MODERATE' else null end)::severity as severity,
      '1.' || idx || '.0' as installed_version, '1.' || idx || '.1' as available_version,
      (case when idx % 20 <= 6 then array['DSA-' || (5000 + idx)] else '{}' end)::text[] as advisory_ids,
      (case when idx % 20 <= 6 then array['CVE-2026-' || (10000 + idx)] else '{}' end)::text[] as cve_ids,
      idx % 20 = 0 as reboot_suggested
    from generate_series(0, 199) idx`;
  // Machine i: its offset in the catalog, how many entries it lists, whether only its OTHER ones.
  const shape = '(i * 37) % 200 as o, 25 + (i * 7) % 51 as k, i % 5 = 0 as other_only';
  await sql`create unlogged table bench_windows as
    select o, k, other_only,
      count(*) filter (where c.classification = 'CRITICAL')::int as critical,
      count(*) filter (where c.classification = 'SECURITY')::int as security,
      count(*) filter (where c.classification = 'OTHER')::int as other
    from generate_series(0, 199) o cross join generate_series(25, 75) k cross join (values (false), (true)) v(other_only)
    cross join lateral generate_series(0, k - 1) g join bench_catalog c on c.idx = (o + g) % 200
    where not other_only or c.classification = 'OTHER'
    group by 1, 2, 3`;
  const ids = (i: string) => `md5('machine-' || ${i})::uuid as id, md5('assessment-' || ${i})::uuid as assessment_id`;
  const timing = `case when i % 20 = 1 then now() - interval '8 days' else now() - (i % 3600) * interval '1 second' end as assessed_at,
                  case when i % 20 = 2 then now() - interval '8 days' else now() - (i % 60) * interval '1 second' end as seen_at`;
  const batch = 100_000;
  await step('machines (with their summary triggers)', async () => {
    for (let from = 0; from < machines; from += batch) {
      const to = Math.min(machines, from + batch) - 1;
      await sql.unsafe(`insert into machines (id, name, os_type, os_name, os_version, environment, tags, agent_version, package_manager, last_seen_at, last_assessed_at,
          latest_assessment_id, critical_count, security_count, other_count, enrolled_at, summary_at, sla_due_dates)
        select f.id, 'vm-' || lpad(f.i::text, 7, '0'), 'LINUX', 'Debian GNU/Linux 12 (bookworm)', '12', 'AWS',
          case when f.i % 1000 = 3 then '{env:prod,rare}'::text[] when f.i % 10 = 3 then '{env:prod}'::text[] else '{}'::text[] end,
          '0.' || (9 + f.i % 4) || '.0', 'apt', f.seen_at, f.assessed_at, f.assessment_id,
          w.critical, w.security, w.other + (case when f.i % 100000 = 7 then 1 else 0 end), now() - interval '30 days', now(),
          case when f.i % 25 = 4 then array[now() - interval '2 days'] when f.i % 25 = 5 then array[now() + interval '30 days'] else '{}'::timestamptz[] end
        from (select i, ${ids('i')}, ${timing}, ${shape} from generate_series(${from}, ${to}) i) f
        join bench_windows w using (o, k, other_only)`);
    }
  });
  await step('assessments', async () => {
    for (let from = 0; from < machines; from += batch) {
      const to = Math.min(machines, from + batch) - 1;
      await sql.unsafe(`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
        select f.assessment_id, f.id, 'SCHEDULED', 'apt', f.assessed_at, f.assessed_at, f.assessed_at, false,
          w.critical, w.security, w.other + (case when f.i % 100000 = 7 then 1 else 0 end)
        from (select i, ${ids('i')}, ${timing}, ${shape} from generate_series(${from}, ${to}) i) f
        join bench_windows w using (o, k, other_only)`);
    }
  });
  const [pk] = await sql<Array<{ name: string; def: string }>>`
    select conname as name, pg_get_constraintdef(oid) as def from pg_constraint where conrelid = 'pending_updates'::regclass and contype = 'p'`;
  await sql.unsafe(`alter table pending_updates drop constraint "${pk!.name}"`);
  await step('pending updates (primary key dropped)', async () => {
    for (let from = 0; from < machines; from += batch) {
      const to = Math.min(machines, from + batch) - 1;
      await sql.unsafe(`insert into pending_updates (assessment_id, machine_id, name, arch, installed_version, available_version, classification, severity, advisory_ids, cve_ids, reboot_suggested, repository)
        select f.assessment_id, f.id, c.name, 'amd64', c.installed_version, c.available_version, c.classification, c.severity, c.advisory_ids, c.cve_ids, c.reboot_suggested, 'bookworm-security'
        from (select i, ${ids('i')}, ${shape} from generate_series(${from}, ${to}) i) f
        cross join lateral generate_series(0, f.k - 1) g
        join bench_catalog c on c.idx = (f.o + g) % 200
        where not f.other_only or c.classification = 'OTHER'
        union all
        select md5('assessment-' || i)::uuid, md5('machine-' || i)::uuid, 'rare-tool', 'amd64', '0.1', '0.2', 'OTHER', null, '{}', '{${RARE_CVE}}', false, 'bookworm'
        from generate_series(${from}, ${to}) i where i % 100000 = 7`);
    }
  });
  await step('pending updates primary key', () => sql.unsafe(`alter table pending_updates add constraint "${pk!.name}" ${pk!.def}`));
  
  if (!staleStatistics) {
    await step('analyze', async () => {
      for (const table of ['machines', 'assessments', 'pending_updates']) await sql.unsafe(`analyze ${table}`);
    });
  }
  // Both: the readers scan the deltas' tables, and a million rows left there (or dead, until vacuumed
  // below) would be in every measured read.
  await step('summary and tag deltas folded', async () => {
    await foldFleetSummaryDeltas(db);
    await foldMachineTagDeltas(db);
  });
  await step('missing update counts (the ingest statement, 20,000 assessments at a time)', async () => {
    const all = await sql<Array<{ id: string }>>`select latest_assessment_id as id from machines order by latest_assessment_id`;
    for (let i = 0; i < all.length; i += 20_000) {
      await applyMissingUpdateDelta(sql, [], all.slice(i, i + 20_000).map((r) => ({ osType: 'LINUX' as const, assessmentId: r.id })));
    }
  });
  await sql`drop table bench_catalog`;
  await sql`drop table bench_windows`;
  if (!staleStatistics) {
    await step('vacuum analyze', async () => {
      for (const table of STATISTICS_TABLES) await sql.unsafe(`vacuum analyze ${table}`);
    });
  }
  const [size] = await sql<Array<{ rows: string; bytes: string }>>`
    select (select count(*) from pending_updates)::text as rows, pg_database_size(current_database())::text as bytes`;
  say(`${machines} machines, ${size!.rows} pending updates, database ${(Number(size!.bytes) / 1e9).toFixed(1)} GB`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, machines: { type: 'string', default: '1000000' }, 'stale-statistics': { type: 'boolean', default: false } } });
  if (!values.dir) throw new Error('--dir is required: the folder of the generated fleet’s PostgreSQL');
  const dir = path.resolve(values.dir);
  say(`generating ${values.machines} machines in ${dir} (load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`);
  const pg = await startFleetDatabase(dir);
  // The API's own client: a bare postgres.js client sent the missing-update delta's jsonb parameters as JSON strings ("cannot call jsonb_to_recordset on a non-array").
  const database = connectDatabase(pg.url, { max: 1 });
  const sql = database.sql;
  try {
    await sql`set maintenance_work_mem = '512MB'`;
    await step('total', () => generate(database.db, sql, Number(values.machines), values['stale-statistics']));
  } finally {
    await database.close();
    await pg.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
