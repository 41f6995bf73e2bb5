import { and, asc, desc, eq, exists, getTableColumns, inArray, isNull, lte, or, sql, type SQL } from 'drizzle-orm';
import type { MachineFacts } from '../domain/types.js';
import { CLASSIFICATIONS, type Classification } from '../domain/vocabulary.js';
import { enrollmentRefusal, retriedEnrollmentRefusal } from '../fleet/enrollment.js';
import { countedGroups, fewFirst, groupsFromCounts, isSet, type CountedGroups, matchingMachines, MATCHES_COUNTED_UP_TO, storedStatesMeeting, type FleetSummary } from '../fleet/fleetSummary.js';
import type { AgentReadiness, Compliance, FleetThresholds, OsType } from '../fleet/compliance.js';
import { MISSING_MACHINES_ROWS_BUDGET, missingMachinesRead, type MissingMachinesRead, type MissingUpdateGroup } from '../fleet/missingUpdates.js';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import type { Sql } from 'postgres';
import { CLOCK_OFFSET_MOVE_SECONDS, CLOCK_SKEW_WARNING_SECONDS } from '../fleet/agentClock.js';
import { compareKeys, complianceOrder, complianceRank, sortKeyNullable, type MachinePosition, type MachineSort, type MachineSortField } from '../fleet/machineOrder.js';
import type { Db } from './client.js';
import { waitingCommandsSql } from './agentCommands.js';
import { assignmentSql, reassignMachineBaseline } from './baselines.js';
import { missingUpdateDeltaSql } from './fleetCounts.js';
import { clockLapsed, generationLapsed, maintainedSummaryCounts, maintainedTagGroups, stateHolds } from './fleetSummary.js';
import { complianceSql, overdueSql, overdueUpdatesSql, readinessSql } from './fleetSql.js';
import { assessments, baselineVerdicts, enrollmentKeys, machineNameGrams, machineTagCounts, machineTags, machines, pendingUpdates, updateFirstSeen } from './schema.js';
import { hashSecret, newSecret } from './secrets.js';

export type MachineRow = typeof machines.$inferSelect;
export type AssessmentRow = typeof assessments.$inferSelect;
export type PendingUpdateRow = typeof pendingUpdates.$inferSelect;

const live = isNull(machines.removedAt);

function factColumns(facts: MachineFacts) {
  return {
    name: facts.hostname,
    osType: facts.osType,
    osName: facts.osName,
    osVersion: facts.osVersion,
    kernel: facts.kernel,
    environment: facts.environment,
    agentVersion: facts.agentVersion,
    bootId: facts.bootId,
    packageManager: facts.packageManager,
    warnings: facts.warnings,
    agentCapabilities: facts.capabilities ?? [],
  };
}

export type EnrollOutcome =
  | { enrolled: true; machine: MachineRow; credential: string; /** The same request came again: the machine was enrolled before, with a new credential now. */ again: boolean }
  | { enrolled: false; reason: string; keyId: string | null };

/**
 * Registers a machine with an enrollment key.
 *
 * The key's use is taken by the statement that inserts the machine (enrollMachineStatement): one
 * conditional update of the key's row, which PostgreSQL re-checks on the row's latest version when
 * another enrollment took a use meanwhile, so a key's maxUses, expiry and revocation hold exactly
 * however many agents enroll through it at once, and the machine is inserted only with the use
 * counted (one statement: nothing half-enrolled). The row stays locked for that statement alone.
 * A transaction that locked it from its first read (five round trips, each through the API's
 * event loop) made every enrollment through a key wait for the one before it: with 40,000 agents
 * joining, half the APIs' pool connections queued on one key's row and joins fell from 95 to 5 a
 * second (BENCHMARKS.md, "50,000 idle agents over 4 API processes").
 *
 * `requestId`: the agent's id for this enrollment, the same in its retries. When a machine was
 * already enrolled with it (the answer was lost on its way: a timeout, a dropped connection), that
 * machine is answered for again rather than a second one enrolled. Its first credential went with
 * the lost answer, so it gets a new one (the first stops working), and the key is not used twice:
 * a key's maxUses does not stop the retry, which is the use it already counted. Revoked or expired
 * since, the key refuses it as it refuses any enrollment; removed, reported since, or enrolled too
 * long ago, the machine refuses it (retriedEnrollmentRefusal), as it refuses a copy that arrived
 * before the one answered last (its agent gave up on it). Copies that arrive together meet on the
 * unique (key, request id) index: the later insert fails, and that copy is judged as a retry.
 */
export async function enrollMachine(db: Db, enrollmentKey: string, facts: MachineFacts, now: Date, requestId: string | null = null): Promise<EnrollOutcome> {
  for (let attempt = 1; ; attempt++) {
    try {
      const outcome = await enrollOnce(db, hashSecret(enrollmentKey), facts, now, requestId);
      // The key or the machine changed between the read and the write: judged again on what is there now.
      if (outcome !== 'CHANGED') return outcome;
    } catch (error) {
      if (!(requestId && isEnrollmentRequestTaken(error))) throw error;
    }
    if (attempt === 3) throw new Error(`enrollment request ${requestId}: the key and its machines kept changing under it`);
  }
}

const isEnrollmentRequestTaken = (error: unknown) => {
  const cause = (error as { cause?: { code?: string; constraint_name?: string } }).cause ?? (error as { code?: string; constraint_name?: string });
  return cause.code === '23505' && cause.constraint_name === 'machines_enrollment_request_idx';
};

async function enrollOnce(db: Db, secretHash: string, facts: MachineFacts, now: Date, requestId: string | null): Promise<EnrollOutcome | 'CHANGED'> {
  const [found] = await db
    .select({ key: enrollmentKeys, earlier: machines })
    .from(enrollmentKeys)
    .leftJoin(machines, requestId ? and(eq(machines.enrollmentKeyId, enrollmentKeys.id), eq(machines.enrollmentRequestId, requestId)) : sql`false`)
    .where(eq(enrollmentKeys.secretHash, secretHash));
  const key = found?.key;
  const earlier = found?.earlier ?? undefined;
  const refusal = enrollmentRefusal(key && earlier ? { ...key, maxUses: null } : key, now);
  if (refusal || !key) return { enrolled: false, reason: refusal ?? 'unknown key', keyId: key?.id ?? null };
  const credential = newSecret('fpm_');
  if (earlier) {
    const spent = retriedEnrollmentRefusal(earlier, now);
    if (spent) return { enrolled: false, reason: spent, keyId: key.id };
    // The key and the machine as judged above, checked again by the statement that replaces the credential.
    const [machine] = await db
      .update(machines)
      .set({ ...factColumns(facts), credentialHash: hashSecret(credential), lastSeenAt: now })
      .where(and(eq(machines.id, earlier.id), live, isNull(machines.latestAssessmentId), or(isNull(machines.lastSeenAt), lte(machines.lastSeenAt, now)), exists(db.select({ id: enrollmentKeys.id }).from(enrollmentKeys).where(and(eq(enrollmentKeys.id, key.id), keyUsable(now))))))
      .returning();
    return machine ? { enrolled: true, machine, credential, again: true } : 'CHANGED';
  }
  const [inserted] = await db.execute<{ id: string }>(enrollMachineStatement(key.id, now, { ...factColumns(facts), credentialHash: hashSecret(credential), enrollmentKeyId: key.id, enrollmentRequestId: requestId, lastSeenAt: now }, facts.osType));
  if (!inserted) return 'CHANGED';
  const [machine] = await db.select().from(machines).where(eq(machines.id, inserted.id));
  return { enrolled: true, machine: machine!, credential, again: false };
}

/** The key is neither revoked nor expired at `now` (its use limit is the caller's). */
const keyUsable = (now: Date) => and(isNull(enrollmentKeys.revokedAt), sql`(${enrollmentKeys.expiresAt} is null or ${enrollmentKeys.expiresAt} > ${now.toISOString()})`);

/**
 * One statement: the key's use taken (if it is still usable: not revoked, not expired, a use left)
 * and the machine inserted with the key's tags and the baseline they give it, or neither.
 */
function enrollMachineStatement(keyId: string, now: Date, values: Partial<Record<keyof typeof machines.$inferInsert, unknown>>, osType: MachineFacts['osType']): SQL {
  const columns = Object.entries(values).map(([field, value]) => ({ column: machines[field as keyof typeof values] as AnyPgColumn, value }));
  const names = sql.join(columns.map(({ column }) => sql.identifier(column.name)), sql`, `);
  const params = sql.join(columns.map(({ column, value }) => sql`${sql.param(value, column)}`), sql`, `);
  return sql`
    with taken as (
      update ${enrollmentKeys} set use_count = use_count + 1, last_used_at = ${sql.param(now, enrollmentKeys.lastUsedAt)}
      where ${and(eq(enrollmentKeys.id, keyId), keyUsable(now), sql`(${enrollmentKeys.maxUses} is null or ${enrollmentKeys.useCount} < ${enrollmentKeys.maxUses})`)}
      returning ${enrollmentKeys.defaultTags} as tags
    )
    insert into ${machines} (${names}, tags, baseline_id)
    select ${params}, taken.tags, ${assignmentSql(sql`${osType}::os_type`, sql`taken.tags`)} from taken
    returning id`;
}

