import { describe, expect, it } from 'vitest';
import { DEFAULT_THRESHOLDS } from '../../src/fleet/compliance.js';
import { countedGroups, fewFirst, groupsFromCounts, matchingMachines, nextSummaryChange, storedStatesMeeting, summaryFromCounts, summaryKey, summaryState, type SummaryMachine } from '../../src/fleet/fleetSummary.js';
import { seededRandom } from '../../src/simulator/syntheticMachine.js';

const T = new Date('2026-11-25T12:00:00Z');
const at = (ms: number) => new Date(T.getTime() + ms);
const HOUR = 3600_000;
const DAY = 24 * HOUR;

const machine = (m: Partial<SummaryMachine> = {}): SummaryMachine => ({
  osType: 'LINUX',
  managementEnabled: true,
  lastSeenAt: T,
  lastAssessedAt: T,
  baselineId: null,
  criticalCount: 0,
  securityCount: 0,
  nonCompliantFrom: null,
  slaDueDates: [],
  ...m,
});

describe('a machine in the compliance summary, over time', () => {
  it('goes NOT_ASSESSED only once past 3 h (Linux) or 12 h (Windows), and says that instant', () => {
    const linux = machine({ lastSeenAt: null });
    expect(nextSummaryChange(linux, T, DEFAULT_THRESHOLDS)).toEqual(at(3 * HOUR));
    expect(summaryState(linux, at(3 * HOUR), DEFAULT_THRESHOLDS).compliance).toBe('COMPLIANT');
    expect(summaryState(linux, at(3 * HOUR + 1), DEFAULT_THRESHOLDS).compliance).toBe('NOT_ASSESSED');
    const windows = machine({ osType: 'WINDOWS', lastSeenAt: null, securityCount: 1 });
    expect(nextSummaryChange(windows, at(HOUR), DEFAULT_THRESHOLDS)).toEqual(at(12 * HOUR));
    expect(summaryState(windows, at(12 * HOUR), DEFAULT_THRESHOLDS).compliance).toBe('NON_COMPLIANT');
    expect(summaryState(windows, at(12 * HOUR + 1), DEFAULT_THRESHOLDS).compliance).toBe('NOT_ASSESSED');
    // At the instant itself the state has not changed yet: the instant is still the next one; past it, there is none.
    expect(nextSummaryChange(linux, at(3 * HOUR), DEFAULT_THRESHOLDS)).toEqual(at(3 * HOUR));
    expect(nextSummaryChange(linux, at(3 * HOUR + 1), DEFAULT_THRESHOLDS)).toBeNull();
  });

  it('goes DISCONNECTED only once its stored last-seen time is older than 270 s, and never while management is off or it was never seen', () => {
    const m = machine({ lastAssessedAt: null });
    expect(nextSummaryChange(m, T, DEFAULT_THRESHOLDS)).toEqual(at(270_000));
    expect(summaryState(m, at(270_000), DEFAULT_THRESHOLDS).readiness).toBe('READY');
    expect(summaryState(m, at(270_001), DEFAULT_THRESHOLDS).readiness).toBe('DISCONNECTED');
    expect(nextSummaryChange(machine({ lastAssessedAt: null, managementEnabled: false }), T, DEFAULT_THRESHOLDS)).toBeNull();
    expect(nextSummaryChange(machine({ lastAssessedAt: null, lastSeenAt: null }), T, DEFAULT_THRESHOLDS)).toBeNull();
  });

  it('turns NON_COMPLIANT under a baseline from the approval instant itself, and counts each due date from its instant', () => {
    const m = machine({ baselineId: 'b', lastSeenAt: null, lastAssessedAt: T, nonCompliantFrom: at(HOUR), slaDueDates: [at(2 * HOUR), at(2 * HOUR), at(5 * DAY)] });
    expect(nextSummaryChange(m, T, DEFAULT_THRESHOLDS)).toEqual(at(HOUR));
    expect(summaryState(m, at(HOUR - 1), DEFAULT_THRESHOLDS).compliance).toBe('COMPLIANT');
    expect(summaryState(m, at(HOUR), DEFAULT_THRESHOLDS).compliance).toBe('NON_COMPLIANT');
    expect(nextSummaryChange(m, at(HOUR), DEFAULT_THRESHOLDS)).toEqual(at(2 * HOUR));
    expect(summaryState(m, at(2 * HOUR - 1), DEFAULT_THRESHOLDS).overdueUpdates).toBe(0);
    expect(summaryState(m, at(2 * HOUR), DEFAULT_THRESHOLDS).overdueUpdates).toBe(2);
    // Next: the assessment going stale at 3 h, then the last due date (still counted while NOT_ASSESSED).
    expect(nextSummaryChange(m, at(2 * HOUR), DEFAULT_THRESHOLDS)).toEqual(at(3 * HOUR));
    expect(nextSummaryChange(m, at(3 * HOUR + 1), DEFAULT_THRESHOLDS)).toEqual(at(5 * DAY));
    expect(summaryState(m, at(5 * DAY), DEFAULT_THRESHOLDS)).toEqual({ compliance: 'NOT_ASSESSED', readiness: 'NOT_CONFIGURED', overdueUpdates: 3 });
    expect(nextSummaryChange(m, at(5 * DAY), DEFAULT_THRESHOLDS)).toBeNull();
    // With the built-in baseline the kept approval instant means nothing: the counts decide.
    expect(nextSummaryChange({ ...m, baselineId: null, slaDueDates: [] }, T, DEFAULT_THRESHOLDS)).toEqual(at(3 * HOUR));
  });

  it('never changes before the instant it names, over thousands of random machines and instants', () => {
    // Seeded: the same machines on every run.
    const random = seededRandom(42);
    const within = (span: number) => Math.floor((random() - 0.5) * 2 * span);
    const thresholds = { assessmentMaxAgeMs: { LINUX: 3 * HOUR, WINDOWS: 12 * HOUR }, disconnectedAfterMs: 180_000 };
    for (let i = 0; i < 3000; i++) {
      const m = machine({
        osType: random() < 0.5 ? 'LINUX' : 'WINDOWS',
        managementEnabled: random() < 0.8,
        lastSeenAt: random() < 0.9 ? at(within(10 * 60_000)) : null,
        lastAssessedAt: random() < 0.9 ? at(within(13 * HOUR)) : null,
        baselineId: random() < 0.5 ? 'b' : null,
        criticalCount: random() < 0.3 ? 1 : 0,
        nonCompliantFrom: random() < 0.5 ? at(within(5 * HOUR)) : null,
        slaDueDates: Array.from({ length: Math.floor(random() * 3) }, () => within(DAY)).sort((a, b) => a - b).map(at),
      });
      const from = at(within(HOUR));
      const next = nextSummaryChange(m, from, thresholds);
      const state = summaryState(m, from, thresholds);
      const until = next ? next.getTime() : from.getTime() + 2 * DAY;
      expect(next === null || next.getTime() >= from.getTime()).toBe(true);
      // The same at the start, just before the instant, and anywhere between.
      for (const t of [from.getTime(), until - 1, from.getTime() + Math.floor(random() * (until - from.getTime()))]) {
        if (t >= from.getTime()) expect(summaryState(m, new Date(t), thresholds)).toEqual(state);
      }
    }
  });
});

