/**
 * What a package backend (apt, dnf/yum, zypper, Windows Update) tells the agent. Plain data: the
 * agent sends it to the server as it is, and `fleetpatch agent assess --json` prints it.
 */

/** Linux: CRITICAL (security advisory rated critical), SECURITY (any other security update), OTHER. Windows adds its own. */
export type Classification =
  | 'CRITICAL'
  | 'SECURITY'
  | 'OTHER'
  | 'UPDATE_ROLLUP'
  | 'FEATURE_PACK'
  | 'SERVICE_PACK'
  | 'DEFINITION'
  | 'TOOLS'
  | 'UPDATES';

/** The distribution's own severity, normalised to one vocabulary (null when it gives none). */
export type Severity = 'CRITICAL' | 'IMPORTANT' | 'MODERATE' | 'LOW';

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

export type UpdateOutcomeStatus = 'SUCCEEDED' | 'FAILED';

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
