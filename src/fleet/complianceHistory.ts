/**
 * Compliance history: one snapshot of the fleet's compliance per day, per baseline, per
 * classification and per tag, kept so that charts can show the trend. The database aggregates the
 * machines into cells (src/db/complianceHistory.ts: one pass over machines, nothing per machine
 * leaves PostgreSQL); these functions decide what a snapshot's rows are, which day a snapshot
 * belongs to, and what a history query may ask.
 */
import { CLASSIFICATIONS } from '../domain/vocabulary.js';
import type { Compliance } from './compliance.js';

export const HISTORY_GROUP_BYS = ['FLEET', 'BASELINE', 'CLASSIFICATION', 'TAG'] as const;
export type HistoryGroupBy = (typeof HISTORY_GROUP_BYS)[number];

/** The classifications a snapshot keeps a row for (each one, whether or not something is pending). */
export const HISTORY_CLASSIFICATIONS = CLASSIFICATIONS;

/**
 * Tags kept per snapshot: the ones most machines carry. A fleet that tags each machine with its own
 * host name would otherwise add a row per machine per day; a chart of thousands of lines is no chart.
 */
export const MAX_TAG_GROUPS = 100;

/** The longest history one query returns (a year and a day: a leap year's 366 days plus today). */
export const MAX_HISTORY_DAYS = 367;

/** The key of the built-in baseline's group (machines no baseline reaches). */
export const BUILT_IN_KEY = '';

/**
 * Machines of one group in one compliance state, as the database counted them: how many, how many
 * are overdue and their overdue updates, and per classification the pending updates and the
 * machines with at least one.
 */
export interface ComplianceCell {
  kind: 'FLEET' | 'BASELINE' | 'TAG';
  /** FLEET: ''; BASELINE: the baseline's id, or BUILT_IN_KEY; TAG: the tag. */
  key: string;
  compliance: Compliance;
  machines: number;
  overdueMachines: number;
  overdueUpdates: number;
  classes: Partial<Record<string, { updates: number; machines: number }>>;
}

/** Overdue updates of one classification, over the fleet's overdue machines. */
export interface ClassificationOverdue {
  classification: string;
  machines: number;
  updates: number;
}

/**
 * One group's line on one day. For a classification, "non-compliant" means assessed machines
 * missing at least one update of it, "compliant" assessed machines missing none (the classification
 * alone is not what decides compliance with a baseline: it is exposure to that kind of update).
 */
export interface HistoryRow {
  groupBy: HistoryGroupBy;
  key: string;
  label: string;
  machines: number;
  compliant: number;
  nonCompliant: number;
  notAssessed: number;
  overdueMachines: number;
  overdueUpdates: number;
  pendingUpdates: number;
}

const emptyRow = (groupBy: HistoryGroupBy, key: string, label: string): HistoryRow => ({
  groupBy,
  key,
  label,
  machines: 0,
  compliant: 0,
  nonCompliant: 0,
  notAssessed: 0,
  overdueMachines: 0,
  overdueUpdates: 0,
  pendingUpdates: 0,
});

const COUNT_OF: Record<Compliance, 'compliant' | 'nonCompliant' | 'notAssessed'> = { COMPLIANT: 'compliant', NON_COMPLIANT: 'nonCompliant', NOT_ASSESSED: 'notAssessed' };

/**
 * The rows of one snapshot from the database's cells: the fleet, each baseline (every baseline that
 * exists gets a row, with no machine too, so that a chart shows it at zero rather than a gap; the
 * built-in one only when machines have it), each classification, and each tag. `baselines` names
 * the baselines at the time of the snapshot: a row keeps its label after the baseline is renamed
 * or deleted. Rows come in a stable order: kind, then label.
 */
