import { sql } from 'drizzle-orm';
import type { ApprovalRule, SlaTarget } from '../fleet/baselines.js';
import type { Ring, UpdateSetMember } from '../fleet/rollout.js';
import type { StepEnd } from '../fleet/batchedRun.js';
import type { DeploymentStep, StepResult } from '../fleet/steps.js';
import { CLASSIFICATIONS, DEPLOYMENT_RUN_STATUSES, ENVIRONMENTS, MACHINE_RUN_STATUSES, OS_TYPES, REBOOT_SETTINGS, SEVERITIES, UPDATE_RESULT_STATUSES, type RebootSetting } from '../domain/vocabulary.js';
import { bigint, bigserial, boolean, customType, date, doublePrecision, index, integer, jsonb, pgEnum, pgTable, primaryKey, smallint, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

/** Who may do what: VIEWER reads, OPERATOR also runs assessments and deployments, ADMIN also manages access. */
export const roleEnum = pgEnum('role', ['VIEWER', 'OPERATOR', 'ADMIN']);

/** API tokens. Only a SHA-256 hash of the secret is kept; the secret is shown once, at creation. */
export const apiTokens = pgTable('api_tokens', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  role: roleEnum('role').notNull(),
  tokenHash: text('token_hash').notNull().unique(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  expiresAt: timestamp('expires_at', { withTimezone: true }),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
});

/**
 * Console sessions: the web console exchanges an API token for one, kept by the browser in an
 * HttpOnly cookie (scripts on the page never see a secret). A session acts with its token's role
 * and lives while its token does: revoking the token ends every session of it. Only a hash of the
 * cookie's value is kept.
 */
export const consoleSessions = pgTable(
  'console_sessions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    secretHash: text('secret_hash').notNull().unique(),
    tokenId: uuid('token_id')
      .notNull()
      .references(() => apiTokens.id, { onDelete: 'cascade' }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    /** Never later than its token's expiry. */
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    /** Signed out. */
    endedAt: timestamp('ended_at', { withTimezone: true }),
    sourceAddress: text('source_address'),
  },
  (t) => [index('console_sessions_token_idx').on(t.tokenId), index('console_sessions_expires_idx').on(t.expiresAt)],
);

/**
 * Worker self-checks: a workflow that waits, then records which worker completed it.
 * They prove that the whole chain (API → Temporal → worker → Postgres → subscription) works.
 */
export const selfChecks = pgTable('self_checks', {
  id: uuid('id').primaryKey().defaultRandom(),
  requestedAt: timestamp('requested_at', { withTimezone: true }).notNull().default(sql`now()`),
  completedAt: timestamp('completed_at', { withTimezone: true }),
  workerIdentity: text('worker_identity'),
});

export const osTypeEnum = pgEnum('os_type', OS_TYPES);
export const environmentEnum = pgEnum('environment', ENVIRONMENTS);
export const classificationEnum = pgEnum('classification', CLASSIFICATIONS);
export const severityEnum = pgEnum('severity', SEVERITIES);

/** Enrollment keys: what a new agent presents once to register its machine. Only a hash is kept. */
export const enrollmentKeys = pgTable('enrollment_keys', {
  id: uuid('id').primaryKey().defaultRandom(),
  description: text('description').notNull(),
  secretHash: text('secret_hash').notNull().unique(),
  /** Tags every machine enrolled with this key starts with. */
  defaultTags: text('default_tags').array().notNull().default(sql`'{}'::text[]`),
  maxUses: integer('max_uses'),
  useCount: integer('use_count').notNull().default(0),
  /** When a machine last enrolled with it. */
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
  expiresAt: timestamp('expires_at', { withTimezone: true }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
});

/** Managed machines. The counts of the latest assessment are kept here so the fleet view can sort and filter on them. */
export const machines = pgTable(
  'machines',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull(),
    osType: osTypeEnum('os_type').notNull(),
    osName: text('os_name').notNull(),
    osVersion: text('os_version').notNull(),
    kernel: text('kernel'),
    environment: environmentEnum('environment').notNull(),
    tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
    agentVersion: text('agent_version'),
    bootId: text('boot_id'),
    packageManager: text('package_manager'),
    /** Problems the agent sees on the machine, e.g. unattended-upgrades installing behind the deployments' back. */
    warnings: text('warnings').array().notNull().default(sql`'{}'::text[]`),
    /** What the machine's agent says it can do (SCRIPT_STEPS); empty for agents older than capabilities. */
    agentCapabilities: text('agent_capabilities').array().notNull().default(sql`'{}'::text[]`),
    managementEnabled: boolean('management_enabled').notNull().default(true),
    /** Hash of the machine's own credential; null once the machine is removed. */
    credentialHash: text('credential_hash').unique(),
    enrollmentKeyId: uuid('enrollment_key_id').references(() => enrollmentKeys.id, { onDelete: 'set null' }),
    enrolledAt: timestamp('enrolled_at', { withTimezone: true }).notNull().defaultNow(),
    /**
     * The id the agent gave its enrollment request (kept across its retries): the same request sent
     * again, its first answer lost, answers for this machine instead of enrolling a second one.
     * Null: enrolled by an agent that sends none.
     */
    enrollmentRequestId: text('enrollment_request_id'),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
    /** When the latest assessment finished, on the server's clock (assessments.assessed_at). */
    lastAssessedAt: timestamp('last_assessed_at', { withTimezone: true }),
    /** The agent's clock minus the server's in seconds, as its last request showed it; null: not known (src/fleet/agentClock.ts). */
    clockOffsetSeconds: doublePrecision('clock_offset_seconds'),
    latestAssessmentId: uuid('latest_assessment_id'),
    rebootPending: boolean('reboot_pending').notNull().default(false),
    criticalCount: integer('critical_count').notNull().default(0),
    securityCount: integer('security_count').notNull().default(0),
    otherCount: integer('other_count').notNull().default(0),
    /**
     * The latest assessment's Windows classifications beyond CRITICAL and SECURITY (part of
     * other_count), so that the fleet's pending updates by classification are summed over machines,
     * one row each, instead of over every pending update (BENCHMARKS.md: 2 s at 10k machines).
     */
    updateRollupCount: integer('update_rollup_count').notNull().default(0),
    featurePackCount: integer('feature_pack_count').notNull().default(0),
    servicePackCount: integer('service_pack_count').notNull().default(0),
    definitionCount: integer('definition_count').notNull().default(0),
    toolsCount: integer('tools_count').notNull().default(0),
    updatesCount: integer('updates_count').notNull().default(0),
    /** The last assessment's failure, if the last attempt failed (kept beside the last good one). */
    lastAssessmentError: jsonb('last_assessment_error').$type<{ code: string; message: string; at: string } | null>(),
    removedAt: timestamp('removed_at', { withTimezone: true }),
    /** The patch baseline its tags give it (src/fleet/baselines.ts, assignedBaseline); null: the built-in one. */
    baselineId: uuid('baseline_id'),
    /**
     * Kept from the latest assessment and the baseline's verdicts (src/db/baselines.ts), so that the
     * fleet view decides compliance and overdue in one pass over machines: from this moment an
     * approved update is missing (NON_COMPLIANT from then on; null: none), and the SLA due dates of
     * its approved updates, earliest first. Unused with the built-in baseline (the counts decide).
     */
    nonCompliantFrom: timestamp('non_compliant_from', { withTimezone: true }),
    slaDueDates: timestamp('sla_due_dates', { withTimezone: true, mode: 'string' }).array().notNull().default(sql`'{}'::timestamptz[]`),
    /**
     * Where the machine counts in the maintained compliance summary (docs/fleet-counts.md), kept by
     * the triggers on this table, never written by the application except summary_at (the sweep):
     * its state evaluated at summary_at (`<compliance>:<readiness>`, null: not counted, removed), its
     * overdue updates then, and the instant from which that may change with no write (null: never;
     * src/fleet/fleetSummary.ts, nextSummaryChange). A reader adds the change of the few machines
     * whose instant has passed; the sweep moves their summary_at forward (a new row starts at the
     * epoch, and is moved at its first instant). `summary_generation`: the generation of the
     * thresholds it was evaluated with (fleet_summary_settings; null when not counted): a change of
     * thresholds makes every machine's state stale at once, and readers add those up as they add up
     * a passed instant until the sweep re-evaluates them (migration 0054).
     */
    summaryAt: timestamp('summary_at', { withTimezone: true }).notNull().default(sql`'epoch'::timestamptz`),
    summaryState: text('summary_state'),
    summaryOverdue: integer('summary_overdue'),
    summaryNextAt: timestamp('summary_next_at', { withTimezone: true }),
    summaryGeneration: integer('summary_generation').default(0),
  },
  (t) => [
    index('machines_name_idx').on(t.name),
    index('machines_last_seen_idx').on(t.lastSeenAt),
    // The states readers must evaluate themselves: a stale generation (a range before the current),
    // or the current one with its next change instant passed (a range within it).
    index('machines_summary_generation_next_at_idx').on(t.summaryGeneration, t.summaryNextAt),
    // Machines that share a name (hostnames ignore case) are shown as duplicates.
    index('machines_lower_name_live_idx').on(sql`lower(${t.name})`).where(sql`${t.removedAt} is null`),
    uniqueIndex('machines_enrollment_request_idx').on(t.enrollmentKeyId, t.enrollmentRequestId),
    // The computers page (src/db/machines.ts, listMachines): live machines in name order (a page after
    // a position starts in it), by the compliance state they are counted in (a page of one state,
    // and a filter on it), and the ones with an SLA due date (the overdue filter; most have none).
    index('machines_live_name_idx').on(t.name, t.id).where(sql`${t.removedAt} is null`),
    index('machines_live_compliance_name_idx').on(sql`split_part(${t.summaryState}, ':', 1)`, t.name, t.id).where(sql`${t.removedAt} is null`),
    index('machines_live_due_name_idx').on(t.name, t.id).where(sql`${t.removedAt} is null and cardinality(${t.slaDueDates}) > 0`),
    // The OS type filter in name order (a page of a type reads the page, not every machine of the
    // fleet), and the tag filter (a GIN over the live machines' tags: a rare tag's machines are
    // found without walking the fleet by name).
    index('machines_live_os_type_name_idx').on(t.osType, t.name, t.id).where(sql`${t.removedAt} is null`),
    index('machines_live_tags_idx').using('gin', t.tags).where(sql`${t.removedAt} is null`),
    // The sorts by update counts (src/db/machines.ts, indexedOrder): a page reads a page, in either
    // direction (descending on the negated count: the order is the count, then name and id ascending).
    index('machines_live_urgent_asc_idx').on(sql`(${t.criticalCount} + ${t.securityCount})`, t.name, t.id).where(sql`${t.removedAt} is null`),
    index('machines_live_urgent_desc_idx').on(sql`(-(${t.criticalCount} + ${t.securityCount}))`, t.name, t.id).where(sql`${t.removedAt} is null`),
    index('machines_live_other_asc_idx').on(t.otherCount, t.name, t.id).where(sql`${t.removedAt} is null`),
    index('machines_live_other_desc_idx').on(sql`(-${t.otherCount})`, t.name, t.id).where(sql`${t.removedAt} is null`),
    // The sort by last assessed, the same way (src/db/machines.ts, indexedOrder; migration 0045): the
    // time in microseconds (sort_micros, an immutable function), a missing one the largest key.
    index('machines_live_assessed_asc_idx').on(sql`coalesce(sort_micros(${t.lastAssessedAt}), 9223372036854775807)`, t.name, t.id).where(sql`${t.removedAt} is null`),
    index('machines_live_assessed_desc_idx').on(sql`(-coalesce(sort_micros(${t.lastAssessedAt}), 9223372036854775807))`, t.name, t.id).where(sql`${t.removedAt} is null`),
    // Part of the name (nameContains, an ILIKE '%…%'): the trigrams of the live machines' names
    // (pg_trgm, migration 0040), so a search finds its matches instead of testing every name.
    index('machines_live_name_trgm_idx').using('gin', t.name.op('gin_trgm_ops')).where(sql`${t.removedAt} is null`),
  ],
);

/** Every assessment a machine reported: the history. Its id is the agent's report id, so a resent report is stored once. */
export const assessments = pgTable(
  'assessments',
  {
    id: uuid('id').primaryKey(),
    machineId: uuid('machine_id')
      .notNull()
      .references(() => machines.id, { onDelete: 'cascade' }),
    trigger: text('trigger').notNull(),
    backend: text('backend').notNull(),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull(),
    /** startedAt and finishedAt are the agent's clock, kept as information: it may be wrong. */
    finishedAt: timestamp('finished_at', { withTimezone: true }).notNull(),
    receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
    /**
     * When it finished on the server's clock: its arrival less its age by the agent's clock
     * (src/fleet/agentClock.ts). A machine's reports are ordered by it.
     */
    assessedAt: timestamp('assessed_at', { withTimezone: true }).notNull(),
    rebootPending: boolean('reboot_pending').notNull(),
    criticalCount: integer('critical_count').notNull(),
    securityCount: integer('security_count').notNull(),
    otherCount: integer('other_count').notNull(),
    repositoryProblems: jsonb('repository_problems').$type<Array<{ repository: string; message: string }>>().notNull().default(sql`'[]'::jsonb`),
  },
  (t) => [index('assessments_machine_idx').on(t.machineId, t.assessedAt)],
);

/**
 * The pending updates of each assessment. Each row belongs to an assessment, and goes with it when
 * it is deleted, but not through a foreign key: its per-row check cost as much PostgreSQL time as
 * the row itself when a fleet's reports are stored by COPY (BENCHMARKS.md, "Ingest, third pass").
 * Statement-level triggers keep both rules instead (migration 0005): an insert whose rows name an
 * assessment that does not exist fails as a whole, and deleting assessments deletes their rows.
 */
export const pendingUpdates = pgTable(
  'pending_updates',
  {
    assessmentId: uuid('assessment_id').notNull(),
    machineId: uuid('machine_id').notNull(),
    name: text('name').notNull(),
    arch: text('arch').notNull().default(''),
    installedVersion: text('installed_version'),
    availableVersion: text('available_version').notNull(),
    classification: classificationEnum('classification').notNull(),
    severity: severityEnum('severity'),
    advisoryIds: text('advisory_ids').array().notNull().default(sql`'{}'::text[]`),
    cveIds: text('cve_ids').array().notNull().default(sql`'{}'::text[]`),
    rebootSuggested: boolean('reboot_suggested').notNull().default(false),
    repository: text('repository'),
    /** Why it is listed, when that is not plain (a package dpkg left half-configured); null mostly. */
    note: text('note'),
    /**
     * When the advisory behind the update was issued, as the metadata says (dnf/yum updateinfo,
     * zypper patches, WUA's LastDeploymentChangeTime); null for apt and for agents that do not send it.
     */
    advisoryIssuedAt: timestamp('advisory_issued_at', { withTimezone: true }),
    /**
     * The source package the binary is built from, where the agent says it differs from `name`
     * (apt's Packages `Source:`); null otherwise, and on rows stored before it was kept. The Debian
     * tracker's entries match `coalesce(source_package, name)`.
     */
    sourcePackage: text('source_package'),
  },
  (t) => [
    primaryKey({ columns: [t.assessmentId, t.name, t.arch] }),
    // The machines missing one update and one CVE's candidates start from the update's rows, not
    // from the fleet (src/db/machines.ts machinesMissing, src/db/cves.ts): by name (deduplicated
    // by btree, a posting list per update of a catalog), and by source package where the agent
    // named one (the tracker's fixes name source packages; most rows have none).
    index('pending_updates_name_idx').on(t.name, t.classification),
    index('pending_updates_source_package_idx').on(t.sourcePackage).where(sql`${t.sourcePackage} is not null`),
  ],
);

/**
 * Patch baselines (src/fleet/baselines.ts): approval rules, approved and rejected patterns, SLA
 * targets, for the machines of one OS type carrying all of its tags.
 */
export const baselines = pgTable(
  'baselines',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull(),
    osType: osTypeEnum('os_type').notNull(),
    tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
    priority: integer('priority').notNull().default(0),
    rules: jsonb('rules').$type<ApprovalRule[]>().notNull(),
    approvedPatterns: text('approved_patterns').array().notNull().default(sql`'{}'::text[]`),
    rejectedPatterns: text('rejected_patterns').array().notNull().default(sql`'{}'::text[]`),
    slaTargets: jsonb('sla_targets').$type<SlaTarget[]>().notNull(),
    timeZone: text('time_zone').notNull().default('UTC'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('baselines_name_idx').on(t.name)],
);

/**
 * How many live machines' latest assessments list each update (per OS type, name and
 * classification; a machine listing it for two architectures counts once): what the fleet's missing
 * updates page reads instead of a pass over every pending update. Maintained in the transaction that
 * changes a machine's latest assessment, removes it or changes its OS type (src/db/fleetCounts.ts,
 * docs/fleet-counts.md). A row whose count fell to 0 stays (an update the fleet once missed).
 */
export const missingUpdateCounts = pgTable(
  'missing_update_counts',
  {
    osType: osTypeEnum('os_type').notNull(),
    name: text('name').notNull(),
    classification: classificationEnum('classification').notNull(),
    machines: integer('machines').notNull(),
  },
  (t) => [primaryKey({ columns: [t.osType, t.name, t.classification] })],
);

/**
 * How many live machines' latest assessments list an update whose advisories name each CVE (a
 * machine listing several such updates counts once): the count the CVE list reads instead of a pass
 * over every pending update. Maintained by the same statement, in the same transactions, as
 * missing_update_counts (src/db/fleetCounts.ts); the CVE's severity comes from
 * missing_update_details. Not per OS type: a machine's change of type changes no count here. A row
 * whose count fell to 0 stays.
 */
export const cveExposureCounts = pgTable('cve_exposure_counts', {
  cveId: text('cve_id').primaryKey(),
  machines: integer('machines').notNull(),
});

/**
 * The live machines an imported fix (Debian tracker, OSV) exposes to a CVE, one row per CVE and
 * machine, from the machine's latest assessment and release: what `cve(id)` and the CVE list would
 * otherwise compute from every stored row of the fixed packages. Written by cve_fix_refresh (migration
 * 0048) in the transaction that changes what it depends on (docs/fleet-counts.md): `rank` and
 * `origin` the most severe fix reached through an update whose advisories do not name the CVE (null
 * when only such updates are reached), `advisoryRank` the most severe of the machine's updates whose
 * advisories name it (null: none does), `reach` one bit per (rank, origin) of every fix reached
 * (bit rank × 2, + 1 for OSV).
 */
export const cveFixExposures = pgTable(
  'cve_fix_exposures',
  {
    cveId: text('cve_id').notNull(),
    machineId: uuid('machine_id').notNull(),
    rank: smallint('rank'),
    origin: text('origin'),
    advisoryRank: smallint('advisory_rank'),
    reach: integer('reach').notNull(),
  },
  (t) => [primaryKey({ columns: [t.cveId, t.machineId] }), index('cve_fix_exposures_machine_idx').on(t.machineId)],
);

/** cve_fix_exposures counted per CVE and what `cve(id)` groups by (advisory_rank -1: none), kept by deltas. A row whose count fell to 0 stays. */
export const cveFixExposureCounts = pgTable(
  'cve_fix_exposure_counts',
  {
    cveId: text('cve_id').notNull(),
    rank: smallint('rank').notNull(),
    origin: text('origin').notNull(),
    advisoryRank: smallint('advisory_rank').notNull(),
    machines: integer('machines').notNull(),
  },
  (t) => [primaryKey({ columns: [t.cveId, t.rank, t.origin, t.advisoryRank] })],
);

/** The machines of cve_fix_exposures per CVE and (rank, origin) of a fix they reach (their `reach` bits), kept by deltas: the CVE list's severity and sources. */
export const cveFixReachCounts = pgTable(
  'cve_fix_reach_counts',
  {
    cveId: text('cve_id').notNull(),
    rank: smallint('rank').notNull(),
    origin: text('origin').notNull(),
    machines: integer('machines').notNull(),
  },
  (t) => [primaryKey({ columns: [t.cveId, t.rank, t.origin] })],
);

const bytea = customType<{ data: Buffer }>({ dataType: () => 'bytea' });

/**
 * dpkg_version_key of the versions cve_fix_exposures_of compares with the fixes' versions, each
 * computed once for the fleet instead of twice per pending row at every report (about 20 µs a
 * key). Filled by cve_fix_refresh with the versions of the reports the ingest stores (migration
 * 0051); a version missing here is computed on the spot. Not unique: two transactions adding the
 * same new version at once each add a row rather than wait for each other (the keys are equal).
 */
export const dpkgVersionKeys = pgTable('dpkg_version_keys', { version: text('version').notNull(), key: bytea('key').notNull() }, (t) => [
  index('dpkg_version_keys_version_idx').on(t.version),
]);

/**
 * The packages whose imported fixes an import changed and whose machines' cve_fix_exposures are not
 * yet recomputed (refreshFixExposures, src/db/cves.ts): written in the import's transaction, deleted
 * when the recompute ends, so that one cut short is finished by the next import.
 */
export const cveFixRefreshPending = pgTable('cve_fix_refresh_pending', {
  package: text('package').primaryKey(),
});

/**
 * The compliance summary, maintained (docs/fleet-counts.md; keys in src/fleet/fleetSummary.ts,
 * summaryKey): each key's count over live machines, folded from fleet_summary_deltas.
 */
export const fleetSummaryCounts = pgTable('fleet_summary_counts', {
  key: text('key').primaryKey(),
  n: bigint('n', { mode: 'number' }).notNull(),
});

/**
 * The changes to fleet_summary_counts not folded in yet, one row per key per changed machine row,
 * appended by the triggers on machines (no row is shared between writers, so nothing waits) and
 * summed by every read.
 */
export const fleetSummaryDeltas = pgTable('fleet_summary_deltas', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  key: text('key').notNull(),
  n: bigint('n', { mode: 'number' }).notNull(),
});

