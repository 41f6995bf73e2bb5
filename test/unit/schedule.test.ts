import { describe, expect, it } from 'vitest';
import {
  EXPLICIT_MIN_OCCURRENCES,
  canonicalTimeZone,
  describeSchedule,
  isValidTimeZone,
  nextOccurrences,
  nthWeekdayOfMonth,
  scheduleAnchor,
  type DeploymentSchedule,
  type Recurrence,
} from '../../src/fleet/schedule.js';
import { toTemporalScheduleSpec } from '../../src/temporal/scheduleSpec.js';

/** Europe/Paris in 2027: summer time from Sunday 28 March (02:00 → 03:00) to Sunday 31 October (03:00 → 02:00). */
const PARIS = 'Europe/Paris';
const from = new Date('2026-11-25T12:00:00Z');

function schedule(startAt: string, recurrence: Recurrence, options: { timeZone?: string; endAt?: string } = {}): DeploymentSchedule {
  return { startAt: new Date(startAt), timeZone: options.timeZone ?? PARIS, recurrence, endAt: options.endAt ? new Date(options.endAt) : null };
}

const iso = (dates: Date[]) => dates.map((d) => d.toISOString());
const times = (...values: string[]) => values.map((v) => new Date(v).toISOString());

describe('time zones', () => {
  it('knows IANA zones by their canonical name, and nothing else', () => {
    expect(isValidTimeZone('Europe/Paris')).toBe(true);
    expect(isValidTimeZone('UTC')).toBe(true);
    expect(canonicalTimeZone('europe/paris')).toBe('Europe/Paris');
    expect(canonicalTimeZone('America/New_York')).toBe('America/New_York');
    expect(isValidTimeZone('Europe/Pariss')).toBe(false);
    expect(isValidTimeZone('Mars/Olympus_Mons')).toBe(false);
    expect(isValidTimeZone('+01:00')).toBe(false);
    expect(isValidTimeZone('')).toBe(false);
  });
});

describe('nthWeekdayOfMonth', () => {
  it('finds the 1st to 4th and the last weekday of a month', () => {
    expect(nthWeekdayOfMonth(2026, 12, 2, 'TUESDAY')).toBe(8);
    expect(nthWeekdayOfMonth(2027, 2, 1, 'MONDAY')).toBe(1);
    expect(nthWeekdayOfMonth(2027, 11, 4, 'THURSDAY')).toBe(25);
    expect(nthWeekdayOfMonth(2027, 1, -1, 'FRIDAY')).toBe(29);
    expect(nthWeekdayOfMonth(2027, 3, -1, 'SUNDAY')).toBe(28);
    expect(nthWeekdayOfMonth(2027, 10, -1, 'SUNDAY')).toBe(31);
  });
});

