/**
 * The agent endpoint's protocol (`/agent/v1`, JSON over HTTPS), shared by the agent and the server.
 * Types only: the server validates every request against its own schema of these shapes.
 */
import type { AssessmentResult, PendingUpdate } from './backends/types.js';
import type { ReleaseArtifact, ReleaseKeyOffer } from './release.js';

export const AGENT_API_PREFIX = '/agent/v1';

export type OsType = 'LINUX' | 'WINDOWS';
export type Environment = 'AZURE' | 'AWS' | 'GCP' | 'ON_PREMISES';

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

/** Timings the server hands to its agents, so they are set in one place. */
export interface AgentSettings {
  checkInIntervalSeconds: number;
  /** Full assessment cadence for this machine's OS (seed: 3 h Linux, 12 h Windows). */
  assessmentIntervalSeconds: number;
  /** How often the agent looks at its package database for changes (seed: 15 min). */
  packageDatabaseCheckSeconds: number;
  /** How long a command long-poll stays open. */
  longPollSeconds: number;
}

export interface EnrollRequest {
  enrollmentKey: string;
  facts: MachineFacts;
}

export interface EnrollResponse {
  machineId: string;
  /** The machine's own credential: shown once, stored by the server only as a hash. */
  credential: string;
  settings: AgentSettings;
  /** The server's release signing key, which the agent pins: upgrades must be signed by it (or a key it endorsed). Null: the server has none. */
  releaseKey?: ReleaseKeyOffer | null;
}

export interface CheckInRequest {
  facts: MachineFacts;
}

export interface CheckInResponse {
  managementEnabled: boolean;
  settings: AgentSettings;
  /** The server's current release key and its rotations, so that agents follow a rotation. */
  releaseKey?: ReleaseKeyOffer | null;
}

/** `POST /enroll/check`: the key would enroll a machine now (otherwise 403 with the reason). */
export interface EnrollCheckResponse {
  usable: true;
}

export type AgentCommandKind = 'ASSESS' | 'INSTALL' | 'UPGRADE';

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

/**
 * How an upgrade ended on the machine. BUSY: the agent was running an install job and upgraded
 * nothing (it upgrades between jobs only); the server may ask again later.
 */
export type UpgradeStatus = 'SUCCEEDED' | 'FAILED' | 'ROLLED_BACK' | 'BUSY';

export interface UpgradeReport {
  status: UpgradeStatus;
  /** ALREADY_CURRENT, NOT_SUPPORTED, BAD_SIGNATURE, HASH_MISMATCH, DOWNLOAD_FAILED, STARTUP_CHECK_FAILED, NO_CHECK_IN... */
  code: string;
  message: string;
  fromVersion: string;
  toVersion: string;
}

export type RebootSetting = 'IF_REQUIRED' | 'NEVER' | 'ALWAYS' | 'REBOOT_ONLY';

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
  phase: 'PRE' | 'POST';
  /** Anything but CONTINUE stops the job at this script's failure: nothing after it runs, no update is installed. */
  onFailure: 'CONTINUE' | 'SKIP_INSTALLS' | 'FAIL_MACHINE' | 'HALT_RUN';
  inline: string | null;
  path: string | null;
  interpreter: string;
  timeoutSeconds: number;
}

/** How a step went (the same shape as src/fleet/steps.ts's StepResult). */
export interface StepReport {
  index: number;
  name: string;
  phase: 'PRE' | 'POST';
  kind: 'SCRIPT' | 'HTTP';
  onFailure: 'CONTINUE' | 'SKIP_INSTALLS' | 'FAIL_MACHINE' | 'HALT_RUN';
  status: 'SUCCEEDED' | 'FAILED' | 'NOT_RUN';
  message: string | null;
  exitCode: number | null;
  httpStatus: number | null;
  attempts: number;
  startedAt: string | null;
  endedAt: string | null;
}

export type JobUpdateStatus = 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'NOT_ATTEMPTED';

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
}

export interface CommandsResponse {
  commands: AgentCommand[];
}

export type AssessmentTrigger = 'STARTUP' | 'SCHEDULE' | 'PACKAGE_DATABASE_CHANGED' | 'COMMAND';

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

export interface AssessmentReportResponse {
  /** false when the report had already been stored (a resend). */
  stored: boolean;
}

/** Every non-2xx answer of the agent endpoint. */
export interface AgentErrorResponse {
  error: { code: string; message: string };
}
