/**
 * Deployment planning: which pending updates a deployment installs on a machine, in what order,
 * which of them fit its maintenance window, how many machines run at once, and what the run's
 * statuses come to.
 *
 * Plain functions on plain data. The server, Temporal workflow code (deterministic sandbox) and
 * the agent bundle (Node 18) all import this file, so: no dependencies, no Node built-ins, no
 * clock (the caller passes `now`), no locale-dependent comparison (every caller must order the
 * same updates the same way).
 */
import type { Classification, MachineRunStatus, RebootSetting, Severity } from '../domain/vocabulary.js';
import { canStartUpdate } from '../domain/jobRules.js';
import type { PendingUpdate } from '../domain/types.js';
import type { OsType } from './compliance.js';
import { rebootForecast, rebootReserveSeconds, type RebootForecast } from './reboot.js';

/** Why an update outside a ringed run's frozen update set (rollout.ts) is left out. */
export const NOT_IN_UPDATE_SET_REASON = "not in the run's approved set";

/** An update as a member of a frozen update set: `name=version`. */
export const updateSetKey = (update: { name: string; availableVersion: string }) => `${update.name}=${update.availableVersion}`;

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/** LINUX or WINDOWS: a deployment targets one OS type. One definition, shared with the fleet view (compliance.ts). */
export type { OsType };

/** An update's classification and severity, as the agents report them (for the fleet's other decisions). */
export type { Classification, Severity };

/**
 * What happens about a reboot after the updates: IF_REQUIRED (the default: reboot when an update or
 * the machine asks for it), NEVER (the machine then stays "reboot pending" and says so), ALWAYS,
 * REBOOT_ONLY (install nothing, just reboot). Same values as the agent protocol's.
 */
export type { RebootSetting };

/**
 * One update on one machine in a run: SUCCEEDED, FAILED, NOT_ATTEMPTED (the window had too little
 * time left to start it), NOT_SELECTED (filtered out by classification or include/exclude).
 */
export type UpdateResultStatus = 'SUCCEEDED' | 'FAILED' | 'NOT_ATTEMPTED' | 'NOT_SELECTED';

/** A rate-control limit: an absolute number of machines, or a percentage of the run's machines. */
export interface Limit {
  value: number;
  unit: 'COUNT' | 'PERCENT';
}

/**
 * Which pending updates a deployment installs: the classifications it includes, plus package/KB
 * patterns forced in (include) or kept out (exclude). Exclude always wins.
 */
export interface UpdateSelection {
  classifications: Classification[];
  includePatterns: string[];
  excludePatterns: string[];
  /** Install what the machine's baseline approves now, instead of the classifications. */
  useBaseline?: boolean;
}

/** A pending update left out of a deployment, and why in words an operator reads. */
/**
 * What the machine's patch baseline (baselines.ts) says of one pending update at planning time:
 * rejected updates are never installed, by any deployment; a deployment that uses the baseline
 * installs the approved ones. Passed in as a function so that this file does not carry the rules.
 */
export interface BaselineDecision {
  rejected: boolean;
  approved: boolean;
  /** Why, in words: the NOT_SELECTED reason when it is left out. */
  reason: string;
}

export interface NotSelectedUpdate {
  update: PendingUpdate;
  reason: string;
}

// ---------------------------------------------------------------------------------------------
// Patterns and selection
// ---------------------------------------------------------------------------------------------

/** `*` matches any run of characters (also none), `?` exactly one; everything else is literal. Linear, no regex. */
function globMatch(text: string, pattern: string): boolean {
  let t = 0;
  let p = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === '?' || pattern[p] === text[t])) {
      t += 1;
      p += 1;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p;
      mark = t;
      p += 1;
    } else if (star >= 0) {
      p = star + 1;
      mark += 1;
      t = mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p += 1;
  return p === pattern.length;
}

/** A Windows update's name: its KB id, with its update id after it when two updates share the KB. */
const KB_NAME = /^(KB\d+)(?: \([^)]*\))?$/i;