describe('nextOccurrences across DST changes (Europe/Paris)', () => {
  it('keeps 03:00 on the wall clock through the March and October changes', () => {
    const march = schedule('2027-03-26T03:00:00+01:00', { frequency: 'DAILY', every: 1 });
    expect(iso(nextOccurrences(march, from, 4))).toEqual(
      times('2027-03-26T02:00:00Z', '2027-03-27T02:00:00Z', '2027-03-28T01:00:00Z', '2027-03-29T01:00:00Z'),
    );
    const october = schedule('2027-10-29T03:00:00+02:00', { frequency: 'DAILY', every: 1 });
    expect(iso(nextOccurrences(october, from, 4))).toEqual(
      times('2027-10-29T01:00:00Z', '2027-10-30T01:00:00Z', '2027-10-31T02:00:00Z', '2027-11-01T02:00:00Z'),
    );
  });

  it('skips 02:30 on the March night that has none', () => {
    const s = schedule('2027-03-26T02:30:00+01:00', { frequency: 'DAILY', every: 1 });
    expect(iso(nextOccurrences(s, from, 4))).toEqual(
      times('2027-03-26T02:30:00+01:00', '2027-03-27T02:30:00+01:00', '2027-03-29T02:30:00+02:00', '2027-03-30T02:30:00+02:00'),
    );
  });

  it('runs 02:30 once on the October night that has two, at the second (as Temporal does)', () => {
    const s = schedule('2027-10-30T02:30:00+02:00', { frequency: 'DAILY', every: 1 });
    expect(iso(nextOccurrences(s, from, 3))).toEqual(times('2027-10-30T02:30:00+02:00', '2027-10-31T02:30:00+01:00', '2027-11-01T02:30:00+01:00'));
  });

  it('runs 01:30 once on the October night: the phantom run Temporal adds at 02:30 summer time is skipped', () => {
    const s = schedule('2027-10-30T01:30:00+02:00', { frequency: 'DAILY', every: 1 });
    expect(iso(nextOccurrences(s, from, 3))).toEqual(times('2027-10-30T01:30:00+02:00', '2027-10-31T01:30:00+02:00', '2027-11-01T01:30:00+01:00'));
    expect(toTemporalScheduleSpec(s).spec.skip).toEqual([expect.objectContaining({ hour: 2, minute: 30, second: 0 })]);
  });

  it('runs 01:30 at both 01:30s on the New York fall-back night, as Temporal does', () => {
    const s = schedule('2027-11-06T01:30:00-04:00', { frequency: 'DAILY', every: 1 }, { timeZone: 'America/New_York' });
    expect(iso(nextOccurrences(s, from, 3))).toEqual(times('2027-11-06T01:30:00-04:00', '2027-11-07T01:30:00-04:00', '2027-11-07T01:30:00-05:00'));
  });

  it('keeps weekly runs on the wall clock across the March change', () => {
    const s = schedule('2027-03-20T03:00:00+01:00', { frequency: 'WEEKLY', every: 1, weekDays: ['THURSDAY', 'MONDAY'] });
    expect(iso(nextOccurrences(s, from, 4))).toEqual(
      times('2027-03-22T03:00:00+01:00', '2027-03-25T03:00:00+01:00', '2027-03-29T03:00:00+02:00', '2027-04-01T03:00:00+02:00'),
    );
  });

  it('counts HOURLY in elapsed hours: the spacing holds, the wall-clock hour moves', () => {
    const s = schedule('2027-03-27T22:15:00+01:00', { frequency: 'HOURLY', every: 2 });
    expect(iso(nextOccurrences(s, from, 4))).toEqual(
      times('2027-03-27T22:15:00+01:00', '2027-03-28T00:15:00+01:00', '2027-03-28T03:15:00+02:00', '2027-03-28T05:15:00+02:00'),
    );
  });
});

describe('nextOccurrences: monthly on the nth weekday with an offset', () => {
  it('runs 2 days after Patch Tuesday', () => {
    const s = schedule('2027-01-01T03:00:00+01:00', { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: 2, weekDay: 'TUESDAY' }, offsetDays: 2 });
    expect(iso(nextOccurrences(s, from, 5))).toEqual(
      times('2027-01-14T03:00:00+01:00', '2027-02-11T03:00:00+01:00', '2027-03-11T03:00:00+01:00', '2027-04-15T03:00:00+02:00', '2027-05-13T03:00:00+02:00'),
    );
    expect(describeSchedule(s)).toBe('Every 2nd Tuesday of the month + 2 days at 03:00 Europe/Paris');
  });

  it('crosses into the next month: 3 days after the last Friday', () => {
    const s = schedule('2027-01-01T22:00:00+01:00', { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: -1, weekDay: 'FRIDAY' }, offsetDays: 3 });
    // Last Fridays: Jan 29, Feb 26, Mar 26, Apr 30, May 28.
    expect(iso(nextOccurrences(s, from, 5))).toEqual(
      times('2027-02-01T22:00:00+01:00', '2027-03-01T22:00:00+01:00', '2027-03-29T22:00:00+02:00', '2027-05-03T22:00:00+02:00', '2027-05-31T22:00:00+02:00'),
    );
    expect(describeSchedule(s)).toBe('Every last Friday of the month + 3 days at 22:00 Europe/Paris');
  });

  it('crosses into the previous month: 6 days before the 1st Monday', () => {
    const s = schedule('2027-01-05T03:00:00+01:00', { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: 1, weekDay: 'MONDAY' }, offsetDays: -6 });
    // 1st Mondays: Jan 4 (its run, Dec 29, is before the start), Feb 1, Mar 1, Apr 5, May 3.
    expect(iso(nextOccurrences(s, from, 4))).toEqual(
      times('2027-01-26T03:00:00+01:00', '2027-02-23T03:00:00+01:00', '2027-03-30T03:00:00+02:00', '2027-04-27T03:00:00+02:00'),
    );
  });

  it('runs on the last weekday every 2 months, from the first run after the start', () => {
    const s = schedule('2027-02-10T03:00:00+01:00', { frequency: 'MONTHLY', every: 2, nthWeekday: { ordinal: -1, weekDay: 'SUNDAY' }, offsetDays: 0 });
    expect(iso(nextOccurrences(s, from, 3))).toEqual(times('2027-02-28T03:00:00+01:00', '2027-04-25T03:00:00+02:00', '2027-06-27T03:00:00+02:00'));
    expect(describeSchedule(s)).toBe('Every 2 months on the last Sunday at 03:00 Europe/Paris, starting 2027-02-10');
  });
});

