/**
 * Rollouts in rings: which of a run's machines belong to which ring, whether a finished ring's gate
 * lets the run go on to the next one, and the run's frozen update set (the `name=version` pairs the
 * first ring's plans selected, which later rings may install and nothing else).
 *
 * Plain functions on plain data, imported by the activities, the API and the workflow sandbox: no
 * dependencies, no Node built-ins, no clock.
 */
import type { Environment } from '../domain/vocabulary.js';
import { updateSetKey, type Limit } from './planning.js';

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

export type { Environment } from '../domain/vocabulary.js';

/** Machines of the run's targets with every one of these tags, a name containing nameContains, in one of these environments (empty: any). */
export interface RingFilter {
  tags: string[];
  nameContains: string | null;
  environments: Environment[];
}

/**
 * What a ring waits for before the next ring starts: at most maxFailures of its machines failed
 * (null: none may fail), then soakSeconds after its last machine finished, then an OPERATOR's
 * approval when requireApproval.
 */
export interface RingGate {
  maxFailures: Limit | null;
  soakSeconds: number;
  requireApproval: boolean;
}

/** One ring: its machines chosen in exactly one way, its own concurrency, its gate. */
export interface Ring {
  name: string;
  filter: RingFilter | null;
  machineIds: string[] | null;
  /** Percent of the targets no earlier ring took (rounded up), 1 to 100. */
  percent: number | null;
  /** Null: the deployment's maxConcurrent. */
  maxConcurrent: Limit | null;
  gate: RingGate;
}

/** What ring selection reads of a target machine. */
export interface RingCandidate {
  id: string;
  name: string;
  tags: string[];
  environment: string;
}

// ---------------------------------------------------------------------------------------------
// Ring selection
// ---------------------------------------------------------------------------------------------

function matchesFilter(machine: RingCandidate, filter: RingFilter): boolean {
  if (!filter.tags.every((tag) => machine.tags.includes(tag))) return false;
  if (filter.nameContains && !machine.name.toLowerCase().includes(filter.nameContains.toLowerCase())) return false;
  if (filter.environments.length > 0 && !filter.environments.includes(machine.environment as Environment)) return false;
  return true;
}

/**
 * Splits a run's targets into its rings, in ring order. Each ring takes from the targets no earlier
 * ring took: those its filter matches, those its machineIds name, or the first `percent` % of them
 * (rounded up, at least one while any remain) in the order given (the caller orders by name). A
 * machine is in one ring at most; targets left after the last ring are `unassigned` and not part of
 * the run (a last ring of 100 % takes them all).
 */
export function assignRings<T extends RingCandidate>(targets: readonly T[], rings: readonly Ring[]): { rings: T[][]; unassigned: T[] } {
  let remaining = [...targets];
  const out: T[][] = [];
  for (const ring of rings) {
    let taken: T[];
    if (ring.percent !== null) {
      // The epsilon keeps float noise from rounding a whole number up.
      const count = remaining.length === 0 ? 0 : Math.max(1, Math.ceil((remaining.length * ring.percent) / 100 - 1e-9));
      taken = remaining.slice(0, count);
    } else if (ring.machineIds !== null) {
      const named = new Set(ring.machineIds);
      taken = remaining.filter((m) => named.has(m.id));
    } else if (ring.filter !== null) {
      const filter = ring.filter;
      taken = remaining.filter((m) => matchesFilter(m, filter));
    } else {
      taken = [];
    }
    const ids = new Set(taken.map((m) => m.id));
    remaining = remaining.filter((m) => !ids.has(m.id));
    out.push(taken);
  }
  return { rings: out, unassigned: remaining };
}

// ---------------------------------------------------------------------------------------------
// Gates
// ---------------------------------------------------------------------------------------------

/** What the operator said about a ring's gate (null: nothing yet). */
export type GateVerdict = { kind: 'APPROVED'; by: string } | { kind: 'REJECTED'; by: string; reason: string } | { kind: 'RESUMED'; by: string } | null;

export type GateDecision =
  | { kind: 'PROMOTE' }
  | { kind: 'SOAK'; seconds: number }
  | { kind: 'WAIT_FOR_APPROVAL' }
  | { kind: 'HALT'; reason: string }
  | { kind: 'REJECT'; reason: string };

