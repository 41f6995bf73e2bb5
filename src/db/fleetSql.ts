import { sql, type SQL } from 'drizzle-orm';
import type { AgentReadiness, Compliance, FleetThresholds } from '../fleet/compliance.js';
import { machines } from './schema.js';

/*
 * The SQL twins of `compliance()`, `readiness()` and the overdue rules in src/fleet/compliance.ts,
 * over a row of `machines` (named so, not aliased), so that the fleet view can filter, sort, count
 * and correct its maintained counts in the database. Tests check that they agree with the
 * TypeScript rules and with the triggers' functions (migration 0027), which evaluate the stored
 * states.
 */

export function complianceSql(now: Date, thresholds: FleetThresholds): SQL<Compliance> {
  const linuxCutoff = new Date(now.getTime() - thresholds.assessmentMaxAgeMs.LINUX);
  const windowsCutoff = new Date(now.getTime() - thresholds.assessmentMaxAgeMs.WINDOWS);
  return sql<Compliance>`(case
    when ${machines.lastAssessedAt} is null
      or ${machines.lastAssessedAt} < (case ${machines.osType} when 'WINDOWS' then ${windowsCutoff.toISOString()}::timestamptz else ${linuxCutoff.toISOString()}::timestamptz end)
      then 'NOT_ASSESSED'
    when ${machines.baselineId} is null then (case when ${machines.criticalCount} + ${machines.securityCount} > 0 then 'NON_COMPLIANT' else 'COMPLIANT' end)
    when ${machines.nonCompliantFrom} <= ${now.toISOString()}::timestamptz then 'NON_COMPLIANT'
    else 'COMPLIANT' end)`;
}

export function readinessSql(now: Date, thresholds: FleetThresholds): SQL<AgentReadiness> {
  const cutoff = new Date(now.getTime() - thresholds.disconnectedAfterMs);
  return sql<AgentReadiness>`(case
    when not ${machines.managementEnabled} or ${machines.lastSeenAt} is null then 'NOT_CONFIGURED'
    when ${machines.lastSeenAt} < ${cutoff.toISOString()}::timestamptz then 'DISCONNECTED'
    else 'READY' end)`;
}

/** Whether a machine has an approved update past its SLA due date at `now` (its earliest due date has passed). */
export function overdueSql(now: Date): SQL<boolean> {
  return sql<boolean>`coalesce(${machines.slaDueDates}[1] <= ${now.toISOString()}::timestamptz, false)`;
}

/** How many of a machine's approved updates are past their SLA due date at `now`: only an overdue machine's array is opened, the others cost one comparison. */
export function overdueUpdatesSql(now: Date): SQL<number> {
  return sql<number>`(case when ${overdueSql(now)} then (select count(*) from unnest(${machines.slaDueDates}) d where d <= ${now.toISOString()}::timestamptz) else 0 end)::int`;
}
