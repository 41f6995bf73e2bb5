/**
 * What a package backend (apt, dnf/yum, zypper, Windows Update) tells the agent. Plain data: the
 * agent sends it to the server as it is, and `fleetpatch agent assess --json` prints it.
 * The shared shapes and words live in src/domain; the backends' own contract is below.
 */
import type { AssessmentResult, PendingUpdate } from '../../domain/types.js';
import type { UpdateOutcomeStatus } from '../../domain/vocabulary.js';

export type { Classification, Severity, UpdateOutcomeStatus } from '../../domain/vocabulary.js';
export type { AssessmentResult, PendingUpdate, RepositoryProblem } from '../../domain/types.js';

export interface UpdateOutcome {
  status: UpdateOutcomeStatus;
  /** The package manager's exit code. */
  exitCode: number | null;
  /** On failure: the package manager's own error text (its error lines, not the whole output). */
  errorText: string | null;
  /** The installed version afterwards, read back from the package database. */
  installedVersion: string | null;
  /** The machine needs a reboot after this update. */
  rebootRequired: boolean;
}

export interface BackendContext {
  /** The managed system: '/' on a real machine, a fixture root in tests. */
  root: string;
  /** Environment for the package manager's processes (tests give rpm a HOME with .rpmmacros). */
  env: NodeJS.ProcessEnv;
  /** A private folder the backend may write to (apt config for a root, zypper logs, tmp). */
  workDir: string;
}

export interface InstallOptions {
  /** The maintenance window's end: a backend that downloads first (Windows) starts no install past it. */
  deadline?: Date;
}

export interface PackageBackend {
  readonly name: 'apt' | 'dnf' | 'yum' | 'zypper' | 'windows';
  /** Refreshes repository metadata, then lists every pending update. */
  assess(ctx: BackendContext): Promise<AssessmentResult>;
  /**
   * Installs one update (to `update.availableVersion`), streaming the package manager's output
   * lines. Resolves with FAILED for a failing install; throws BackendError for LOCKED and the like.
   */
  installUpdate(ctx: BackendContext, update: PendingUpdate, onOutput: (line: string) => void, options?: InstallOptions): Promise<UpdateOutcome>;
  /** A cheap fingerprint of the package database (mtime/size): when it changes, assess again. */
  databaseFingerprint(ctx: BackendContext): Promise<string>;
  /**
   * Whether the machine needs a reboot, where the backend can tell without a full assessment
   * (Windows: a WUA search takes minutes). Without it, the agent reads it from `assess`.
   */
  rebootPending?(ctx: BackendContext): Promise<boolean>;
  /**
   * What the package database shows for an update's package: whether the update's own version is
   * installed (fully: dpkg has configured it), and the version it shows. Read when the agent
   * restarted in the middle of installing it. Without it, such an update is reported FAILED.
   */
  installedState?(ctx: BackendContext, update: PendingUpdate): Promise<{ installed: boolean; installedVersion: string | null }>;
  /**
   * Repairs what a package manager killed in the middle of a transaction left behind, as the
   * package manager itself prescribes, so that later installs can run (apt: `dpkg --configure -a`
   * when dpkg's journal says it was interrupted). Undefined when there was nothing to repair.
   */
  recoverInterrupted?(ctx: BackendContext, onOutput: (line: string) => void): Promise<{ exitCode: number | null; errorText: string | null } | undefined>;
}

export type BackendErrorCode =
  /** Another process holds the package manager's lock. Retry later. */
  | 'LOCKED'
  /** The package manager's output could not be understood. `output` carries it. */
  | 'UNPARSEABLE_OUTPUT'
  /** The package manager failed as a whole (crashed, killed, misconfigured). */
  | 'COMMAND_FAILED'
  /** The package manager is not installed. */
  | 'NOT_INSTALLED';

export class BackendError extends Error {
  override name = 'BackendError';
  constructor(
    readonly code: BackendErrorCode,
    message: string,
    readonly details: { exitCode?: number | null; output?: string; command?: string } = {},
  ) {
    super(message);
  }
}
