import { and, asc, between, eq, isNull, sql, type AnyColumn, type SQL } from 'drizzle-orm';
import type { FleetThresholds } from '../fleet/compliance.js';
import { compliantShare, type HistoryQuery } from '../fleet/complianceHistory.js';
import type { Database } from './client.js';
import { complianceSql, readinessSql } from './fleetSql.js';
import { complianceHistory, complianceSnapshots, machineRuns, machines, pendingUpdates, updateResults } from './schema.js';

/*
 * The rows of each export, read through a server-side cursor a batch at a time: an export of
 * 100,000 machines holds one batch in memory, not the fleet. The query is built with drizzle (the
 * compliance and readiness rules are the fleet view's own SQL) and run by postgres.js, whose
 * cursors drizzle does not expose.
 */

/** Rows fetched per round trip: large enough to keep PostgreSQL busy, small enough to hold. */
export const EXPORT_BATCH_ROWS = 500;

export type ExportRow = Record<string, unknown>;

/** ISO 8601 UTC text of a timestamp, made by PostgreSQL (drizzle leaves postgres.js's date parsing off). */
const iso = (column: SQL | typeof machines.lastSeenAt) => sql<string | null>`to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

function cursorOf(database: Database, query: { toSQL(): { sql: string; params: unknown[] } }): AsyncIterable<ExportRow[]> {
  const { sql: text, params } = query.toSQL();
  return database.sql.unsafe(text, params as never[]).cursor(EXPORT_BATCH_ROWS) as unknown as AsyncIterable<ExportRow[]>;
}

const live = isNull(machines.removedAt);

/** Every field under its own name (drizzle writes plain columns unaliased, and the cursor's rows are keyed by SQL names). */
function aliased(fields: Record<string, SQL | AnyColumn>): Record<string, SQL.Aliased> {
  return Object.fromEntries(Object.entries(fields).map(([name, value]) => [name, sql`${value}`.as(name)]));
}

/** The computers view: every live machine by name, with compliance and readiness as of `now`. */
export function computerRows(database: Database, now: Date, thresholds: FleetThresholds): AsyncIterable<ExportRow[]> {
  return cursorOf(
    database,
    database.db
      .select(aliased({
        id: machines.id,
        name: machines.name,
        osType: machines.osType,
        osName: machines.osName,
        osVersion: machines.osVersion,
        environment: machines.environment,
        tags: machines.tags,
        compliance: complianceSql(now, thresholds),
        agentReadiness: readinessSql(now, thresholds),
        criticalCount: machines.criticalCount,
        securityCount: machines.securityCount,
        otherCount: machines.otherCount,
        rebootPending: machines.rebootPending,
        agentVersion: machines.agentVersion,
        lastSeenAt: iso(sql`${machines.lastSeenAt}`),
        lastAssessedAt: iso(sql`${machines.lastAssessedAt}`),
      }))
      .from(machines)
      .where(live)
      .orderBy(asc(machines.name), asc(machines.id)),
  );
}

/** Every update every live machine misses (its latest assessment), by machine name then update. */
export function missingUpdateRows(database: Database): AsyncIterable<ExportRow[]> {
  return cursorOf(
    database,
    database.db
      .select(aliased({
        machineId: machines.id,
        machineName: machines.name,
        osType: machines.osType,
        name: pendingUpdates.name,
        arch: pendingUpdates.arch,
        installedVersion: pendingUpdates.installedVersion,
        availableVersion: pendingUpdates.availableVersion,
        classification: pendingUpdates.classification,
        severity: pendingUpdates.severity,
        advisoryIds: pendingUpdates.advisoryIds,
        cveIds: pendingUpdates.cveIds,
        advisoryIssuedAt: iso(sql`${pendingUpdates.advisoryIssuedAt}`),
        rebootSuggested: pendingUpdates.rebootSuggested,
        repository: pendingUpdates.repository,
      }))
      .from(machines)
      .innerJoin(pendingUpdates, eq(pendingUpdates.assessmentId, machines.latestAssessmentId))
      .where(live)
      .orderBy(asc(machines.name), asc(machines.id), asc(pendingUpdates.name), asc(pendingUpdates.arch)),
  );
}

/** A run's result for every update on every machine, by machine name then install order. */
export function runResultRows(database: Database, runId: string): AsyncIterable<ExportRow[]> {
  return cursorOf(
    database,
    database.db
      .select(aliased({
        runId: machineRuns.runId,
        machineId: machineRuns.machineId,
        machineName: machineRuns.machineName,
        machineRunStatus: machineRuns.status,
        name: updateResults.name,
        arch: updateResults.arch,
        classification: updateResults.classification,
        severity: updateResults.severity,
        installedVersion: updateResults.installedVersion,
        targetVersion: updateResults.targetVersion,
        status: updateResults.status,
        reason: updateResults.reason,
        exitCode: updateResults.exitCode,
        errorText: updateResults.errorText,
        startedAt: iso(sql`${updateResults.startedAt}`),
        endedAt: iso(sql`${updateResults.endedAt}`),
      }))
      .from(machineRuns)
      .innerJoin(updateResults, eq(updateResults.machineRunId, machineRuns.id))
      .where(and(eq(machineRuns.runId, runId)))
      .orderBy(asc(machineRuns.machineName), asc(machineRuns.machineId), asc(updateResults.orderIndex), asc(updateResults.name)),
  );
}

/**
 * The compliance history of `query` (checked by historyQuery), one row per group and day: the rows
 * complianceHistory answers, its series flattened. A series' label is the group's label on the
 * latest day of the range it has a row (a renamed baseline shows its current name on every day), and
 * series come by label in code-point order (collation "C"), each oldest day first, as the query's.
 * The compliant share is the query's own rule, applied as the rows pass.
 */
export async function* complianceHistoryRows(database: Database, query: HistoryQuery): AsyncIterable<ExportRow[]> {
  const h = complianceHistory;
  const seriesLabel = sql`last_value(${h.label}) over (partition by ${h.key} order by ${h.day} rows between unbounded preceding and unbounded following)`;
  const rows = cursorOf(
    database,
    database.db
      .select(aliased({
        groupBy: h.groupBy,
        key: h.key,
        label: seriesLabel,
        day: sql`${h.day}::text`,
        takenAt: iso(sql`${complianceSnapshots.takenAt}`),
        machines: h.machines,
        compliant: h.compliant,
        nonCompliant: h.nonCompliant,
        notAssessed: h.notAssessed,
        overdueMachines: h.overdueMachines,
        overdueUpdates: h.overdueUpdates,
        pendingUpdates: h.pendingUpdates,
      }))
      .from(h)
      .innerJoin(complianceSnapshots, eq(complianceSnapshots.day, h.day))
      .where(and(eq(h.groupBy, query.groupBy), between(h.day, query.from, query.to)))
      .orderBy(sql`${seriesLabel} collate "C"`, sql`${h.key} collate "C"`, asc(h.day)),
  );
  for await (const batch of rows) yield batch.map((r) => ({ ...r, compliantShare: compliantShare(r as { compliant: number; nonCompliant: number }) }));
}
