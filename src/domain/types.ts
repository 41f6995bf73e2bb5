/**
 * The shapes the agent, the server's decisions, its storage and its activities share: a pending
 * update and an assessment, a machine's facts, an install job and how it went, an agent command
 * and an upgrade. Plain data, written once here (the agent sends and receives them as JSON,
 * src/agent/protocol.ts; the server validates them, src/api/agent/agent.schema.ts). Like
 * vocabulary.ts, this file imports nothing but the vocabulary.
 */
import type {
  AgentCommandKind,
  AssessmentTrigger,
  Classification,
  Environment,
  JobUpdateStatus,
  OsType,
  RebootSetting,
  Severity,
  StepFailureAction,
  StepKind,
  StepPhase,
  StepStatus,
  UpgradeStatus,
} from './vocabulary.js';

export interface PendingUpdate {
  /** Package name (Linux) or KB id (Windows). */
  name: string;
  /** null when the update pulls this package in new (it is not installed yet). */
  installedVersion: string | null;
  availableVersion: string;
  /** Package architecture where the package manager has one (amd64, x86_64, noarch, all). */
  arch: string | null;
  classification: Classification;
  severity: Severity | null;
  /** Advisory ids: DSA/DLA, RHSA/ALSA/FEDORA-..., SUSE-SU-..., KB ids. Empty when none. */
  advisoryIds: string[];
  cveIds: string[];
  /**
   * When the advisory behind this update was issued (ISO 8601, UTC), where the metadata says:
   * dnf/yum updateinfo `<issued date>`, zypper's patch issue date, WUA's LastDeploymentChangeTime.
   * With several advisories, the newest one's (the advisory that published the version offered).
   * Absent when unknown (left out of the report then, like `note`).
   */
  advisoryIssuedAt?: string | null;
  /**
   * The source package the update's binary package is built from, where it differs from `name`
   * (apt: the Packages `Source:` field; `libssl3` from `openssl`). Security trackers name source
   * packages. Absent when it is the same or unknown (left out of the report then, like `note`).
   */
  sourcePackage?: string | null;
  /** The metadata suggests a reboot after installing it (kernel, reboot_suggested, installhint). */
  rebootSuggested: boolean;
  /** Where the available version comes from (apt origin/suite, dnf repo id, zypper repo alias). */
  repository: string | null;
  /**
   * Why the update is listed when that is not plain to see: a package dpkg left half-configured is
   * pending with the same installed and available version. Absent when there is nothing to say
   * (left out of the report then, so a server that does not know the field still takes it).
   */
  note?: string | null;
}

export interface RepositoryProblem {
  /** The repository as the package manager names it (URL, repo id or alias). */
  repository: string;
  message: string;
}

export interface AssessmentResult {
  /** The machine already needs a reboot (reboot-required file, needs-restarting, zypper needs-rebooting). */
  rebootPending: boolean;
  updates: PendingUpdate[];
  /**
   * Repositories that could not be read: the list of updates may be incomplete. The seed:
   * "Linux agents must have access to an update repository".
   */
  repositoryProblems: RepositoryProblem[];
}

/** What an agent knows about its machine, sent at enrollment and at every check-in. */
export interface MachineFacts {
  hostname: string;
  osType: OsType;
  /** PRETTY_NAME or NAME from os-release ("Debian GNU/Linux 12 (bookworm)"). */
  osName: string;
  /** VERSION_ID ("12", "9.4", "15.5"). */
  osVersion: string;
  kernel: string | null;
  agentVersion: string;
  /** Changes at every boot: how the server sees that a machine rebooted. */
  bootId: string | null;
  /** apt, dnf, yum, zypper, windows; null when none is found. */
  packageManager: string | null;
  environment: Environment;
  /** Problems worth an operator's attention, e.g. automatic updates that install behind the deployments' back. */
  warnings: string[];
  /**
   * What this agent can do beyond installing: `SCRIPT_STEPS` (it runs a deployment's scripts,
   * `InstallJob.scripts`). Absent from agents older than steps: the server sends them no script.
   */
  capabilities?: string[];
}

/**
 * One assessment, successful (`result`) or failed (`error`). `id` is chosen by the agent when the
 * assessment runs, so a report resent after a lost answer is stored once.
 */
export interface AssessmentReport {
  id: string;
  commandId: string | null;
  trigger: AssessmentTrigger;
  backend: string;
  startedAt: string;
  finishedAt: string;
  result: AssessmentResult | null;
  error: { code: string; message: string; output: string | null } | null;
}

export interface AgentCommand {
  id: string;
  kind: AgentCommandKind;
  /** INSTALL only. */
  install?: InstallJob;
  /** UPGRADE only. */
  upgrade?: UpgradeCommand;
}

