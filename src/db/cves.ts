import { desc, eq, sql, type SQL } from 'drizzle-orm';
import type { Classification, Severity } from '../domain/vocabulary.js';
import type { OsType } from '../fleet/compliance.js';
import { DEBIAN_CODENAMES, importedCveListFromCounts, originOfStoredSource, type CandidateMachine, type ImportedCveListFigure, type ImportedExposureGroup, type CandidateUpdate, type CveSource, type TrackerCandidate, type TrackerFix } from '../fleet/cves.js';
import type { ReservedSql, Sql } from 'postgres';
import type { Db } from './client.js';
import { cveFixRefreshPending, cveTrackerFixes, cveTrackerImports, machines, pendingUpdates } from './schema.js';

/*
 * The reads behind CVE exposure (the decisions are src/fleet/cves.ts) and the imports of fixes (the
 * Debian tracker's, OSV records'). apt rows are fetched by package name and release; whether their
 * versions bracket the fixed version is decided in TypeScript (compareDebianVersions) for the rows
 * fetched, and in SQL (dpkg_reaches_fix, its twin: migration 0044) where rows are only counted or probed.
 */

/** The package a tracker entry names for pending update `pu`: the twin of trackerPackage (src/fleet/cves.ts). */
const trackerPackageSql = sql.raw('coalesce(pu.source_package, pu.name)');

/**
 * Machine `m`'s release as imported fixes name it, the twin of fixRelease (src/fleet/cves.ts): a
 * Debian codename from the same table, or ubuntu:<VERSION_ID> (ubuntuReleaseKey) for an Ubuntu machine.
 */
const fixReleaseSql = sql.raw(
  `(case when m.package_manager = 'apt' and m.os_name ilike '%debian%' then (case split_part(m.os_version, '.', 1) ${Object.entries(DEBIAN_CODENAMES)
    .map(([version, codename]) => `when '${version}' then '${codename}'`)
    .join(' ')} end)` +
    ` when m.package_manager = 'apt' and m.os_name ilike '%ubuntu%' and m.os_version ~ '^[0-9]{2}[.][0-9]{2}$' then 'ubuntu:' || m.os_version end)`,
);

/** A database or a transaction: what the reads below need. */
type Reader = Pick<Db, 'execute'>;

type CandidateRow = {
  machine_id: string;
  machine_name: string;
  os_type: OsType;
  os_name: string;
  os_version: string;
  package_manager: string | null;
  tags: string[];
  management_enabled: boolean;
  name: string;
  source_package: string | null;
  installed_version: string | null;
  available_version: string;
  classification: Classification;
  severity: Severity | null;
  cve_ids: string[];
  assessed_at: Date | string;
};

const machineOf = (r: CandidateRow): CandidateMachine => ({
  id: r.machine_id,
  name: r.machine_name,
  osType: r.os_type,
  osName: r.os_name,
  osVersion: r.os_version,
  packageManager: r.package_manager,
  tags: r.tags,
  managementEnabled: r.management_enabled,
});

const updateOf = (r: CandidateRow): CandidateUpdate => ({
  name: r.name,
  sourcePackage: r.source_package,
  installedVersion: r.installed_version,
  availableVersion: r.available_version,
  classification: r.classification,
  severity: r.severity,
  cveIds: r.cve_ids,
});

/** The imported fixes of one CVE (every source's), each with whose word it is. */
export async function trackerFixesOf(db: Db, cveId: string): Promise<TrackerFix[]> {
  const rows = await db.select().from(cveTrackerFixes).where(sql`${cveTrackerFixes.cveId} = ${cveId}`).orderBy(cveTrackerFixes.source);
  return rows.map((r) => ({
    cveId: r.cveId,
    package: r.package,
    release: r.release,
    fixedVersion: r.fixedVersion,
    severity: r.severity,
    description: r.description,
    origin: originOfStoredSource(r.source),
  }));
}

/**
 * The pending updates that may fix the CVE: in the latest assessment of each live machine (current),
 * and in every assessment of those machines (history, to date the exposure). An update may fix it
 * when its advisories name it, or, on a Debian machine, when the tracker lists its package for the
 * machine's release.
 */