/**
 * The live machines carrying each tag per OS type and summary state (`<compliance>:<readiness>`, as
 * stored on the machine): the count of the computers page filtered on one tag, alone or with the OS
 * type, overdue, compliance and readiness (migrations 0047, 0052, 0056), folded from machine_tag_deltas by the
 * summary's upkeep (docs/fleet-counts.md). Its own tables, not the summary's keys: the summary's reader sums every
 * key, and a fleet may carry thousands of tags.
 */
export const machineTagCounts = pgTable(
  'machine_tag_counts',
  {
    tag: text('tag').notNull(),
    osType: osTypeEnum('os_type').notNull(),
    state: text('state').notNull(),
    /** Whether these machines have an approved update past its SLA due date, as stored (migration 0056). */
    overdue: boolean('overdue').notNull(),
    n: bigint('n', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.tag, t.osType, t.state, t.overdue] })],
);

/** The changes to machine_tag_counts not folded in yet, appended by the triggers on machines (nothing shared, nothing waits) and summed by every read. */
export const machineTagDeltas = pgTable('machine_tag_deltas', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  tag: text('tag').notNull(),
  osType: osTypeEnum('os_type').notNull(),
  state: text('state').notNull(),
  overdue: boolean('overdue').notNull(),
  n: bigint('n', { mode: 'number' }).notNull(),
});

