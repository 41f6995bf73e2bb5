import { describe, expect, it } from 'vitest';
import { compliance, DEFAULT_THRESHOLDS, defaultDisconnectedAfterMs, lastSeenRefreshMs, readiness, type FleetThresholds } from '../../src/fleet/compliance.js';

const now = new Date('2026-11-25T12:00:00Z');
const ago = (ms: number) => new Date(now.getTime() - ms);
const HOUR = 3600_000;

describe('compliance', () => {
  it('is NON_COMPLIANT with at least one critical or security update missing, COMPLIANT with none', () => {
    expect(compliance({ osType: 'LINUX', lastAssessedAt: ago(HOUR), criticalCount: 0, securityCount: 1 }, now)).toBe('NON_COMPLIANT');
    expect(compliance({ osType: 'LINUX', lastAssessedAt: ago(HOUR), criticalCount: 2, securityCount: 0 }, now)).toBe('NON_COMPLIANT');
    expect(compliance({ osType: 'LINUX', lastAssessedAt: ago(HOUR), criticalCount: 0, securityCount: 0 }, now)).toBe('COMPLIANT');
  });

  it('is NOT_ASSESSED without an assessment in the last 3 hours on Linux and 12 on Windows', () => {
    expect(compliance({ osType: 'LINUX', lastAssessedAt: null, criticalCount: 0, securityCount: 0 }, now)).toBe('NOT_ASSESSED');
    expect(compliance({ osType: 'LINUX', lastAssessedAt: ago(3 * HOUR - 1), criticalCount: 0, securityCount: 0 }, now)).toBe('COMPLIANT');
    expect(compliance({ osType: 'LINUX', lastAssessedAt: ago(3 * HOUR + 1), criticalCount: 0, securityCount: 0 }, now)).toBe('NOT_ASSESSED');
    expect(compliance({ osType: 'WINDOWS', lastAssessedAt: ago(11 * HOUR), criticalCount: 1, securityCount: 0 }, now)).toBe('NON_COMPLIANT');
    expect(compliance({ osType: 'WINDOWS', lastAssessedAt: ago(12 * HOUR + 1), criticalCount: 1, securityCount: 0 }, now)).toBe('NOT_ASSESSED');
  });

  it('follows configured thresholds', () => {
    const thresholds = { ...DEFAULT_THRESHOLDS, assessmentMaxAgeMs: { LINUX: 60_000, WINDOWS: 60_000 } };
    expect(compliance({ osType: 'LINUX', lastAssessedAt: ago(61_000), criticalCount: 0, securityCount: 0 }, now, thresholds)).toBe('NOT_ASSESSED');
  });
});

describe('update agent readiness', () => {
  it('is READY while the stored last-seen time is at most 270 s old (the default), DISCONNECTED since it after that', () => {
    expect(readiness({ managementEnabled: true, lastSeenAt: ago(60_000) }, now).state).toBe('READY');
    expect(readiness({ managementEnabled: true, lastSeenAt: ago(270_000) }, now).state).toBe('READY');
    const lost = readiness({ managementEnabled: true, lastSeenAt: ago(271_000) }, now);
    expect(lost).toMatchObject({ state: 'DISCONNECTED', since: ago(271_000) });
    expect(lost.reason).toContain(ago(271_000).toISOString());
  });

  it('is NOT_CONFIGURED for a machine that never checked in or whose management is disabled', () => {
    expect(readiness({ managementEnabled: true, lastSeenAt: null }, now).state).toBe('NOT_CONFIGURED');
    expect(readiness({ managementEnabled: false, lastSeenAt: ago(1000) }, now)).toMatchObject({ state: 'NOT_CONFIGURED', reason: 'Update management is disabled for this machine.' });
  });
});

describe('how stale a stored last-seen time may get before a check-in writes it again', () => {
  it('is one and a half check-in intervals, less when the DISCONNECTED threshold leaves less after three intervals', () => {
    expect(defaultDisconnectedAfterMs(60)).toBe(270_000);
    expect(DEFAULT_THRESHOLDS.disconnectedAfterMs).toBe(270_000);
    expect(lastSeenRefreshMs(60, DEFAULT_THRESHOLDS)).toBe(90_000);
    expect(lastSeenRefreshMs(1, { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: defaultDisconnectedAfterMs(1) })).toBe(1_500);
    expect(lastSeenRefreshMs(60, { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: 240_000 })).toBe(60_000);
    // A threshold of three intervals or less: every check-in writes.
    expect(lastSeenRefreshMs(60, { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: 180_000 })).toBe(0);
    expect(lastSeenRefreshMs(60, { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: 120_000 })).toBe(0);
  });
});