describe('the summary from its counted keys', () => {
  it('adds the (compliance, readiness) groups up per state, lists only classifications with pending updates, in the vocabulary\'s order', () => {
    const counts = new Map<string, number>([
      [summaryKey.machines('COMPLIANT', 'READY'), 3],
      [summaryKey.machines('NON_COMPLIANT', 'DISCONNECTED'), 2],
      [summaryKey.machines('NOT_ASSESSED', 'READY'), 0],
      [summaryKey.overdueMachines, 1],
      [summaryKey.overdueUpdates, 4],
      [summaryKey.classUpdates('OTHER'), 7],
      [summaryKey.classMachines('OTHER'), 3],
      [summaryKey.classUpdates('CRITICAL'), 2],
      [summaryKey.classMachines('CRITICAL'), 2],
      [summaryKey.classUpdates('TOOLS'), 0],
    ]);
    const summary = summaryFromCounts(counts);
    expect(summary).toEqual({
      groups: [
        { compliance: 'COMPLIANT', readiness: 'READY', n: 3 },
        { compliance: 'NON_COMPLIANT', readiness: 'DISCONNECTED', n: 2 },
      ],
      byCompliance: { COMPLIANT: 3, NON_COMPLIANT: 2, NOT_ASSESSED: 0 },
      byReadiness: { READY: 3, DISCONNECTED: 2, NOT_CONFIGURED: 0 },
      pendingByClassification: [
        { classification: 'CRITICAL', updateCount: 2, machineCount: 2 },
        { classification: 'OTHER', updateCount: 7, machineCount: 3 },
      ],
      total: 5,
      overdueMachines: 1,
      overdueUpdates: 4,
    });
    expect(matchingMachines(summary, {})).toBe(5);
    expect(matchingMachines(summary, { readiness: ['DISCONNECTED'] })).toBe(2);
    expect(matchingMachines(summary, { compliance: ['COMPLIANT', 'NOT_ASSESSED'], readiness: ['READY', 'NOT_CONFIGURED'] })).toBe(3);
  });

  it("reads one OS type's (compliance, readiness) groups from its own keys, the fleet's from the fleet's", () => {
    const counts = new Map<string, number>([
      [summaryKey.machines('COMPLIANT', 'READY'), 5],
      [summaryKey.machines('NON_COMPLIANT', 'READY'), 1],
      [summaryKey.osMachines('LINUX', 'COMPLIANT', 'READY'), 4],
      [summaryKey.osMachines('WINDOWS', 'COMPLIANT', 'READY'), 1],
      [summaryKey.osMachines('WINDOWS', 'NON_COMPLIANT', 'READY'), 1],
      [summaryKey.osMachines('LINUX', 'NOT_ASSESSED', 'DISCONNECTED'), 0],
    ]);
    expect(groupsFromCounts(counts, { osType: 'LINUX' })).toEqual([{ compliance: 'COMPLIANT', readiness: 'READY', n: 4 }]);
    expect(matchingMachines({ groups: groupsFromCounts(counts, { osType: 'WINDOWS' }) }, { compliance: ['NON_COMPLIANT'] })).toBe(1);
    expect(matchingMachines({ groups: groupsFromCounts(counts) }, {})).toBe(6);
    expect(summaryFromCounts(counts).total).toBe(6);
  });

  it('reads the overdue machines per (compliance, readiness) from their own keys, and the others as the fleet less them', () => {
    const counts = new Map<string, number>([
      [summaryKey.machines('COMPLIANT', 'READY'), 5],
      [summaryKey.machines('NON_COMPLIANT', 'READY'), 3],
      [summaryKey.machines('NON_COMPLIANT', 'DISCONNECTED'), 1],
      [summaryKey.overdueMachinesIn('NON_COMPLIANT', 'READY'), 3],
      [summaryKey.overdueMachinesIn('NON_COMPLIANT', 'DISCONNECTED'), 1],
      [summaryKey.overdueMachines, 4],
    ]);
    expect(groupsFromCounts(counts, { overdue: true })).toEqual([
      { compliance: 'NON_COMPLIANT', readiness: 'READY', n: 3 },
      { compliance: 'NON_COMPLIANT', readiness: 'DISCONNECTED', n: 1 },
    ]);
    expect(groupsFromCounts(counts, { overdue: false })).toEqual([{ compliance: 'COMPLIANT', readiness: 'READY', n: 5 }]);
    expect(matchingMachines({ groups: groupsFromCounts(counts, { overdue: true }) }, { readiness: ['DISCONNECTED'] })).toBe(1);
  });

  it("reads an OS type's overdue machines from their own keys (0056), and its others as its machines less them", () => {
    const counts = new Map<string, number>([
      [summaryKey.machines('NON_COMPLIANT', 'READY'), 7],
      [summaryKey.overdueMachinesIn('NON_COMPLIANT', 'READY'), 5],
      [summaryKey.osMachines('LINUX', 'NON_COMPLIANT', 'READY'), 4],
      [summaryKey.osMachines('WINDOWS', 'NON_COMPLIANT', 'READY'), 3],
      [summaryKey.osOverdueMachinesIn('LINUX', 'NON_COMPLIANT', 'READY'), 1],
      [summaryKey.osOverdueMachinesIn('WINDOWS', 'NON_COMPLIANT', 'READY'), 3],
    ]);
    expect(groupsFromCounts(counts, { osType: 'LINUX', overdue: true })).toEqual([{ compliance: 'NON_COMPLIANT', readiness: 'READY', n: 1 }]);
    expect(groupsFromCounts(counts, { osType: 'LINUX', overdue: false })).toEqual([{ compliance: 'NON_COMPLIANT', readiness: 'READY', n: 3 }]);
    // Every machine of the type overdue: no group of the others.
    expect(groupsFromCounts(counts, { osType: 'WINDOWS', overdue: false })).toEqual([]);
    expect(groupsFromCounts(counts, { overdue: false })).toEqual([{ compliance: 'NON_COMPLIANT', readiness: 'READY', n: 2 }]);
  });
});

