/**
 * Every read path of the fleet view run once against a generated fleet (bench/fleetGenerate.ts), with
 * PostgreSQL's EXPLAIN (ANALYZE, BUFFERS) of each statement it sends (auto_explain, its plans
 * handed to this client as notices), to find the paths that read the whole fleet: per path its
 * statements' time and the 8 kB pages they touched, against the pages of `machines`, and the plan of
 * each statement that touched more than a tenth of them. A path runs the code the API runs
 * (src/db), with the thresholds the generated fleet was made with.
 *
 * Run:  npx tsx bench/fleetExplain.ts --dir /var/tmp/fleetpatch-fleet-1m [--plans] [--timeout 60] [--only CVE] [--analyze machines,machine_tags]
 *       (--plans prints every plan in full; a path over --timeout seconds is cut and said so;
 *       --only runs the paths whose name holds that text, case-insensitive; --analyze runs ANALYZE of
 *       those tables first, for a fleet generated with --stale-statistics)
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { agentVersionRows } from '../src/db/agentUpgrades.js';
import { cveCandidates, cveCandidatesByName, cveFigures, importedExposureGroups } from '../src/db/cves.js';
import { maintainedMissingUpdateGroups } from '../src/db/fleetCounts.js';
import { maintainedComplianceSummary, maintainedSummaryCounts, maintainedTagGroups } from '../src/db/fleetSummary.js';
import type { OsType } from '../src/fleet/compliance.js';
import { loadConfig } from '../src/config.js';
import { computersPage, listMachines, machinesMissing, type MachineFilter, type MachineQuery } from '../src/db/machines.js';
import { ANALYZED_TABLES } from '../src/db/tableStatistics.js';
import * as schema from '../src/db/schema.js';
import type { MachineSort } from '../src/fleet/machineOrder.js';
import { BENCH_THRESHOLDS_ENV, RARE_CVE, startFleetDatabase } from './fleetGenerate.js';

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

function describePlan(node: PlanNode, depth = 0): string[] {
  const on = node['Relation Name'] ? ` on ${node['Relation Name']}` : '';
  const via = node['Index Name'] ? ` using ${node['Index Name']}` : '';
  const removed = node['Rows Removed by Filter'] ? `, ${node['Rows Removed by Filter']} removed by filter` : '';
  const pages = (node['Shared Hit Blocks'] ?? 0) + (node['Shared Read Blocks'] ?? 0);
  const line = `${'  '.repeat(depth + 2)}${node['Node Type']}${on}${via}: ${node['Actual Rows'] ?? '?'} rows × ${node['Actual Loops'] ?? 1}${removed}, ${pages} pages`;
  return [line, ...(node.Plans ?? []).flatMap((child) => describePlan(child, depth + 1))];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, plans: { type: 'boolean', default: false }, timeout: { type: 'string', default: '60' }, only: { type: 'string' }, analyze: { type: 'string' } } });
  if (!values.dir) throw new Error('--dir is required: the folder of a fleet made by bench/fleetGenerate.ts');
  const pg = await startFleetDatabase(values.dir);
  const plans: Array<{ ms: number; pages: number; plan: PlanNode; text: string }> = [];
  const sql = postgres(pg.url, {
    max: 1,
    onnotice: (notice) => {
      const text = String(notice.message ?? '');
      const at = text.indexOf('{');
      if (!text.startsWith('duration:') || at < 0) return;
      const parsed = JSON.parse(text.slice(at)) as { 'Query Text': string; Plan: PlanNode };
      const ms = Number(/^duration: ([\d.]+) ms/.exec(text)?.[1] ?? Number.NaN);
      plans.push({ ms, pages: (parsed.Plan['Shared Hit Blocks'] ?? 0) + (parsed.Plan['Shared Read Blocks'] ?? 0), plan: parsed.Plan, text: parsed['Query Text'] });
    },
  });
  const db = drizzle(sql, { schema });
  try {
    for (const table of values.analyze?.split(',').filter(Boolean) ?? []) {
      if (!(ANALYZED_TABLES as readonly string[]).includes(table)) throw new Error(`--analyze: ${table} is not one of ${ANALYZED_TABLES.join(', ')}`);
      await sql.unsafe(`analyze ${table}`);
    }
    await sql`load 'auto_explain'`;
    await sql.unsafe(`set auto_explain.log_min_duration = 0; set auto_explain.log_analyze = on; set auto_explain.log_buffers = on;
      set auto_explain.log_format = json; set auto_explain.log_level = notice; set auto_explain.log_nested_statements = on;
      set statement_timeout = '${Number(values.timeout)}s'`);
    const [fleet] = await sql<Array<{ machines: number; pages: number; rare: string; deep: string }>>`
      select (select count(*)::int from machines where removed_at is null) as machines, (select relpages::int from pg_class where relname = 'machines') as pages,
             (select name from machines order by name offset (select count(*) * 9 / 10 from machines) limit 1) as deep, 'rare-tool' as rare`;
    const [deepRow] = await sql<Array<{ id: string; name: string }>>`select id, name from machines where name = ${fleet!.deep} order by id limit 1`;
    const { thresholds } = loadConfig(BENCH_THRESHOLDS_ENV);
    const page = (filter: MachineFilter, sort: MachineSort, extra: Partial<MachineQuery> = {}) => () =>
      listMachines(db, { filter, sort, offset: 0, limit: 50, now: new Date(), thresholds, count: false, ...extra });
    const byName: MachineSort = { field: 'NAME', direction: 'ASC' };
    // The maintained counts are read at the thresholds their states were stored with (the
    // generator's week, as the page's): other thresholds would re-evaluate every machine first.
    const summaryCounts = () => maintainedSummaryCounts(db, new Date(), thresholds);
    const tagGroups = (tag: string, of: { osType?: OsType; overdue?: boolean } = {}) => () => maintainedTagGroups(db, tag, new Date(), thresholds, of);
    const both = (a: () => Promise<unknown>, b: () => Promise<unknown>) => () => Promise.all([a(), b()]);
    // As the API reads a page with its count (one tag with another condition: the count first, the page only when something matches; a count no maintained one covers up to 10,001 matches).
    const countThenPage = (filter: MachineFilter) => () => computersPage(db, { filter, sort: byName, offset: 0, limit: 50, now: new Date(), thresholds });
    const byCompliance: MachineSort = { field: 'COMPLIANCE', direction: 'ASC' };
    const deepOffset = Math.floor((fleet!.machines * 9) / 10);
    const paths: Array<[string, () => Promise<unknown>]> = [
      ['computers page (by compliance)', page({}, byCompliance)],
      ['computers page (by name)', page({}, byName)],
      ['deep page by position (by name, 90 %)', page({}, byName, { after: { key: null, name: deepRow!.name, id: deepRow!.id } })],
      ['deep page by offset (by name, 90 %)', page({}, byName, { offset: deepOffset })],
      ['deep page by position (by compliance, COMPLIANT set)', page({}, byCompliance, { after: { key: 2n, name: deepRow!.name, id: deepRow!.id } })],
      ['filter compliance NOT_ASSESSED', page({ compliance: ['NOT_ASSESSED'] }, byName)],
      ['filter readiness DISCONNECTED', page({ readiness: ['DISCONNECTED'] }, byName)],
      ['filter overdue', page({ overdue: true }, byName)],
      ['filter overdue and READY, with its count', both(page({ overdue: true, readiness: ['READY'] }, byName), summaryCounts)],
      // As the service counts them: the page, and the maintained counts per OS type or tag, overdue and state (0046, 0047, 0052, 0056).
      ['filter OS type WINDOWS (none), with its count', both(page({ osType: 'WINDOWS' }, byName), summaryCounts)],
      ['filter OS type LINUX (all), with its count', both(page({ osType: 'LINUX' }, byName), summaryCounts)],
      ['filter OS type LINUX and NON_COMPLIANT, with its count', both(page({ osType: 'LINUX', compliance: ['NON_COMPLIANT'] }, byName), summaryCounts)],
      ['filter tag "rare", with its count', both(page({ tags: ['rare'] }, byName), tagGroups('rare'))],
      ['filter tag "env:prod" (one in ten), with its count', both(page({ tags: ['env:prod'] }, byName), tagGroups('env:prod'))],
      ['filter tag "env:prod" and NON_COMPLIANT, with its count', countThenPage({ tags: ['env:prod'], compliance: ['NON_COMPLIANT'] })],
      ['filter tag "env:prod", OS type LINUX and NON_COMPLIANT, with its count', countThenPage({ tags: ['env:prod'], osType: 'LINUX', compliance: ['NON_COMPLIANT'] })],
      ['filter tag "env:prod" and DISCONNECTED (20 of its 100,000 after bench/fleetQueries.ts --disconnect-prod), with its count', countThenPage({ tags: ['env:prod'], readiness: ['DISCONNECTED'] })],
      ['filter overdue and OS type LINUX, with its count', both(page({ overdue: true, osType: 'LINUX' }, byName), summaryCounts)],
      ['filter overdue and tag "env:prod" (none match), with its count', countThenPage({ overdue: true, tags: ['env:prod'] })],
      ['filter not overdue and tag "env:prod", with its count', countThenPage({ overdue: false, tags: ['env:prod'] })],
      // Counted with the page up to MATCHES_COUNTED_UP_TO (no maintained count covers them).
      ['filter tags "rare" and "env:prod", with its count', countThenPage({ tags: ['rare', 'env:prod'] })],
      ['filter name contains "12345", with its count', countThenPage({ nameContains: '12345' })],
      ['filter name contains "VM-0" (every name), with its count', countThenPage({ nameContains: 'VM-0' })],
      // Parts of one or two characters (machine_name_grams, 0058).
      ['filter name contains "zz" (no name), with its count', countThenPage({ nameContains: 'zz' })],
      ['filter name contains "77" (one name in 28), with its count', countThenPage({ nameContains: '77' })],
      ['filter name contains "v" (every name), with its count', countThenPage({ nameContains: 'v' })],
      ['filter name contains "77" and NON_COMPLIANT, with its count', countThenPage({ nameContains: '77', compliance: ['NON_COMPLIANT'] })],
      ['sort by critical and security count, name contains "zz"', page({ nameContains: 'zz' }, { field: 'CRITICAL_AND_SECURITY_COUNT', direction: 'DESC' })],
      ['sort by critical and security count', page({}, { field: 'CRITICAL_AND_SECURITY_COUNT', direction: 'DESC' })],
      ['sort by other count', page({}, { field: 'OTHER_COUNT', direction: 'DESC' })],
      ['sort by last seen', page({}, { field: 'LAST_SEEN', direction: 'DESC' })],
      ['complianceSummary', () => maintainedComplianceSummary(db, new Date(), thresholds)],
      ['missingUpdates', () => maintainedMissingUpdateGroups(db)],
      ['machines missing a rare update', () => machinesMissing(db, { name: fleet!.rare, classification: 'OTHER' }, 0, 50)],
      ['machines missing a common update', () => machinesMissing(db, { name: 'pkg-001', classification: 'SECURITY' }, 0, 50)],
      ['agentVersions', () => agentVersionRows(db)],
      ["the rare update's CVE exposure (cveCandidates)", () => cveCandidates(db, RARE_CVE)],
      ["one CVE's exposure, one machine in five (cveCandidates, every exposed machine)", () => cveCandidates(db, 'CVE-2026-10001')],
      ["one CVE's figures, one machine in five (cveFigures: count, severity)", () => cveFigures(db, 'CVE-2026-10001')],
      ["one CVE's first page, one machine in five (cveCandidatesByName)", () => cveCandidatesByName(db, 'CVE-2026-10001', 0, 50)],
      // With the fixes bench/fleetQueries.ts --import-fixes imports (none otherwise: both then read nothing).
      ["one CVE only an imported fix names, its count (importedExposureGroups)", () => importedExposureGroups(db, 'CVE-2026-20008', false)],
      ["one CVE only an imported fix names, its first page (cveCandidatesByName, dpkg_reaches_fix)", () => cveCandidatesByName(db, 'CVE-2026-20008', 0, 50, true)],
    ];
    console.log(`${fleet!.machines} machines, machines table ${fleet!.pages} pages; a statement touching more than ${Math.round(fleet!.pages / 10)} pages reads the fleet\n`);
    console.log('| read path | wall | statements | ms in PostgreSQL | pages touched | reads the whole fleet? |\n|---|---|---|---|---|---|');
    const details: string[] = [];
    for (const [name, run] of paths) {
      if (values.only && !name.toLowerCase().includes(values.only.toLowerCase())) continue;
      plans.length = 0;
      const t = performance.now();
      let outcome = '';
      try {
        await run();
      } catch (error) {
        // 57014: canceled by statement_timeout.
        outcome = ` (${(error as { code?: string }).code === '57014' ? `cut at ${values.timeout} s` : (error as Error).message.split('\n')[0]})`;
      }
      const wall = performance.now() - t;
      const pages = plans.reduce((n, p) => n + p.pages, 0);
      const whole = plans.filter((p) => p.pages > fleet!.pages / 10);
      console.log(`| ${name} | ${wall.toFixed(1)} ms${outcome} | ${plans.length} | ${plans.reduce((n, p) => n + p.ms, 0).toFixed(1)} | ${pages} | ${whole.length > 0 || outcome ? 'yes' : 'no'} |`);
      for (const p of values.plans ? plans : whole) details.push(`${name}: ${p.ms.toFixed(1)} ms, ${p.pages} pages\n${describePlan(p.plan).join('\n')}`);
    }
    if (details.length > 0) console.log(`\n${details.join('\n\n')}`);
  } finally {
    await sql.end();
    await pg.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