describe('nextOccurrences: other recurrences', () => {
  it('runs on the last day of each month, 29 February in a leap year', () => {
    const s = schedule('2028-01-10T23:00:00+01:00', { frequency: 'MONTHLY', every: 1, monthDay: -1 });
    expect(iso(nextOccurrences(s, from, 4))).toEqual(
      times('2028-01-31T23:00:00+01:00', '2028-02-29T23:00:00+01:00', '2028-03-31T23:00:00+02:00', '2028-04-30T23:00:00+02:00'),
    );
  });

  it('runs every 3 months on a day from the first month after the start', () => {
    const s = schedule('2027-02-20T04:10:00+01:00', { frequency: 'MONTHLY', every: 3, monthDay: 15 });
    expect(iso(nextOccurrences(s, from, 3))).toEqual(times('2027-03-15T04:10:00+01:00', '2027-06-15T04:10:00+02:00', '2027-09-15T04:10:00+02:00'));
    expect(toTemporalScheduleSpec(s).spec.calendars).toEqual([
      expect.objectContaining({ dayOfMonth: [15], month: ['MARCH', 'JUNE', 'SEPTEMBER', 'DECEMBER'], hour: 4, minute: 10 }),
    ]);
  });

  it('runs every 5 months from explicit dates', () => {
    const s = schedule('2027-01-10T03:00:00+01:00', { frequency: 'MONTHLY', every: 5, monthDay: 10 });
    expect(iso(nextOccurrences(s, from, 3))).toEqual(times('2027-01-10T03:00:00+01:00', '2027-06-10T03:00:00+02:00', '2027-11-10T03:00:00+01:00'));
  });

  it('runs every 2 days across month ends', () => {
    const s = schedule('2027-01-29T03:00:00+01:00', { frequency: 'DAILY', every: 2 });
    expect(iso(nextOccurrences(s, from, 4))).toEqual(
      times('2027-01-29T03:00:00+01:00', '2027-01-31T03:00:00+01:00', '2027-02-02T03:00:00+01:00', '2027-02-04T03:00:00+01:00'),
    );
  });

  it('runs every 2 weeks from the week of the first run', () => {
    // Wednesday 3 February: Thursday 4, then Monday 15 and Thursday 18.
    const s = schedule('2027-02-03T03:00:00+01:00', { frequency: 'WEEKLY', every: 2, weekDays: ['MONDAY', 'THURSDAY'] });
    expect(iso(nextOccurrences(s, from, 4))).toEqual(
      times('2027-02-04T03:00:00+01:00', '2027-02-15T03:00:00+01:00', '2027-02-18T03:00:00+01:00', '2027-03-01T03:00:00+01:00'),
    );
  });

  it('stops at endAt, which is inclusive', () => {
    const s = schedule('2027-02-01T03:00:00+01:00', { frequency: 'DAILY', every: 1 }, { endAt: '2027-02-03T03:00:00+01:00' });
    expect(iso(nextOccurrences(s, from, 10))).toEqual(times('2027-02-01T03:00:00+01:00', '2027-02-02T03:00:00+01:00', '2027-02-03T03:00:00+01:00'));
    const nth = schedule(
      '2027-01-01T03:00:00+01:00',
      { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: 2, weekDay: 'TUESDAY' }, offsetDays: 2 },
      { endAt: '2027-03-01T00:00:00+01:00' },
    );
    expect(iso(nextOccurrences(nth, from, 10))).toEqual(times('2027-01-14T03:00:00+01:00', '2027-02-11T03:00:00+01:00'));
    expect(toTemporalScheduleSpec(nth).refreshBefore).toBeNull();
  });

  it('counts from `from`, strictly after it', () => {
    const s = schedule('2027-02-01T03:00:00+01:00', { frequency: 'DAILY', every: 1 });
    expect(iso(nextOccurrences(s, new Date('2027-02-01T03:00:00+01:00'), 1))).toEqual(times('2027-02-02T03:00:00+01:00'));
    expect(iso(nextOccurrences(s, new Date('2027-06-10T12:00:00Z'), 1))).toEqual(times('2027-06-11T03:00:00+02:00'));
  });

  it('runs ONCE at the start, rounded up to the minute, and never again', () => {
    const s = schedule('2027-02-01T03:00:20+01:00', { frequency: 'ONCE' });
    expect(iso(nextOccurrences(s, from, 5))).toEqual(times('2027-02-01T03:01:00+01:00'));
    expect(nextOccurrences(s, new Date('2027-02-01T03:01:00+01:00'), 5)).toEqual([]);
    expect(scheduleAnchor(new Date('2027-02-01T03:00:00.000+01:00')).toISOString()).toBe('2027-02-01T02:00:00.000Z');
    const timing = toTemporalScheduleSpec(s);
    expect(timing.remainingActions).toBe(1);
    expect(timing.spec.startAt).toEqual(new Date('2027-02-01T03:01:00+01:00'));
    expect(timing.spec.endAt).toEqual(new Date('2027-02-01T03:01:00+01:00'));
    expect(timing.spec.calendars).toBeUndefined();
    expect(describeSchedule(s)).toBe('Once on 2027-02-01 at 03:01 Europe/Paris');
  });
});

