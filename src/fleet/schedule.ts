/**
 * When a deployment runs: its schedule as the operator enters it (start, IANA time zone, a
 * recurrence, an optional end), the Temporal Schedule spec that carries it, the next run times and
 * a sentence that says it.
 *
 * Plain functions on plain data: the only outside knowledge is the time zone database, read through
 * `Intl` (no clock: callers pass `from`). The plan is Temporal's spec in plain terms; its mapping
 * to Temporal's own types is src/temporal/scheduleSpec.ts (`toTemporalScheduleSpec`).
 *
 * ## How each recurrence maps to a Temporal Schedule
 *
 * The time of day of every run is the start's (`startAt` read in the schedule's time zone). Times are
 * whole minutes: a start with seconds is rounded up to the next minute (`scheduleAnchor`).
 *
 * - ONCE: an interval pinned by `startAt = endAt = the start` (exactly one matching time), and the
 *   caller sets `state.remainingActions: 1`. An interval is absolute time, so a start that falls in
 *   a repeated DST hour fires when asked, which a wall-clock calendar would not guarantee.
 * - HOURLY every N (1..23): an interval of N hours whose phase puts it on the start. Elapsed hours,
 *   not wall-clock hours: after a DST change the runs keep their spacing and move by an hour on
 *   the wall clock.
 * - DAILY every 1, WEEKLY every 1 (on the chosen days), MONTHLY on day 1..28 every 1, 2, 3, 4, 6 or
 *   12 months: one wall-clock calendar in the time zone (month list for every N > 1). Open-ended.
 * - Everything a calendar cannot say (DAILY every N > 1, WEEKLY every N > 1, MONTHLY every 5, 7..11
 *   months, the last day of the month, the nth weekday of the month plus an offset in days):
 *   explicit calendar entries, one per month with that month's days (year, month, days, hour,
 *   minute), computed here for at least {@link EXPLICIT_HORIZON_MONTHS} months and
 *   {@link EXPLICIT_MIN_OCCURRENCES} runs ahead. Temporal has nothing after the last one:
 *   `refreshBefore` says when, and rewriting the schedule (`toTemporalScheduleSpec` again with the
 *   current time, `handle.update`) moves the horizon. Updating the deployment does it; so should each
 *   run.
 *
 * The cadence of "every N" is anchored on the first run at or after the start: "every 2 weeks on
 * Monday and Thursday" from a Wednesday runs that Thursday, then Monday and Thursday two weeks on.
 *
 * ## Daylight saving time
 *
 * Wall-clock calendars follow Temporal's own rule (the server's calendar.go), checked against the
 * real server in test/integration/temporalSchedule.test.ts: a time of day that does not exist that
 * day is skipped (02:30 on the last Sunday of March in Paris); one that exists twice runs once or
 * twice depending on the zone (Paris: once, at the second 02:30; New York: at both 01:30s, an hour
 * apart; the schedule's overlap policy keeps the second from starting while the first still runs).
 * Temporal also fires a Paris 01:30 run a second time at 02:30 summer time that night: a `skip`
 * entry at (H+1):M removes that phantom run (no run of ours is ever at that wall time).
 * `nextOccurrences` evaluates the very spec sent to Temporal with a port of that algorithm, so the
 * nextRunAt we show is the time Temporal will use.
 */

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

export const WEEK_DAYS = ['MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY', 'SUNDAY'] as const;
export type WeekDay = (typeof WEEK_DAYS)[number];

/** Which occurrence of a weekday in its month: 1st to 4th, or -1 for the last one. */
export type NthWeekdayOrdinal = 1 | 2 | 3 | 4 | -1;
export const NTH_WEEKDAY_ORDINALS: readonly NthWeekdayOrdinal[] = [1, 2, 3, 4, -1];

export const FREQUENCIES = ['ONCE', 'HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY'] as const;
export type Frequency = (typeof FREQUENCIES)[number];

