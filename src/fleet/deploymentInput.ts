/**
 * A deployment as the operator enters it, and the rules it must follow before anything is stored
 * or scheduled. `validateDeploymentInput` answers the first problem, with the field it is about
 * (`schedule.startAt`, `includePatterns[2]`) and a message that says the rule, for the API's
 * BAD_USER_INPUT; or the deployment normalised (trimmed, defaults filled in, time zone canonical).
 *
 * The checks that need the database (a machine of the other OS type, targets that match no
 * machine, a name already taken) are the service's; their messages are here so every caller
 * phrases them the same way.
 */
import { CLASSIFICATIONS_BY_OS, ENVIRONMENTS, OS_TYPES, REBOOT_SETTINGS, type Classification } from '../domain/vocabulary.js';
import type { OsType } from './compliance.js';
import type { Limit, RebootSetting } from './planning.js';
import {
  FREQUENCIES,
  LAST_DAY_OF_MONTH,
  MAX_CALENDAR_YEAR,
  MAX_EVERY,
  MAX_OFFSET_DAYS,
  NTH_WEEKDAY_ORDINALS,
  WEEK_DAYS,
  canonicalTimeZone,
  describeSchedule,
  nextOccurrences,
  scheduleAnchor,
  type DeploymentSchedule,
  type Recurrence,
  type WeekDay,
} from './schedule.js';
import type { Environment, Ring, RingFilter } from './rollout.js';
import { validateSteps, type DeploymentStep, type StepInput } from './steps.js';
import { normaliseTags, tagProblem } from './tags.js';

export interface TargetFilter {
  /** Machines carrying every one of these tags. */
  tags: string[];
  /** And whose name contains this (case-insensitive). */
  nameContains: string | null;
}

export interface DeploymentScheduleInput {
  /** Null: now + 30 minutes. */
  startAt: Date | null;
  timeZone: string;
  recurrence: Recurrence;
  endAt: Date | null;
}

export interface DeploymentInput {
  name: string;
  osType: OsType;
  machineIds: string[];
  targetFilter: TargetFilter | null;
  classifications: Classification[];
  /** Install what each machine's patch baseline approves (baselines.ts) instead of listing classifications. */
  useBaseline?: boolean;
  includePatterns: string[];
  excludePatterns: string[];
  /** Null: the default schedule, once at now + 30 minutes (the seed's), unless onDemandOnly. */
  schedule: DeploymentScheduleInput | null;
  /** No schedule at all: the deployment runs only when an operator starts it (runDeploymentNow). */
  onDemandOnly?: boolean;
  windowMinutes: number;
  rebootSetting: RebootSetting;
  maxConcurrent: Limit | null;
  maxFailures: Limit | null;
  /** Absent or null: no rings, every target at once (as before rings existed). */
  rings?: RingInput[] | null;
  /** Pre and post steps in order (steps.ts); absent or null: none. */
  steps?: StepInput[] | null;
}

/** A ring as entered: exactly one of filter, machineIds, percent. */
export interface RingInput {
  name?: string | null;
  filter?: { tags?: string[] | null; nameContains?: string | null; environments?: string[] | null } | null;
  machineIds?: string[] | null;
  percent?: number | null;
  maxConcurrent?: Limit | null;
  gate?: { maxFailures?: Limit | null; soakSeconds?: number | null; requireApproval?: boolean | null } | null;
}

export interface NormalisedDeployment extends Omit<DeploymentInput, 'schedule' | 'onDemandOnly' | 'rings' | 'steps' | 'useBaseline'> {
  useBaseline: boolean;
  /** Null: no rings. */
  rings: Ring[] | null;
  /** Null: no steps. */
  steps: DeploymentStep[] | null;
  /** Null: on demand only, no scheduled run. */
  schedule: DeploymentSchedule | null;
  /** When the first scheduled run happens (what Temporal will fire), for nextRunAt; null on demand only. */
  firstRunAt: Date | null;
}

/** How the input relates to what is stored: an update of a deployment keeps its start as it is. */
export interface ValidationContext {
  /**
   * The stored deployment's start, when the input replaces one. The same start again is kept even
   * when it is past: it anchors a recurring schedule's time of day, and a new version of a
   * deployment that began running last month must not need a new one. A schedule kept that way
   * may have no run left (a ONCE that ran): the update is allowed and runs nothing more.
   */
  storedStartAt?: Date | null;
  /** The server-side secrets steps may name (their values stay on the server). Absent: none. */
  secretNames?: ReadonlySet<string>;
}

