import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { version } from '../version.js';
import { ServerRefusal, type AgentClient } from './client.js';
import { exec } from './exec.js';
import type { AgentLog } from './log.js';
import type { UpgradeCommand, UpgradeReport } from './protocol.js';
import { keyFingerprint, nextPinnedKey, releaseStatement, verifyStatement, type ReleaseKeyOffer } from './release.js';
import {
  agentPlatform,
  confirmedOutcome,
  downloadProblem,
  restartMode,
  rollbackOutcome,
  selfExecutable,
  busyOutcome,
  startupCheckProblem,
  upgradeAtStart,
  upgradeStart,
  watchdogDecision,
  type UpgradeOutcome,
  type UpgradeRecord,
} from './selfUpdate.js';
import { sleep } from './sleep.js';

/**
 * The I/O of the agent's self-update (the decisions are in selfUpdate.ts): the pinned release key,
 * the download, the swap, the watchdog and the outcomes waiting to be reported. Everything it
 * keeps is in the state dir:
 *
 *   release-key.json            the release key pinned at enrollment (or followed through a rotation)
 *   upgrade.json                an upgrade between its swap and its confirmation (UpgradeRecord)
 *   upgrade.claimed             the same, taken by whoever decided how it ended
 *   upgrade-outcome-<id>.json   an outcome not yet delivered to the server
 */

const PINNED_KEY_FILE = 'release-key.json';
const RECORD_FILE = 'upgrade.json';
const CLAIMED_FILE = 'upgrade.claimed';
const OUTCOME_PREFIX = 'upgrade-outcome-';
const DOWNLOAD_PREFIX = '.fleetpatch-agent-download-';
/** Asking the new executable its version: Bun starts in tens of milliseconds; this is for a loaded machine. */
const STARTUP_CHECK_MS = 30_000;
/** The whole download, 100 MiB: minutes even on a slow link; past this it is a stalled connection. */
const DOWNLOAD_TIMEOUT_MS = 30 * 60_000;

interface PinnedKey {
  publicKey: string;
  fingerprint: string;
  pinnedAt: string;
}