export interface OnceRecurrence {
  frequency: 'ONCE';
}
/** Every `every` hours (elapsed time), from the start. */
export interface HourlyRecurrence {
  frequency: 'HOURLY';
  every: number;
}
/** Every `every` days at the start's time of day. */
export interface DailyRecurrence {
  frequency: 'DAILY';
  every: number;
}
/** Every `every` weeks (Monday to Sunday) on these days, at the start's time of day. */
export interface WeeklyRecurrence {
  frequency: 'WEEKLY';
  every: number;
  weekDays: WeekDay[];
}
/** Every `every` months on day `monthDay` (1..28, or -1 for the last day), at the start's time of day. */
export interface MonthlyOnDayRecurrence {
  frequency: 'MONTHLY';
  every: number;
  monthDay: number;
}
/**
 * Every `every` months on the nth weekday of the month moved by `offsetDays` (-6..6), at the
 * start's time of day: "2 days after the second Tuesday" is Patch Tuesday + 2. The offset may move
 * the run into the next or previous month.
 */
export interface MonthlyOnNthWeekdayRecurrence {
  frequency: 'MONTHLY';
  every: number;
  nthWeekday: { ordinal: NthWeekdayOrdinal; weekDay: WeekDay };
  offsetDays: number;
}
export type MonthlyRecurrence = MonthlyOnDayRecurrence | MonthlyOnNthWeekdayRecurrence;

export type Recurrence = OnceRecurrence | HourlyRecurrence | DailyRecurrence | WeeklyRecurrence | MonthlyRecurrence;

export interface DeploymentSchedule {
  startAt: Date;
  /** An IANA time zone name (Europe/Paris): wall-clock recurrences are read in it. */
  timeZone: string;
  recurrence: Recurrence;
  /** No run after this instant (inclusive bound). Null: no end. Not used by ONCE. */
  endAt: Date | null;
}

/** Largest `every` per frequency. */
export const MAX_EVERY: Readonly<Record<Exclude<Frequency, 'ONCE'>, number>> = { HOURLY: 23, DAILY: 31, WEEKLY: 12, MONTHLY: 12 };
export const MAX_OFFSET_DAYS = 6;
/** The last day of the month, as `monthDay`. Days 29 to 31 are refused: they are not in every month. */
export const LAST_DAY_OF_MONTH = -1;
/** Explicit calendar entries cover at least this many months ahead... */
export const EXPLICIT_HORIZON_MONTHS = 24;
/** ...and at least this many runs. */
export const EXPLICIT_MIN_OCCURRENCES = 24;
/** Temporal's calendars know no year after this one (calendar.go maxCalendarYear). */
export const MAX_CALENDAR_YEAR = 2100;

export function isMonthlyOnNthWeekday(recurrence: Recurrence): recurrence is MonthlyOnNthWeekdayRecurrence {
  return recurrence.frequency === 'MONTHLY' && 'nthWeekday' in recurrence;
}

// ---------------------------------------------------------------------------------------------
// Time zones (Intl)
// ---------------------------------------------------------------------------------------------

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      weekday: 'short',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/**
 * The canonical name of an IANA time zone ("europe/paris" → "Europe/Paris", "US/Pacific" →
 * "America/Los_Angeles"), or null when the zone database does not know it. Temporal's server loads
 * zones by name, case-sensitively: store and send the canonical one. Fixed offsets ("+01:00") are
 * not zone names and are refused.
 */
export function canonicalTimeZone(timeZone: string): string | null {
  if (typeof timeZone !== 'string' || !/^[A-Za-z]/.test(timeZone.trim())) return null;
  try {
    const name = new Intl.DateTimeFormat('en-US', { timeZone: timeZone.trim() }).resolvedOptions().timeZone;
    return /^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(name) ? name : null;
  } catch {
    return null;
  }
}

export function isValidTimeZone(timeZone: string): boolean {
  return canonicalTimeZone(timeZone) !== null;
}

interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** 0 = Sunday, as Go and Temporal count. */
  weekday: number;
}

const SHORT_WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** The wall-clock time of an instant in a zone (whole seconds). */
function wallAt(ms: number, timeZone: string): WallTime {
  const wall: WallTime = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0, weekday: 0 };
  for (const part of formatter(timeZone).formatToParts(new Date(Math.floor(ms / SECOND) * SECOND))) {
    if (part.type === 'weekday') wall.weekday = SHORT_WEEKDAYS.indexOf(part.value);
    else if (part.type in wall) (wall as unknown as Record<string, number>)[part.type] = Number(part.value);
  }
  return wall;
}

