/**
 * The fleet view at 10k / 50k / 100k machines with about 50 pending updates each: the `machines`
 * first page sorted by compliance, `complianceSummary` and `missingUpdates`, p50 / p95 over GraphQL
 * (HTTP, a VIEWER token), beside the database work in the same run (issue 7).
 *
 * Every read is of counts maintained with every change (docs/fleet-counts.md): the summary reads
 * fleet_summary_counts, the unfolded deltas and the machines whose summary state the clock has
 * changed since the last upkeep (index ranges of machines_summary_generation_next_at_idx; src/db/fleetSummary.ts),
 * and the page takes its totalCount from the same summary; the missing updates read
 * missing_update_counts and missing_update_details (src/db/fleetCounts.ts). So two database figures:
 * - "db per read": what one GraphQL read runs in the database (the page's set queries through
 *   src/db/machines.ts's listMachines without a count, plus the maintained summary for its count;
 *   the maintained summary; the maintained missing-update counts);
 * - "full pass": what the read does not pay, and what each read cost before the counts were
 *   maintained: the exact count of every live machine (page), a summary recompute
 *   (complianceSummary, one pass over machines), a missing updates recompute (missingUpdateGroups).
 *
 * The fleet is loaded with COPY straight into machines, assessments and pending_updates (what an
 * agent's first report writes, with the same keys and indexes), from src/simulator's synthetic
 * machines: ~50 updates each (25–75), 5 % CRITICAL, 30 % SECURITY; one machine in five has no
 * security update left (COMPLIANT), one in twenty is NOT_ASSESSED, one in twenty DISCONNECTED.
 * Sizes grow in place: 10k, then 40k more for 50k, then 50k more for 100k. The loaded machines'
 * latest assessments are then added to the maintained counts with the statement the ingest runs
 * (src/db/fleetCounts.ts), 1,000 machines a statement (timed: "counts filled"); the machines' rows
 * are counted in the summary by the triggers as they are copied, and one upkeep pass then folds
 * those deltas and moves forward the machines whose state the clock changed (timed). After each size the
 * database's size per pending update row (table and indexes of machines, assessments and
 * pending_updates) and what 1,000,000 machines would take at that rate, against the free disk:
 * check it before asking for a size.
 *
 * With --baselines (issue 17), after each load: every update kind first seen 0–29 days ago, the
 * machines with an even number tagged env:prod, and one baseline for them saved (approve critical
 * and security after 7 days, reject one package, SLA critical 7 / important 15 / moderate 30 days):
 * its save is timed (a pass over the tagged machines' pending updates), and the summary then counts
 * compliance with the baseline and the overdue machines and updates.
 *
 * With --snapshot (issue 17, compliance history), after each load: the daily compliance snapshot
 * (src/db/complianceHistory.ts, takeComplianceSnapshot; one pass over machines, the overdue
 * machines' pending updates, rows per fleet, baseline, classification and tag) taken on demand
 * three times after one warm-up, with this process's heap before and after (the snapshot is
 * aggregated in PostgreSQL: the heap must not grow with the fleet).
 *
 * With --export (issue 17, exports), after each load: the computers view and the missing updates,
 * CSV then JSON, each through the path a user takes: the `createExport` mutation over GraphQL for a
 * signed link, then a GET of that link read to its end as it streams. Per export: rows (counted in
 * the body, and checked against a count in the database), bytes, seconds from the GET to the last
 * byte, rows/s, and the API process's memory (it is a separate process: heap used from its
 * /metrics, RSS from /proc) before and after, with the highest RSS sampled every 100 ms between.
 * The heap read over /metrics is without a forced collection: it includes garbage, so its rise is
 * an upper bound; the RSS peak is what the export cost the host.
 *
 * With --dir (issue 18, goal 2), no load: the fleet is the one bench/fleetGenerate.ts made in that
 * folder (its PostgreSQL started there and kept), measured at its size with the thresholds it was
 * made with (a week: nothing changes with the clock during the run, see its header). Three more
 * queries: a page filtered on one compliance state (machinesFiltered), a deep page 90 % into the
 * fleet by name through a position cursor (machinesDeep; its "full pass" column is the same page
 * by an old offset cursor, as it was read before), and the same by the page's own query.
 *
 * Issue 18, goal 2, with --dir: the reads that started from the whole fleet, each against how it read
 * before ("full pass" column): the machines missing the rare update (missingRare; before: walked by
 * name, BY_NAME) and a common one (missingCommon, BY_NAME both ways: the chosen read), one CVE's
 * exposure for the rare update's CVE (cveRare; before: the join of every live machine's pending
 * updates, read once), the same for a catalog CVE about one machine in five is exposed to
 * (cveCommon: its count maintained and its first page walked by name; before: every exposed
 * machine computed from the rows of the update naming it, read once), the OS type and tag filters with their counts
 * (machinesOsType for a type no machine has, machinesOsTypeAll for the type of every machine, both
 * counted from the maintained counts per OS type and state, 0046; before: the read with its count of every match,
 * the migration 0033 index dropped in a transaction rolled back), the OS type with a compliance state
 * (machinesOsCompliance, counted the same way; before: with its count of every match), a tag one machine in
 * ten carries with a compliance state (machinesTagCompliance, counted from the counts per tag and state,
 * 0047; before: with its count of every match), the same with the OS type (machinesTagOs, counted
 * from the counts per tag, OS type and state, 0052; before: with its count of every match), the
 * overdue machines that are READY (machinesOverdue, one machine in twenty-five overdue, counted from
 * the summary's overdue machines per state, 0053; before: with its count of every match), and the tag filter (machinesTag,
 * counted from the maintained count per tag, 0038; before: the page with its count of the tag's
 * machines).
 *
 * Issue 18, goal 2, the CVE list (cves): its first page, the advisories' CVEs counted from
 * cve_exposure_counts (migration 0043) and the imported fixes' candidates as before (cveListFigures);
 * before ("full pass"): advisoryCves and trackerCandidates, the pass over every live machine's pending
 * updates the list read on every request (on a generated fleet, three runs after one warm-up).
 *
 * Issue 18, goal 2, the next pass: the first page sorted by critical and security updates, most
 * first (machinesUrgent), and by other updates, fewest first (machinesOther), each with the
 * summary's count (before: the same page without the 0039 indexes, a top-N sort of every live
 * machine), and part of a name that 100 machines carry (machinesName, --dir only: page and count;
 * before: without the 0040 trigram index).
 *
 * Issue 18, goal 2, filters no maintained count covers (--dir only), read as the API reads them
 * (computersPage: the count up to MATCHES_COUNTED_UP_TO): a part every name holds (machinesNameCommon,
 * `VM-0`) and two tags (machinesTwoTags, the 1,000 `rare` machines, all `env:prod`); before: the page
 * with its count of every match.
 *
 * Parts of a name of one and two characters (--dir only; machine_name_grams, migration 0058), read as
 * the API reads them: none of the generated names holds `zz` (machinesNameShortNone) or `q`
 * (machinesNameCharNone), every one holds `-0` (machinesNameShortCommon) and `v`
 * (machinesNameCharCommon); before: the page and its count with the part as ILIKE. A part every name
 * holds with conditions the maintained counts say none (machinesNameNoneMeet) or 20 machines
 * (machinesNameTagFew, after --disconnect-prod) meet; before: the walk without those counts first.
 *
 * --disconnect-prod (with --dir; it stays in that fleet's database): the first 20 machines of
 * `env:prod` by name silent for 8 days (DISCONNECTED at the fleet's week), so that a tag has a
 * condition few of its machines meet (machinesTagFew; the generated fleet's conditions hold for all
 * or none of a tag's machines).
 *
 * --import-fixes (with --dir; they stay in that fleet's database): Debian tracker fixes for the
 * common CVE-2026-10001 (which advisories also name) and for CVE-2026-20008 (cveImported: named by no
 * advisory, as a Debian fleet's CVEs are), each reaching every machine that lists its package, through
 * replaceImportedFixes. cve(id) then counts the fixes' machines in SQL (importedExposureGroups) and
 * walks the page by name with dpkg_reaches_fix in the probe; before ("full pass"): every exposed
 * machine computed (cveCandidates), which cve(id) of a CVE with an imported fix read before.
 *
 * --skip-full: no "full pass" (at 1M the CVE list's takes about a minute a run).
 *
 * Run:  npx tsx bench/fleetQueries.ts [--sizes 10000,50000,100000] [--runs 15] [--updates 50]
 *                                     [--queries machinesPage,complianceSummary,missingUpdates] [--baselines] [--snapshot] [--export]
 *       npx tsx bench/fleetQueries.ts --dir /var/tmp/fleetpatch-fleet-1m [--runs 15]
 *                                     [--queries machinesPage,machinesFiltered,machinesDeep,complianceSummary,missingUpdates]
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests).
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import type { PendingUpdate } from '../src/agent/backends/types.js';
import { loadConfig } from '../src/config.js';
import { saveBaseline } from '../src/db/baselines.js';
import { takeComplianceSnapshot } from '../src/db/complianceHistory.js';
import { applyMissingUpdateDelta, maintainedMissingUpdateGroups } from '../src/db/fleetCounts.js';
import { fleetSummaryUpkeep, maintainedComplianceSummary, maintainedSummaryCounts, maintainedTagGroups } from '../src/db/fleetSummary.js';
import { complianceSummary, computersPage, listMachines, machineConditions, machinesMissing, missingUpdateGroups, type MachineFilter } from '../src/db/machines.js';
import { MISSING_MACHINES_ROWS_BUDGET } from '../src/fleet/missingUpdates.js';
import { MATCHES_COUNTED_UP_TO } from '../src/fleet/fleetSummary.js';
import { advisoryCves, cveCandidates, cveCandidatesByName, cveFigures, cveFiguresWithImports, cveListFigures, cveStoredRows, replaceImportedFixes, trackerCandidates } from '../src/db/cves.js';
import type { TrackerFix } from '../src/fleet/cves.js';
import type { Db } from '../src/db/client.js';
import { asc, sql } from 'drizzle-orm';
import { machines } from '../src/db/schema.js';
import { createApiToken } from '../src/db/tokens.js';
import { DEFAULT_PROFILE, SyntheticMachine } from '../src/simulator/syntheticMachine.js';
import { encodeMachineCursor } from '../src/api/machines/machineCursor.js';
import type { MachinePosition, MachineSort } from '../src/fleet/machineOrder.js';
import { BENCH_THRESHOLDS_ENV, RARE_CVE } from './fleetGenerate.js';
import { checkAborted, installInterruptHandler, loadAverages, quantile, runBenchmark, startStack, type Stack } from './freshness.js';

const say = (line: string) => console.log(line);

function field(value: string | number | boolean | null | string[]): string {
  if (value === null) return '\\N';
  if (Array.isArray(value)) return `{${value.map((v) => `"${v}"`).join(',')}}`;
  return String(value);
}

async function copy(stack: Stack, statement: string, rows: Iterable<string>): Promise<void> {
  const writable = await stack.database.sql.unsafe(statement).writable();
  await pipeline(Readable.from(rows), writable);
}

/** Machines from..to (exclusive) with their assessments and pending updates, by COPY, and in the maintained counts. Returns rows of pending_updates and the seconds the counts took. */
async function loadFleet(stack: Stack, from: number, to: number, updatesPerMachine: number): Promise<{ rows: number; countsSeconds: number }> {
  const profile = { ...DEFAULT_PROFILE, updatesPerMachine };
  const now = Date.now();
  const fleet: Array<{ i: number; machineId: string; assessmentId: string; updates: PendingUpdate[]; assessedAt: string; seenAt: string }> = [];
  for (let i = from; i < to; i++) {
    let updates = new SyntheticMachine(i, profile, 1).pendingUpdates();
    if (i % 5 === 0) updates = updates.filter((u) => u.classification === 'OTHER');
    const assessedAt = new Date(i % 20 === 1 ? now - 5 * 3600_000 : now - (i % 3600) * 1000).toISOString();
    const seenAt = new Date(i % 20 === 2 ? now - 2 * 3600_000 : now - (i % 60) * 1000).toISOString();
    fleet.push({ i, machineId: randomUUID(), assessmentId: randomUUID(), updates, assessedAt, seenAt });
  }
  const count = (updates: PendingUpdate[], c: string) => updates.filter((u) => u.classification === c).length;
  await copy(
    stack,
    'copy machines (id, name, os_type, os_name, os_version, environment, agent_version, package_manager, last_seen_at, last_assessed_at, latest_assessment_id, critical_count, security_count, other_count) from stdin',
    (function* () {
      for (const m of fleet) {
        const critical = count(m.updates, 'CRITICAL');
        const security = count(m.updates, 'SECURITY');
        yield [m.machineId, `vm-${String(m.i).padStart(6, '0')}`, 'LINUX', 'Debian GNU/Linux 12 (bookworm)', '12', 'AWS', 'simulated', 'apt', m.seenAt, m.assessedAt, m.assessmentId, critical, security, m.updates.length - critical - security].map(field).join('\t') + '\n';
      }
    })(),
  );
  await copy(
    stack,
    'copy assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count) from stdin',
    (function* () {
      for (const m of fleet) {
        const critical = count(m.updates, 'CRITICAL');
        const security = count(m.updates, 'SECURITY');
        yield [m.assessmentId, m.machineId, 'STARTUP', 'apt', m.assessedAt, m.assessedAt, m.assessedAt, false, critical, security, m.updates.length - critical - security].map(field).join('\t') + '\n';
      }
    })(),
  );
  let rows = 0;
  await copy(
    stack,
    'copy pending_updates (assessment_id, machine_id, name, arch, installed_version, available_version, classification, severity, advisory_ids, cve_ids, reboot_suggested, repository) from stdin',
    (function* () {
      for (const m of fleet) {
        for (const u of m.updates) {
          rows++;
          yield [m.assessmentId, m.machineId, u.name, u.arch ?? '', u.installedVersion, u.availableVersion, u.classification, u.severity, u.advisoryIds, u.cveIds, u.rebootSuggested, u.repository].map(field).join('\t') + '\n';
        }
      }
    })(),
  );
  await stack.database.sql`analyze machines`;
  await stack.database.sql`analyze assessments`;
  await stack.database.sql`analyze pending_updates`;
  const t = performance.now();
  for (let i = 0; i < fleet.length; i += 1000) {
    await applyMissingUpdateDelta(stack.database.sql, [], fleet.slice(i, i + 1000).map((m) => ({ osType: 'LINUX' as const, assessmentId: m.assessmentId })));
  }
  return { rows, countsSeconds: (performance.now() - t) / 1000 };
}

