import { Field, Float, ID, Int, ObjectType } from 'type-graphql';
import { ConnectionType, PageInfo } from '../relay.js';
import { AgentReadiness, Classification, Environment, OsType, Severity } from './machine.enums.js';
import { Node } from '../node/node.type.js';

@ObjectType({ description: 'A pending update: a package (Linux) or KB (Windows) the machine is missing.' })
export class PendingUpdate {
  @Field(() => String)
  name!: string;

  @Field(() => String, { nullable: true, description: 'null: the update pulls this package in new.' })
  installedVersion!: string | null;

  @Field(() => String)
  availableVersion!: string;

  @Field(() => String, { nullable: true })
  arch!: string | null;

  @Field(() => Classification)
  classification!: Classification;

  @Field(() => Severity, { nullable: true })
  severity!: Severity | null;

  @Field(() => [String])
  advisoryIds!: string[];

  @Field(() => [String])
  cveIds!: string[];

  @Field(() => Boolean, { description: 'The metadata suggests a reboot after installing it.' })
  rebootSuggested!: boolean;

  @Field(() => String, { nullable: true, description: 'Where the available version comes from.' })
  repository!: string | null;

  @Field(() => String, {
    nullable: true,
    description: 'Why the update is listed, when that is not plain to see: e.g. a package dpkg left half-configured, pending with the same installed and available version.',
  })
  note?: string | null;
}

@ObjectType({ description: 'A repository the agent could not read: the list of updates may be incomplete.' })
export class RepositoryProblem {
  @Field(() => String)
  repository!: string;

  @Field(() => String)
  message!: string;
}

@ObjectType({ description: "Why the machine's last assessment attempt failed (the last good one is still shown)." })
export class AssessmentError {
  @Field(() => String, { description: 'LOCKED, UNPARSEABLE_OUTPUT, COMMAND_FAILED, NOT_INSTALLED, ...' })
  code!: string;

  @Field(() => String)
  message!: string;

  @Field(() => Date)
  at!: Date;
}

@ObjectType({ description: 'One assessment a machine reported.' })
export class Assessment {
  @Field(() => ID)
  id!: string;

  @Field(() => String, { description: 'STARTUP, SCHEDULE, PACKAGE_DATABASE_CHANGED or COMMAND.' })
  trigger!: string;

  @Field(() => String)
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

  @Field(() => Boolean)
  rebootPending!: boolean;

  @Field(() => Int)
  criticalCount!: number;

  @Field(() => Int)
  securityCount!: number;

  @Field(() => Int)
  otherCount!: number;

  @Field(() => [RepositoryProblem])
  repositoryProblems!: RepositoryProblem[];
}

export const AssessmentConnection = ConnectionType('Assessment', Assessment, 'assessments');
export const PendingUpdateConnection = ConnectionType('PendingUpdate', PendingUpdate, 'pending updates');

@ObjectType({ description: 'Update agent readiness, with the reason an operator can act on.' })
export class ReadinessDetail {
  @Field(() => AgentReadiness)
  state!: AgentReadiness;

  @Field(() => Date, { nullable: true, description: 'DISCONNECTED: when the agent was last heard from.' })
  since!: Date | null;

  @Field(() => String)
  reason!: string;
}

@ObjectType({ implements: Node, description: 'A managed machine.' })
export class Machine {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => OsType)
  osType!: OsType;

  @Field(() => String)
  osName!: string;

  @Field(() => String)
  osVersion!: string;

  @Field(() => String, { nullable: true })
  kernel!: string | null;

  @Field(() => Environment)
  environment!: Environment;

  @Field(() => [String])
  tags!: string[];

  @Field(() => String, { nullable: true })
  agentVersion!: string | null;

  @Field(() => String, { nullable: true, description: 'Changes at every boot.' })
  bootId!: string | null;

  @Field(() => String, { nullable: true })
  packageManager!: string | null;

  @Field(() => Float, {
    nullable: true,
    description: "The agent's clock minus the server's, in seconds, as its last request showed it (null: not known yet). Two minutes or more either way is a warning.",
  })
  clockOffsetSeconds!: number | null;

  @Field(() => Boolean)
  managementEnabled!: boolean;

  @Field(() => Date)
  enrolledAt!: Date;

  @Field(() => Date, { nullable: true })
  lastSeenAt!: Date | null;

  @Field(() => Date, { nullable: true, description: "When the latest assessment finished, on the server's clock (see Assessment.assessedAt)." })
  lastAssessedAt!: Date | null;

  @Field(() => Boolean, { description: 'The machine already needs a reboot.' })
  rebootPending!: boolean;

  @Field(() => Date, { nullable: true, description: 'When it was removed from management (null: it is managed). Only machine(id, includeRemoved: true) returns a removed machine.' })
  removedAt!: Date | null;

  @Field(() => Int)
  criticalCount!: number;

  @Field(() => Int)
  securityCount!: number;

  @Field(() => Int)
  otherCount!: number;
}