/** The zone's offset from UTC at an instant, in ms. */
function offsetAt(ms: number, timeZone: string): number {
  const w = wallAt(ms, timeZone);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(ms / SECOND) * SECOND;
}

/**
 * Go's `time.Date(y, mo, d, h, m, s, 0, loc)`, which Temporal's calendar code relies on, including
 * its choice for wall times that do not exist or exist twice: Go takes the offset in force at the
 * wall time read as UTC, then re-reads the offset at the result. Out-of-range fields carry over as
 * in Go (hour 24 is the next day's midnight).
 */
function goDate(timeZone: string, y: number, mo: number, d: number, h: number, m: number, s: number): number {
  const unix = Date.UTC(y, mo - 1, d, h, m, s);
  return unix - offsetAt(unix - offsetAt(unix, timeZone), timeZone);
}

/**
 * The first instant of the local day `plusDays` after the day `ms` falls on in `timeZone` (midnight,
 * or the first wall time after a gap when the zone skips midnight, as Go reads it). Day arithmetic
 * is on the calendar: a day that DST shortens or lengthens still counts as one.
 */
export function localDayStart(ms: number, timeZone: string, plusDays: number): number {
  const w = wallAt(ms, timeZone);
  const day = new Date(Date.UTC(w.year, w.month - 1, w.day + plusDays));
  return goDate(timeZone, day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), 0, 0, 0);
}

// ---------------------------------------------------------------------------------------------
// Civil dates (day numbers: days since 1970-01-01)
// ---------------------------------------------------------------------------------------------

interface CivilDate {
  year: number;
  month: number;
  day: number;
}

const dayNumber = (year: number, month: number, day: number): number => Math.round(Date.UTC(year, month - 1, day) / DAY);

function civil(n: number): CivilDate {
  const date = new Date(n * DAY);
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() };
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** 0 = Sunday. */
const weekdayOfDay = (n: number): number => new Date(n * DAY).getUTCDay();
/** WEEK_DAYS index (Monday = 0) to JS/Go weekday (Sunday = 0). */
const goWeekday = (day: WeekDay): number => (WEEK_DAYS.indexOf(day) + 1) % 7;
/** Months counted from year 0: year * 12 + (month - 1). */
const monthIndex = (year: number, month: number): number => year * 12 + month - 1;
const monthOf = (index: number): { year: number; month: number } => ({ year: Math.floor(index / 12), month: (index % 12) + 1 });

/** The day of the month of the nth (or last, -1) given weekday. */
export function nthWeekdayOfMonth(year: number, month: number, ordinal: NthWeekdayOrdinal, weekDay: WeekDay): number {
  const target = goWeekday(weekDay);
  if (ordinal === -1) {
    const last = daysInMonth(year, month);
    const lastWeekday = weekdayOfDay(dayNumber(year, month, last));
    return last - ((lastWeekday - target + 7) % 7);
  }
  const firstWeekday = weekdayOfDay(dayNumber(year, month, 1));
  return 1 + ((target - firstWeekday + 7) % 7) + (ordinal - 1) * 7;
}

// ---------------------------------------------------------------------------------------------
// The anchor: the first run's instant and its wall-clock time
// ---------------------------------------------------------------------------------------------

/** The start rounded up to a whole minute: Temporal's schedules fire on whole minutes here. */
export function scheduleAnchor(startAt: Date): Date {
  return new Date(Math.ceil(startAt.getTime() / MINUTE) * MINUTE);
}

interface Anchor {
  ms: number;
  day: number;
  hour: number;
  minute: number;
}

function anchorOf(schedule: DeploymentSchedule): Anchor {
  const ms = scheduleAnchor(schedule.startAt).getTime();
  const w = wallAt(ms, schedule.timeZone);
  return { ms, day: dayNumber(w.year, w.month, w.day), hour: w.hour, minute: w.minute };
}