function writeAtomically(file: string, content: string): void {
  const partial = `${file}.partial`;
  fs.writeFileSync(partial, content, { mode: 0o600 });
  fs.renameSync(partial, file);
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Renames `from` to `to`; false when `from` was already gone (someone else claimed it). */
function claim(from: string, to: string): boolean {
  try {
    fs.renameSync(from, to);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** `work` with a signal that aborts with `signal` or after `ms` (AbortSignal.any is not in Node 18, which runs the .mjs bundle). */
async function withDeadline<T>(signal: AbortSignal, ms: number, work: (bounded: AbortSignal) => Promise<T>): Promise<T> {
  const bounded = new AbortController();
  const onAbort = () => bounded.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => bounded.abort(new Error(`no end within ${Math.round(ms / 60_000)} minutes`)), ms);
  try {
    return await work(bounded.signal);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

function pinKey(stateDir: string, publicKey: string): void {
  writeAtomically(path.join(stateDir, PINNED_KEY_FILE), JSON.stringify({ publicKey, fingerprint: keyFingerprint(publicKey), pinnedAt: new Date().toISOString() } satisfies PinnedKey, null, 2));
}

/** At enrollment (by `run` or by `enroll`): the server's key is the one this agent trusts from now on. */
export function pinReleaseKeyAtEnrollment(stateDir: string, offer: ReleaseKeyOffer | null | undefined, log: AgentLog): void {
  if (!offer) {
    log('warn', 'the server offered no release key at enrollment: this agent refuses every upgrade until it is offered one');
    return;
  }
  pinKey(stateDir, offer.publicKey);
  log('info', "pinned the server's release key", { fingerprint: keyFingerprint(offer.publicKey) });
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

export interface UpgraderOptions {
  client: AgentClient;
  stateDir: string;
  log: AgentLog;
  env: NodeJS.ProcessEnv;
  /** The agent's own arguments (`run --server ...`), to start it again without a supervisor. */
  args: string[];
  /** Tests: the executable to replace and the platform, instead of this process's own. */
  executable?: string | null;
  platform?: string;
  arch?: string;
}

export class AgentUpgrader {
  private readonly executable: string | null;
  private readonly platform;
  private confirmPending: UpgradeRecord | undefined;
  private readonly handled = new Set<string>();
  private keyProblemSaid: string | undefined;

  constructor(private readonly options: UpgraderOptions) {
    this.executable = options.executable !== undefined ? options.executable : selfExecutable(process.argv, process.execPath);
    this.platform = agentPlatform(options.platform ?? process.platform, options.arch ?? process.arch);
  }

  private file(name: string): string {
    return path.join(this.options.stateDir, name);
  }

  // ---- the release key ----

  pinnedKey(): string | null {
    return readJson<PinnedKey>(this.file(PINNED_KEY_FILE))?.publicKey ?? null;
  }

  private pin(publicKey: string): void {
    pinKey(this.options.stateDir, publicKey);
  }

  /** At enrollment: the server's key is the one this agent will trust from now on. */
  pinAtEnrollment(offer: ReleaseKeyOffer | null | undefined): void {
    pinReleaseKeyAtEnrollment(this.options.stateDir, offer, this.options.log);
  }

  /**
   * At each check-in: follows a rotation endorsed by the pinned key. An agent enrolled before the
   * server had a key pins the first one it is offered, over its authenticated connection.
   */
  followOffer(offer: ReleaseKeyOffer | null | undefined): void {
    if (!offer) return;
    const pinned = this.pinnedKey();
    if (!pinned) {
      this.pin(offer.publicKey);
      this.options.log('info', 'pinned the server\'s release key (none was pinned at enrollment)', { fingerprint: offer.fingerprint });
      return;
    }
    const next = nextPinnedKey(pinned, offer);
    if ('problem' in next) {
      if (this.keyProblemSaid !== offer.fingerprint) this.options.log('warn', next.problem);
      this.keyProblemSaid = offer.fingerprint;
      return;
    }
    if (next.rotated > 0) {
      this.pin(next.publicKey);
      this.options.log('info', 'followed a rotation of the release key', { from: keyFingerprint(pinned), to: offer.fingerprint, steps: next.rotated });
    }
  }

  // ---- outcomes ----

  private saveOutcome(commandId: string, outcome: UpgradeOutcome, fromVersion: string, toVersion: string): void {
    const report: UpgradeReport = { ...outcome, fromVersion, toVersion };
    writeAtomically(this.file(`${OUTCOME_PREFIX}${commandId}.json`), JSON.stringify({ commandId, report }));
    this.options.log(outcome.status === 'SUCCEEDED' ? 'info' : 'warn', `upgrade ${outcome.status.toLowerCase()}`, { commandId, code: outcome.code, message: outcome.message });
  }

  /** Sends every outcome not yet delivered; a refusal (the server no longer waits for it) drops it. */
  async deliverOutcomes(): Promise<void> {
    const waiting = fs.readdirSync(this.options.stateDir).filter((name) => name.startsWith(OUTCOME_PREFIX) && name.endsWith('.json'));
    for (const name of waiting) {
      const saved = readJson<{ commandId: string; report: UpgradeReport }>(this.file(name));
      if (!saved) {
        fs.rmSync(this.file(name), { force: true });
        continue;
      }
      this.handled.add(saved.commandId);
      try {
        await this.options.client.sendUpgradeReport(saved.commandId, saved.report);
      } catch (error) {
        if (!(error instanceof ServerRefusal)) throw error;
        this.options.log('warn', 'the server refused an upgrade outcome; dropped', { commandId: saved.commandId, error: error.message });
      }
      fs.rmSync(this.file(name), { force: true });
    }
  }

  // ---- at start, and after each check-in ----

  /** What a starting agent finds: its own upgrade to confirm once it has checked in, or one to close. */
  atStart(): void {
    if (this.executable) {
      // A download an earlier process left behind when it died.
      const dir = path.dirname(this.executable);
      for (const name of fs.readdirSync(dir)) if (name.startsWith(DOWNLOAD_PREFIX)) fs.rmSync(path.join(dir, name), { force: true });
    }
    // Commands whose outcome is still waiting to be delivered: the server hands a started agent its
    // open commands again, and one of these must not be run a second time.
    for (const name of fs.readdirSync(this.options.stateDir)) {
      if (name.startsWith(OUTCOME_PREFIX) && name.endsWith('.json')) this.handled.add(name.slice(OUTCOME_PREFIX.length, -'.json'.length));
    }
    const record = readJson<UpgradeRecord>(this.file(RECORD_FILE));
    const decision = upgradeAtStart(record, version);
    if (decision === 'NONE' || !record) return;
    this.handled.add(record.commandId);
    if (decision === 'CONFIRM_AFTER_CHECK_IN') {
      record.newPids.push(process.pid);
      // Rewritten only while still open: the watchdog may have claimed it meanwhile.
      if (fs.existsSync(this.file(RECORD_FILE))) writeAtomically(this.file(RECORD_FILE), JSON.stringify(record));
      this.confirmPending = record;
      this.options.log('info', 'upgraded executable started; it confirms the upgrade once it has checked in', { from: record.fromVersion, to: record.toVersion, deadline: record.deadline });
      return;
    }
    if (claim(this.file(RECORD_FILE), this.file(CLAIMED_FILE))) {
      this.saveOutcome(record.commandId, decision.claim, record.fromVersion, record.toVersion);
      fs.rmSync(this.file(CLAIMED_FILE), { force: true });
    }
  }

  /**
   * After a check-in went through: the new version confirms its upgrade (unless the watchdog
   * already gave up on it, in which case it stops: the previous version takes over), then every
   * waiting outcome is delivered. Returns 'STOP' when this process must exit.
   */
  async afterCheckIn(): Promise<'GO_ON' | 'STOP'> {
    const record = this.confirmPending;
    if (record) {
      this.confirmPending = undefined;
      if (!claim(this.file(RECORD_FILE), this.file(CLAIMED_FILE))) {
        this.options.log('error', 'checked in too late: the watchdog has put the previous executable back; stopping');
        return 'STOP';
      }
      this.saveOutcome(record.commandId, confirmedOutcome(record), record.fromVersion, record.toVersion);
      fs.rmSync(this.file(CLAIMED_FILE), { force: true });
      fs.rmSync(record.previous, { force: true });
    }
    await this.deliverOutcomes();
    return 'GO_ON';
  }

  // ---- the upgrade ----

  /**
   * Runs one UPGRADE command. 'RESTART': the new executable is in place and the agent must exit now
   * (then `handOver`); 'DONE': it ended here, its outcome saved and on its way. `busyWith` names an
   * install job running, queued or kept unfinished in the state dir (null when there is none): asked
   * before the download and again just before the swap, since a job may arrive while it downloads.
   */
  async run(commandId: string, command: UpgradeCommand, busyWith: () => string | null, signal: AbortSignal): Promise<'RESTART' | 'DONE'> {
    if (this.handled.has(commandId)) return 'DONE';
    this.handled.add(commandId);
    const { log } = this.options;
    const end = async (outcome: UpgradeOutcome): Promise<'DONE'> => {
      this.saveOutcome(commandId, outcome, version, command.version);
      await this.deliverOutcomes().catch((error: unknown) => log('warn', 'upgrade outcome not delivered yet; sent again after the next check-in', { error: errorText(error) }));
      return 'DONE';
    };
    const start = upgradeStart(
      { command, runningVersion: version, platform: this.platform, executable: this.executable, pinnedKey: this.pinnedKey(), installJob: busyWith() },
      (artifact, key) => verifyStatement(key, releaseStatement(artifact), artifact.signature),
    );
    if ('outcome' in start) return end(start.outcome);
    const { artifact } = start;
    const executable = this.executable!;
    log('info', 'upgrading', { from: version, to: command.version, sha256: artifact.sha256 });

    // Beside the executable, so that the swap is one rename on one filesystem.
    const download = path.join(path.dirname(executable), `${DOWNLOAD_PREFIX}${process.pid}`);
    try {
      let received;
      try {
        received = await withDeadline(signal, DOWNLOAD_TIMEOUT_MS, (bounded) => this.options.client.download(artifact.path, download, artifact.size, bounded));
      } catch (error) {
        return await end({ status: 'FAILED', code: 'DOWNLOAD_FAILED', message: `The download of version ${command.version} from ${artifact.path} failed (${errorText(error)}); nothing was replaced.` });
      }
      const mismatch = downloadProblem(artifact, received);
      if (mismatch) return await end(mismatch);
      fs.chmodSync(download, 0o755);
      const answer = await exec(download, ['--version'], { timeoutMs: STARTUP_CHECK_MS, env: { PATH: this.options.env.PATH ?? '/usr/bin:/bin' } }).then(
        (r) => ({ ...r, timedOut: r.signal === 'SIGKILL' && r.exitCode === null }),
        (error: unknown) => ({ exitCode: null, signal: null, stdout: '', stderr: errorText(error), timedOut: false }),
      );
      const broken = startupCheckProblem(command.version, answer);
      if (broken) return await end(broken);
      const arrived = busyWith();
      if (arrived) return await end(busyOutcome(arrived));

      const now = Date.now();
      const record: UpgradeRecord = {
        commandId,
        fromVersion: version,
        toVersion: command.version,
        executable,
        previous: `${executable}.previous`,
        args: this.options.args,
        restart: restartMode(this.options.env),
        swappedAt: new Date(now).toISOString(),
        deadline: new Date(now + command.rollbackAfterSeconds * 1000).toISOString(),
        newPids: [],
      };
      try {
        fs.rmSync(record.previous, { force: true });
        try {
          fs.linkSync(executable, record.previous);
        } catch {
          fs.copyFileSync(executable, record.previous);
          fs.chmodSync(record.previous, 0o755);
        }
        writeAtomically(this.file(RECORD_FILE), JSON.stringify(record));
        fs.renameSync(download, executable);
      } catch (error) {
        fs.rmSync(this.file(RECORD_FILE), { force: true });
        return await end({ status: 'FAILED', code: 'SWAP_FAILED', message: `Version ${command.version} could not be put in place of ${executable} (${errorText(error)}); the running agent was left as it was.` });
      }
      // The watchdog is the previous executable: the one known to work.
      const watchdog = spawn(record.previous, ['upgrade-watchdog', '--state-dir', this.options.stateDir], { detached: true, stdio: ['ignore', 'ignore', 'inherit'], env: this.options.env });
      watchdog.on('error', (error) => log('error', 'the upgrade watchdog could not start', { error: error.message }));
      watchdog.unref();
      log('info', 'new executable in place; restarting into it', { to: command.version, restart: record.restart, rollbackAfterSeconds: command.rollbackAfterSeconds });
      return 'RESTART';
    } finally {
      fs.rmSync(download, { force: true });
    }
  }

  /** After 'RESTART', as this process exits: without a supervisor, starts the new executable itself. */
  handOver(): void {
    const record = readJson<UpgradeRecord>(this.file(RECORD_FILE));
    if (!record || record.restart !== 'RELAUNCH') return;
    relaunch(record.executable, record.args, this.options.env, this.options.log);
  }
}

function relaunch(executable: string, args: string[], env: NodeJS.ProcessEnv, log: AgentLog): void {
  const child = spawn(executable, args, { detached: true, stdio: ['ignore', 'inherit', 'inherit'], env });
  child.on('error', (error) => log('error', 'could not start the agent again', { executable, error: error.message }));
  child.unref();
}

/** Whether `pid` is a process still running `executable` (Linux: its /proc entry says so). */
function runsExecutable(pid: number, executable: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`).startsWith(executable);
  } catch {
    return process.platform !== 'linux';
  }
}

/**
 * `fleetpatch-agent upgrade-watchdog`: started by the agent from its previous executable as it
 * swaps in a new one. Waits for the new agent to confirm (it claims the record); at the deadline
 * claims it instead, puts the previous executable back, stops any new process still running, and
 * saves the outcome for the agent that comes back. Under a supervisor the restored executable is
 * what the next restart runs; without one, the watchdog starts it.
 */
export async function runUpgradeWatchdog(stateDir: string, log: AgentLog): Promise<void> {
  const recordFile = path.join(stateDir, RECORD_FILE);
  for (;;) {
    const record = readJson<UpgradeRecord>(recordFile);
    if (!record) return; // confirmed (or closed) by the agent
    if (watchdogDecision(record, Date.now()) === 'WAIT') {
      await sleep(1000);
      continue;
    }
    if (!claim(recordFile, path.join(stateDir, CLAIMED_FILE))) return;
    const latest = readJson<UpgradeRecord>(path.join(stateDir, CLAIMED_FILE)) ?? record;
    let outcome = rollbackOutcome(latest);
    try {
      fs.renameSync(latest.previous, latest.executable);
    } catch (error) {
      outcome = {
        status: 'FAILED',
        code: 'ROLLBACK_FAILED',
        message: `Version ${latest.toVersion} did not check in in time, and the previous executable could not be put back (${errorText(error)}): reinstall the fleetpatch-agent package on this machine.`,
      };
    }
    for (const pid of latest.newPids) {
      if (runsExecutable(pid, latest.executable)) process.kill(pid, 'SIGKILL');
    }
    writeAtomically(path.join(stateDir, `${OUTCOME_PREFIX}${latest.commandId}.json`), JSON.stringify({ commandId: latest.commandId, report: { ...outcome, fromVersion: latest.fromVersion, toVersion: latest.toVersion } satisfies UpgradeReport }));
    fs.rmSync(path.join(stateDir, CLAIMED_FILE), { force: true });
    log('warn', 'upgrade rolled back', { from: latest.toVersion, to: latest.fromVersion, message: outcome.message });
    if (latest.restart === 'RELAUNCH') relaunch(latest.executable, latest.args, process.env, log);
    return;
  }
}
