import type { Sql } from 'postgres';
import type { AssessmentReport } from '../agent/protocol.js';

/**
 * Storing assessment reports, several at once. The API groups the reports that arrive together
 * (src/api/agent/assessmentIngestQueue.ts) and stores each group with one statement: its
 * assessments, all their pending updates and the machines' latest assessment and counts. The rows
 * travel as one JSON document that PostgreSQL unpacks (jsonb_to_recordset): building a multi-row
 * INSERT of 50 rows × 12 parameters through the query builder cost about 10 ms of the API's CPU
 * per report (BENCHMARKS.md, "Ingest"), serializing the same rows as JSON a few hundredths of that.
 */

/** A report made ready for storing: what its request handler can compute before the batch forms. */
export type PreparedReport = PreparedResult | PreparedError;

interface PreparedResult {
  kind: 'RESULT';
  id: string;
  machineId: string;
  /** The report as the statement reads it: one element of the JSON array it unpacks. */
  json: string;
}

interface PreparedError {
  kind: 'ERROR';
  machineId: string;
  json: string;
}

/** A report PostgreSQL cannot store as sent (a NUL character in a string). */
export class UnstorableReport extends Error {}

const LINUX_AND_SHARED = ['CRITICAL', 'SECURITY'] as const;
const WINDOWS_CLASSES = ['UPDATE_ROLLUP', 'FEATURE_PACK', 'SERVICE_PACK', 'DEFINITION', 'TOOLS', 'UPDATES'] as const;

/**
 * A JSON string as PostgreSQL's jsonb accepts it. JSON.stringify writes a lone UTF-16 surrogate as a
 * `\udXXX` escape, which jsonb refuses; as a text parameter it used to be stored as U+FFFD (the
 * UTF-8 encoder's replacement), so it is replaced the same way here. A NUL (`\u0000`) cannot be
 * stored in PostgreSQL text at all. Only escapes preceded by an even number of backslashes are
 * escapes (`\\ud800` is a backslash and the letters "ud800").
 */