export async function cveCandidates(
  db: Reader,
  cveId: string,
  /** Only these machines (a page of them, cveCandidatesByName): read through their assessments instead of the updates' rows. */
  onlyMachines?: readonly string[],
): Promise<{ current: Array<{ machine: CandidateMachine; update: CandidateUpdate; assessedAt: Date }>; history: Array<{ machineId: string; update: CandidateUpdate; assessedAt: Date }> }> {
  const mayFix = sql`(pu.cve_ids @> array[${cveId}]::text[] or exists (
      select 1 from ${cveTrackerFixes} t where t.cve_id = ${cveId} and t.package = ${trackerPackageSql} and t.release = ${fixReleaseSql}))`;
  let current: CandidateRow[];
  let history: CandidateRow[];
  if (onlyMachines) {
    // A page's machines: every assessment's rows in one statement, the live machines' latest ones current.
    const rows = onlyMachines.length === 0 ? [] : await assessmentsCandidates(db, onlyMachines, mayFix);
    history = rows;
    current = rows.filter((r) => r.latest);
  } else {
    current = await updatesCandidates(db, cveId, mayFix);
    const machineIds = [...new Set(current.map((r) => r.machine_id))];
    history = machineIds.length === 0 ? [] : await assessmentsCandidates(db, machineIds, mayFix);
  }
  return {
    current: current.map((r) => ({ machine: machineOf(r), update: updateOf(r), assessedAt: new Date(r.assessed_at) })),
    history: history.map((r) => ({ machineId: r.machine_id, update: updateOf(r), assessedAt: new Date(r.assessed_at) })),
  };
}

/** The pending updates that may fix the CVE (`mayFix` on `pu` and `m`) in every assessment of these machines; `latest`: a live machine's latest assessment. */
function assessmentsCandidates(db: Reader, machineIds: readonly string[], mayFix: SQL) {
  return db.execute<CandidateRow & { latest: boolean }>(sql`
    select m.id as machine_id, m.name as machine_name, m.os_type, m.os_name, m.os_version, m.package_manager, m.tags, m.management_enabled,
           pu.name, pu.source_package, pu.installed_version, pu.available_version, pu.classification, pu.severity, pu.cve_ids, a.assessed_at,
           (a.id = m.latest_assessment_id and m.removed_at is null) as latest
    from ${machines} m
    join assessments a on a.machine_id = m.id
    join ${pendingUpdates} pu on pu.assessment_id = a.id
    where m.id = any(${sql.param([...machineIds])}::uuid[]) and ${mayFix}`);
}

/** The live machines' latest pending updates that may fix the CVE, found from the updates' rows (see cveCandidates). */
async function updatesCandidates(db: Reader, cveId: string, mayFix: SQL) {
  // Only the rows of the updates that may fix it are read, through their indexes (not every live
  // machine's pending updates): those whose advisories name it, as the maintained details of the
  // fleet's missing updates list them (exactly the combinations live machines' latest assessments
  // hold), and those of the packages an imported fix names (by name, or by source package). A row
  // found both ways comes twice: cveExposures keeps one entry per machine. Each lookup is a lateral
  // subquery kept apart (offset 0): the planner, estimating an update's rows at the catalog's
  // average (tens of thousands at 1M), hashed the whole machines table (and would scan
  // pending_updates for the tracker's packages) where the rows of a rare update are a few.
  const current = await db.execute<CandidateRow>(sql`
    with named as (
      select distinct d.name, d.classification from missing_update_details d where d.rows > 0 and d.cve_ids @> array[${cveId}]::text[]
    ),
    fixed as (
      select distinct t.package from ${cveTrackerFixes} t where t.cve_id = ${cveId}
    ),
    listed as (
      select p.* from named n cross join lateral (select * from ${pendingUpdates} p where p.name = n.name and p.classification = n.classification offset 0) p
      union all
      select p.* from fixed f cross join lateral (select * from ${pendingUpdates} p where p.name = f.package and p.source_package is null offset 0) p
      union all
      select p.* from fixed f cross join lateral (select * from ${pendingUpdates} p where p.source_package = f.package offset 0) p
    )
    select m.id as machine_id, m.name as machine_name, m.os_type, m.os_name, m.os_version, m.package_manager, m.tags, m.management_enabled,
           pu.name, pu.source_package, pu.installed_version, pu.available_version, pu.classification, pu.severity, pu.cve_ids, a.assessed_at
    from listed pu
    cross join lateral (select * from ${machines} m where m.id = pu.machine_id and m.latest_assessment_id = pu.assessment_id offset 0) m
    cross join lateral (select a.assessed_at from assessments a where a.id = m.latest_assessment_id offset 0) a
    where m.removed_at is null and ${mayFix}`);
  return current;
}