describe('toTemporalScheduleSpec', () => {
  it('writes a weekly schedule as one wall-clock calendar in the time zone', () => {
    const s = schedule('2027-03-20T03:00:00+01:00', { frequency: 'WEEKLY', every: 1, weekDays: ['THURSDAY', 'MONDAY'] }, { endAt: '2027-12-31T00:00:00+01:00' });
    const timing = toTemporalScheduleSpec(s);
    expect(timing.spec).toEqual({
      calendars: [
        {
          dayOfWeek: ['MONDAY', 'THURSDAY'],
          hour: 3,
          minute: 0,
          second: 0,
          comment: 'Every week on Monday and Thursday at 03:00 Europe/Paris, until 2027-12-31 00:00',
        },
      ],
      skip: [expect.objectContaining({ hour: 4, minute: 0, second: 0 })],
      startAt: new Date('2027-03-20T03:00:00+01:00'),
      endAt: new Date('2027-12-31T00:00:00+01:00'),
      timezone: PARIS,
    });
    expect(timing.remainingActions).toBeUndefined();
    expect(timing.refreshBefore).toBeNull();
  });

  it('writes an hourly schedule as an interval whose phase lands on the start', () => {
    const s = schedule('2027-03-27T22:15:00+01:00', { frequency: 'HOURLY', every: 5 });
    const { spec } = toTemporalScheduleSpec(s);
    const every = 5 * 3_600_000;
    expect(spec.intervals).toEqual([{ every, offset: s.startAt.getTime() % every }]);
    expect(spec.skip).toBeUndefined();
  });

  it('writes nth-weekday schedules as explicit dates, one entry per month, and says when to refresh them', () => {
    const s = schedule('2027-01-01T03:00:00+01:00', { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: 2, weekDay: 'TUESDAY' }, offsetDays: 2 });
    const timing = toTemporalScheduleSpec(s);
    const calendars = timing.spec.calendars!;
    expect(calendars.length).toBeGreaterThanOrEqual(EXPLICIT_MIN_OCCURRENCES);
    expect(calendars[0]).toMatchObject({ year: [2027], month: ['JANUARY'], dayOfMonth: [14], hour: 3, minute: 0 });
    expect(calendars[3]).toMatchObject({ year: [2027], month: ['APRIL'], dayOfMonth: [15] });
    const last = calendars[calendars.length - 1]!;
    expect(timing.refreshBefore).not.toBeNull();
    expect(timing.refreshBefore!.getUTCFullYear()).toBe((last.year as number[])[0]);
    // Rewriting it later moves the horizon on, with the same cadence.
    const later = toTemporalScheduleSpec(s, { from: new Date('2031-06-01T00:00:00Z') });
    expect(later.spec.calendars![0]).toMatchObject({ year: [2031], month: ['JUNE'], dayOfMonth: [12] });
    expect(later.refreshBefore!.getTime()).toBeGreaterThan(timing.refreshBefore!.getTime());
    expect(iso(nextOccurrences(s, new Date('2031-06-01T00:00:00Z'), 1))).toEqual(times('2031-06-12T03:00:00+02:00'));
  });

  it('groups every-N-days runs by month', () => {
    const s = schedule('2027-01-29T03:00:00+01:00', { frequency: 'DAILY', every: 10 });
    const calendars = toTemporalScheduleSpec(s).spec.calendars!;
    expect(calendars[0]).toMatchObject({ year: [2027], month: ['JANUARY'], dayOfMonth: [29] });
    expect(calendars[1]).toMatchObject({ year: [2027], month: ['FEBRUARY'], dayOfMonth: [8, 18, 28] });
  });
});

