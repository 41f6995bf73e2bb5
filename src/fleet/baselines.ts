/**
 * Patch baselines and SLA clocks: which pending updates a machine is expected to have installed, and
 * by when. A baseline (per OS type) approves updates by rules (classifications, severities, a delay
 * in days) and by approved patterns, and rejects updates by patterns ("never install"); SLA targets
 * per severity give each approved update a due date. Machines get a baseline by tag; a machine no
 * baseline reaches keeps the built-in one, which is today's rule: every CRITICAL and SECURITY update
 * is approved at once, and there is no SLA.
 *
 * Every date is counted from the update's clock: its advisory's issue date when the metadata gives
 * one, else when fleetpatch first saw that name and version anywhere in the fleet (as AWS SSM Patch
 * Manager's approveAfterDays counts from a patch's release date: the clock is the product's rule,
 * not a rule's choice). Both inputs are fleet-wide per name and version (UpdateClockInputs) and read
 * from one place, so the stored verdicts, the planner and the machine view count from one clock. Days are
 * calendar days in the baseline's time zone: "approved 7 days after" means from the start of the 7th
 * day after the clock's day; "due in 15 days" means by the end of the 15th day after it.
 *
 * Plain functions on plain data, no clock (callers pass `now`).
 */
import { SEVERITIES, type Classification, type Severity } from '../domain/vocabulary.js';
import type { PendingUpdate } from '../domain/types.js';
import type { Compliance, FleetThresholds, OsType } from './compliance.js';
import { CLASSIFICATIONS_BY_OS, patternProblem } from './deploymentInput.js';
import { matchesPattern, type BaselineDecision } from './planning.js';
import { canonicalTimeZone, localDayStart } from './schedule.js';
import { normaliseTags, tagProblem } from './tags.js';

export { SEVERITIES };

export interface ApprovalRule {
  /** Empty: any classification. */
  classifications: Classification[];
  /** Empty: any severity, none included. */
  severities: Severity[];
  /** Approved from the start of this many days after the update's clock (0: from its first day). */
  delayDays: number;
}

export interface SlaTarget {
  severity: Severity;
  /** An approved update of this severity is due by the end of this many days after its clock. */
  days: number;
}

export interface Baseline {
  /** null: the built-in baseline. */
  id: string | null;
  name: string;
  osType: OsType;
  /** Machines carrying every one of these tags get it; empty: every machine of its OS type. */
  tags: string[];
  /** The higher wins when several baselines reach a machine (see assignedBaseline). */
  priority: number;
  rules: ApprovalRule[];
  approvedPatterns: string[];
  rejectedPatterns: string[];
  slaTargets: SlaTarget[];
  /** IANA zone the days are counted in. */
  timeZone: string;
}

/** The built-in baseline: every CRITICAL and SECURITY update approved at once, no SLA. Exactly the compliance rule fleetpatch had before baselines. */
export function builtInBaseline(osType: OsType): Baseline {
  return {
    id: null,
    name: 'Built-in: critical and security updates',
    osType,
    tags: [],
    priority: Number.NEGATIVE_INFINITY,
    rules: [{ classifications: ['CRITICAL', 'SECURITY'], severities: [], delayDays: 0 }],
    approvedPatterns: [],
    rejectedPatterns: [],
    slaTargets: [],
    timeZone: 'UTC',
  };
}

// ---------------------------------------------------------------------------------------------
// Assignment
// ---------------------------------------------------------------------------------------------

/**
 * Which baseline a machine gets: among the baselines of its OS type whose tags it carries all of,
 * the one with the highest priority; on equal priority the one naming more tags (the more specific);
 * then the first by name. None: null (the built-in baseline). src/db/baselines.ts applies the same
 * order in SQL for the whole fleet at once.
 */