/**
 * One CVE's figures that choose how its exposed machines are read (cveExposureRead) and answer
 * `cve(id)` when no fix is imported for it: the live machines whose latest assessment lists an update
 * whose advisories name it (the maintained cve_exposure_counts), the highest severity of those updates
 * (the maintained missing_update_details), the fleet's size (the planner's estimate) and whether a fix
 * is imported for it. Reads neither machines nor pending_updates.
 */
export async function cveFigures(db: Reader, cveId: string): Promise<{ exposed: number; severity: Severity | null; fleet: number; imported: boolean }> {
  const [row] = await db.execute<{ exposed: number; severity: Severity | null; fleet: number; imported: boolean }>(sql`
    select coalesce((select c.machines from cve_exposure_counts c where c.cve_id = ${cveId}), 0)::int as exposed,
           (select min(d.severity)::text from missing_update_details d where d.rows > 0 and d.cve_ids @> array[${cveId}]::text[]) as severity,
           (select greatest(reltuples, 0)::float8 from pg_class where oid = 'machines'::regclass) as fleet,
           exists (select 1 from ${cveTrackerFixes} t where t.cve_id = ${cveId}) as imported`);
  return { exposed: row!.exposed, severity: row!.severity, fleet: Number(row!.fleet), imported: row!.imported };
}

/**
 * cveFigures, and when a fix is imported for the CVE the machines its fixes expose
 * (maintainedImportedGroups), in one read-only snapshot.
 */
