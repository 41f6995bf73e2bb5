import { CLASSIFICATIONS, OS_TYPES, REBOOT_SETTINGS } from '../../domain/vocabulary.js';
import type { ApiClient } from './client.js';
import { OperatorError } from './errors.js';
import {
  CliCreateDeploymentDocument,
  CliDeleteDeploymentDocument,
  CliPauseDeploymentDocument,
  CliResumeDeploymentDocument,
  CliRunDeploymentNowDocument,
  CliUpdateDeploymentDocument,
  type CliDeploymentFragment,
  type CliDeploymentRolloutFragment,
  type Frequency,
  type LimitInput,
  type WeekDay,
} from './graphql.generated.js';
import { ringSpec, stepSpec } from './deploymentSpec.js';
import { allDeployments, deploymentOf, machineIdOf } from './lookup.js';
import { ago, note, outputFormat, printRecord, printRows, type Column } from './output.js';
import { collect, connect, dateTime, enumList, enumValue, listOption, wholeNumber } from './options.js';

export { collect };

const FREQUENCIES: readonly Frequency[] = ['ONCE', 'HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY'];
const WEEK_DAYS: readonly WeekDay[] = ['MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY', 'SATURDAY', 'SUNDAY'];

const limitText = (v: unknown) => {
  const limit = v as { value: number; unit: string } | null;
  return limit ? `${limit.value}${limit.unit === 'PERCENT' ? '%' : ''}` : '-';
};

export const DEPLOYMENT_COLUMNS: Column[] = [
  { path: 'name', header: 'NAME' },
  { path: 'osType', header: 'OS' },
  { path: 'classifications', header: 'CLASSIFICATIONS', format: (v) => (v as string[]).join(',') },
  { path: 'schedule.description', header: 'SCHEDULE', format: (v) => (v ? String(v) : 'on demand only') },
  { path: 'onDemandOnly', table: false },
  { path: 'schedule.startAt', table: false },
  { path: 'schedule.timeZone', table: false },
  { path: 'schedule.endAt', table: false },
  { path: 'schedule.recurrence.frequency', table: false },
  { path: 'windowMinutes', header: 'WINDOW', format: (v) => `${String(v)}m` },
  { path: 'rebootSetting', table: false },
  { path: 'machineIds', table: false },
  { path: 'targetFilter.tags', table: false },
  { path: 'targetFilter.nameContains', table: false },
  { path: 'includePatterns', table: false },
  { path: 'excludePatterns', table: false },
  { path: 'maxConcurrent.value', table: false },
  { path: 'maxConcurrent.unit', table: false },
  { path: 'maxFailures.value', table: false },
  { path: 'maxFailures.unit', table: false },
  { path: 'paused', header: 'PAUSED', format: (v) => (v ? 'yes' : '') },
  { path: 'nextRunAt', header: 'NEXT RUN', format: (v) => (v ? ago(v) : '-') },
  { path: 'lastRun.status', header: 'LAST RUN', format: (v, row) => (v ? `${String(v)} ${ago((row.lastRun as { startedAt: string | null }).startedAt)}` : '-') },
  { path: 'lastRun.id', table: false },
  { path: 'id', header: 'ID' },
];

export async function deploymentsList(options: { output?: string }): Promise<void> {
  const format = outputFormat(options.output);
  const deployments = await allDeployments(connect());
  printRows(format, deployments, DEPLOYMENT_COLUMNS);
  if (format === 'table') note(deployments.length === 0 ? 'No deployment yet (fleetpatch deployments create, or fleetpatch apply -f FILE).' : `${deployments.length} deployment${deployments.length === 1 ? '' : 's'}`);
}

function printDeployment(format: ReturnType<typeof outputFormat>, d: CliDeploymentFragment): void {
  if (format === 'csv') {
    printRows('csv', [d], DEPLOYMENT_COLUMNS);
    return;
  }
  const targets = [d.machineIds.length > 0 ? `${d.machineIds.length} machine${d.machineIds.length === 1 ? '' : 's'} by id` : '', d.targetFilter ? `tags [${d.targetFilter.tags.join(', ')}]${d.targetFilter.nameContains ? ` and name containing "${d.targetFilter.nameContains}"` : ''}` : '']
    .filter(Boolean)
    .join(' + ');
  printRecord(format, d, [
    ['Name', d.name],
    ['Id', d.id],
    ['OS type', d.osType],
    ['Targets', targets],
    ['Machine ids', d.machineIds],
    ['Classifications', d.classifications],
    ['Include', d.includePatterns],
    ['Exclude', d.excludePatterns],
    ['Schedule', d.schedule ? `${d.schedule.description}${d.schedule.endAt ? `, until ${d.schedule.endAt}` : ''}` : 'none: on demand only (deployments run)'],
    ['Window', `${d.windowMinutes} minutes`],
    ['Reboot', d.rebootSetting],
    ['Max concurrent', limitText(d.maxConcurrent)],
    ['Max failures', limitText(d.maxFailures)],
    ['Paused', d.paused ? 'yes' : 'no'],
    ['Next run', d.nextRunAt ?? 'none'],
    ['Last run', d.lastRun ? `${d.lastRun.id} ${d.lastRun.status}` : 'none'],
  ]);
}