/** Bytes per pending update row of the fleet's tables (with their indexes and TOAST), and the free disk under PostgreSQL's data. */
async function diskUse(stack: Stack, rows: number): Promise<{ perRow: number; freeBytes: number }> {
  const [size] = await stack.database.sql<Array<{ bytes: string; dir: string }>>`
    select (pg_total_relation_size('machines') + pg_total_relation_size('assessments') + pg_total_relation_size('pending_updates'))::text as bytes,
           current_setting('data_directory') as dir`;
  const free = fs.statfsSync(size!.dir);
  return { perRow: Number(size!.bytes) / rows, freeBytes: free.bavail * free.bsize };
}

/** Issue 17's baseline over the loaded fleet (see the header); returns the seconds its save took. */
async function applyBaseline(stack: Stack, id: string | null): Promise<{ id: string; seconds: number }> {
  await stack.database.sql`insert into update_first_seen (name, version, classification, severity, first_seen_at)
    select name, available_version, classification::text, coalesce(severity::text, ''), now() - (abs(hashtext(name || available_version)) % 30) * interval '1 day'
    from pending_updates group by 1, 2, 3, 4 on conflict do nothing`;
  await stack.database.sql`update machines set tags = '{env:prod}' where tags = '{}' and name ~ '[02468]$'`;
  const t = performance.now();
  const row = await saveBaseline(stack.database.db, id, {
    name: 'production',
    osType: 'LINUX',
    tags: ['env:prod'],
    priority: 0,
    rules: [{ classifications: ['CRITICAL', 'SECURITY'], severities: [], delayDays: 7 }],
    approvedPatterns: [],
    rejectedPatterns: ['openssl*'],
    slaTargets: [
      { severity: 'CRITICAL', days: 7 },
      { severity: 'IMPORTANT', days: 15 },
      { severity: 'MODERATE', days: 30 },
    ],
    timeZone: 'UTC',
  });
  if (!row || row === 'NAME_TAKEN') throw new Error('the baseline could not be saved');
  const seconds = (performance.now() - t) / 1000;
  // The save rewrote half the machines' rows: measure the fleet view as it is once autovacuum has
  // been by (right after, every read also steps over the dead row versions).
  await stack.database.sql`vacuum (analyze) machines`;
  return { id: row.id, seconds };
}

