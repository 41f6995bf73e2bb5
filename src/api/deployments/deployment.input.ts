import { Field, ID, InputType, Int } from 'type-graphql';
import { Classification, Environment, OsType } from '../machines/machine.enums.js';
import { DeploymentStepInput } from './step.input.js';
import { Frequency, LimitUnit, RebootSetting, WeekDay } from './deployment.type.js';

@InputType({ description: "A number of machines, as a count or a percentage of the run's machines." })
export class LimitInput {
  @Field(() => Int, { description: 'The number, in its unit (at most 100 for PERCENT).' })
  value!: number;

  @Field(() => LimitUnit, { description: "COUNT of machines or PERCENT of the run's machines.", defaultValue: LimitUnit.COUNT })
  unit!: LimitUnit;
}

@InputType({ description: 'Machines matched when each run begins.' })
export class TargetFilterInput {
  @Field(() => [String], { defaultValue: [], description: 'Machines carrying every one of these tags.' })
  tags!: string[];

  @Field(() => String, { nullable: true, description: 'Machines whose name contains this (any case).' })
  nameContains?: string | null;
}

@InputType({ description: "A ring's machines among the run's targets: every condition given must hold." })
export class RingFilterInput {
  @Field(() => [String], { defaultValue: [], description: 'Tags a machine must all have.' })
  tags!: string[];

  @Field(() => String, { nullable: true, description: 'Part of the name (any case).' })
  nameContains?: string | null;

  @Field(() => [Environment], { defaultValue: [], description: 'Environments, one of which a machine must be in (empty: any).' })
  environments!: Environment[];
}

@InputType({ description: 'What a ring waits for before the next ring starts (not allowed on the last ring: soak and approval).' })
export class RingGateInput {
  @Field(() => LimitInput, { nullable: true, description: "At most this many (COUNT) or this percent (PERCENT) of the ring's machines may fail; default: none may. More halts the run." })
  maxFailures?: LimitInput | null;

  @Field(() => Int, { defaultValue: 0, description: 'Seconds to wait after its last machine finished, 0 to 604800.' })
  soakSeconds!: number;

  @Field(() => Boolean, { defaultValue: false, description: "An OPERATOR's approval (approveRing) is needed." })
  requireApproval!: boolean;
}

@InputType({ description: 'One ring: choose its machines by exactly one of filter, machineIds, percent (of the targets no earlier ring took).' })
export class RingInput {
  @Field(() => String, { nullable: true, description: 'Default: "Ring N".' })
  name?: string | null;

  @Field(() => RingFilterInput, { nullable: true, description: 'Its machines by tags, name and environment.' })
  filter?: RingFilterInput | null;

  @Field(() => [ID], { nullable: true, description: 'Its machines, named explicitly (each among the targets).' })
  machineIds?: string[] | null;

  @Field(() => Int, { nullable: true, description: '1 to 100; only the last ring may take 100.' })
  percent?: number | null;

  @Field(() => LimitInput, { nullable: true, description: "Default: the deployment's maxConcurrent." })
  maxConcurrent?: LimitInput | null;

  @Field(() => RingGateInput, { nullable: true, description: 'What it waits for before the next ring starts (default: no failure allowed, no soak, no approval).' })
  gate?: RingGateInput | null;
}

@InputType({ description: 'A weekday counted within its month, e.g. the second Tuesday.' })
export class NthWeekdayInput {
  @Field(() => Int, { description: '1 to 4, or -1 for the last.' })
  ordinal!: number;

  @Field(() => WeekDay, { description: 'The day of the week.' })
  weekDay!: WeekDay;
}

@InputType({ description: 'ONCE, or every N hours / days / weeks (on weekDays) / months (on monthDay, or on the nth weekday plus offsetDays).' })
export class RecurrenceInput {
  @Field(() => Frequency, { description: 'ONCE, HOURLY, DAILY, WEEKLY or MONTHLY.' })
  frequency!: Frequency;

  @Field(() => Int, { description: 'Every N hours, days, weeks or months (default 1).', defaultValue: 1 })
  every!: number;