// ---------------------------------------------------------------------------------------------
// Which days a wall-clock recurrence runs on
// ---------------------------------------------------------------------------------------------

function monthlyDate(recurrence: MonthlyRecurrence, index: number): number {
  const { year, month } = monthOf(index);
  if (isMonthlyOnNthWeekday(recurrence)) {
    return dayNumber(year, month, nthWeekdayOfMonth(year, month, recurrence.nthWeekday.ordinal, recurrence.nthWeekday.weekDay)) + recurrence.offsetDays;
  }
  const day = recurrence.monthDay === LAST_DAY_OF_MONTH ? daysInMonth(year, month) : recurrence.monthDay;
  return dayNumber(year, month, day);
}

/** The month whose run is the first on or after the anchor's day: the cadence's phase. */
function firstMonthIndex(recurrence: MonthlyRecurrence, anchorDay: number): number {
  const { year, month } = civil(anchorDay);
  // From the month before: a negative offset can bring next month's run into this one, and the
  // month before's run (at most 6 days late) into the anchor's month.
  let index = monthIndex(year, month) - 1;
  while (monthlyDate(recurrence, index) < anchorDay) index += 1;
  return index;
}

/**
 * The local days a DAILY, WEEKLY or MONTHLY recurrence runs on, from the anchor's day on, in
 * order. Endless: the caller stops.
 */
function* runDays(recurrence: DailyRecurrence | WeeklyRecurrence | MonthlyRecurrence, anchorDay: number): Generator<number> {
  const every = Math.max(1, Math.floor(recurrence.every));
  if (recurrence.frequency === 'DAILY') {
    for (let day = anchorDay; ; day += every) yield day;
  }
  if (recurrence.frequency === 'WEEKLY') {
    const offsets = [...new Set(recurrence.weekDays.map((d) => WEEK_DAYS.indexOf(d)))].filter((o) => o >= 0).sort((a, b) => a - b);
    if (offsets.length === 0) return;
    const monday = anchorDay - ((weekdayOfDay(anchorDay) + 6) % 7);
    const firstWeek = offsets.some((o) => monday + o >= anchorDay) ? monday : monday + 7;
    for (let week = firstWeek; ; week += 7 * every) {
      for (const o of offsets) if (week + o >= anchorDay) yield week + o;
    }
  }
  for (let index = firstMonthIndex(recurrence, anchorDay); ; index += every) yield monthlyDate(recurrence, index);
}

// ---------------------------------------------------------------------------------------------
// The plan: what the Temporal spec says, in a form this module can also evaluate
// ---------------------------------------------------------------------------------------------

/** A wall-clock calendar entry (seconds 0). Missing fields match anything. */
export interface WallCalendar {
  years?: number[];
  months?: number[];
  days?: number[];
  /** 0 = Sunday. */
  weekdays?: number[];
  hour: number;
  minute: number;
}

/** Every `everyMs`, at `offsetMs` past the epoch's multiples (Temporal's interval spec). */
export interface IntervalPlan {
  everyMs: number;
  offsetMs: number;
}

interface TimingPlan {
  timeZone: string;
  calendars: WallCalendar[];
  /** Wall times never to fire at (ScheduleSpec.skip). */
  skips: WallCalendar[];
  /** The calendars are explicit months in order, one per month: the first that matches is the earliest. */
  explicit?: boolean;
  intervals: IntervalPlan[];
  startMs: number;
  endMs: number | null;
  remainingActions?: number;
  refreshBefore: number | null;
}