export function complianceSnapshotRows(cells: readonly ComplianceCell[], overdueByClass: readonly ClassificationOverdue[], baselines: ReadonlyMap<string, string>): HistoryRow[] {
  const fleet = emptyRow('FLEET', '', 'Fleet');
  const byBaseline = new Map<string, HistoryRow>([...baselines].map(([id, name]) => [id, emptyRow('BASELINE', id, name)]));
  const byTag = new Map<string, HistoryRow>();
  const byClass = new Map<string, HistoryRow>(HISTORY_CLASSIFICATIONS.map((c) => [c, emptyRow('CLASSIFICATION', c, c)]));
  for (const cell of cells) {
    let row: HistoryRow;
    if (cell.kind === 'FLEET') row = fleet;
    else if (cell.kind === 'BASELINE') {
      let found = byBaseline.get(cell.key);
      if (!found) byBaseline.set(cell.key, (found = emptyRow('BASELINE', cell.key, cell.key === BUILT_IN_KEY ? 'Built-in' : 'Deleted baseline')));
      row = found;
    } else {
      let found = byTag.get(cell.key);
      if (!found) byTag.set(cell.key, (found = emptyRow('TAG', cell.key, cell.key)));
      row = found;
    }
    row.machines += cell.machines;
    row[COUNT_OF[cell.compliance]] += cell.machines;
    row.overdueMachines += cell.overdueMachines;
    row.overdueUpdates += cell.overdueUpdates;
    for (const c of Object.values(cell.classes)) row.pendingUpdates += c?.updates ?? 0;
    if (cell.kind !== 'FLEET') continue;
    // A classification's lines come from the fleet's cells: every live machine is in one of them.
    for (const [classification, counts] of Object.entries(cell.classes)) {
      let line = byClass.get(classification);
      if (!line) byClass.set(classification, (line = emptyRow('CLASSIFICATION', classification, classification)));
      line.pendingUpdates += counts?.updates ?? 0;
      if (cell.compliance !== 'NOT_ASSESSED') line.nonCompliant += counts?.machines ?? 0;
    }
  }
  for (const line of byClass.values()) {
    line.machines = fleet.machines;
    line.notAssessed = fleet.notAssessed;
    line.compliant = fleet.machines - fleet.notAssessed - line.nonCompliant;
  }
  for (const o of overdueByClass) {
    const line = byClass.get(o.classification);
    if (!line) continue;
    line.overdueMachines += o.machines;
    line.overdueUpdates += o.updates;
  }
  const byLabel = (a: HistoryRow, b: HistoryRow) => (a.label < b.label ? -1 : a.label > b.label ? 1 : a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
  const baselineRows = [...byBaseline.values()].filter((r) => r.key !== BUILT_IN_KEY || r.machines > 0).sort(byLabel);
  const tagRows = [...byTag.values()].sort((a, b) => b.machines - a.machines || byLabel(a, b)).slice(0, MAX_TAG_GROUPS).sort(byLabel);
  return [fleet, ...baselineRows, ...HISTORY_CLASSIFICATIONS.map((c) => byClass.get(c)!), ...[...byClass.values()].filter((r) => !(HISTORY_CLASSIFICATIONS as readonly string[]).includes(r.key)), ...tagRows];
}

/** The day a snapshot taken at `at` belongs to: its UTC date (YYYY-MM-DD). */
export function snapshotDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

/** What a scheduled snapshot does when `existing` (a snapshot of its day) is there: one per day, the first one kept. */
export type SnapshotTrigger = 'SCHEDULE' | 'ON_DEMAND';
export function snapshotAction(trigger: SnapshotTrigger, dayAlreadyTaken: boolean): 'TAKE' | 'REPLACE' | 'SKIP' {
  if (!dayAlreadyTaken) return 'TAKE';
  // An operator asking for one wants today's figures now; a second scheduled run (two workers, a retry) changes nothing.
  return trigger === 'ON_DEMAND' ? 'REPLACE' : 'SKIP';
}

// ---- The history query ------------------------------------------------------------------------

export interface HistoryQueryInput {
  from?: string | null;
  to?: string | null;
  groupBy?: string | null;
}

export interface HistoryQuery {
  from: string;
  to: string;
  groupBy: HistoryGroupBy;
}

export type HistoryQueryProblemReason = 'BAD_DATE' | 'FROM_AFTER_TO' | 'RANGE_TOO_LONG' | 'UNKNOWN_GROUP_BY';

export interface HistoryQueryProblem {
  field: 'from' | 'to' | 'groupBy';
  reason: HistoryQueryProblemReason;
  message: string;
}

/** Days shown when a query names none: the last 30, today included. */
export const DEFAULT_HISTORY_DAYS = 30;

const DAY_MS = 86_400_000;
const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** A calendar date YYYY-MM-DD as UTC midnight, or null when it is not one (2026-02-30 is not). */
export function parseDay(text: string): Date | null {
  const m = DAY.exec(text);
  if (!m) return null;
  const date = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return snapshotDay(date) === text ? date : null;
}

export const addDays = (day: string, days: number): string => snapshotDay(new Date(parseDay(day)!.getTime() + days * DAY_MS));

/** The days from `from` to `to`, both included. */
export function daysBetween(from: string, to: string): string[] {
  const days: string[] = [];
  for (let t = parseDay(from)!.getTime(), end = parseDay(to)!.getTime(); t <= end; t += DAY_MS) days.push(snapshotDay(new Date(t)));
  return days;
}

/**
 * The history query a request means, or why it cannot be answered. Missing dates: `to` today (UTC),
 * `from` DEFAULT_HISTORY_DAYS days before `to` (today included); missing groupBy: the whole fleet.
 */
export function historyQuery(input: HistoryQueryInput, now: Date): { query: HistoryQuery } | { problem: HistoryQueryProblem } {
  const groupBy = input.groupBy ?? 'FLEET';
  if (!(HISTORY_GROUP_BYS as readonly string[]).includes(groupBy)) {
    return { problem: { field: 'groupBy', reason: 'UNKNOWN_GROUP_BY', message: `groupBy must be one of ${HISTORY_GROUP_BYS.join(', ')}; got "${groupBy.slice(0, 40)}".` } };
  }
  for (const field of ['from', 'to'] as const) {
    const value = input[field];
    if (value != null && !parseDay(value)) return { problem: { field, reason: 'BAD_DATE', message: `${field} must be a date as YYYY-MM-DD; got "${value.slice(0, 40)}".` } };
  }
  const to = input.to ?? snapshotDay(now);
  const from = input.from ?? addDays(to, -(DEFAULT_HISTORY_DAYS - 1));
  if (from > to) return { problem: { field: 'from', reason: 'FROM_AFTER_TO', message: `from (${from}) is after to (${to}).` } };
  const days = Math.round((parseDay(to)!.getTime() - parseDay(from)!.getTime()) / DAY_MS) + 1;
  if (days > MAX_HISTORY_DAYS) {
    return { problem: { field: 'to', reason: 'RANGE_TOO_LONG', message: `from ${from} to ${to} is ${days} days; at most ${MAX_HISTORY_DAYS} days per query: ask in parts.` } };
  }
  return { query: { from, to, groupBy: groupBy as HistoryGroupBy } };
}

export interface HistoryPoint extends Omit<HistoryRow, 'groupBy' | 'key' | 'label'> {
  day: string;
}

export interface HistorySeries {
  key: string;
  /** The group's name on the latest day it has a row (a renamed baseline shows its current name). */
  label: string;
  /** One point per day that has a snapshot, oldest first. */
  points: HistoryPoint[];
}

/**
 * The stored rows of a range (any order) as one series per group, points oldest first; a day with
 * no snapshot has no point (a chart shows a gap, not a zero). Series come by label.
 */
export function historySeries(rows: ReadonlyArray<HistoryRow & { day: string }>): HistorySeries[] {
  const byKey = new Map<string, { label: string; labelDay: string; points: HistoryPoint[] }>();
  for (const { groupBy: _groupBy, key, label, day, ...counts } of rows) {
    let series = byKey.get(key);
    if (!series) byKey.set(key, (series = { label, labelDay: day, points: [] }));
    if (day >= series.labelDay) {
      series.label = label;
      series.labelDay = day;
    }
    series.points.push({ day, ...counts });
  }
  return [...byKey]
    .map(([key, s]) => ({ key, label: s.label, points: s.points.sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0)) }))
    .sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : a.key < b.key ? -1 : 1));
}