const PAGE_FIELDS = 'totalCount edges { node { id name compliance agentReadiness criticalAndSecurityCount otherCount } }';
/** The CVE --import-fixes imports a fix for that no advisory names: the generated catalog's pkg-008 (OTHER), fixed in its available version. */
const IMPORTED_ONLY_CVE = 'CVE-2026-20008';

/**
 * --import-fixes: Debian tracker fixes for the generated fleet (through the import's own write,
 * replacing the DEBIAN source): the common CVE-2026-10001 (pkg-001, which advisories also name) and
 * IMPORTED_ONLY_CVE (pkg-008), each fixed for bookworm in the version the catalog makes available,
 * so every machine listing the package is exposed; plus a hundred fixes for packages no machine has.
 */
const BENCH_FIXES: TrackerFix[] = [
  { cveId: 'CVE-2026-10001', package: 'pkg-001', release: 'bookworm', fixedVersion: '1.1.1', severity: 'IMPORTANT', description: null },
  { cveId: IMPORTED_ONLY_CVE, package: 'pkg-008', release: 'bookworm', fixedVersion: '1.8.1', severity: 'MODERATE', description: null },
  ...Array.from({ length: 100 }, (_, i) => ({ cveId: `CVE-2026-3${String(i).padStart(4, '0')}`, package: `absent-${i}`, release: 'bookworm', fixedVersion: '1.0', severity: 'LOW' as const, description: null })),
];

