import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextOccurrences, type DeploymentSchedule } from '../../src/fleet/schedule.js';
import { toTemporalScheduleSpec } from '../../src/temporal/scheduleSpec.js';
import { connectTemporal, type TemporalClient } from '../../src/temporal/connection.js';
import { temporalSettings } from '../support/env.js';

/**
 * Our schedules on the real Temporal dev server: what Temporal says it will fire
 * (`describe().info.nextActionTimes`) is what `nextOccurrences` says, DST changes included. No
 * worker runs: every time is in the future, so nothing starts.
 */

const settings = temporalSettings();
/** Next year: every date below is in the future whenever the suite runs. */
const Y = new Date().getUTCFullYear() + 1;

/** The day of the month of a month's last Sunday (Europe's DST changes). */
function lastSunday(year: number, month: number): number {
  const last = new Date(Date.UTC(year, month, 0));
  return last.getUTCDate() - last.getUTCDay();
}
/** The day of the month of a month's first Sunday (the US fall-back). */
function firstSunday(year: number, month: number): number {
  return 1 + ((7 - new Date(Date.UTC(year, month - 1, 1)).getUTCDay()) % 7);
}
/** A wall-clock time with its UTC offset spelled out, e.g. at(2027, 3, 20, '03:00', '+01:00'); days past the month's end carry over. */
function at(year: number, month: number, day: number, time: string, offset: string): Date {
  const [hour, minute] = time.split(':').map(Number) as [number, number];
  const offsetMinutes = (offset.startsWith('-') ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
  return new Date(Date.UTC(year, month - 1, day, hour, minute) - offsetMinutes * 60_000);
}

const marchChange = lastSunday(Y, 3);
const octoberChange = lastSunday(Y, 10);

/** Each case's schedule; `first` pins the first runs by hand where the DST rule is the point. */
const cases: Array<{ title: string; schedule: DeploymentSchedule; first?: Date[] }> = [
  {
    title: 'weekly on Monday and Thursday at 03:00 Europe/Paris, across the March change',
    schedule: { startAt: at(Y, 3, marchChange - 14, '03:00', '+01:00'), timeZone: 'Europe/Paris', recurrence: { frequency: 'WEEKLY', every: 1, weekDays: ['MONDAY', 'THURSDAY'] }, endAt: null },
  },
  {
    title: '2 days after the 2nd Tuesday at 03:00 Europe/Paris (explicit dates)',
    schedule: {
      startAt: at(Y, 1, 5, '03:00', '+01:00'),
      timeZone: 'Europe/Paris',
      recurrence: { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: 2, weekDay: 'TUESDAY' }, offsetDays: 2 },
      endAt: null,
    },
  },
  {
    title: '3 days after the last Friday (into the next month) at 22:00 America/New_York',
    schedule: {
      startAt: at(Y, 1, 5, '22:00', '-05:00'),
      timeZone: 'America/New_York',
      recurrence: { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: -1, weekDay: 'FRIDAY' }, offsetDays: 3 },
      endAt: null,
    },
  },
  {
    title: 'once, 30 minutes from now',
    schedule: { startAt: new Date(Date.now() + 30 * 60_000), timeZone: 'Europe/Paris', recurrence: { frequency: 'ONCE' }, endAt: null },
  },
  {
    title: 'daily at 02:30 Europe/Paris: the March night without 02:30',
    schedule: { startAt: at(Y, 3, marchChange - 3, '02:30', '+01:00'), timeZone: 'Europe/Paris', recurrence: { frequency: 'DAILY', every: 1 }, endAt: null },
    // No run on the night of the change.
    first: [at(Y, 3, marchChange - 1, '02:30', '+01:00'), at(Y, 3, marchChange + 1, '02:30', '+02:00')],
  },
  {
    title: 'daily at 02:30 Europe/Paris: the October night with two 02:30s',
    schedule: { startAt: at(Y, 10, octoberChange - 3, '02:30', '+02:00'), timeZone: 'Europe/Paris', recurrence: { frequency: 'DAILY', every: 1 }, endAt: null },
    // One run that night, at the second 02:30 (winter time).
    first: [at(Y, 10, octoberChange - 1, '02:30', '+02:00'), at(Y, 10, octoberChange, '02:30', '+01:00'), at(Y, 10, octoberChange + 1, '02:30', '+01:00')],
  },
  {
    title: 'daily at 01:30 Europe/Paris: the hour before the repeated one',
    schedule: { startAt: at(Y, 10, octoberChange - 3, '01:30', '+02:00'), timeZone: 'Europe/Paris', recurrence: { frequency: 'DAILY', every: 1 }, endAt: null },
    // Once that night: without our skip entry Temporal would fire again at 02:30 summer time.
    first: [at(Y, 10, octoberChange - 1, '01:30', '+02:00'), at(Y, 10, octoberChange, '01:30', '+02:00'), at(Y, 10, octoberChange + 1, '01:30', '+01:00')],
  },
  {
    title: 'daily at 01:30 America/New_York: the November night with two 01:30s',
    schedule: { startAt: at(Y, 11, firstSunday(Y, 11) - 3, '01:30', '-04:00'), timeZone: 'America/New_York', recurrence: { frequency: 'DAILY', every: 1 }, endAt: null },
    // Temporal fires at both 01:30s, an hour apart (the overlap policy skips the second while the first runs).
    first: [at(Y, 11, firstSunday(Y, 11) - 1, '01:30', '-04:00'), at(Y, 11, firstSunday(Y, 11), '01:30', '-04:00'), at(Y, 11, firstSunday(Y, 11), '01:30', '-05:00')],
  },
  {
    title: 'every 2 days at 03:00 Europe/Paris across a month end and the March change (explicit dates)',
    schedule: { startAt: at(Y, 3, 20, '03:00', '+01:00'), timeZone: 'Europe/Paris', recurrence: { frequency: 'DAILY', every: 2 }, endAt: null },
  },
  {
    title: 'every 2 weeks on Monday and Thursday, with an end',
    schedule: {
      startAt: at(Y, 2, 3, '03:00', '+01:00'),
      timeZone: 'Europe/Paris',
      recurrence: { frequency: 'WEEKLY', every: 2, weekDays: ['MONDAY', 'THURSDAY'] },
      endAt: at(Y, 4, 1, '00:00', '+02:00'),
    },
  },
  {
    title: 'every 3 months on day 15 (a calendar with a month list)',
    schedule: { startAt: at(Y, 2, 20, '04:10', '+01:00'), timeZone: 'Europe/Paris', recurrence: { frequency: 'MONTHLY', every: 3, monthDay: 15 }, endAt: null },
  },
  {
    title: 'the last day of every month (explicit dates)',
    schedule: { startAt: at(Y, 1, 2, '23:45', '+00:00'), timeZone: 'Europe/London', recurrence: { frequency: 'MONTHLY', every: 1, monthDay: -1 }, endAt: null },
  },
  {
    title: 'every 5 hours across the March change',
    schedule: { startAt: at(Y, 3, marchChange - 1, '20:15', '+01:00'), timeZone: 'Europe/Paris', recurrence: { frequency: 'HOURLY', every: 5 }, endAt: null },
  },
];

