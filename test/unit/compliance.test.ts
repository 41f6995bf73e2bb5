import { describe, expect, it } from 'vitest';
import { compliance, DEFAULT_THRESHOLDS, lastSeenRefreshMs, readiness } from '../../src/fleet/compliance.js';

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
  it('is READY while the agent checks in, DISCONNECTED since its last check-in after 3 minutes of silence', () => {
    expect(readiness({ managementEnabled: true, lastSeenAt: ago(60_000) }, now).state).toBe('READY');
    const lost = readiness({ managementEnabled: true, lastSeenAt: ago(181_000) }, now);
    expect(lost).toMatchObject({ state: 'DISCONNECTED', since: ago(181_000) });
    expect(lost.reason).toContain(ago(181_000).toISOString());
  });

  it('is NOT_CONFIGURED for a machine that never checked in or whose management is disabled', () => {
    expect(readiness({ managementEnabled: true, lastSeenAt: null }, now).state).toBe('NOT_CONFIGURED');
    expect(readiness({ managementEnabled: false, lastSeenAt: ago(1000) }, now)).toMatchObject({ state: 'NOT_CONFIGURED', reason: 'Update management is disabled for this machine.' });
  });
});

describe('how stale a stored last-seen time may get before a check-in writes it again', () => {
  it('is one and a half check-in intervals, at most half the DISCONNECTED threshold', () => {
    expect(lastSeenRefreshMs(60, DEFAULT_THRESHOLDS)).toBe(90_000);
    expect(lastSeenRefreshMs(1, DEFAULT_THRESHOLDS)).toBe(1_500);
    expect(lastSeenRefreshMs(60, { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: 120_000 })).toBe(60_000);
  });

  it('keeps an agent that checks in on time READY, with a late check-in to spare', () => {
    for (const [checkInSeconds, disconnectedAfterMs] of [[60, 180_000], [1, 120_000], [60, 120_000], [300, 900_000]] as const) {
      const thresholds = { ...DEFAULT_THRESHOLDS, disconnectedAfterMs };
      // Just before a check-in finds the stored time older than the refresh time, it is at most an interval more.
      const oldest = lastSeenRefreshMs(checkInSeconds, thresholds) + checkInSeconds * 1000;
      const now = new Date('2026-12-03T04:00:00Z');
      expect(readiness({ managementEnabled: true, lastSeenAt: new Date(now.getTime() - oldest) }, now, thresholds).state, `${checkInSeconds} s, ${disconnectedAfterMs} ms`).toBe('READY');
    }
  });
});