function buildPlan(schedule: DeploymentSchedule, from: Date, minOccurrences: number): TimingPlan {
  const { timeZone, recurrence } = schedule;
  const anchor = anchorOf(schedule);
  const endMs = schedule.endAt ? schedule.endAt.getTime() : null;
  const base = { timeZone, calendars: [] as WallCalendar[], skips: [] as WallCalendar[], intervals: [] as IntervalPlan[], startMs: anchor.ms, endMs, refreshBefore: null };

  if (recurrence.frequency === 'ONCE') {
    // Exactly one matching instant: the interval's phase lands on it and start = end = it.
    return { ...base, intervals: [{ everyMs: DAY, offsetMs: mod(anchor.ms, DAY) }], endMs: anchor.ms, remainingActions: 1 };
  }
  if (recurrence.frequency === 'HOURLY') {
    const everyMs = Math.max(1, Math.floor(recurrence.every)) * HOUR;
    return { ...base, intervals: [{ everyMs, offsetMs: mod(anchor.ms, everyMs) }] };
  }
  // Temporal's calendar code, on the night a zone east of UTC repeats an hour, also fires a
  // calendar at H:M one hour later, at (H+1):M of the first copy (Paris: a 01:30 run again at 02:30
  // summer time). No run of ours is ever at (H+1):M wall time, so skipping that wall time removes
  // exactly that phantom run.
  const phantom: WallCalendar = { hour: (anchor.hour + 1) % 24, minute: anchor.minute };
  const calendarPlan = { ...base, skips: [phantom] };
  return { ...calendarPlan, ...wallCalendars(recurrence, schedule, anchor, from, minOccurrences) };
}

function wallCalendars(
  recurrence: DailyRecurrence | WeeklyRecurrence | MonthlyRecurrence,
  schedule: DeploymentSchedule,
  anchor: Anchor,
  from: Date,
  minOccurrences: number,
): Pick<TimingPlan, 'calendars' | 'explicit' | 'refreshBefore'> {
  const at = { hour: anchor.hour, minute: anchor.minute };
  if (recurrence.every === 1 && recurrence.frequency === 'DAILY') return { calendars: [{ ...at }], refreshBefore: null };
  if (recurrence.every === 1 && recurrence.frequency === 'WEEKLY') {
    const weekdays = [...new Set(recurrence.weekDays.map(goWeekday))].sort((a, b) => a - b);
    return { calendars: [{ weekdays, ...at }], refreshBefore: null };
  }
  if (recurrence.frequency === 'MONTHLY' && !isMonthlyOnNthWeekday(recurrence) && recurrence.monthDay >= 1 && recurrence.monthDay <= 28 && 12 % recurrence.every === 0) {
    const first = firstMonthIndex(recurrence, anchor.day);
    const every = recurrence.every;
    const months = every === 1 ? undefined : Array.from({ length: 12 / every }, (_, k) => ((first + k * every) % 12) + 1).sort((a, b) => a - b);
    return { calendars: [{ days: [recurrence.monthDay], ...(months ? { months } : {}), ...at }], refreshBefore: null };
  }
  return { explicit: true, ...explicitCalendars(recurrence, schedule, anchor, from, minOccurrences) };
}

/** One calendar entry per month holding that month's run days, far enough ahead (see the module comment). */
function explicitCalendars(
  recurrence: DailyRecurrence | WeeklyRecurrence | MonthlyRecurrence,
  schedule: DeploymentSchedule,
  anchor: Anchor,
  from: Date,
  minOccurrences: number,
): { calendars: WallCalendar[]; refreshBefore: number | null } {
  const fromWall = wallAt(Math.max(from.getTime(), anchor.ms), schedule.timeZone);
  const fromDay = dayNumber(fromWall.year, fromWall.month, fromWall.day);
  const horizonDay = dayNumber(fromWall.year, fromWall.month + EXPLICIT_HORIZON_MONTHS, fromWall.day);
  let endDay: number | null = null;
  if (schedule.endAt) {
    const w = wallAt(schedule.endAt.getTime(), schedule.timeZone);
    endDay = dayNumber(w.year, w.month, w.day);
  }
  const byMonth = new Map<number, WallCalendar>();
  let count = 0;
  let last: number | null = null;
  let complete = true;
  for (const day of runDays(recurrence, anchor.day)) {
    if (endDay !== null && day > endDay) break;
    const date = civil(day);
    if (date.year > MAX_CALENDAR_YEAR) break;
    if (day < fromDay) continue;
    if (count >= minOccurrences && day > horizonDay) {
      complete = false;
      break;
    }
    const key = monthIndex(date.year, date.month);
    const entry = byMonth.get(key) ?? { years: [date.year], months: [date.month], days: [], hour: anchor.hour, minute: anchor.minute };
    entry.days!.push(date.day);
    byMonth.set(key, entry);
    count += 1;
    last = day;
  }
  const calendars = [...byMonth.entries()].sort(([a], [b]) => a - b).map(([, c]) => ({ ...c, days: [...new Set(c.days)].sort((a, b) => a - b) }));
  let refreshBefore: number | null = null;
  if (!complete && last !== null) {
    const d = civil(last);
    refreshBefore = goDate(schedule.timeZone, d.year, d.month, d.day, anchor.hour, anchor.minute, 0);
  }
  return { calendars, refreshBefore };
}

