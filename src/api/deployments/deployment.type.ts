import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { ConnectionType } from '../relay.js';
import { Classification, Environment, OsType, Severity } from '../machines/machine.enums.js';
import { Machine, PendingUpdate } from '../machines/machine.type.js';

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
  HALTED = 'HALTED',
}
registerEnumType(DeploymentRunStatus, {
  name: 'DeploymentRunStatus',
  description: "PARTIALLY_FAILED: one or more updates (or machines) failed. FAILED: nothing succeeded. HALTED: a ring's gate failed (see error); resumeDeploymentRun goes on, cancelDeploymentRun ends it.",
});

export enum RingStatus {
  PENDING = 'PENDING',
  RUNNING = 'RUNNING',
  SOAKING = 'SOAKING',
  WAITING_FOR_APPROVAL = 'WAITING_FOR_APPROVAL',
  HALTED = 'HALTED',
  PROMOTED = 'PROMOTED',
  DONE = 'DONE',
  SKIPPED = 'SKIPPED',
  REJECTED = 'REJECTED',
  CANCELED = 'CANCELED',
}
registerEnumType(RingStatus, {
  name: 'RingStatus',
  description: 'A ring in a run: PENDING, RUNNING (its machines), SOAKING (its gate waits out the soak), WAITING_FOR_APPROVAL, HALTED (too many failures), PROMOTED (the next ring started), DONE (the last ring), SKIPPED (no machine), REJECTED, CANCELED.',
});

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

@ObjectType({ description: "A ring's machines by tags, part of the name, and environment (every condition given must hold)." })
export class RingFilter {
  @Field(() => [String]) tags!: string[];
  @Field(() => String, { nullable: true }) nameContains!: string | null;
  @Field(() => [Environment]) environments!: Environment[];
}

@ObjectType({ description: 'What a ring waits for before the next ring starts.' })
export class RingGate {
  @Field(() => Limit, { nullable: true, description: "At most this many (or this percent) of the ring's machines may fail; null: none may." }) maxFailures!: Limit | null;
  @Field(() => Int, { description: 'Seconds to wait after its last machine finished.' }) soakSeconds!: number;
  @Field(() => Boolean, { description: "An OPERATOR's approval (approveRing) is needed." }) requireApproval!: boolean;
}

@ObjectType({ description: 'One ring of a deployment: its machines are chosen by exactly one of filter, machineIds, percent.' })
export class Ring {
  @Field(() => String) name!: string;
  @Field(() => RingFilter, { nullable: true }) filter!: RingFilter | null;
  @Field(() => [ID], { nullable: true }) machineIds!: string[] | null;
  @Field(() => Int, { nullable: true, description: 'Percent of the targets no earlier ring took (rounded up).' }) percent!: number | null;
  @Field(() => Limit, { nullable: true, description: "Null: the deployment's maxConcurrent." }) maxConcurrent!: Limit | null;
  @Field(() => RingGate) gate!: RingGate;
}

@ObjectType({ description: 'A named, scheduled update deployment.' })
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

  @Field(() => [Ring], { nullable: true, description: 'Rings in order; null: every target at once.' })
  rings!: Ring[] | null;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date)
  updatedAt!: Date;
}

export const DeploymentConnection = ConnectionType('Deployment', Deployment);

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

@ObjectType({ description: 'One machine inside a run.' })
export class MachineRun {
  @Field(() => ID) id!: string;
  @Field(() => ID) machineId!: string;
  @Field(() => String) machineName!: string;
  @Field(() => MachineRunStatus) status!: MachineRunStatus;
  @Field(() => Date, { nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true }) endedAt!: Date | null;
  @Field(() => String, { nullable: true, description: 'NOT_NEEDED, NOT_ALLOWED, REBOOTED or TIMED_OUT.' }) rebootOutcome!: string | null;
  @Field(() => String, { nullable: true }) error!: string | null;
  @Field(() => Int, { nullable: true, description: 'Its ring (1-based) in a ringed run.' }) ring!: number | null;
}

@ObjectType({ description: 'A ring in a run, and where its gate is.' })
export class RunRing {
  @Field(() => Int, { description: '1-based; what approveRing and rejectRing take.' }) ring!: number;
  @Field(() => String) name!: string;
  @Field(() => Ring, { description: 'The ring as the deployment defined it when the run began: how it chose its machines, its rate control and its gate.' }) definition!: Ring;
  @Field(() => RingStatus) status!: RingStatus;
  @Field(() => Int) machineCount!: number;
  @Field(() => Int, { nullable: true, description: 'Machines that failed or timed out, once the ring finished.' }) failedCount!: number | null;
  @Field(() => Date, { nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true, description: 'Its last machine finished.' }) endedAt!: Date | null;
  @Field(() => Date, { nullable: true, description: "The ring's own maintenance window." }) windowEndsAt!: Date | null;
  @Field(() => Date, { nullable: true }) soakEndsAt!: Date | null;
  @Field(() => String, { nullable: true, description: 'Why it halted, or the rejection that ended the run.' }) reason!: string | null;
  @Field(() => String, { nullable: true, description: 'The token that approved or resumed it.' }) decidedBy!: string | null;
  @Field(() => Date, { nullable: true }) decidedAt!: Date | null;
}

@ObjectType({ description: "A member of a run's frozen update set: a package (or KB) at one version." })
export class UpdateSetMember {
  @Field(() => String) name!: string;
  @Field(() => String) version!: string;
}

@ObjectType({ description: 'One execution of a deployment.' })
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
}

export const DeploymentRunConnection = ConnectionType('DeploymentRun', DeploymentRun);

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
  @Field(() => Int, { nullable: true, description: 'Its ring (1-based) if the run began now; null without rings. Later rings install only what the first ring fixes.' }) ring!: number | null;
}

@ObjectType({ description: 'Something the operator should know before saving; not an error.' })
export class PreviewWarning {
  @Field(() => String, { description: 'The input field it is about, e.g. rings[1].filter.' }) field!: string;
  @Field(() => String) message!: string;
}

@ObjectType()
export class DeploymentPreview {
  @Field(() => Int) windowMinutes!: number;
  @Field(() => [PreviewWarning], { description: 'E.g. a ring whose filter matches none of the targets now.' }) warnings!: PreviewWarning[];
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

@ObjectType({ description: 'A change in a run: its status, a machine, some updates, or new job stream lines.' })
export class RunProgress {
  @Field(() => ID) runId!: string;
  @Field(() => String, { description: 'RUN, MACHINE, UPDATES or LINES; RESYNC after the server lost its connection to PostgreSQL for a while: events may have been missed, read the run again.' }) kind!: string;
  @Field(() => DeploymentRun) run!: DeploymentRun;
  @Field(() => MachineRun, { nullable: true }) machineRun!: MachineRun | null;
  @Field(() => [UpdateResult]) updates!: UpdateResult[];
  @Field(() => [RunLogLine]) lines!: RunLogLine[];
}