/** Built once per database: every agent request runs it, and building it was a tenth of the API's CPU at rest. */
const credentialLookups = new WeakMap<Db, ReturnType<typeof prepareCredentialLookup>>();
function prepareCredentialLookup(db: Db) {
  return db
    .select({ id: machines.id })
    .from(machines)
    .where(and(eq(machines.credentialHash, sql.placeholder('credentialHash')), live))
    .prepare('find_machine_by_credential');
}

/**
 * For each credential hash, the id of the live machine that holds it (undefined: none), in one
 * statement on the unique credential index: the credentials of agent requests that arrive together.
 */
export async function findMachinesByCredentials(db: Db, credentialHashes: readonly string[]): Promise<Array<string | undefined>> {
  if (credentialHashes.length === 0) return [];
  const rows = await db
    .select({ id: machines.id, credentialHash: machines.credentialHash })
    .from(machines)
    .where(and(inArray(machines.credentialHash, [...new Set(credentialHashes)]), live));
  const byHash = new Map(rows.map((row) => [row.credentialHash, row.id]));
  return credentialHashes.map((hash) => byHash.get(hash));
}

/** The live machine whose credential hashes to `credentialHash` (`hashSecret` of the credential). */
export async function findMachineByCredential(db: Db, credentialHash: string): Promise<{ id: string } | undefined> {
  let lookup = credentialLookups.get(db);
  if (!lookup) credentialLookups.set(db, (lookup = prepareCredentialLookup(db)));
  const [row] = await lookup.execute({ credentialHash });
  return row;
}

/**
 * For each name, how many live machines carry it, ignoring case (hostnames ignore case: `WEB-01`
 * and `web-01` are one name to a person). One query for a whole page of machines.
 */
export async function machinesPerName(db: Db, names: readonly string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  if (names.length === 0) return counts;
  const rows = await db.execute<{ name: string; machines: number }>(sql`
    select n.name, (select count(*)::int from machines m where lower(m.name) = lower(n.name) and m.removed_at is null) as machines
    from unnest(${sql.param([...new Set(names)])}::text[]) as n(name)`);
  for (const row of rows) counts.set(row.name, row.machines);
  return counts;
}

/** A live machine; with `includeRemoved`, also one removed from management (its history stays). */
export async function findMachine(db: Db, id: string, options: { includeRemoved?: boolean } = {}): Promise<MachineRow | undefined> {
  const [row] = await db.select().from(machines).where(options.includeRemoved ? eq(machines.id, id) : and(eq(machines.id, id), live));
  return row;
}

export async function findMachines(db: Db, ids: readonly string[]): Promise<MachineRow[]> {
  if (ids.length === 0) return [];
  return db.select().from(machines).where(and(sql`${machines.id} = any(${sql.param([...ids])}::uuid[])`, live));
}

/** What a check-in changes, and what tells whether subscribers must hear of it. */
export type CheckInState = Pick<
  MachineRow,
  'name' | 'osType' | 'osName' | 'osVersion' | 'kernel' | 'environment' | 'agentVersion' | 'bootId' | 'packageManager' | 'warnings' | 'managementEnabled' | 'lastSeenAt' | 'clockOffsetSeconds'
>;

/** A machine's columns a check-in may change, as the check-in statements read them back. */
type CheckInStateRow = {
  name: string;
  os_type: OsType;
  os_name: string;
  os_version: string;
  kernel: string | null;
  environment: MachineRow['environment'];
  agent_version: string | null;
  boot_id: string | null;
  package_manager: string | null;
  warnings: string[];
  management_enabled: boolean;
  last_seen_at: string | Date | null;
  clock_offset_seconds: number | null;
};

/**
 * Stores the facts of a check-in by machine id and the time it was seen, whatever changed; returns
 * the machine's state before and after. Agents check in through checkInWithCredential (which
 * writes only what changed); this one sets a machine's last-seen time to a given instant (the
 * maintained fleet counts' tests move machines along their own clock with it). The row lock is FOR
 * NO KEY UPDATE: it does not wait for the key-share locks of rows being inserted for the machine.
 * `clockOffsetSeconds`: the agent's clock against the server's as this request showed it (null: it
 * did not say, and the last known offset stays).
 */
export async function recordCheckIn(
  db: Db,
  machineId: string,
  facts: MachineFacts,
  now: Date,
  clockOffsetSeconds: number | null = null,
): Promise<{ before: CheckInState; after: CheckInState } | undefined> {
  const store = () => db.execute<CheckInStateRow>(sql`with before as (
      select id, name, os_type, os_name, os_version, kernel, environment, agent_version, boot_id, package_manager, warnings, management_enabled, last_seen_at, clock_offset_seconds
      from machines where id = ${machineId} and removed_at is null and os_type = ${facts.osType} for no key update
    )
    update machines m set
      name = ${facts.hostname}, os_type = ${facts.osType}, os_name = ${facts.osName}, os_version = ${facts.osVersion},
      kernel = ${facts.kernel}, environment = ${facts.environment}, agent_version = ${facts.agentVersion}, boot_id = ${facts.bootId},
      package_manager = ${facts.packageManager}, warnings = ${sql.param(facts.warnings)}::text[], agent_capabilities = ${sql.param(facts.capabilities ?? [])}::text[], last_seen_at = ${now.toISOString()}::timestamptz,
      clock_offset_seconds = coalesce(${clockOffsetSeconds}::float8, before.clock_offset_seconds)
    from before where m.id = before.id
    returning before.*`);
  let [row] = await store();
  if (!row) {
    // No live machine of that OS type: another OS type (moved first), or no live machine at all.
    const old = await recordOsTypeChange(db, machineId, facts);
    [row] = old ? await store() : [];
    if (!row || !old) return undefined;
    row = { ...row, os_type: old.os_type };
  }
  const before = checkInState(row);
  return {
    before,
    after: { ...factColumns(facts), managementEnabled: row.management_enabled, lastSeenAt: now, clockOffsetSeconds: clockOffsetSeconds ?? row.clock_offset_seconds },
  };
}

/**
 * An agent's check-in, in one prepared statement: it finds the live machine that holds the
 * credential (the database judges the credential at every check-in, whatever an API process has
 * cached), says whether a command waits for it, and writes the row only when a fact changed, the
 * clock offset moved (CLOCK_OFFSET_MOVE_SECONDS, or across the skew warning), or the stored
 * last-seen time is older than `refreshBefore` (lastSeenRefreshMs). At rest only every other
 * check-in writes: the others are a read, take no row lock and leave no dead row version behind.
 *
 * The row is written under the lock the UPDATE takes itself (FOR NO KEY UPDATE: no key column
 * changes), which does not wait for the key-share locks that rows inserted for the machine (its
 * machine runs, its commands) hold until their transaction ends; the condition is evaluated again
 * on the row as it is once locked. `before` is the row as this statement's snapshot saw it.
 *
 * The machine is found by its credential alone, and no clause of either scan of `machines` lets the
 * planner use another index: on a table filled faster than autovacuum's first ANALYZE (a new
 * installation enrolling its fleet), it took indexes that fit a clause but not the look-up and
 * read every live machine through them, each check-in dearer as the fleet grew (17–47 ms at
 * 5,000–10,000 machines) until the statistics came (BENCHMARKS.md, "the ramp's dip"):
 * - the OS type is compared as text, which no index serves (the partial index on the OS type);
 * - `removed_at is null` appears in no scan of `machines`: any of the partial indexes on live
 *   machines (`where removed_at is null`) fits it, and a connection's cached generic plan, made
 *   while the table was nearly empty and unanalyzed, costs them all alike and kept one with the
 *   credential as a mere filter. The look-up is a MATERIALIZED CTE on the credential alone (the
 *   outer filter cannot be pushed into it), and the write checks `removed_at is not distinct
 *   from m.removed_at` (null, from the look-up: a join clause, which implies no index predicate),
 *   evaluated again on the row once locked, so a machine removed meanwhile is not written.
 * Left to the credential's unique index or the id, each scan reads its one row without statistics,
 * for custom and cached generic plans alike (test/integration/checkInPlan.test.ts). A generic plan
 * cached while the table had statistics of a few rows may still take a sequential scan, until the
 * next ANALYZE of `machines` makes PostgreSQL plan it again: the API runs one itself once enrollments
 * have grown the table (src/db/tableStatistics.ts).
 */