export type DeploymentValidation = { ok: true; value: NormalisedDeployment } | { ok: false; field: string; message: string };

// ---------------------------------------------------------------------------------------------
// The rules' numbers
// ---------------------------------------------------------------------------------------------

export const NAME_MAX_LENGTH = 64;
export const WINDOW_MINUTES = { min: 30, max: 360 } as const;
/** The seed's default start: now + 30 minutes. */
export const DEFAULT_START_DELAY_MS = 30 * 60_000;
/** A start this little in the past is a clock difference, not a mistake. */
export const START_CLOCK_SLACK_MS = 60_000;
export const MAX_MACHINE_IDS = 1000;
/** What a deployment without a schedule gets: once, at now + 30 minutes, in UTC. */
export const DEFAULT_SCHEDULE: DeploymentScheduleInput = { startAt: null, timeZone: 'UTC', recurrence: { frequency: 'ONCE' }, endAt: null };
export const MAX_PATTERNS = 100;
export const PATTERN_MAX_LENGTH = 200;
export const NAME_CONTAINS_MAX_LENGTH = 64;
export const LIMIT_RANGES = {
  maxConcurrent: { COUNT: { min: 1, max: 10_000 }, PERCENT: { min: 1, max: 100 } },
  maxFailures: { COUNT: { min: 0, max: 10_000 }, PERCENT: { min: 0, max: 100 } },
} as const;

export const MAX_RINGS = 10;
export const RING_NAME_MAX_LENGTH = 64;
/** A soak longer than a week is a run left waiting, not a soak: approval is the tool for that. */
export const MAX_SOAK_SECONDS = 7 * 24 * 3600;

export { CLASSIFICATIONS_BY_OS };
const OS_WORD: Record<OsType, string> = { LINUX: 'Linux', WINDOWS: 'Windows' };

const NAME = /^[\p{L}\p{N} ._:()-]+$/u;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A Linux package name (Debian, RPM) with `*` and `?` wildcards, optionally `=version` (epoch `:` and `~` allowed). */
const LINUX_PATTERN = /^[A-Za-z0-9._+*?-]+(=[A-Za-z0-9._+~:-]+)?$/;
/** A Windows KB id, `KB5031356` or `5031356`, optionally ending in `*` (`KB503*`); `*` alone is every KB. */
const WINDOWS_PATTERN = /^(KB)?(\d+\*?|\*)$/i;

/**
 * A recurrence as clients send it (GraphQL's RecurrenceInput, a deployment file: one shape with
 * optional fields), as the union the schedule rules take. Absent: ONCE.
 */
export interface RecurrenceFields {
  frequency: Recurrence['frequency'];
  every?: number | null;
  weekDays?: WeekDay[] | null;
  monthDay?: number | null;
  nthWeekday?: { ordinal: number; weekDay: WeekDay } | null;
  offsetDays?: number | null;
}

export function recurrenceOfInput(input: RecurrenceFields | null | undefined): Recurrence {
  if (!input || input.frequency === 'ONCE') return { frequency: 'ONCE' };
  const every = input.every ?? 1;
  if (input.frequency === 'HOURLY' || input.frequency === 'DAILY') return { frequency: input.frequency, every };
  if (input.frequency === 'WEEKLY') return { frequency: 'WEEKLY', every, weekDays: input.weekDays ?? [] };
  return input.nthWeekday
    ? { frequency: 'MONTHLY', every, nthWeekday: { ordinal: input.nthWeekday.ordinal as 1, weekDay: input.nthWeekday.weekDay }, offsetDays: input.offsetDays ?? 0 }
    : { frequency: 'MONTHLY', every, monthDay: input.monthDay ?? 0 };
}

// ---------------------------------------------------------------------------------------------
// Messages the service shares
// ---------------------------------------------------------------------------------------------

/** Machines named in machineIds that are of the other OS type (the service looks them up). */
export function otherOsTypeMessage(machineNames: string[], osType: OsType): string {
  const other: OsType = osType === 'LINUX' ? 'WINDOWS' : 'LINUX';
  const shown = machineNames.slice(0, 5).join(', ');
  const more = machineNames.length > 5 ? ` and ${machineNames.length - 5} more` : '';
  const verb = machineNames.length === 1 ? 'is a' : 'are';
  return `machineIds: ${shown}${more} ${verb} ${other} machine${machineNames.length === 1 ? '' : 's'}; a ${osType} deployment targets only ${osType} machines`;
}

