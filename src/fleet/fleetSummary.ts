/**
 * The compliance summary as maintained counts (docs/fleet-counts.md): what one machine counts
 * toward at an instant, when that next changes with no write (an assessment going stale, an
 * approval or an SLA due date passing, an agent falling silent), and the summary made from the
 * counted keys. The database keeps the same rules as SQL functions (migrations, fleet_summary_*),
 * evaluated by the triggers on machines that keep the counts; test/integration/fleetSummary.test.ts
 * holds both to the same answers.
 *
 * Plain functions on plain data, no clock (callers pass the instant).
 */
import { AGENT_READINESS, CLASSIFICATIONS, COMPLIANCE_STATES, type Classification } from '../domain/vocabulary.js';
import { baselineCompliance, overdueCount } from './baselines.js';
import { compliance, readiness, type AgentReadiness, type Compliance, type FleetThresholds, type OsType } from './compliance.js';

/** What a machine's summary state is made of (a machines row, as it is stored). */
export interface SummaryMachine {
  osType: OsType;
  managementEnabled: boolean;
  lastSeenAt: Date | null;
  lastAssessedAt: Date | null;
  /** null: the built-in baseline (the counts decide). */
  baselineId: string | null;
  criticalCount: number;
  securityCount: number;
  nonCompliantFrom: Date | null;
  /** Earliest first. */
  slaDueDates: readonly Date[];
}

/** The part of a live machine's place in the summary that moves with the clock. */
export interface SummaryState {
  compliance: Compliance;
  readiness: AgentReadiness;
  /** Its approved updates past their SLA due date. */
  overdueUpdates: number;
}

/** The machine's compliance, readiness and overdue updates at `at`, as the machine view decides them. */
export function summaryState(machine: SummaryMachine, at: Date, thresholds: FleetThresholds): SummaryState {
  return {
    compliance: machine.baselineId === null ? compliance(machine, at, thresholds) : baselineCompliance(machine, at, thresholds),
    readiness: readiness(machine, at, thresholds).state,
    overdueUpdates: overdueCount(machine.slaDueDates, at),
  };
}

/**
 * The earliest instant from which summaryState may differ from what it is at `at` with no write to
 * the machine (null: never). It is the same at every instant of [at, the answer). The rules change
 * on two kinds of boundary:
 * - "older than": an assessment is stale, an agent silent, only once `at` is past
 *   last + threshold, so that instant itself is the boundary while `at` has not passed it (the
 *   state there is still the old one; the answer may equal `at`, which is harmless: the next look
 *   finds nothing changed and looks again later);
 * - "from": an approval, a due date count from their instant on, so it is a boundary only when
 *   still ahead of `at`.
 * An earlier answer than needed is never wrong (the state is looked at again and found the same); a
 * later one would be, so every boundary is counted, whether or not another makes it moot.
 */
export function nextSummaryChange(machine: SummaryMachine, at: Date, thresholds: FleetThresholds): Date | null {
  const t = at.getTime();
  const candidates: number[] = [];
  if (machine.lastAssessedAt) {
    const stale = machine.lastAssessedAt.getTime() + thresholds.assessmentMaxAgeMs[machine.osType];
    if (stale >= t) candidates.push(stale);
  }
  if (machine.baselineId !== null && machine.nonCompliantFrom && machine.nonCompliantFrom.getTime() > t) candidates.push(machine.nonCompliantFrom.getTime());
  const due = machine.slaDueDates.map((d) => d.getTime()).filter((d) => d > t);
  if (due.length > 0) candidates.push(Math.min(...due));
  if (machine.managementEnabled && machine.lastSeenAt) {
    const silent = machine.lastSeenAt.getTime() + thresholds.disconnectedAfterMs;
    if (silent >= t) candidates.push(silent);
  }
  return candidates.length === 0 ? null : new Date(Math.min(...candidates));
}

// ---------------------------------------------------------------------------------------------
// The counted keys
// ---------------------------------------------------------------------------------------------

/**
 * The keys fleet_summary_counts holds (one integer each, summed over live machines):
 * `machines:<compliance>:<readiness>` (1 per machine), `overdue_machines`, `overdue_updates`,
 * `class_updates:<classification>` (the machine's pending updates of it) and
 * `class_machines:<classification>` (1 when it has any), per OS type
 * `os_machines:<os type>:<compliance>:<readiness>` (1 per machine, migration 0046), and
 * `overdue_machines:<compliance>:<readiness>` (1 per overdue machine, migration 0053), per OS type
 * too: `os_overdue_machines:<os type>:<compliance>:<readiness>` (migration 0056).
 */