function nameMatches(name: string, pattern: string): boolean {
  if (globMatch(name, pattern)) return true;
  const kbName = KB_NAME.exec(name);
  if (!kbName) return false;
  // Windows: KB ids compare case-insensitively, a bare number means that KB, and a KB names every update of it.
  const kbPattern = (/^\d/.test(pattern) ? `KB${pattern}` : pattern).toUpperCase();
  return globMatch(kbName[1]!.toUpperCase(), kbPattern) || globMatch(name.toUpperCase(), kbPattern);
}

/**
 * Whether an include/exclude pattern names this update. Forms:
 * - a package name with `*` and `?` wildcards (`openssl*`, `linux-image-?.*`): case-sensitive,
 *   as Linux package names are;
 * - `name=version`: the name (wildcards allowed) and exactly that available version, to pin one
 *   release (`openssl=3.0.2-0ubuntu1.12`);
 * - a Windows KB id, `KB5031356` or `5031356`, matching the updates of that KB (Windows updates are
 *   named by their KB id; a second update of the same KB is "KB5031356 (<update id>)")
 *   case-insensitively, wildcards allowed (`KB503*`).
 * An empty pattern matches nothing.
 */
export function matchesPattern(update: Pick<PendingUpdate, 'name' | 'availableVersion'>, pattern: string): boolean {
  const trimmed = pattern.trim();
  if (!trimmed) return false;
  const eq = trimmed.indexOf('=');
  if (eq < 0) return nameMatches(update.name, trimmed);
  const namePattern = trimmed.slice(0, eq).trim();
  const version = trimmed.slice(eq + 1).trim();
  if (!namePattern || !version) return false;
  return update.availableVersion === version && nameMatches(update.name, namePattern);
}

/**
 * Splits pending updates into what the deployment installs and what it leaves out (as
 * NOT_SELECTED, with the reason). An update is selected when its classification is in the list OR
 * an include pattern names it (include forces an update in, like Azure's include list), unless an
 * exclude pattern names it: exclude always wins, so an operator can keep one package out of a
 * "security updates" deployment. A new package (installedVersion null) is treated like any other
 * update. Input order is kept; `orderUpdates` sets the install order.
 */
export function selectUpdates(
  pending: PendingUpdate[],
  selection: UpdateSelection,
  baseline?: (update: PendingUpdate) => BaselineDecision,
): { selected: PendingUpdate[]; notSelected: NotSelectedUpdate[] } {
  const selected: PendingUpdate[] = [];
  const notSelected: NotSelectedUpdate[] = [];
  for (const update of pending) {
    const decision = baseline?.(update);
    const exclude = selection.excludePatterns.find((pattern) => matchesPattern(update, pattern));
    if (decision?.rejected) {
      // Rejected by the baseline: never installed, whatever the deployment includes.
      notSelected.push({ update, reason: decision.reason });
    } else if (exclude !== undefined) {
      notSelected.push({ update, reason: `excluded by pattern "${exclude.trim()}"` });
    } else if (selection.useBaseline) {
      if (decision?.approved || selection.includePatterns.some((pattern) => matchesPattern(update, pattern))) selected.push(update);
      else notSelected.push({ update, reason: decision?.reason ?? "the machine's baseline is not known" });
    } else if (selection.classifications.includes(update.classification) || selection.includePatterns.some((pattern) => matchesPattern(update, pattern))) {
      selected.push(update);
    } else {
      notSelected.push({ update, reason: `classification ${update.classification} is not selected` });
    }
  }
  return { selected, notSelected };
}

// ---------------------------------------------------------------------------------------------
// Install order
// ---------------------------------------------------------------------------------------------

const SEVERITY_RANK: Record<Severity, number> = { CRITICAL: 0, IMPORTANT: 1, MODERATE: 2, LOW: 3 };

function groupRank(classification: Classification): number {
  if (classification === 'CRITICAL') return 0;
  if (classification === 'SECURITY') return 1;
  return 2;
}