/**
 * Each live machine's tags with its name (one row per distinct tag), kept by a trigger on machines
 * (migration 0041): the computers page filtered on a tag reads a page of the tag's machines in name
 * order along the primary key, not every machine carrying it (docs/fleet-counts.md). With the
 * machine's OS type and stored summary state and overdue (migration 0057, kept by the summary's
 * triggers), which the primary key INCLUDEs (written in the migration: drizzle has no INCLUDE), so
 * that a page of a tag with a condition skips the rows whose stored state cannot meet it without
 * reading their machines.
 */
export const machineTags = pgTable(
  'machine_tags',
  {
    tag: text('tag').notNull(),
    name: text('name').notNull(),
    machineId: uuid('machine_id').notNull(),
    osType: osTypeEnum('os_type'),
    /** machines.summary_state ('<compliance>:<readiness>'), as stored. */
    state: text('state'),
    /** machines.summary_overdue > 0, as stored. */
    overdue: boolean('overdue'),
  },
  (t) => [
    primaryKey({ columns: [t.tag, t.name, t.machineId] }),
    // A tag's machines by stored state (migration 0059): the few of a tag meeting a condition, without its other rows.
    index('machine_tags_tag_state_idx').on(t.tag, t.state, t.osType, t.overdue, t.machineId),
  ],
);