export const summaryKey = {
  machines: (c: Compliance, r: AgentReadiness) => `machines:${c}:${r}`,
  osMachines: (os: OsType, c: Compliance, r: AgentReadiness) => `os_machines:${os}:${c}:${r}`,
  overdueMachinesIn: (c: Compliance, r: AgentReadiness) => `overdue_machines:${c}:${r}`,
  osOverdueMachinesIn: (os: OsType, c: Compliance, r: AgentReadiness) => `os_overdue_machines:${os}:${c}:${r}`,
  overdueMachines: 'overdue_machines',
  overdueUpdates: 'overdue_updates',
  classUpdates: (c: Classification) => `class_updates:${c}`,
  classMachines: (c: Classification) => `class_machines:${c}`,
} as const;

export interface FleetSummary {
  /** Live machines per (compliance, readiness): what a machines page filtered on those two counts. */
  groups: Array<{ compliance: Compliance; readiness: AgentReadiness; n: number }>;
  byCompliance: Record<Compliance, number>;
  byReadiness: Record<AgentReadiness, number>;
  /** In the vocabulary's order, only the classifications with pending updates. */
  pendingByClassification: Array<{ classification: Classification; updateCount: number; machineCount: number }>;
  total: number;
  /** Live machines with an approved update past its SLA due date, and how many such updates they have. */
  overdueMachines: number;
  overdueUpdates: number;
}

/**
 * The live machines per (compliance, readiness) from the counted keys: of the whole fleet or of one
 * OS type, all of them or those that are overdue (or not: all less the overdue ones).
 */
export function groupsFromCounts(counts: ReadonlyMap<string, number>, of: { osType?: OsType; overdue?: boolean } = {}): FleetSummary['groups'] {
  const n = (key: string) => counts.get(key) ?? 0;
  const groups: FleetSummary['groups'] = [];
  for (const c of COMPLIANCE_STATES) {
    for (const r of AGENT_READINESS) {
      const all = n(of.osType ? summaryKey.osMachines(of.osType, c, r) : summaryKey.machines(c, r));
      const overdue = n(of.osType ? summaryKey.osOverdueMachinesIn(of.osType, c, r) : summaryKey.overdueMachinesIn(c, r));
      const machines = of.overdue === undefined ? all : of.overdue ? overdue : all - overdue;
      if (machines !== 0) groups.push({ compliance: c, readiness: r, n: machines });
    }
  }
  return groups;
}

/**
 * The most matches the computers page counts of a filter no maintained count covers (countedGroups
 * null: part of a name, several tags); past it the count says "at least" (totalCountExact false).
 * A part every machine's name holds would otherwise count the whole fleet at every page (385 ms at
 * 1M); the first 10,001 matches are read in about 8 ms, and past ten thousand an operator narrows
 * the search rather than reads the figure (BENCHMARKS.md, "Counts of a part of a name and of two
 * tags at 1,000,000 machines").
 */
export const MATCHES_COUNTED_UP_TO = 10_000;

/** Which maintained groups a computers filter's count is read from (src/api/machines/machine.service.ts). */
export type CountedGroups = { of: 'TAG'; tag: string; osType?: OsType; overdue?: boolean } | { of: 'SUMMARY'; osType?: OsType; overdue?: boolean };

/**
 * The maintained (compliance, readiness) groups that count the machines a filter matches, exact at
 * the read, or null when only a count of its matches can (docs/fleet-counts.md): the summary's or
 * one tag's, each alone, of an OS type, of the overdue machines (or the others), or of both
 * (0046, 0047, 0052, 0053, 0056). Compliance and readiness are the groups' own; a name or several
 * tags are kept by no count.
 */
export function countedGroups(filter: { osType?: OsType; tags?: readonly string[]; nameContains?: string; overdue?: boolean }): CountedGroups | null {
  const tags = [...new Set(filter.tags ?? [])];
  if (filter.nameContains || tags.length > 1) return null;
  const of = { osType: filter.osType, overdue: filter.overdue };
  return tags.length === 1 ? { of: 'TAG', tag: tags[0]!, ...of } : { of: 'SUMMARY', ...of };
}