/**
 * An agent's check-ins as CHECK_IN_SQL stores them (the row is written when the stored time is
 * older than the refresh time), and its readiness at every second from its first check-in to
 * `until`: the states seen, and when it first was DISCONNECTED.
 */
function watch(checkIns: number[], checkInSeconds: number, thresholds: FleetThresholds, until: number) {
  const refresh = lastSeenRefreshMs(checkInSeconds, thresholds);
  const T0 = Date.parse('2026-12-03T04:00:00Z');
  let stored: number | null = null;
  let next = 0;
  let writes = 0;
  let disconnectedAt: number | null = null;
  for (let t = checkIns[0]!; t <= until; t += 100) {
    while (next < checkIns.length && checkIns[next]! <= t) {
      if (stored === null || stored < T0 + checkIns[next]! - refresh) {
        stored = T0 + checkIns[next]!;
        writes++;
      }
      next++;
    }
    const state = readiness({ managementEnabled: true, lastSeenAt: new Date(stored!) }, new Date(T0 + t), thresholds).state;
    if (state === 'DISCONNECTED' && disconnectedAt === null) disconnectedAt = t;
    if (state === 'READY') disconnectedAt = null;
  }
  return { writes, disconnectedAt };
}

/** Check-ins every `interval` ms (plus the answer's latency), from 0 to `end`. */
function every(interval: number, end: number): number[] {
  const times: number[] = [];
  for (let t = 0; t <= end; t += interval) times.push(t);
  return times;
}

describe('DISCONNECTED against the stored last-seen time, which trails the last check-in', () => {
  const settings: Array<[number, FleetThresholds]> = [
    [60, DEFAULT_THRESHOLDS],
    [1, { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: defaultDisconnectedAfterMs(1) }],
    [300, { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: defaultDisconnectedAfterMs(300) }],
    [60, { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: 240_000 }],
    [60, { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: 180_000 }],
    [60, { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: 900_000 }],
  ];

  it('never shows an agent DISCONNECTED while its check-ins come at most three intervals apart, however they fall', () => {
    for (const [checkInSeconds, thresholds] of settings) {
      const I = checkInSeconds * 1000;
      const label = `${checkInSeconds} s, ${thresholds.disconnectedAfterMs} ms`;
      // On time (with 50 ms of latency), each gap of one to three intervals after a check-in that
      // wrote and after one that did not, and the worst: a check-in just short of the refresh time, then the longest gap.
      const onTime = every(I + 50, 20 * I);
      expect(watch(onTime, checkInSeconds, thresholds, 20 * I).disconnectedAt, label).toBeNull();
      for (const gap of [I * 1.5, I * 2, I * 2.5, I * 3]) {
        for (const first of [0, I + 50, I * 1.5 - 100]) {
          const late = [0, first, first + gap, first + gap + I];
          expect(watch([...new Set(late)], checkInSeconds, thresholds, first + gap + I).disconnectedAt, `${label}: ${first} then ${gap}`).toBeNull();
        }
      }
    }
  });

  it('shows a silent agent DISCONNECTED at the latest the threshold after its last check-in', () => {
    for (const [checkInSeconds, thresholds] of settings) {
      const I = checkInSeconds * 1000;
      const checkIns = every(I + 50, 10 * I);
      const last = checkIns.at(-1)!;
      const { disconnectedAt } = watch(checkIns, checkInSeconds, thresholds, last + thresholds.disconnectedAfterMs + 200);
      expect(disconnectedAt, `${checkInSeconds} s, ${thresholds.disconnectedAfterMs} ms`).not.toBeNull();
      expect(disconnectedAt! - last).toBeGreaterThan(Math.min(3 * I, thresholds.disconnectedAfterMs));
      expect(disconnectedAt! - last).toBeLessThanOrEqual(thresholds.disconnectedAfterMs + 100);
    }
  });

  it('writes the row at every other check-in of an idle agent at the default threshold', () => {
    const checkIns = every(60_050, 600 * 60_000);
    expect(watch(checkIns, 60, DEFAULT_THRESHOLDS, checkIns.at(-1)!).writes).toBe(Math.ceil(checkIns.length / 2));
  });
});