describe('deployment schedules on the real Temporal dev server', () => {
  let temporal: TemporalClient;
  const created: string[] = [];

  beforeAll(async () => {
    temporal = await connectTemporal(settings);
  });

  afterAll(async () => {
    for (const scheduleId of created) {
      await temporal.client.schedule
        .getHandle(scheduleId)
        .delete()
        .catch(() => undefined);
    }
    await temporal.close();
  });

  it.each(cases)('$title: Temporal fires when nextOccurrences says', async ({ schedule, first }) => {
    const scheduleId = `deployment:test-${randomUUID()}`;
    const from = new Date();
    const timing = toTemporalScheduleSpec(schedule, { from });
    const handle = await temporal.client.schedule.create({
      scheduleId,
      spec: timing.spec,
      action: {
        type: 'startWorkflow',
        workflowType: 'deploymentRunWorkflow',
        taskQueue: settings.taskQueue,
        workflowId: `deployment-run:${scheduleId}`,
        args: [{ deploymentId: scheduleId }],
      },
      state: timing.remainingActions !== undefined ? { remainingActions: timing.remainingActions } : {},
    });
    created.push(scheduleId);

    const description = await handle.describe();
    const temporalTimes = description.info.nextActionTimes.map((d) => d.toISOString());
    expect(temporalTimes.length).toBeGreaterThan(0);
    const ours = nextOccurrences(schedule, from, temporalTimes.length).map((d) => d.toISOString());
    expect(temporalTimes).toEqual(ours);
    if (first) {
      // The pinned runs are consecutive in Temporal's list, starting from the first one pinned.
      const start = temporalTimes.indexOf(first[0]!.toISOString());
      expect(start, `${first[0]!.toISOString()} in ${temporalTimes.join(', ')}`).toBeGreaterThanOrEqual(0);
      expect(temporalTimes.slice(start, start + first.length)).toEqual(first.map((d) => d.toISOString()));
    }

    expect(description.spec.timezone).toBe(schedule.timeZone);
    if (schedule.recurrence.frequency === 'ONCE') {
      expect(description.state.remainingActions).toBe(1);
      expect(temporalTimes).toEqual([new Date(Math.ceil(schedule.startAt.getTime() / 60_000) * 60_000).toISOString()]);
    }
    await handle.delete();
    created.splice(created.indexOf(scheduleId), 1);
  });
});