export const CHECK_IN_SQL = `with found as materialized (
    select id, name, os_type, os_name, os_version, kernel, environment, agent_version, boot_id, package_manager, warnings, management_enabled, last_seen_at, clock_offset_seconds, removed_at
    from machines where credential_hash = $1
  ),
  m as (
    select id, name, os_type, os_name, os_version, kernel, environment, agent_version, boot_id, package_manager, warnings, management_enabled, last_seen_at, clock_offset_seconds, removed_at
    from found where removed_at is null
  ),
  written as (
    update machines t set
      name = $3, os_name = $4, os_version = $5, kernel = $6, environment = $7, agent_version = $8, boot_id = $9,
      package_manager = $10, warnings = $11::text[], agent_capabilities = $12::text[], last_seen_at = $13::timestamptz,
      clock_offset_seconds = coalesce($15::float8, t.clock_offset_seconds)
    from m
    where t.id = m.id and t.credential_hash = $1 and t.removed_at is not distinct from m.removed_at and t.os_type::text = $2::text
      and (t.last_seen_at is null or t.last_seen_at < $14::timestamptz
        or t.name is distinct from $3 or t.os_name is distinct from $4 or t.os_version is distinct from $5
        or t.kernel is distinct from $6 or t.environment is distinct from $7::environment or t.agent_version is distinct from $8
        or t.boot_id is distinct from $9 or t.package_manager is distinct from $10
        or t.warnings is distinct from $11::text[] or t.agent_capabilities is distinct from $12::text[]
        or ($15::float8 is not null and (t.clock_offset_seconds is null
          or abs(t.clock_offset_seconds - $15::float8) >= ${CLOCK_OFFSET_MOVE_SECONDS}
          or (abs(t.clock_offset_seconds) >= ${CLOCK_SKEW_WARNING_SECONDS}) <> (abs($15::float8) >= ${CLOCK_SKEW_WARNING_SECONDS}))))
    returning t.id
  )
  select m.*, exists (select 1 from written) as written,
    exists (select 1 from agent_commands c where c.machine_id = m.id and ${waitingCommandsSql('c')}) as commands_waiting
  from m`;

export interface CheckInOutcome {
  machineId: string;
  before: CheckInState;
  /** The row as it is now stored (its last-seen time moves only when the check-in wrote). */
  after: CheckInState;
  /** Whether this check-in wrote the row. */
  written: boolean;
  /** Whether a command waited for the machine (to hand out, or to hand out again) when the statement ran. */
  commandsWaiting: boolean;
}

/**
 * Records a check-in by the machine holding `credentialHash` (see CHECK_IN_SQL); undefined when no
 * live machine holds it (removed, enrolled again, or never issued). `refreshBefore`: a stored
 * last-seen time before this is written again even when nothing else changed.
 */
export async function checkInWithCredential(
  { db, sql: client }: { db: Db; sql: Sql },
  credentialHash: string,
  facts: MachineFacts,
  now: Date,
  refreshBefore: Date,
  clockOffsetSeconds: number | null = null,
): Promise<CheckInOutcome | undefined> {
  const run = () =>
    client.unsafe<Array<CheckInStateRow & { id: string; written: boolean; commands_waiting: boolean }>>(
      CHECK_IN_SQL,
      [
        credentialHash,
        facts.osType,
        facts.hostname,
        facts.osName,
        facts.osVersion,
        facts.kernel,
        facts.environment,
        facts.agentVersion,
        facts.bootId,
        facts.packageManager,
        facts.warnings,
        facts.capabilities ?? [],
        now.toISOString(),
        refreshBefore.toISOString(),
        clockOffsetSeconds,
      ] as never[],
      { prepare: true },
    );
  let [row] = await run();
  if (!row) return undefined;
  let osTypeBefore = row.os_type;
  if (row.os_type !== facts.osType) {
    // The rare OS type change: stored with the maintained counts it moves, then the check-in again.
    const old = await recordOsTypeChange(db, row.id, facts);
    [row] = old ? await run() : [];
    if (!row || !old) return undefined;
    osTypeBefore = old.os_type;
  }
  const before = checkInState({ ...row, os_type: osTypeBefore });
  const after: CheckInState = row.written
    ? { ...factColumns(facts), managementEnabled: row.management_enabled, lastSeenAt: now, clockOffsetSeconds: clockOffsetSeconds ?? row.clock_offset_seconds }
    : before;
  return { machineId: row.id, before, after, written: row.written, commandsWaiting: row.commands_waiting };
}

function checkInState(row: CheckInStateRow): CheckInState {
  return {
    name: row.name,
    osType: row.os_type,
    osName: row.os_name,
    osVersion: row.os_version,
    kernel: row.kernel,
    environment: row.environment,
    agentVersion: row.agent_version,
    bootId: row.boot_id,
    packageManager: row.package_manager,
    warnings: row.warnings,
    managementEnabled: row.management_enabled,
    lastSeenAt: row.last_seen_at === null ? null : new Date(row.last_seen_at),
    clockOffsetSeconds: row.clock_offset_seconds,
  };
}

/**
 * The rare check-in that says the machine's OS type changed (or finds no live machine): the new
 * type is stored in a transaction that also moves the machine's latest assessment to the new type
 * in the maintained counts, so that no report stored in between counts it under the wrong type.
 * Answers the row as it was, as recordCheckIn's statement does (undefined: no live machine).
 */
async function recordOsTypeChange(db: Db, machineId: string, facts: MachineFacts) {
  return db.transaction(async (tx) => {
    const [row] = await tx.execute<CheckInStateRow & { latest_assessment_id: string | null }>(sql`select name, os_type, os_name, os_version, kernel, environment, agent_version, boot_id, package_manager, warnings, management_enabled, last_seen_at, clock_offset_seconds, latest_assessment_id
      from machines where id = ${machineId} and removed_at is null for no key update`);
    if (!row) return undefined;
    await tx.execute(sql`update machines set os_type = ${facts.osType} where id = ${machineId}`);
    if (row.latest_assessment_id && row.os_type !== facts.osType) {
      await tx.execute(missingUpdateDeltaSql([{ osType: row.os_type, assessmentId: row.latest_assessment_id }], [{ osType: facts.osType, assessmentId: row.latest_assessment_id }]));
    }
    return row;
  });
}

export async function setMachineManagement(db: Db, id: string, enabled: boolean): Promise<MachineRow | undefined> {
  const [row] = await db.update(machines).set({ managementEnabled: enabled }).where(and(eq(machines.id, id), live)).returning();
  return row;
}

/** New tags may give the machine another baseline: its baseline and kept state follow. */
export async function setMachineTags(db: Db, id: string, tags: string[]): Promise<MachineRow | undefined> {
  const [row] = await db.update(machines).set({ tags }).where(and(eq(machines.id, id), live)).returning();
  if (!row) return undefined;
  await reassignMachineBaseline(db, id);
  return findMachine(db, id);
}

/** Removes a machine from management: its credential stops working at once; its history stays. */
export async function removeMachine(db: Db, id: string): Promise<MachineRow | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(machines)
      .set({ removedAt: sql`now()`, credentialHash: null, managementEnabled: false })
      .where(and(eq(machines.id, id), live))
      .returning();
    // Its latest assessment stops counting among the fleet's missing updates (read under the row's lock).
    if (row?.latestAssessmentId) {
      await tx.execute(missingUpdateDeltaSql([{ osType: row.osType, assessmentId: row.latestAssessmentId }], []));
      // And its imported-fix exposures (none for a machine no longer live).
      await tx.execute(sql`select cve_fix_refresh(array[${row.id}]::uuid[])`);
    }
    return row;
  });
}

// ---- The fleet view -------------------------------------------------------------------------

export interface MachineFilter {
  compliance?: Compliance[];
  readiness?: AgentReadiness[];
  osType?: OsType;
  /** Machines carrying every one of these tags. */
  tags?: string[];
  /** Case-insensitive substring of the name. */
  nameContains?: string;
  /**
   * The filter's machines are among these: a few candidates the page found first (not an input):
   * those meeting its other conditions (withFewMeetingTheRest) or holding its short part of a name
   * (withNameHolders), when few do.
   */
  among?: readonly string[];
  /** true: machines with an update past its SLA due date; false: machines without one. */
  overdue?: boolean;
}

export type { MachineSortField };

export interface MachineQuery {
  filter: MachineFilter;
  sort: MachineSort;
  /** Machines skipped before the page (an old offset cursor); 0 with `after`. */
  offset: number;
  /** The page starts after this position in the order (a keyset cursor, src/fleet/machineOrder.ts). */
  after?: MachinePosition;
  limit: number;
  now: Date;
  thresholds: FleetThresholds;
}

export function machineConditions(filter: MachineFilter, now: Date, thresholds: FleetThresholds): SQL | undefined {
  const conditions: SQL[] = [live];
  if (filter.compliance?.length) conditions.push(sql`${complianceSql(now, thresholds)} = any(${sql.param(filter.compliance)}::text[])`);
  if (filter.readiness?.length) conditions.push(sql`${readinessSql(now, thresholds)} = any(${sql.param(filter.readiness)}::text[])`);
  if (filter.osType) conditions.push(eq(machines.osType, filter.osType));
  // cardinality: lets the overdue filter read the partial index of the machines with an SLA due date (most have none).
  if (filter.overdue !== undefined) conditions.push(filter.overdue ? sql`(cardinality(${machines.slaDueDates}) > 0 and ${overdueSql(now)})` : sql`not ${overdueSql(now)}`);
  if (filter.tags?.length) conditions.push(sql`${machines.tags} @> ${sql.param(filter.tags)}::text[]`);
  if (filter.nameContains) conditions.push(nameContainsSql(filter.nameContains));
  if (filter.among) conditions.push(sql`${machines.id} = any(${sql.param([...filter.among])}::uuid[])`);
  return and(...conditions);
}