/** The targets, resolved now, match no machine. */
export function emptyTargetsMessage(osType?: OsType): string {
  const kind = osType ? `${osType} ` : '';
  return `the deployment's targets match no machine: no live ${kind}machine under update management is in machineIds or matches targetFilter`;
}

/** The name is taken by another (live) deployment: the API answers CONFLICT. */
export function duplicateNameMessage(name: string): string {
  return `a deployment named "${name}" already exists; deployment names are unique`;
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

class InputProblem extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function fail(field: string, message: string): never {
  throw new InputProblem(field, message);
}

const isWholeNumber = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isValidDate = (v: unknown): v is Date => v instanceof Date && !Number.isNaN(v.getTime());
const quote = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);

/**
 * The first problem with a deployment input, as `{ ok: false, field, message }`, or the deployment
 * normalised: name trimmed, machine ids lowercased, tags sorted, patterns trimmed and unique, start
 * defaulted (now + 30 minutes) and rounded up to a whole minute, time zone canonical, first run
 * computed; or no schedule at all for a deployment run on demand only.
 */
export function validateDeploymentInput(input: DeploymentInput, now: Date, context: ValidationContext = {}): DeploymentValidation {
  try {
    return { ok: true, value: normalise(input, now, context) };
  } catch (error) {
    if (error instanceof InputProblem) return { ok: false, field: error.field, message: error.message };
    throw error;
  }
}

function normalise(input: DeploymentInput, now: Date, context: ValidationContext): NormalisedDeployment {
  const name = checkName(input.name);
  const osType = input.osType;
  if (!OS_TYPES.includes(osType)) fail('osType', `osType must be LINUX or WINDOWS; got ${quote(String(osType))}`);
  const machineIds = checkMachineIds(input.machineIds ?? []);
  const targetFilter = checkTargetFilter(input.targetFilter ?? null);
  if (machineIds.length === 0 && targetFilter === null) {
    fail('machineIds', 'a deployment needs targets: machineIds, targetFilter or both');
  }
  const rebootSetting = input.rebootSetting;
  if (!REBOOT_SETTINGS.includes(rebootSetting)) {
    fail('rebootSetting', `rebootSetting must be one of ${REBOOT_SETTINGS.join(', ')}; got ${quote(String(rebootSetting))}`);
  }
  const useBaseline = input.useBaseline === true;
  if (useBaseline && (input.classifications ?? []).length > 0) {
    fail('classifications', 'a deployment that installs what the baseline approves (useBaseline) lists no classifications: the baseline decides');
  }
  const classifications = useBaseline ? [] : checkClassifications(input.classifications ?? [], osType, rebootSetting);
  const includePatterns = checkPatterns('includePatterns', input.includePatterns ?? [], osType);
  const excludePatterns = checkPatterns('excludePatterns', input.excludePatterns ?? [], osType);
  const windowMinutes = input.windowMinutes;
  if (!isWholeNumber(windowMinutes) || windowMinutes < WINDOW_MINUTES.min || windowMinutes > WINDOW_MINUTES.max) {
    fail(
      'windowMinutes',
      `windowMinutes must be a whole number of minutes from ${WINDOW_MINUTES.min} to ${WINDOW_MINUTES.max} (the seed allows ${WINDOW_MINUTES.min} to ${WINDOW_MINUTES.max} minutes); got ${String(windowMinutes)}`,
    );
  }
  const { schedule, firstRunAt } = checkTiming(input, now, windowMinutes, context.storedStartAt ?? null);
  const maxConcurrent = checkLimit('maxConcurrent', input.maxConcurrent ?? null);
  const maxFailures = checkLimit('maxFailures', input.maxFailures ?? null);
  const rings = checkRings(input.rings ?? null);
  const checkedSteps = validateSteps(input.steps ?? null, { windowMinutes, secretNames: context.secretNames ?? new Set() });
  if (!checkedSteps.ok) fail(checkedSteps.field, checkedSteps.message);
  const steps = checkedSteps.value.length > 0 ? checkedSteps.value : null;
  return {
    name,
    osType,
    machineIds,
    targetFilter,
    classifications,
    useBaseline,
    includePatterns,
    excludePatterns,
    schedule,
    windowMinutes,
    rebootSetting,
    maxConcurrent,
    maxFailures,
    rings,
    steps,
    firstRunAt,
  };
}

