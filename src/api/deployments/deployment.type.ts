import { Field, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { DeploymentStep, StepResult } from './step.type.js';
import { ConnectionType } from '../relay.js';
import { Classification, Environment, OsType, Severity } from '../machines/machine.enums.js';
import { Machine, PendingUpdate } from '../machines/machine.type.js';
import { Node } from '../node/node.type.js';
import { DEPLOYMENT_RUN_STATUSES, MACHINE_RUN_STATUSES, REBOOT_SETTINGS, UPDATE_RESULT_STATUSES, enumObject } from '../../domain/vocabulary.js';

export const RebootSetting = enumObject(REBOOT_SETTINGS);
export type RebootSetting = (typeof RebootSetting)[keyof typeof RebootSetting];
registerEnumType(RebootSetting, { name: 'RebootSetting', description: 'IF_REQUIRED (default): reboot when an update or the machine needs it. NEVER. ALWAYS. REBOOT_ONLY: install nothing, reboot.', valuesConfig: { ALWAYS: { description: 'Always reboot after installing.' }, IF_REQUIRED: { description: 'Reboot when an update or the machine needs it (default).' }, NEVER: { description: 'Never reboot.' }, REBOOT_ONLY: { description: 'Install nothing; reboot.' } } });

export enum RebootForecast {
  NO = 'NO',
  MAYBE = 'MAYBE',
  IF_REQUIRED = 'IF_REQUIRED',
  YES = 'YES',
}
registerEnumType(RebootForecast, {
  name: 'RebootForecast',
  description:
    'Whether a reboot follows the planned updates. YES: ALWAYS, REBOOT_ONLY, or IF_REQUIRED on a machine already pending one. IF_REQUIRED: an update suggests one (kernel, reboot_suggested). MAYBE: nothing planned is known to ask for one, but on apt any package may (a maintainer script writing /run/reboot-required). NO: none will follow. Every value but NO keeps the reboot reserve.', valuesConfig: { IF_REQUIRED: { description: 'An update suggests one (kernel, reboot_suggested).' }, MAYBE: { description: 'Nothing planned is known to ask for one, but the package manager may.' }, NO: { description: 'No reboot follows.' }, YES: { description: 'A reboot follows (ALWAYS, REBOOT_ONLY, or a machine already pending one).' } } });

export enum LimitUnit {
  COUNT = 'COUNT',
  PERCENT = 'PERCENT',
}
registerEnumType(LimitUnit, { name: 'LimitUnit', description: 'How a limit counts machines.', valuesConfig: { COUNT: { description: 'A number of machines.' }, PERCENT: { description: "A percentage of the run's machines (rounded up)." } } });

export enum Frequency {
  ONCE = 'ONCE',
  HOURLY = 'HOURLY',
  DAILY = 'DAILY',
  WEEKLY = 'WEEKLY',
  MONTHLY = 'MONTHLY',
}
registerEnumType(Frequency, { name: 'Frequency', description: 'How often a deployment schedule repeats.', valuesConfig: { DAILY: { description: 'Every N days.' }, HOURLY: { description: 'Every N hours.' }, MONTHLY: { description: 'Every N months, on a day of the month or an nth weekday.' }, ONCE: { description: 'One run only, at startAt.' }, WEEKLY: { description: 'Every N weeks, on the given days.' } } });

export enum WeekDay {
  MONDAY = 'MONDAY',
  TUESDAY = 'TUESDAY',
  WEDNESDAY = 'WEDNESDAY',
  THURSDAY = 'THURSDAY',
  FRIDAY = 'FRIDAY',
  SATURDAY = 'SATURDAY',
  SUNDAY = 'SUNDAY',
}
registerEnumType(WeekDay, { name: 'WeekDay', description: 'A day of the week.', valuesConfig: { MONDAY: { description: 'Monday.' }, TUESDAY: { description: 'Tuesday.' }, WEDNESDAY: { description: 'Wednesday.' }, THURSDAY: { description: 'Thursday.' }, FRIDAY: { description: 'Friday.' }, SATURDAY: { description: 'Saturday.' }, SUNDAY: { description: 'Sunday.' } } });

export const DeploymentRunStatus = enumObject(DEPLOYMENT_RUN_STATUSES);
export type DeploymentRunStatus = (typeof DeploymentRunStatus)[keyof typeof DeploymentRunStatus];
registerEnumType(DeploymentRunStatus, {
  name: 'DeploymentRunStatus',
  description: "PARTIALLY_FAILED: one or more updates (or machines) failed. FAILED: nothing succeeded. HALTED: a ring's gate failed (see error); resumeDeploymentRun goes on, cancelDeploymentRun ends it.",
  valuesConfig: {
    CANCELED: { description: 'Canceled by an operator, or never started.' },
    FAILED: { description: 'Nothing succeeded.' },
    HALTED: { description: "A ring's gate failed (see error): resumeDeploymentRun goes on, cancelDeploymentRun ends it." },
    IN_PROGRESS: { description: 'Running now.' },
    PARTIALLY_FAILED: { description: 'One or more updates (or machines) failed.' },
    SCHEDULED: { description: 'Created, not started yet.' },
    SUCCEEDED: { description: 'No update or machine failed.' },
  },
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
  description: 'Where a ring of a run stands.',
  valuesConfig: {
    PENDING: { description: 'Not started: an earlier ring is still going.' },
    RUNNING: { description: 'Its machines are being updated.' },
    SOAKING: { description: 'Its machines finished; its gate waits out the soak.' },
    WAITING_FOR_APPROVAL: { description: "Its gate waits for an OPERATOR's approveRing." },
    HALTED: { description: 'Too many of its machines failed: the run is HALTED.' },
    PROMOTED: { description: 'Its gate passed and the next ring started.' },
    DONE: { description: 'The last ring, finished.' },
    SKIPPED: { description: 'It had no machine.' },
    REJECTED: { description: 'An operator rejected it (rejectRing): the run ended.' },
    CANCELED: { description: 'The run was canceled before the ring finished.' },
  },
});

export const MachineRunStatus = enumObject(MACHINE_RUN_STATUSES);
export type MachineRunStatus = (typeof MachineRunStatus)[keyof typeof MachineRunStatus];
registerEnumType(MachineRunStatus, { name: 'MachineRunStatus', description: 'Where one machine stands in a deployment run.', valuesConfig: { CANCELED: { description: 'The run was canceled before this machine finished.' }, FAILED: { description: 'An update, the reboot or the job failed, or the agent was lost.' }, IN_PROGRESS: { description: 'Its agent is installing.' }, NOT_STARTED: { description: 'The run ended (failure threshold, cancel, deadline) before it began.' }, PENDING: { description: 'Waiting for its turn.' }, REBOOTING: { description: 'Rebooting after its updates; waiting for the agent to come back.' }, SUCCEEDED: { description: 'Nothing failed and the window was kept (some updates may be NOT_ATTEMPTED).' }, TIMED_OUT: { description: 'An update overran the window and its grace.' } } });

export const UpdateResultStatus = enumObject(UPDATE_RESULT_STATUSES);
export type UpdateResultStatus = (typeof UpdateResultStatus)[keyof typeof UpdateResultStatus];
registerEnumType(UpdateResultStatus, {
  name: 'UpdateResultStatus',
  description: 'NOT_ATTEMPTED: the window had too little time left to start it. NOT_SELECTED: left out by classification or include/exclude.', valuesConfig: { FAILED: { description: 'Its install failed.' }, IN_PROGRESS: { description: 'Installing now.' }, NOT_ATTEMPTED: { description: 'The window had too little time left to start it.' }, NOT_SELECTED: { description: 'Left out by classification or include/exclude.' }, PENDING: { description: 'Waiting to be installed.' }, SUCCEEDED: { description: 'Installed.' } } });

@ObjectType({ description: "A number of machines, as a count or a percentage of the run's machines." })
export class Limit {
  @Field(() => Int, { description: 'The number, in its unit.' })
  value!: number;

  @Field(() => LimitUnit, { description: "COUNT of machines or PERCENT of the run's machines." })
  unit!: LimitUnit;
}

@ObjectType({ description: 'Machines chosen by what they are rather than by id, resolved again at every run.' })
export class TargetFilter {
  @Field(() => [String], { description: 'Machines carrying every one of these tags.' })
  tags!: string[];

  @Field(() => String, { description: 'Machines whose name contains this text (ignoring case).', nullable: true })
  nameContains!: string | null;
}

@ObjectType({ description: 'A weekday counted within its month, e.g. the second Tuesday.' })
export class NthWeekday {
  @Field(() => Int, { description: '1 to 4, or -1 for the last.' })
  ordinal!: number;

  @Field(() => WeekDay, { description: 'The day of the week.' })
  weekDay!: WeekDay;
}

@ObjectType({ description: 'How a deployment schedule repeats after its first run.' })
export class Recurrence {
  @Field(() => Frequency, { description: 'ONCE, HOURLY, DAILY, WEEKLY or MONTHLY.' })
  frequency!: Frequency;

  @Field(() => Int, { description: 'Every N hours, days, weeks or months.' })
  every!: number;

  @Field(() => [WeekDay], { description: 'WEEKLY: the days of the week it runs on.', nullable: true })
  weekDays!: WeekDay[] | null;

  @Field(() => Int, { description: 'MONTHLY: the day of the month (1 to 28, or -1 for the last).', nullable: true })
  monthDay!: number | null;

  @Field(() => NthWeekday, { description: 'MONTHLY: the nth weekday instead of a day of the month.', nullable: true })
  nthWeekday!: NthWeekday | null;

  @Field(() => Int, { nullable: true, description: 'Days after (or before) the nth weekday, e.g. 2 for two days after Patch Tuesday.' })
  offsetDays!: number | null;
}

@ObjectType({ description: 'When a deployment runs: its first run, how it repeats, and its end.' })
export class Schedule {
  @Field(() => Date, { description: 'The first run, in timeZone.' })
  startAt!: Date;

  @Field(() => String, { description: 'IANA time zone the schedule follows (e.g. Europe/Paris).' })
  timeZone!: string;

  @Field(() => Recurrence, { description: 'How it repeats after its first run.' })
  recurrence!: Recurrence;

  @Field(() => Date, { description: 'After this time no run starts (null: no end).', nullable: true })
  endAt!: Date | null;

  @Field(() => String, { description: 'The schedule in words.' })
  description!: string;
}

@ObjectType({ description: "A ring's machines by tags, part of the name, and environment (every condition given must hold)." })
export class RingFilter {
  @Field(() => [String], { description: 'Tags a machine must all have.' }) tags!: string[];
  @Field(() => String, { nullable: true, description: 'Part of the name (any case).' }) nameContains!: string | null;
  @Field(() => [Environment], { description: 'Environments, one of which a machine must be in (empty: any).' }) environments!: Environment[];
}

@ObjectType({ description: 'What a ring waits for before the next ring starts.' })
export class RingGate {
  @Field(() => Limit, { nullable: true, description: "At most this many (or this percent) of the ring's machines may fail; null: none may." }) maxFailures!: Limit | null;
  @Field(() => Int, { description: 'Seconds to wait after its last machine finished.' }) soakSeconds!: number;
  @Field(() => Boolean, { description: "An OPERATOR's approval (approveRing) is needed." }) requireApproval!: boolean;
}

@ObjectType({ description: 'One ring of a deployment: its machines are chosen by exactly one of filter, machineIds, percent.' })
export class Ring {
  @Field(() => String, { description: "The ring's name." }) name!: string;
  @Field(() => RingFilter, { nullable: true, description: 'Its machines by tags, name and environment.' }) filter!: RingFilter | null;
  @Field(() => [ID], { nullable: true, description: 'Its machines, named explicitly.' }) machineIds!: string[] | null;
  @Field(() => Int, { nullable: true, description: 'Percent of the targets no earlier ring took (rounded up).' }) percent!: number | null;
  @Field(() => Limit, { nullable: true, description: "Null: the deployment's maxConcurrent." }) maxConcurrent!: Limit | null;
  @Field(() => RingGate, { description: 'What it waits for before the next ring starts.' }) gate!: RingGate;
}

@ObjectType({ implements: Node, description: 'A named, scheduled update deployment.' })
export class Deployment {
  @Field(() => ID, { description: "The deployment's id." })
  id!: string;

  @Field(() => String, { description: 'Its name, unique among deployments.' })
  name!: string;

  @Field(() => OsType, { description: 'The operating system family of its machines.' })
  osType!: OsType;

  @Field(() => [ID], { description: 'Machines named explicitly.' })
  machineIds!: string[];

  @Field(() => TargetFilter, { nullable: true, description: 'Machines matched at each run.' })
  targetFilter!: TargetFilter | null;

  @Field(() => [Classification], { description: 'The classifications of the updates it installs.' })
  classifications!: Classification[];

  @Field(() => Boolean, { description: "It installs what each machine's patch baseline approves (its classifications are then empty)." })
  useBaseline!: boolean;

  @Field(() => [String], { description: 'When not empty, only updates whose name matches one of these patterns.' })
  includePatterns!: string[];

  @Field(() => [String], { description: 'Updates whose name matches one of these patterns are left out.' })
  excludePatterns!: string[];

  @Field(() => Int, { description: 'Maintenance window in minutes (30 to 360).' })
  windowMinutes!: number;

  @Field(() => RebootSetting, { description: 'When the machines reboot after installing.' })
  rebootSetting!: RebootSetting;

  @Field(() => Limit, { nullable: true, description: 'At most this many machines at once (default: all, up to 100 at a time).' })
  maxConcurrent!: Limit | null;

  @Field(() => Limit, { nullable: true, description: 'Start no new machine once this many have failed (default: no limit).' })
  maxFailures!: Limit | null;

  @Field(() => Boolean, { description: 'Whether its schedule is paused (a deployment run on demand only has no scheduled run to pause).' })
  paused!: boolean;

  @Field(() => [Ring], { nullable: true, description: 'Rings in order; null: every target at once.' })
  rings!: Ring[] | null;

  @Field(() => [DeploymentStep], { nullable: true, description: 'Pre and post steps in order; null: none. Secrets appear by name only.' })
  steps!: DeploymentStep[] | null;

  @Field(() => Date, { description: 'When it was created.' })
  createdAt!: Date;

  @Field(() => Date, { description: 'When it was last changed.' })
  updatedAt!: Date;
}

export const DeploymentConnection = ConnectionType('Deployment', Deployment, 'deployments');

@ObjectType({ description: 'How many updates ended in each status.' })
export class ResultCounts {
  @Field(() => Int, { description: 'Every update counted, selected or not.' }) total!: number;
  @Field(() => Int, { description: 'Updates installed.' }) succeeded!: number;
  @Field(() => Int, { description: 'Updates that failed.' }) failed!: number;
  @Field(() => Int, { description: 'Updates the window had no time left to start.' }) notAttempted!: number;
  @Field(() => Int, { description: 'Pending updates the deployment left out.' }) notSelected!: number;
  @Field(() => Int, { description: 'Updates waiting to be installed.' }) pending!: number;
  @Field(() => Int, { description: 'Updates installing now.' }) inProgress!: number;
}

@ObjectType({ description: 'One update on one machine in a run.' })
export class UpdateResult {
  @Field(() => String, { description: 'The package or KB name.' }) name!: string;
  @Field(() => String, { description: 'The architecture of the package (null when the source does not say).', nullable: true }) arch!: string | null;
  @Field(() => Classification, { description: 'Its classification.' }) classification!: Classification;
  @Field(() => Severity, { description: "The distribution's or vendor's rating (null when it gives none).", nullable: true }) severity!: Severity | null;
  @Field(() => String, { nullable: true, description: 'The version before the run (null: a new package).' }) installedVersion!: string | null;
  @Field(() => String, { description: 'The version the run installs.' }) targetVersion!: string;
  @Field(() => UpdateResultStatus, { description: 'Where this update stands in the run.' }) status!: UpdateResultStatus;
  @Field(() => UpdateResultStatus, { description: 'What the preview predicted: SUCCEEDED (it fits), NOT_ATTEMPTED or NOT_SELECTED.' }) predictedStatus!: UpdateResultStatus;
  @Field(() => String, { nullable: true, description: 'Why NOT_SELECTED or NOT_ATTEMPTED.' }) reason!: string | null;
  @Field(() => Int, { nullable: true, description: "The package manager's exit code." }) exitCode!: number | null;
  @Field(() => String, { nullable: true, description: "The package manager's error text." }) errorText!: string | null;
  @Field(() => Int, { description: 'How long it was expected to take when the run was planned.' }) expectedSeconds!: number;
  @Field(() => Date, { description: 'When its install started (null: not yet, or not attempted).', nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { description: 'When its install ended (null: not yet, or not attempted).', nullable: true }) endedAt!: Date | null;
}

@ObjectType({ description: 'A line of the job stream (the package manager, the agent) or of the run log (the server).' })
export class RunLogLine {
  @Field(() => Int, { description: "The line's id: increasing in the order lines were stored." }) id!: number;
  @Field(() => Date, { description: 'When the line was written.' }) at!: Date;
  @Field(() => String, { description: 'stdout, stderr, agent or server.' }) stream!: string;
  @Field(() => String, { description: 'The text of the line.' }) line!: string;
  @Field(() => ID, { description: 'The machine run it belongs to (null: a line about the whole run).', nullable: true }) machineRunId!: string | null;
}

@ObjectType({ implements: Node, description: 'One machine inside a run.' })
export class MachineRun {
  @Field(() => ID, { description: "The machine run's id." }) id!: string;
  @Field(() => ID, { description: 'The machine.' }) machineId!: string;
  @Field(() => String, { description: "The machine's name when the run began." }) machineName!: string;
  @Field(() => MachineRunStatus, { description: 'Where this machine stands in the run.' }) status!: MachineRunStatus;
  @Field(() => Date, { description: 'When its install job was handed over to the agent (null while PENDING).', nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { description: 'When its part ended (null while it runs).', nullable: true }) endedAt!: Date | null;
  @Field(() => String, { nullable: true, description: 'NOT_NEEDED, NOT_ALLOWED, REBOOTED or TIMED_OUT.' }) rebootOutcome!: string | null;
  @Field(() => String, { description: 'Why it failed, timed out or was canceled, when it did.', nullable: true }) error!: string | null;
  @Field(() => Int, { nullable: true, description: 'Its ring (1-based) in a ringed run.' }) ring!: number | null;
  @Field(() => [StepResult], { description: "How the deployment's pre and post steps went on this machine, in the order they ran." }) stepResults!: StepResult[];
}

@ObjectType({ description: 'A ring in a run, and where its gate is.' })
export class RunRing {
  @Field(() => Int, { description: '1-based; what approveRing and rejectRing take.' }) ring!: number;
  @Field(() => String, { description: "The ring's name." }) name!: string;
  @Field(() => Ring, { description: 'The ring as the deployment defined it when the run began: how it chose its machines, its rate control and its gate.' }) definition!: Ring;
  @Field(() => RingStatus, { description: 'Where the ring stands.' }) status!: RingStatus;
  @Field(() => Int, { description: 'How many machines it has.' }) machineCount!: number;
  @Field(() => Int, { nullable: true, description: 'Machines that failed or timed out, once the ring finished.' }) failedCount!: number | null;
  @Field(() => Date, { nullable: true, description: 'When it started (null while PENDING).' }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true, description: 'Its last machine finished.' }) endedAt!: Date | null;
  @Field(() => Date, { nullable: true, description: "The ring's own maintenance window." }) windowEndsAt!: Date | null;
  @Field(() => Date, { nullable: true, description: 'When its soak ends (while SOAKING).' }) soakEndsAt!: Date | null;
  @Field(() => String, { nullable: true, description: 'Why it halted, or the rejection that ended the run.' }) reason!: string | null;
  @Field(() => String, { nullable: true, description: 'The token that approved or resumed it.' }) decidedBy!: string | null;
  @Field(() => Date, { nullable: true, description: 'When it was approved, rejected or resumed.' }) decidedAt!: Date | null;
}

@ObjectType({ description: "A member of a run's frozen update set: a package (or KB) at one version." })
export class UpdateSetMember {
  @Field(() => String, { description: 'The package name (or KB).' }) name!: string;
  @Field(() => String, { description: 'The version every ring installs.' }) version!: string;
}

@ObjectType({ implements: Node, description: 'One execution of a deployment.' })
export class DeploymentRun {
  @Field(() => ID, { description: "The run's id." }) id!: string;
  @Field(() => ID, { description: 'The deployment it runs.' }) deploymentId!: string;
  @Field(() => DeploymentRunStatus, { description: 'Where the run stands.' }) status!: DeploymentRunStatus;
  @Field(() => String, { description: 'SCHEDULE or MANUAL.' }) trigger!: string;
  @Field(() => Date, { description: 'When the run was created (scheduled or started on demand).' }) createdAt!: Date;
  @Field(() => Date, { description: 'When it started (null while SCHEDULED).', nullable: true }) startedAt!: Date | null;
  @Field(() => Date, { description: 'When it ended (null while it runs).', nullable: true }) endedAt!: Date | null;
  @Field(() => Date, { description: 'When its maintenance window ends: no update starts after it.', nullable: true }) windowEndsAt!: Date | null;
  @Field(() => String, { description: 'Why it failed or was canceled, when it did.', nullable: true }) error!: string | null;
  @Field(() => Int, {
    description:
      "The seq of the run's last progress event when this was read (0: none yet). Subscribe to deploymentRunProgress with after: progressSeq to receive every change after what this read showed, each once.",
  })
  progressSeq!: number;
}

export const DeploymentRunConnection = ConnectionType('DeploymentRun', DeploymentRun, 'deployment runs');
export const MachineRunConnection = ConnectionType('MachineRun', MachineRun, 'machine runs');
export const RunLogLineConnection = ConnectionType('RunLogLine', RunLogLine, 'log lines');

@ObjectType({ description: 'A pending update a deployment leaves out, and why.' })
export class NotSelectedUpdate {
  @Field(() => PendingUpdate, { description: 'The pending update.' }) update!: PendingUpdate;
  @Field(() => String, { description: 'Why it is left out (classification, an include or exclude pattern).' }) reason!: string;
}

@ObjectType({ description: 'A pending update a deployment would install, in its place in the install order.' })
export class PlannedUpdate extends PendingUpdate {
  @Field(() => Int, { description: 'How long it is expected to take, from past installs on this machine or a default.' }) expectedSeconds!: number;
  @Field(() => Int, { description: 'Its place in the install order, from 0.' }) order!: number;
}

@ObjectType({ description: 'What a deployment would do on one machine, from its latest assessment.' })
export class MachinePreview {
  @Field(() => Machine, { description: 'The machine.' }) machine!: Machine;
  // toInstall, predictedNotAttempted and notSelected are read a slice at a time (MachinePreviewResolver).
  toInstall!: PlannedUpdate[];
  predictedNotAttempted!: PlannedUpdate[];
  notSelected!: NotSelectedUpdate[];
  @Field(() => Int, { description: 'How long installing its selected updates is expected to take.' }) expectedSeconds!: number;
  @Field(() => Int, { description: 'Seconds kept free at the end of the window for a reboot (0 when willReboot is NO).' }) rebootReserveSeconds!: number;
  @Field(() => RebootForecast, { description: 'Whether a reboot would follow.' }) willReboot!: RebootForecast;
  @Field(() => Int, { nullable: true, description: 'Its ring (1-based) if the run began now; null without rings. Later rings install only what the first ring fixes.' }) ring!: number | null;
}

@ObjectType({ description: 'Something the operator should know before saving; not an error.' })
export class PreviewWarning {
  @Field(() => String, { description: 'The input field it is about, e.g. rings[1].filter.' }) field!: string;
  @Field(() => String, { description: 'What the operator should know.' }) message!: string;
}

@ObjectType({ description: 'What a deployment would do if it ran now: its machines, their updates and the window.' })
export class DeploymentPreview {
  @Field(() => Int, { description: 'The maintenance window the plan fits into, in minutes.' }) windowMinutes!: number;
  @Field(() => [PreviewWarning], { description: 'E.g. a ring whose filter matches none of the targets now.' }) warnings!: PreviewWarning[];
  @Field(() => [MachinePreview], { description: 'Each target machine and what would happen on it.' }) machines!: MachinePreview[];
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
    RUN: { description: "The run's status or counts changed (it began, handed over install jobs, or ended)." },
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
