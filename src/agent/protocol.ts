/**
 * The agent endpoint's protocol (`/agent/v1`, JSON over HTTPS), shared by the agent and the server.
 * Types only: the server validates every request against its own schema of these shapes. The
 * shapes the server keeps and decides on (facts, reports, jobs, commands) live in src/domain.
 */
import type { AgentCommand, MachineFacts } from '../domain/types.js';
import type { ReleaseKeyOffer } from './release.js';

export type {
  AgentCommandKind,
  AssessmentTrigger,
  Environment,
  JobUpdateStatus,
  OsType,
  RebootSetting,
  UpgradeStatus,
} from '../domain/vocabulary.js';
export type {
  AgentCommand,
  AssessmentReport,
  InstallJob,
  JobEvents,
  JobLine,
  JobResult,
  JobUpdate,
  JobUpdateState,
  MachineFacts,
  ScriptJobStep,
  StepReport,
  UpgradeArtifact,
  UpgradeCommand,
  UpgradeReport,
} from '../domain/types.js';

export const AGENT_API_PREFIX = '/agent/v1';

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
  /**
   * The agent's id for this enrollment, the same in every retry of it (16-64 of [A-Za-z0-9_-]): a
   * request sent again after its answer was lost answers for the machine the first one enrolled,
   * with a new credential, instead of enrolling a second. Optional: without it, every request enrolls.
   */
  enrollmentRequestId?: string;
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

export interface CommandsResponse {
  commands: AgentCommand[];
}

export interface AssessmentReportResponse {
  /** false when the report had already been stored (a resend). */
  stored: boolean;
}

/** Every non-2xx answer of the agent endpoint. */
export interface AgentErrorResponse {
  error: { code: string; message: string };
}
