import { describe, expect, it } from 'vitest';
import { learnDuration, measuredSeconds } from '../../src/fleet/durations.js';

describe('what an update tells of its install time', () => {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
  it.each([
    ['a success with both times', { status: 'SUCCEEDED', startedAt: at(0), endedAt: at(42) }, 42],
    ['a success whose clock went back', { status: 'SUCCEEDED', startedAt: at(30), endedAt: at(10) }, 0],
    ['a failure', { status: 'FAILED', startedAt: at(0), endedAt: at(42) }, null],
    ['a success without its start', { status: 'SUCCEEDED', startedAt: null, endedAt: at(42) }, null],
    ['an update never attempted', { status: 'NOT_ATTEMPTED', startedAt: null, endedAt: null }, null],
  ])('%s: %s', (_what, update, expected) => {
    expect(measuredSeconds(update)).toBe(expected);
  });
});

describe('learning a package\'s install time', () => {
  it.each([
    ['the first measurement is taken as it is', undefined, 40, { averageSeconds: 40, samples: 1 }],
    ['a row with no samples yet is no measurement', { averageSeconds: 0, samples: 0 }, 40, { averageSeconds: 40, samples: 1 }],
    ['the newest counts 30 %', { averageSeconds: 100, samples: 3 }, 200, { averageSeconds: 130, samples: 4 }],
    ['one fast install does not rule', { averageSeconds: 100, samples: 9 }, 0, { averageSeconds: 70, samples: 10 }],
  ])('%s', (_what, previous, seconds, expected) => {
    const learned = learnDuration(previous, seconds);
    expect(learned.samples).toBe(expected.samples);
    expect(learned.averageSeconds).toBeCloseTo(expected.averageSeconds, 9);
  });

  it('folds measurements in the order they came', () => {
    const learned = [10, 20, 30].reduce<ReturnType<typeof learnDuration> | undefined>((previous, s) => learnDuration(previous, s), undefined);
    expect(learned).toEqual({ averageSeconds: (10 * 0.7 + 20 * 0.3) * 0.7 + 30 * 0.3, samples: 3 });
  });
});