/**
 * Each live machine's name cut into its one- and two-character parts, lowercased (machine_name_grams
 * in migration 0058; one row per distinct part), with its name and id, kept by a trigger on machines:
 * a part of a name of one or two characters (which machines_live_name_trgm_idx cannot look up: it
 * holds three-character parts) finds its machines through the primary key, in name order, where
 * otherwise every live name was read to find a rare one (0.36 s for the page, 1.35 s for its count
 * at 1,000,000 machines). Written on enrollment and rename only: a check-in or a report writes nothing here.
 */
export const machineNameGrams = pgTable(
  'machine_name_grams',
  {
    gram: text('gram').notNull(),
    name: text('name').notNull(),
    machineId: uuid('machine_id').notNull(),
  },
  (t) => [primaryKey({ columns: [t.gram, t.name, t.machineId] })],
);

/**
 * The thresholds the machines' summary states are evaluated with (one row): configuration, copied
 * here so that the triggers see them. An API process with other thresholds writes them here and
 * counts one generation more (src/db/fleetSummary.ts, syncFleetSummaryThresholds); each machine
 * records the generation it was evaluated in.
 */
export const fleetSummarySettings = pgTable('fleet_summary_settings', {
  id: integer('id').primaryKey().default(1),
  linuxAssessmentMaxAgeMs: bigint('linux_assessment_max_age_ms', { mode: 'number' }).notNull(),
  windowsAssessmentMaxAgeMs: bigint('windows_assessment_max_age_ms', { mode: 'number' }).notNull(),
  disconnectedAfterMs: bigint('disconnected_after_ms', { mode: 'number' }).notNull(),
  generation: integer('generation').notNull().default(0),
});

/**
 * The versions, severities, advisories and CVEs behind missing_update_counts: how many pending
 * update rows of live machines' latest assessments carry each combination. `detailKey` is the md5
 * of the combination (advisory and CVE lists can be longer than an index entry may be).
 */
export const missingUpdateDetails = pgTable(
  'missing_update_details',
  {
    osType: osTypeEnum('os_type').notNull(),
    name: text('name').notNull(),
    classification: classificationEnum('classification').notNull(),
    detailKey: uuid('detail_key').notNull(),
    availableVersion: text('available_version').notNull(),
    severity: severityEnum('severity'),
    rebootSuggested: boolean('reboot_suggested').notNull(),
    advisoryIds: text('advisory_ids').array().notNull(),
    cveIds: text('cve_ids').array().notNull(),
    rows: integer('rows').notNull(),
  },
  (t) => [primaryKey({ columns: [t.osType, t.name, t.classification, t.detailKey] })],
);

/**
 * When fleetpatch first saw each update anywhere in the fleet: per name, version, classification and
 * severity (severity '' when none), so that the baselines' verdicts can be computed once per kind of
 * update; an update's first-seen date is the earliest of its name and version's rows. With the
 * advisory issue date, the clock of approval delays and SLAs.
 */
export const updateFirstSeen = pgTable(
  'update_first_seen',
  {
    name: text('name').notNull(),
    version: text('version').notNull(),
    classification: text('classification').notNull(),
    severity: text('severity').notNull().default(''),
    firstSeenAt: timestamp('first_seen_at', { withTimezone: true }).notNull(),
    /**
     * The advisory's issue date as the reports that first showed this name and version gave it (the
     * same on every kind of one name and version; null when they gave none, and on rows recorded
     * before it was kept, whose verdicts were counted from first seen). With first_seen_at, the
     * update's clock (src/fleet/baselines.ts, updateClock).
     */
    advisoryIssuedAt: timestamp('advisory_issued_at', { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.name, t.version, t.classification, t.severity] })],
);