/** Whether `failed` of `total` machines is within the gate's limit: COUNT N is at most N failed, PERCENT N is at most N % of the ring's machines. */
export function failuresWithin(limit: Limit | null, failed: number, total: number): boolean {
  if (limit === null) return failed === 0;
  if (limit.unit === 'COUNT') return failed <= limit.value;
  return failed * 100 <= limit.value * total;
}

function limitWords(limit: Limit | null): string {
  if (limit === null) return 'none may fail';
  return limit.unit === 'COUNT' ? `at most ${limit.value} may fail` : `at most ${limit.value} % may fail`;
}

/**
 * The next step at a finished ring's gate, asked again after each step until it promotes:
 * - a rejection ends the run (REJECT, with the operator's reason);
 * - an operator's resume of a halted gate promotes (the operator decided to go on);
 * - a machine's step asked to halt the run (a failed post-step health check whose onFailure is
 *   HALT_RUN): HALT, with the step's reason;
 * - more failed machines than the gate allows: HALT, with the reason;
 * - soak time not yet waited: SOAK for it (the caller waits once and passes soaked = true);
 * - approval asked and not given: WAIT_FOR_APPROVAL;
 * - otherwise PROMOTE.
 */
export function gateDecision(input: { ringName: string; gate: RingGate; total: number; failed: number; soaked: boolean; verdict: GateVerdict; stepHalts?: readonly string[] }): GateDecision {
  const { gate, verdict } = input;
  if (verdict?.kind === 'REJECTED') return { kind: 'REJECT', reason: `${input.ringName} was rejected by ${verdict.by}: ${verdict.reason}` };
  if (verdict?.kind === 'RESUMED') return { kind: 'PROMOTE' };
  const halts = input.stepHalts ?? [];
  if (halts.length > 0) {
    return { kind: 'HALT', reason: `${input.ringName}: ${halts[0]}${halts.length > 1 ? ` (and ${halts.length - 1} more machine(s))` : ''}. Resume the run to go on, or cancel it.` };
  }
  if (!failuresWithin(gate.maxFailures, input.failed, input.total)) {
    return { kind: 'HALT', reason: `${input.ringName}: ${input.failed} of ${input.total} machine(s) failed; its gate allows ${limitWords(gate.maxFailures)}. Resume the run to go on, or cancel it.` };
  }
  if (gate.soakSeconds > 0 && !input.soaked) return { kind: 'SOAK', seconds: gate.soakSeconds };
  if (gate.requireApproval && verdict?.kind !== 'APPROVED') return { kind: 'WAIT_FOR_APPROVAL' };
  return { kind: 'PROMOTE' };
}

// ---------------------------------------------------------------------------------------------
// The frozen update set
// ---------------------------------------------------------------------------------------------

export interface UpdateSetMember {
  name: string;
  version: string;
}

/** Why a later ring leaves an update out. */
/** The set's members, each once, ordered by name then version (the same set reads the same everywhere). */
export function freezeUpdateSet(selected: Iterable<{ name: string; availableVersion: string }>): UpdateSetMember[] {
  const members = new Map<string, UpdateSetMember>();
  for (const update of selected) members.set(updateSetKey(update), { name: update.name, version: update.availableVersion });
  return [...members.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.version < b.version ? -1 : a.version > b.version ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------
// Preview
// ---------------------------------------------------------------------------------------------

/**
 * What the operator should hear before saving rings, from how the targets split now: a ring that
 * takes no machine (its run would skip it), and targets that fall in no ring (not updated).
 * Warnings, not errors: the fleet changes, and the run splits its targets when it begins.
 */
export function ringWarnings(rings: readonly Ring[], assigned: { rings: readonly unknown[][]; unassigned: readonly unknown[] }): Array<{ field: string; message: string }> {
  const warnings: Array<{ field: string; message: string }> = [];
  rings.forEach((ring, i) => {
    if ((assigned.rings[i]?.length ?? 0) > 0) return;
    const how = ring.filter !== null ? 'filter' : ring.machineIds !== null ? 'machineIds' : 'percent';
    warnings.push({
      field: `rings[${i}].${how}`,
      message: `rings[${i}] (${ring.name}): its ${how} matches none of the targets that earlier rings leave; a run that began now would skip this ring`,
    });
  });
  if (assigned.unassigned.length > 0) {
    warnings.push({
      field: 'rings',
      message: `${assigned.unassigned.length} target machine(s) fall in no ring and would not be updated; a last ring with percent 100 takes every target left`,
    });
  }
  return warnings;
}