function checkName(raw: string): string {
  const name = typeof raw === 'string' ? raw.trim() : '';
  if (name.length === 0) fail('name', 'name is required: 1 to 64 characters');
  const length = [...name].length;
  if (length > NAME_MAX_LENGTH) fail('name', `name is ${length} characters long; at most ${NAME_MAX_LENGTH}`);
  if (!NAME.test(name)) {
    const bad = [...name].find((c) => !NAME.test(c)) ?? '';
    fail('name', `name may hold letters, digits, spaces and - _ . : ( ) only; ${quote(bad)} is not allowed`);
  }
  return name;
}

function checkMachineIds(ids: string[], field = 'machineIds'): string[] {
  if (ids.length > MAX_MACHINE_IDS) {
    fail(field, `at most ${MAX_MACHINE_IDS} machineIds per deployment (the seed allows ${MAX_MACHINE_IDS} machines per deployment); got ${ids.length}. Use a targetFilter for larger groups`);
  }
  const seen = new Map<string, number>();
  return ids.map((raw, i) => {
    const id = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
    if (!UUID.test(id)) fail(`${field}[${i}]`, `${field}[${i}] ${quote(String(raw))} is not a machine id (a UUID)`);
    const first = seen.get(id);
    if (first !== undefined) fail(`${field}[${i}]`, `${field}[${i}] repeats ${field}[${first}] (${id}); list each machine once`);
    seen.set(id, i);
    return id;
  });
}

function checkTargetFilter(filter: TargetFilter | null): TargetFilter | null {
  if (filter === null) return null;
  const tags = filter.tags ?? [];
  const problem = tagProblem(tags);
  if (problem) fail('targetFilter.tags', `targetFilter.tags: ${problem}`);
  let nameContains = typeof filter.nameContains === 'string' ? filter.nameContains.trim() : null;
  if (nameContains === '') nameContains = null;
  if (nameContains !== null && nameContains.length > NAME_CONTAINS_MAX_LENGTH) {
    fail('targetFilter.nameContains', `targetFilter.nameContains is ${nameContains.length} characters long; at most ${NAME_CONTAINS_MAX_LENGTH}`);
  }
  return { tags: normaliseTags(tags), nameContains };
}

function checkClassifications(raw: Classification[], osType: OsType, rebootSetting: RebootSetting): Classification[] {
  const allowed = CLASSIFICATIONS_BY_OS[osType];
  const other: OsType = osType === 'LINUX' ? 'WINDOWS' : 'LINUX';
  const takes = `${OS_WORD[osType]} deployments take ${allowed.join(', ')}`;
  if (raw.length === 0 && rebootSetting !== 'REBOOT_ONLY') {
    fail('classifications', `choose at least one classification (${takes}); only a REBOOT_ONLY deployment may have none`);
  }
  raw.forEach((c, i) => {
    if (allowed.includes(c)) return;
    if (CLASSIFICATIONS_BY_OS[other].includes(c)) fail(`classifications[${i}]`, `${c} is a ${OS_WORD[other]} classification; ${takes}`);
    fail(`classifications[${i}]`, `${quote(String(c))} is not a classification; ${takes}`);
  });
  // Canonical order, each once.
  return allowed.filter((c) => raw.includes(c));
}

/** Why a package or KB pattern is not one (`at` names it in the message), or null: the rule deployments and baselines share. */
export function patternProblem(at: string, pattern: string, osType: OsType): string | null {
  if (pattern.length === 0) return `${at} is empty; a pattern has 1 to ${PATTERN_MAX_LENGTH} characters`;
  if (pattern.length > PATTERN_MAX_LENGTH) return `${at} is ${pattern.length} characters long; at most ${PATTERN_MAX_LENGTH}`;
  if (osType === 'LINUX' && !LINUX_PATTERN.test(pattern)) {
    return `${at} ${quote(pattern)} is not a package pattern: a package name of letters, digits and . _ + - with * and ? wildcards, optionally =version (openssl*, openssl=3.0.2-0ubuntu1.12)`;
  }
  if (osType === 'WINDOWS' && !WINDOWS_PATTERN.test(pattern)) return `${at} ${quote(pattern)} is not a KB pattern: a KB id such as KB5031356 or 5031356, optionally ending in * (KB503*)`;
  return null;
}