/** The longest part of a name machine_name_grams holds (migration 0058): longer parts are looked up by trigram (0040). */
const NAME_GRAM_LENGTH = 2;

/** A part of a name short enough for machine_name_grams (none: the filter has no such part). */
function shortNamePart(filter: MachineFilter): string | undefined {
  return filter.nameContains && [...filter.nameContains].length <= NAME_GRAM_LENGTH ? filter.nameContains : undefined;
}

/**
 * Machines whose name holds `part`, case-insensitively. A part of one or two characters is written
 * with strpos on lower() (the same comparison in a UTF8 database, where ILIKE lowercases both sides
 * with lower()): as ILIKE, the planner read every entry of the trigram index, which holds no part
 * that short (0.37 s at 1,000,000 machines before the first row); such a part's machines are found
 * through machine_name_grams instead (withNameHolders, pageByNamePart).
 */
function nameContainsSql(part: string): SQL {
  if ([...part].length <= NAME_GRAM_LENGTH) return sql`strpos(lower(${machines.name}), lower(${part})) > 0`;
  return sql`${machines.name} ilike ${`%${part.replace(/[\\%_]/g, (c) => `\\${c}`)}%`}`;
}

/**
 * At most this many candidates (machines whose name holds a short part, machines meeting a part's
 * other conditions) are read by key and sorted; above it, a short part alone is walked in name order
 * along machine_name_grams' key (pageByNamePart), a part with other conditions along the names.
 */
const FEW_CANDIDATES = 2_000;

/**
 * The filter with, when it has a short part of a name (shortNamePart) that at most FEW_CANDIDATES
 * machines' names hold, those machines (among): one read of at most that many entries of
 * machine_name_grams' key. Without it a rare part was looked for along whatever index the page
 * walks, the whole fleet when nothing holds it (0.36 s for a page, 1.35 s for its count at
 * 1,000,000 machines).
 */
async function withNameHolders(db: Db, filter: MachineFilter): Promise<MachineFilter> {
  const part = shortNamePart(filter);
  if (part === undefined || filter.among) return filter;
  const [row] = await db.execute<{ ids: string[] | null }>(sql`
    select array_agg(g.machine_id) as ids from (
      select g.machine_id from ${machineNameGrams} g where g.gram = lower(${part}) limit ${FEW_CANDIDATES + 1}) g
    having count(*) <= ${FEW_CANDIDATES}`);
  return row ? { ...filter, among: row.ids ?? [] } : filter;
}

/**
 * The filter with, when it reads some conditions first (fewFirst, src/fleet/fleetSummary.ts) and the
 * maintained counts say at most FEW_CANDIDATES machines meet them, those machines (among): a tag's
 * condition through the few tag rows in the states that can meet it (tagMachinesMeeting), other
 * conditions through their own paths; a part of a name is then tested on them alone. Without it the names holding the part were walked until a page of them met
 * the conditions, every one when few or none do (about 1 s for a part every name holds and a
 * condition none meets, at 1,000,000 machines), and a tag's rows were walked to the same end (45 ms
 * for a tag of 100,000 machines). `total`: the maintained count read, the filter's own when it has
 * no part of a name.
 */
async function withFewMeetingTheRest(db: Db, query: MachineQuery): Promise<{ filter: MachineFilter; total?: number }> {
  const first = query.filter.among ? null : fewFirst(query.filter);
  if (!first) return { filter: query.filter };
  const rest = { ...query.filter, nameContains: undefined };
  const total = await maintainedTotal(db, first.counted, rest, query.now, query.thresholds);
  if (total === 0) return { filter: { ...query.filter, among: [] }, total };
  if (total > FEW_CANDIDATES) return { filter: query.filter, total };
  const meeting = first.read === 'TAG_ROWS' ? await tagMachinesMeeting(db, first.tag, rest, query.now, query.thresholds) : await fewMeeting(db, { ...query, filter: rest });
  // More than the counts said (machines changed meanwhile), or stored states of other thresholds: the walk, as without them.
  return { filter: meeting ? { ...query.filter, among: meeting } : query.filter, total };
}

/** The ids of the machines meeting a filter, when at most FEW_CANDIDATES do (else undefined). */
async function fewMeeting(db: Db, query: MachineQuery): Promise<string[] | undefined> {
  const meeting = await listMachines(db, { ...query, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, after: undefined, limit: FEW_CANDIDATES, count: false });
  return meeting.hasMore ? undefined : meeting.rows.map((r) => r.id);
}

/**
 * Candidates for a tag's condition (compliance, readiness, the OS type, overdue; storedStatesMeeting):
 * the tag's machines whose tag rows carry a state, OS type and overdue that can meet it, from
 * machine_tags' (tag, state) index (migration 0059), and the tag's machines whose stored state lapsed
 * (a few at rest), evaluated now. At most FEW_CANDIDATES ids, undefined when more, or when the stored
 * states are not of these thresholds. A superset: the page tests every condition on them. The tag
 * rows are read in the index's order: on statistics that thought many of them qualify (taken before
 * a mass remediation), the planner otherwise read the whole table.
 */
async function tagMachinesMeeting(db: Db, tag: string, filter: MachineFilter, now: Date, thresholds: FleetThresholds): Promise<string[] | undefined> {
  const at = now.toISOString();
  const everyCondition = machineConditions(filter, now, thresholds);
  const lapsed = (which: SQL) => sql`select ${machines.id} as id from ${machines} where ${everyCondition} and ${which}`;
  const [row] = await db.execute<{ settled: boolean; ids: string[] }>(sql`
    select ${settledSql(thresholds)} as settled, array(
      select id from (
        (select ${machineTags.machineId} as id from ${machineTags}
          where ${and(
            sql`${machineTags.tag} = ${tag} and ${machineTags.state} = any(${sql.param(storedStatesMeeting(filter))}::text[])`,
            filter.osType ? sql`${machineTags.osType} = ${filter.osType}` : undefined,
            filter.overdue === undefined ? undefined : sql`${machineTags.overdue} = ${filter.overdue}`,
          )}
          order by ${machineTags.state}, ${machineTags.osType}, ${machineTags.overdue}, ${machineTags.machineId} limit ${FEW_CANDIDATES + 1})
        union all ${lapsed(clockLapsed(at))}
        union all ${lapsed(generationLapsed)}) candidates
      limit ${FEW_CANDIDATES + 1}) as ids`);
  return row!.settled && row!.ids.length <= FEW_CANDIDATES ? row!.ids : undefined;
}

/** How many machines meet a filter the maintained counts cover (countedGroups). */
async function maintainedTotal(db: Db, counted: CountedGroups, filter: MachineFilter, now: Date, thresholds: FleetThresholds): Promise<number> {
  const groups =
    counted.of === 'TAG' ? await maintainedTagGroups(db, counted.tag, now, thresholds, counted) : groupsFromCounts(await maintainedSummaryCounts(db, now, thresholds), counted);
  return matchingMachines({ groups }, filter);
}

/**
 * Each sort field as SQL: what ORDER BY sorts on, its key as an integer (src/fleet/machineOrder.ts:
 * counts as they are, times in microseconds since the epoch, exact), and a key turned back into a
 * value comparable with the first. COMPLIANCE is sorted set by set (pageByCompliance).
 */
const SORT_SQL: Record<Exclude<MachineSortField, 'NAME' | 'COMPLIANCE'>, { value: SQL; key: SQL; fromKey: (key: bigint) => SQL }> = {
  CRITICAL_AND_SECURITY_COUNT: { value: sql`(${machines.criticalCount} + ${machines.securityCount})`, key: sql`(${machines.criticalCount} + ${machines.securityCount})::bigint`, fromKey: (k) => sql`${k.toString()}::bigint` },
  OTHER_COUNT: { value: sql`${machines.otherCount}`, key: sql`${machines.otherCount}::bigint`, fromKey: (k) => sql`${k.toString()}::bigint` },
  LAST_SEEN: { value: sql`${machines.lastSeenAt}`, key: sql`(extract(epoch from ${machines.lastSeenAt}) * 1000000)::bigint`, fromKey: (k) => sql`(timestamptz 'epoch' + ${k.toString()}::bigint * interval '1 microsecond')` },
  LAST_ASSESSED: { value: sql`${machines.lastAssessedAt}`, key: sql`(extract(epoch from ${machines.lastAssessedAt}) * 1000000)::bigint`, fromKey: (k) => sql`(timestamptz 'epoch' + ${k.toString()}::bigint * interval '1 microsecond')` },
};

/**
 * The sorts read along an index of the live machines in their exact order (migrations 0039 and
 * 0045): ascending on (key, name, id), descending on (-key, name, id), since the order is the key
 * one way and then name and id ascending either way, which one index read backwards cannot give. The
 * key is never null in the index: an update count never is, and a missing last-assessed time is
 * the largest key (last ascending, first descending, as isAfter orders it; src/fleet/machineOrder.ts),
 * in microseconds since the epoch through sort_micros, an immutable function an index may use
 * (extract on a timestamptz is only stable). So a page after a position is one row comparison the
 * index starts at, at any depth. `cast`: the key's SQL type, for the position compared with it.
 */
