import { sql, type SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { ReservedSql, Sql } from 'postgres';
import type { OsType } from '../fleet/compliance.js';
import type { MissingUpdateGroup } from '../fleet/missingUpdates.js';
import type { Db } from './client.js';

/**
 * The fleet's missing updates, maintained (docs/fleet-counts.md): missing_update_counts and
 * missing_update_details hold what a full pass over the live machines' latest pending updates would
 * count, and cve_exposure_counts the machines per CVE the updates' advisories name. Every transaction that changes what that pass would see applies its change here before it
 * commits: a machine's latest assessment replaced (src/db/assessmentIngest.ts), a machine removed,
 * its OS type changed (src/db/machines.ts).
 */

/** An assessment that stops counting (minus) or starts counting (plus) for a live machine of an OS type. */
export interface CountedAssessment {
  osType: OsType;
  assessmentId: string;
}

/**
 * The key of one combination of an update's details (missing_update_details.detail_key), from the
 * columns of the same names. The hash of the row's text form: record and array output quote a field
 * or element holding a separator, so different lists (['a,b'] and ['a', 'b'], [''] and []) hash
 * different texts. Migration 0029 rebuilt the details with it; a change here needs another.
 */
export const DETAIL_KEY = sql.raw('md5(row(available_version, severity, reboot_suggested, advisory_ids, cve_ids)::text)::uuid');

/**
 * One statement applying the change: what the minus assessments list is subtracted and what the
 * plus ones list is added, netted per key first (a re-report listing the same updates changes no
 * row, so the steady state of a fleet that reports unchanged updates writes nothing here), then
 * applied as ON CONFLICT increments in key order. The assessments' pending rows are read once for
 * the three tables (missing_update_counts, missing_update_details, cve_exposure_counts). Row locks
 * on each are taken in key order by every writer, and after the machines' rows (which every writer
 * locks first), so two transactions cannot wait for each other in a cycle. The details and CVE
 * CTEs run after the main insert, in an order fixed by the statement's text (PostgreSQL finishes
 * unread data-modifying CTEs after the main query, in plan order), so every writer also takes the
 * three tables in one order.
 */
export function missingUpdateDeltaSql(minus: readonly CountedAssessment[], plus: readonly CountedAssessment[], given: GivenCounts = NO_GIVEN_COUNTS): SQL {
  return sql`with side(os_type, assessment_id, sign) as (
      select os, id, -1 from unnest(${sql.param(minus.map((c) => c.osType))}::os_type[], ${sql.param(minus.map((c) => c.assessmentId))}::uuid[]) as m(os, id)
      union all
      select os, id, 1 from unnest(${sql.param(plus.map((c) => c.osType))}::os_type[], ${sql.param(plus.map((c) => c.assessmentId))}::uuid[]) as p(os, id)
    ),
    listed as materialized (
      -- Each assessment's rows through the primary key: offset 0 keeps the planner from turning this
      -- into a hash join over the whole pending_updates table (it did, on a misjudged row count).
      select s.os_type, s.assessment_id, s.sign, pu.name, pu.classification, pu.available_version, pu.severity, pu.reboot_suggested, pu.advisory_ids, pu.cve_ids
      from side s cross join lateral (
        select p.name, p.classification, p.available_version, p.severity, p.reboot_suggested, p.advisory_ids, p.cve_ids
        from pending_updates p where p.assessment_id = s.assessment_id offset 0) pu
    ),
    detail_delta as (
      -- Grouped on the columns themselves; the key is hashed only for the combinations that changed (none, for a report like the last).
      select os_type, name, classification, ${DETAIL_KEY} as detail_key,
             available_version, severity, reboot_suggested, advisory_ids, cve_ids, d
      from (select os_type, name, classification, available_version, severity, reboot_suggested, advisory_ids, cve_ids, sum(sign)::int as d
            from (select os_type, name, classification, available_version, severity, reboot_suggested, advisory_ids, cve_ids, sign from listed
                  union all
                  select os_type, name, classification, available_version, severity, reboot_suggested, advisory_ids::text[], cve_ids::text[], sign from unnest(${sql.param(given.details.osTypes)}::os_type[], ${sql.param(given.details.names)}::text[], ${sql.param(given.details.classifications)}::classification[],
                    ${sql.param(given.details.availableVersions)}::text[], ${sql.param(given.details.severities)}::severity[], ${sql.param(given.details.rebootSuggested)}::text[]::boolean[],
                    ${sql.param(given.details.advisoryIds)}::text[], ${sql.param(given.details.cveIds)}::text[], ${sql.param(given.details.signs)}::text[]::int[])
                    as g(os_type, name, classification, available_version, severity, reboot_suggested, advisory_ids, cve_ids, sign)) r
            group by 1, 2, 3, 4, 5, 6, 7, 8 having sum(sign) <> 0) changed
    ),
    details as (
      insert into missing_update_details (os_type, name, classification, detail_key, available_version, severity, reboot_suggested, advisory_ids, cve_ids, rows)
      select * from detail_delta order by os_type, name, classification, detail_key
      on conflict (os_type, name, classification, detail_key) do update set rows = missing_update_details.rows + excluded.rows
    ),
    count_delta as (
      -- A machine listing the update for several architectures counts once (an assessment is on one side only, but for an OS type change, on both with opposite signs).
      select os_type, name, classification, sum(sign)::int as d
      from (select os_type, name, classification, sign from (select distinct assessment_id, sign, os_type, name, classification from listed) u
            union all
            select * from unnest(${sql.param(given.counts.osTypes)}::os_type[], ${sql.param(given.counts.names)}::text[], ${sql.param(given.counts.classifications)}::classification[],
              ${sql.param(given.counts.signs)}::text[]::int[]) as g(os_type, name, classification, sign)) r
      group by 1, 2, 3
      having sum(sign) <> 0
    ),
    cve_delta as (
      -- A machine counts once per CVE however many of its updates name it (a CVE is not per OS type:
      -- an OS type change nets to nothing here).
      select cve_id, sum(sign)::int as d
      from (select cve_id, sign from (select distinct l.assessment_id, l.sign, c.cve_id from listed l cross join lateral unnest(l.cve_ids) as c(cve_id)) u
            union all
            select * from unnest(${sql.param(given.cves.cveIds)}::text[], ${sql.param(given.cves.signs)}::text[]::int[]) as g(cve_id, sign)) r
      group by 1
      having sum(sign) <> 0
    ),
    cves as (
      insert into cve_exposure_counts (cve_id, machines)
      select * from cve_delta order by cve_id
      on conflict (cve_id) do update set machines = cve_exposure_counts.machines + excluded.machines
    )
    insert into missing_update_counts (os_type, name, classification, machines)
    select * from count_delta order by os_type, name, classification
    on conflict (os_type, name, classification) do update set machines = missing_update_counts.machines + excluded.machines`;
}

/**
 * Changes to add that the caller computed from rows it has in hand (the ingest, from the reports it
 * stores), as parallel arrays (one element per record, read by unnest: a JSON document of the same
 * records costs PostgreSQL about as long to parse as applying the change does): `counts` (a machine counts
 * once per update) and `details` (one per row; each advisory and CVE list as the text of a text[]
 * literal, `copyTextArray`'s form without COPY's escaping; booleans and signs as text). The statement
 * then does not read those rows back.
 */
export interface GivenCounts {
  counts: { osTypes: OsType[]; names: string[]; classifications: string[]; signs: string[] };
  /** Per CVE id as stored, how many machines' assessments list an update naming it (once per assessment). */
  cves: { cveIds: string[]; signs: string[] };
  details: {
    osTypes: OsType[];
    names: string[];
    classifications: string[];
    availableVersions: string[];
    severities: Array<string | null>;
    rebootSuggested: string[];
    advisoryIds: string[];
    cveIds: string[];
    signs: string[];
  };
}

const NO_GIVEN_COUNTS: GivenCounts = {
  counts: { osTypes: [], names: [], classifications: [], signs: [] },
  cves: { cveIds: [], signs: [] },
  details: { osTypes: [], names: [], classifications: [], availableVersions: [], severities: [], rebootSuggested: [], advisoryIds: [], cveIds: [], signs: [] },
};

const dialect = new PgDialect();

/** The same statement on a postgres.js connection (the ingest's reserved transaction). */
export async function applyMissingUpdateDelta(tx: ReservedSql | Sql, minus: readonly CountedAssessment[], plus: readonly CountedAssessment[], given: GivenCounts = NO_GIVEN_COUNTS): Promise<void> {
  if (minus.length === 0 && plus.length === 0 && given.counts.names.length === 0 && given.details.names.length === 0 && given.cves.cveIds.length === 0) return;
  const query = dialect.sqlToQuery(missingUpdateDeltaSql(minus, plus, given));
  // Prepared: the text is the same whatever the arrays hold, and its parse and plan cost about a tenth of a group's change.
  await tx.unsafe(query.sql, query.params as never[], { prepare: true });
}

/**
 * The fleet's missing updates from the maintained counts: reads one row per kind of update the
 * fleet misses (and one per version/advisory combination), never the machines or their pending
 * updates. Exact as of the statement's snapshot: nothing to wait for, nothing stale.
 */
export async function maintainedMissingUpdateGroups(db: Db): Promise<MissingUpdateGroup[]> {
  const [counts, details] = await Promise.all([
    db.execute<{ os_type: OsType; name: string; classification: string; machines: number }>(
      sql`select os_type, name, classification::text as classification, machines from missing_update_counts where machines > 0`,
    ),
    db.execute<{ os_type: OsType; name: string; classification: string; available_version: string; severity: string | null; reboot_suggested: boolean; advisory_ids: string[]; cve_ids: string[] }>(
      sql`select os_type, name, classification::text as classification, available_version, severity::text as severity, reboot_suggested, advisory_ids, cve_ids
          from missing_update_details d where rows > 0 order by d.severity`,
    ),
  ]);
  const key = (r: { os_type: string; name: string; classification: string }) => `${r.os_type}\u0000${r.classification}\u0000${r.name}`;
  const detailsOf = new Map<string, { versions: Set<string>; advisories: Set<string>; cves: Set<string>; severity: string | null; reboot: boolean }>();
  for (const d of details) {
    let entry = detailsOf.get(key(d));
    // Ordered by the severity column (the enum's order, CRITICAL first, nulls last; not the text it is selected as): the first is the highest.
    if (!entry) detailsOf.set(key(d), (entry = { versions: new Set(), advisories: new Set(), cves: new Set(), severity: d.severity, reboot: false }));
    entry.versions.add(d.available_version);
    for (const id of d.advisory_ids) entry.advisories.add(id);
    for (const id of d.cve_ids) entry.cves.add(id);
    entry.reboot ||= d.reboot_suggested;
  }
  return counts.map((c) => {
    const d = detailsOf.get(key(c));
    return {
      osType: c.os_type,
      name: c.name,
      classification: c.classification,
      machineCount: c.machines,
      severity: d?.severity ?? null,
      availableVersions: [...(d?.versions ?? [])].sort(),
      advisoryIds: [...(d?.advisories ?? [])].sort(),
      cveIds: [...(d?.cves ?? [])].sort(),
      rebootSuggested: d?.reboot ?? false,
    };
  });
}
