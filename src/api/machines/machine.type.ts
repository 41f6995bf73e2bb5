import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { ConnectionType, PageInfo } from '../relay.js';
import { AgentReadiness, Classification, Environment, OsType, Severity } from './machine.enums.js';
import { Node } from '../node/node.type.js';
import { MATCHES_COUNTED_UP_TO } from '../../fleet/fleetSummary.js';

@ObjectType({ description: 'A pending update: a package (Linux) or KB (Windows) the machine is missing.' })
export class PendingUpdate {
  @Field(() => String, { description: 'The package or KB name.' })
  name!: string;

  @Field(() => String, { nullable: true, description: 'null: the update pulls this package in new.' })
  installedVersion!: string | null;

  @Field(() => String, { description: 'The version it would install.' })
  availableVersion!: string;

  @Field(() => String, { description: 'The architecture of the package (null when the source does not say).', nullable: true })
  arch!: string | null;

  @Field(() => Classification, { description: 'Its classification.' })
  classification!: Classification;

  @Field(() => Severity, { description: "The distribution's or vendor's rating (null when it gives none).", nullable: true })
  severity!: Severity | null;

  @Field(() => [String], { description: 'The advisories that announce it (e.g. DSA-5678-1, RHSA-2026:1234).' })
  advisoryIds!: string[];

  @Field(() => [String], { description: 'The CVEs it fixes.' })
  cveIds!: string[];

  @Field(() => Boolean, { description: 'The metadata suggests a reboot after installing it.' })
  rebootSuggested!: boolean;

  @Field(() => String, { nullable: true, description: 'Where the available version comes from.' })
  repository!: string | null;

  @Field(() => Date, {
    nullable: true,
    description:
      "When its advisory was issued (dnf/yum updateinfo, zypper patch, WUA's last deployment change; the newest of its advisories); null for apt and when the metadata gives none.",
  })
  advisoryIssuedAt?: Date | null;

  @Field(() => Date, { nullable: true, description: 'When fleetpatch first saw this name and version anywhere in the fleet: the clock of approval delays and SLAs when the advisory gives no issue date.' })
  firstSeenAt?: Date | null;

  @Field(() => Date, {
    nullable: true,
    description:
      "What approval delays and the SLA due date count from: the advisory issue date recorded when fleetpatch first saw this name and version anywhere in the fleet, or, when that first report gave none (apt, an older agent), firstSeenAt. A later report's date does not move it, so verdicts stay put.",
  })
  clockFrom?: Date | null;

  @Field(() => Date, {
    nullable: true,
    description: "When it must be installed by, under the machine's baseline's SLA target for its severity (overdue from this instant); null when the baseline does not approve it or sets no target for its severity, and under the built-in baseline.",
  })
  dueAt?: Date | null;

  @Field(() => String, {
    nullable: true,
    description:
      "The source package its binary package is built from, where that differs from its name (apt's Packages `Source:`, e.g. openssl for libssl3); the Debian security tracker is matched by it. Null when the same, unknown, or reported by an agent before it was sent.",
  })
  sourcePackage?: string | null;

  @Field(() => String, {
    nullable: true,
    description: 'Why the update is listed, when that is not plain to see: e.g. a package dpkg left half-configured, pending with the same installed and available version.',
  })
  note?: string | null;
}

@ObjectType({ description: 'A repository the agent could not read: the list of updates may be incomplete.' })
export class RepositoryProblem {
  @Field(() => String, { description: 'The repository, as the package manager names it.' })
  repository!: string;

  @Field(() => String, { description: 'What went wrong reading it.' })
  message!: string;
}

@ObjectType({ description: "Why the machine's last assessment attempt failed (the last good one is still shown)." })
export class AssessmentError {
  @Field(() => String, { description: 'LOCKED, UNPARSEABLE_OUTPUT, COMMAND_FAILED, NOT_INSTALLED, ...' })
  code!: string;

  @Field(() => String, { description: 'What went wrong, in words.' })
  message!: string;

  @Field(() => Date, { description: 'When the attempt failed.' })
  at!: Date;
}

@ObjectType({ description: 'One assessment a machine reported.' })
export class Assessment {
  @Field(() => ID, { description: "The assessment's id." })
  id!: string;

  @Field(() => String, { description: 'STARTUP, SCHEDULE, PACKAGE_DATABASE_CHANGED or COMMAND.' })
  trigger!: string;

  @Field(() => String, { description: 'The package manager or update source that was read (apt, dnf, zypper, Windows Update).' })
  backend!: string;

  @Field(() => Date, { description: "When it started, on the agent's clock (information: that clock may be wrong)." })
  startedAt!: Date;

  @Field(() => Date, { description: "When it finished, on the agent's clock (information: that clock may be wrong)." })
  finishedAt!: Date;

  @Field(() => Date, { description: 'When the server received it.' })
  receivedAt!: Date;

  @Field(() => Date, {
    description: "When it finished on the server's clock: receivedAt less how long before sending the agent finished it, by the agent's own clock. A machine's assessments are ordered by it.",
  })
  assessedAt!: Date;

