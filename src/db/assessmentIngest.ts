import { finished } from 'node:stream/promises';
import type { ReservedSql, Sql } from 'postgres';
import type { AssessmentReport, PendingUpdate } from '../domain/types.js';
import { CLASSIFICATIONS_BY_OS, COMPLIANCE_CLASSIFICATIONS } from '../domain/vocabulary.js';
import { assessedAtOnServerClock, clockOffsetSeconds } from '../fleet/agentClock.js';
import type { OsType } from '../fleet/compliance.js';
import { BASELINE_LOCK, machineStateAfterIngest, recordFirstSeen } from './baselines.js';
import { FIX_LOCK, refreshMachinesFixExposures } from './cves.js';
import { applyMissingUpdateDelta, type CountedAssessment, type GivenCounts } from './fleetCounts.js';

/**
 * Storing assessment reports, several at once. The API groups the reports that arrive together
 * (src/api/agent/assessmentIngestQueue.ts) and stores each group in one transaction: one statement
 * for the assessments and the machines' latest assessment and counts (the reports travel as one
 * JSON document that PostgreSQL unpacks), then one COPY for all their pending updates. COPY writes
 * rows in batches, where an INSERT writes and logs them one by one: for a report of 50 updates
 * PostgreSQL spends about a third of the CPU (BENCHMARKS.md, "Ingest, third pass").
 */

/** A report made ready for storing: what its request handler can compute before the batch forms. */
export type PreparedReport = PreparedResult | PreparedError;

interface PreparedResult {
  kind: 'RESULT';
  id: string;
  machineId: string;
  /** The report without its updates, as the statement reads it: one element of the JSON array it unpacks. */
  json: string;
  /** Its pending updates as COPY text, a line each, already encoded: bytes outside the JavaScript heap while the report waits for its group. */
  rows: Buffer;
  /** The update kinds its rows show (name, version, classification, severity; updateKindKey), each once. */
  kinds: string[];
  /** The updates its rows hold (one per name and arch): what it adds to the missing-update counts once it is a machine's latest. */
  counted: PendingUpdate[];
  /** The versions (installed and available, as stored) of its rows with an installed version, on apt: what imported fixes are compared with (dpkg_version_keys). */
  versions: string[];
  /** About how many bytes it sends to PostgreSQL: bounds a group's size. */
  bytes: number;
}

interface PreparedError {
  kind: 'ERROR';
  machineId: string;
  json: string;
  bytes: number;
}

/** A report PostgreSQL cannot store as sent (a NUL character in a string). */
export class UnstorableReport extends Error {}

const NUL_REFUSED = 'Text fields must not contain the NUL character (\\u0000).';

/** CRITICAL and SECURITY, counted in their own columns on every OS. */
const LINUX_AND_SHARED = COMPLIANCE_CLASSIFICATIONS;
/**
 * The Windows classifications beyond those two, in the vocabulary's order (UPDATE_ROLLUP first):
 * the machine update below reads them by position, "windowsCounts"[1] to [6].
 */
const WINDOWS_CLASSES = CLASSIFICATIONS_BY_OS.WINDOWS.filter((c) => !COMPLIANCE_CLASSIFICATIONS.includes(c));

/**
 * A JSON string as PostgreSQL's jsonb accepts it. JSON.stringify writes a lone UTF-16 surrogate as a
 * `\udXXX` escape, which jsonb refuses; as a text parameter it used to be stored as U+FFFD (the
 * UTF-8 encoder's replacement), so it is replaced the same way here. A NUL (`\u0000`) cannot be
 * stored in PostgreSQL text at all. Only escapes preceded by an even number of backslashes are
 * escapes (`\\ud800` is a backslash and the letters "ud800").
 */