export function assignedBaseline<B extends Pick<Baseline, 'osType' | 'tags' | 'priority' | 'name'>>(machine: { osType: OsType; tags: readonly string[] }, baselines: readonly B[]): B | null {
  const reaching = baselines.filter((b) => b.osType === machine.osType && b.tags.every((t) => machine.tags.includes(t)));
  reaching.sort((a, b) => b.priority - a.priority || b.tags.length - a.tags.length || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return reaching[0] ?? null;
}

// ---------------------------------------------------------------------------------------------
// One update under a baseline
// ---------------------------------------------------------------------------------------------

export interface ClockedUpdate {
  name: string;
  availableVersion: string;
  classification: Classification;
  severity: Severity | null;
  /** When fleetpatch first saw this name and version (fleet-wide). */
  firstSeenAt: Date;
  /** The advisory's issue date, when the update's metadata gives one. */
  advisoryIssuedAt?: Date | null;
}

export type UpdateVerdict =
  | { status: 'REJECTED'; pattern: string }
  | { status: 'NOT_APPROVED' }
  | {
      status: 'APPROVED';
      /** From when it is approved: missing it from then on makes the machine NON_COMPLIANT. */
      approvedAt: Date;
      /** Its SLA due date; null when its severity has no target. */
      dueAt: Date | null;
      /** What approved it: `approved pattern "openssl*"` or `rule 2`. */
      by: string;
    };

/**
 * The update's clock: the advisory's issue date when known, else first seen. An issue date after the
 * first sighting (a date-only `issued` read as midnight UTC while the repository already had it, a
 * clock off on the machine that reported it) counts as the first sighting: the update was out by
 * then, and no baseline, the built-in one included, may approve it later than first seen would.
 */
export function updateClock(update: Pick<ClockedUpdate, 'firstSeenAt' | 'advisoryIssuedAt'>): Date {
  const issued = update.advisoryIssuedAt;
  return issued && issued.getTime() < update.firstSeenAt.getTime() ? issued : update.firstSeenAt;
}

/**
 * What an update's clock is made of, fleet-wide for its name and version (src/db/baselines.ts,
 * updateClocksSql, is the one read of them): when fleetpatch first saw it, and the advisory's issue
 * date as recorded with that first sighting (null when the first report of it gave none).
 */
export interface UpdateClockInputs {
  firstSeenAt: Date;
  advisoryIssuedAt: Date | null;
}

/** The key of UpdateClockInputs maps: `name=version`. */
export const clockKey = (update: { name: string; availableVersion: string }): string => `${update.name}=${update.availableVersion}`;

/**
 * An update with its clock inputs, the one way every caller (stored verdicts, planner, machine
 * view) makes a ClockedUpdate. An update fleetpatch has no record of yet (its assessment is being
 * stored) is first seen `now`, with no issue date, as its record will say.
 */
export function clockedUpdate<U extends { name: string; availableVersion: string; classification: Classification; severity: Severity | null }>(
  update: U,
  clocks: ReadonlyMap<string, UpdateClockInputs>,
  now: Date,
): Omit<U, keyof UpdateClockInputs> & ClockedUpdate {
  const clock = clocks.get(clockKey(update));
  return { ...update, firstSeenAt: clock?.firstSeenAt ?? now, advisoryIssuedAt: clock?.advisoryIssuedAt ?? null };
}

/**
 * A pending update under a baseline. A rejected pattern wins over everything ("never install");
 * an approved pattern approves it from its clock's first day; otherwise the earliest of the
 * matching rules. The SLA due date is counted from the same clock.
 */
export function updateVerdict(baseline: Baseline, update: ClockedUpdate): UpdateVerdict {
  const rejected = baseline.rejectedPatterns.find((p) => matchesPattern(update, p));
  if (rejected !== undefined) return { status: 'REJECTED', pattern: rejected };
  const clock = updateClock(update).getTime();
  let approvedAt: number | null = null;
  let by = '';
  const pattern = baseline.approvedPatterns.find((p) => matchesPattern(update, p));
  if (pattern !== undefined) {
    approvedAt = localDayStart(clock, baseline.timeZone, 0);
    by = `approved pattern "${pattern}"`;
  }
  baseline.rules.forEach((rule, i) => {
    if (rule.classifications.length > 0 && !rule.classifications.includes(update.classification)) return;
    if (rule.severities.length > 0 && (update.severity === null || !rule.severities.includes(update.severity))) return;
    const at = localDayStart(clock, baseline.timeZone, rule.delayDays);
    if (approvedAt === null || at < approvedAt) {
      approvedAt = at;
      by = `rule ${i + 1}`;
    }
  });
  if (approvedAt === null) return { status: 'NOT_APPROVED' };
  const target = update.severity === null ? undefined : baseline.slaTargets.find((t) => t.severity === update.severity);
  return { status: 'APPROVED', approvedAt: new Date(approvedAt), dueAt: target ? new Date(localDayStart(clock, baseline.timeZone, target.days + 1)) : null, by };
}

/** Overdue: `now` is at or past its due date. */
export const isOverdue = (dueAt: Date | null, now: Date): boolean => dueAt !== null && now.getTime() >= dueAt.getTime();

// ---------------------------------------------------------------------------------------------
// A machine under its baseline
// ---------------------------------------------------------------------------------------------

/**
 * What is kept on each machine so that the fleet view counts, filters and sorts in one pass over
 * machines with no per-update work: the moment its first approved update passed its approval (it is
 * NON_COMPLIANT from then on while that assessment stands), and the due dates of its approved
 * updates, earliest first (one per update name).
 */
export interface MachineBaselineState {
  nonCompliantFrom: Date | null;
  dueDates: Date[];
}

export function machineBaselineState(baseline: Baseline, updates: readonly ClockedUpdate[]): MachineBaselineState {
  let nonCompliantFrom: number | null = null;
  const dueByName = new Map<string, number>();
  for (const update of updates) {
    const verdict = updateVerdict(baseline, update);
    if (verdict.status !== 'APPROVED') continue;
    const at = verdict.approvedAt.getTime();
    if (nonCompliantFrom === null || at < nonCompliantFrom) nonCompliantFrom = at;
    if (verdict.dueAt) dueByName.set(update.name, Math.min(dueByName.get(update.name) ?? Number.POSITIVE_INFINITY, verdict.dueAt.getTime()));
  }
  return { nonCompliantFrom: nonCompliantFrom === null ? null : new Date(nonCompliantFrom), dueDates: [...dueByName.values()].sort((a, b) => a - b).map((ms) => new Date(ms)) };
}

/** Compliance with its baseline, from the kept state: NOT_ASSESSED as before, NON_COMPLIANT once an approved update's approval has passed. */
export function baselineCompliance(
  machine: { osType: OsType; lastAssessedAt: Date | null; nonCompliantFrom: Date | null },
  now: Date,
  thresholds: FleetThresholds,
): Compliance {
  if (!machine.lastAssessedAt || now.getTime() - machine.lastAssessedAt.getTime() > thresholds.assessmentMaxAgeMs[machine.osType]) return 'NOT_ASSESSED';
  return machine.nonCompliantFrom !== null && machine.nonCompliantFrom.getTime() <= now.getTime() ? 'NON_COMPLIANT' : 'COMPLIANT';
}

/** How many of a machine's due dates have passed. */
export const overdueCount = (dueDates: readonly Date[], now: Date): number => dueDates.filter((d) => isOverdue(d, now)).length;

export interface ComplianceExplanation {
  /** Approved updates whose approval has passed (what makes the machine NON_COMPLIANT). */
  missingApproved: Array<{ name: string; availableVersion: string; approvedAt: Date; by: string }>;
  /** Approved updates past their SLA due date. */
  overdue: Array<{ name: string; availableVersion: string; dueAt: Date }>;
  /** Approved updates whose approval is still ahead, earliest first. */
  upcoming: Array<{ name: string; availableVersion: string; approvedAt: Date }>;
  reason: string;
}

const LISTED = 5;
const listNames = (names: string[]) => (names.length > LISTED ? `${names.slice(0, LISTED).join(', ')} and ${names.length - LISTED} more` : names.join(', '));

/** Why a machine is (not) compliant with its baseline at `now`, naming the updates. */
export function explainCompliance(baseline: Baseline, updates: readonly ClockedUpdate[], now: Date): ComplianceExplanation {
  const missingApproved: ComplianceExplanation['missingApproved'] = [];
  const overdue: ComplianceExplanation['overdue'] = [];
  const upcoming: ComplianceExplanation['upcoming'] = [];
  for (const update of updates) {
    const verdict = updateVerdict(baseline, update);
    if (verdict.status !== 'APPROVED') continue;
    if (verdict.approvedAt.getTime() <= now.getTime()) missingApproved.push({ name: update.name, availableVersion: update.availableVersion, approvedAt: verdict.approvedAt, by: verdict.by });
    else upcoming.push({ name: update.name, availableVersion: update.availableVersion, approvedAt: verdict.approvedAt });
    if (isOverdue(verdict.dueAt, now)) overdue.push({ name: update.name, availableVersion: update.availableVersion, dueAt: verdict.dueAt! });
  }
  upcoming.sort((a, b) => a.approvedAt.getTime() - b.approvedAt.getTime());
  const of = `baseline "${baseline.name}"`;
  let reason: string;
  if (missingApproved.length > 0) {
    reason = `Missing ${missingApproved.length} update(s) approved by ${of}: ${listNames(missingApproved.map((u) => `${u.name} ${u.availableVersion}`))}.`;
  } else if (upcoming.length > 0) {
    reason = `Nothing approved by ${of} is missing; ${upcoming.length} pending update(s) become approved later, the first ${upcoming[0]!.name} on ${upcoming[0]!.approvedAt.toISOString()}.`;
  } else {
    reason = `Nothing approved by ${of} is missing.`;
  }
  if (overdue.length > 0) reason += ` Overdue: ${listNames(overdue.map((u) => `${u.name} (due ${u.dueAt.toISOString()})`))}.`;
  return { missingApproved, overdue, upcoming, reason };
}

/**
 * What a deployment makes of a pending update under the machine's baseline (planning.ts takes it
 * as a function, so that the agent bundle's planner does not carry the baseline rules): a rejected
 * update is never installed, by any deployment; a deployment that installs "what the baseline
 * approves" installs what is approved at `now`.
 */
export function baselineDecision(baseline: Baseline, update: ClockedUpdate, now: Date): BaselineDecision {
  const verdict = updateVerdict(baseline, update);
  const of = `baseline "${baseline.name}"`;
  if (verdict.status === 'REJECTED') return { rejected: true, approved: false, reason: `rejected by ${of} (pattern "${verdict.pattern}")` };
  if (verdict.status === 'NOT_APPROVED') return { rejected: false, approved: false, reason: `not approved by ${of}` };
  if (verdict.approvedAt.getTime() > now.getTime()) return { rejected: false, approved: false, reason: `approved by ${of} only from ${verdict.approvedAt.toISOString()}` };
  return { rejected: false, approved: true, reason: `approved by ${of} (${verdict.by})` };
}

/** The decision function for one machine's pending updates, with their clock inputs looked up by clockKey. */
export function baselineDecider(baseline: Baseline, clocks: ReadonlyMap<string, UpdateClockInputs>, now: Date): (update: PendingUpdate) => BaselineDecision {
  return (update) => baselineDecision(baseline, clockedUpdate(update, clocks, now), now);
}

// ---------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------

export const BASELINE_LIMITS = { nameMaxLength: 64, maxRules: 20, maxDelayDays: 365, maxSlaDays: 365, maxPatterns: 100, priority: { min: -1000, max: 1000 } } as const;

export interface BaselineInput {
  name: string;
  osType: OsType;
  tags?: string[] | null;
  priority?: number | null;
  rules?: ApprovalRule[] | null;
  approvedPatterns?: string[] | null;
  rejectedPatterns?: string[] | null;
  slaTargets?: SlaTarget[] | null;
  timeZone?: string | null;
}

export type BaselineValidation = { ok: true; baseline: Omit<Baseline, 'id'> } | { ok: false; field: string; message: string };

const NAME = /^[\p{L}\p{N} ._:()-]+$/u;
const quote = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
const isWhole = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

/** The first problem with a baseline as entered (with the field it is about), or the baseline normalised. */
export function validateBaselineInput(input: BaselineInput): BaselineValidation {
  const fail = (field: string, message: string): BaselineValidation => ({ ok: false, field, message });
  const name = typeof input.name === 'string' ? input.name.trim() : '';
  if (!name || name.length > BASELINE_LIMITS.nameMaxLength || !NAME.test(name)) {
    return fail('name', `name ${quote(String(input.name))} is not a baseline name: 1 to ${BASELINE_LIMITS.nameMaxLength} letters, digits, spaces and . _ : ( ) -`);
  }
  const osType = input.osType;
  if (osType !== 'LINUX' && osType !== 'WINDOWS') return fail('osType', 'osType is LINUX or WINDOWS');
  const tags = normaliseTags(input.tags ?? []);
  const tagIssue = tagProblem(tags);
  if (tagIssue) return fail('tags', `tags: ${tagIssue}`);
  const priority = input.priority ?? 0;
  if (!isWhole(priority) || priority < BASELINE_LIMITS.priority.min || priority > BASELINE_LIMITS.priority.max) {
    return fail('priority', `priority is a whole number from ${BASELINE_LIMITS.priority.min} to ${BASELINE_LIMITS.priority.max}; got ${String(priority)}`);
  }
  const rawRules = input.rules ?? [];
  if (rawRules.length > BASELINE_LIMITS.maxRules) return fail('rules', `at most ${BASELINE_LIMITS.maxRules} rules; got ${rawRules.length}`);
  const allowed = CLASSIFICATIONS_BY_OS[osType];
  const rules: ApprovalRule[] = [];
  for (const [i, rule] of rawRules.entries()) {
    const bad = rule.classifications.find((c) => !allowed.includes(c));
    if (bad !== undefined) return fail(`rules[${i}].classifications`, `${quote(String(bad))} is not a ${osType === 'LINUX' ? 'Linux' : 'Windows'} classification; take ${allowed.join(', ')}`);
    const badSeverity = rule.severities.find((s) => !SEVERITIES.includes(s));
    if (badSeverity !== undefined) return fail(`rules[${i}].severities`, `${quote(String(badSeverity))} is not a severity; take ${SEVERITIES.join(', ')}`);
    if (!isWhole(rule.delayDays) || rule.delayDays < 0 || rule.delayDays > BASELINE_LIMITS.maxDelayDays) {
      return fail(`rules[${i}].delayDays`, `rules[${i}].delayDays is a whole number of days from 0 to ${BASELINE_LIMITS.maxDelayDays}; got ${String(rule.delayDays)}`);
    }
    rules.push({ classifications: allowed.filter((c) => rule.classifications.includes(c)), severities: SEVERITIES.filter((s) => rule.severities.includes(s)), delayDays: rule.delayDays });
  }
  const patterns = (field: 'approvedPatterns' | 'rejectedPatterns'): string[] | BaselineValidation => {
    const raw = input[field] ?? [];
    if (raw.length > BASELINE_LIMITS.maxPatterns) return fail(field, `at most ${BASELINE_LIMITS.maxPatterns} ${field}; got ${raw.length}`);
    const out: string[] = [];
    for (const [i, value] of raw.entries()) {
      const pattern = typeof value === 'string' ? value.trim() : '';
      const problem = patternProblem(`${field}[${i}]`, pattern, osType);
      if (problem) return fail(`${field}[${i}]`, problem);
      const normal = osType === 'WINDOWS' ? pattern.toUpperCase() : pattern;
      if (!out.includes(normal)) out.push(normal);
    }
    return out;
  };
  const approvedPatterns = patterns('approvedPatterns');
  if (!Array.isArray(approvedPatterns)) return approvedPatterns;
  const rejectedPatterns = patterns('rejectedPatterns');
  if (!Array.isArray(rejectedPatterns)) return rejectedPatterns;
  const slaTargets: SlaTarget[] = [];
  for (const [i, target] of (input.slaTargets ?? []).entries()) {
    if (!SEVERITIES.includes(target.severity)) return fail(`slaTargets[${i}].severity`, `${quote(String(target.severity))} is not a severity; take ${SEVERITIES.join(', ')}`);
    if (slaTargets.some((t) => t.severity === target.severity)) return fail(`slaTargets[${i}].severity`, `slaTargets has ${target.severity} twice; one target per severity`);
    if (!isWhole(target.days) || target.days < 1 || target.days > BASELINE_LIMITS.maxSlaDays) {
      return fail(`slaTargets[${i}].days`, `slaTargets[${i}].days is a whole number of days from 1 to ${BASELINE_LIMITS.maxSlaDays}; got ${String(target.days)}`);
    }
    slaTargets.push({ severity: target.severity, days: target.days });
  }
  slaTargets.sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity));
  const timeZone = canonicalTimeZone(input.timeZone ?? 'UTC');
  if (timeZone === null) return fail('timeZone', `timeZone ${quote(String(input.timeZone))} is not a known IANA time zone; use a name such as Europe/Paris, America/New_York or UTC`);
  return { ok: true, baseline: { name, osType, tags, priority, rules, approvedPatterns, rejectedPatterns, slaTargets, timeZone } };
}