/**
 * What each baseline approves, per kind of update (update_first_seen's key), computed in TypeScript
 * (src/fleet/baselines.ts, updateVerdict) when a baseline changes or a new update is first seen:
 * only approved kinds have a row. The machines' kept state is aggregated from it in SQL.
 */
export const baselineVerdicts = pgTable(
  'baseline_verdicts',
  {
    baselineId: uuid('baseline_id')
      .notNull()
      .references(() => baselines.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    version: text('version').notNull(),
    classification: text('classification').notNull(),
    severity: text('severity').notNull(),
    approvedAt: timestamp('approved_at', { withTimezone: true }).notNull(),
    dueAt: timestamp('due_at', { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.baselineId, t.name, t.version, t.classification, t.severity] })],
);

/** Commands waiting for an agent (an on-demand assessment). Agents long-poll for them. */
export const agentCommands = pgTable(
  'agent_commands',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    machineId: uuid('machine_id')
      .notNull()
      .references(() => machines.id, { onDelete: 'cascade' }),
    kind: text('kind').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
    completedAt: timestamp('completed_at', { withTimezone: true }),
    /** INSTALL: the job (updates in order, deadline, reboot setting). */
    payload: jsonb('payload'),
    /** INSTALL: the machine run it belongs to (one job per machine run). */
    machineRunId: uuid('machine_run_id').unique(),
    /** The job of a machine run's POST scripts (an INSTALL job without updates, after the reboot): one per machine run. */
    postStepsMachineRunId: uuid('post_steps_machine_run_id').unique(),
    /** INSTALL: Temporal's task token of the activity the agent's result completes (base64). */
    taskToken: text('task_token'),
    /**
     * The W3C traceparent of the activity waiting with that task token (traces on, else null): the
     * agent's reports on the job join its trace (docs/observability.md).
     */
    traceparent: text('traceparent'),
    /** INSTALL: the agent's final result, kept so a resent result completes nothing twice. */
    result: jsonb('result'),
    /** The highest event batch applied, so a resent batch is applied once. */
    lastEventSeq: integer('last_event_seq').notNull().default(0),
    /** Withdrawn: a late agent must not start it (the machine run already ended). */
    canceledAt: timestamp('canceled_at', { withTimezone: true }),
    /**
     * INSTALL: when the agent last showed it works on the job (handed over, each progress batch,
     * offered again). A batched run (docs/deployments.md) tells a silent agent by it, where a
     * machine run's workflow has its activity's heartbeat timeout.
     */
    lastHeardAt: timestamp('last_heard_at', { withTimezone: true }).defaultNow(),
    /** INSTALL: when a batched run offered the job again after a first silence (a second silence loses the agent). */
    reofferedAt: timestamp('reoffered_at', { withTimezone: true }),
  },
  (t) => [index('agent_commands_pending_idx').on(t.machineId, t.completedAt)],
);

export const rebootSettingEnum = pgEnum('reboot_setting', REBOOT_SETTINGS);
export const deploymentRunStatusEnum = pgEnum('deployment_run_status', DEPLOYMENT_RUN_STATUSES);
export const machineRunStatusEnum = pgEnum('machine_run_status', MACHINE_RUN_STATUSES);
export const updateResultStatusEnum = pgEnum('update_result_status', UPDATE_RESULT_STATUSES);

/** A named, scheduled update job. Its timing lives in a Temporal Schedule with the id `deployment:<id>`. */
export const deployments = pgTable(
  'deployments',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull(),
    osType: osTypeEnum('os_type').notNull(),
    machineIds: uuid('machine_ids').array().notNull().default(sql`'{}'::uuid[]`),
    /** Evaluated at each run: machines with all these tags (and a name containing nameContains). */
    targetFilter: jsonb('target_filter').$type<{ tags: string[]; nameContains: string | null } | null>(),
    classifications: text('classifications').array().notNull(),
    /** Install what each machine's baseline approves instead of the classifications. */
    useBaseline: boolean('use_baseline').notNull().default(false),
    includePatterns: text('include_patterns').array().notNull().default(sql`'{}'::text[]`),
    excludePatterns: text('exclude_patterns').array().notNull().default(sql`'{}'::text[]`),
    /** The schedule as entered (start, time zone, recurrence, end), dates as ISO strings; null: run on demand only. */
    schedule: jsonb('schedule').$type<Record<string, unknown>>(),
    windowMinutes: integer('window_minutes').notNull(),
    rebootSetting: rebootSettingEnum('reboot_setting').notNull(),
    maxConcurrent: jsonb('max_concurrent').$type<{ value: number; unit: 'COUNT' | 'PERCENT' } | null>(),
    maxFailures: jsonb('max_failures').$type<{ value: number; unit: 'COUNT' | 'PERCENT' } | null>(),
    paused: boolean('paused').notNull().default(false),
    /** Ordered rings (src/fleet/rollout.ts); null: every target at once. */
    rings: jsonb('rings').$type<Ring[] | null>(),
    /** Pre and post steps in order (src/fleet/steps.ts); secrets by name only. Null: none. */
    steps: jsonb('steps').$type<DeploymentStep[] | null>(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    deletedAt: timestamp('deleted_at', { withTimezone: true }),
    /**
     * The row is what the deployment's Temporal schedule must be (its spec, paused, or gone when
     * deleted). Every change that concerns the schedule bumps `scheduleVersion`; the version last
     * applied to Temporal is `scheduleSyncedVersion`. They differ while Temporal has not (yet)
     * followed: a change whose Temporal call failed and was undone, or one in flight; the API's
     * reconciler applies the row again (src/api/deployments/scheduleReconciler.ts).
     */
    scheduleVersion: integer('schedule_version').notNull().default(0),
    scheduleSyncedVersion: integer('schedule_synced_version').notNull().default(0),
  },
  (t) => [
    uniqueIndex('deployments_name_live_idx').on(t.name).where(sql`${t.deletedAt} is null`),
    index('deployments_schedule_unsynced_idx').on(t.updatedAt).where(sql`${t.scheduleVersion} <> ${t.scheduleSyncedVersion}`),
  ],
);

/** One execution of a deployment. */
export const deploymentRuns = pgTable(
  'deployment_runs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    deploymentId: uuid('deployment_id')
      .notNull()
      .references(() => deployments.id),
    /** The Temporal workflow that runs it (a business id). */
    workflowId: text('workflow_id').notNull().unique(),
    trigger: text('trigger').notNull(),
    status: deploymentRunStatusEnum('status').notNull().default('SCHEDULED'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    endedAt: timestamp('ended_at', { withTimezone: true }),
    windowEndsAt: timestamp('window_ends_at', { withTimezone: true }),
    error: text('error'),
    /** A ringed run's frozen update set, fixed when its first ring starts; null: no rings, or not yet fixed. */
    updateSet: jsonb('update_set').$type<UpdateSetMember[] | null>(),
    /**
     * What the run installs and how, as its deployment said when the run began: the rings that start
     * later (and the machines a run starts late) take these, so that editing the deployment changes
     * no run in flight. Null for runs begun before it was kept: they read the deployment.
     */
    settings: jsonb('settings').$type<RunSettings | null>(),
    /**
     * The number of the run's last progress event (run_progress_events.seq). Taken with a row lock
     * by the transaction that records the event, as its last statement: events are numbered in the
     * order their changes commit, with no gap, so a reader that has seen event N has seen every
     * change before it.
     */
    progressSeq: integer('progress_seq').notNull().default(0),
    /**
     * Where a batched run's planning is while it plans its machines page by page (src/db/runs.ts,
     * planRunPage): the last target planned (by name, then id) and how many so far. Null once every
     * machine is planned, and for runs planned in one transaction (before paged planning, rings).
     */
    planning: jsonb('planning').$type<RunPlanning | null>(),
  },
  (t) => [index('deployment_runs_deployment_idx').on(t.deploymentId, t.createdAt)],
);