function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

// ---------------------------------------------------------------------------------------------
// Evaluating a plan: a port of Temporal's spec.go / calendar.go (server side)
// ---------------------------------------------------------------------------------------------

const matches = (values: number[] | undefined, v: number): boolean => values === undefined || values.includes(v);

/**
 * The first time after `afterMs` that the calendar matches: calendar.go `compiledCalendar.next`,
 * step for step, including its handling of DST gaps (skipped) and repeated hours.
 */
function calendarNext(cal: WallCalendar, timeZone: string, afterMs: number): number | null {
  const start = wallAt(afterMs, timeZone);
  let { year: y, month: mo, day: d, hour: h, minute: m, second: s } = start;
  let dst = 0;
  // In the second copy of a repeated hour.
  if (wallAt(afterMs - HOUR, timeZone).hour === h) dst = HOUR;
  s += 1;
  const weekdayMatches = (): boolean => cal.weekdays === undefined || cal.weekdays.includes(wallAt(goDate(timeZone, y, mo, d, h, m, s), timeZone).weekday);

  outer: for (;;) {
    if (s >= 60) {
      m += 1;
      s = 0;
    }
    if (m >= 60) {
      const prev = goDate(timeZone, y, mo, d, h, 0, 0);
      h += 1;
      m = 0;
      const next = goDate(timeZone, y, mo, d, h, 0, 0);
      // Moving to the next hour jumped two hours: a repeated hour was passed over; go through it again.
      if (dst === 0 && next - prev > HOUR) {
        h -= 1;
        dst = HOUR;
      } else {
        dst = 0;
      }
    }
    if (h >= 24) {
      d += 1;
      h = 0;
    }
    if (d > daysInMonth(y, mo)) {
      mo += 1;
      d = 1;
    }
    if (mo > 12) {
      y += 1;
      mo = 1;
    }
    if (y > MAX_CALENDAR_YEAR) return null;
    if (!matches(cal.years, y)) {
      [y, mo, d, h, m, s, dst] = [y + 1, 1, 1, 0, 0, 0, 0];
      continue;
    }
    while (!matches(cal.months, mo)) {
      [mo, d, h, m, s, dst] = [mo + 1, 1, 0, 0, 0, 0];
      if (mo > 12) continue outer;
    }
    while (!matches(cal.days, d) || !weekdayMatches()) {
      [d, h, m, s, dst] = [d + 1, 0, 0, 0, 0];
      if (d > daysInMonth(y, mo)) continue outer;
    }
    while (h !== cal.hour) {
      [h, m, s, dst] = [h + 1, 0, 0, 0];
      if (h >= 24) continue outer;
    }
    while (m !== cal.minute) {
      [m, s] = [m + 1, 0];
      if (m >= 60) continue outer;
    }
    while (s !== 0) {
      s += 1;
      if (s >= 60) continue outer;
    }
    const nextTs = goDate(timeZone, y, mo, d, h, m, s);
    // A wall time jumped over by a DST change: skipped.
    if (wallAt(nextTs, timeZone).hour !== h) {
      [h, m, s] = [h + 1, 0, 0];
      continue;
    }
    return nextTs + dst;
  }
}

/** spec.go `nextIntervalTime`: epoch + n × every + phase, strictly after. */
function intervalNext(interval: IntervalPlan, afterMs: number): number {
  const ts = Math.floor(afterMs / SECOND);
  const every = Math.max(1, Math.round(interval.everyMs / SECOND));
  const phase = Math.max(0, Math.round(interval.offsetMs / SECOND));
  return (Math.trunc((ts - phase) / every) + 1) * every * SECOND + phase * SECOND;
}

