import { Field, ID, InputType, Int } from 'type-graphql';
import { Classification, Environment, OsType } from '../machines/machine.enums.js';
import { Frequency, LimitUnit, RebootSetting, WeekDay } from './deployment.type.js';

@InputType()
export class LimitInput {
  @Field(() => Int)
  value!: number;

  @Field(() => LimitUnit, { defaultValue: LimitUnit.COUNT })
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
  @Field(() => [String], { defaultValue: [] })
  tags!: string[];

  @Field(() => String, { nullable: true, description: 'Part of the name (any case).' })
  nameContains?: string | null;

  @Field(() => [Environment], { defaultValue: [] })
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

  @Field(() => RingFilterInput, { nullable: true })
  filter?: RingFilterInput | null;

  @Field(() => [ID], { nullable: true })
  machineIds?: string[] | null;

  @Field(() => Int, { nullable: true, description: '1 to 100; only the last ring may take 100.' })
  percent?: number | null;

  @Field(() => LimitInput, { nullable: true, description: "Default: the deployment's maxConcurrent." })
  maxConcurrent?: LimitInput | null;

  @Field(() => RingGateInput, { nullable: true })
  gate?: RingGateInput | null;
}

@InputType()
export class NthWeekdayInput {
  @Field(() => Int, { description: '1 to 4, or -1 for the last.' })
  ordinal!: number;

  @Field(() => WeekDay)
  weekDay!: WeekDay;
}

@InputType({ description: 'ONCE, or every N hours / days / weeks (on weekDays) / months (on monthDay, or on the nth weekday plus offsetDays).' })
export class RecurrenceInput {
  @Field(() => Frequency)
  frequency!: Frequency;

  @Field(() => Int, { defaultValue: 1 })
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

@InputType()
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

  @Field(() => OsType)
  osType!: OsType;

  @Field(() => [String], { defaultValue: [], description: 'Machines by id.' })
  machineIds!: string[];

  @Field(() => TargetFilterInput, { nullable: true })
  targetFilter?: TargetFilterInput | null;

  @Field(() => [Classification], { description: 'Linux: CRITICAL, SECURITY, OTHER. Windows: all eight.' })
  classifications!: Classification[];

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

  @Field(() => RebootSetting, { defaultValue: RebootSetting.IF_REQUIRED })
  rebootSetting!: RebootSetting;

  @Field(() => LimitInput, { nullable: true })
  maxConcurrent?: LimitInput | null;

  @Field(() => LimitInput, { nullable: true })
  maxFailures?: LimitInput | null;

  @Field(() => [RingInput], { nullable: true, description: 'Roll out ring by ring, each behind the previous gate; leave out to update every target at once.' })
  rings?: RingInput[] | null;
}