/** A batched run's planning position (deployment_runs.planning). */
export interface RunPlanning {
  /** The last machine planned, in (name, id) order; null: none yet. */
  after: { name: string; id: string } | null;
  planned: number;
}

/** A deployment's settings that a run keeps from when it began (deployment_runs.settings). */
export interface RunSettings {
  classifications: string[];
  /** Install what each machine's baseline approves; absent in runs begun before baselines. */
  useBaseline?: boolean;
  includePatterns: string[];
  excludePatterns: string[];
  windowMinutes: number;
  rebootSetting: RebootSetting;
  maxConcurrent: { value: number; unit: 'COUNT' | 'PERCENT' } | null;
  maxFailures: { value: number; unit: 'COUNT' | 'PERCENT' } | null;
}

/** One machine inside a run. */
export const machineRuns = pgTable(
  'machine_runs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    runId: uuid('run_id')
      .notNull()
      .references(() => deploymentRuns.id, { onDelete: 'cascade' }),
    machineId: uuid('machine_id')
      .notNull()
      .references(() => machines.id),
    /** The machine's name when the run started (kept if the machine is renamed or removed). */
    machineName: text('machine_name').notNull(),
    /** Its ring (1-based) in a ringed run; null in a run without rings. */
    ring: integer('ring'),
    status: machineRunStatusEnum('status').notNull().default('PENDING'),
    startedAt: timestamp('started_at', { withTimezone: true }),
    endedAt: timestamp('ended_at', { withTimezone: true }),
    /**
     * Seconds the plan keeps free at the end of the window for a reboot (planMachine's
     * rebootReserveSeconds): the install job carries it to the agent. 0 until the machine is
     * planned (a ringed run plans a ring's machines when the ring starts).
     */
    rebootReserveSeconds: integer('reboot_reserve_seconds').notNull().default(0),
    /** NOT_NEEDED, NOT_ALLOWED, REBOOTED, TIMED_OUT */
    rebootOutcome: text('reboot_outcome'),
    error: text('error'),
    /** How the deployment's pre and post steps went on this machine, in the order they ran. */
    stepResults: jsonb('step_results').$type<StepResult[]>().notNull().default(sql`'[]'::jsonb`),
    /** REBOOTING in a batched run: when the machine must be back by (a machine run's workflow keeps this in its own timer). */
    rebootBy: timestamp('reboot_by', { withTimezone: true }),
    /**
     * A batched run's machine whose POST scripts went to its agent as a job of their own: how it
     * ends once they report (its install's end, src/fleet/batchedRun.ts StepEnd). Null otherwise.
     */
    postScriptsEnd: jsonb('post_scripts_end').$type<StepEnd>(),
  },
  (t) => [
    uniqueIndex('machine_runs_run_machine_idx').on(t.runId, t.machineId),
    // A batched run pages its machines by key and looks only at those running (src/db/batchedRuns.ts):
    // both stay small reads however many machines the run has.
    index('machine_runs_pending_idx').on(t.runId, t.ring, t.machineName, t.id).where(sql`${t.status} = 'PENDING'`),
    index('machine_runs_running_idx').on(t.runId, t.ring).where(sql`${t.endedAt} is null and ${t.status} <> 'PENDING'`),
    index('machine_runs_run_status_idx').on(t.runId, t.ring, t.status),
  ],
);

/**
 * A ringed run's rings, as the run goes: PENDING, RUNNING, SOAKING, WAITING_FOR_APPROVAL, HALTED,
 * PROMOTED, DONE (the last ring), SKIPPED (no machine), REJECTED, CANCELED. The workflow decides; this
 * is what the API reads to answer and to check an approval against.
 */
export const deploymentRunRings = pgTable(
  'deployment_run_rings',
  {
    runId: uuid('run_id')
      .notNull()
      .references(() => deploymentRuns.id, { onDelete: 'cascade' }),
    /** 1-based. */
    ring: integer('ring').notNull(),
    name: text('name').notNull(),
    /** The ring as the deployment defined it when the run began (its rate control and gate): an edit of the deployment meanwhile does not change a run in flight. */
    definition: jsonb('definition').$type<Ring>().notNull(),
    status: text('status').notNull().default('PENDING'),
    machineCount: integer('machine_count').notNull(),
    failedCount: integer('failed_count'),
    startedAt: timestamp('started_at', { withTimezone: true }),
    /** Its last machine finished. */
    endedAt: timestamp('ended_at', { withTimezone: true }),
    windowEndsAt: timestamp('window_ends_at', { withTimezone: true }),
    soakEndsAt: timestamp('soak_ends_at', { withTimezone: true }),
    /** Why it halted, or the rejection. */
    reason: text('reason'),
    /** Who approved, rejected or resumed it, and when. */
    decidedBy: text('decided_by'),
    decidedAt: timestamp('decided_at', { withTimezone: true }),
    /**
     * Where the ring's planning is while it plans its machines page by page (src/db/rollouts.ts,
     * planRingPage): the last machine run planned (by machine name, then id), how many so far, and
     * the updates selected so far (the first ring fixes the run's update set from them). Null before
     * the ring starts and once every machine of it is planned, and in rings planned in one transaction.
     */
    planning: jsonb('planning').$type<RingPlanning | null>(),
  },
  (t) => [primaryKey({ columns: [t.runId, t.ring] })],
);

/** A ring's planning position (deployment_run_rings.planning): a run's, plus the updates its plans selected so far. */
export interface RingPlanning extends RunPlanning {
  selected: UpdateSetMember[];
}

/** One update on one machine in a run, with what the preview predicted for it. */
export const updateResults = pgTable(
  'update_results',
  {
    machineRunId: uuid('machine_run_id')
      .notNull()
      .references(() => machineRuns.id, { onDelete: 'cascade' }),
    runId: uuid('run_id').notNull(),
    name: text('name').notNull(),
    arch: text('arch').notNull().default(''),
    classification: classificationEnum('classification').notNull(),
    severity: severityEnum('severity'),
    installedVersion: text('installed_version'),
    targetVersion: text('target_version').notNull(),
    rebootSuggested: boolean('reboot_suggested').notNull().default(false),
    orderIndex: integer('order_index').notNull(),
    expectedSeconds: integer('expected_seconds').notNull(),
    status: updateResultStatusEnum('status').notNull(),
    predictedStatus: updateResultStatusEnum('predicted_status').notNull(),
    /** Why NOT_SELECTED / NOT_ATTEMPTED. */
    reason: text('reason'),
    exitCode: integer('exit_code'),
    errorText: text('error_text'),
    startedAt: timestamp('started_at', { withTimezone: true }),
    endedAt: timestamp('ended_at', { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.machineRunId, t.name, t.arch] }), index('update_results_run_idx').on(t.runId)],
);