/** calendar.go `matches`: every field of the wall time (seconds included) matches. */
function calendarMatches(cal: WallCalendar, timeZone: string, ms: number): boolean {
  const w = wallAt(ms, timeZone);
  return (
    matches(cal.years, w.year) &&
    matches(cal.months, w.month) &&
    matches(cal.days, w.day) &&
    matches(cal.weekdays, w.weekday) &&
    w.hour === cal.hour &&
    w.minute === cal.minute &&
    w.second === 0
  );
}

/** spec.go `getNextTime` without jitter: the first time after `afterMs` within start..end that no skip entry matches. */
function planNext(plan: TimingPlan, afterMs: number): number | null {
  let after = afterMs < plan.startMs ? plan.startMs - SECOND : afterMs;
  for (;;) {
    const nominal = rawNext(plan, after);
    if (nominal === null) return null;
    if (!plan.skips.some((skip) => calendarMatches(skip, plan.timeZone, nominal))) return nominal;
    after = nominal;
  }
}

/** spec.go `rawNextTime`: the earliest match of any calendar or interval, or null; null too past the end. */
function rawNext(plan: TimingPlan, after: number): number | null {
  let next = Number.POSITIVE_INFINITY;
  for (const cal of plan.calendars) {
    if (plan.explicit) {
      // A month entirely before `after` (a day of margin covers any zone's offset) cannot match.
      const [year, month] = [cal.years?.[0] ?? 0, cal.months?.[0] ?? 0];
      if (Date.UTC(year, month, 1) + DAY < after) continue;
    }
    const t = calendarNext(cal, plan.timeZone, after);
    if (t !== null && t < next) next = t;
    if (plan.explicit && t !== null) break;
  }
  for (const interval of plan.intervals) next = Math.min(next, intervalNext(interval, after));
  if (next === Number.POSITIVE_INFINITY) return null;
  if (plan.endMs !== null && next > plan.endMs) return null;
  return next;
}

// ---------------------------------------------------------------------------------------------
// The API
// ---------------------------------------------------------------------------------------------

/** What a Temporal Schedule must say for a deployment schedule, in plain terms (src/temporal/scheduleSpec.ts maps it). */
export interface SchedulePlan {
  timeZone: string;
  calendars: WallCalendar[];
  /** Wall times never to fire at. */
  skips: WallCalendar[];
  intervals: IntervalPlan[];
  startAt: Date;
  endAt: Date | null;
  /** The schedule in words (describeSchedule), for the spec's comments. */
  description: string;
  /** Set for ONCE (1): the schedule's `state.remainingActions`. */
  remainingActions?: number;
  /**
   * For schedules written as explicit dates: the last run written into the spec. Rewrite the
   * schedule before then (plan again with `from: now`, `handle.update`), or Temporal runs nothing
   * after it. Null when the spec is open-ended or already holds every run.
   */
  refreshBefore: Date | null;
}

/**
 * The plan of the Temporal Schedule for a deployment schedule (see the module comment for the
 * mapping). `from` (default: the start) is where explicit dates begin: pass the current time when
 * rewriting the schedule of an existing deployment. The schedule is expected valid
 * (validateDeploymentInput).
 */
export function schedulePlan(schedule: DeploymentSchedule, options: { from?: Date } = {}): SchedulePlan {
  const plan = buildPlan(schedule, options.from ?? schedule.startAt, EXPLICIT_MIN_OCCURRENCES);
  return {
    timeZone: plan.timeZone,
    calendars: plan.calendars,
    skips: plan.skips,
    intervals: plan.intervals,
    startAt: new Date(plan.startMs),
    endAt: plan.endMs === null ? null : new Date(plan.endMs),
    description: describeSchedule(schedule),
    ...(plan.remainingActions !== undefined ? { remainingActions: plan.remainingActions } : {}),
    refreshBefore: plan.refreshBefore === null ? null : new Date(plan.refreshBefore),
  };
}

