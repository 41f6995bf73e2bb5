import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { ConnectionType } from '../relay.js';
import { Classification, OsType, Severity } from '../machines/machine.enums.js';
import { Machine, PendingUpdate } from '../machines/machine.type.js';
import { Node } from '../node/node.type.js';

export enum RebootSetting {
  IF_REQUIRED = 'IF_REQUIRED',
  NEVER = 'NEVER',
  ALWAYS = 'ALWAYS',
  REBOOT_ONLY = 'REBOOT_ONLY',
}
registerEnumType(RebootSetting, { name: 'RebootSetting', description: 'IF_REQUIRED (default): reboot when an update or the machine needs it. NEVER. ALWAYS. REBOOT_ONLY: install nothing, reboot.' });

export enum RebootForecast {
  NO = 'NO',
  MAYBE = 'MAYBE',
  IF_REQUIRED = 'IF_REQUIRED',
  YES = 'YES',
}
registerEnumType(RebootForecast, {
  name: 'RebootForecast',
  description:
    'Whether a reboot follows the planned updates. YES: ALWAYS, REBOOT_ONLY, or IF_REQUIRED on a machine already pending one. IF_REQUIRED: an update suggests one (kernel, reboot_suggested). MAYBE: nothing planned is known to ask for one, but on apt any package may (a maintainer script writing /run/reboot-required). NO: none will follow. Every value but NO keeps the reboot reserve.',
});

export enum LimitUnit {
  COUNT = 'COUNT',
  PERCENT = 'PERCENT',
}
registerEnumType(LimitUnit, { name: 'LimitUnit' });

export enum Frequency {
  ONCE = 'ONCE',
  HOURLY = 'HOURLY',
  DAILY = 'DAILY',
  WEEKLY = 'WEEKLY',
  MONTHLY = 'MONTHLY',
}
registerEnumType(Frequency, { name: 'Frequency' });

export enum WeekDay {
  MONDAY = 'MONDAY',
  TUESDAY = 'TUESDAY',
  WEDNESDAY = 'WEDNESDAY',
  THURSDAY = 'THURSDAY',
  FRIDAY = 'FRIDAY',
  SATURDAY = 'SATURDAY',
  SUNDAY = 'SUNDAY',
}
registerEnumType(WeekDay, { name: 'WeekDay' });

export enum DeploymentRunStatus {
  SCHEDULED = 'SCHEDULED',
  IN_PROGRESS = 'IN_PROGRESS',
  SUCCEEDED = 'SUCCEEDED',
  PARTIALLY_FAILED = 'PARTIALLY_FAILED',
  FAILED = 'FAILED',
  CANCELED = 'CANCELED',
}
registerEnumType(DeploymentRunStatus, { name: 'DeploymentRunStatus', description: 'PARTIALLY_FAILED: one or more updates (or machines) failed. FAILED: nothing succeeded.' });

export enum MachineRunStatus {
  PENDING = 'PENDING',
  IN_PROGRESS = 'IN_PROGRESS',
  REBOOTING = 'REBOOTING',
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
  TIMED_OUT = 'TIMED_OUT',
  CANCELED = 'CANCELED',
  NOT_STARTED = 'NOT_STARTED',
}
registerEnumType(MachineRunStatus, { name: 'MachineRunStatus' });

export enum UpdateResultStatus {
  PENDING = 'PENDING',
  IN_PROGRESS = 'IN_PROGRESS',
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
  NOT_ATTEMPTED = 'NOT_ATTEMPTED',
  NOT_SELECTED = 'NOT_SELECTED',
}
registerEnumType(UpdateResultStatus, {
  name: 'UpdateResultStatus',
  description: 'NOT_ATTEMPTED: the window had too little time left to start it. NOT_SELECTED: left out by classification or include/exclude.',
});

@ObjectType()
export class Limit {
  @Field(() => Int)
  value!: number;

  @Field(() => LimitUnit)
  unit!: LimitUnit;
}

@ObjectType()
export class TargetFilter {
  @Field(() => [String], { description: 'Machines carrying every one of these tags.' })
  tags!: string[];

  @Field(() => String, { nullable: true })
  nameContains!: string | null;
}

@ObjectType()
export class NthWeekday {
  @Field(() => Int, { description: '1 to 4, or -1 for the last.' })
  ordinal!: number;

  @Field(() => WeekDay)
  weekDay!: WeekDay;
}

@ObjectType()
export class Recurrence {
  @Field(() => Frequency)
  frequency!: Frequency;

  @Field(() => Int, { description: 'Every N hours, days, weeks or months.' })
  every!: number;

  @Field(() => [WeekDay], { nullable: true })
  weekDays!: WeekDay[] | null;

  @Field(() => Int, { nullable: true })
  monthDay!: number | null;

