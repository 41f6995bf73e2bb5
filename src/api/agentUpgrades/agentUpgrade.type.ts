import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { LimitInput } from '../deployments/deployment.input.js';
import { Limit } from '../deployments/deployment.type.js';
import { ConnectionType } from '../relay.js';

export enum AgentUpgradeStatus {
  IN_PROGRESS = 'IN_PROGRESS',
  SUCCEEDED = 'SUCCEEDED',
  PARTIALLY_FAILED = 'PARTIALLY_FAILED',
  FAILED = 'FAILED',
  CANCELED = 'CANCELED',
}
registerEnumType(AgentUpgradeStatus, { name: 'AgentUpgradeStatus' });

export enum AgentUpgradeMachineStatus {
  PENDING = 'PENDING',
  IN_PROGRESS = 'IN_PROGRESS',
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
  ROLLED_BACK = 'ROLLED_BACK',
  TIMED_OUT = 'TIMED_OUT',
  SKIPPED = 'SKIPPED',
  NOT_STARTED = 'NOT_STARTED',
  CANCELED = 'CANCELED',
}
registerEnumType(AgentUpgradeMachineStatus, {
  name: 'AgentUpgradeMachineStatus',
  description: 'ROLLED_BACK: the new agent did not check in in time and the machine runs its previous agent again. SKIPPED: left out, with the reason (already current, disconnected, Windows, busy installing updates every time it was asked).',
});

@ObjectType({ description: 'One platform\'s agent executable the server offers.' })
export class AgentExecutable {
  @Field(() => String, { description: 'linux-x64, linux-arm64, windows-x64.' })
  platform!: string;

  @Field(() => String)
  name!: string;

  @Field(() => String)
  sha256!: string;

  @Field(() => Int)
  size!: number;

  @Field(() => String, { description: 'Its path on this server (/agent/download/...).' })
  path!: string;
}

@ObjectType({ description: 'One agent package the server offers.' })
export class AgentPackage {
  @Field(() => String)
  name!: string;

  @Field(() => String, { description: 'deb, rpm or zip.' })
  format!: string;

  @Field(() => String, { description: 'amd64, arm64 (deb); x86_64, aarch64 (rpm); x64 (zip).' })
  arch!: string;

  @Field(() => String)
  sha256!: string;

  @Field(() => Int)
  size!: number;

  @Field(() => String)
  path!: string;
}

@ObjectType({ description: 'The agent this server was built with: what it installs (install.sh) and upgrades agents to.' })
export class AgentRelease {
  @Field(() => String, { nullable: true, description: 'The agent version it ships; null when it was built without the executables.' })
  version!: string | null;

  @Field(() => [AgentExecutable])
  executables!: AgentExecutable[];

  @Field(() => [AgentPackage])
  packages!: AgentPackage[];

  @Field(() => String, { nullable: true, description: "The release signing key's fingerprint (SHA256:...), which agents pin at enrollment; null: the server has none and cannot upgrade agents." })
  releaseKeyFingerprint!: string | null;

  @Field(() => [String], { description: 'What the server lacks (built without the packages, without the executables), in words.' })
  problems!: string[];
}

@ObjectType({ description: 'Machines running one agent version.' })
export class AgentVersionCount {
  @Field(() => String, { nullable: true, description: 'null: machines that never reported a version.' })
  version!: string | null;

  @Field(() => Int)
  machines!: number;

  @Field(() => Boolean, { nullable: true, description: 'Older than the version the server ships (or not a version at all); null when either is unknown.' })
  outdated!: boolean | null;
}

@ObjectType({ description: 'The fleet by agent version.' })
export class AgentVersionSummary {
  @Field(() => String, { nullable: true, description: 'The version the server ships (null: it ships none).' })
  shippedVersion!: string | null;

  @Field(() => Int, { description: 'Machines whose agent is outdated.' })
  outdatedMachines!: number;

  @Field(() => [AgentVersionCount], { description: 'Newest first.' })
  versions!: AgentVersionCount[];
}

@ObjectType()
export class AgentUpgradeCounts {
  @Field(() => Int) total!: number;
  @Field(() => Int) pending!: number;
  @Field(() => Int) inProgress!: number;
  @Field(() => Int) succeeded!: number;
  @Field(() => Int) failed!: number;
  @Field(() => Int) rolledBack!: number;
  @Field(() => Int) timedOut!: number;
  @Field(() => Int) skipped!: number;
  @Field(() => Int) notStarted!: number;
  @Field(() => Int) canceled!: number;
}