describe("the computers page's count", () => {
  it('is read from maintained groups for the OS type, one tag and overdue, alone or together, and from the matches otherwise', () => {
    expect(countedGroups({})).toEqual({ of: 'SUMMARY' });
    expect(countedGroups({ osType: 'LINUX' })).toEqual({ of: 'SUMMARY', osType: 'LINUX' });
    expect(countedGroups({ overdue: false })).toEqual({ of: 'SUMMARY', overdue: false });
    expect(countedGroups({ tags: ['web', 'web'] })).toEqual({ of: 'TAG', tag: 'web' });
    expect(countedGroups({ tags: ['web'], osType: 'WINDOWS' })).toEqual({ of: 'TAG', tag: 'web', osType: 'WINDOWS' });
    expect(countedGroups({ tags: ['web'], overdue: true })).toEqual({ of: 'TAG', tag: 'web', overdue: true });
    expect(countedGroups({ tags: ['web'], osType: 'LINUX', overdue: false })).toEqual({ of: 'TAG', tag: 'web', osType: 'LINUX', overdue: false });
    expect(countedGroups({ osType: 'LINUX', overdue: true })).toEqual({ of: 'SUMMARY', osType: 'LINUX', overdue: true });
    // No count keeps these: several tags, a name.
    expect(countedGroups({ tags: ['web', 'prod'] })).toBeNull();
    expect(countedGroups({ nameContains: 'db' })).toBeNull();
    expect(countedGroups({ nameContains: 'db', overdue: true })).toBeNull();
  });

  it('reads a tag with a condition, or a part of a name with counted conditions, through those conditions first', () => {
    expect(fewFirst({ tags: ['web'], readiness: ['DISCONNECTED'] })).toEqual({ read: 'TAG_ROWS', tag: 'web', counted: { of: 'TAG', tag: 'web' } });
    expect(fewFirst({ tags: ['web', 'web'], osType: 'WINDOWS' })).toMatchObject({ read: 'TAG_ROWS', tag: 'web' });
    expect(fewFirst({ tags: ['web'], overdue: false, nameContains: 'db' })).toMatchObject({ read: 'TAG_ROWS', tag: 'web' });
    expect(fewFirst({ nameContains: 'db', compliance: ['COMPLIANT'], readiness: ['DISCONNECTED'] })).toEqual({ read: 'CONDITIONS', counted: { of: 'SUMMARY' } });
    expect(fewFirst({ nameContains: 'db', tags: ['web'] })).toEqual({ read: 'CONDITIONS', counted: { of: 'TAG', tag: 'web' } });
    // Read as they come: the tag alone (its rows in name order), a condition without a part or a tag (its own index), a part alone,
    // conditions no count covers (several tags), or asking for nothing (empty lists).
    expect(fewFirst({ tags: ['web'] })).toBeNull();
    expect(fewFirst({ compliance: ['NON_COMPLIANT'], osType: 'LINUX' })).toBeNull();
    expect(fewFirst({ nameContains: 'db' })).toBeNull();
    expect(fewFirst({ nameContains: 'db', compliance: [], tags: [] })).toBeNull();
    expect(fewFirst({ nameContains: 'db', tags: ['web', 'prod'], compliance: ['COMPLIANT'] })).toBeNull();
  });

  it("names the stored states a tag's machine must have to meet compliance and readiness, or none when nothing stored can decide", () => {
    expect(storedStatesMeeting({ compliance: ['NON_COMPLIANT'], readiness: ['READY', 'DISCONNECTED'] })).toEqual(['NON_COMPLIANT:READY', 'NON_COMPLIANT:DISCONNECTED']);
    expect(storedStatesMeeting({ readiness: ['NOT_CONFIGURED'] })).toEqual(['COMPLIANT:NOT_CONFIGURED', 'NON_COMPLIANT:NOT_CONFIGURED', 'NOT_ASSESSED:NOT_CONFIGURED']);
    // The OS type or overdue alone: every state, the rows' OS type and overdue deciding.
    expect(storedStatesMeeting({ osType: 'WINDOWS' })).toHaveLength(9);
    expect(storedStatesMeeting({ overdue: false })).toHaveLength(9);
    expect(storedStatesMeeting({})).toBeNull();
    expect(storedStatesMeeting({ compliance: [], readiness: [] })).toBeNull();
  });
});
