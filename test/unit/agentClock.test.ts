import { describe, expect, it } from 'vitest';
import { assessedAtOnServerClock, clockIsSkewed, clockOffsetSeconds, clockWarning, parseDateHeader, type ReportClock } from '../../src/fleet/agentClock.js';

const T = Date.parse('2026-11-25T12:00:00Z');
const H = 3600_000;

describe("a report's place on the server's clock", () => {
  const cases: Array<[string, ReportClock, number]> = [
    ['sent at once by an agent on time: its arrival', { finishedAtMs: T - 200, agentSentAtMs: T - 100, receivedAtMs: T }, T - 100],
    ['sent at once by an agent 74 years ahead: its arrival, not 2100', { finishedAtMs: T + 74 * 8766 * H, agentSentAtMs: T + 74 * 8766 * H + 50, receivedAtMs: T }, T - 50],
    ['sent at once by an agent 5 hours behind: its arrival, not 5 hours ago', { finishedAtMs: T - 5 * H, agentSentAtMs: T - 5 * H, receivedAtMs: T }, T],
    ['from the spool of an agent a day ahead, finished 4 hours before sending: 4 hours old', { finishedAtMs: T + 20 * H, agentSentAtMs: T + 24 * H, receivedAtMs: T }, T - 4 * H],
    ['finished "after" it was sent (the clock went back in between): no age, its arrival', { finishedAtMs: T + 10 * H, agentSentAtMs: T, receivedAtMs: T }, T],
    ['without a Date header (an older agent): its finishedAt', { finishedAtMs: T - 2 * H, agentSentAtMs: null, receivedAtMs: T }, T - 2 * H],
    ['without a Date header, finished in the future: never later than its arrival', { finishedAtMs: T + 74 * 8766 * H, agentSentAtMs: null, receivedAtMs: T }, T],
  ];
  it.each(cases)('%s', (_what, clock, expected) => {
    expect(assessedAtOnServerClock(clock)).toBe(expected);
  });
});

describe("the agent's clock against the server's", () => {
  it('is the Date header less the arrival; without one, only a time ahead of the server says anything', () => {
    expect(clockOffsetSeconds(T + 90_000, T)).toBe(90);
    expect(clockOffsetSeconds(T - 5 * H, T, T - 5 * H)).toBe(-18_000);
    expect(clockOffsetSeconds(null, T, T + 3 * H)).toBe(10_800);
    expect(clockOffsetSeconds(null, T, T - 3 * H)).toBeNull();
    expect(clockOffsetSeconds(null, T)).toBeNull();
  });

  it('reads an HTTP Date header, and nothing else', () => {
    expect(parseDateHeader('Wed, 25 Nov 2026 12:00:00 GMT')).toBe(T);
    expect(parseDateHeader(undefined)).toBeNull();
    expect(parseDateHeader('')).toBeNull();
    expect(parseDateHeader('yesterday')).toBeNull();
  });

  it('warns from two minutes either way, saying about how far and which way in the largest unit', () => {
    expect([clockIsSkewed(null), clockIsSkewed(119.9), clockIsSkewed(-119.9), clockIsSkewed(120), clockIsSkewed(-120)]).toEqual([false, false, false, true, true]);
    expect(clockWarning(null)).toBeNull();
    expect(clockWarning(3)).toBeNull();
    expect(clockWarning(74 * 365.25 * 86_400 + 10)).toMatch(/^The machine's clock is about 74 years ahead of the server's: .*maintenance windows run off by as much\..*time synchronisation/);
    expect(clockWarning(-5 * 3600 + 0.2)).toMatch(/^The machine's clock is about 5 hours behind the server's/);
    expect(clockWarning(-130)).toMatch(/^The machine's clock is about 2 minutes behind/);
    expect(clockWarning(86_400)).toMatch(/about 1 day ahead/);
  });
});