function checkPatterns(field: 'includePatterns' | 'excludePatterns', raw: string[], osType: OsType): string[] {
  if (raw.length > MAX_PATTERNS) fail(field, `at most ${MAX_PATTERNS} ${field}; got ${raw.length}`);
  const out: string[] = [];
  raw.forEach((value, i) => {
    const at = `${field}[${i}]`;
    const pattern = typeof value === 'string' ? value.trim() : '';
    if (pattern.length === 0) fail(at, `${at} is empty; a pattern has 1 to ${PATTERN_MAX_LENGTH} characters`);
    if (pattern.length > PATTERN_MAX_LENGTH) fail(at, `${at} is ${pattern.length} characters long; at most ${PATTERN_MAX_LENGTH}`);
    if (osType === 'LINUX' && !LINUX_PATTERN.test(pattern)) {
      fail(
        at,
        `${at} ${quote(pattern)} is not a package pattern: a package name of letters, digits and . _ + - with * and ? wildcards, optionally =version (openssl*, openssl=3.0.2-0ubuntu1.12)`,
      );
    }
    if (osType === 'WINDOWS' && !WINDOWS_PATTERN.test(pattern)) {
      fail(at, `${at} ${quote(pattern)} is not a KB pattern: a KB id such as KB5031356 or 5031356, optionally ending in * (KB503*)`);
    }
    const normal = osType === 'WINDOWS' ? pattern.toUpperCase() : pattern;
    if (!out.includes(normal)) out.push(normal);
  });
  return out;
}

function checkLimit(field: string, limit: Limit | null, kind: 'maxConcurrent' | 'maxFailures' = field as 'maxConcurrent' | 'maxFailures', of = "the run's machines"): Limit | null {
  if (limit === null) return null;
  const ranges = LIMIT_RANGES[kind];
  if (limit.unit !== 'COUNT' && limit.unit !== 'PERCENT') fail(`${field}.unit`, `${field}.unit must be COUNT or PERCENT; got ${quote(String(limit.unit))}`);
  const { min, max } = ranges[limit.unit];
  const what = limit.unit === 'COUNT' ? 'machines' : `percent of ${of}`;
  if (!isWholeNumber(limit.value) || limit.value < min || limit.value > max) {
    fail(`${field}.value`, `${field}.value must be a whole number from ${min} to ${max} (${what}); got ${String(limit.value)}`);
  }
  return { value: limit.value, unit: limit.unit };
}

// ---------------------------------------------------------------------------------------------
// Rings
// ---------------------------------------------------------------------------------------------

function checkRings(raw: RingInput[] | null): Ring[] | null {
  if (raw === null) return null;
  if (raw.length === 0) fail('rings', 'rings is empty: give at least one ring, or leave rings out to update every target at once');
  if (raw.length > MAX_RINGS) fail('rings', `at most ${MAX_RINGS} rings; got ${raw.length}`);
  const names = new Map<string, number>();
  const rings = raw.map((ring, i) => {
    const rings = checkRing(ring, i);
    const first = names.get(rings.name.toLowerCase());
    if (first !== undefined) fail(`rings[${i}].name`, `rings[${i}].name ${quote(rings.name)} repeats rings[${first}].name; name each ring once`);
    names.set(rings.name.toLowerCase(), i);
    return rings;
  });
  rings.forEach((ring, i) => {
    if (ring.percent === 100 && i < rings.length - 1) {
      fail(`rings[${i}].percent`, `rings[${i}] takes 100 % of the remaining targets, so rings[${i + 1}] and after would be empty; only the last ring may take 100 %`);
    }
  });
  const last = rings.length - 1;
  const lastGate = rings[last]!.gate;
  // The last ring's gate would promote to nothing: a soak or an approval there would only delay the run's end.
  if (lastGate.soakSeconds > 0) fail(`rings[${last}].gate.soakSeconds`, `rings[${last}] is the last ring: its gate promotes to no further ring, so it has no soak; set soakSeconds on the rings before it`);
  if (lastGate.requireApproval) fail(`rings[${last}].gate.requireApproval`, `rings[${last}] is the last ring: its gate promotes to no further ring, so there is nothing to approve; ask for approval on the ring before it`);
  return rings;
}