export async function deploymentsShow(ref: string, options: { output?: string }): Promise<void> {
  const format = outputFormat(options.output);
  printDeployment(format, await deploymentOf(connect(), ref));
}

/** A limit as typed: `10` machines or `25%` of them. */
function limitOption(option: string, value: string | undefined): LimitInput | undefined {
  if (value === undefined) return undefined;
  const match = /^\s*(\d+)\s*(%?)\s*$/.exec(value);
  if (!match) throw new OperatorError(`${option} must be a number of machines (10) or a percentage (25%); got "${value}".`);
  return { value: Number(match[1]), unit: match[2] ? 'PERCENT' : 'COUNT' };
}

/** `2:TUESDAY` or `last:tue`: the nth weekday of a month. */
function nthWeekdayOption(value: string | undefined): { ordinal: number; weekDay: WeekDay } | undefined {
  if (value === undefined) return undefined;
  const match = /^\s*(-?\d|last)\s*[: ]\s*(\w+)\s*$/i.exec(value);
  if (!match) throw new OperatorError(`--nth-weekday must be ORDINAL:DAY such as 2:TUESDAY (the second Tuesday) or last:FRIDAY; got "${value}".`);
  return { ordinal: match[1]!.toLowerCase() === 'last' ? -1 : Number(match[1]), weekDay: weekDay('--nth-weekday', match[2]!) };
}

function weekDay(option: string, value: string): WeekDay {
  const word = value.trim().toUpperCase();
  const found = WEEK_DAYS.find((d) => d === word || (word.length >= 3 && d.startsWith(word)));
  if (!found) throw new OperatorError(`${option}: "${value}" is not a day of the week (MONDAY or MON ... SUNDAY).`);
  return found;
}

/** The options `deployments create` and `update` share. */
export interface DeploymentOptions {
  os?: string;
  classifications?: string;
  machine?: string[];
  tag?: string[];
  nameContains?: string;
  include?: string[];
  exclude?: string[];
  start?: string;
  timeZone?: string;
  end?: string;
  frequency?: string;
  every?: string;
  weekDays?: string;
  monthDay?: string;
  nthWeekday?: string;
  offsetDays?: string;
  window?: string;
  reboot?: string;
  maxConcurrent?: string;
  maxFailures?: string;
  onDemand?: boolean;
  paused?: boolean;
  output?: string;
}

/** The deployment input the options describe, over `base` (the stored deployment for `update`). */
async function inputFromOptions(client: ApiClient, name: string, o: DeploymentOptions, base?: CliDeploymentFragment & CliDeploymentRolloutFragment) {
  const machineRefs = listOption(o.machine);
  const machineIds = machineRefs ? await Promise.all(machineRefs.map((ref) => machineIdOf(client, ref))) : base?.machineIds;
  const tags = listOption(o.tag);
  const targetFilter =
    tags !== undefined || o.nameContains !== undefined
      ? { tags: tags ?? base?.targetFilter?.tags ?? [], nameContains: o.nameContains ?? base?.targetFilter?.nameContains ?? null }
      : base?.targetFilter
        ? { tags: base.targetFilter.tags, nameContains: base.targetFilter.nameContains }
        : null;
  const stored = base?.schedule?.recurrence;
  const frequency = o.frequency !== undefined ? enumValue('--frequency', o.frequency, FREQUENCIES) : (stored?.frequency ?? 'ONCE');
  const recurrence = {
    frequency,
    every: wholeNumber('--every', o.every, { min: 1, max: 1000 }) ?? stored?.every ?? 1,
    weekDays: o.weekDays !== undefined ? listOption(o.weekDays)!.map((d) => weekDay('--week-days', d)) : (stored?.weekDays ?? null),
    monthDay: wholeNumber('--month-day', o.monthDay, { min: -1, max: 31 }) ?? stored?.monthDay ?? null,
    nthWeekday: nthWeekdayOption(o.nthWeekday) ?? (stored?.nthWeekday ? { ordinal: stored.nthWeekday.ordinal, weekDay: stored.nthWeekday.weekDay } : null),
    offsetDays: wholeNumber('--offset-days', o.offsetDays, { min: -6, max: 6 }) ?? stored?.offsetDays ?? null,
  };
  // Any schedule option schedules a deployment that ran on demand only; --on-demand takes its schedule away.
  const scheduleGiven = [o.start, o.timeZone, o.end, o.frequency, o.every, o.weekDays, o.monthDay, o.nthWeekday, o.offsetDays].some((v) => v !== undefined);
  if (o.onDemand && scheduleGiven) throw new OperatorError('--on-demand means no schedule: leave out --start, --time-zone, --end and the recurrence options.');
  const onDemandOnly = o.onDemand ? true : scheduleGiven ? false : (base?.onDemandOnly ?? false);
  const osType = o.os !== undefined ? enumValue('--os', o.os, OS_TYPES) : base?.osType;
  const classifications = enumList('--classifications', o.classifications, CLASSIFICATIONS) ?? base?.classifications;
  if (!osType) throw new OperatorError('--os is required: LINUX or WINDOWS.');
  if (!classifications) throw new OperatorError('--classifications is required, e.g. CRITICAL,SECURITY.');
  const limit = (option: string, value: string | undefined, stored: { value: number; unit: LimitInput['unit'] } | null | undefined) => {
    if (value !== undefined && value.trim().toLowerCase() === 'none') return null;
    return limitOption(option, value) ?? (stored ? { value: stored.value, unit: stored.unit } : null);
  };
  return {
    name,
    osType,
    classifications,
    machineIds: machineIds ?? [],
    targetFilter,
    includePatterns: listOption(o.include) ?? base?.includePatterns ?? [],
    excludePatterns: listOption(o.exclude) ?? base?.excludePatterns ?? [],
    onDemandOnly,
    schedule: onDemandOnly
      ? null
      : {
          startAt: dateTime('--start', o.start) ?? base?.schedule?.startAt ?? null,
          timeZone: o.timeZone ?? base?.schedule?.timeZone ?? 'UTC',
          endAt: o.end !== undefined && o.end.trim().toLowerCase() === 'none' ? null : (dateTime('--end', o.end) ?? base?.schedule?.endAt ?? null),
          recurrence,
        },
    windowMinutes: wholeNumber('--window', o.window, { min: 1, max: 100_000 }) ?? base?.windowMinutes ?? 120,
    rebootSetting: o.reboot !== undefined ? enumValue('--reboot', o.reboot, REBOOT_SETTINGS) : (base?.rebootSetting ?? 'IF_REQUIRED'),
    maxConcurrent: limit('--max-concurrent', o.maxConcurrent, base?.maxConcurrent),
    maxFailures: limit('--max-failures', o.maxFailures, base?.maxFailures),
    // Kept as stored: the API replaces a deployment whole, and these have no options here.
    useBaseline: base?.useBaseline ?? false,
    rings: base?.rings?.map(ringSpec) ?? null,
    steps: base?.steps?.map(stepSpec) ?? null,
  };
}

