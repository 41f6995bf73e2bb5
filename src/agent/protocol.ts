/**
 * The agent endpoint's protocol (`/agent/v1`, JSON over HTTPS), shared by the agent and the server.
 * Types only: the server validates every request against its own schema of these shapes.
 */
import type { AssessmentResult } from './backends/types.js';

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
}

export interface CheckInRequest {
  facts: MachineFacts;
}

export interface CheckInResponse {
  managementEnabled: boolean;
  settings: AgentSettings;
}

export type AgentCommandKind = 'ASSESS';

export interface AgentCommand {
  id: string;
  kind: AgentCommandKind;
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