/**
 * The next `count` run times strictly after `from`, as Temporal will fire them: the spec
 * `schedulePlan` builds, evaluated with a port of Temporal's own algorithm (no jitter).
 * Fewer when the schedule ends (endAt, ONCE). Used for nextRunAt.
 */
export function nextOccurrences(schedule: DeploymentSchedule | null, from: Date, count: number): Date[] {
  if (schedule === null) return [];
  const plan = buildPlan(schedule, from, Math.max(count, EXPLICIT_MIN_OCCURRENCES));
  const limit = Math.min(count, plan.remainingActions ?? Number.POSITIVE_INFINITY);
  const out: Date[] = [];
  let after = from.getTime();
  while (out.length < limit) {
    const next = planNext(plan, after);
    if (next === null) break;
    out.push(new Date(next));
    after = next;
  }
  return out;
}

const pad = (n: number): string => String(n).padStart(2, '0');
const ORDINAL_WORDS: Record<NthWeekdayOrdinal, string> = { 1: '1st', 2: '2nd', 3: '3rd', 4: '4th', [-1]: 'last' };
const dayName = (d: WeekDay): string => d.charAt(0) + d.slice(1).toLowerCase();
const plural = (n: number, one: string, many = `${one}s`): string => (n === 1 ? one : `${n} ${many}`);

function listWords(words: string[]): string {
  return words.length <= 1 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}

function localDateTime(ms: number, timeZone: string): { date: string; time: string } {
  const w = wallAt(ms, timeZone);
  return { date: `${w.year}-${pad(w.month)}-${pad(w.day)}`, time: `${pad(w.hour)}:${pad(w.minute)}` };
}

/** A deployment without a schedule, in words. */
export const ON_DEMAND_DESCRIPTION = 'On demand only: no scheduled run; it runs when started with Run now (runDeploymentNow)';

/** The schedule in a sentence: "Every 2nd Tuesday of the month + 2 days at 03:00 Europe/Paris". */
export function describeSchedule(schedule: DeploymentSchedule | null): string {
  if (schedule === null) return ON_DEMAND_DESCRIPTION;
  const { recurrence, timeZone } = schedule;
  const anchorMs = scheduleAnchor(schedule.startAt).getTime();
  const start = localDateTime(anchorMs, timeZone);
  const at = `at ${start.time} ${timeZone}`;
  let text: string;
  switch (recurrence.frequency) {
    case 'ONCE':
      return `Once on ${start.date} ${at}`;
    case 'HOURLY':
      text = `Every ${plural(recurrence.every, 'hour')} from ${start.date} ${start.time} ${timeZone}`;
      break;
    case 'DAILY':
      text = `Every ${plural(recurrence.every, 'day')} ${at}`;
      break;
    case 'WEEKLY': {
      const days = WEEK_DAYS.filter((d) => recurrence.weekDays.includes(d)).map(dayName);
      text = `Every ${plural(recurrence.every, 'week')} on ${listWords(days)} ${at}`;
      break;
    }
    case 'MONTHLY': {
      let what: string;
      if (isMonthlyOnNthWeekday(recurrence)) {
        const offset = recurrence.offsetDays === 0 ? '' : ` ${recurrence.offsetDays > 0 ? '+' : '-'} ${plural(Math.abs(recurrence.offsetDays), '1 day', 'days')}`;
        what = `${ORDINAL_WORDS[recurrence.nthWeekday.ordinal]} ${dayName(recurrence.nthWeekday.weekDay)}`;
        text =
          recurrence.every === 1
            ? `Every ${what} of the month${offset} ${at}`
            : `Every ${recurrence.every} months on the ${what}${offset} ${at}`;
      } else {
        what = recurrence.monthDay === LAST_DAY_OF_MONTH ? 'the last day' : `day ${recurrence.monthDay}`;
        text = `Every ${plural(recurrence.every, 'month')} on ${what} ${at}`;
      }
      break;
    }
  }
  if (recurrence.frequency !== 'HOURLY' && recurrence.every > 1) text += `, starting ${start.date}`;
  if (schedule.endAt) {
    const end = localDateTime(schedule.endAt.getTime(), timeZone);
    text += `, until ${end.date} ${end.time}`;
  }
  return text;
}