function checkRing(raw: RingInput, i: number): Ring {
  const at = `rings[${i}]`;
  const name = typeof raw.name === 'string' && raw.name.trim() !== '' ? raw.name.trim() : `Ring ${i + 1}`;
  if ([...name].length > RING_NAME_MAX_LENGTH) fail(`${at}.name`, `${at}.name is ${[...name].length} characters long; at most ${RING_NAME_MAX_LENGTH}`);
  if (!NAME.test(name)) fail(`${at}.name`, `${at}.name may hold letters, digits, spaces and - _ . : ( ) only`);
  const ways = [raw.filter != null, raw.machineIds != null, raw.percent != null].filter(Boolean).length;
  if (ways !== 1) {
    fail(at, `${at} chooses its machines in exactly one way: filter (tags, nameContains, environments), machineIds, or percent of the remaining targets; it gives ${ways === 0 ? 'none' : 'more than one'}`);
  }
  let filter: RingFilter | null = null;
  let machineIds: string[] | null = null;
  let percent: number | null = null;
  if (raw.filter != null) {
    const tags = raw.filter.tags ?? [];
    const problem = tagProblem(tags);
    if (problem) fail(`${at}.filter.tags`, `${at}.filter.tags: ${problem}`);
    let nameContains = typeof raw.filter.nameContains === 'string' ? raw.filter.nameContains.trim() : null;
    if (nameContains === '') nameContains = null;
    if (nameContains !== null && nameContains.length > NAME_CONTAINS_MAX_LENGTH) fail(`${at}.filter.nameContains`, `${at}.filter.nameContains is ${nameContains.length} characters long; at most ${NAME_CONTAINS_MAX_LENGTH}`);
    const environments = raw.filter.environments ?? [];
    environments.forEach((e, j) => {
      if (!ENVIRONMENTS.includes(e as Environment)) fail(`${at}.filter.environments[${j}]`, `${at}.filter.environments[${j}] must be one of ${ENVIRONMENTS.join(', ')}; got ${quote(String(e))}`);
    });
    if (tags.length === 0 && nameContains === null && environments.length === 0) {
      fail(`${at}.filter`, `${at}.filter matches every remaining target: give tags, nameContains or environments, or use percent: 100`);
    }
    filter = { tags: normaliseTags(tags), nameContains, environments: ENVIRONMENTS.filter((e) => environments.includes(e)) };
  } else if (raw.machineIds != null) {
    if (raw.machineIds.length === 0) fail(`${at}.machineIds`, `${at}.machineIds is empty: name at least one machine`);
    machineIds = checkMachineIds(raw.machineIds, `${at}.machineIds`);
  } else {
    percent = raw.percent!;
    if (!isWholeNumber(percent) || percent < 1 || percent > 100) fail(`${at}.percent`, `${at}.percent must be a whole number from 1 to 100 (percent of the targets no earlier ring took); got ${String(percent)}`);
  }
  const maxConcurrent = checkLimit(`${at}.maxConcurrent`, raw.maxConcurrent ?? null, 'maxConcurrent', "the ring's machines");
  const gate = raw.gate ?? {};
  const maxFailures = checkLimit(`${at}.gate.maxFailures`, gate.maxFailures ?? null, 'maxFailures', "the ring's machines");
  const soakSeconds = gate.soakSeconds ?? 0;
  if (!isWholeNumber(soakSeconds) || soakSeconds < 0 || soakSeconds > MAX_SOAK_SECONDS) {
    fail(`${at}.gate.soakSeconds`, `${at}.gate.soakSeconds must be a whole number of seconds from 0 to ${MAX_SOAK_SECONDS} (a week); got ${String(soakSeconds)}`);
  }
  return { name, filter, machineIds, percent, maxConcurrent, gate: { maxFailures, soakSeconds, requireApproval: gate.requireApproval ?? false } };
}

// ---------------------------------------------------------------------------------------------
// The schedule
// ---------------------------------------------------------------------------------------------

/** The schedule, the default one, or none for a deployment run on demand only. */
function checkTiming(
  input: Pick<DeploymentInput, 'schedule' | 'onDemandOnly'>,
  now: Date,
  windowMinutes: number,
  storedStartAt: Date | null = null,
): { schedule: DeploymentSchedule | null; firstRunAt: Date | null } {
  if (!input.onDemandOnly) return checkSchedule(input.schedule ?? DEFAULT_SCHEDULE, now, windowMinutes, storedStartAt);
  if (input.schedule) fail('schedule', 'a deployment run on demand only has no schedule: leave schedule out, or set onDemandOnly to false to schedule it');
  return { schedule: null, firstRunAt: null };
}

export type ScheduleForecast = { ok: true; schedule: DeploymentSchedule | null; description: string; nextRuns: Date[] } | { ok: false; field: string; message: string };

/**
 * When a deployment's schedule as entered would run, without the rest of the deployment: its
 * sentence and its next `count` runs (none for one run on demand only), or its first problem, by the
 * same rules as validateDeploymentInput. For a form that says when the next scheduled run is while
 * the operator types.
 */
