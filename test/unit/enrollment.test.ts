import { describe, expect, it } from 'vitest';
import { DEFAULT_KEY_MAX_USES, enrollmentKeyLimits, retriedEnrollmentRefusal } from '../../src/fleet/enrollment.js';
import { hostnameProblem } from '../../src/fleet/machineNames.js';

const now = new Date('2026-03-01T12:00:00Z');
const later = new Date('2026-03-05T00:00:00Z');

describe('enrollment key limits', () => {
  it.each([
    ['nothing said: expires in a day, ten machines', {}, { expiresAt: new Date('2026-03-02T12:00:00Z'), maxUses: DEFAULT_KEY_MAX_USES }],
    ['nulls are the same as nothing said', { expiresAt: null, maxUses: null }, { expiresAt: new Date('2026-03-02T12:00:00Z'), maxUses: 10 }],
    ['what the admin gave', { expiresAt: later, maxUses: 500 }, { expiresAt: later, maxUses: 500 }],
    ['explicitly unbounded', { neverExpires: true, unlimitedUses: true }, { expiresAt: null, maxUses: null }],
    ['false flags change nothing', { neverExpires: false, unlimitedUses: false, maxUses: 3 }, { expiresAt: new Date('2026-03-02T12:00:00Z'), maxUses: 3 }],
  ])('%s', (_, input, expected) => {
    expect(enrollmentKeyLimits(input, now)).toEqual(expected);
  });

  it.each([
    [{ expiresAt: new Date('2026-03-01T11:00:00Z') }, 'expiresAt', 'expiresAt must be in the future; got 2026-03-01T11:00:00.000Z.'],
    [{ expiresAt: later, neverExpires: true }, 'expiresAt', 'Give expiresAt or neverExpires: true, not both.'],
    [{ maxUses: 5, unlimitedUses: true }, 'maxUses', 'Give maxUses or unlimitedUses: true, not both.'],
    [{ maxUses: 0 }, 'maxUses', 'maxUses must be between 1 and 1,000,000 (or unlimitedUses: true for no limit); got 0.'],
    [{ maxUses: 1_000_001 }, 'maxUses', 'maxUses must be between 1 and 1,000,000 (or unlimitedUses: true for no limit); got 1000001.'],
  ])('refuses %j on its field', (input, field, problem) => {
    expect(enrollmentKeyLimits(input, now)).toEqual({ field, problem });
  });
});

describe('an enrollment request sent again', () => {
  const enrolledAt = new Date('2026-03-01T12:00:00Z');
  const minutesLater = (m: number) => new Date(enrolledAt.getTime() + m * 60_000);
  const fresh = { enrolledAt, removedAt: null, latestAssessmentId: null, lastSeenAt: enrolledAt };

  it('is answered again while its machine has not reported, up to 15 minutes after the enrollment', () => {
    expect(retriedEnrollmentRefusal(fresh, minutesLater(0))).toBeNull();
    expect(retriedEnrollmentRefusal(fresh, minutesLater(15))).toBeNull();
  });

  it('is spent past 15 minutes, once the machine has reported, or once it was removed', () => {
    expect(retriedEnrollmentRefusal(fresh, new Date(minutesLater(15).getTime() + 1))).toBe(
      'This enrollment request already enrolled a machine on 2026-03-01T12:00:00.000Z, more than 15 minutes ago. Enroll it again from the start (the agent with an empty state directory) if its credential was lost.',
    );
    expect(retriedEnrollmentRefusal({ ...fresh, latestAssessmentId: 'a1' }, minutesLater(1))).toContain('which has reported since');
    expect(retriedEnrollmentRefusal({ ...fresh, removedAt: minutesLater(2), latestAssessmentId: 'a1' }, minutesLater(3))).toContain('removed from the fleet on 2026-03-01T12:02:00.000Z');
  });

  it('is refused for a copy that arrived before the one answered last: its agent holds that answer', () => {
    const answeredAgain = { ...fresh, lastSeenAt: minutesLater(2) };
    expect(retriedEnrollmentRefusal(answeredAgain, minutesLater(1))).toBe(
      'This enrollment request was answered at 2026-03-01T12:02:00.000Z for a copy of it sent later than this one (which arrived at 2026-03-01T12:01:00.000Z): the agent holds that answer\'s credential.',
    );
    // The same moment, or later: the copy the agent waits for.
    expect(retriedEnrollmentRefusal(answeredAgain, minutesLater(2))).toBeNull();
    expect(retriedEnrollmentRefusal(answeredAgain, minutesLater(3))).toBeNull();
  });
});

describe('hostnames', () => {
  it.each(['web-01', 'WEB-01.example.com', 'db_02', 'сервер-1', 'xn--80aswg.example', 'café-7'])('accepts %s', (name) => {
    expect(hostnameProblem(name)).toBeNull();
  });

  it.each([
    ['web\u202e10-bew', 'U+202E (RIGHT-TO-LEFT OVERRIDE) at character 4'],
    ['\u202dweb', 'U+202D (LEFT-TO-RIGHT OVERRIDE) at character 1'],
    ['web\u2067x', 'U+2067 (RIGHT-TO-LEFT ISOLATE) at character 4'],
    ['web\u200f', 'U+200F (RIGHT-TO-LEFT MARK) at character 4'],
    ['w\u200beb-01', 'U+200B (ZERO WIDTH SPACE) at character 2'],
    ['web-01\n', 'U+000A (LINE FEED) at character 7'],
    ['web\u001b[31m', 'U+001B (ESCAPE) at character 4'],
    ['web\u0085', 'U+0085 at character 4'],
    ['🖥\u202eweb', 'U+202E (RIGHT-TO-LEFT OVERRIDE) at character 2'],
  ])('refuses %j, naming the character and where it is', (name, said) => {
    expect(hostnameProblem(name)).toContain(said);
  });

  it('says which kind of character it is', () => {
    expect(hostnameProblem('a\tb')).toMatch(/a control character/);
    expect(hostnameProblem('a\u202eb')).toMatch(/an invisible formatting character \(bidirectional control or zero-width\)/);
    expect(hostnameProblem('   ')).toBe('the hostname is empty.');
  });
});