const MISSING_TIME_KEY = 9223372036854775807n;
const INDEXED_SORTS: Partial<Record<MachineSortField, { key: SQL; missing: bigint; cast: SQL }>> = {
  CRITICAL_AND_SECURITY_COUNT: { key: sql`(${machines.criticalCount} + ${machines.securityCount})`, missing: 0n, cast: sql.raw('int') },
  OTHER_COUNT: { key: sql`${machines.otherCount}`, missing: 0n, cast: sql.raw('int') },
  LAST_ASSESSED: { key: sql`coalesce(sort_micros(${machines.lastAssessedAt}), ${sql.raw(MISSING_TIME_KEY.toString())})`, missing: MISSING_TIME_KEY, cast: sql.raw('bigint') },
};

/** The expression an indexed sort reads its index in (and orders by), for a direction. */
function indexedOrder(field: MachineSortField, direction: 'ASC' | 'DESC'): SQL | undefined {
  const sort = INDEXED_SORTS[field];
  if (!sort) return undefined;
  return direction === 'ASC' ? sort.key : sql`(-${sort.key})`;
}

/** After the position on name and id alone (the tie-break; the name bound lets the name index start there). */
function afterOnName(position: MachinePosition): SQL {
  return sql`(${machines.name} >= ${position.name} and (${machines.name}, ${machines.id}) > (${position.name}, ${position.id}::uuid))`;
}

/**
 * The machines after a position, the SQL twin of `isAfter` (src/fleet/machineOrder.ts): a later key
 * in the direction (a missing key is last ascending, first descending), or the same key and a later
 * name and id.
 */
function afterPosition(field: Exclude<MachineSortField, 'NAME' | 'COMPLIANCE'>, direction: 'ASC' | 'DESC', position: MachinePosition): SQL {
  const { value, fromKey } = SORT_SQL[field];
  const tie = afterOnName(position);
  if (position.key === null) return direction === 'ASC' ? sql`(${value} is null and ${tie})` : sql`((${value} is null and ${tie}) or ${value} is not null)`;
  const at = fromKey(position.key);
  const later = direction === 'ASC' ? sql`${value} > ${at}` : sql`${value} < ${at}`;
  const nullsAfter = direction === 'ASC' && sortKeyNullable(field) ? sql` or ${value} is null` : sql``;
  return sql`(${later}${nullsAfter} or (${value} = ${at} and ${tie}))`;
}

/** A page of machines with where each stands in the order (its cursor's position). */
export interface MachinePage {
  rows: MachineRow[];
  positions: MachinePosition[];
  hasMore: boolean;
  totalCount: number | null;
}

/**
 * A page of machines, with whether more follow (one row past the page is read for that) and, unless
 * `count` is false, how many match: a count reads every matching machine (or, with `countUpTo`, at
 * most one more than that many: the count is then that many at most), which is most of a page's
 * cost on a large fleet (computersPage takes it from maintained counts where they count the filter).
 * With `after`, the page is read from that position on (no machine before it is read, at any depth).
 */
export async function listMachines(db: Db, given: MachineQuery & { count?: boolean; countUpTo?: number }): Promise<MachinePage> {
  const query = { ...given, filter: await withNameHolders(db, given.filter) };
  const where = machineConditions(query.filter, query.now, query.thresholds);
  const n = { n: sql<number>`count(*)::int` };
  const counting =
    query.count === false
      ? null
      : query.countUpTo === undefined
        ? db.select(n).from(machines).where(where)
        : walksNamePart(query.filter)
          ? db.execute<{ n: number }>(sql`select count(*)::int as n from (${namePartWalk(query.filter, query.countUpTo + 1)}) matches`)
          : db.select(n).from(db.select({ one: sql`1` }).from(machines).where(where).limit(query.countUpTo + 1).as('matches'));
  const counted = counting ? counting.then(([total]) => total?.n ?? 0) : Promise.resolve(null);
  // By compliance, the sets read are the filter's states themselves: the filter on them again would only mislead the planner (estimating a few rows, it sorted every machine of the state).
  const page =
    query.sort.field === 'COMPLIANCE' ? pageByCompliance(db, machineConditions({ ...query.filter, compliance: undefined }, query.now, query.thresholds), query) : pageByKey(db, where, query);
  const [read, totalCount] = await Promise.all([page, counted]);
  const kept = read.slice(0, query.limit);
  return { rows: kept.map((r) => r.row), positions: kept.map((r) => r.position), hasMore: read.length > query.limit, totalCount };
}

/**
 * A page of the computers view with its totalCount, as the API answers it: counted from maintained
 * groups where some keep it (countedGroups), exact at the read; any other filter counts its matches
 * with the page, up to `countUpTo` (MATCHES_COUNTED_UP_TO): past it, totalCount is that many and
 * not exact. When the counts say few or no machines meet the filter's conditions other than a part of a
 * name, those are read first (withFewMeetingTheRest), nothing more when none do.
 */
export async function computersPage(db: Db, given: MachineQuery & { countUpTo?: number }): Promise<MachinePage & { totalCount: number; totalCountExact: boolean }> {
  const few = await withFewMeetingTheRest(db, given);
  const query = { ...given, filter: few.filter };
  const counted = countedGroups(query.filter);
  const upTo = query.countUpTo ?? MATCHES_COUNTED_UP_TO;
  // Without a part of a name, the count read for the few is the filter's own.
  const [page, total] = await Promise.all([
    listMachines(db, { ...query, count: !counted, countUpTo: upTo }),
    counted ? (few.total ?? maintainedTotal(db, counted, query.filter, query.now, query.thresholds)) : null,
  ]);
  if (total !== null) return { ...page, totalCount: total, totalCountExact: true };
  return { ...page, totalCount: Math.min(page.totalCount!, upTo), totalCountExact: page.totalCount! <= upTo };
}

type Placed = { row: MachineRow; position: MachinePosition };

/**
 * The statement of a page of an indexed sort (an update count, last assessed; one row more than the
 * page), along the sort's index in the direction; a page after a position starts at it in the
 * index. `sortKey`: the position's key as cursors carry it (SORT_SQL's: null when not assessed).
 * Exported for the test that reads its plan.
 */
export function indexedSortPage(db: Db, where: SQL | undefined, query: Pick<MachineQuery, 'sort' | 'after' | 'offset' | 'limit'>) {
  const { field, direction } = query.sort;
  const sort = INDEXED_SORTS[field];
  const ordered = indexedOrder(field, direction);
  if (!sort || !ordered) throw new Error(`${field} is not a sort read along an index`);
  const cursorKey = SORT_SQL[field as Exclude<MachineSortField, 'NAME' | 'COMPLIANCE'>].key;
  return db
    .select({ ...getTableColumns(machines), sortKey: sql<string | null>`(${cursorKey})::text` })
    .from(machines)
    .where(
      query.after
        ? and(where, sql`(${ordered}, ${machines.name}, ${machines.id}) > (${positionKey(direction, query.after.key ?? sort.missing)}::${sort.cast}, ${query.after.name}, ${query.after.id}::uuid)`)
        : where,
    )
    .orderBy(ordered, asc(machines.name), asc(machines.id))
    .offset(query.after ? 0 : query.offset)
    .limit(query.limit + 1);
}

/**
 * A page in name order of the machines carrying the filter's tags, along machine_tags' primary key
 * (tag, name, id; migration 0041) from one of the tags: a page of a tag's machines reads a page of its
 * rows and those machines, whether the tag is rare (a GIN bitmap would read every machine carrying
 * it, scattered over the table, to sort them) or common. With several tags the walk starts from the
 * one the fewest machines carry (the maintained counts), the others tested on each machine.
 */
async function pageByTag(db: Db, query: MachineQuery): Promise<Placed[]> {
  const rows = await tagPage(db, query);
  return rows.map((row) => ({ row, position: { key: null, name: row.name, id: row.id } }));
}

/**
 * The statement of pageByTag (one row more than the page). Exported for the tests that read its plan.
 *
 * With a condition (compliance, readiness, the OS type, overdue: storedStatesMeeting), the walk
 * skips the tag rows whose stored state, OS type and overdue (0057, INCLUDEd in the key: read from
 * the index alone) cannot meet it, and reads the machines of the others where their stored state
 * holds; the machines whose state lapsed (the clock's or an older generation's: a few at rest,
 * machines_summary_generation_next_at_idx) are evaluated now, beside it; with thresholds other than
 * the stored ones every machine of the tag is evaluated now, as without a condition. Before, with
 * few of the tag's machines meeting the condition, the walk read every machine carrying the tag.
 */