/** One platform's executable of the release to upgrade to, and where the server serves it. */
export interface UpgradeArtifact extends ReleaseArtifact {
  /** Its path on the server (`/agent/download/fleetpatch-agent-linux-x64`). */
  path: string;
  /** Ed25519 signature (base64) of `releaseStatement(artifact)` by the server's release key. */
  signature: string;
}

/** Replace this agent's executable with `version`; the agent picks its own platform's artifact. */
export interface UpgradeCommand {
  version: string;
  /** The new executable must check in within this long after the swap, or the previous one is put back. */
  rollbackAfterSeconds: number;
  artifacts: UpgradeArtifact[];
}

/** One executable of a release, as the server describes it to its agents. */
export interface ReleaseArtifact {
  /** The agent version the executable reports (`fleetpatch-agent --version`). */
  version: string;
  /** linux-x64, linux-arm64, windows-x64. */
  platform: string;
  sha256: string;
  size: number;
}

export interface UpgradeReport {
  status: UpgradeStatus;
  /** ALREADY_CURRENT, NOT_SUPPORTED, BAD_SIGNATURE, HASH_MISMATCH, DOWNLOAD_FAILED, STARTUP_CHECK_FAILED, NO_CHECK_IN... */
  code: string;
  message: string;
  fromVersion: string;
  toVersion: string;
}

/** An update the job installs, in the order given. */
export interface JobUpdate extends PendingUpdate {
  /** Seconds the planner expects it to take: it is started only if the window still has them. */
  expectedSeconds: number;
}

/**
 * One machine's part of a deployment run. The job id is the command id: an agent that receives the
 * same job again (after a restart, a lost answer) resumes it and installs nothing twice.
 */
export interface InstallJob {
  runId: string;
  machineRunId: string;
  /** The maintenance window's end. */
  deadline: string;
  /** An update still running at the deadline may finish within this; after it the machine run is timed out. */
  graceSeconds: number;
  rebootSetting: RebootSetting;
  /** Minutes kept free at the end of the window for a reboot, when one may follow. */
  rebootReserveSeconds: number;
  updates: JobUpdate[];
  /**
   * Scripts to run, in order, before the first update (PRE) or, in a job without updates sent
   * after the installs and the reboot, on their own (POST). Agents announcing SCRIPT_STEPS only.
   */
  scripts?: ScriptJobStep[];
}

/** One script step of a job (src/fleet/steps.ts has the rules). */
export interface ScriptJobStep {
  /** The step's place in the deployment's list. */
  index: number;
  name: string;
  phase: StepPhase;
  /** Anything but CONTINUE stops the job at this script's failure: nothing after it runs, no update is installed. */
  onFailure: StepFailureAction;
  inline: string | null;
  path: string | null;
  interpreter: string;
  timeoutSeconds: number;
}

/** How one step went on one machine (src/fleet/steps.ts calls it StepResult). */
export interface StepReport {
  /** The step's place in the deployment's list (0-based). */
  index: number;
  name: string;
  phase: StepPhase;
  kind: StepKind;
  onFailure: StepFailureAction;
  status: StepStatus;
  /** Why it failed or did not run; for a call, the last attempt's problem. */
  message: string | null;
  exitCode: number | null;
  httpStatus: number | null;
  attempts: number;
  startedAt: string | null;
  endedAt: string | null;
}

export interface JobUpdateState {
  name: string;
  arch: string | null;
  status: JobUpdateStatus;
  exitCode: number | null;
  errorText: string | null;
  /** Why NOT_ATTEMPTED (or why FAILED when the agent stopped). */
  reason: string | null;
  installedVersion: string | null;
  startedAt: string | null;
  endedAt: string | null;
}

export interface JobLine {
  at: string;
  stream: 'stdout' | 'stderr' | 'agent';
  text: string;
}

/** Progress of a running job: new output lines and changed update states, in batches numbered from 1. */
export interface JobEvents {
  seq: number;
  lines: JobLine[];
  updates: JobUpdateState[];
}

/** How the job ended on the machine. */
export interface JobResult {
  updates: JobUpdateState[];
  /** The machine needs a reboot after the job (a package said so, or it already did). */
  rebootRequired: boolean;
  /** The agent is about to reboot the machine (per the reboot setting). */
  rebooting: boolean;
  /** The boot id before any reboot, so the server can tell when the machine is back. */
  bootId: string | null;
  /** The last update ran past the window's end and its grace. */
  timedOut: boolean;
  /** The job could not run at all (assess-only agent, no package manager). */
  error: { code: string; message: string } | null;
  /** How the job's scripts went, in order (absent: the job had none, or the agent predates steps). */
  steps?: StepReport[];
  /**
   * The job's last batch of progress, stored with the result in one transaction, so that it needs
   * no request of its own. Never stored in the result itself. Servers before this field refuse it
   * (400): the agent then sends the batch on its own first.
   */
  events?: JobEvents;
}