  @Field(() => [WeekDay], { nullable: true, description: 'WEEKLY: the days it runs.' })
  weekDays?: WeekDay[] | null;

  @Field(() => Int, { nullable: true, description: 'MONTHLY: the day of the month (1 to 28, or -1 for the last day).' })
  monthDay?: number | null;

  @Field(() => NthWeekdayInput, { nullable: true, description: 'MONTHLY: the nth weekday (e.g. the second Tuesday).' })
  nthWeekday?: NthWeekdayInput | null;

  @Field(() => Int, { nullable: true, description: 'MONTHLY nth weekday: days after (or before, negative) it, -6 to 6.' })
  offsetDays?: number | null;
}

@InputType({ description: 'When a deployment runs: its first run, how it repeats, and its end.' })
export class ScheduleInput {
  @Field(() => Date, { nullable: true, description: 'The first run (default: now + 30 minutes, as the seed does).' })
  startAt?: Date | null;

  @Field(() => String, { defaultValue: 'UTC', description: 'IANA time zone, e.g. Europe/Paris.' })
  timeZone!: string;

  @Field(() => RecurrenceInput, { nullable: true, description: 'Default: ONCE.' })
  recurrence?: RecurrenceInput | null;

  @Field(() => Date, { nullable: true, description: 'No run after this.' })
  endAt?: Date | null;
}

@InputType({ description: 'A deployment: what to install where, when, and within which window.' })
export class DeploymentInput {
  @Field(() => String, { description: 'Unique name.' })
  name!: string;

  @Field(() => OsType, { description: 'The operating system family of its machines.' })
  osType!: OsType;

  @Field(() => [String], { defaultValue: [], description: 'Machines by id.' })
  machineIds!: string[];

  @Field(() => TargetFilterInput, { description: 'Machines chosen by what they are, resolved at every run (with or instead of machineIds).', nullable: true })
  targetFilter?: TargetFilterInput | null;

  @Field(() => [Classification], { defaultValue: [], description: 'Linux: CRITICAL, SECURITY, OTHER. Windows: all eight. Empty with useBaseline.' })
  classifications!: Classification[];

  @Field(() => Boolean, { defaultValue: false, description: "Install what each machine's patch baseline approves at the run's start, instead of listing classifications (then empty)." })
  useBaseline?: boolean;

  @Field(() => [String], { defaultValue: [], description: 'Always install what matches (package names with * and ?, name=version; KB ids on Windows).' })
  includePatterns!: string[];

  @Field(() => [String], { defaultValue: [], description: 'Never install what matches; wins over include.' })
  excludePatterns!: string[];

  @Field(() => ScheduleInput, { nullable: true, description: 'Default: once, at now + 30 minutes (UTC). Leave it out with onDemandOnly.' })
  schedule?: ScheduleInput | null;

  @Field(() => Boolean, { defaultValue: false, description: 'No schedule: the deployment runs only when runDeploymentNow starts it.' })
  onDemandOnly!: boolean;

  @Field(() => Int, { defaultValue: 120, description: 'Maintenance window in minutes, 30 to 360.' })
  windowMinutes!: number;

  @Field(() => RebootSetting, { description: 'When the machines reboot after installing (default IF_REQUIRED).', defaultValue: RebootSetting.IF_REQUIRED })
  rebootSetting!: RebootSetting;

  @Field(() => LimitInput, { description: 'At most this many machines at once (default: all, up to 100 at a time).', nullable: true })
  maxConcurrent?: LimitInput | null;

  @Field(() => LimitInput, { description: 'Start no new machine once this many have failed (default: no limit).', nullable: true })
  maxFailures?: LimitInput | null;

  @Field(() => [RingInput], { nullable: true, description: 'Roll out ring by ring, each behind the previous gate; leave out to update every target at once.' })
  rings?: RingInput[] | null;

  @Field(() => [DeploymentStepInput], { nullable: true, description: 'Pre and post steps in order: scripts on the machine and control-plane calls (see docs/steps.md).' })
  steps?: DeploymentStepInput[] | null;
}