@ObjectType()
export class MachineEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => Machine)
  node!: Machine;
}

@ObjectType()
export class MachineConnection {
  @Field(() => [MachineEdge])
  edges!: MachineEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;

  @Field(() => Int, { description: 'How many machines match, across all pages (see totalCountComputedAt).' })
  totalCount!: number;

  @Field(() => Date, {
    nullable: true,
    description:
      'null: totalCount was counted with this page. Otherwise the time of the compliance summary snapshot it comes from: on a fleet of 10,000 machines or more, a page filtered on compliance and readiness alone (or not at all) takes its count from there instead of counting every machine. pageInfo is exact either way.',
  })
  totalCountComputedAt?: Date | null;
}

@ObjectType({ description: 'An update missing on at least one machine, across the fleet.' })
export class MissingUpdate {
  @Field(() => String)
  name!: string;

  @Field(() => Classification)
  classification!: Classification;

  @Field(() => Severity, { nullable: true, description: 'The highest severity any machine reports for it.' })
  severity!: Severity | null;

  @Field(() => Int, { description: 'How many machines miss it.' })
  machineCount!: number;

  @Field(() => [String])
  availableVersions!: string[];

  @Field(() => [String])
  advisoryIds!: string[];

  @Field(() => [String])
  cveIds!: string[];

  @Field(() => Boolean)
  rebootSuggested!: boolean;
}

@ObjectType()
export class MissingUpdateEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => MissingUpdate)
  node!: MissingUpdate;
}

@ObjectType({ description: "The fleet's missing updates, as of computedAt: a snapshot, recomputed when older than FLEETPATCH_MISSING_UPDATES_MAX_AGE_SECONDS." })
export class MissingUpdateConnection {
  @Field(() => [MissingUpdateEdge])
  edges!: MissingUpdateEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;

  @Field(() => Int, { description: 'How many items match, across all pages.' })
  totalCount!: number;

  @Field(() => Date, { description: 'When the missing updates were computed: the list is how the latest assessments stood then.' })
  computedAt!: Date;
}

@ObjectType()
export class ClassificationCount {
  @Field(() => Classification)
  classification!: Classification;

  @Field(() => Int, { description: 'Pending updates of this classification, summed over machines.' })
  updateCount!: number;

  @Field(() => Int, { description: 'Machines missing at least one of them.' })
  machineCount!: number;
}

@ObjectType({ description: 'The fleet at a glance.' })
export class ComplianceSummary {
  @Field(() => Int)
  total!: number;

  @Field(() => Int)
  compliant!: number;

  @Field(() => Int)
  nonCompliant!: number;

  @Field(() => Int)
  notAssessed!: number;

  @Field(() => Int)
  ready!: number;

  @Field(() => Int)
  disconnected!: number;

  @Field(() => Int)
  notConfigured!: number;

  @Field(() => [ClassificationCount])
  pendingByClassification!: ClassificationCount[];

  @Field(() => Date, {
    description: 'The time every count is computed against: the summary is a snapshot, recomputed when older than FLEETPATCH_SUMMARY_MAX_AGE_SECONDS (15 s by default).',
  })
  computedAt!: Date;
}

@ObjectType({ description: 'What assessMachines did for each machine.' })
export class AssessRequestResult {
  @Field(() => ID)
  machineId!: string;

  @Field(() => Boolean, { description: 'An assessment command is waiting for (or was just handed to) the agent.' })
  requested!: boolean;

  @Field(() => ID, { nullable: true })
  commandId!: string | null;

  @Field(() => String, { nullable: true, description: 'Why not, when not requested.' })
  reason!: string | null;
}
