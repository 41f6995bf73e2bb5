/**
 * A deployment schedule as a Temporal Schedule spec: src/fleet/schedule.ts decides the plan (the
 * calendars, intervals and skips, and why), this maps it to Temporal's types (weekday and month
 * names, milliseconds, comments).
 */
import type { CalendarSpec, DayOfWeek, Month, ScheduleSpec } from '@temporalio/client';
import { schedulePlan, type DeploymentSchedule, type WallCalendar } from '../fleet/schedule.js';

export interface TemporalScheduleTiming {
  spec: ScheduleSpec;
  /** Set for ONCE (1): pass it as the schedule's `state.remainingActions`. */
  remainingActions?: number;
  /**
   * For schedules written as explicit dates: the last run written into the spec. Rewrite the
   * schedule before then (`toTemporalScheduleSpec(schedule, { from: now })`, `handle.update`), or
   * Temporal runs nothing after it. Null when the spec is open-ended or already holds every run.
   */
  refreshBefore: Date | null;
}

const DAYS_OF_WEEK_BY_GO_INDEX: readonly DayOfWeek[] = ['SUNDAY', 'MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY'];
const MONTH_NAMES: readonly Month[] = ['JANUARY', 'FEBRUARY', 'MARCH', 'APRIL', 'MAY', 'JUNE', 'JULY', 'AUGUST', 'SEPTEMBER', 'OCTOBER', 'NOVEMBER', 'DECEMBER'];

function toCalendarSpec(cal: WallCalendar, comment: string): CalendarSpec {
  return {
    ...(cal.years ? { year: cal.years } : {}),
    ...(cal.months ? { month: cal.months.map((m) => MONTH_NAMES[m - 1]!) } : {}),
    ...(cal.days ? { dayOfMonth: cal.days } : {}),
    ...(cal.weekdays ? { dayOfWeek: cal.weekdays.map((d) => DAYS_OF_WEEK_BY_GO_INDEX[d]!) } : {}),
    hour: cal.hour,
    minute: cal.minute,
    second: 0,
    comment,
  };
}

/**
 * The Temporal Schedule spec for a deployment schedule (src/fleet/schedule.ts's module comment has
 * the mapping). `from` (default: the start) is where explicit dates begin: pass the current time
 * when rewriting the schedule of an existing deployment.
 *
 * A deployment run on demand only (null) keeps a Temporal Schedule with an empty spec: it never
 * fires, and pausing, updating and deleting it work as for any other, so a deployment can move
 * between scheduled and on demand.
 */
export function toTemporalScheduleSpec(schedule: DeploymentSchedule | null, options: { from?: Date } = {}): TemporalScheduleTiming {
  if (schedule === null) return { spec: {}, refreshBefore: null };
  const plan = schedulePlan(schedule, options);
  const spec: ScheduleSpec = {
    ...(plan.calendars.length > 0 ? { calendars: plan.calendars.map((c) => toCalendarSpec(c, plan.description)) } : {}),
    ...(plan.intervals.length > 0 ? { intervals: plan.intervals.map((i) => ({ every: i.everyMs, offset: i.offsetMs })) } : {}),
    ...(plan.skips.length > 0 ? { skip: plan.skips.map((c) => toCalendarSpec(c, 'not a run: Temporal repeats a wall-clock run one hour later on the night the clocks go back')) } : {}),
    startAt: plan.startAt,
    ...(plan.endAt !== null ? { endAt: plan.endAt } : {}),
    timezone: plan.timeZone,
  };
  return {
    spec,
    ...(plan.remainingActions !== undefined ? { remainingActions: plan.remainingActions } : {}),
    refreshBefore: plan.refreshBefore,
  };
}