/** The position cursor of the machine 90 % into the fleet by name (set with --dir, before the deep page is read). */
let deepCursor = '';
const QUERIES = {
  machinesPage: `{ machines(first: 50, orderBy: {field: COMPLIANCE, direction: ASC}) { ${PAGE_FIELDS} } }`,
  machinesFiltered: `{ machines(first: 50, orderBy: {field: COMPLIANCE, direction: ASC}, filter: {compliance: [NOT_ASSESSED]}) { ${PAGE_FIELDS} } }`,
  get machinesDeep() {
    return `{ machines(first: 50, after: "${deepCursor}") { ${PAGE_FIELDS} } }`;
  },
  complianceSummary: '{ complianceSummary { total compliant nonCompliant notAssessed ready disconnected notConfigured overdueMachines overdueUpdates computedAt pendingByClassification { classification updateCount machineCount } } }',
  missingUpdates: '{ missingUpdates(first: 50) { totalCount computedAt edges { node { name classification severity availableVersions advisoryIds cveIds rebootSuggested machineCount } } } }',
  // Issue 18, goal 2, the reads that started from the fleet (--dir only: the generated fleet's rare update, CVEs and tag).
  missingRare: `{ missingUpdates(first: 1, filter: {nameContains: "rare-tool"}) { edges { node { name machines(first: 50) { totalCount edges { node { id name } } } } } } }`,
  missingCommon: `{ missingUpdates(first: 1, filter: {nameContains: "pkg-001"}) { edges { node { name machines(first: 50) { totalCount edges { node { id name } } } } } } }`,
  cveRare: `{ cve(id: "${RARE_CVE}") { machineCount exposures(first: 50) { totalCount edges { node { machine { name } source exposedSince } } } } }`,
  cveCommon: '{ cve(id: "CVE-2026-10001") { machineCount exposures(first: 50) { totalCount edges { node { machine { name } source exposedSince } } } } }',
  // A CVE only an imported fix names (--import-fixes), about one machine in four exposed: how a Debian fleet's CVEs look (apt's metadata names none).
  cveImported: `{ cve(id: "${IMPORTED_ONLY_CVE}") { machineCount exposures(first: 50) { totalCount edges { node { machine { name } source exposedSince } } } } }`,
  // The CVE list's first page (issue 18, goal 2): the advisories' CVEs from cve_exposure_counts (0043).
  cves: '{ cves(first: 50) { totalCount edges { node { id severity machineCount sources description } } } }',
  machinesOsType: `{ machines(first: 50, filter: {osType: WINDOWS}) { ${PAGE_FIELDS} } }`,
  machinesOsTypeAll: `{ machines(first: 50, filter: {osType: LINUX}) { ${PAGE_FIELDS} } }`,
  machinesOsCompliance: `{ machines(first: 50, filter: {osType: LINUX, compliance: [NON_COMPLIANT]}) { ${PAGE_FIELDS} } }`,
  machinesTagCompliance: `{ machines(first: 50, filter: {tags: ["env:prod"], compliance: [NON_COMPLIANT]}) { ${PAGE_FIELDS} } }`,
  machinesTagOs: `{ machines(first: 50, filter: {tags: ["env:prod"], osType: LINUX, compliance: [NON_COMPLIANT]}) { ${PAGE_FIELDS} } }`,
  machinesOverdue: `{ machines(first: 50, filter: {overdue: true, readiness: [READY]}) { ${PAGE_FIELDS} } }`,
  machinesOverdueOs: `{ machines(first: 50, filter: {overdue: true, osType: LINUX}) { ${PAGE_FIELDS} } }`,
  machinesOverdueTag: `{ machines(first: 50, filter: {overdue: true, tags: ["env:prod"]}) { ${PAGE_FIELDS} } }`,
  machinesTag: `{ machines(first: 50, filter: {tags: ["rare"]}) { ${PAGE_FIELDS} } }`,
  // Issue 18, goal 2, the next pass: the sorts by update counts, and part of a name (100 machines of the generated fleet).
  machinesUrgent: `{ machines(first: 50, orderBy: {field: CRITICAL_AND_SECURITY_COUNT, direction: DESC}) { ${PAGE_FIELDS} } }`,
  machinesOther: `{ machines(first: 50, orderBy: {field: OTHER_COUNT, direction: ASC}) { ${PAGE_FIELDS} } }`,
  machinesName: `{ machines(first: 50, filter: {nameContains: "M-01234"}) { ${PAGE_FIELDS} } }`,
  // Filters no maintained count covers, counted up to MATCHES_COUNTED_UP_TO: a part every name of the generated fleet holds, two tags (1,000 machines).
  machinesNameCommon: `{ machines(first: 50, filter: {nameContains: "VM-0"}) { ${PAGE_FIELDS} } }`,
  machinesTwoTags: `{ machines(first: 50, filter: {tags: ["env:prod", "rare"]}) { ${PAGE_FIELDS} } }`,
  // A tag with a condition few of its machines meet (--disconnect-prod: 20 of env:prod's 100,000 silent for 8 days).
  machinesTagFew: `{ machines(first: 50, filter: {tags: ["env:prod"], readiness: [DISCONNECTED]}) { ${PAGE_FIELDS} } }`,
  // Parts of a name of one and two characters (machine_name_grams, 0058): none of the generated names holds `zz` or `q`; all hold `-0` and `v`.
  machinesNameShortNone: `{ machines(first: 50, filter: {nameContains: "zz"}) { ${PAGE_FIELDS} } }`,
  machinesNameShortCommon: `{ machines(first: 50, filter: {nameContains: "-0"}) { ${PAGE_FIELDS} } }`,
  machinesNameCharNone: `{ machines(first: 50, filter: {nameContains: "q"}) { ${PAGE_FIELDS} } }`,
  machinesNameCharCommon: `{ machines(first: 50, filter: {nameContains: "v"}) { ${PAGE_FIELDS} } }`,
  // A part every name holds with conditions few or no machines meet (the maintained counts say so): none is compliant and disconnected; 20 of env:prod are disconnected (--disconnect-prod).
  machinesNameNoneMeet: `{ machines(first: 50, filter: {nameContains: "VM-0", compliance: [COMPLIANT], readiness: [DISCONNECTED]}) { ${PAGE_FIELDS} } }`,
  machinesNameTagFew: `{ machines(first: 50, filter: {nameContains: "VM-0", tags: ["env:prod"], readiness: [DISCONNECTED]}) { ${PAGE_FIELDS} } }`,
  // The known limit: a part about one name in twenty holds, with a condition most machines meet; counted up to 10,001 matches by walking the names.
  machinesNameCondition: `{ machines(first: 50, filter: {nameContains: "77", compliance: [NON_COMPLIANT]}) { ${PAGE_FIELDS} } }`,
};
const NAME_NONE_MEET: MachineFilter = { nameContains: 'VM-0', compliance: ['COMPLIANT'], readiness: ['DISCONNECTED'] };
const NAME_TAG_FEW: MachineFilter = { nameContains: 'VM-0', tags: ['env:prod'], readiness: ['DISCONNECTED'] };
const NAME_CONDITION: MachineFilter = { nameContains: '77', compliance: ['NON_COMPLIANT'] };
const OS_COMPLIANCE: MachineFilter = { osType: 'LINUX', compliance: ['NON_COMPLIANT'] };
const TAG_COMPLIANCE: MachineFilter = { tags: ['env:prod'], compliance: ['NON_COMPLIANT'] };
const TAG_OS: MachineFilter = { ...TAG_COMPLIANCE, osType: 'LINUX' };
const OVERDUE_READY: MachineFilter = { overdue: true, readiness: ['READY'] };
const OVERDUE_OS: MachineFilter = { overdue: true, osType: 'LINUX' };
const OVERDUE_TAG: MachineFilter = { overdue: true, tags: ['env:prod'] };
const TAG_FEW: MachineFilter = { tags: ['env:prod'], readiness: ['DISCONNECTED'] };
/** Not measured unless asked for with --queries (one read costs seconds). */
const ON_REQUEST: ReadonlyArray<keyof typeof QUERIES> = [];
/** Measured on a generated fleet only (--dir): they name what its generator made. */
const GENERATED_ONLY: ReadonlyArray<keyof typeof QUERIES> = ['missingRare', 'missingCommon', 'cveRare', 'cveCommon', 'cveImported', 'machinesOsType', 'machinesOsTypeAll', 'machinesOsCompliance', 'machinesTag', 'machinesTagCompliance', 'machinesTagOs', 'machinesOverdue', 'machinesOverdueOs', 'machinesOverdueTag', 'machinesName', 'machinesNameCommon', 'machinesTwoTags', 'machinesTagFew', 'machinesNameShortNone', 'machinesNameShortCommon', 'machinesNameCharNone', 'machinesNameCharCommon', 'machinesNameNoneMeet', 'machinesNameTagFew', 'machinesNameCondition'];

