import { describe, expect, it } from 'vitest';
import {
  duplicateNameMessage,
  emptyTargetsMessage,
  forecastSchedule,
  otherOsTypeMessage,
  validateDeploymentInput,
  type DeploymentInput,
  type DeploymentScheduleInput,
  type DeploymentValidation,
} from '../../src/fleet/deploymentInput.js';
import type { Recurrence } from '../../src/fleet/schedule.js';

const now = new Date('2026-11-25T12:00:20.500Z');
const MACHINE = '5f0c2a4e-8a47-4a61-9a3e-0c5d2b7e9f10';
const OTHER_MACHINE = '0b6e1c44-2d1f-4c4e-8f0a-7f3f2d9e1a22';

function input(overrides: Partial<DeploymentInput> = {}): DeploymentInput {
  return {
    name: 'Patch Tuesday: prod (web-1)',
    osType: 'LINUX',
    machineIds: [MACHINE],
    targetFilter: null,
    classifications: ['CRITICAL', 'SECURITY'],
    includePatterns: [],
    excludePatterns: [],
    schedule: { startAt: null, timeZone: 'Europe/Paris', recurrence: { frequency: 'ONCE' }, endAt: null },
    windowMinutes: 60,
    rebootSetting: 'IF_REQUIRED',
    maxConcurrent: null,
    maxFailures: null,
    ...overrides,
  };
}

function withSchedule(schedule: Partial<DeploymentScheduleInput>): DeploymentInput {
  return input({ schedule: { ...input().schedule!, ...schedule } });
}

function problem(result: DeploymentValidation): { field: string; message: string } {
  if (result.ok) throw new Error('expected a problem, got a valid deployment');
  return { field: result.field, message: result.message };
}

function valid(result: DeploymentValidation) {
  if (!result.ok) throw new Error(`expected a valid deployment, got ${result.field}: ${result.message}`);
  return result.value;
}

const check = (i: DeploymentInput) => validateDeploymentInput(i, now);

describe('validateDeploymentInput: a valid deployment', () => {
  it('is normalised: name trimmed, start defaulted to now + 30 minutes (whole minute), first run known', () => {
    const value = valid(check(input({ name: '  nightly web  ', machineIds: [MACHINE.toUpperCase()], classifications: ['SECURITY', 'CRITICAL', 'SECURITY'] })));
    expect(value.name).toBe('nightly web');
    expect(value.machineIds).toEqual([MACHINE]);
    expect(value.classifications).toEqual(['CRITICAL', 'SECURITY']);
    expect(value.schedule!.startAt.toISOString()).toBe('2026-11-25T12:31:00.000Z');
    expect(value.firstRunAt!.toISOString()).toBe('2026-11-25T12:31:00.000Z');
    expect(value.schedule!.timeZone).toBe('Europe/Paris');
  });

  it('takes a target filter instead of machines, and canonical time zone names', () => {
    const value = valid(
      check(
        input({
          machineIds: [],
          targetFilter: { tags: ['web', 'env:prod', 'web'], nameContains: '  ' },
          schedule: { startAt: new Date('2026-12-01T03:00:00+01:00'), timeZone: 'europe/paris', recurrence: { frequency: 'WEEKLY', every: 1, weekDays: ['THURSDAY', 'MONDAY'] }, endAt: null },
        }),
      ),
    );
    expect(value.targetFilter).toEqual({ tags: ['env:prod', 'web'], nameContains: null });
    expect(value.schedule!.timeZone).toBe('Europe/Paris');
    expect(value.schedule!.recurrence).toEqual({ frequency: 'WEEKLY', every: 1, weekDays: ['MONDAY', 'THURSDAY'] });
    expect(value.firstRunAt!.toISOString()).toBe('2026-12-03T02:00:00.000Z');
  });

  it('lets a REBOOT_ONLY deployment have no classification', () => {
    expect(check(input({ classifications: [], rebootSetting: 'REBOOT_ONLY' })).ok).toBe(true);
  });

  it('accepts Linux package patterns and Windows KB patterns', () => {
    const linux = valid(check(input({ includePatterns: ['openssl*', 'linux-image-?.*', 'openssl=3.0.2-0ubuntu1.12', 'libc6=2.36-9+deb12u4', 'bash=1:5.2~rc1'] })));
    expect(linux.includePatterns).toHaveLength(5);
    const windows = valid(check(input({ osType: 'WINDOWS', classifications: ['CRITICAL', 'UPDATE_ROLLUP'], excludePatterns: ['KB5031356', '5031356', 'kb503*'] })));
    expect(windows.excludePatterns).toEqual(['KB5031356', '5031356', 'KB503*']);
  });

  it('accepts a start within a minute of clock slack; a ONCE one runs at the next whole minute', () => {
    const value = valid(check(withSchedule({ startAt: new Date(now.getTime() - 30_000) })));
    expect(value.schedule!.startAt.toISOString()).toBe('2026-11-25T12:01:00.000Z');
    expect(value.firstRunAt!.toISOString()).toBe('2026-11-25T12:01:00.000Z');
  });
});