  @Field(() => Boolean, { description: 'The machine needed a reboot when it was assessed.' })
  rebootPending!: boolean;

  @Field(() => Int, { description: 'Pending updates classified CRITICAL.' })
  criticalCount!: number;

  @Field(() => Int, { description: 'Pending updates classified SECURITY.' })
  securityCount!: number;

  @Field(() => Int, { description: 'Pending updates neither CRITICAL nor SECURITY.' })
  otherCount!: number;

  @Field(() => [RepositoryProblem], { description: 'Repositories that could not be read: the list may be incomplete.' })
  repositoryProblems!: RepositoryProblem[];
}

export const AssessmentConnection = ConnectionType('Assessment', Assessment, 'assessments');
export const PendingUpdateConnection = ConnectionType('PendingUpdate', PendingUpdate, 'pending updates');

@ObjectType({ description: 'Update agent readiness, with the reason an operator can act on.' })
export class ReadinessDetail {
  @Field(() => AgentReadiness, { description: 'The readiness state this explains.' })
  state!: AgentReadiness;

  @Field(() => Date, { nullable: true, description: 'DISCONNECTED: when the agent was last heard from.' })
  since!: Date | null;

  @Field(() => String, { description: 'Why, in words.' })
  reason!: string;
}

@ObjectType({ implements: Node, description: 'A managed machine.' })
export class Machine {
  @Field(() => ID, { description: "The machine's id." })
  id!: string;

  @Field(() => String, { description: 'Its host name, as its agent reports it.' })
  name!: string;

  @Field(() => OsType, { description: 'LINUX or WINDOWS.' })
  osType!: OsType;

  @Field(() => String, { description: 'The operating system, e.g. Debian GNU/Linux.' })
  osName!: string;

  @Field(() => String, { description: 'The operating system version, e.g. 12.' })
  osVersion!: string;

  @Field(() => String, { description: 'The running kernel version, as its agent reports it.', nullable: true })
  kernel!: string | null;

  @Field(() => Environment, { description: 'Where the machine runs (cloud or on premises), as its agent detected it.' })
  environment!: Environment;

  @Field(() => [String], { description: 'Its tags, which deployments can target.' })
  tags!: string[];

  @Field(() => String, { description: "The version of the machine's agent (null before its first check-in).", nullable: true })
  agentVersion!: string | null;

  @Field(() => String, { nullable: true, description: 'Changes at every boot.' })
  bootId!: string | null;

  @Field(() => String, { description: 'The package manager the agent uses (apt, dnf, zypper; null on Windows).', nullable: true })
  packageManager!: string | null;

  @Field(() => Float, {
    nullable: true,
    description: "The agent's clock minus the server's, in seconds, as its last request showed it (null: not known yet). Two minutes or more either way is a warning.",
  })
  clockOffsetSeconds!: number | null;

  @Field(() => Boolean, { description: 'Whether fleetpatch assesses and updates it.' })
  managementEnabled!: boolean;

  @Field(() => Date, { description: 'When the machine enrolled.' })
  enrolledAt!: Date;

  @Field(() => Date, {
    description:
      'When its agent last checked in, to within 90 s: a check-in that changes nothing stores its time only once the stored one is older than one and a half check-in intervals (90 s at the default 60 s; never more than what the DISCONNECTED threshold leaves after three intervals, which the default 270 s leaves whole). A changed fact is stored at once.',
    nullable: true,
  })
  lastSeenAt!: Date | null;

  @Field(() => Date, { nullable: true, description: "When the latest assessment finished, on the server's clock (see Assessment.assessedAt)." })
  lastAssessedAt!: Date | null;

  @Field(() => Boolean, { description: 'The machine already needs a reboot.' })
  rebootPending!: boolean;

  @Field(() => Date, { nullable: true, description: 'When it was removed from management (null: it is managed). Only machine(id, includeRemoved: true) returns a removed machine.' })
  removedAt!: Date | null;

  @Field(() => Int, { description: 'Pending updates classified CRITICAL.' })
  criticalCount!: number;

  @Field(() => Int, { description: 'Pending updates classified SECURITY.' })
  securityCount!: number;

  @Field(() => Int, { description: 'Pending updates neither CRITICAL nor SECURITY.' })
  otherCount!: number;
}

@ObjectType({ description: 'One machine of a page, with its cursor.' })
export class MachineEdge {
  @Field(() => String, { description: 'Where this machine stands: pass it as after to continue after it.' })
  cursor!: string;

  @Field(() => Machine, { description: 'The machine.' })
  node!: Machine;
}

@ObjectType({ description: 'A page of machines (Relay cursor connection).' })
export class MachineConnection {
  @Field(() => [MachineEdge], { description: 'The machines of this page, in order.' })
  edges!: MachineEdge[];

  @Field(() => PageInfo, { description: 'Whether more pages follow, and the cursors to ask for them.' })
  pageInfo!: PageInfo;

  @Field(() => Int, { description: 'How many machines match, across all pages, as of this read (at least that many when totalCountExact is false).' })
  totalCount!: number;