/** A page of the machines whose name holds `part` and its count up to MATCHES_COUNTED_UP_TO, with the part as ILIKE (before 0058). */
function partAsIlike(db: Db, part: string) {
  const holds = sql`${machines.removedAt} is null and ${machines.name} ilike ${`%${part}%`}`;
  return Promise.all([
    db.select().from(machines).where(holds).orderBy(asc(machines.name), asc(machines.id)).limit(51),
    db.select({ n: sql<number>`count(*)::int` }).from(db.select({ one: sql`1` }).from(machines).where(holds).limit(MATCHES_COUNTED_UP_TO + 1).as('matches')),
  ]);
}

/** The API process's memory: heap used (its /metrics, the Node default metrics) and RSS (/proc). */
async function serverMemory(stack: Stack): Promise<{ heap: number; rss: number }> {
  const text = await (await fetch(`${stack.baseUrl}/metrics`)).text();
  const heap = Number(/^fleetpatch_api_nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
  return { heap, rss: serverRss(stack) };
}

function serverRss(stack: Stack): number {
  const status = fs.readFileSync(`/proc/${stack.server.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN) * 1024;
}

const EXPORTS = [
  { kind: 'COMPUTERS', format: 'CSV' },
  { kind: 'COMPUTERS', format: 'JSON' },
  { kind: 'MISSING_UPDATES', format: 'CSV' },
  { kind: 'MISSING_UPDATES', format: 'JSON' },
] as const;

interface ExportFigure {
  kind: string;
  format: string;
  rows: number;
  bytes: number;
  linkMs: number;
  seconds: number;
  before: { heap: number; rss: number };
  after: { heap: number; rss: number };
  peakRss: number;
}

/**
 * One export as a user takes it: createExport for a signed link, then the GET, read as it streams.
 * Rows are counted from the body's line feeds (CSV: one line per row after the header; JSON: the
 * writer puts each object on its own line between "[" and "]"; neither kind has a line feed in a
 * cell).
 */
async function timeExport(stack: Stack, graphqlData: (query: string) => Promise<Record<string, unknown>>, kind: string, format: string): Promise<ExportFigure> {
  const before = await serverMemory(stack);
  let peakRss = before.rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, serverRss(stack));
  }, 100);
  try {
    const l = performance.now();
    const data = await graphqlData(`mutation { createExport(kind: ${kind}, format: ${format}) { url expiresAt fileName } }`);
    const linkMs = performance.now() - l;
    const url = new URL((data.createExport as { url: string }).url, stack.baseUrl);
    const t = performance.now();
    const response = await fetch(url);
    if (response.status !== 200 || !response.body) throw new Error(`export ${kind} ${format}: HTTP ${response.status} ${await response.text()}`);
    let bytes = 0;
    let lineFeeds = 0;
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.byteLength;
      for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lineFeeds++;
      checkAborted();
    }
    const seconds = (performance.now() - t) / 1000;
    peakRss = Math.max(peakRss, serverRss(stack));
    // CSV: header + one line per row. JSON: "[\n", one line per row, "\n]\n" (an empty export is "[\n\n]\n").
    const rows = format === 'CSV' ? lineFeeds - 1 : Math.max(0, lineFeeds - 2);
    return { kind, format, rows, bytes, linkMs, seconds, before, after: await serverMemory(stack), peakRss };
  } finally {
    clearInterval(sampler);
  }
}

/** One CVE's current candidates as cveCandidates read them before issue 18's goal 2: every live machine's latest pending updates joined and filtered. */
function candidatesByJoin(db: Db, cveId: string): Promise<unknown> {
  return db.execute(sql`
    select m.id, pu.name, pu.available_version, a.assessed_at
    from machines m join pending_updates pu on pu.assessment_id = m.latest_assessment_id join assessments a on a.id = m.latest_assessment_id
    where m.removed_at is null and (pu.cve_ids @> array[${cveId}]::text[] or exists (
      select 1 from cve_tracker_fixes t where t.cve_id = ${cveId} and t.package = coalesce(pu.source_package, pu.name)))`);
}

/** `read` as it ran before these indexes existed: in a transaction that drops them and is rolled back (it holds the table's lock meanwhile). */
async function withoutIndexes(db: Db, indexes: readonly string[], read: (tx: Db) => Promise<unknown>): Promise<void> {
  const rollback = new Error('rollback');
  await db
    .transaction(async (tx) => {
      for (const index of indexes) await tx.execute(sql.raw(`drop index ${index}`));
      await read(tx as unknown as Db);
      throw rollback;
    })
    .catch((error: unknown) => {
      if (error !== rollback) throw error;
    });
}

async function time(runs: number, fn: () => Promise<unknown>, warmUps = 2): Promise<number[]> {
  for (let i = 0; i < warmUps; i++) await fn(); // warm-up: plans cached, pages in shared buffers
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    checkAborted();
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  return samples;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { sizes: { type: 'string', default: '10000,50000,100000' }, runs: { type: 'string', default: '15' }, updates: { type: 'string', default: '50' }, queries: { type: 'string' }, baselines: { type: 'boolean', default: false }, snapshot: { type: 'boolean', default: false }, export: { type: 'boolean', default: false }, dir: { type: 'string' }, 'skip-full': { type: 'boolean', default: false }, 'import-fixes': { type: 'boolean', default: false }, 'disconnect-prod': { type: 'boolean', default: false } } });
  const generated = values.dir;
  const chosen = (
    values.queries ?? (generated ? (Object.keys(QUERIES) as Array<keyof typeof QUERIES>).filter((q) => !ON_REQUEST.includes(q)) : ['machinesPage', 'complianceSummary', 'missingUpdates']).join(',')
  ).split(',') as Array<keyof typeof QUERIES>;
  if (!generated && chosen.some((q) => GENERATED_ONLY.includes(q))) throw new Error(`--queries: ${GENERATED_ONLY.join(', ')} need a generated fleet (--dir)`);
  for (const q of chosen) if (!(q in QUERIES)) throw new Error(`--queries: unknown query ${q}; known: ${Object.keys(QUERIES).join(', ')}`);
  const sizes = values.sizes.split(',').map(Number);
  const runs = Number(values.runs);
  const loadAtStart = os.loadavg();
  installInterruptHandler();
  say(`fleet queries benchmark: ${sizes.join(', ')} machines, about ${values.updates} pending updates each, ${runs} timed runs per query (after 2 warm-ups)`);
  const stack = generated ? await startStack({ label: 'queries', postgresDir: generated, serverEnv: BENCH_THRESHOLDS_ENV }) : await startStack({ label: 'queries' });
  const results: string[] = [];
  try {
    const token = (await createApiToken(stack.database.db, { name: 'bench', role: 'VIEWER' })).secret;
    const config = loadConfig(generated ? BENCH_THRESHOLDS_ENV : {});
    const graphql = async (query: string) => {
      const response = await fetch(stack.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query }) });
      const body = (await response.json()) as { errors?: unknown };
      if (body.errors) throw new Error(`GraphQL: ${JSON.stringify(body.errors)}`);
    };
    const graphqlData = async (query: string) => {
      const response = await fetch(stack.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query }) });
      const body = (await response.json()) as { data?: Record<string, unknown>; errors?: unknown };
      if (body.errors || !body.data) throw new Error(`GraphQL: ${JSON.stringify(body.errors)}`);
      return body.data;
    };
    const exportLines: string[] = [];
    const db = stack.database.db;
    const page = (count: boolean) => () => listMachines(db, { filter: {}, sort: { field: 'COMPLIANCE', direction: 'ASC' }, offset: 0, limit: 50, now: new Date(), thresholds: config.thresholds, count });
    const readSummary = () => maintainedComplianceSummary(db, new Date(), config.thresholds);
    // As the service counts a filter on the OS type with compliance or readiness: the summary's counts, per OS type.
    const readCounts = () => maintainedSummaryCounts(db, new Date(), config.thresholds);
    let deep: { position: MachinePosition; offset: number } | undefined;
    const deepPage = (by: 'position' | 'offset') => () =>
      listMachines(db, { filter: {}, sort: { field: 'NAME', direction: 'ASC' }, offset: by === 'offset' ? deep!.offset : 0, after: by === 'position' ? deep!.position : undefined, limit: 50, now: new Date(), thresholds: config.thresholds, count: false });
    const filtered = () =>
      listMachines(db, { filter: { compliance: ['NOT_ASSESSED'] }, sort: { field: 'COMPLIANCE', direction: 'ASC' }, offset: 0, limit: 50, now: new Date(), thresholds: config.thresholds, count: false });
    const rare = { name: 'rare-tool', classification: 'OTHER' };
    const common = { name: 'pkg-001', classification: 'SECURITY' };
    const filteredBy = (filter: MachineFilter, count = true) => (tx: Db) =>
      listMachines(tx, { filter, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 50, now: new Date(), thresholds: config.thresholds, count });
    // As the API reads a page with its count (one tag with another condition: the count first, the page only when something matches).
    const computersPageOf = (filter: MachineFilter) => computersPage(db, { filter, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 50, now: new Date(), thresholds: config.thresholds });
    const sortedBy = (sort: MachineSort) => (tx: Db) => listMachines(tx, { filter: {}, sort, offset: 0, limit: 50, now: new Date(), thresholds: config.thresholds, count: false });
    const perRead: Record<keyof typeof QUERIES, () => Promise<unknown>> = {
      machinesPage: () => Promise.all([page(false)(), readSummary()]),
      machinesFiltered: () => Promise.all([filtered(), readSummary()]),
      machinesDeep: () => Promise.all([deepPage('position')(), readSummary()]),
      complianceSummary: readSummary,
      missingUpdates: () => maintainedMissingUpdateGroups(db),
      missingRare: () => machinesMissing(db, rare, 0, 50),
      missingCommon: () => machinesMissing(db, common, 0, 50),
      // As the service reads cve(id) with its first page: the maintained figures (and the imported fixes' machines counted, when a fix is imported), then every exposed machine (rare) or a page walked by name (common).
      cveRare: () => Promise.all([cveFigures(db, RARE_CVE), cveStoredRows(db, RARE_CVE, MISSING_MACHINES_ROWS_BUDGET), cveCandidates(db, RARE_CVE)]),
      cveCommon: () => Promise.all([cveFiguresWithImports(db, 'CVE-2026-10001'), cveCandidatesByName(db, 'CVE-2026-10001', 0, 50, values['import-fixes'])]),
      cveImported: () => Promise.all([cveFiguresWithImports(db, IMPORTED_ONLY_CVE), cveCandidatesByName(db, IMPORTED_ONLY_CVE, 0, 50, true)]),
      cves: () => cveListFigures(db),
      // As the service reads a filter on the OS type alone: the page, and the maintained count.
      machinesOsType: () => Promise.all([filteredBy({ osType: 'WINDOWS' }, false)(db), readCounts()]),
      machinesOsTypeAll: () => Promise.all([filteredBy({ osType: 'LINUX' }, false)(db), readCounts()]),
      machinesOsCompliance: () => Promise.all([filteredBy(OS_COMPLIANCE, false)(db), readCounts()]),
      // As the service reads a filter on one tag alone: the page, and the maintained count per tag.
      machinesTag: () => Promise.all([filteredBy({ tags: ['rare'] }, false)(db), maintainedTagGroups(db, 'rare', new Date(), config.thresholds)]),
      machinesTagCompliance: () => computersPageOf(TAG_COMPLIANCE),
      machinesTagOs: () => computersPageOf(TAG_OS),
      machinesOverdue: () => Promise.all([filteredBy(OVERDUE_READY, false)(db), readCounts()]),
      machinesOverdueOs: () => Promise.all([filteredBy(OVERDUE_OS, false)(db), readCounts()]),
      machinesOverdueTag: () => computersPageOf(OVERDUE_TAG),
      machinesUrgent: () => Promise.all([sortedBy({ field: 'CRITICAL_AND_SECURITY_COUNT', direction: 'DESC' })(db), readSummary()]),
      machinesOther: () => Promise.all([sortedBy({ field: 'OTHER_COUNT', direction: 'ASC' })(db), readSummary()]),
      machinesName: () => filteredBy({ nameContains: 'M-01234' })(db),
      machinesNameCommon: () => computersPageOf({ nameContains: 'VM-0' }),
      machinesTwoTags: () => computersPageOf({ tags: ['env:prod', 'rare'] }),
      machinesTagFew: () => computersPageOf(TAG_FEW),
      machinesNameShortNone: () => computersPageOf({ nameContains: 'zz' }),
      machinesNameShortCommon: () => computersPageOf({ nameContains: '-0' }),
      machinesNameCharNone: () => computersPageOf({ nameContains: 'q' }),
      machinesNameCharCommon: () => computersPageOf({ nameContains: 'v' }),
      machinesNameNoneMeet: () => computersPageOf(NAME_NONE_MEET),
      machinesNameTagFew: () => computersPageOf(NAME_TAG_FEW),
      machinesNameCondition: () => computersPageOf(NAME_CONDITION),
    };
    const fullPass: Record<keyof typeof QUERIES, () => Promise<unknown>> = {
      machinesPage: page(true),
      machinesFiltered: () => listMachines(db, { filter: { compliance: ['NOT_ASSESSED'] }, sort: { field: 'COMPLIANCE', direction: 'ASC' }, offset: 0, limit: 50, now: new Date(), thresholds: config.thresholds, count: true }),
      machinesDeep: deepPage('offset'),
      complianceSummary: () => complianceSummary(db, new Date(), config.thresholds),
      missingUpdates: () => missingUpdateGroups(db),
      // Before issue 18's goal 2 reads: the machines walked by name, the join of every live machine's pending updates, the filters without their indexes (dropped in a transaction rolled back).
      missingRare: () => machinesMissing(db, rare, 0, 50, 'BY_NAME'),
      missingCommon: () => machinesMissing(db, common, 0, 50, 'BY_NAME'),
      cveRare: () => candidatesByJoin(db, RARE_CVE),
      // Before the page was read by name: every exposed machine computed from the rows of the update naming it.
      cveCommon: () => cveCandidates(db, 'CVE-2026-10001'),
      // Before dpkg's order was in SQL: every exposed machine computed (cve(id) with an imported fix read that for its count too).
      cveImported: () => cveCandidates(db, IMPORTED_ONLY_CVE),
      // Before 0043: every live machine's pending updates naming a CVE, grouped per CVE with their machines, and the tracker's candidates.
      cves: () => Promise.all([advisoryCves(db), trackerCandidates(db)]),
      machinesOsType: () => withoutIndexes(db, ['machines_live_os_type_name_idx'], filteredBy({ osType: 'WINDOWS' })),
      machinesOsTypeAll: () => withoutIndexes(db, ['machines_live_os_type_name_idx'], filteredBy({ osType: 'LINUX' })),
      // Before 0046 and 0047: the page with its count of every match.
      machinesOsCompliance: () => filteredBy(OS_COMPLIANCE)(db),
      machinesTagCompliance: () => filteredBy(TAG_COMPLIANCE)(db),
      // Before 0052: a tag with the OS type counted every match.
      machinesTagOs: () => filteredBy(TAG_OS)(db),
      // Before 0053: overdue with readiness counted every overdue match.
      machinesOverdue: () => filteredBy(OVERDUE_READY)(db),
      // Before 0056: overdue with the OS type or a tag counted every match.
      machinesOverdueOs: () => filteredBy(OVERDUE_OS)(db),
      machinesOverdueTag: () => filteredBy(OVERDUE_TAG)(db),
      // Before 0038 and 0041: the page read from machines (the GIN's bitmap of the tag's machines, sorted by name) and its count of the tag's machines.
      machinesTag: () =>
        Promise.all([
          db.select().from(machines).where(machineConditions({ tags: ['rare'] }, new Date(), config.thresholds)).orderBy(asc(machines.name), asc(machines.id)).limit(51),
          db.select({ n: sql<number>`count(*)::int` }).from(machines).where(machineConditions({ tags: ['rare'] }, new Date(), config.thresholds)),
        ]),
      // Before 0039 and 0040: the same reads without their indexes (dropped in a transaction rolled back).
      machinesUrgent: () => withoutIndexes(db, ['machines_live_urgent_asc_idx', 'machines_live_urgent_desc_idx'], sortedBy({ field: 'CRITICAL_AND_SECURITY_COUNT', direction: 'DESC' })),
      machinesOther: () => withoutIndexes(db, ['machines_live_other_asc_idx', 'machines_live_other_desc_idx'], sortedBy({ field: 'OTHER_COUNT', direction: 'ASC' })),
      machinesName: () => withoutIndexes(db, ['machines_live_name_trgm_idx'], filteredBy({ nameContains: 'M-01234' })),
      // Before the bound: the page with its count of every match.
      machinesNameCommon: () => filteredBy({ nameContains: 'VM-0' })(db),
      machinesTwoTags: () => filteredBy({ tags: ['env:prod', 'rare'] })(db),
      // The same page with its count of every match (the page as it reads now: measure the walk before 0057 with that tree).
      machinesTagFew: () => filteredBy(TAG_FEW)(db),
      // Before 0058: the page and its count up to MATCHES_COUNTED_UP_TO with the part as ILIKE, as computersPage read it.
      machinesNameShortNone: () => partAsIlike(db, 'zz'),
      machinesNameShortCommon: () => partAsIlike(db, '-0'),
      machinesNameCharNone: () => partAsIlike(db, 'q'),
      machinesNameCharCommon: () => partAsIlike(db, 'v'),
      // Before the few meeting the other conditions were read first: the page and its count up to MATCHES_COUNTED_UP_TO along the names (or the tag's rows).
      machinesNameNoneMeet: () => listMachines(db, { filter: NAME_NONE_MEET, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 50, now: new Date(), thresholds: config.thresholds, countUpTo: MATCHES_COUNTED_UP_TO }),
      machinesNameTagFew: () => listMachines(db, { filter: NAME_TAG_FEW, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 50, now: new Date(), thresholds: config.thresholds, countUpTo: MATCHES_COUNTED_UP_TO }),
      // Without the bound: the page with its count of every match.
      machinesNameCondition: () => filteredBy(NAME_CONDITION)(db),
    };
    let loaded = 0;
    let totalRows = 0;
    let baselineId: string | null = null;
    if (generated) {
      const [fleet] = await stack.database.sql<Array<{ machines: number; rows: number }>>`
        select (select count(*)::int from machines where removed_at is null) as machines, (select reltuples::bigint::int from pg_class where relname = 'pending_updates') as rows`;
      sizes.splice(0, sizes.length, fleet!.machines);
      loaded = fleet!.machines;
      totalRows = fleet!.rows;
      const offset = Math.floor((fleet!.machines * 9) / 10);
      const [at] = await stack.database.sql<Array<{ id: string; name: string }>>`select id, name from machines where removed_at is null order by name, id offset ${offset - 1} limit 1`;
      deep = { position: { key: null, name: at!.name, id: at!.id }, offset };
      deepCursor = encodeMachineCursor({ field: 'NAME', direction: 'ASC' }, deep.position);
      if (values['disconnect-prod']) {
        await stack.database.sql`update machines set last_seen_at = now() - interval '8 days', summary_at = now()
          where id in (select machine_id from machine_tags where tag = 'env:prod' order by name, machine_id limit 20)`;
        say('the first 20 machines of env:prod by name: silent for 8 days (DISCONNECTED)');
      }
      if (values['import-fixes']) {
        await replaceImportedFixes(db, 'bench/fleetQueries.ts --import-fixes', [{ source: 'DEBIAN', fixes: BENCH_FIXES }]);
        say(`imported ${BENCH_FIXES.length} Debian tracker fixes (CVE-2026-10001 on pkg-001, ${IMPORTED_ONLY_CVE} on pkg-008, the rest for absent packages): they stay in ${generated}`);
      }
      say(`generated fleet in ${generated}: ${fleet!.machines} machines, about ${fleet!.rows} pending updates (the planner's estimate); the deep page starts after machine ${offset} by name (${at!.name})`);
    }
    for (const size of sizes) {
      const t = performance.now();
      // 10,000 machines at a time: 100k machines' updates at once do not fit a default Node heap.
      let countsSeconds = 0;
      for (let from = loaded; from < size; from += 10_000) {
        const chunk = await loadFleet(stack, from, Math.min(size, from + 10_000), Number(values.updates));
        totalRows += chunk.rows;
        countsSeconds += chunk.countsSeconds;
      }
      const seconds = (performance.now() - t) / 1000;
      const disk = await diskUse(stack, totalRows);
      const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;
      const [maintained] = await stack.database.sql<Array<{ counts: number; details: number }>>`
        select (select count(*)::int from missing_update_counts) as counts, (select count(*)::int from missing_update_details) as details`;
      say(`\n== ${size} machines (${totalRows} pending updates) ==\n  loaded ${size - loaded} machines by COPY in ${seconds.toFixed(1)} s, of which ${countsSeconds.toFixed(1)} s adding them to the maintained counts (${maintained!.counts} updates, ${maintained!.details} detail rows)`);
      const upkeepStarted = performance.now();
      const upkeep = await fleetSummaryUpkeep(db, new Date());
      say(`  summary upkeep after the load: ${upkeep.moved} machines moved forward, ${upkeep.folded} delta rows folded in ${((performance.now() - upkeepStarted) / 1000).toFixed(1)} s`);
      say(`  ${disk.perRow.toFixed(0)} bytes per pending update row: 1,000,000 machines × ${values.updates} would take about ${gb(disk.perRow * 1e6 * Number(values.updates))}; ${gb(disk.freeBytes)} free`);
      loaded = size;
      if (values.baselines) {
        const saved = await applyBaseline(stack, baselineId);
        baselineId = saved.id;
        const summary = await complianceSummary(db, new Date(), config.thresholds);
        say(`  baseline saved in ${saved.seconds.toFixed(1)} s; compliant ${summary.byCompliance.COMPLIANT}, non-compliant ${summary.byCompliance.NON_COMPLIANT}, not assessed ${summary.byCompliance.NOT_ASSESSED}; overdue: ${summary.overdueMachines} machines, ${summary.overdueUpdates} updates`);
      }
      const ms = (samples: number[]) => `${quantile(samples, 0.5).toFixed(1)} / ${quantile(samples, 0.95).toFixed(1)} ms`;
      if (values.snapshot) {
        const take = () => takeComplianceSnapshot(db, { now: new Date(), thresholds: config.thresholds, trigger: 'ON_DEMAND' });
        global.gc?.();
        const heapBefore = process.memoryUsage().heapUsed;
        let rows = 0;
        const samples = await time(3, async () => (rows = (await take()).rows), 1);
        global.gc?.();
        const heapAfter = process.memoryUsage().heapUsed;
        const line = `| ${size} | complianceSnapshot (${rows} rows) | — | — | ${ms(samples)} | heap ${(heapBefore / 2 ** 20).toFixed(0)} → ${(heapAfter / 2 ** 20).toFixed(0)} MB |`;
        say(line);
        results.push(line);
      }
      for (const name of chosen) {
        const api = await time(runs, () => graphql(QUERIES[name]));
        const read = perRead[name];
        const readSamples = await time(runs, read);
        // A missing updates recompute takes seconds at 50k machines and more: three runs, no warm-up;
        // on a generated fleet (a million machines) every full pass is three runs after one warm-up, and the missing updates recompute (minutes) is not run.
        // One CVE's exposure by the join over the fleet (tens of seconds at 1M) is read once, without a warm-up.
        const full = values['skip-full']
          ? []
          : generated
          ? name === 'missingUpdates'
            ? []
            : name === 'cveRare' || name === 'cveCommon' || name === 'cveImported'
              ? await time(1, fullPass[name], 0)
              : await time(3, fullPass[name], 1)
          : name === 'missingUpdates'
            ? await time(Math.min(runs, 3), fullPass[name], 0)
            : await time(runs, fullPass[name]);
        const line = full.length === 0 ? `| ${size} | ${name} | ${ms(api)} | ${ms(readSamples)} | not run | — |` : `| ${size} | ${name} | ${ms(api)} | ${ms(readSamples)} | ${ms(full)} | ${(quantile(full, 0.5) / quantile(api, 0.5)).toFixed(1)}× |`;
        say(line);
        results.push(line);
      }
      if (values.export) {
        const [expected] = await stack.database.sql<Array<{ computers: number; missing: number }>>`
          select (select count(*)::int from machines where removed_at is null) as computers,
                 (select count(*)::int from machines m join pending_updates p on p.assessment_id = m.latest_assessment_id where m.removed_at is null) as missing`;
        const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)}`;
        for (const { kind, format } of EXPORTS) {
          const f = await timeExport(stack, graphqlData, kind, format);
          const want = kind === 'COMPUTERS' ? expected!.computers : expected!.missing;
          const line = `| ${size} | ${kind} | ${format} | ${f.rows}${f.rows === want ? '' : ` (database: ${want}!)`} | ${(f.bytes / 1e6).toFixed(1)} MB | ${f.linkMs.toFixed(0)} ms | ${f.seconds.toFixed(2)} s | ${Math.round(f.rows / f.seconds)} | ${mib(f.before.heap)} → ${mib(f.after.heap)} MiB | ${mib(f.before.rss)} → ${mib(f.after.rss)} MiB (peak ${mib(f.peakRss)}) |`;
          say(line);
          exportLines.push(line);
        }
      }
    }
    if (exportLines.length > 0) {
      say('\n| machines | export | format | rows | bytes | createExport | GET to last byte | rows/s | API heap used before → after | API RSS before → after (peak) |');
      say('|---|---|---|---|---|---|---|---|---|---|');
      for (const line of exportLines) say(line);
    }
    say('\n| machines | query | GraphQL p50 / p95 | db per read p50 / p95 | full pass p50 / p95 (count / recompute) | full pass ÷ GraphQL (p50) |');
    say('|---|---|---|---|---|---|');
    for (const line of results) say(line);
    say(loadAverages(loadAtStart));
    return 0;
  } finally {
    await stack.stop();
  }
}

await runBenchmark(main);