  @Field(() => NthWeekday, { nullable: true })
  nthWeekday!: NthWeekday | null;

  @Field(() => Int, { nullable: true, description: 'Days after (or before) the nth weekday, e.g. 2 for two days after Patch Tuesday.' })
  offsetDays!: number | null;
}

@ObjectType()
export class Schedule {
  @Field(() => Date)
  startAt!: Date;

  @Field(() => String, { description: 'IANA time zone the schedule follows (e.g. Europe/Paris).' })
  timeZone!: string;

  @Field(() => Recurrence)
  recurrence!: Recurrence;

  @Field(() => Date, { nullable: true })
  endAt!: Date | null;

  @Field(() => String, { description: 'The schedule in words.' })
  description!: string;
}

@ObjectType({ implements: Node, description: 'A named, scheduled update deployment.' })
export class Deployment {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => OsType)
  osType!: OsType;

  @Field(() => [ID], { description: 'Machines named explicitly.' })
  machineIds!: string[];

  @Field(() => TargetFilter, { nullable: true, description: 'Machines matched at each run.' })
  targetFilter!: TargetFilter | null;

  @Field(() => [Classification])
  classifications!: Classification[];

  @Field(() => [String])
  includePatterns!: string[];

  @Field(() => [String])
  excludePatterns!: string[];

  @Field(() => Int, { description: 'Maintenance window in minutes (30 to 360).' })
  windowMinutes!: number;

  @Field(() => RebootSetting)
  rebootSetting!: RebootSetting;

  @Field(() => Limit, { nullable: true, description: 'At most this many machines at once (default: all, up to 100 at a time).' })
  maxConcurrent!: Limit | null;

  @Field(() => Limit, { nullable: true, description: 'Start no new machine once this many have failed (default: no limit).' })
  maxFailures!: Limit | null;

  @Field(() => Boolean, { description: 'Whether its schedule is paused (a deployment run on demand only has no scheduled run to pause).' })
  paused!: boolean;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date)
  updatedAt!: Date;
}

export const DeploymentConnection = ConnectionType('Deployment', Deployment, 'deployments');

@ObjectType({ description: 'How many updates ended in each status.' })
export class ResultCounts {
  @Field(() => Int) total!: number;
  @Field(() => Int) succeeded!: number;
  @Field(() => Int) failed!: number;
  @Field(() => Int) notAttempted!: number;
  @Field(() => Int) notSelected!: number;
  @Field(() => Int) pending!: number;
  @Field(() => Int) inProgress!: number;
}

@ObjectType({ description: 'One update on one machine in a run.' })
export class UpdateResult {
  @Field(() => String) name!: string;
  @Field(() => String, { nullable: true }) arch!: string | null;
  @Field(() => Classification) classification!: Classification;
  @Field(() => Severity, { nullable: true }) severity!: Severity | null;
  @Field(() => String, { nullable: true, description: 'The version before the run (null: a new package).' }) installedVersion!: string | null;
  @Field(() => String) targetVersion!: string;
  @Field(() => UpdateResultStatus) status!: UpdateResultStatus;
  @Field(() => UpdateResultStatus, { description: 'What the preview predicted: SUCCEEDED (it fits), NOT_ATTEMPTED or NOT_SELECTED.' }) predictedStatus!: UpdateResultStatus;
  @Field(() => String, { nullable: true, description: 'Why NOT_SELECTED or NOT_ATTEMPTED.' }) reason!: string | null;
  @Field(() => Int, { nullable: true, description: "The package manager's exit code." }) exitCode!: number | null;
  @Field(() => String, { nullable: true, description: "The package manager's error text." }) errorText!: string | null;
  @Field(() => Int) expectedSeconds!: number;
  @Field(() => Date, { nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true }) endedAt!: Date | null;
}

@ObjectType({ description: 'A line of the job stream (the package manager, the agent) or of the run log (the server).' })
export class RunLogLine {
  @Field(() => Int) id!: number;
  @Field(() => Date) at!: Date;
  @Field(() => String, { description: 'stdout, stderr, agent or server.' }) stream!: string;
  @Field(() => String) line!: string;
  @Field(() => ID, { nullable: true }) machineRunId!: string | null;
}

@ObjectType({ implements: Node, description: 'One machine inside a run.' })
export class MachineRun {
  @Field(() => ID) id!: string;
  @Field(() => ID) machineId!: string;
  @Field(() => String) machineName!: string;
  @Field(() => MachineRunStatus) status!: MachineRunStatus;
  @Field(() => Date, { nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true }) endedAt!: Date | null;
  @Field(() => String, { nullable: true, description: 'NOT_NEEDED, NOT_ALLOWED, REBOOTED or TIMED_OUT.' }) rebootOutcome!: string | null;
  @Field(() => String, { nullable: true }) error!: string | null;
}