function storableJson(json: string): string {
  if (!json.includes('\\u')) return json;
  if (/(?<!\\)(?:\\\\)*\\u0000/.test(json)) throw new UnstorableReport('Text fields must not contain the NUL character (\\u0000).');
  return json.replace(/(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/gi, '$1\\ufffd');
}

/**
 * Everything about a report that needs no database: counts by classification, timestamps as the
 * JavaScript Date the previous code stored (millisecond precision), the JSON the statement reads.
 * Throws UnstorableReport for a report PostgreSQL would refuse.
 */
export function prepareReport(machineId: string, report: AssessmentReport): PreparedReport {
  const finishedAt = new Date(report.finishedAt).toISOString();
  if (!report.result) {
    const error = report.error ?? { code: 'UNKNOWN', message: 'The agent reported neither a result nor an error.' };
    return {
      kind: 'ERROR',
      machineId,
      json: storableJson(JSON.stringify({ machineId, commandId: report.commandId, error: { code: error.code, message: error.message, at: finishedAt } })),
    };
  }
  const { updates, rebootPending, repositoryProblems } = report.result;
  const counts: Record<string, number> = {};
  for (const update of updates) counts[update.classification] = (counts[update.classification] ?? 0) + 1;
  const [critical, security] = LINUX_AND_SHARED.map((c) => counts[c] ?? 0) as [number, number];
  const record = {
    id: report.id,
    machineId,
    commandId: report.commandId,
    trigger: report.trigger,
    backend: report.backend,
    startedAt: new Date(report.startedAt).toISOString(),
    finishedAt,
    rebootPending,
    repositoryProblems,
    criticalCount: critical,
    securityCount: security,
    otherCount: updates.length - critical - security,
    // The Windows classifications beyond CRITICAL and SECURITY (part of otherCount), in WINDOWS_CLASSES' order.
    windowsCounts: WINDOWS_CLASSES.map((c) => counts[c] ?? 0),
    updates,
  };
  return { kind: 'RESULT', id: report.id, machineId, json: storableJson(JSON.stringify(record)) };
}

/**
 * Stores a group of reports in one transaction and answers, in order, whether each was stored.
 * A report whose id is already stored is not stored again (`stored: false`); the caller passes each
 * report id once. Each machine's latest assessment becomes the newest report (by finishedAt; the
 * later one in the group on a tie) unless a newer one is already there: reports can arrive out of
 * order from an agent's spool. A failed assessment (an error report) keeps the last good one and
 * records the error; error reports are applied after the group's results, as if they had arrived
 * after them. Throws when the group cannot be stored; nothing of it is then stored.
 */
export async function storeAssessmentReports(sql: Sql, reports: readonly PreparedReport[]): Promise<Array<{ stored: boolean }>> {
  const results = reports.filter((r): r is PreparedResult => r.kind === 'RESULT');
  const errors = reports.filter((r): r is PreparedError => r.kind === 'ERROR');
  const stored = new Set<string>();
  const store = async (tx: Sql) => {
    if (results.length > 0) {
      for (const row of await storeResults(tx, results)) stored.add(row.id);
    }
    if (errors.length > 0) await storeErrors(tx, errors);
  };
  // One statement is its own transaction; two need one around them.
  if (results.length > 0 && errors.length > 0) await sql.begin((tx) => store(tx as unknown as Sql));
  else await store(sql);
  return reports.map((r) => ({ stored: r.kind === 'ERROR' || stored.has(r.id) }));
}

/** One report alone: the same statement with a group of one. */
export async function storeAssessmentReport(sql: Sql, machineId: string, report: AssessmentReport): Promise<{ stored: boolean }> {
  const [outcome] = await storeAssessmentReports(sql, [prepareReport(machineId, report)]);
  return outcome!;
}

function jsonArray(reports: ReadonlyArray<{ json: string }>): string {
  return `[${reports.map((r) => r.json).join(',')}]`;
}

/**
 * The data-modifying CTEs all run in one statement: the new assessments (a resent id inserts
 * nothing and is left out of what follows), their pending updates (a name and arch listed twice
 * in a report is stored once, as before), each machine's newest new assessment, and the commands
 * the reports answer. Assessments are inserted in id order, so two groups that share report ids
 * (an agent resending while its first attempt is still queued) wait for each other in one order.
 */
function storeResults(sql: Sql, reports: readonly PreparedResult[]): Promise<Array<{ id: string }>> {
  return sql<Array<{ id: string }>>`
    with input as (
      select r.*, e.ord
      from jsonb_array_elements(${jsonArray(reports)}::jsonb) with ordinality as e(doc, ord),
        jsonb_to_record(e.doc) as r(
          id uuid, "machineId" uuid, "commandId" uuid, trigger text, backend text,
          "startedAt" timestamptz, "finishedAt" timestamptz, "rebootPending" boolean, "repositoryProblems" jsonb,
          "criticalCount" int, "securityCount" int, "otherCount" int, "windowsCounts" int[], updates jsonb)
    ),
    stored as (
      insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, reboot_pending, repository_problems, critical_count, security_count, other_count)
      select id, "machineId", trigger, backend, "startedAt", "finishedAt", "rebootPending", "repositoryProblems", "criticalCount", "securityCount", "otherCount"
      from input order by id
      on conflict (id) do nothing
      returning id
    ),
    fresh as (
      select input.* from input join stored using (id)
    ),
    updates as (
      insert into pending_updates (assessment_id, machine_id, name, arch, installed_version, available_version, classification, severity, advisory_ids, cve_ids, reboot_suggested, repository)
      select f.id, f."machineId", u.name, coalesce(u.arch, ''), u."installedVersion", u."availableVersion", u.classification, u.severity,
        u."advisoryIds", u."cveIds", u."rebootSuggested", u.repository
      from fresh f,
        jsonb_to_recordset(f.updates) as u(
          name text, arch text, "installedVersion" text, "availableVersion" text, classification classification, severity severity,
          "advisoryIds" text[], "cveIds" text[], "rebootSuggested" boolean, repository text)
      on conflict do nothing
    ),
    newest as (
      select distinct on ("machineId") * from fresh order by "machineId", "finishedAt" desc, ord desc
    ),
    machine_counts as (
      update machines m set
        latest_assessment_id = n.id, last_assessed_at = n."finishedAt", reboot_pending = n."rebootPending", last_assessment_error = null,
        critical_count = n."criticalCount", security_count = n."securityCount", other_count = n."otherCount",
        update_rollup_count = n."windowsCounts"[1], feature_pack_count = n."windowsCounts"[2], service_pack_count = n."windowsCounts"[3],
        definition_count = n."windowsCounts"[4], tools_count = n."windowsCounts"[5], updates_count = n."windowsCounts"[6]
      from newest n
      where m.id = n."machineId" and (m.last_assessed_at is null or m.last_assessed_at <= n."finishedAt")
    ),
    answered as (
      update agent_commands c set completed_at = coalesce(c.completed_at, now())
      from input i
      where c.id = i."commandId" and c.machine_id = i."machineId"
    )
    select id::text as id from stored`;
}

/** The last error of each machine in the group, and the commands the error reports answer. */
async function storeErrors(sql: Sql, reports: readonly PreparedError[]): Promise<void> {
  await sql`
    with input as (
      select r.*, e.ord
      from jsonb_array_elements(${jsonArray(reports)}::jsonb) with ordinality as e(doc, ord),
        jsonb_to_record(e.doc) as r("machineId" uuid, "commandId" uuid, error jsonb)
    ),
    last_error as (
      update machines m set last_assessment_error = l.error
      from (select distinct on ("machineId") * from input order by "machineId", ord desc) l
      where m.id = l."machineId"
    )
    update agent_commands c set completed_at = coalesce(c.completed_at, now())
    from input i
    where c.id = i."commandId" and c.machine_id = i."machineId"`;
}
