/**
 * What an agent that starts again does with the install jobs it kept on disk: plain decisions on
 * the job's saved state and what is seen now (the boot id, the processes the job had started, the
 * package database). The runner (jobs.ts) does the I/O around them.
 *
 * Why the job itself is kept, and not only its progress: an agent that dies in the middle of a job
 * (a crash, a SIGKILL, an upgrade, systemd's restart, a power cut) must take it back at once when
 * it starts. The server hands a command out once, and offers it again only when the agent says it
 * lost track (its first command poll after a start, or after a poll that failed: `redeliver`), so
 * both sides meet whatever the crash point:
 * - died before the job was written down: the server offers it again at the first poll;
 * - died with the job on disk: the agent queues it before anything else, the poll's offer of the
 *   same id is ignored;
 * - in the middle of an update: that update is never started again. The agent waits for the
 *   package manager it had started if it is still running (same boot), lets the package manager
 *   repair what a kill left half done (dpkg's journal), then reads the package database: SUCCEEDED
 *   when it shows the new version, FAILED "the agent restarted while this update was being
 *   installed" otherwise; then the next update;
 * - after the result was computed: it is delivered (the server stores a result once);
 * - after delivery, before the reboot: the reboot is started if this boot is still the one the
 *   result named; after it (a new boot id), nothing is left to do.
 * Before going on with a job it took back, the agent asks the server (its first progress batch):
 * a job whose machine run ended meanwhile is refused (409, 404) and is dropped, never continued.
 * So no timer decides: neither the install heartbeat window nor a redelivery delay.
 */
import type { ProcessRecord, ObservedProcess } from './processes.js';
import type { InstallJob, JobResult, JobUpdate, JobUpdateState, StepReport } from './protocol.js';

/** The update being installed, and what its package manager runs as, in which boot. */
export interface RunningUpdate {
  key: string;
  bootId: string | null;
  processes: ProcessRecord[];
}

/** What the agent keeps on disk about an install job (`<state dir>/jobs/<id>.json`). */
export interface JobState {
  /** The job as the server handed it; null in a file written before jobs were kept. */
  job: InstallJob | null;
  receivedAt: string;
  updates: Record<string, JobUpdateState>;
  running: RunningUpdate | null;
  /** An installed update said the machine needs a reboot, in this boot (a reboot since then satisfied it). */
  rebootRequired: { bootId: string | null } | null;
  /** The last progress batch number used. */
  seq: number;
  result: JobResult | null;
  resultDelivered: boolean;
  /** The agent started the reboot its result announced (it is never started twice). */
  rebootStarted: boolean;
  /** DONE: nothing left to do. WITHDRAWN: the server no longer wants it (its machine run ended). */
  finished: 'DONE' | 'WITHDRAWN' | null;
  /** How the job's scripts went, by step index (absent in files written before steps). */
  steps?: Record<string, StepReport>;
  /** The script started and not yet recorded: after a restart it is failed, never run twice. */
  runningStep?: number | null;
}

export function emptyJobState(job: InstallJob | null, receivedAt: string): JobState {
  return { job, receivedAt, updates: {}, running: null, rebootRequired: null, seq: 0, result: null, resultDelivered: false, rebootStarted: false, finished: null };
}

/** A state read from disk, whatever agent version wrote it (missing fields take their defaults). */
export function normaliseJobState(raw: Partial<JobState>, fallbackReceivedAt: string): JobState {
  return { ...emptyJobState(raw.job ?? null, raw.receivedAt ?? fallbackReceivedAt), ...raw, job: raw.job ?? null, updates: raw.updates ?? {} };
}

export const updateKey = (u: { name: string; arch: string | null }) => `${u.name}/${u.arch ?? ''}`;

// ---------------------------------------------------------------------------------------------
// At start

/** Whether the agent queues this job at start: it knows the job and has something left to do. */
export function resumesAtStart(state: JobState): boolean {
  return state.job !== null && state.finished === null;
}

/** Jobs to take back at start, in the order they were received. */
export function resumeOrder<T extends { state: JobState }>(jobs: readonly T[]): T[] {
  return jobs.filter((j) => resumesAtStart(j.state)).sort((a, b) => (a.state.receivedAt < b.state.receivedAt ? -1 : a.state.receivedAt > b.state.receivedAt ? 1 : 0));
}

/** The job was started before (on this agent run or an earlier one): going on with it is a resume. */
export function isResume(state: JobState): boolean {
  return state.seq > 0 || state.running !== null || Object.keys(state.updates).length > 0 || state.result !== null;
}

// ---------------------------------------------------------------------------------------------
// The updates