@ObjectType({ implements: Node, description: 'One execution of a deployment.' })
export class DeploymentRun {
  @Field(() => ID) id!: string;
  @Field(() => ID) deploymentId!: string;
  @Field(() => DeploymentRunStatus) status!: DeploymentRunStatus;
  @Field(() => String, { description: 'SCHEDULE or MANUAL.' }) trigger!: string;
  @Field(() => Date) createdAt!: Date;
  @Field(() => Date, { nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true }) endedAt!: Date | null;
  @Field(() => Date, { nullable: true }) windowEndsAt!: Date | null;
  @Field(() => String, { nullable: true }) error!: string | null;
  @Field(() => Int, {
    description:
      "The seq of the run's last progress event when this was read (0: none yet). Subscribe to deploymentRunProgress with after: progressSeq to receive every change after what this read showed, each once.",
  })
  progressSeq!: number;
}

export const DeploymentRunConnection = ConnectionType('DeploymentRun', DeploymentRun, 'deployment runs');
export const MachineRunConnection = ConnectionType('MachineRun', MachineRun, 'machine runs');
export const RunLogLineConnection = ConnectionType('RunLogLine', RunLogLine, 'log lines');

@ObjectType()
export class NotSelectedUpdate {
  @Field(() => PendingUpdate) update!: PendingUpdate;
  @Field(() => String) reason!: string;
}

@ObjectType()
export class PlannedUpdate extends PendingUpdate {
  @Field(() => Int) expectedSeconds!: number;
  @Field(() => Int) order!: number;
}

@ObjectType({ description: 'What a deployment would do on one machine, from its latest assessment.' })
export class MachinePreview {
  @Field(() => Machine) machine!: Machine;
  @Field(() => [PlannedUpdate], { description: 'Would be installed, in this order.' }) toInstall!: PlannedUpdate[];
  @Field(() => [PlannedUpdate], { description: 'Selected, but likely NOT_ATTEMPTED: the window is too short.' }) predictedNotAttempted!: PlannedUpdate[];
  @Field(() => [NotSelectedUpdate]) notSelected!: NotSelectedUpdate[];
  @Field(() => Int) expectedSeconds!: number;
  @Field(() => Int, { description: 'Seconds kept free at the end of the window for a reboot (0 when willReboot is NO).' }) rebootReserveSeconds!: number;
  @Field(() => RebootForecast) willReboot!: RebootForecast;
}

@ObjectType()
export class DeploymentPreview {
  @Field(() => Int) windowMinutes!: number;
  @Field(() => [MachinePreview]) machines!: MachinePreview[];
  @Field(() => Date, {
    nullable: true,
    description:
      "When the next scheduled run starts: for a saved deployment, Temporal's own next run (null when none is scheduled: run on demand only, paused, or a one-off schedule that has run); for an input, its first run.",
  })
  nextRunAt!: Date | null;
  @Field(() => Boolean, { description: 'The deployment has no schedule: it runs only when runDeploymentNow starts it.' }) onDemandOnly!: boolean;
  @Field(() => String, { description: 'The schedule in words ("Once on 2026-11-25 at 12:31 UTC", "On demand only: ...").' }) scheduleDescription!: string;
}

@ObjectType({ description: 'When a deployment schedule as entered would run.' })
export class ScheduleForecast {
  @Field(() => Boolean, { description: 'No schedule: the deployment would run only when runDeploymentNow starts it.' }) onDemandOnly!: boolean;
  @Field(() => String, { description: 'The schedule in words.' }) description!: string;
  @Field(() => [Date], { description: 'Its next runs, soonest first, at most count (empty on demand only).' }) nextRuns!: Date[];
}

export enum RunProgressKind {
  RUN = 'RUN',
  MACHINE = 'MACHINE',
  UPDATES = 'UPDATES',
  LINES = 'LINES',
}
registerEnumType(RunProgressKind, {
  name: 'RunProgressKind',
  description: 'What a progress event of a run is about.',
  valuesConfig: {
    RUN: { description: "The run's status or counts changed (it began, handed out jobs, or ended)." },
    MACHINE: { description: "A machine run's status changed: machineRun says to what." },
    UPDATES: { description: "Updates of one machine changed status: updates lists them." },
    LINES: { description: 'New lines in the job stream or the run log: lines holds them.' },
  },
});

@ObjectType({ description: 'A change in a run: its status, a machine, some updates, or new job stream lines, with the state as it is when the event is delivered.' })
export class RunProgress {
  @Field(() => ID, { description: 'The run.' }) runId!: string;
  @Field(() => Int, { description: "The event's number in its run (1, 2, 3... in the order the changes happened): pass the last one received as `after` when subscribing again, to miss nothing and receive nothing twice." }) seq!: number;
  @Field(() => RunProgressKind, { description: 'What changed.' }) kind!: RunProgressKind;
}