export async function cveFiguresWithImports(db: Db, cveId: string): Promise<Awaited<ReturnType<typeof cveFigures>> & { groups: ImportedExposureGroup[] }> {
  return db.transaction(
    async (tx) => {
      const figures = await cveFigures(tx, cveId);
      return { ...figures, groups: figures.imported ? await maintainedImportedGroups(tx, cveId) : [] };
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

/**
 * The machines the CVE's imported fixes expose, grouped as importedExposureGroups groups them, from
 * the maintained counts (cve_fix_exposure_counts, migration 0048): a few rows per CVE, whatever the
 * fleet's size.
 */
export async function maintainedImportedGroups(db: Reader, cveId: string): Promise<ImportedExposureGroup[]> {
  const rows = await db.execute<{ rank: number; origin: CveSource; advisory_rank: number; machines: number }>(sql`
    select rank::int as rank, origin, advisory_rank::int as advisory_rank, machines from cve_fix_exposure_counts where cve_id = ${cveId} and machines > 0`);
  return rows.map((r) => ({ rank: r.rank, origin: r.origin, advisoryRank: r.advisory_rank < 0 ? null : r.advisory_rank, machines: r.machines }));
}

/**
 * Held shared by every transaction that computes a machine's imported-fix exposures (the ingest, a
 * check-in that changes the release), exclusively by an import while it replaces the fixes: an
 * exposure is never computed against fixes an import is replacing, and the machines an import
 * recomputes are found once every report stored before it is committed.
 */
export const FIX_LOCK = 0x6366_6978; // "cfix"

/**
 * Recomputes these machines' rows of cve_fix_exposures and the counts from them (cve_fix_refresh,
 * migrations 0048 and 0051): in the transaction that changed their latest assessment or removed
 * them, after the machines' rows are locked. `versions`: the versions of their rows, whose dpkg keys
 * are kept for the fleet first (those already kept cost a look-up); a key not kept is computed on
 * the spot.
 */
export async function refreshMachinesFixExposures(tx: ReservedSql | Sql, machineIds: readonly string[], versions: readonly string[] = []): Promise<void> {
  if (machineIds.length === 0) return;
  await tx.unsafe('select cve_fix_refresh($1::uuid[], $2::text[])', [[...machineIds].sort(), versions] as never[], { prepare: true });
}

/** The machines recomputed per transaction by refreshFixExposures. */
const REFRESH_PAGE = 500;

/**
 * Recomputes the imported-fix exposures of every live machine whose latest assessment lists a
 * package whose fixes an import changed (cve_fix_refresh_pending), a page of machines per
 * transaction, then forgets those packages. Runs after the import's commit (not a read path: it reads
 * every stored row of those packages); a report stored meanwhile computes its machine against the new
 * fixes itself. One cut short leaves the packages pending: the next import finishes them.
 */
export async function refreshFixExposures(db: Db): Promise<{ packages: number; machines: number }> {
  const pending = (await db.select().from(cveFixRefreshPending)).map((r) => r.package);
  if (pending.length === 0) return { packages: 0, machines: 0 };
  const rows = await db.execute<{ id: string }>(sql`
    select distinct m.id from (
      select p.machine_id, p.assessment_id from unnest(${sql.param(pending)}::text[]) as f(package)
      cross join lateral (select p.machine_id, p.assessment_id from ${pendingUpdates} p where p.name = f.package and p.source_package is null offset 0) p
      union all
      select p.machine_id, p.assessment_id from unnest(${sql.param(pending)}::text[]) as f(package)
      cross join lateral (select p.machine_id, p.assessment_id from ${pendingUpdates} p where p.source_package = f.package offset 0) p
    ) p
    join ${machines} m on m.id = p.machine_id and m.latest_assessment_id = p.assessment_id and m.removed_at is null
    order by m.id`);
  const ids = rows.map((r) => r.id);
  for (let i = 0; i < ids.length; i += REFRESH_PAGE) {
    // Shared, as the ingest: a later import's replacement waits for the page, and the page computes against the fixes as they are once it has the lock.
    await db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock_shared(${FIX_LOCK})`);
      await tx.execute(sql`select cve_fix_refresh(${sql.param(ids.slice(i, i + REFRESH_PAGE))}::uuid[])`);
    });
  }
  await db.delete(cveFixRefreshPending).where(sql`${cveFixRefreshPending.package} = any(${sql.param(pending)}::text[])`);
  return { packages: pending.length, machines: ids.length };
}

/**
 * The stored pending update rows of the updates whose advisories name the CVE and of the packages
 * its imported fixes name (every assessment's, not only the latest), counted up to `atMost + 1`
 * through pending_updates_name_idx and pending_updates_source_package_idx: what reading every
 * exposed machine would go through (cveExposureRead's budget).
 */
export async function cveStoredRows(db: Reader, cveId: string, atMost: number): Promise<number> {
  const [row] = await db.execute<{ n: number }>(sql`
    select count(*)::int as n from (
      select 1 from (select distinct d.name, d.classification from missing_update_details d where d.rows > 0 and d.cve_ids @> array[${cveId}]::text[]) n
      cross join lateral (select 1 from ${pendingUpdates} p where p.name = n.name and p.classification = n.classification offset 0) p
      union all
      select 1 from (select distinct t.package from ${cveTrackerFixes} t where t.cve_id = ${cveId}) f
      cross join lateral (select 1 from ${pendingUpdates} p where p.name = f.package and p.source_package is null offset 0) p
      union all
      select 1 from (select distinct t.package from ${cveTrackerFixes} t where t.cve_id = ${cveId}) f
      cross join lateral (select 1 from ${pendingUpdates} p where p.source_package = f.package offset 0) p
      limit ${atMost + 1}) r`);
  return row!.n;
}

/** A severity's rank in SQL (severityRank in src/fleet/cves.ts): CRITICAL 4 … LOW 1, none 0. */
const severityRankSql = (column: SQL) =>
  sql`(case ${column}::text when 'CRITICAL' then 4 when 'IMPORTANT' then 3 when 'MODERATE' then 2 when 'LOW' then 1 else 0 end)`;

/**
 * The live machines whose latest assessment lists a pending update that an imported fix of the CVE
 * reaches (dpkg_reaches_fix) and whose advisories do not name it, grouped by what each would show
 * (ImportedExposureGroup: its most severe such fix, the fix of a row being the first by source as
 * trackerFixesOf orders them, and the most severe of its updates naming the CVE). Reads the stored
 * rows of the packages the fixes name (every assessment's: by name without a source package, and by
 * source package), each machine of those rows by id, dpkg's order once per distinct package,
 * release and pair of versions, and, when `advisoryExposed` (the advisories count machines for the
 * CVE), the latest rows of the machines reached. Never the whole fleet; at 1M machines, all of a
 * common package's rows.
 */
export async function importedExposureGroups(db: Reader, cveId: string, advisoryExposed: boolean): Promise<ImportedExposureGroup[]> {
  const rows = await db.execute<{ rank: number; origin: CveSource; advisory_rank: number | null; machines: number }>(sql`
    with fixes as materialized (
      select t.package, t.release, t.fixed_version, t.severity, t.source from ${cveTrackerFixes} t where t.cve_id = ${cveId}
    ),
    packages as (select distinct package from fixes),
    listed as (
      select p.* from packages f cross join lateral (
        select p.machine_id, p.assessment_id, p.name, p.source_package, p.installed_version, p.available_version, p.cve_ids
        from ${pendingUpdates} p where p.name = f.package and p.source_package is null offset 0) p
      union all
      select p.* from packages f cross join lateral (
        select p.machine_id, p.assessment_id, p.name, p.source_package, p.installed_version, p.available_version, p.cve_ids
        from ${pendingUpdates} p where p.source_package = f.package offset 0) p
    ),
    live as materialized (
      select pu.machine_id, m.latest_assessment_id, ${trackerPackageSql} as package, ${fixReleaseSql} as release, pu.installed_version, pu.available_version
      from listed pu
      cross join lateral (select * from ${machines} m where m.id = pu.machine_id and m.latest_assessment_id = pu.assessment_id offset 0) m
      where m.removed_at is null and pu.installed_version is not null and not pu.cve_ids @> array[${cveId}]::text[]
    ),
    reached as materialized (
      select v.package, v.release, v.installed_version, v.available_version, f.rank, f.origin
      from (select distinct package, release, installed_version, available_version from live where release is not null) v
      cross join lateral (
        select ${severityRankSql(sql`t.severity`)} as rank, (case when t.source like 'OSV%' then 'OSV' else 'DEBIAN_TRACKER' end) as origin
        from fixes t where t.package = v.package and t.release = v.release and dpkg_reaches_fix(v.installed_version, t.fixed_version, v.available_version)
        order by t.source limit 1) f
    ),
    exposed as (
      select l.machine_id, min(l.latest_assessment_id::text)::uuid as assessment_id, max(r.rank) as rank,
             (array_agg(r.origin order by r.rank desc, r.origin collate "C"))[1] as origin
      from live l join reached r on r.package = l.package and r.release = l.release and r.installed_version = l.installed_version and r.available_version = l.available_version
      group by l.machine_id
    )
    select e.rank::int as rank, e.origin, a.rank::int as advisory_rank, count(*)::int as machines
    from exposed e
    cross join lateral (
      select max(${severityRankSql(sql`pu.severity`)}) as rank from ${pendingUpdates} pu
      where ${advisoryExposed} and pu.assessment_id = e.assessment_id and pu.cve_ids @> array[${cveId}]::text[]) a
    group by 1, 2, 3`);
  return rows.map((r) => ({ rank: r.rank, origin: r.origin, advisoryRank: r.advisory_rank, machines: r.machines }));
}

/**
 * The ids of a page of the live machines exposed to the CVE, by name (cveExposureRead's BY_NAME):
 * the machines walked through machines_live_name_idx, each one probed until the page is full: when
 * `imported` (a fix is imported for it), for its row in cve_fix_exposures (0048: kept with every
 * report, a row when one of its latest pending rows reaches an imported fix for its release, as
 * dpkg_reaches_fix decides; one look-up by key), then, when the advisories of some machine's updates
 * name the CVE (cve_exposure_counts, read once), its latest assessment's rows by the primary key of
 * pending_updates for an update whose advisories name it. The probe is a LATERAL with LIMIT 1, which
 * the planner cannot turn into a semi join: at 1M machines it underestimated an imported fix's
 * machines and hashed every pending row instead (72 s). Before, the imported fixes were compared
 * with each walked machine's rows (dpkg_reaches_fix per row of a fixed package): 12.8 ms for a first
 * page of a CVE a quarter of 1M machines are exposed to, 201 machines walked.
 */
export function cveExposurePageSql(cveId: string, offset: number, limit: number, imported: boolean): SQL {
  const byFix = imported ? sql`select 1 from cve_fix_exposures e where e.cve_id = ${cveId} and e.machine_id = m.id union all` : sql``;
  return sql`
    select m.id from ${machines} m
    cross join lateral (
      ${byFix}
      select 1 from ${pendingUpdates} pu
      where exists (select 1 from cve_exposure_counts c where c.cve_id = ${cveId} and c.machines > 0)
        and pu.assessment_id = m.latest_assessment_id and pu.cve_ids @> array[${cveId}]::text[]
      limit 1) probe
    where m.removed_at is null
    order by m.name, m.id offset ${offset} limit ${limit}`;
}

/** A page of the CVE's exposed machines by name (cveExposurePageSql), then the page's candidates (and their history, for exposedSince) read as cveCandidates reads them, in one snapshot. */
export async function cveCandidatesByName(db: Db, cveId: string, offset: number, limit: number, imported = false): ReturnType<typeof cveCandidates> {
  return db.transaction(
    async (tx) => {
      const page = await tx.execute<{ id: string }>(cveExposurePageSql(cveId, offset, limit, imported));
      return page.length === 0 ? { current: [], history: [] } : cveCandidates(tx, cveId, page.map((r) => r.id));
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

/** A CVE named by the advisories of updates the fleet misses: how many live machines miss one, and the highest severity. */
export interface AdvisoryCveCount {
  cveId: string;
  machineIds: string[];
  severity: Severity | null;
}

/**
 * Every CVE that the advisories of the fleet's missing updates name, with the machines missing a
 * fix (one scan of the latest assessments' updates that carry CVE ids): the full recompute that
 * maintainedAdvisoryCves replaces on the read path, kept to check it against (tests) and to measure
 * it (bench/fleetQueries.ts).
 */
export async function advisoryCves(db: Reader): Promise<AdvisoryCveCount[]> {
  const rows = await db.execute<{ cve_id: string; machine_ids: string[]; severity: Severity | null }>(sql`
    select c.cve_id, array_agg(distinct m.id::text) as machine_ids, min(pu.severity)::text as severity
    from ${machines} m
    join ${pendingUpdates} pu on pu.assessment_id = m.latest_assessment_id and cardinality(pu.cve_ids) > 0
    cross join lateral unnest(pu.cve_ids) as c(cve_id)
    where m.removed_at is null
    group by c.cve_id`);
  return rows.map((r) => ({ cveId: r.cve_id, machineIds: r.machine_ids, severity: r.severity }));
}

/**
 * The CVEs the advisories of the fleet's missing updates name, from the maintained figures
 * (docs/fleet-counts.md): the live machines per CVE (cve_exposure_counts, a machine once however many
 * of its updates name it) and the highest severity of the updates naming it (the maintained
 * missing_update_details: one row per kind of update the fleet misses, not per machine). Reads
 * neither machines nor pending_updates.
 */
export async function maintainedAdvisoryCves(db: Reader): Promise<Array<{ cveId: string; machineCount: number; severity: Severity | null }>> {
  const rows = await db.execute<{ cve_id: string; machines: number; severity: Severity | null }>(sql`
    select c.cve_id, c.machines, s.severity
    from cve_exposure_counts c
    left join (select x.cve_id, min(d.severity)::text as severity
               from missing_update_details d cross join lateral unnest(d.cve_ids) as x(cve_id)
               where d.rows > 0 and cardinality(d.cve_ids) > 0 group by 1) s on s.cve_id = c.cve_id
    where c.machines > 0`);
  return rows.map((r) => ({ cveId: r.cve_id, machineCount: r.machines, severity: r.severity }));
}

/**
 * Which of these (machine, CVE) pairs the CVE's advisory count already holds: the machine is live
 * and its latest assessment lists an update whose advisories name the CVE. Reads only those
 * machines' latest pending updates. Keys `<machine id> <CVE id>`.
 */
export async function advisoryExposedPairs(db: Reader, pairs: ReadonlyArray<{ machineId: string; cveId: string }>): Promise<Set<string>> {
  if (pairs.length === 0) return new Set();
  const rows = await db.execute<{ machine_id: string; cve_id: string }>(sql`
    select p.machine_id::text as machine_id, p.cve_id
    from unnest(${sql.param(pairs.map((p) => p.machineId))}::uuid[], ${sql.param(pairs.map((p) => p.cveId))}::text[]) as p(machine_id, cve_id)
    join ${machines} m on m.id = p.machine_id and m.removed_at is null
    where exists (select 1 from ${pendingUpdates} pu where pu.assessment_id = m.latest_assessment_id and pu.cve_ids @> array[p.cve_id])`);
  return new Set(rows.map((r) => `${r.machine_id} ${r.cve_id}`));
}

/**
 * What the CVE list needs, in one snapshot: the advisories' CVEs and what the imported fixes add
 * (importedCveListFromCounts), both from maintained counts: one row per CVE and kind, never a machine
 * or a pending update.
 */
export async function cveListFigures(db: Db): Promise<{
  advisory: Array<{ cveId: string; machineCount: number; severity: Severity | null }>;
  imported: ImportedCveListFigure[];
}> {
  return db.transaction(
    async (tx) => {
      const advisory = await maintainedAdvisoryCves(tx);
      const reach = await tx.execute<{ cve_id: string; rank: number; origin: CveSource; machines: number }>(sql`
        select cve_id, rank::int as rank, origin, machines from cve_fix_reach_counts where machines > 0`);
      const groups = await tx.execute<{ cve_id: string; machines: number }>(sql`
        select cve_id, sum(machines)::int as machines from cve_fix_exposure_counts where advisory_rank < 0 and machines > 0 group by 1`);
      const imported = importedCveListFromCounts(
        reach.map((r) => ({ cveId: r.cve_id, rank: r.rank, origin: r.origin, machines: r.machines })),
        groups.map((g) => ({ cveId: g.cve_id, advisoryRank: null, machines: g.machines })),
      );
      return { advisory, imported };
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

/**
 * The Debian and Ubuntu machines' pending updates whose package an imported fix lists for their
 * release, with each fix: the caller keeps those whose versions bracket the fixed version.
 */
export async function trackerCandidates(db: Reader): Promise<Array<TrackerCandidate & { origin: CveSource }>> {
  const rows = await db.execute<{ machine_id: string; installed_version: string | null; available_version: string; cve_id: string; fixed_version: string; severity: Severity | null; source: string }>(sql`
    select m.id as machine_id, pu.installed_version, pu.available_version, t.cve_id, t.fixed_version, t.severity, t.source
    from ${machines} m
    join ${pendingUpdates} pu on pu.assessment_id = m.latest_assessment_id
    join ${cveTrackerFixes} t on t.package = ${trackerPackageSql} and t.release = ${fixReleaseSql}
    where m.removed_at is null and m.package_manager = 'apt' and pu.installed_version is not null`);
  return rows.map((r) => ({
    machineId: r.machine_id,
    installedVersion: r.installed_version,
    availableVersion: r.available_version,
    cveId: r.cve_id,
    fixedVersion: r.fixed_version,
    severity: r.severity,
    origin: originOfStoredSource(r.source),
  }));
}

/** The description the tracker gives for each of these CVEs (the first one found). */
export async function trackerDescriptions(db: Db, cveIds: readonly string[]): Promise<Map<string, string>> {
  if (cveIds.length === 0) return new Map();
  const rows = await db.execute<{ cve_id: string; description: string }>(sql`
    select distinct on (cve_id) cve_id, description from ${cveTrackerFixes}
    where cve_id = any(${sql.param([...cveIds])}::text[]) and description is not null order by cve_id`);
  return new Map(rows.map((r) => [r.cve_id, r.description]));
}

export type TrackerImportRow = typeof cveTrackerImports.$inferSelect;

/**
 * Replaces each source's fixes with the ones given, all sources in one transaction: a failed import
 * leaves every previous one in place. One import row per source, in the order given.
 */
export async function replaceImportedFixes(db: Db, location: string, sources: ReadonlyArray<{ source: string; fixes: readonly TrackerFix[] }>): Promise<TrackerImportRow[]> {
  const imported = await db.transaction(async (tx) => {
    // Waits for the reports being stored (they compute exposures against the fixes), and holds new ones until the commit.
    await tx.execute(sql`select pg_advisory_xact_lock(${FIX_LOCK})`);
    const rows: TrackerImportRow[] = [];
    for (const { source, fixes } of sources) {
      await tx.execute(sql`create temporary table if not exists previous_fixes (cve_id text, package text, release text, fixed_version text, severity text) on commit drop`);
      await tx.execute(sql`delete from previous_fixes`);
      await tx.execute(sql`insert into previous_fixes select cve_id, package, release, fixed_version, severity::text from ${cveTrackerFixes} where source = ${source}`);
      await tx.delete(cveTrackerFixes).where(sql`${cveTrackerFixes.source} = ${source}`);
      // The tracker repeats nothing, but a hand-made file might: the first of a key is kept.
      const seen = new Set<string>();
      const unique = fixes.filter((f) => {
        const key = `${f.cveId}\0${f.package}\0${f.release}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
      for (let i = 0; i < unique.length; i += 2000) {
        await tx.insert(cveTrackerFixes).values(
          unique.slice(i, i + 2000).map((f) => ({ source, cveId: f.cveId, package: f.package, release: f.release, fixedVersion: f.fixedVersion, severity: f.severity, description: f.description })),
        );
      }
      const [row] = await tx
        .insert(cveTrackerImports)
        .values({ source, location, fixes: unique.length, cves: new Set(unique.map((f) => f.cveId)).size })
        .returning();
      rows.push(row!);
      // The packages whose fixes (of this source) were added, changed or removed: their machines' exposures are recomputed.
      await tx.execute(sql`
        insert into ${cveFixRefreshPending} (package)
        select distinct d.package from (
          (select cve_id, package, release, fixed_version, severity from previous_fixes
           except select cve_id, package, release, fixed_version, severity::text from ${cveTrackerFixes} where source = ${source})
          union all
          (select cve_id, package, release, fixed_version, severity::text from ${cveTrackerFixes} where source = ${source}
           except select cve_id, package, release, fixed_version, severity from previous_fixes)) d
        on conflict do nothing`);
    }
    return rows;
  });
  await refreshFixExposures(db);
  return imported;
}

/** The latest import of a source, or undefined before the first. */
export async function latestTrackerImport(db: Db, source: string): Promise<TrackerImportRow | undefined> {
  const [row] = await db.select().from(cveTrackerImports).where(eq(cveTrackerImports.source, source)).orderBy(desc(cveTrackerImports.importedAt)).limit(1);
  return row;
}

/** The latest import of every source that was ever imported, by source. */
export async function latestImports(db: Db): Promise<TrackerImportRow[]> {
  const rows = await db.execute<{ id: string; source: string; location: string; imported_at: Date | string; fixes: number; cves: number }>(sql`
    select distinct on (source) id, source, location, imported_at, fixes, cves from ${cveTrackerImports} order by source, imported_at desc`);
  return rows.map((r) => ({ id: r.id, source: r.source, location: r.location, importedAt: new Date(r.imported_at), fixes: r.fixes, cves: r.cves }));
}