@ObjectType({ description: 'One machine of an agent upgrade.' })
export class AgentUpgradeMachine {
  @Field(() => ID)
  machineId!: string;

  @Field(() => String, { description: 'Its name when the upgrade was created.' })
  machineName!: string;

  @Field(() => String, { nullable: true })
  fromVersion!: string | null;

  @Field(() => AgentUpgradeMachineStatus)
  status!: AgentUpgradeMachineStatus;

  @Field(() => String, { nullable: true, description: 'UPGRADED, ALREADY_CURRENT, BAD_SIGNATURE, HASH_MISMATCH, DOWNLOAD_FAILED, STARTUP_CHECK_FAILED, NO_CHECK_IN, NOT_SUPPORTED, INSTALL_JOB_RUNNING, NO_REPORT, DISCONNECTED...' })
  code!: string | null;

  @Field(() => String, { nullable: true, description: "The agent's (or the server's) own words on how it ended." })
  message!: string | null;

  @Field(() => Int, { description: 'Commands sent: more than one when the agent was busy installing updates and was asked again.' })
  attempts!: number;

  @Field(() => Date, { nullable: true })
  startedAt!: Date | null;

  @Field(() => Date, { nullable: true })
  endedAt!: Date | null;
}

export const AgentUpgradeMachineConnection = ConnectionType('AgentUpgradeMachine', AgentUpgradeMachine);

@ObjectType({ description: 'Agents upgraded to the version the server ships, by a Temporal workflow (agent-upgrade:<id>), with a result per machine.' })
export class AgentUpgrade {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  toVersion!: string;

  @Field(() => AgentUpgradeStatus)
  status!: AgentUpgradeStatus;

  @Field(() => String, { description: 'The release key that signed the executables (SHA256:...).' })
  signedBy!: string;

  @Field(() => Int, { description: 'A new agent that has not checked in this long after the swap is rolled back.' })
  rollbackAfterSeconds!: number;

  @Field(() => Limit, { nullable: true })
  maxConcurrent!: Limit | null;

  @Field(() => Limit, { nullable: true })
  maxFailures!: Limit | null;

  @Field(() => String, { nullable: true, description: 'The API token that asked for it.' })
  requestedBy!: string | null;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  endedAt!: Date | null;
}

export const AgentUpgradeConnection = ConnectionType('AgentUpgrade', AgentUpgrade);

@InputType({ description: 'Machines by tags and name.' })
export class AgentUpgradeFilterInput {
  @Field(() => [String], { defaultValue: [], description: 'Machines carrying every one of these tags.' })
  tags!: string[];

  @Field(() => String, { nullable: true, description: 'Machines whose name contains this (any case).' })
  nameContains?: string | null;
}

@InputType({ description: 'Which agents to upgrade (one of allMachines, machineIds, filter) and how fast.' })
export class UpgradeAgentsInput {
  @Field(() => Boolean, { nullable: true, description: 'Every machine.' })
  allMachines?: boolean | null;

  @Field(() => [ID], { nullable: true })
  machineIds?: string[] | null;

  @Field(() => AgentUpgradeFilterInput, { nullable: true })
  filter?: AgentUpgradeFilterInput | null;

  @Field(() => LimitInput, { nullable: true, description: 'At most this many machines at once (COUNT, or PERCENT of the machines to upgrade); default 100.' })
  maxConcurrent?: LimitInput | null;

  @Field(() => LimitInput, { nullable: true, description: 'No new machine starts once this many have failed, rolled back or timed out; default: no limit.' })
  maxFailures?: LimitInput | null;

  @Field(() => Int, { nullable: true, description: 'How long a new agent has to check in after the swap before its machine rolls back (30 to 3600 s; default 180).' })
  rollbackAfterSeconds?: number | null;
}

@ObjectType({ description: 'The one line that installs the agent and enrolls a machine with this key, per platform.' })
export class InstallCommands {
  @Field(() => String, { description: 'The server address in the commands: FLEETPATCH_PUBLIC_URL, or the address this request reached the server at.' })
  serverUrl!: string;

  @Field(() => String, { description: 'Linux (Debian, Ubuntu, RHEL family, SUSE), as root: curl -fsSL .../agent/install.sh | sudo FLEETPATCH_ENROLL_KEY=... sh' })
  linux!: string;

  @Field(() => String, { description: 'Windows Server, in an elevated PowerShell.' })
  windows!: string;
}