/** Code-unit comparison: the same answer in every runtime and locale (workflow, server, agent). */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The install order: CRITICAL updates first, then SECURITY, then everything else, so that a short
 * window spends its time on what matters most. Within a group: new packages (installedVersion null)
 * before updates, so that a dependency an update pulls in is installed before what needs it; then
 * by severity (CRITICAL, IMPORTANT, MODERATE, LOW, none); then by name (then arch and version, so
 * the order is total). Returns a new array.
 */
export function orderUpdates<T extends PendingUpdate>(updates: readonly T[]): T[] {
  return [...updates].sort(
    (a, b) =>
      groupRank(a.classification) - groupRank(b.classification) ||
      Number(a.installedVersion !== null) - Number(b.installedVersion !== null) ||
      (a.severity ? SEVERITY_RANK[a.severity] : 4) - (b.severity ? SEVERITY_RANK[b.severity] : 4) ||
      compareStrings(a.name, b.name) ||
      compareStrings(a.arch ?? '', b.arch ?? '') ||
      compareStrings(a.availableVersion, b.availableVersion),
  );
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

/**
 * Expected seconds to install one update when nothing was measured yet, per package backend.
 * Conservative constants from the issue: 90 s per package for apt and dnf (yum like dnf), 4 minutes
 * per zypper patch, 15 minutes per Windows update and 20 per Windows service pack. Overestimating
 * leaves an update NOT_ATTEMPTED; underestimating overruns the operator's window.
 */
export const DEFAULT_DURATIONS_SECONDS = {
  apt: 90,
  dnf: 90,
  yum: 90,
  zypper: 240,
  windows: 900,
  windowsServicePack: 1200,
} as const;

/** A learned duration is never trusted below this: a fast past install says little about the next one. */
export const LEARNED_FLOOR_SECONDS = 10;

/**
 * The seconds the planner and the agent expect an update to take. `learned` is the measured median
 * for that package on that machine (the caller looks it up): used when given and > 0, but never
 * below LEARNED_FLOOR_SECONDS, rounded up to whole seconds. Otherwise the backend's constant
 * (a SERVICE_PACK on windows takes windowsServicePack). An unknown backend gets the zypper figure,
 * the largest Linux one, to err on the side of the window.
 */
export function expectedSeconds(update: PendingUpdate, backend: string, learned?: number | null): number {
  if (learned !== undefined && learned !== null && Number.isFinite(learned) && learned > 0) {
    return Math.max(LEARNED_FLOOR_SECONDS, Math.ceil(learned));
  }
  switch (backend) {
    case 'apt':
    case 'dnf':
    case 'yum':
    case 'zypper':
      return DEFAULT_DURATIONS_SECONDS[backend];
    case 'windows':
      return update.classification === 'SERVICE_PACK' ? DEFAULT_DURATIONS_SECONDS.windowsServicePack : DEFAULT_DURATIONS_SECONDS.windows;
    default:
      return DEFAULT_DURATIONS_SECONDS.zypper;
  }
}

// ---------------------------------------------------------------------------------------------
// One machine's plan
// ---------------------------------------------------------------------------------------------

/** A selected update with its expected duration and its 1-based place in the install order. */
export type PlannedUpdate = PendingUpdate & { expectedSeconds: number; order: number };

export interface MachinePlan {
  /** What the agent is expected to install, in install order. */
  toInstall: PlannedUpdate[];
  /** Left out by the selection (or by REBOOT_ONLY), in the assessment's order, with the reason. */
  notSelected: NotSelectedUpdate[];
  /** Selected, but not expected to fit the window: the prediction of NOT_ATTEMPTED. */
  predictedNotAttempted: PlannedUpdate[];
  /** Seconds kept free at the end of the window for a reboot (0 when none may follow). */
  rebootReserveSeconds: number;
  /** Seconds the installs in `toInstall` are expected to take (the reboot reserve not included). */
  expectedSeconds: number;
  /** What can be said about a reboot after the planned updates (see RebootForecast in reboot.ts). */
  willReboot: RebootForecast;
}

export interface PlanMachineInput {
  pending: PendingUpdate[];
  selection: UpdateSelection;
  /** The machine's package backend: apt, dnf, yum, zypper, windows. */
  backend: string;
  osType: OsType;
  /** Seconds from the machine run's start to the window's end. */
  windowSeconds: number;
  rebootSetting: RebootSetting;
  /** The machine already needs a reboot (from its last assessment). */
  rebootPending: boolean;
  /** Measured median install seconds on this machine, keyed by package name / KB id. */
  learnedSeconds?: Record<string, number>;
  /**
   * A ringed run's frozen update set (`name=version` keys, see rollout.ts): a selected update whose
   * available version is not in it is NOT_SELECTED, "not in the run's approved set". Absent: no set.
   */
  updateSet?: ReadonlySet<string>;
  /** The machine's baseline on each update (see BaselineDecision). Absent: no baseline applies. */
  baseline?: (update: PendingUpdate) => BaselineDecision;
}

/**
 * The plan for one machine: the selection, the install order, and which updates fit the window.
 * REBOOT_ONLY installs nothing: every selected update is NOT_SELECTED with reason "the deployment
 * only reboots", and a reboot is planned.
 *
 * Fit rule: walk the ordered selected updates; an update is planned when the time used so far plus
 * its expected seconds plus the reboot reserve (when a reboot may follow) is at most the window;
 * otherwise it is predicted NOT_ATTEMPTED, and the walk goes on: a later, smaller update that still
 * fits IS planned. It is the runtime rule (`canStartUpdate`, src/domain/jobRules.ts), which the agent
 * checks against the time left before each update, skipping what does not fit and going on with the rest.
 */
export function planMachine(input: PlanMachineInput): MachinePlan {
  const selection = selectUpdates(input.pending, input.selection, input.baseline);
  const { notSelected } = selection;
  let { selected } = selection;
  if (input.updateSet) {
    const allowed = input.updateSet;
    for (const update of selected) if (!allowed.has(updateSetKey(update))) notSelected.push({ update, reason: NOT_IN_UPDATE_SET_REASON });
    selected = selected.filter((update) => allowed.has(updateSetKey(update)));
  }

  const forecast = (updates: readonly PendingUpdate[]) =>
    rebootForecast({ setting: input.rebootSetting, backend: input.backend, machineRebootPending: input.rebootPending, updates });

  if (input.rebootSetting === 'REBOOT_ONLY') {
    const reasons = new Map<PendingUpdate, string>(notSelected.map((entry) => [entry.update, entry.reason]));
    return {
      toInstall: [],
      notSelected: input.pending.map((update) => ({ update, reason: reasons.get(update) ?? 'the deployment only reboots' })),
      predictedNotAttempted: [],
      rebootReserveSeconds: rebootReserveSeconds(forecast([]), input.osType),
      expectedSeconds: 0,
      willReboot: forecast([]),
    };
  }

  // The reserve is kept for what may be installed (all that is selected), as the install job does.
  const reserve = rebootReserveSeconds(forecast(selected), input.osType);
  const toInstall: PlannedUpdate[] = [];
  const predictedNotAttempted: PlannedUpdate[] = [];
  let used = 0;
  orderUpdates(selected).forEach((update, index) => {
    const learned = input.learnedSeconds ? input.learnedSeconds[update.name] : undefined;
    const planned: PlannedUpdate = { ...update, expectedSeconds: expectedSeconds(update, input.backend, learned), order: index + 1 };
    // The agent's own rule, with the window's start as the time now and `used` seconds gone.
    if (canStartUpdate({ nowMs: used * 1000, deadlineMs: input.windowSeconds * 1000, expectedSeconds: planned.expectedSeconds, rebootReserveSeconds: reserve })) {
      toInstall.push(planned);
      used += planned.expectedSeconds;
    } else {
      predictedNotAttempted.push(planned);
    }
  });

  return { toInstall, notSelected, predictedNotAttempted, rebootReserveSeconds: reserve, expectedSeconds: used, willReboot: forecast(toInstall) };
}

// ---------------------------------------------------------------------------------------------
// The window's grace
// ---------------------------------------------------------------------------------------------

/**
 * An update already running at the window's end is allowed to finish within this many seconds
 * (killing a package manager mid-install can leave the machine broken); once this grace is over
 * the machine run fails as TIMED_OUT and nothing more is started.
 */
export const INSTALL_GRACE_SECONDS = 600;

// ---------------------------------------------------------------------------------------------
// Rate control
// ---------------------------------------------------------------------------------------------

/**
 * A limit as a number of machines for a run over `total` machines: COUNT is the value; PERCENT is
 * ceil(total × value / 100) (rounded up: 10 % of 15 machines is 2); null (no limit) is `fallback`.
 * Never negative.
 */
export function resolveLimit(limit: Limit | null, total: number, fallback: number): number {
  if (!limit) return fallback;
  if (limit.unit === 'COUNT') return Math.max(0, limit.value);
  // The small epsilon keeps float noise (e.g. 0.30000000000000004) from rounding up a whole number.
  return Math.max(0, Math.ceil((total * limit.value) / 100 - 1e-9));
}

/**
 * How many machine runs may run at once: the limit, by default all machines up to
 * DEFAULT_MAX_CONCURRENT, never more than `cap` (MAX_RUNNING_MACHINES for a run of child workflows,
 * batchedRun.ts's own for a batched run); at least 1, or nothing would ever start.
 */
export function maxConcurrentMachines(limit: Limit | null, total: number, cap = MAX_RUNNING_MACHINES): number {
  return Math.min(cap, Math.max(1, resolveLimit(limit, total, Math.min(total, DEFAULT_MAX_CONCURRENT))));
}

/**
 * A run holds one child workflow per running machine, and Temporal refuses more than 2,000 pending
 * children per workflow: a limit of "5,000 machines" or "100 %" runs 1,000 at a time, which keeps
 * half of Temporal's allowance free.
 */
export const MAX_RUNNING_MACHINES = 1000;

/**
 * Without a limit, at most this many machines run at once. Measured (BENCHMARKS.md, deployment
 * dispatch): a run starting 1,000 children at once stalls its parent workflow past Temporal's
 * workflow task deadline on two cores and crashes the worker; batches of 100 go through.
 */
export const DEFAULT_MAX_CONCURRENT = 100;

/**
 * Max failures: once this many machine runs have failed, start no new machine (the running ones
 * finish). By default no limit (Infinity). At least 1: a threshold of 0 would start nothing at all,
 * and "stop at the first failure" is 1.
 */
export function failureThreshold(limit: Limit | null, total: number): number {
  return Math.max(1, resolveLimit(limit, total, Number.POSITIVE_INFINITY));
}

/** Whether to start another machine run now: some remain, a concurrency slot is free, and the failure threshold is not reached. */
export function shouldStartMoreMachines(state: { running: number; failed: number; remaining: number }, concurrency: number, threshold: number): boolean {
  return state.remaining > 0 && state.running < concurrency && state.failed < threshold;
}

// ---------------------------------------------------------------------------------------------
// Statuses
// ---------------------------------------------------------------------------------------------

/** One machine inside a deployment run. NOT_STARTED: the run ended (failure threshold, cancel, deadline) before it began. */
export type { MachineRunStatus };

/**
 * A finished machine run's status: FAILED when any update failed, the reboot failed (the agent did
 * not come back with a new boot id in time) or the agent was lost; else TIMED_OUT when an update
 * overran the window and its grace; else SUCCEEDED (NOT_ATTEMPTED and NOT_SELECTED updates do not
 * fail a machine: the window was honoured).
 */
export function machineRunStatus(
  results: readonly UpdateResultStatus[],
  outcome: { timedOut: boolean; rebootFailed: boolean; agentLost: boolean; canceled?: boolean; jobFailed?: boolean },
): MachineRunStatus {
  if (outcome.canceled) return 'CANCELED';
  // jobFailed: the job could not run at all (assess-only agent, machine removed, hand-over failed).
  if (results.includes('FAILED') || outcome.rebootFailed || outcome.agentLost || outcome.jobFailed) return 'FAILED';
  if (outcome.timedOut) return 'TIMED_OUT';
  return 'SUCCEEDED';
}

export type DeploymentRunStatus = 'SCHEDULED' | 'IN_PROGRESS' | 'SUCCEEDED' | 'PARTIALLY_FAILED' | 'FAILED' | 'CANCELED';

const UNFINISHED: ReadonlySet<MachineRunStatus> = new Set<MachineRunStatus>(['PENDING', 'IN_PROGRESS', 'REBOOTING']);
const NOTHING_DONE: ReadonlySet<MachineRunStatus> = new Set<MachineRunStatus>(['FAILED', 'TIMED_OUT', 'NOT_STARTED']);

/**
 * A deployment run's status from its machine runs:
 * - canceled → CANCELED;
 * - no machine at all → FAILED: a run that targeted no machine did nothing the operator asked for
 *   (an empty tag filter, every machine removed), and SUCCEEDED would hide that;
 * - a machine run still PENDING/IN_PROGRESS/REBOOTING → IN_PROGRESS (not final yet);
 * - every machine run SUCCEEDED with no failed update → SUCCEEDED;
 * - every machine run FAILED, TIMED_OUT or NOT_STARTED with no update succeeded anywhere → FAILED;
 * - otherwise PARTIALLY_FAILED (the seed: "If one or more updates fail in the deployment, the
 *   status is Partially failed"). A machine run CANCELED on its own counts here too.
 */
export function deploymentRunStatus(
  machineRuns: ReadonlyArray<{ status: MachineRunStatus; failedUpdates: number; succeededUpdates: number }>,
  canceled: boolean,
): DeploymentRunStatus {
  if (canceled) return 'CANCELED';
  if (machineRuns.length === 0) return 'FAILED';
  if (machineRuns.some((run) => UNFINISHED.has(run.status))) return 'IN_PROGRESS';
  if (machineRuns.every((run) => run.status === 'SUCCEEDED' && run.failedUpdates === 0)) return 'SUCCEEDED';
  if (machineRuns.every((run) => NOTHING_DONE.has(run.status)) && machineRuns.every((run) => run.succeededUpdates === 0)) return 'FAILED';
  return 'PARTIALLY_FAILED';
}

/**
 * deploymentRunStatus from what the database counts for a run of any size (its machine runs by
 * status, its updates failed and succeeded), instead of every machine run: the same rules, since
 * "every machine run SUCCEEDED, none with a failed update" is "every machine run SUCCEEDED and no
 * failed update in the run", and likewise for "nothing succeeded anywhere".
 */
export function deploymentRunStatusFromCounts(counts: { byStatus: Partial<Record<MachineRunStatus, number>>; failedUpdates: number; succeededUpdates: number }, canceled: boolean): DeploymentRunStatus {
  if (canceled) return 'CANCELED';
  const entries = Object.entries(counts.byStatus).filter(([, n]) => (n ?? 0) > 0) as Array<[MachineRunStatus, number]>;
  if (entries.length === 0) return 'FAILED';
  if (entries.some(([status]) => UNFINISHED.has(status))) return 'IN_PROGRESS';
  if (entries.every(([status]) => status === 'SUCCEEDED') && counts.failedUpdates === 0) return 'SUCCEEDED';
  if (entries.every(([status]) => NOTHING_DONE.has(status)) && counts.succeededUpdates === 0) return 'FAILED';
  return 'PARTIALLY_FAILED';
}

/** How many updates ended in each status (every status present, 0 when none): the run's summary line. */
export function summariseResults(statuses: readonly UpdateResultStatus[]): Record<UpdateResultStatus, number> {
  const counts: Record<UpdateResultStatus, number> = { SUCCEEDED: 0, FAILED: 0, NOT_ATTEMPTED: 0, NOT_SELECTED: 0 };
  for (const status of statuses) counts[status] += 1;
  return counts;
}

/** Why a run left a machine unstarted, in words for the operator. */
export function notStartedReason(state: { canceled: boolean; failed: number; threshold: number }): string {
  if (state.canceled) return 'The run was canceled before this machine started.';
  if (state.failed >= state.threshold) return `Not started: ${state.failed} machine(s) had failed, reaching the deployment's maximum failures.`;
  return 'Not started: the maintenance window ended before this machine could begin.';
}