export function tagPage(db: Db, query: Pick<MachineQuery, 'filter' | 'after' | 'offset' | 'limit' | 'now' | 'thresholds'>) {
  const tags = [...new Set(query.filter.tags ?? [])];
  if (tags.length === 0) throw new Error('a tag page needs a tag');
  // One tag: its rows are its machines, so the machines' own tag condition is left out. Kept, the
  // planner took it for a second, independent filter (one machine in a thousand of the tag's rows
  // passing), read every row of the tag and sorted them: 250 ms for a tag of 1,000 machines at 1M.
  const where = machineConditions(tags.length === 1 ? { ...query.filter, tags: undefined } : query.filter, query.now, query.thresholds);
  const from =
    tags.length === 1
      ? sql`${tags[0]!}`
      : sql`(select x from unnest(${sql.param(tags)}::text[]) x order by (select coalesce(sum(c.n), 0) from ${machineTagCounts} c where c.tag = x), x limit 1)`;
  const afterRow = query.after ? sql`(${machineTags.name}, ${machineTags.machineId}) > (${query.after.name}, ${query.after.id}::uuid)` : undefined;
  const enough = (query.after ? 0 : query.offset) + query.limit + 1;
  // The walk: each tag row's machine read by its key alone, in a lateral subquery named as the
  // table (so that the conditions, written on machines, apply to it) whose `limit 1` keeps every
  // condition out of it and the planner from turning it into a join the other way round. Planned
  // on statistics that did not yet know a bulk enrollment, a join (and a lateral with the
  // conditions inside) read the live machines first, or through the OS type's index, probing for
  // each tag row: every row of the tag per machine, 4 to 23 s for a tag of 10,000 machines
  // (test/integration/machineCounts.test.ts reads the plan; BENCHMARKS.md, "Reads on statistics
  // that lag behind the fleet"). `rows`: conditions on the tag row; an uncorrelated one (settled or
  // not) is a one-time filter, the whole walk or none.
  const walk = (conditions: SQL | undefined, rows?: SQL) =>
    sql`(select ${machines.id} from ${machineTags}
      cross join lateral (select * from ${machines} where ${machines.id} = ${machineTags.machineId} limit 1) ${machines}
      where ${and(sql`${machineTags.tag} = ${from}`, rows, afterRow, where, conditions)}
      order by ${machineTags.name}, ${machineTags.machineId} limit ${enough})`;
  const states = storedStatesMeeting(query.filter);
  let read: SQL;
  if (!states) {
    read = walk(undefined);
  } else {
    const at = query.now.toISOString();
    const settled = settledSql(query.thresholds);
    const stored = and(
      settled,
      sql`${machineTags.state} = any(${sql.param(states)}::text[])`,
      query.filter.osType ? sql`${machineTags.osType} = ${query.filter.osType}` : undefined,
      query.filter.overdue === undefined ? undefined : sql`${machineTags.overdue} = ${query.filter.overdue}`,
    );
    const everyCondition = machineConditions(query.filter, query.now, query.thresholds);
    const afterMachine = query.after ? afterOnName(query.after) : sql`true`;
    const lapsed = (which: SQL) =>
      sql`(select ${machines.id} from ${machines} where ${everyCondition} and ${afterMachine} and ${settled} and ${which} order by ${machines.name}, ${machines.id} limit ${enough})`;
    read = sql`${walk(stateHolds(at), stored)}
      union all ${lapsed(clockLapsed(at))}
      union all ${lapsed(generationLapsed)}
      union all ${walk(undefined, sql`not ${settled}`)}`;
  }
  // At most four walks' worth of ids.
  return walkedPage(db, read, query);
}

/** The page of the machines a walk in name order found (`ids`: a statement of their ids, a few pages' worth), read by their keys. */
function walkedPage(db: Db, ids: SQL, query: Pick<MachineQuery, 'after' | 'offset' | 'limit'>) {
  return db
    .select()
    .from(machines)
    .where(sql`${machines.id} = any(array(select id from (${ids}) page))`)
    .orderBy(asc(machines.name), asc(machines.id))
    .offset(query.after ? 0 : query.offset)
    .limit(query.limit + 1);
}

/**
 * Whether a page by name or a count of this filter walks machine_name_grams' rows of its short part:
 * a part many names hold (no candidates found first) and nothing else. With another condition the
 * names are walked instead (each machine's row is needed, and read in name order along the names'
 * index it costs a quarter of what a probe by key per part row costs: 0.14 against 1.2–1.4 s for a
 * part every name holds and a readiness most machines lack, at 1,000,000 machines).
 */
function walksNamePart(filter: MachineFilter): boolean {
  return shortNamePart(filter) !== undefined && filter.among === undefined && Object.entries(filter).every(([field, value]) => field === 'nameContains' || !isSet(value));
}

/**
 * The ids of the machines whose name holds the filter's short part (walksNamePart), in name order
 * along machine_name_grams' key, at most `limit`, from the key alone (its rows are live machines): a
 * page of a part many names hold reads a page of them wherever they sit in the name order (along
 * the live names, a part only the last names hold was found after reading every other), and its
 * count up to 10,001 reads no machine.
 */
function namePartWalk(filter: MachineFilter, limit: number, after?: MachinePosition): SQL {
  const afterRow = after ? sql`(${machineNameGrams.name}, ${machineNameGrams.machineId}) > (${after.name}, ${after.id}::uuid)` : undefined;
  return sql`select ${machineNameGrams.machineId} as id from ${machineNameGrams}
    where ${and(sql`${machineNameGrams.gram} = lower(${shortNamePart(filter)!})`, afterRow)}
    order by ${machineNameGrams.name}, ${machineNameGrams.machineId} limit ${limit}`;
}

/** A page in name order of a short part of a name many machines' names hold (namePartWalk), then the page's machines by their keys. */
async function pageByNamePart(db: Db, query: MachineQuery): Promise<Placed[]> {
  const rows = await walkedPage(db, namePartWalk(query.filter, (query.after ? 0 : query.offset) + query.limit + 1, query.after), query);
  return rows.map((row) => ({ row, position: { key: null, name: row.name, id: row.id } }));
}

/** Whether the stored summary states are of this process's thresholds (else each machine is evaluated now). */
function settledSql(thresholds: FleetThresholds): SQL {
  return sql`exists (select 1 from fleet_summary_settings s where s.linux_assessment_max_age_ms = ${thresholds.assessmentMaxAgeMs.LINUX}
    and s.windows_assessment_max_age_ms = ${thresholds.assessmentMaxAgeMs.WINDOWS} and s.disconnected_after_ms = ${thresholds.disconnectedAfterMs})`;
}

/** A position's key as indexedOrder orders it (a missing key already made the sort's largest; a cursor of another order is refused before this). */
function positionKey(direction: 'ASC' | 'DESC', key: bigint): string {
  return (direction === 'ASC' ? key : -key).toString();
}

async function pageByKey(db: Db, where: SQL | undefined, query: MachineQuery): Promise<Placed[]> {
  const { field, direction } = query.sort;
  // A few candidates found first: those machines, by key, whatever the tag (walked, a tag's machines were all read).
  if (field === 'NAME' && query.filter.tags?.length && !query.filter.among) return pageByTag(db, query);
  if (field === 'NAME' && walksNamePart(query.filter)) return pageByNamePart(db, query);
  if (field === 'NAME') {
    const rows = await db
      .select()
      .from(machines)
      .where(query.after ? and(where, afterOnName(query.after)) : where)
      .orderBy(asc(machines.name), asc(machines.id))
      .offset(query.after ? 0 : query.offset)
      .limit(query.limit + 1);
    return rows.map((row) => ({ row, position: { key: null, name: row.name, id: row.id } }));
  }
  if (INDEXED_SORTS[field]) {
    const rows = await indexedSortPage(db, where, query);
    return rows.map(({ sortKey, ...row }) => ({ row, position: { key: sortKey === null ? null : BigInt(sortKey), name: row.name, id: row.id } }));
  }
  const { value, key } = SORT_SQL[field as Exclude<MachineSortField, 'NAME' | 'COMPLIANCE'>];
  const rows = await db
    .select({ ...getTableColumns(machines), sortKey: sql<string | null>`(${key})::text` })
    .from(machines)
    .where(query.after ? and(where, afterPosition(field as Exclude<MachineSortField, 'NAME' | 'COMPLIANCE'>, direction, query.after)) : where)
    .orderBy((direction === 'ASC' ? asc : desc)(value), asc(machines.name), asc(machines.id))
    .offset(query.after ? 0 : query.offset)
    .limit(query.limit + 1);
  return rows.map(({ sortKey, ...row }) => ({ row, position: { key: sortKey === null ? null : BigInt(sortKey), name: row.name, id: row.id } }));
}

/**
 * A page sorted by compliance (and one machine more), without sorting the whole fleet: the
 * compliance sets are read in the direction's rank order (only those a compliance filter keeps),
 * each in name order, and the next set only when the ones before hold fewer than
 * offset + limit + 1 machines (so the first page of a fleet with many NON_COMPLIANT machines is
 * one query). After a position, the sets before its own are skipped and its own is read after its
 * name and id.
 *
 * A set is read from the state the summary keeps for each machine (docs/fleet-counts.md), through
 * the index on it in name order, where that state still holds (stateHolds). The machines whose
 * state has lapsed (clockLapsed, generationLapsed: those the upkeep has not reached, a few, through index ranges)
 * are evaluated now and merged in; when this process's thresholds are not the stored ones, every
 * machine is (each branch's condition on the settings is decided once per statement, so only one
 * of them reads machines). Compliance depends on now, so
 * it cannot be an indexed column itself: sorting every machine by it took 54 ms at 10k machines,
 * reading one set by name through the name index 1.4 s at 1M for a set of few machines.
 */