describe('validateDeploymentInput: each rule names its field', () => {
  const cases: Array<[string, DeploymentInput, string, RegExp]> = [
    ['an empty name', input({ name: '   ' }), 'name', /name is required/],
    ['a long name', input({ name: 'x'.repeat(65) }), 'name', /65 characters long; at most 64/],
    ['a name with a slash', input({ name: 'web/prod' }), 'name', /letters, digits, spaces and - _ \. : \( \) only; "\/" is not allowed/],
    ['an unknown OS type', input({ osType: 'MACOS' as never }), 'osType', /osType must be LINUX or WINDOWS/],
    ['no targets', input({ machineIds: [], targetFilter: null }), 'machineIds', /^a deployment needs targets: machineIds, targetFilter or both$/],
    ['a machine id that is not a UUID', input({ machineIds: [MACHINE, 'web-1'] }), 'machineIds[1]', /machineIds\[1\] "web-1" is not a machine id/],
    ['a machine twice', input({ machineIds: [MACHINE, OTHER_MACHINE, MACHINE.toUpperCase()] }), 'machineIds[2]', /repeats machineIds\[0\]/],
    [
      'more than 1000 machines',
      input({ machineIds: Array.from({ length: 1001 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`) }),
      'machineIds',
      /at most 1000 machineIds per deployment \(the seed allows 1000 machines per deployment\); got 1001/,
    ],
    ['a bad tag', input({ machineIds: [], targetFilter: { tags: ['-web'], nameContains: null } }), 'targetFilter.tags', /is not a tag/],
    ['a long nameContains', input({ targetFilter: { tags: [], nameContains: 'n'.repeat(65) } }), 'targetFilter.nameContains', /at most 64/],
    ['an unknown reboot setting', input({ rebootSetting: 'SOMETIMES' as never }), 'rebootSetting', /IF_REQUIRED, NEVER, ALWAYS, REBOOT_ONLY/],
    ['no classification', input({ classifications: [] }), 'classifications', /choose at least one classification \(Linux deployments take CRITICAL, SECURITY, OTHER\); only a REBOOT_ONLY deployment may have none/],
    [
      'a Windows classification on Linux',
      input({ classifications: ['CRITICAL', 'UPDATE_ROLLUP'] }),
      'classifications[1]',
      /^UPDATE_ROLLUP is a Windows classification; Linux deployments take CRITICAL, SECURITY, OTHER$/,
    ],
    [
      'a Linux classification on Windows',
      input({ osType: 'WINDOWS', classifications: ['OTHER'] }),
      'classifications[0]',
      /^OTHER is a Linux classification; Windows deployments take CRITICAL, SECURITY, UPDATE_ROLLUP, FEATURE_PACK, SERVICE_PACK, DEFINITION, TOOLS, UPDATES$/,
    ],
    ['an unknown classification', input({ classifications: ['BUGFIX' as never] }), 'classifications[0]', /"BUGFIX" is not a classification/],
    ['too many patterns', input({ includePatterns: Array.from({ length: 101 }, (_, i) => `pkg${i}`) }), 'includePatterns', /at most 100 includePatterns; got 101/],
    ['an empty pattern', input({ includePatterns: ['openssl', ' '] }), 'includePatterns[1]', /includePatterns\[1\] is empty/],
    ['a long pattern', input({ excludePatterns: ['p'.repeat(201)] }), 'excludePatterns[0]', /201 characters long; at most 200/],
    ['a Linux pattern with a space', input({ includePatterns: ['a', 'b', 'open ssl'] }), 'includePatterns[2]', /includePatterns\[2\] "open ssl" is not a package pattern/],
    ['a Linux pattern with an empty version', input({ excludePatterns: ['openssl='] }), 'excludePatterns[0]', /is not a package pattern/],
    ['a package name on Windows', input({ osType: 'WINDOWS', includePatterns: ['openssl*'] }), 'includePatterns[0]', /"openssl\*" is not a KB pattern: a KB id such as KB5031356/],
    ['a window too short', input({ windowMinutes: 20 }), 'windowMinutes', /from 30 to 360 \(the seed allows 30 to 360 minutes\); got 20/],
    ['a window too long', input({ windowMinutes: 361 }), 'windowMinutes', /got 361/],
    ['a window in fractions', input({ windowMinutes: 45.5 }), 'windowMinutes', /whole number/],
    ['a count of concurrent machines of 0', input({ maxConcurrent: { value: 0, unit: 'COUNT' } }), 'maxConcurrent.value', /from 1 to 10000 \(machines\); got 0/],
    ['a percent of concurrent machines over 100', input({ maxConcurrent: { value: 101, unit: 'PERCENT' } }), 'maxConcurrent.value', /from 1 to 100 \(percent/],
    ['an unknown limit unit', input({ maxConcurrent: { value: 5, unit: 'MACHINES' as never } }), 'maxConcurrent.unit', /COUNT or PERCENT/],
    ['negative max failures', input({ maxFailures: { value: -1, unit: 'COUNT' } }), 'maxFailures.value', /from 0 to 10000/],
    ['max failures over 100 percent', input({ maxFailures: { value: 150, unit: 'PERCENT' } }), 'maxFailures.value', /from 0 to 100 \(percent/],
  ];

  it.each(cases)('%s', (_title, given, field, message) => {
    const found = problem(check(given));
    expect(found.field).toBe(field);
    expect(found.message).toMatch(message);
  });

  it('accepts the limits at their bounds', () => {
    expect(check(input({ maxConcurrent: { value: 1, unit: 'COUNT' }, maxFailures: { value: 0, unit: 'COUNT' } })).ok).toBe(true);
    expect(check(input({ maxConcurrent: { value: 100, unit: 'PERCENT' }, maxFailures: { value: 100, unit: 'PERCENT' } })).ok).toBe(true);
    expect(check(input({ windowMinutes: 30 })).ok).toBe(true);
    expect(check(input({ windowMinutes: 360 })).ok).toBe(true);
  });

  it('answers the first problem only', () => {
    expect(problem(check(input({ name: '', windowMinutes: 5, classifications: [] }))).field).toBe('name');
  });
});

describe('validateDeploymentInput: the schedule', () => {
  const recurring = (recurrence: Recurrence) => withSchedule({ startAt: new Date('2026-12-01T03:00:00+01:00'), recurrence });

  it('refuses a start in the past with its own message', () => {
    const found = problem(check(withSchedule({ startAt: new Date('2026-11-25T11:00:00Z') })));
    expect(found).toEqual({
      field: 'schedule.startAt',
      message:
        'schedule.startAt 2026-11-25T11:00:00.000Z is in the past (now is 2026-11-25T12:00:20.500Z); choose a time after now, or leave it out for now + 30 minutes',
    });
  });

  it('keeps the stored start of a deployment it replaces, even past: a recurring deployment can be changed after its first run', () => {
    const stored = new Date('2026-10-06T01:00:00Z');
    const weekly = withSchedule({ startAt: stored, recurrence: { frequency: 'WEEKLY', every: 1, weekDays: ['TUESDAY'] } });
    expect(problem(check(weekly)).field).toBe('schedule.startAt');
    const value = valid(validateDeploymentInput({ ...weekly, windowMinutes: 90 }, now, { storedStartAt: stored }));
    expect(value.schedule!.startAt.toISOString()).toBe('2026-10-06T01:00:00.000Z');
    expect(value.windowMinutes).toBe(90);
    // 03:00 in Paris, as the stored start: summer time then, winter time now.
    expect(value.firstRunAt?.toISOString()).toBe('2026-12-01T02:00:00.000Z');
    // Another past start is a new start, and refused as one.
    const moved = withSchedule({ startAt: new Date('2026-10-07T01:00:00Z'), recurrence: { frequency: 'WEEKLY', every: 1, weekDays: ['TUESDAY'] } });
    expect(problem(validateDeploymentInput(moved, now, { storedStartAt: stored })).field).toBe('schedule.startAt');
  });

  it('accepts a kept one-off start that has passed: the new version runs nothing more', () => {
    const stored = new Date('2026-11-20T08:00:00Z');
    const value = valid(validateDeploymentInput(withSchedule({ startAt: stored }), now, { storedStartAt: stored }));
    expect(value.firstRunAt).toBeNull();
  });

  it('refuses an unknown time zone with its own message', () => {
    expect(problem(check(withSchedule({ timeZone: 'Europe/Pariss' })))).toEqual({
      field: 'schedule.timeZone',
      message: 'schedule.timeZone "Europe/Pariss" is not a known IANA time zone; use a name such as Europe/Paris, America/New_York or UTC',
    });
  });

  it('wants the end after the start, and no end on a ONCE schedule', () => {
    const before = problem(
      check(withSchedule({ startAt: new Date('2026-12-01T03:00:00Z'), recurrence: { frequency: 'DAILY', every: 1 }, endAt: new Date('2026-12-01T02:00:00Z') })),
    );
    expect(before.field).toBe('schedule.endAt');
    expect(before.message).toMatch(/schedule\.endAt 2026-12-01T02:00:00.000Z must be after schedule\.startAt 2026-12-01T03:00:00.000Z/);
    expect(problem(check(withSchedule({ endAt: new Date('2027-01-01T00:00:00Z') })))).toMatchObject({ field: 'schedule.endAt', message: expect.stringMatching(/applies to recurring schedules/) });
  });

  it('refuses a schedule whose end comes before its first run', () => {
    const found = problem(
      check(
        withSchedule({
          startAt: new Date('2026-12-01T03:00:00+01:00'),
          recurrence: { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: 2, weekDay: 'TUESDAY' }, offsetDays: 2 },
          endAt: new Date('2026-12-05T00:00:00+01:00'),
        }),
      ),
    );
    expect(found.field).toBe('schedule.endAt');
    expect(found.message).toMatch(/the schedule never runs/);
  });

  const recurrenceCases: Array<[string, Recurrence, string, RegExp]> = [
    ['an unknown frequency', { frequency: 'YEARLY' } as never, 'schedule.recurrence.frequency', /ONCE, HOURLY, DAILY, WEEKLY, MONTHLY/],
    ['every 0 days', { frequency: 'DAILY', every: 0 }, 'schedule.recurrence.every', /from 1 to 31 for DAILY \(every N days\); got 0/],
    ['every 24 hours', { frequency: 'HOURLY', every: 24 }, 'schedule.recurrence.every', /from 1 to 23 for HOURLY/],
    ['every 1.5 weeks', { frequency: 'WEEKLY', every: 1.5, weekDays: ['MONDAY'] }, 'schedule.recurrence.every', /whole number from 1 to 12 for WEEKLY/],
    ['every 13 months', { frequency: 'MONTHLY', every: 13, monthDay: 1 }, 'schedule.recurrence.every', /from 1 to 12 for MONTHLY/],
    ['a week without days', { frequency: 'WEEKLY', every: 1, weekDays: [] }, 'schedule.recurrence.weekDays', /at least one day/],
    ['a day twice', { frequency: 'WEEKLY', every: 1, weekDays: ['MONDAY', 'FRIDAY', 'MONDAY'] }, 'schedule.recurrence.weekDays[2]', /names MONDAY twice/],
    ['an unknown day', { frequency: 'WEEKLY', every: 1, weekDays: ['FUNDAY' as never] }, 'schedule.recurrence.weekDays[0]', /MONDAY, TUESDAY/],
    ['day 31', { frequency: 'MONTHLY', every: 1, monthDay: 31 }, 'schedule.recurrence.monthDay', /31 is not in every month; choose 1 to 28, or -1 for the last day of the month/],
    ['day 0', { frequency: 'MONTHLY', every: 1, monthDay: 0 }, 'schedule.recurrence.monthDay', /from 1 to 28, or -1/],
    ['a 5th Tuesday', { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: 5 as never, weekDay: 'TUESDAY' }, offsetDays: 0 }, 'schedule.recurrence.nthWeekday.ordinal', /1, 2, 3, 4, or -1 for the last/],
    ['an unknown weekday', { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: 2, weekDay: 'TUE' as never }, offsetDays: 0 }, 'schedule.recurrence.nthWeekday.weekDay', /must be one of MONDAY/],
    ['an offset of a week', { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: 2, weekDay: 'TUESDAY' }, offsetDays: 7 }, 'schedule.recurrence.offsetDays', /from -6 to 6; got 7/],
    [
      'both a day and an nth weekday',
      { frequency: 'MONTHLY', every: 1, monthDay: 3, nthWeekday: { ordinal: 2, weekDay: 'TUESDAY' }, offsetDays: 0 } as never,
      'schedule.recurrence',
      /either monthDay .* or nthWeekday/,
    ],
  ];

  it.each(recurrenceCases)('refuses %s', (_title, recurrence, field, message) => {
    const found = problem(check(recurring(recurrence)));
    expect(found.field).toBe(field);
    expect(found.message).toMatch(message);
  });

  it('keeps an HOURLY window shorter than the time between runs', () => {
    expect(problem(check(input({ ...recurring({ frequency: 'HOURLY', every: 1 }), windowMinutes: 90 })))).toEqual({
      field: 'windowMinutes',
      message: 'windowMinutes 90 is longer than the 60 minutes between two runs of an HOURLY schedule every 1 hour; shorten the window or run less often',
    });
    expect(check(input({ ...recurring({ frequency: 'HOURLY', every: 2 }), windowMinutes: 90 })).ok).toBe(true);
  });

  it('accepts each recurrence', () => {
    const recurrences: Recurrence[] = [
      { frequency: 'HOURLY', every: 6 },
      { frequency: 'DAILY', every: 2 },
      { frequency: 'WEEKLY', every: 2, weekDays: ['SATURDAY'] },
      { frequency: 'MONTHLY', every: 1, monthDay: -1 },
      { frequency: 'MONTHLY', every: 3, monthDay: 28 },
      { frequency: 'MONTHLY', every: 1, nthWeekday: { ordinal: -1, weekDay: 'FRIDAY' }, offsetDays: -6 },
    ];
    for (const recurrence of recurrences) expect(valid(check(recurring(recurrence))).schedule!.recurrence).toEqual(recurrence);
  });
});

describe('validateDeploymentInput: a deployment run on demand only', () => {
  it('has no schedule and no first run', () => {
    const value = valid(check(input({ schedule: null, onDemandOnly: true })));
    expect(value.schedule).toBeNull();
    expect(value.firstRunAt).toBeNull();
  });

  it('refuses a schedule beside it, at the schedule field', () => {
    expect(check(input({ onDemandOnly: true }))).toEqual({
      ok: false,
      field: 'schedule',
      message: 'a deployment run on demand only has no schedule: leave schedule out, or set onDemandOnly to false to schedule it',
    });
  });

  it('is not what a deployment without a schedule gets: that one runs once, in 30 minutes, as the seed says', () => {
    const value = valid(check(input({ schedule: null })));
    expect(value.schedule).toMatchObject({ timeZone: 'UTC', recurrence: { frequency: 'ONCE' }, endAt: null });
    expect(value.firstRunAt!.toISOString()).toBe('2026-11-25T12:31:00.000Z');
  });
});

describe('forecastSchedule: when a schedule as typed would run', () => {
  it('says the default: once, in 30 minutes', () => {
    expect(forecastSchedule({ schedule: null, windowMinutes: 60 }, now, 3)).toEqual({
      ok: true,
      schedule: expect.objectContaining({ recurrence: { frequency: 'ONCE' } }),
      description: 'Once on 2026-11-25 at 12:31 UTC',
      nextRuns: [new Date('2026-11-25T12:31:00.000Z')],
    });
  });

  it('gives the next runs of a recurring schedule, by the rules a deployment follows', () => {
    const daily = forecastSchedule({ schedule: { startAt: new Date('2026-11-26T03:00:00+01:00'), timeZone: 'Europe/Paris', recurrence: { frequency: 'DAILY', every: 1 }, endAt: null }, windowMinutes: 60 }, now, 2);
    expect(daily).toMatchObject({ ok: true, description: 'Every day at 03:00 Europe/Paris', nextRuns: [new Date('2026-11-26T02:00:00Z'), new Date('2026-11-27T02:00:00Z')] });
    expect(forecastSchedule({ schedule: { startAt: null, timeZone: 'Mars/Olympus', recurrence: { frequency: 'ONCE' }, endAt: null }, windowMinutes: 60 }, now, 1)).toMatchObject({ ok: false, field: 'schedule.timeZone' });
    expect(forecastSchedule({ schedule: { startAt: null, timeZone: 'UTC', recurrence: { frequency: 'HOURLY', every: 1 }, endAt: null }, windowMinutes: 90 }, now, 1)).toMatchObject({ ok: false, field: 'windowMinutes' });
  });

  it('has no run on demand only', () => {
    expect(forecastSchedule({ schedule: null, onDemandOnly: true, windowMinutes: 60 }, now, 3)).toEqual({ ok: true, schedule: null, description: expect.stringMatching(/^On demand only/), nextRuns: [] });
  });
});

describe('the messages the service shares', () => {
  it('names the machines of the other OS type', () => {
    expect(otherOsTypeMessage(['win-1'], 'LINUX')).toBe('machineIds: win-1 is a WINDOWS machine; a LINUX deployment targets only LINUX machines');
    expect(otherOsTypeMessage(['a', 'b', 'c', 'd', 'e', 'f', 'g'], 'WINDOWS')).toBe(
      'machineIds: a, b, c, d, e and 2 more are LINUX machines; a WINDOWS deployment targets only WINDOWS machines',
    );
  });

  it('says the targets match nothing, and the name is taken', () => {
    expect(emptyTargetsMessage('LINUX')).toMatch(/match no machine: no live LINUX machine under update management/);
    expect(emptyTargetsMessage()).toMatch(/match no machine/);
    expect(duplicateNameMessage('nightly')).toBe('a deployment named "nightly" already exists; deployment names are unique');
  });
});
