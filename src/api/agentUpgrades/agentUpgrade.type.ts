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
registerEnumType(AgentUpgradeStatus, {
  name: 'AgentUpgradeStatus',
  description: 'Where an agent upgrade stands.',
  valuesConfig: {
    IN_PROGRESS: { description: 'Machines are being upgraded.' },
    SUCCEEDED: { description: 'Every machine taken was upgraded (or was already current).' },
    PARTIALLY_FAILED: { description: 'Some machines failed, rolled back or timed out.' },
    FAILED: { description: 'No machine was upgraded.' },
    CANCELED: { description: 'Canceled by an operator.' },
  },
});

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
  valuesConfig: {
    PENDING: { description: 'Not started yet.' },
    IN_PROGRESS: { description: 'Its agent was sent the upgrade.' },
    SUCCEEDED: { description: 'It runs the new agent.' },
    FAILED: { description: 'The upgrade failed before the swap (see code and message).' },
    ROLLED_BACK: { description: 'The new agent did not check in in time: the machine runs its previous agent again.' },
    TIMED_OUT: { description: 'No outcome came back in time.' },
    SKIPPED: { description: 'Left out, with the reason (already current, disconnected, Windows, busy installing updates).' },
    NOT_STARTED: { description: 'Never started: the upgrade ended first (failures limit).' },
    CANCELED: { description: 'The upgrade was canceled before this machine started.' },
  },
});

@ObjectType({ description: 'One platform\'s agent executable the server offers.' })
export class AgentExecutable {
  @Field(() => String, { description: 'linux-x64, linux-arm64, windows-x64.' })
  platform!: string;

  @Field(() => String, { description: 'Its file name.' })
  name!: string;

  @Field(() => String, { description: 'Its SHA-256, in hex.' })
  sha256!: string;

  @Field(() => Int, { description: 'Its size in bytes.' })
  size!: number;

  @Field(() => String, { description: 'Its path on this server (/agent/download/...).' })
  path!: string;
}

@ObjectType({ description: 'One agent package the server offers.' })
export class AgentPackage {
  @Field(() => String, { description: 'Its file name.' })
  name!: string;

  @Field(() => String, { description: 'deb, rpm, zip or msi.' })
  format!: string;

  @Field(() => String, { description: 'amd64, arm64 (deb); x86_64, aarch64 (rpm); x64 (zip, msi).' })
  arch!: string;

  @Field(() => String, { description: 'Its SHA-256, in hex.' })
  sha256!: string;

  @Field(() => Int, { description: 'Its size in bytes.' })
  size!: number;

  @Field(() => String, { description: 'Its path on this server (/agent/download/...).' })
  path!: string;
}

@ObjectType({ description: 'The agent this server was built with: what it installs (install.sh) and upgrades agents to.' })
export class AgentRelease {
  @Field(() => String, { nullable: true, description: 'The agent version it ships; null when it was built without the executables.' })
  version!: string | null;

  @Field(() => [AgentExecutable], { description: 'Its executables, one per platform.' })
  executables!: AgentExecutable[];

  @Field(() => [AgentPackage], { description: 'Its packages (deb, rpm, zip, msi).' })
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

  @Field(() => Int, { description: 'How many machines run it.' })
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

@ObjectType({ description: "An agent upgrade's machines by status." })
export class AgentUpgradeCounts {
  @Field(() => Int, { description: 'Every machine of the upgrade.' }) total!: number;
  @Field(() => Int, { description: 'PENDING.' }) pending!: number;
  @Field(() => Int, { description: 'IN_PROGRESS.' }) inProgress!: number;
  @Field(() => Int, { description: 'SUCCEEDED.' }) succeeded!: number;
  @Field(() => Int, { description: 'FAILED.' }) failed!: number;
  @Field(() => Int, { description: 'ROLLED_BACK.' }) rolledBack!: number;
  @Field(() => Int, { description: 'TIMED_OUT.' }) timedOut!: number;
  @Field(() => Int, { description: 'SKIPPED.' }) skipped!: number;
  @Field(() => Int, { description: 'NOT_STARTED.' }) notStarted!: number;
  @Field(() => Int, { description: 'CANCELED.' }) canceled!: number;
}

@ObjectType({ description: 'One machine of an agent upgrade.' })
export class AgentUpgradeMachine {
  @Field(() => ID, { description: 'The machine.' })
  machineId!: string;

  @Field(() => String, { description: 'Its name when the upgrade was created.' })
  machineName!: string;

  @Field(() => String, { nullable: true, description: 'Its agent version when the upgrade was created (null: unknown).' })
  fromVersion!: string | null;

  @Field(() => AgentUpgradeMachineStatus, { description: 'Where this machine stands in the upgrade.' })
  status!: AgentUpgradeMachineStatus;

  @Field(() => String, { nullable: true, description: 'UPGRADED, ALREADY_CURRENT, BAD_SIGNATURE, HASH_MISMATCH, DOWNLOAD_FAILED, STARTUP_CHECK_FAILED, NO_CHECK_IN, NOT_SUPPORTED, INSTALL_JOB_RUNNING, NO_REPORT, DISCONNECTED...' })
  code!: string | null;

  @Field(() => String, { nullable: true, description: "The agent's (or the server's) own words on how it ended." })
  message!: string | null;

  @Field(() => Int, { description: 'Commands sent: more than one when the agent was busy installing updates and was asked again.' })
  attempts!: number;

  @Field(() => Date, { nullable: true, description: 'When its first command was sent (null while PENDING).' })
  startedAt!: Date | null;

  @Field(() => Date, { nullable: true, description: 'When its part ended (null while it runs).' })
  endedAt!: Date | null;
}

export const AgentUpgradeMachineConnection = ConnectionType('AgentUpgradeMachine', AgentUpgradeMachine, 'machines of an agent upgrade');

@ObjectType({ description: 'Agents upgraded to the version the server ships, by a Temporal workflow (agent-upgrade:<id>), with a result per machine.' })
export class AgentUpgrade {
  @Field(() => ID, { description: "The upgrade's id." })
  id!: string;

  @Field(() => String, { description: 'The agent version it upgrades to.' })
  toVersion!: string;

  @Field(() => AgentUpgradeStatus, { description: 'Where the upgrade stands.' })
  status!: AgentUpgradeStatus;

  @Field(() => String, { description: 'The release key that signed the executables (SHA256:...).' })
  signedBy!: string;

  @Field(() => Int, { description: 'A new agent that has not checked in this long after the swap is rolled back.' })
  rollbackAfterSeconds!: number;

  @Field(() => Limit, { nullable: true, description: 'At most this many machines at once (null: the default, 100).' })
  maxConcurrent!: Limit | null;

  @Field(() => Limit, { nullable: true, description: 'No new machine starts once this many have failed, rolled back or timed out (null: no limit).' })
  maxFailures!: Limit | null;

  @Field(() => String, { nullable: true, description: 'The API token that asked for it.' })
  requestedBy!: string | null;

  @Field(() => Date, { description: 'When it was asked for.' })
  createdAt!: Date;

  @Field(() => Date, { nullable: true, description: 'When it ended (null while it runs).' })
  endedAt!: Date | null;
}

export const AgentUpgradeConnection = ConnectionType('AgentUpgrade', AgentUpgrade, 'agent upgrades');

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

  @Field(() => [ID], { nullable: true, description: 'These machines.' })
  machineIds?: string[] | null;

  @Field(() => AgentUpgradeFilterInput, { nullable: true, description: 'The machines matching this filter.' })
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