function storableJson(json: string): string {
  if (!json.includes('\\u')) return json;
  if (/(?<!\\)(?:\\\\)*\\u0000/.test(json)) throw new UnstorableReport(NUL_REFUSED);
  return json.replace(/(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/gi, '$1\\ufffd');
}

/** When the server received a report, and the agent's clock when it sent it (its Date header; null without one). */
export interface ReportArrival {
  receivedAtMs: number;
  agentSentAtMs: number | null;
}

/**
 * Everything about a report that needs no database: counts by classification, timestamps as the
 * JavaScript Date the previous code stored (millisecond precision), the report's place on the
 * server's clock (src/fleet/agentClock.ts) and the agent's clock offset it shows, the JSON the
 * statement reads. Throws UnstorableReport for a report PostgreSQL would refuse.
 */
export function prepareReport(machineId: string, report: AssessmentReport, arrival: ReportArrival = { receivedAtMs: Date.now(), agentSentAtMs: null }): PreparedReport {
  const finishedAtMs = Date.parse(report.finishedAt);
  const finishedAt = new Date(finishedAtMs).toISOString();
  const assessedAt = new Date(assessedAtOnServerClock({ finishedAtMs, ...arrival })).toISOString();
  if (!report.result) {
    const error = report.error ?? { code: 'UNKNOWN', message: 'The agent reported neither a result nor an error.' };
    const json = storableJson(JSON.stringify({ machineId, commandId: report.commandId, error: { code: error.code, message: error.message, at: assessedAt } }));
    return { kind: 'ERROR', machineId, json, bytes: json.length };
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
    assessedAt,
    clockOffsetSeconds: clockOffsetSeconds(arrival.agentSentAtMs, arrival.receivedAtMs, finishedAtMs),
    rebootPending,
    repositoryProblems,
    criticalCount: critical,
    securityCount: security,
    otherCount: updates.length - critical - security,
    // The Windows classifications beyond CRITICAL and SECURITY (part of otherCount), in WINDOWS_CLASSES' order.
    windowsCounts: WINDOWS_CLASSES.map((c) => counts[c] ?? 0),
  };
  const json = storableJson(JSON.stringify(record));
  const { rows, kinds, counted } = copyRows(report.id, machineId, updates);
  const versions = report.backend === 'apt' ? dpkgVersions(counted) : [];
  return { kind: 'RESULT', id: report.id, machineId, json, rows, kinds, counted, versions, bytes: json.length + rows.length };
}

/** One text field of COPY's text format: a backslash, tab, newline or carriage return escaped. */
function copyText(value: string): string {
  if (value.includes('\0')) throw new UnstorableReport(NUL_REFUSED);
  return /[\\\t\n\r]/.test(value) ? value.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : value;
}

const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** A text[] literal, every element quoted. */
function textArrayLiteral(values: readonly string[]): string {
  return values.length === 0 ? '{}' : `{${values.map((v) => `"${v.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;
}

/** A text[] in COPY's text format: its literal, escaped as a COPY field. */
function copyTextArray(values: readonly string[]): string {
  return values.length === 0 ? '{}' : copyText(textArrayLiteral(values));
}

/** A text as its UTF-8 encoding stores it: each lone UTF-16 surrogate becomes U+FFFD. */
const asEncoded = (text: string) => text.replace(/[\ud800-\udfff]/gu, '\ufffd');

/**
 * A report's pending updates as COPY text in UTF-8, in pending_updates' column order
 * (COPY_COLUMNS). An update listed twice (same name and arch) is stored once, the first time. A
 * lone UTF-16 surrogate becomes U+FFFD when the text is encoded, as it did in a parameter; so two
 * names that differ only there are the same name once stored, and count as listed twice (the
 * primary key would refuse the second).
 */
function copyRows(assessmentId: string, machineId: string, updates: readonly PendingUpdate[]): { rows: Buffer; kinds: string[]; counted: PendingUpdate[] } {
  const seen = new Set<string>();
  const kinds = new Set<string>();
  const counted: PendingUpdate[] = [];
  const rows: string[] = [];
  for (const u of updates) {
    const arch = u.arch ?? '';
    const key = `${asEncoded(u.name)}\0${asEncoded(arch)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    kinds.add(updateKindKey(u));
    counted.push(u);
    rows.push(
      `${assessmentId}\t${machineId}\t${copyText(u.name)}\t${copyText(arch)}\t${u.installedVersion === null ? '\\N' : copyText(u.installedVersion)}\t` +
      `${copyText(u.availableVersion)}\t${u.classification}\t${u.severity ?? '\\N'}\t${copyTextArray(u.advisoryIds)}\t${copyTextArray(u.cveIds)}\t` +
      `${u.rebootSuggested ? 't' : 'f'}\t${u.repository === null ? '\\N' : copyText(u.repository)}\t${u.note ? copyText(u.note) : '\\N'}\t${u.advisoryIssuedAt ? copyText(u.advisoryIssuedAt) : '\\N'}\t${u.sourcePackage ? copyText(u.sourcePackage) : '\\N'}\n`,
    );
  }
  return { rows: Buffer.from(rows.join('')), kinds: [...kinds], counted };
}

/** The distinct versions of the rows an imported fix may be compared with (those with an installed version), as stored. */
function dpkgVersions(counted: readonly PendingUpdate[]): string[] {
  const versions = new Set<string>();
  for (const u of counted) {
    if (u.installedVersion === null) continue;
    versions.add(asEncoded(u.installedVersion));
    versions.add(asEncoded(u.availableVersion));
  }
  return [...versions];
}

/**
 * What the reports that became live machines' latest assessments add to the missing-update counts
 * (src/db/fleetCounts.ts, GivenCounts), from their updates in hand instead of read back: a machine
 * counts once per name and classification (names compared as stored) and once per CVE, and each row
 * once towards its combination of details. Summed over the group first: a fleet's reports list much the same updates.
 */
function givenCounts(added: ReadonlyArray<{ osType: OsType; report: PreparedResult }>): GivenCounts {
  const counts = new Map<string, { osType: OsType; name: string; classification: string; sign: number }>();
  const details = new Map<string, { osType: OsType; name: string; u: PendingUpdate; sign: number }>();
  const cves = new Map<string, number>();
  for (const { osType, report } of added) {
    const names = new Set<string>();
    const reportCves = new Set<string>();
    for (const u of report.counted) {
      const name = asEncoded(u.name);
      const nameKey = `${osType}\0${name}\0${u.classification}`;
      if (!names.has(nameKey)) {
        names.add(nameKey);
        const count = counts.get(nameKey);
        if (count) count.sign++;
        else counts.set(nameKey, { osType, name, classification: u.classification, sign: 1 });
      }
      const detailKey = JSON.stringify([osType, name, u.classification, u.availableVersion, u.severity, u.rebootSuggested, u.advisoryIds, u.cveIds]);
      const detail = details.get(detailKey);
      if (detail) detail.sign++;
      else details.set(detailKey, { osType, name, u, sign: 1 });
      for (const id of u.cveIds) reportCves.add(asEncoded(id));
    }
    // A machine counts once per CVE, however many of its updates name it.
    for (const id of reportCves) cves.set(id, (cves.get(id) ?? 0) + 1);
  }
  const c = [...counts.values()];
  const d = [...details.values()];
  return {
    counts: { osTypes: c.map((x) => x.osType), names: c.map((x) => x.name), classifications: c.map((x) => x.classification), signs: c.map((x) => String(x.sign)) },
    cves: { cveIds: [...cves.keys()], signs: [...cves.values()].map(String) },
    details: {
      osTypes: d.map((x) => x.osType),
      names: d.map((x) => x.name),
      classifications: d.map((x) => x.u.classification),
      availableVersions: d.map((x) => x.u.availableVersion),
      severities: d.map((x) => x.u.severity),
      rebootSuggested: d.map((x) => String(x.u.rebootSuggested)),
      advisoryIds: d.map((x) => textArrayLiteral(x.u.advisoryIds)),
      cveIds: d.map((x) => textArrayLiteral(x.u.cveIds)),
      signs: d.map((x) => String(x.sign)),
    },
  };
}

/** An update kind as update_first_seen keys it (severity '' for none), as this process writes it. */
const updateKindKey = (u: PendingUpdate) => `${u.name}\0${u.availableVersion}\0${u.classification}\0${u.severity ?? ''}`;

/**
 * The update kinds this process has seen committed in update_first_seen, per database (per pool):
 * nothing deletes a kind, so a group whose kinds are all here has no first sighting to record, and
 * skips the statement that looks for them (it reads the group's rows back). Bounded: past
 * MAX_KNOWN_KINDS it starts again empty, and a group's kinds are then looked for once more.
 */
const knownKinds = new WeakMap<Sql, Set<string>>();
const MAX_KNOWN_KINDS = 100_000;

function knownKindsOf(sql: Sql): Set<string> {
  let kinds = knownKinds.get(sql);
  if (!kinds) knownKinds.set(sql, (kinds = new Set()));
  return kinds;
}

const COPY_COLUMNS = 'assessment_id, machine_id, name, arch, installed_version, available_version, classification, severity, advisory_ids, cve_ids, reboot_suggested, repository, note, advisory_issued_at, source_package';

/**
 * Stores a group of reports in one transaction and answers, in order, whether each was stored.
 * A report whose id is already stored is not stored again (`stored: false`); the caller passes each
 * report id once. Each machine's latest assessment becomes the newest report on the server's clock
 * (assessedAt: its arrival less its age by the agent's clock; the later one in the group on a tie)
 * unless a newer one is already there: a report from an agent's spool can be older than the
 * machine's state. The agent's own finishedAt never decides, so a wrong clock cannot freeze a
 * machine's state; the offset the report shows is kept on the machine. A failed assessment (an error report) keeps the last good one and
 * records the error; error reports are applied after the group's results, as if they had arrived
 * after them. Throws when the group cannot be stored; nothing of it is then stored.
 */
export async function storeAssessmentReports(sql: Sql, reports: readonly PreparedReport[]): Promise<Array<{ stored: boolean }>> {
  const results = reports.filter((r): r is PreparedResult => r.kind === 'RESULT');
  const errors = reports.filter((r): r is PreparedError => r.kind === 'ERROR');
  const stored = new Set<string>();
  if (results.length === 0) await storeErrors(sql, errors);
  else {
    // A transaction by hand rather than sql.begin: BEGIN goes out with the first statement instead
    // of a round trip before it (each one waits on a busy API's event loop).
    const tx = await sql.reserve();
    try {
      const [, , rows] = await Promise.all([tx`begin`, tx`select pg_advisory_xact_lock_shared(${BASELINE_LOCK}), pg_advisory_xact_lock_shared(${FIX_LOCK})`, storeResults(tx, results)]);
      const minus: CountedAssessment[] = [];
      const byId = new Map(results.map((r) => [r.id.toLowerCase(), r]));
      const added: Array<{ osType: OsType; report: PreparedResult }> = [];
      for (const row of rows) {
        if (row.os_type === null) stored.add(row.id);
        else {
          added.push({ osType: row.os_type, report: byId.get(row.id)! });
          if (row.old_id) minus.push({ osType: row.os_type, assessmentId: row.old_id });
        }
      }
      const fresh = results.filter((r) => stored.has(r.id));
      // The rest in one round trip: PostgreSQL runs them in order, and a COMMIT after a statement
      // that failed rolls back (the first failure rejects the Promise.all). The counts last, so that
      // their rows (which every group of a fleet touching one update shares) stay locked only until the commit.
      const rest = () =>
        Promise.all([
          fresh.length > 0 ? machineStateAfterIngest(tx, [...new Set(fresh.map((r) => r.machineId))]) : undefined,
          applyMissingUpdateDelta(tx, minus, [], givenCounts(added)),
          // The imported fixes' exposures of the machines whose latest assessment changed, after the other counts (every writer takes the count tables in one order).
          refreshMachinesFixExposures(tx, [...new Set(added.map((a) => a.report.machineId))], [...new Set(added.flatMap((a) => a.report.versions))]),
          errors.length > 0 ? storeErrors(tx, errors) : undefined,
          tx`commit`,
        ]);
      const known = knownKindsOf(sql);
      if (fresh.every((r) => r.kinds.every((k) => known.has(k)))) await copyPendingUpdates(tx, fresh, rest);
      else {
        // First sightings (and their verdicts) before the machines' state, which counts from the verdicts.
        await copyPendingUpdates(tx, fresh, () => recordFirstSeen(tx, fresh.map((r) => r.id)));
        await rest();
      }
      if (known.size > MAX_KNOWN_KINDS) known.clear();
      for (const r of fresh) for (const k of r.kinds) known.add(k);
    } catch (error) {
      await tx`rollback`.catch(() => undefined);
      throw error;
    } finally {
      tx.release();
    }
  }
  return reports.map((r) => ({ stored: r.kind === 'ERROR' || stored.has(r.id) }));
}

/** One report alone: the same statement with a group of one. */
export async function storeAssessmentReport(sql: Sql, machineId: string, report: AssessmentReport, arrival?: ReportArrival): Promise<{ stored: boolean }> {
  const [outcome] = await storeAssessmentReports(sql, [prepareReport(machineId, report, arrival)]);
  return outcome!;
}

function jsonArray(reports: ReadonlyArray<{ json: string }>): string {
  return `[${reports.map((r) => r.json).join(',')}]`;
}

/** A stored assessment (os_type null), or one that became a live machine's latest (os_type set; old_id: the latest it replaced). */
interface StoredRow {
  id: string;
  os_type: OsType | null;
  old_id: string | null;
}

/**
 * The data-modifying CTEs all run in one statement: the new assessments (a resent id inserts
 * nothing and is left out of what follows), each machine's newest new assessment, and the
 * commands the reports answer. Assessments are inserted in id order, so two groups that share
 * report ids (an agent resending while its first attempt is still queued) wait for each other in
 * one order. The machines' rows are locked in id order before they are changed, and the latest
 * assessment each had is read under that lock (what the maintained counts subtract: a concurrent
 * group for the same machine commits first or waits). Answers the ids of the assessments it stored,
 * and for each live machine whose latest assessment it replaced, the old and the new one.
 */
function storeResults(sql: ReservedSql, reports: readonly PreparedResult[]): Promise<StoredRow[]> {
  return sql<StoredRow[]>`
    with input as (
      select r.*, e.ord
      from jsonb_array_elements(${jsonArray(reports)}::jsonb) with ordinality as e(doc, ord),
        jsonb_to_record(e.doc) as r(
          id uuid, "machineId" uuid, "commandId" uuid, trigger text, backend text,
          "startedAt" timestamptz, "finishedAt" timestamptz, "assessedAt" timestamptz, "clockOffsetSeconds" float8,
          "rebootPending" boolean, "repositoryProblems" jsonb,
          "criticalCount" int, "securityCount" int, "otherCount" int, "windowsCounts" int[])
    ),
    stored as (
      insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, repository_problems, critical_count, security_count, other_count)
      select id, "machineId", trigger, backend, "startedAt", "finishedAt", "assessedAt", "rebootPending", "repositoryProblems", "criticalCount", "securityCount", "otherCount"
      from input order by id
      on conflict (id) do nothing
      returning id
    ),
    fresh as (
      select input.* from input join stored using (id)
    ),
    newest as (
      select distinct on ("machineId") * from fresh order by "machineId", "assessedAt" desc, ord desc
    ),
    prev as (
      select m.id, m.latest_assessment_id from machines m join newest n on m.id = n."machineId" order by m.id for update of m
    ),
    machine_counts as (
      update machines m set
        latest_assessment_id = n.id, last_assessed_at = n."assessedAt", reboot_pending = n."rebootPending", last_assessment_error = null,
        clock_offset_seconds = coalesce(n."clockOffsetSeconds", m.clock_offset_seconds),
        critical_count = n."criticalCount", security_count = n."securityCount", other_count = n."otherCount",
        update_rollup_count = n."windowsCounts"[1], feature_pack_count = n."windowsCounts"[2], service_pack_count = n."windowsCounts"[3],
        definition_count = n."windowsCounts"[4], tools_count = n."windowsCounts"[5], updates_count = n."windowsCounts"[6]
      from newest n join prev p on p.id = n."machineId"
      where m.id = n."machineId" and (m.last_assessed_at is null or m.last_assessed_at <= n."assessedAt")
      returning m.os_type::text as os_type, p.latest_assessment_id::text as old_id, n.id::text as new_id, m.removed_at is null as live
    ),
    answered as (
      update agent_commands c set completed_at = coalesce(c.completed_at, now())
      from input i
      where c.id = i."commandId" and c.machine_id = i."machineId"
    )
    select id::text as id, null as os_type, null as old_id from stored
    union all
    select new_id, os_type, old_id from machine_counts where live`;
}

/**
 * The pending updates of the stored reports, by COPY, and then `next`: the statement that follows
 * it, sent at once behind it. postgres.js (3.4.9) never settles the COPY's stream when PostgreSQL
 * refuses the rows (porsager/postgres#1173): awaited alone, it would hold the group's connection
 * and its agents forever. The statement behind it fails instead (the transaction is aborted), and
 * the rollback then settles the stream. Ending the stream sends CopyDone at once, the rows being
 * written, so `next` reaches PostgreSQL after the COPY.
 */
async function copyPendingUpdates<T>(sql: ReservedSql, reports: readonly PreparedResult[], next: () => Promise<T>): Promise<T> {
  const rows = Buffer.concat(reports.map((r) => r.rows));
  if (rows.length === 0) return next();
  const copy = await sql.unsafe(`copy pending_updates (${COPY_COLUMNS}) from stdin`).writable();
  await new Promise<void>((resolve, reject) => copy.write(rows, (error) => (error ? reject(error) : resolve())));
  copy.end();
  const [, answer] = await Promise.all([
    finished(copy),
    next().catch((error: unknown) => {
      if ((error as { code?: string }).code !== IN_FAILED_TRANSACTION) throw error;
      throw new Error('PostgreSQL refused the pending updates of the group (their COPY failed; postgres.js does not say why).', { cause: error });
    }),
  ]);
  return answer;
}

/** SQLSTATE 25P02: a statement sent after one that failed in the same transaction. */
const IN_FAILED_TRANSACTION = '25P02';

/** The last error of each machine in the group, and the commands the error reports answer. */
async function storeErrors(sql: Sql | ReservedSql, reports: readonly PreparedError[]): Promise<void> {
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