async function pageByCompliance(db: Db, where: SQL | undefined, query: MachineQuery): Promise<Placed[]> {
  const at = query.now.toISOString();
  const { thresholds } = query;
  const compliance = complianceSql(query.now, thresholds);
  // The stored thresholds are this process's (else the reader of the summary stores them, and until then each machine is evaluated here).
  const settled = settledSql(thresholds);
  const offset = query.after ? 0 : query.offset;
  const enough = offset + query.limit + 1;
  const merged: Placed[] = [];
  for (const state of complianceOrder(query.sort.direction)) {
    if (merged.length >= enough) break;
    if (query.filter.compliance?.length && !query.filter.compliance.includes(state)) continue;
    const rank = BigInt(complianceRank(state));
    const place = query.after ? compareKeys(query.sort.direction, rank, query.after.key) : 1;
    if (place < 0) continue;
    const from = place === 0 ? afterOnName(query.after!) : sql`true`;
    const limit = enough - merged.length;
    const rows = await db
      .select()
      .from(machines)
      .where(
        sql`${machines.id} in (select id from (
          (select ${machines.id}, ${machines.name} from ${machines} where ${where} and ${from} and ${settled} and ${stateHolds(at)} and split_part(${machines.summaryState}, ':', 1) = ${state}
           order by ${machines.name}, ${machines.id} limit ${limit})
          union all
          (select ${machines.id}, ${machines.name} from ${machines} where ${where} and ${from} and ${settled} and ${clockLapsed(at)} and ${compliance} = ${state}
           order by ${machines.name}, ${machines.id} limit ${limit})
          union all
          (select ${machines.id}, ${machines.name} from ${machines} where ${where} and ${from} and ${settled} and ${generationLapsed} and ${compliance} = ${state}
           order by ${machines.name}, ${machines.id} limit ${limit})
          union all
          (select ${machines.id}, ${machines.name} from ${machines} where ${where} and ${from} and not ${settled} and ${compliance} = ${state}
           order by ${machines.name}, ${machines.id} limit ${limit})) passed)`,
      )
      .orderBy(asc(machines.name), asc(machines.id))
      .limit(limit);
    merged.push(...rows.map((row) => ({ row, position: { key: rank, name: row.name, id: row.id } })));
  }
  return merged.slice(offset, enough);
}

/**
 * A page of an assessment's pending updates, critical first, then security, then by name, each with
 * when fleetpatch first saw its name and version and, under `baselineId` (the machine's baseline;
 * null: the built-in one, which has no SLA), its SLA due date. Two lookups per row of the page, by
 * primary key.
 */
export async function pendingUpdatesPage(
  db: Db,
  assessmentId: string,
  offset: number,
  limit: number,
  baselineId: string | null = null,
): Promise<{ rows: Array<PendingUpdateRow & { firstSeenAt: Date | null; clockFrom: Date | null; dueAt: Date | null }>; totalCount: number }> {
  const where = eq(pendingUpdates.assessmentId, assessmentId);
  const toDate = (value: string | Date) => new Date(value);
  const [rows, [total]] = await Promise.all([
    db
      .select({
        ...getTableColumns(pendingUpdates),
        // The outer row's columns by table name: drizzle writes a column of the one table selected from
        // unqualified, and inside these subqueries "name" would be the subquery's own.
        firstSeenAt: sql<Date | null>`(select min(f.first_seen_at) from ${updateFirstSeen} f where f.name = ${pendingUpdates}.name and f.version = ${pendingUpdates}.available_version)`.mapWith(toDate),
        // The stored verdicts' clock (src/fleet/baselines.ts updateClock over updateClocksSql's row):
        // the issue date the first sighting recorded, else the first sighting.
        clockFrom: sql<Date | null>`(select coalesce(min(f.advisory_issued_at), min(f.first_seen_at)) from ${updateFirstSeen} f where f.name = ${pendingUpdates}.name and f.version = ${pendingUpdates}.available_version)`.mapWith(toDate),
        dueAt: sql<Date | null>`(select v.due_at from ${baselineVerdicts} v where v.baseline_id = ${baselineId}::uuid and v.name = ${pendingUpdates}.name and v.version = ${pendingUpdates}.available_version
          and v.classification = ${pendingUpdates}.classification::text and v.severity = coalesce(${pendingUpdates}.severity::text, ''))`.mapWith(toDate),
      })
      .from(pendingUpdates)
      .where(where)
      .orderBy(sql`(case ${pendingUpdates.classification} when 'CRITICAL' then 0 when 'SECURITY' then 1 else 2 end)`, asc(pendingUpdates.name), asc(pendingUpdates.arch))
      .offset(offset)
      .limit(limit),
    db.select({ n: sql<number>`count(*)::int` }).from(pendingUpdates).where(where),
  ]);
  return { rows, totalCount: total?.n ?? 0 };
}

export async function assessmentHistory(db: Db, machineId: string, offset: number, limit: number): Promise<{ rows: AssessmentRow[]; totalCount: number }> {
  const where = eq(assessments.machineId, machineId);
  const [rows, [total]] = await Promise.all([
    db.select().from(assessments).where(where).orderBy(desc(assessments.assessedAt)).offset(offset).limit(limit),
    db.select({ n: sql<number>`count(*)::int` }).from(assessments).where(where),
  ]);
  return { rows, totalCount: total?.n ?? 0 };
}

/**
 * Every update missing somewhere in the fleet, recomputed: reads every pending update of the latest
 * assessments of live machines (~50 per machine). The fleet view reads the maintained counts
 * instead (src/db/fleetCounts.ts); this is what they are checked and benchmarked against. Two statements, neither of which sorts the
 * fleet's pending updates (measured at 100k machines on a loaded machine: one grouped pass with
 * count(distinct machine) and distinct unions took 43 s, spilling its sort to disk):
 * - how many machines miss each update, grouped per machine first (its ~50 rows, through the
 *   primary key), so that a machine listing an update for two architectures counts once;
 * - the versions, advisories and CVEs, as distinct combinations in a hash aggregate (few per
 *   update). The lists travel as the arrays they are: an id may hold any character an agent sends
 *   (a space, a comma) or be empty, and the maintained counts keep it as sent.
 */
export async function missingUpdateGroups(db: Db): Promise<MissingUpdateGroup[]> {
  const [counts, details] = await Promise.all([
    db.execute<{ os_type: OsType; name: string; classification: string; machine_count: number; severity: string | null; reboot_suggested: boolean }>(sql`
      select m.os_type, u.name, u.classification::text as classification, count(*)::int as machine_count,
             min(u.severity)::text as severity, bool_or(u.reboot_suggested) as reboot_suggested
      from ${machines} m cross join lateral (
        select pu.name, pu.classification, min(pu.severity) as severity, bool_or(pu.reboot_suggested) as reboot_suggested
        from ${pendingUpdates} pu where pu.assessment_id = m.latest_assessment_id
        group by pu.name, pu.classification) u
      where m.removed_at is null
      group by m.os_type, u.name, u.classification`),
    db.execute<{ os_type: OsType; name: string; classification: string; available_version: string; advisory_ids: string[]; cve_ids: string[] }>(sql`
      select distinct m.os_type, pu.name, pu.classification::text as classification, pu.available_version, pu.advisory_ids, pu.cve_ids
      from ${pendingUpdates} pu join ${machines} m on pu.assessment_id = m.latest_assessment_id
      where m.removed_at is null`),
  ]);
  const key = (r: { os_type: string; name: string; classification: string }) => `${r.os_type}\u0000${r.classification}\u0000${r.name}`;
  const detailsOf = new Map<string, { versions: Set<string>; advisories: Set<string>; cves: Set<string> }>();
  for (const d of details) {
    let entry = detailsOf.get(key(d));
    if (!entry) detailsOf.set(key(d), (entry = { versions: new Set(), advisories: new Set(), cves: new Set() }));
    entry.versions.add(d.available_version);
    for (const id of d.advisory_ids) entry.advisories.add(id);
    for (const id of d.cve_ids) entry.cves.add(id);
  }
  return counts.map((c) => {
    const d = detailsOf.get(key(c));
    return {
      osType: c.os_type,
      name: c.name,
      classification: c.classification,
      machineCount: c.machine_count,
      severity: c.severity,
      availableVersions: [...(d?.versions ?? [])].sort(),
      advisoryIds: [...(d?.advisories ?? [])].sort(),
      cveIds: [...(d?.cves ?? [])].sort(),
      rebootSuggested: c.reboot_suggested,
    };
  });
}

/**
 * The live machines whose latest assessment lists this update, by name. How many there are comes
 * from the maintained counts (src/db/fleetCounts.ts), not from counting them over the fleet; that
 * count and the fleet's size choose the read (src/fleet/missingUpdates.ts, missingMachinesRead):
 * from the update's stored rows (an update few machines miss: the machines it names, not the
 * fleet) or by walking the machines in name order (an update many miss: a page's worth of them).
 */