/** The job stream and the run's own log: every line, in order. */
export const runLogs = pgTable(
  'run_logs',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    runId: uuid('run_id').notNull(),
    machineRunId: uuid('machine_run_id'),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    /** stdout / stderr (the package manager), agent, server */
    stream: text('stream').notNull(),
    line: text('line').notNull(),
  },
  (t) => [index('run_logs_run_idx').on(t.runId, t.id)],
);

/**
 * Every progress event of a run, numbered from 1 per run (deployment_runs.progress_seq): what
 * `deploymentRunProgress` publishes live, kept so that a client that subscribes late or comes back
 * after a dropped socket is replayed what it missed, by whichever API replica it reaches. An event
 * names what changed (ids), never the state itself: the state is read when the event is delivered.
 */
export const runProgressEvents = pgTable(
  'run_progress_events',
  {
    runId: uuid('run_id')
      .notNull()
      .references(() => deploymentRuns.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    /** RUN, MACHINE, UPDATES or LINES. */
    kind: text('kind').notNull(),
    machineRunId: uuid('machine_run_id'),
    /** UPDATES: the updates whose status changed. */
    updateNames: text('update_names').array().notNull().default(sql`'{}'::text[]`),
    /** LINES: the first and last run_logs id of the new lines. */
    firstLineId: bigint('first_line_id', { mode: 'number' }),
    lastLineId: bigint('last_line_id', { mode: 'number' }),
  },
  (t) => [primaryKey({ columns: [t.runId, t.seq] })],
);

/** Measured install durations per machine and package, so that plans learn from what happened. */
export const updateDurations = pgTable(
  'update_durations',
  {
    machineId: uuid('machine_id').notNull(),
    name: text('name').notNull(),
    /** Exponential moving average of the measured seconds. */
    averageSeconds: doublePrecision('average_seconds').notNull(),
    samples: integer('samples').notNull(),
  },
  (t) => [primaryKey({ columns: [t.machineId, t.name] })],
);

/**
 * The audit log: every mutation and every enrollment, who, what, when and from where. No foreign
 * keys on purpose: an entry outlives the token, machine or deployment it names.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    /** TOKEN (an API token), MACHINE (an agent's credential), ENROLLMENT_KEY, ANONYMOUS, CLI (a command run with DATABASE_URL). */
    actorKind: text('actor_kind').notNull(),
    /** The token, machine or enrollment key id; null for anonymous or CLI. */
    actorId: text('actor_id'),
    /** The token's name or the machine's hostname at the time: still readable once the actor is gone. */
    actorName: text('actor_name'),
    actorRole: text('actor_role'),
    /** The mutation's name (`createDeployment`) or the event (`enrollMachine`, `token.create`). */
    action: text('action').notNull(),
    /** The id the action was about (a machine, deployment, token...), when there is one. */
    targetId: text('target_id'),
    /** The arguments, with every secret replaced by "[REDACTED]". */
    details: jsonb('details').notNull().default(sql`'{}'::jsonb`),
    /** SUCCEEDED, or the error code the caller got (FORBIDDEN, NOT_FOUND...). */
    outcome: text('outcome').notNull(),
    /** The client's address as the server saw it. */
    sourceAddress: text('source_address'),
  },
  (t) => [index('audit_events_at_idx').on(t.at, t.id), index('audit_events_target_idx').on(t.targetId)],
);

export const agentUpgradeStatusEnum = pgEnum('agent_upgrade_status', ['IN_PROGRESS', 'SUCCEEDED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED']);
export const agentUpgradeMachineStatusEnum = pgEnum('agent_upgrade_machine_status', ['PENDING', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'ROLLED_BACK', 'TIMED_OUT', 'SKIPPED', 'NOT_STARTED', 'CANCELED']);

/**
 * An upgrade of agents to the version the server ships, run by the Temporal workflow
 * `agent-upgrade:<id>`. The signed release is fixed when it is created: every machine gets the same
 * executables, whatever the API replica that hands out its command.
 */
export const agentUpgrades = pgTable('agent_upgrades', {
  id: uuid('id').primaryKey().defaultRandom(),
  workflowId: text('workflow_id').notNull().unique(),
  toVersion: text('to_version').notNull(),
  /** UpgradeArtifact[]: every platform's executable, its sha256, size, download path and signature. */
  artifacts: jsonb('artifacts').notNull(),
  /** The release key's fingerprint that signed them. */
  signedBy: text('signed_by').notNull(),
  rollbackAfterSeconds: integer('rollback_after_seconds').notNull(),
  maxConcurrent: jsonb('max_concurrent').$type<{ value: number; unit: 'COUNT' | 'PERCENT' } | null>(),
  maxFailures: jsonb('max_failures').$type<{ value: number; unit: 'COUNT' | 'PERCENT' } | null>(),
  /** What was asked for: every machine, these machines, or a filter. */
  targets: jsonb('targets').$type<{ allMachines: boolean; machineIds: string[]; filter: { tags: string[]; nameContains: string | null } | null }>().notNull(),
  status: agentUpgradeStatusEnum('status').notNull().default('IN_PROGRESS'),
  requestedBy: text('requested_by'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  endedAt: timestamp('ended_at', { withTimezone: true }),
});

/** One machine of an agent upgrade: how it ended there, with the agent's own code and message. */
export const agentUpgradeMachines = pgTable(
  'agent_upgrade_machines',
  {
    upgradeId: uuid('upgrade_id')
      .notNull()
      .references(() => agentUpgrades.id, { onDelete: 'cascade' }),
    machineId: uuid('machine_id')
      .notNull()
      .references(() => machines.id),
    /** The machine's name when the upgrade was created. */
    machineName: text('machine_name').notNull(),
    /** The order machines are taken in. */
    orderIndex: integer('order_index').notNull(),
    fromVersion: text('from_version'),
    status: agentUpgradeMachineStatusEnum('status').notNull().default('PENDING'),
    /** The agent's (or the server's) code: UPGRADED, BAD_SIGNATURE, HASH_MISMATCH, NO_CHECK_IN, INSTALL_JOB_RUNNING... */
    code: text('code'),
    message: text('message'),
    /** Commands sent: more than one when the agent was busy with an install job and was asked again. */
    attempts: integer('attempts').notNull().default(0),
    /** The UPGRADE command of the latest attempt. */
    commandId: uuid('command_id'),
    startedAt: timestamp('started_at', { withTimezone: true }),
    endedAt: timestamp('ended_at', { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.upgradeId, t.machineId] }), index('agent_upgrade_machines_status_idx').on(t.upgradeId, t.status, t.orderIndex), index('agent_upgrade_machines_command_idx').on(t.commandId)],
);