/** A point's compliant share of its assessed machines, 0 to 1; null when none was assessed. */
export function compliantShare(point: Pick<HistoryPoint, 'compliant' | 'nonCompliant'>): number | null {
  const assessed = point.compliant + point.nonCompliant;
  return assessed === 0 ? null : point.compliant / assessed;
}

// ---- Retention ----------------------------------------------------------------------------------

/**
 * Days of snapshots kept unless configured (FLEETPATCH_HISTORY_RETENTION_DAYS): more than the
 * longest range one query reads (MAX_HISTORY_DAYS), so that a year's chart is always whole.
 */
export const DEFAULT_HISTORY_RETENTION_DAYS = 400;

/**
 * Days deleted per statement when old snapshots are pruned: a day is a few hundred rows (one per
 * group), so a batch is some thousands, a short lock whatever the backlog (years of days on the
 * first run after retention was set).
 */
export const PRUNE_BATCH_DAYS = 30;

/**
 * The first day kept when `retentionDays` days are kept, today (UTC, as snapshots are dated)
 * included: with 400, today and the 399 days before it. Null when snapshots are kept for ever (0).
 */
export function retentionCutoff(now: Date, retentionDays: number): string | null {
  if (!(retentionDays > 0)) return null;
  return addDays(snapshotDay(now), -(Math.floor(retentionDays) - 1));
}