export async function machinesMissing(
  db: Db,
  update: { name: string; classification: string },
  offset: number,
  limit: number,
  /** The read to take whatever the counts say (bench/fleetQueries.ts measures BY_NAME, the read before, against the chosen one). */
  forced?: MissingMachinesRead,
): Promise<{ rows: MachineRow[]; totalCount: number }> {
  const [total] = await db.execute<{ n: number; fleet: number }>(sql`
    select coalesce((select sum(machines) from missing_update_counts where name = ${update.name} and classification::text = ${update.classification}), 0)::int as n,
           (select greatest(reltuples, 0)::float8 from pg_class where oid = 'machines'::regclass) as fleet`);
  const missing = total?.n ?? 0;
  if (missing === 0) return { rows: [], totalCount: 0 };
  const isTheUpdate = sql`${pendingUpdates.name} = ${update.name} and ${pendingUpdates.classification}::text = ${update.classification}`;
  const lists = exists(
    db
      .select({ one: sql`1` })
      .from(pendingUpdates)
      .where(and(eq(pendingUpdates.assessmentId, machines.latestAssessmentId), isTheUpdate)),
  );
  let read = forced ?? missingMachinesRead(missing, Math.max(Number(total!.fleet), missing), offset + limit + 1);
  if (read === 'BY_UPDATE' && !forced) {
    // Every stored assessment's rows are in the index, not only the latest ones: within the budget, or walk by name.
    const [stored] = await db.execute<{ n: number }>(sql`select count(*)::int as n from (select 1 from ${pendingUpdates} where ${isTheUpdate} limit ${MISSING_MACHINES_ROWS_BUDGET + 1}) r`);
    if ((stored?.n ?? 0) > MISSING_MACHINES_ROWS_BUDGET) read = 'BY_NAME';
  }
  const named = read === 'BY_UPDATE' ? sql`${machines.id} = any(array(select ${pendingUpdates.machineId} from ${pendingUpdates} where ${isTheUpdate}))` : sql`true`;
  const rows = await db.select().from(machines).where(and(live, named, lists)).orderBy(asc(machines.name), asc(machines.id)).offset(offset).limit(limit);
  return { rows, totalCount: missing };
}

/** What the full recompute answers: the same figures the maintained summary holds (src/fleet/fleetSummary.ts). */
export type ComplianceSummaryRow = FleetSummary;

/** Pending updates of each classification on a machine, from its own counts (OTHER: what other_count holds beyond the Windows classes). */
const CLASS_COUNT: Readonly<Record<Classification, SQL>> = {
  CRITICAL: sql`${machines.criticalCount}`,
  SECURITY: sql`${machines.securityCount}`,
  OTHER: sql`(${machines.otherCount} - ${machines.updateRollupCount} - ${machines.featurePackCount} - ${machines.servicePackCount} - ${machines.definitionCount} - ${machines.toolsCount} - ${machines.updatesCount})`,
  UPDATE_ROLLUP: sql`${machines.updateRollupCount}`,
  FEATURE_PACK: sql`${machines.featurePackCount}`,
  SERVICE_PACK: sql`${machines.servicePackCount}`,
  DEFINITION: sql`${machines.definitionCount}`,
  TOOLS: sql`${machines.toolsCount}`,
  UPDATES: sql`${machines.updatesCount}`,
};
/** In the vocabulary's order, which is the summary's. */
export const CLASS_COUNTS: ReadonlyArray<readonly [Classification, SQL]> = CLASSIFICATIONS.map((c) => [c, CLASS_COUNT[c]]);

/**
 * The compliance summary recomputed at `now` (of the machines of one OS type, or carrying one tag): one pass over every live machine. The fleet view reads
 * the maintained summary instead (src/db/fleetSummary.ts); this is what it is checked and
 * benchmarked against.
 */
export async function complianceSummary(db: Db, now: Date, thresholds: FleetThresholds, of: { osType?: OsType; tag?: string; overdue?: boolean } = {}): Promise<ComplianceSummaryRow> {
  const compliance = complianceSql(now, thresholds);
  const readiness = readinessSql(now, thresholds);
  // One pass over machines: each (compliance, readiness) group with its classification sums, taken
  // from the counts each machine keeps of its latest assessment, not from every pending update.
  const groups = await db
    .select({
      compliance: sql<Compliance>`${compliance}`,
      readiness: sql<AgentReadiness>`${readiness}`,
      n: sql<number>`count(*)::int`,
      overdueMachines: sql<number>`(count(*) filter (where ${overdueSql(now)}))::int`,
      overdueUpdates: sql<number>`coalesce(sum(${overdueUpdatesSql(now)}), 0)::int`,
      ...(Object.fromEntries(
        CLASS_COUNTS.flatMap(([classification, column]) => [
          [`${classification}_updates`, sql<number>`coalesce(sum(${column}), 0)::int`],
          [`${classification}_machines`, sql<number>`(count(*) filter (where ${column} > 0))::int`],
        ]),
      ) as Record<string, SQL<number>>),
    })
    .from(machines)
    .where(and(live, of.osType ? eq(machines.osType, of.osType) : undefined, of.tag !== undefined ? sql`${machines.tags} @> array[${of.tag}]::text[]` : undefined, of.overdue === undefined ? undefined : of.overdue ? overdueSql(now) : sql`not ${overdueSql(now)}`))
    .groupBy(sql`1`, sql`2`);
  const byCompliance: Record<Compliance, number> = { COMPLIANT: 0, NON_COMPLIANT: 0, NOT_ASSESSED: 0 };
  const byReadiness: Record<AgentReadiness, number> = { READY: 0, DISCONNECTED: 0, NOT_CONFIGURED: 0 };
  let total = 0;
  for (const row of groups) {
    byCompliance[row.compliance] += row.n;
    byReadiness[row.readiness] += row.n;
    total += row.n;
  }
  const sum = (key: string) => groups.reduce((acc, row) => acc + ((row as Record<string, unknown>)[key] as number), 0);
  const pendingByClassification = CLASS_COUNTS.map(([classification]) => ({ classification, updateCount: sum(`${classification}_updates`), machineCount: sum(`${classification}_machines`) })).filter((c) => c.updateCount > 0);
  return {
    groups: groups.map((g) => ({ compliance: g.compliance, readiness: g.readiness, n: g.n })),
    byCompliance,
    byReadiness,
    pendingByClassification,
    total,
    overdueMachines: groups.reduce((acc, g) => acc + g.overdueMachines, 0),
    overdueUpdates: groups.reduce((acc, g) => acc + g.overdueUpdates, 0),
  };
}

export async function findAssessment(db: Db, id: string): Promise<AssessmentRow | undefined> {
  const [row] = await db.select().from(assessments).where(eq(assessments.id, id));
  return row;
}

/**
 * The machines a deployment reaches right now: live, under management, of its OS type, named
 * explicitly or matching its filter (every tag, and a part of the name).
 */
export async function resolveTargets(
  db: Db,
  target: { osType: OsType; machineIds: string[]; filter: { tags: string[]; nameContains: string | null } | null },
): Promise<MachineRow[]> {
  const chosen = targetConditions(target);
  if (chosen.length === 0) return [];
  return db
    .select()
    .from(machines)
    .where(and(live, eq(machines.managementEnabled, true), eq(machines.osType, target.osType), sql`(${sql.join(chosen, sql` or `)})`))
    .orderBy(asc(machines.name));
}

/**
 * One page of resolveTargets, in (name, id) order after `after`, read by key along the live
 * machines' name index: the targets a paged planning reads, one page per transaction. Machines
 * enrolled after `enrolledBy` (the run's start) are left out, so that the run's machines are the
 * targets as the run began, as when they were resolved at once.
 */
export async function targetsPage(
  db: Db,
  target: { osType: OsType; machineIds: string[]; filter: { tags: string[]; nameContains: string | null } | null },
  after: { name: string; id: string } | null,
  limit: number,
  enrolledBy: Date,
): Promise<MachineRow[]> {
  const chosen = targetConditions(target);
  if (chosen.length === 0) return [];
  return db
    .select()
    .from(machines)
    .where(
      and(
        live,
        eq(machines.managementEnabled, true),
        eq(machines.osType, target.osType),
        lte(machines.enrolledAt, enrolledBy),
        after ? sql`(${machines.name}, ${machines.id}) > (${after.name}, ${after.id}::uuid)` : undefined,
        sql`(${sql.join(chosen, sql` or `)})`,
      ),
    )
    .orderBy(asc(machines.name), asc(machines.id))
    .limit(limit);
}

function targetConditions(target: { machineIds: string[]; filter: { tags: string[]; nameContains: string | null } | null }): SQL[] {
  const chosen: SQL[] = [];
  if (target.machineIds.length > 0) chosen.push(sql`${machines.id} = any(${sql.param(target.machineIds)}::uuid[])`);
  if (target.filter) {
    const parts: SQL[] = [sql`${machines.tags} @> ${sql.param(target.filter.tags)}::text[]`];
    if (target.filter.nameContains) parts.push(nameContainsSql(target.filter.nameContains));
    chosen.push(and(...parts)!);
  }
  return chosen;
}