describe('describeSchedule', () => {
  it('says each recurrence in a sentence', () => {
    expect(describeSchedule(schedule('2027-02-01T03:00:00+01:00', { frequency: 'DAILY', every: 1 }))).toBe('Every day at 03:00 Europe/Paris');
    expect(describeSchedule(schedule('2027-02-01T03:00:00+01:00', { frequency: 'DAILY', every: 3 }))).toBe('Every 3 days at 03:00 Europe/Paris, starting 2027-02-01');
    expect(describeSchedule(schedule('2027-02-01T03:05:00+01:00', { frequency: 'HOURLY', every: 1 }))).toBe('Every hour from 2027-02-01 03:05 Europe/Paris');
    expect(describeSchedule(schedule('2027-02-01T03:00:00+01:00', { frequency: 'MONTHLY', every: 1, monthDay: -1 }))).toBe('Every month on the last day at 03:00 Europe/Paris');
    expect(describeSchedule(schedule('2027-02-01T03:00:00+01:00', { frequency: 'MONTHLY', every: 1, monthDay: 15 }))).toBe('Every month on day 15 at 03:00 Europe/Paris');
    expect(
      describeSchedule(schedule('2027-02-01T03:00:00+01:00', { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: 3, weekDay: 'WEDNESDAY' }, offsetDays: -1 })),
    ).toBe('Every 3rd Wednesday of the month - 1 day at 03:00 Europe/Paris');
    expect(describeSchedule(schedule('2027-02-01T09:30:00-05:00', { frequency: 'WEEKLY', every: 2, weekDays: ['FRIDAY', 'MONDAY', 'WEDNESDAY'] }, { timeZone: 'America/New_York' }))).toBe(
      'Every 2 weeks on Monday, Wednesday and Friday at 09:30 America/New_York, starting 2027-02-01',
    );
  });
});