/**
 * What to do with one of the job's updates given what was saved about it: SKIP one that ended
 * before a restart, SETTLE one that was running when the agent stopped (never start it again),
 * START one not begun.
 */
export function updateStep(previous: JobUpdateState | undefined): 'SKIP' | 'SETTLE' | 'START' {
  if (!previous) return 'START';
  return previous.status === 'IN_PROGRESS' ? 'SETTLE' : 'SKIP';
}

/** Two boot ids that are both known and differ: the machine restarted in between. */
export function bootChanged(before: string | null, now: string | null): boolean {
  return before !== null && now !== null && before !== now;
}

/**
 * The processes of an interrupted update that still run: none after a reboot; otherwise those whose
 * id is still taken by the same process (same start time where known) that has not exited.
 */
export function stillRunning(running: RunningUpdate | null, bootIdNow: string | null, observed: ReadonlyMap<number, ObservedProcess | null>): ProcessRecord[] {
  if (!running || bootChanged(running.bootId, bootIdNow)) return [];
  return running.processes.filter((p) => {
    const seen = observed.get(p.pid);
    if (!seen || seen.exited) return false;
    return p.startTicks === null || seen.startTicks === null || p.startTicks === seen.startTicks;
  });
}

/** What the package database shows for an update, when the backend can read it. */
export interface DatabaseView {
  /** The update's own version is installed (and, for dpkg, fully configured). */
  installed: boolean;
  installedVersion: string | null;
}

/** What repairing an interrupted package manager gave (apt: `dpkg --configure -a`). */
export interface RecoveryOutcome {
  exitCode: number | null;
  /** The package manager's error lines, null when it succeeded. */
  errorText: string | null;
}

export const RESTARTED_DURING_UPDATE = 'The agent restarted while this update was being installed';

/**
 * The outcome of an update the agent was installing when it stopped: SUCCEEDED when the package
 * database shows the new version, FAILED otherwise (and when its package manager was still running
 * at the end of the window's grace, or the database cannot be read), never started again.
 */
export function interruptedOutcome(input: {
  update: JobUpdate;
  previous: JobUpdateState;
  database: DatabaseView | null;
  machineRestarted: boolean;
  recovery: RecoveryOutcome | null;
  /** The package manager it had started was still running when the window's grace ended. */
  outlivedGrace: boolean;
  nowIso: string;
}): JobUpdateState {
  const { update, previous, database, recovery } = input;
  const restarted = `${RESTARTED_DURING_UPDATE}${input.machineRestarted ? ' (the machine restarted too)' : ''}`;
  const base = { name: update.name, arch: update.arch, startedAt: previous.startedAt, endedAt: input.nowIso, exitCode: recovery?.exitCode ?? null };
  if (input.outlivedGrace) {
    return { ...base, status: 'FAILED', errorText: recovery?.errorText ?? null, installedVersion: database?.installedVersion ?? previous.installedVersion, reason: `${restarted}; the package manager it had started was still running when the window's grace ended.` };
  }
  if (database?.installed) {
    return { ...base, status: 'SUCCEEDED', errorText: recovery?.errorText ?? null, installedVersion: database.installedVersion, reason: `${restarted}; the package database shows ${update.name} ${update.availableVersion} installed.` };
  }
  const shows = database
    ? `the package database shows ${update.name} ${database.installedVersion ? `at ${database.installedVersion}` : 'not installed'}, not ${update.availableVersion} installed`
    : 'this package manager cannot tell whether it was installed: the next assessment shows it';
  return { ...base, status: 'FAILED', errorText: recovery?.errorText ?? null, installedVersion: database?.installedVersion ?? previous.installedVersion, reason: `${restarted}; ${shows}.` };
}

// ---------------------------------------------------------------------------------------------
// After the updates

/** An update of this job asked for a reboot, and no reboot happened since. */
export function rebootStillRequired(required: JobState['rebootRequired'], bootIdNow: string | null): boolean {
  return required !== null && !bootChanged(required.bootId, bootIdNow);
}

/**
 * The reboot the delivered result announced is still to be started: the agent has not started it
 * (it stopped between delivering the result and starting the reboot), and the machine still runs
 * the boot the result named (a new boot id means it rebooted since, whoever did it: the workflow
 * waits for exactly that).
 */
export function rebootDue(state: Pick<JobState, 'result' | 'resultDelivered' | 'rebootStarted'>, bootIdNow: string | null): boolean {
  return Boolean(state.result?.rebooting) && state.resultDelivered && !state.rebootStarted && !bootChanged(state.result!.bootId, bootIdNow);
}