export function forecastSchedule(input: Pick<DeploymentInput, 'schedule' | 'onDemandOnly' | 'windowMinutes'>, now: Date, count: number): ScheduleForecast {
  try {
    const { schedule } = checkTiming(input, now, input.windowMinutes);
    return { ok: true, schedule, description: describeSchedule(schedule), nextRuns: nextOccurrences(schedule, now, count) };
  } catch (error) {
    if (error instanceof InputProblem) return { ok: false, field: error.field, message: error.message };
    throw error;
  }
}

function checkSchedule(input: DeploymentScheduleInput, now: Date, windowMinutes: number, storedStartAt: Date | null): { schedule: DeploymentSchedule; firstRunAt: Date | null } {
  const recurrence = checkRecurrence(input.recurrence);

  const kept = storedStartAt !== null && isValidDate(input.startAt) && scheduleAnchor(input.startAt).getTime() === storedStartAt.getTime();
  let startAt: Date;
  if (kept) {
    startAt = storedStartAt;
  } else if (input.startAt === null || input.startAt === undefined) {
    startAt = scheduleAnchor(new Date(now.getTime() + DEFAULT_START_DELAY_MS));
  } else {
    if (!isValidDate(input.startAt)) fail('schedule.startAt', 'schedule.startAt is not a valid date-time');
    if (input.startAt.getTime() < now.getTime() - START_CLOCK_SLACK_MS) {
      fail(
        'schedule.startAt',
        `schedule.startAt ${input.startAt.toISOString()} is in the past (now is ${now.toISOString()}); choose a time after now, or leave it out for now + 30 minutes`,
      );
    }
    // A one-off start within the clock slack runs at the next whole minute: Temporal does not run
    // a time that is already past when the schedule is created. A recurring one keeps its time of day.
    const start = recurrence.frequency === 'ONCE' && input.startAt.getTime() <= now.getTime() ? new Date(now.getTime() + 1) : input.startAt;
    startAt = scheduleAnchor(start);
  }
  if (startAt.getUTCFullYear() >= MAX_CALENDAR_YEAR) {
    fail('schedule.startAt', `schedule.startAt ${startAt.toISOString()} is too far ahead; Temporal schedules end with the year ${MAX_CALENDAR_YEAR}`);
  }

  const timeZone = canonicalTimeZone(input.timeZone);
  if (timeZone === null) {
    fail('schedule.timeZone', `schedule.timeZone ${quote(String(input.timeZone))} is not a known IANA time zone; use a name such as Europe/Paris, America/New_York or UTC`);
  }

  let endAt: Date | null = null;
  if (input.endAt !== null && input.endAt !== undefined) {
    if (!isValidDate(input.endAt)) fail('schedule.endAt', 'schedule.endAt is not a valid date-time');
    if (recurrence.frequency === 'ONCE') {
      fail('schedule.endAt', 'schedule.endAt applies to recurring schedules; a ONCE schedule runs at its startAt only: leave endAt out');
    }
    if (input.endAt.getTime() <= startAt.getTime()) {
      fail('schedule.endAt', `schedule.endAt ${input.endAt.toISOString()} must be after schedule.startAt ${startAt.toISOString()}`);
    }
    endAt = input.endAt;
  }

  if (recurrence.frequency === 'HOURLY' && windowMinutes > recurrence.every * 60) {
    fail(
      'windowMinutes',
      `windowMinutes ${windowMinutes} is longer than the ${recurrence.every * 60} minutes between two runs of an HOURLY schedule every ${recurrence.every} hour${recurrence.every === 1 ? '' : 's'}; shorten the window or run less often`,
    );
  }

  const schedule: DeploymentSchedule = { startAt, timeZone, recurrence, endAt };
  const [firstRunAt] = nextOccurrences(schedule, now, 1);
  if (!firstRunAt && kept) return { schedule, firstRunAt: null };
  if (!firstRunAt) {
    const at = endAt ? `before schedule.endAt ${endAt.toISOString()}` : `before the year ${MAX_CALENDAR_YEAR}`;
    fail(endAt ? 'schedule.endAt' : 'schedule.recurrence', `the schedule never runs: it has no run from schedule.startAt ${startAt.toISOString()} ${at}`);
  }
  return { schedule, firstRunAt };
}