export async function deploymentsCreate(name: string, options: DeploymentOptions): Promise<void> {
  const client = connect();
  const input = await inputFromOptions(client, name, options);
  let { createDeployment: created } = await client.request(CliCreateDeploymentDocument, { input });
  if (options.paused) created = (await client.request(CliPauseDeploymentDocument, { id: created.id })).pauseDeployment;
  const format = outputFormat(options.output);
  if (format === 'table') process.stdout.write(`Created deployment ${created.name} (${created.id}); next run ${created.nextRunAt ?? 'none'}${created.paused ? ', paused' : ''}.\n`);
  else printDeployment(format, created);
}

export async function deploymentsUpdate(ref: string, options: DeploymentOptions & { rename?: string }): Promise<void> {
  const client = connect();
  const current = await deploymentOf(client, ref);
  const input = await inputFromOptions(client, options.rename ?? current.name, options, current);
  const { updateDeployment: updated } = await client.request(CliUpdateDeploymentDocument, { id: current.id, input });
  const format = outputFormat(options.output);
  if (format === 'table') process.stdout.write(`Updated deployment ${updated.name} (${updated.id}); next run ${updated.nextRunAt ?? 'none'}.\n`);
  else printDeployment(format, updated);
}

export async function deploymentsDelete(ref: string): Promise<void> {
  const client = connect();
  const d = await deploymentOf(client, ref);
  await client.request(CliDeleteDeploymentDocument, { id: d.id });
  process.stdout.write(`Deleted deployment ${d.name} (${d.id}); its runs and results stay.\n`);
}

export async function deploymentsPause(ref: string, paused: boolean): Promise<void> {
  const client = connect();
  const d = await deploymentOf(client, ref);
  if (paused) await client.request(CliPauseDeploymentDocument, { id: d.id });
  else await client.request(CliResumeDeploymentDocument, { id: d.id });
  process.stdout.write(`${paused ? 'Paused' : 'Resumed'} deployment ${d.name} (${d.id}).\n`);
}

/** `deployments run NAME [--watch]`: runs it now; with --watch, follows the run and exits with its outcome. */
export async function deploymentsRun(ref: string, options: { watch?: boolean; logs?: boolean; plain?: boolean }): Promise<void> {
  const client = connect();
  const d = await deploymentOf(client, ref);
  const { runDeploymentNow: run } = await client.request(CliRunDeploymentNowDocument, { id: d.id });
  if (!options.watch) {
    process.stdout.write(`${run.id}\n`);
    note(`Started run ${run.id} of ${d.name}; follow it with: fleetpatch runs watch ${run.id}`);
    return;
  }
  note(`Started run ${run.id} of ${d.name}.`);
  const { watchRun } = await import('./watch.js');
  process.exitCode = await watchRun(client, run.id, options);
}