  @Field(() => Boolean, {
    description:
      `False when totalCount is a lower bound: a filter no maintained count covers (part of a name, several tags) counts its first ${MATCHES_COUNTED_UP_TO.toLocaleString('en-US')} matches, not every one (a part every name holds would count the whole fleet at each page). The pages themselves are complete: follow endCursor. True for every other filter, counted from maintained counts.`,
  })
  totalCountExact!: boolean;

  @Field(() => Date, {
    nullable: true,
    description:
      'Always null: totalCount is as of this read (maintained counts, or the filter\'s matches counted with the page; see totalCountExact). Kept so that clients reading it keep working.',
  })
  totalCountComputedAt?: Date | null;
}

@ObjectType({ description: 'An update missing on at least one machine, across the fleet.' })
export class MissingUpdate {
  @Field(() => String, { description: 'The package or KB name.' })
  name!: string;

  @Field(() => Classification, { description: 'Its classification.' })
  classification!: Classification;

  @Field(() => Severity, { nullable: true, description: 'The highest severity any machine reports for it.' })
  severity!: Severity | null;

  @Field(() => Int, { description: 'How many machines miss it.' })
  machineCount!: number;

  @Field(() => [String], { description: 'The versions the machines could install, each once.' })
  availableVersions!: string[];

  @Field(() => [String], { description: 'The advisories that announce it (e.g. DSA-5678-1, RHSA-2026:1234).' })
  advisoryIds!: string[];

  @Field(() => [String], { description: 'The CVEs it fixes.' })
  cveIds!: string[];

  @Field(() => Boolean, { description: 'The metadata suggests a reboot after installing it.' })
  rebootSuggested!: boolean;
}

@ObjectType({ description: 'One missing update of a page, with its cursor.' })
export class MissingUpdateEdge {
  @Field(() => String, { description: 'Where this update stands: pass it as after to continue after it.' })
  cursor!: string;

  @Field(() => MissingUpdate, { description: 'The missing update.' })
  node!: MissingUpdate;
}

@ObjectType({ description: "The fleet's missing updates, as of computedAt (the time of the read: the counts are maintained with every report)." })
export class MissingUpdateConnection {
  @Field(() => [MissingUpdateEdge], { description: 'The missing updates of this page, in order.' })
  edges!: MissingUpdateEdge[];

  @Field(() => PageInfo, { description: 'Whether more pages follow, and the cursors to ask for them.' })
  pageInfo!: PageInfo;

  @Field(() => Int, { description: 'How many items match, across all pages.' })
  totalCount!: number;

  @Field(() => Date, { description: 'When the missing updates were computed: the list is how the latest assessments stood then.' })
  computedAt!: Date;
}

@ObjectType({ description: 'How many pending updates of one classification the fleet has.' })
export class ClassificationCount {
  @Field(() => Classification, { description: 'The classification.' })
  classification!: Classification;

  @Field(() => Int, { description: 'Pending updates of this classification, summed over machines.' })
  updateCount!: number;

  @Field(() => Int, { description: 'Machines missing at least one of them.' })
  machineCount!: number;
}

@ObjectType({ description: 'The fleet at a glance.' })
export class ComplianceSummary {
  @Field(() => Int, { description: 'Managed machines.' })
  total!: number;

  @Field(() => Int, { description: 'Machines with no missing critical or security update.' })
  compliant!: number;

  @Field(() => Int, { description: 'Machines missing at least one critical or security update.' })
  nonCompliant!: number;

  @Field(() => Int, { description: 'Machines without an assessment in the expected time.' })
  notAssessed!: number;

  @Field(() => Int, { description: 'Machines whose agent checks in.' })
  ready!: number;

  @Field(() => Int, { description: 'Machines whose agent has been silent for too long.' })
  disconnected!: number;

  @Field(() => Int, { description: 'Machines whose agent never checked in, or with update management disabled.' })
  notConfigured!: number;

  @Field(() => [ClassificationCount], { description: 'Pending updates across the fleet, per classification.' })
  pendingByClassification!: ClassificationCount[];

  @Field(() => Int, { description: 'Machines with an approved update past its SLA due date (list them with machines(filter: {overdue: true})).' })
  overdueMachines!: number;

  @Field(() => Int, { description: 'Approved updates past their SLA due date, summed over machines (one per update name on each machine).' })
  overdueUpdates!: number;

  @Field(() => Date, {
    description: 'The time every count is computed against: the time of the read (the counts are maintained with every change and follow the clock, so they are exact then).',
  })
  computedAt!: Date;
}

@ObjectType({ description: 'What assessMachines did for each machine.' })
export class AssessRequestResult {
  @Field(() => ID, { description: 'The machine asked.' })
  machineId!: string;

  @Field(() => Boolean, { description: 'An assessment command is waiting for (or was just handed to) the agent.' })
  requested!: boolean;

  @Field(() => ID, { description: 'The assessment command queued for the agent (null when not requested).', nullable: true })
  commandId!: string | null;

  @Field(() => String, { nullable: true, description: 'Why not, when not requested.' })
  reason!: string | null;
}