function checkEvery(every: unknown, frequency: Exclude<Recurrence['frequency'], 'ONCE'>): number {
  const max = MAX_EVERY[frequency];
  const unit = { HOURLY: 'hours', DAILY: 'days', WEEKLY: 'weeks', MONTHLY: 'months' }[frequency];
  if (!isWholeNumber(every) || every < 1 || every > max) {
    fail('schedule.recurrence.every', `schedule.recurrence.every must be a whole number from 1 to ${max} for ${frequency} (every N ${unit}); got ${String(every)}`);
  }
  return every;
}

function checkWeekDay(day: unknown, field: string): WeekDay {
  if (!WEEK_DAYS.includes(day as WeekDay)) fail(field, `${field} must be one of ${WEEK_DAYS.join(', ')}; got ${quote(String(day))}`);
  return day as WeekDay;
}

function checkRecurrence(recurrence: Recurrence): Recurrence {
  if (!recurrence || !FREQUENCIES.includes(recurrence.frequency)) {
    fail('schedule.recurrence.frequency', `schedule.recurrence.frequency must be one of ${FREQUENCIES.join(', ')}; got ${quote(String(recurrence?.frequency))}`);
  }
  switch (recurrence.frequency) {
    case 'ONCE':
      return { frequency: 'ONCE' };
    case 'HOURLY':
    case 'DAILY':
      return { frequency: recurrence.frequency, every: checkEvery(recurrence.every, recurrence.frequency) };
    case 'WEEKLY': {
      const every = checkEvery(recurrence.every, 'WEEKLY');
      const days = recurrence.weekDays ?? [];
      if (days.length === 0) fail('schedule.recurrence.weekDays', 'schedule.recurrence.weekDays must name at least one day for a WEEKLY schedule');
      days.forEach((d, i) => {
        checkWeekDay(d, `schedule.recurrence.weekDays[${i}]`);
        if (days.indexOf(d) !== i) fail(`schedule.recurrence.weekDays[${i}]`, `schedule.recurrence.weekDays names ${d} twice; name each day once`);
      });
      return { frequency: 'WEEKLY', every, weekDays: WEEK_DAYS.filter((d) => days.includes(d)) };
    }
    case 'MONTHLY': {
      const every = checkEvery(recurrence.every, 'MONTHLY');
      const hasDay = 'monthDay' in recurrence && recurrence.monthDay !== null && recurrence.monthDay !== undefined;
      const hasNth = 'nthWeekday' in recurrence && recurrence.nthWeekday !== null && recurrence.nthWeekday !== undefined;
      if (hasDay === hasNth) {
        fail('schedule.recurrence', 'a MONTHLY schedule takes either monthDay (a day of the month) or nthWeekday with offsetDays (e.g. 2 days after the 2nd Tuesday), not both or neither');
      }
      if ('monthDay' in recurrence && hasDay) {
        const day = recurrence.monthDay;
        if (!isWholeNumber(day) || day === 0 || day < LAST_DAY_OF_MONTH || day > 31) {
          fail('schedule.recurrence.monthDay', `schedule.recurrence.monthDay must be a day from 1 to 28, or -1 for the last day of the month; got ${String(day)}`);
        }
        if (day > 28) {
          fail('schedule.recurrence.monthDay', `schedule.recurrence.monthDay ${day} is not in every month; choose 1 to 28, or -1 for the last day of the month`);
        }
        return { frequency: 'MONTHLY', every, monthDay: day };
      }
      if (!('nthWeekday' in recurrence)) throw new Error('unreachable');
      const { ordinal, weekDay } = recurrence.nthWeekday;
      if (!NTH_WEEKDAY_ORDINALS.includes(ordinal)) {
        fail('schedule.recurrence.nthWeekday.ordinal', `schedule.recurrence.nthWeekday.ordinal must be 1, 2, 3, 4, or -1 for the last; got ${String(ordinal)}`);
      }
      checkWeekDay(weekDay, 'schedule.recurrence.nthWeekday.weekDay');
      const offsetDays = recurrence.offsetDays ?? 0;
      if (!isWholeNumber(offsetDays) || Math.abs(offsetDays) > MAX_OFFSET_DAYS) {
        fail('schedule.recurrence.offsetDays', `schedule.recurrence.offsetDays must be a whole number of days from -${MAX_OFFSET_DAYS} to ${MAX_OFFSET_DAYS}; got ${String(offsetDays)}`);
      }
      return { frequency: 'MONTHLY', every, nthWeekday: { ordinal, weekDay }, offsetDays };
    }
  }
}