/**
 * Webhook subscriptions, managed by ADMINs. The secret signs deliveries (HMAC-SHA256), so it is
 * kept as it is, not hashed; it is shown once at creation and never read back by the API.
 */
export const webhookSubscriptions = pgTable('webhook_subscriptions', {
  id: uuid('id').primaryKey().defaultRandom(),
  url: text('url').notNull(),
  description: text('description'),
  /** WebhookEventType[] (src/fleet/webhooks.ts). */
  events: text('events').array().notNull(),
  /** MACHINE_DISCONNECTED: after this many minutes without a check-in. */
  disconnectedMinutes: integer('disconnected_minutes'),
  /** MACHINE_NON_COMPLIANT: after this many days non-compliant. */
  nonCompliantDays: integer('non_compliant_days'),
  secret: text('secret').notNull(),
  enabled: boolean('enabled').notNull().default(true),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * The outbox: every event a webhook may announce, written in the transaction of the change that
 * causes it (a run ending, a machine run failing...), so an event exists exactly when its change
 * does. The delivery loop fans each one out to the subscriptions that want it (dispatched_at).
 */
export const webhookEvents = pgTable(
  'webhook_events',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    type: text('type').notNull(),
    /** Once per cause (src/fleet/webhooks.ts eventKey): a retried activity or scan records nothing new. */
    eventKey: text('event_key').notNull().unique(),
    /** The event's data (WebhookEventData). */
    data: jsonb('data').notNull(),
    /** Set for threshold events, which are made for one subscription's own threshold. */
    subscriptionId: uuid('subscription_id').references(() => webhookSubscriptions.id, { onDelete: 'cascade' }),
    occurredAt: timestamp('occurred_at', { withTimezone: true }).notNull().defaultNow(),
    dispatchedAt: timestamp('dispatched_at', { withTimezone: true }),
  },
  (t) => [index('webhook_events_undispatched_idx').on(t.occurredAt).where(sql`${t.dispatchedAt} is null`)],
);

export const webhookDeliveryStatusEnum = pgEnum('webhook_delivery_status', ['PENDING', 'DELIVERED', 'FAILED']);

/** One event to one subscription: its attempts, the last error and when it is tried next (the delivery log). */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    subscriptionId: uuid('subscription_id')
      .notNull()
      .references(() => webhookSubscriptions.id, { onDelete: 'cascade' }),
    eventId: uuid('event_id')
      .notNull()
      .references(() => webhookEvents.id, { onDelete: 'cascade' }),
    eventType: text('event_type').notNull(),
    status: webhookDeliveryStatusEnum('status').notNull().default('PENDING'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }),
    /** A delivery loop is sending it until then; past it, another may (the one that claimed it died). */
    leaseUntil: timestamp('lease_until', { withTimezone: true }),
    lastAttemptAt: timestamp('last_attempt_at', { withTimezone: true }),
    lastStatusCode: integer('last_status_code'),
    lastError: text('last_error'),
    /** Milliseconds from the event to the receiver's 2xx. */
    latencyMs: integer('latency_ms'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('webhook_deliveries_event_subscription_idx').on(t.eventId, t.subscriptionId),
    index('webhook_deliveries_due_idx').on(t.nextAttemptAt).where(sql`${t.status} = 'PENDING'`),
    index('webhook_deliveries_log_idx').on(t.subscriptionId, t.createdAt),
  ],
);

/**
 * What an imported vulnerability tracker says was fixed where: for apt machines, whose Packages
 * metadata names no CVE. One row per CVE, source package and release that the tracker marks
 * resolved with a fixed version (src/fleet/cves.ts, readDebianTracker), or that OSV records give a
 * fixed version for (src/fleet/osv.ts). An import replaces the source's rows as a whole.
 */
export const cveTrackerFixes = pgTable(
  'cve_tracker_fixes',
  {
    /** DEBIAN: the Debian security tracker's JSON; OSV:UBUNTU, OSV:DEBIAN: that distribution's OSV records. */
    source: text('source').notNull(),
    cveId: text('cve_id').notNull(),
    /** The source package, as the tracker names it. */
    package: text('package').notNull(),
    /** The release: a Debian codename (bookworm), or ubuntu:<VERSION_ID> (ubuntu:22.04). */
    release: text('release').notNull(),
    fixedVersion: text('fixed_version').notNull(),
    severity: severityEnum('severity'),
    description: text('description'),
  },
  (t) => [primaryKey({ columns: [t.source, t.cveId, t.package, t.release] }), index('cve_tracker_fixes_package_idx').on(t.package, t.release)],
);

/** Each import of a tracker: where from, when, how much it held. */
export const cveTrackerImports = pgTable('cve_tracker_imports', {
  id: uuid('id').primaryKey().defaultRandom(),
  source: text('source').notNull(),
  /** The URL or server path it was read from (never credentials: a URL's user and password are left out). */
  location: text('location').notNull(),
  importedAt: timestamp('imported_at', { withTimezone: true }).notNull().defaultNow(),
  fixes: integer('fixes').notNull(),
  cves: integer('cves').notNull(),
});

/**
 * Secrets the API replicas share, made once by whichever needs one first: the key that signs
 * export download links (src/exports/links.ts). Kept in PostgreSQL so that every replica checks a
 * link another one signed, with nothing to configure.
 */
export const serverSecrets = pgTable('server_secrets', {
  name: text('name').primaryKey(),
  /** Base64 of 32 random bytes. */
  secret: text('secret').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Compliance history (src/fleet/complianceHistory.ts): one snapshot per day (UTC). The row of a day
 * is what makes a snapshot happen once: a scheduled snapshot inserts it or, finding it, does
 * nothing; an on-demand one replaces that day's rows.
 */
export const complianceSnapshots = pgTable('compliance_snapshots', {
  day: date('day', { mode: 'string' }).primaryKey(),
  takenAt: timestamp('taken_at', { withTimezone: true }).notNull(),
  /** SCHEDULE or ON_DEMAND. */
  trigger: text('trigger').notNull(),
  /** How long the aggregate took, for the operator and the benchmark. */
  computeMs: integer('compute_ms').notNull(),
});

/** One group's counts on one day: the fleet, a baseline (its id, '' built-in), a classification or a tag. */
export const complianceHistory = pgTable(
  'compliance_history',
  {
    day: date('day', { mode: 'string' })
      .notNull()
      .references(() => complianceSnapshots.day, { onDelete: 'cascade' }),
    groupBy: text('group_by').notNull(),
    key: text('key').notNull(),
    /** The group's name on that day (a baseline's name then). */
    label: text('label').notNull(),
    machines: integer('machines').notNull(),
    compliant: integer('compliant').notNull(),
    nonCompliant: integer('non_compliant').notNull(),
    notAssessed: integer('not_assessed').notNull(),
    overdueMachines: integer('overdue_machines').notNull(),
    overdueUpdates: integer('overdue_updates').notNull(),
    pendingUpdates: integer('pending_updates').notNull(),
  },
  // A range of one kind of group is read by (group_by, day): the primary key's order. A day's rows
  // are replaced (an on-demand snapshot) by day.
  (t) => [primaryKey({ columns: [t.groupBy, t.day, t.key] }), index('compliance_history_day_idx').on(t.day)],
);