/** Whether a filter's field asks for something (an empty list asks for nothing). */
export const isSet = (value: unknown): boolean => value !== undefined && !(Array.isArray(value) && value.length === 0);

/** A computers filter's fields, as the decisions below read them. */
type FleetFilter = { compliance?: readonly Compliance[]; readiness?: readonly AgentReadiness[]; osType?: OsType; tags?: readonly string[]; nameContains?: string; overdue?: boolean };

/**
 * The conditions a computers page reads its candidates through first, when the maintained counts
 * say few machines meet them (src/db/machines.ts, withFewMeetingTheRest), or null when it reads as
 * it comes: `TAG_ROWS`, one tag with a condition its rows' stored state, OS type or overdue decides
 * (the tag's rows in those states, where walking the tag read all of its rows to find a few);
 * `CONDITIONS`, a part of a name with other counted conditions (those machines through their own
 * paths, the part then tested on them, where walking the names read every name holding the part).
 * The conditions are everything but the part of a name; the counts must cover them (countedGroups).
 */
export function fewFirst(filter: FleetFilter): { read: 'TAG_ROWS'; tag: string; counted: CountedGroups } | { read: 'CONDITIONS'; counted: CountedGroups } | null {
  const { nameContains, ...rest } = filter;
  const counted = countedGroups(rest);
  if (!counted) return null;
  if (counted.of === 'TAG' && storedStatesMeeting(rest) !== null) return { read: 'TAG_ROWS', tag: counted.tag, counted };
  return nameContains && Object.values(rest).some(isSet) ? { read: 'CONDITIONS', counted } : null;
}

/**
 * The stored states ('<compliance>:<readiness>', machines.summary_state) a machine must have to meet
 * a filter's compliance and readiness (empty: any), or null when the filter has no condition a tag
 * row's stored state, OS type or overdue can decide (a tag's page then reads every row of the tag as
 * it comes). A tag's page with one (src/db/machines.ts, tagPage) reads only the machines whose tag
 * rows carry one of these states, the OS type and overdue asked for, where the stored state holds.
 */
export function storedStatesMeeting(filter: { compliance?: readonly Compliance[]; readiness?: readonly AgentReadiness[]; osType?: OsType; overdue?: boolean }): string[] | null {
  if (!filter.compliance?.length && !filter.readiness?.length && filter.osType === undefined && filter.overdue === undefined) return null;
  const compliance = COMPLIANCE_STATES.filter((c) => !filter.compliance?.length || filter.compliance.includes(c));
  const readiness = AGENT_READINESS.filter((r) => !filter.readiness?.length || filter.readiness.includes(r));
  return compliance.flatMap((c) => readiness.map((r) => `${c}:${r}`));
}

/** The summary from the counted keys (a key not there counts 0). */
export function summaryFromCounts(counts: ReadonlyMap<string, number>): FleetSummary {
  const n = (key: string) => counts.get(key) ?? 0;
  const byCompliance: Record<Compliance, number> = { COMPLIANT: 0, NON_COMPLIANT: 0, NOT_ASSESSED: 0 };
  const byReadiness: Record<AgentReadiness, number> = { READY: 0, DISCONNECTED: 0, NOT_CONFIGURED: 0 };
  const groups = groupsFromCounts(counts);
  let total = 0;
  for (const g of groups) {
    byCompliance[g.compliance] += g.n;
    byReadiness[g.readiness] += g.n;
    total += g.n;
  }
  return {
    groups,
    byCompliance,
    byReadiness,
    pendingByClassification: CLASSIFICATIONS.map((c) => ({ classification: c, updateCount: n(summaryKey.classUpdates(c)), machineCount: n(summaryKey.classMachines(c)) })).filter((c) => c.updateCount > 0),
    total,
    overdueMachines: n(summaryKey.overdueMachines),
    overdueUpdates: n(summaryKey.overdueUpdates),
  };
}

/** How many live machines a machines page filtered on compliance and readiness alone (empty: any) holds. */
export function matchingMachines(summary: Pick<FleetSummary, 'groups'>, filter: { compliance?: readonly Compliance[]; readiness?: readonly AgentReadiness[] }): number {
  return summary.groups
    .filter((g) => (!filter.compliance?.length || filter.compliance.includes(g.compliance)) && (!filter.readiness?.length || filter.readiness.includes(g.readiness)))
    .reduce((sum, g) => sum + g.n, 0);
}
