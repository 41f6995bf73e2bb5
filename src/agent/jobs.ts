import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { canStartUpdate, rebootsAfterJob } from '../domain/jobRules.js';
import { BackendError, type BackendContext, type PackageBackend } from './backends/types.js';
import { ServerRefusal, type AgentClient } from './client.js';
import { observeSpawns } from './exec.js';
import type { JobStorage } from './jobStore.js';
import type { AgentLog } from './log.js';
import { observeProcess, recordProcess } from './processes.js';
import { bootChanged, interruptedOutcome, isResume, rebootDue, rebootStillRequired, stillRunning, updateKey as key, updateStep, type JobState, type RecoveryOutcome } from './resume.js';
import { sleep } from './sleep.js';
import { runScriptStep } from './scripts.js';
import type { InstallJob, JobEvents, JobLine, JobResult, JobUpdate, JobUpdateState, ScriptJobStep, StepReport } from './protocol.js';

export interface JobDeps {
  backend: PackageBackend;
  ctx: BackendContext;
  client: AgentClient;
  /** Where the job and its progress are kept (see JobStore). */
  store: JobStorage;
  log: AgentLog;
  /** The local agent of `fleetpatch dev`: refuses to install. */
  assessOnly: boolean;
  /** The machine's boot id now; null when it cannot be read. */
  bootId: () => string | null;
  /** Starts the machine's reboot and returns at once (startReboot on a real machine). */
  reboot: () => void;
  signal: AbortSignal;
  /** Runs a script step (runScriptStep on a machine; the fleet simulator's machines run none). */
  runScript?: typeof runScriptStep;
}

/** A job sends a batch at least this often while it runs: the server relays it as a Temporal heartbeat. */
const KEEPALIVE_MS = 15_000;
const FLUSH_MS = 500;
/** Lines in one batch at most (the server's MAX_LINES_PER_EVENT). */
const BATCH_LINES = 500;
const RETRY_MS = 2000;
/** How often an agent that restarted looks whether the package manager it had started is done. */
const PROCESS_POLL_MS = 1000;
/**
 * Answers that mean the server no longer wants the job: withdrawn because its machine run ended
 * (409), unknown (404), the machine removed (401). The job is dropped, never gone on with.
 */
const NOT_WANTED = new Set([401, 404, 409]);

/**
 * Runs one install job: the selected updates in the planned order, each only if the window still
 * covers it, streaming the package manager's lines; then the result, then the reboot the setting
 * calls for. Every step is written to disk first (JobStore), so an agent that stops anywhere in
 * between takes the job back at its next start and installs nothing twice (see resume.ts).
 */
export class InstallJobRunner {
  private readonly job: InstallJob;
  private state: JobState;
  private lines: JobLine[] = [];
  private changed = new Map<string, JobUpdateState>();
  private sending: Promise<void> = Promise.resolve();
  private withdrawn = false;
  /** Whether this process has asked the server, with a batch it waited for, that it still wants the job. */
  private asked = false;

  constructor(
    private readonly jobId: string,
    private readonly deps: JobDeps,
  ) {
    const state = deps.store.load(jobId);
    if (!state?.job) throw new Error(`Install job ${jobId} is not in ${deps.store.dir}.`);
    this.state = state;
    this.job = state.job;
  }

  private save(): void {
    this.deps.store.save(this.jobId, this.state);
  }

  /** Where the package manager writes its output during an install (see observeSpawns). */
  private get outputDir(): string {
    return path.join(this.deps.ctx.workDir, 'install-output');
  }

  private bootId(): string | null {
    return this.deps.bootId();
  }

  private line(stream: JobLine['stream'], text: string): void {
    this.lines.push({ at: new Date().toISOString(), stream, text: text.slice(0, 4000) });
  }

  private setUpdate(state: JobUpdateState): void {
    this.state.updates[key(state)] = state;
    this.changed.set(key(state), state);
    this.save();
  }

  /** Sends what accumulated, in numbered batches, one send at a time; retried until the server has it. */
  private flush(): Promise<void> {
    this.sending = this.sending.then(() => this.sendPending(false));
    return this.sending;
  }

  /** An empty batch when nothing else went out: the server relays it as the activity's heartbeat. */
  private keepalive(): Promise<void> {
    this.sending = this.sending.then(() => this.sendPending(true));
    return this.sending;
  }

  private async sendPending(evenIfEmpty: boolean): Promise<void> {
    do {
      if (this.withdrawn) return;
      const batch = this.nextBatch(evenIfEmpty);
      if (!batch) return;
      evenIfEmpty = false;
      if (!(await this.deliver(() => this.deps.client.sendJobEvents(this.jobId, batch)))) return;
    } while (this.lines.length > 0 || this.changed.size > 0);
  }

  /** What accumulated, numbered as the next batch; undefined when there is nothing (and no empty batch is wanted). */
  private nextBatch(evenIfEmpty: boolean): JobEvents | undefined {
    const lines = this.lines.splice(0, BATCH_LINES);
    const updates = [...this.changed.values()];
    this.changed.clear();
    if (lines.length === 0 && updates.length === 0 && !evenIfEmpty) return undefined;
    this.state.seq += 1;
    this.save();
    return { seq: this.state.seq, lines, updates };
  }

  /**
   * Announces that a script or an update starts (`update`: its IN_PROGRESS state). The first time
   * in this process it goes out at once, with the job's opening line, and is waited for: the server
   * confirms it still wants the job before anything runs (a run canceled since the job was handed
   * out withdraws it), without a request of its own. Later ones go with the next timed flush
   * (FLUSH_MS), or with the result. False: nothing may start (the job was withdrawn, or the agent
   * is stopping).
   */
  private async announceStart(update?: JobUpdateState): Promise<boolean> {
    if (update) this.changed.set(key(update), update);
    if (!this.asked) {
      await this.flush();
      this.asked = true;
    }
    return !this.withdrawn && !this.deps.signal.aborted;
  }

  /**
   * The result, carrying what is still unsent of the job's progress as its last batch: one request
   * per job less. A server older than that refuses the field (400), and one whose body limit the two
   * together pass refuses the body (413): the batch then goes on its own first, and the result after it.
   */
  private async deliverResult(result: JobResult): Promise<boolean> {
    await this.sending;
    if (this.withdrawn) return false;
    // More than one batch's worth goes out on its own first.
    if (this.lines.length > BATCH_LINES) await this.flush();
    if (this.withdrawn) return false;
    const events = this.nextBatch(false);
    const { client } = this.deps;
    let separately = false;
    return this.deliver(async () => {
      if (events && !separately) {
        try {
          return await client.sendJobResult(this.jobId, { ...result, events });
        } catch (error) {
          if (!(error instanceof ServerRefusal && (error.status === 400 || error.status === 413))) throw error;
          separately = true;
        }
      }
      if (events) await client.sendJobEvents(this.jobId, events);
      return client.sendJobResult(this.jobId, result);
    });
  }

  /** Retries while the server is away; a refusal ends the attempt, and one that says the job is not wanted withdraws it. */
  private async deliver(send: () => Promise<unknown>): Promise<boolean> {
    while (!this.deps.signal.aborted) {
      try {
        await send();
        return true;
      } catch (error) {
        if (error instanceof ServerRefusal) {
          if (NOT_WANTED.has(error.status)) {
            if (!this.withdrawn) this.deps.log('warn', 'the server no longer wants this job: nothing more of it is installed', { jobId: this.jobId, error: error.message });
            this.withdrawn = true;
          } else {
            this.deps.log('warn', 'the server refused job progress', { jobId: this.jobId, error: error.message });
          }
          return false;
        }
        await sleep(RETRY_MS, this.deps.signal);
      }
    }
    return false;
  }

  private finish(how: 'DONE' | 'WITHDRAWN'): void {
    this.state.finished = how;
    this.save();
    if (how === 'WITHDRAWN') this.deps.log('info', 'job withdrawn by the server; dropped', { jobId: this.jobId });
  }

  /**
   * Runs the job, or goes on with it from its saved state. Returns early, leaving the job on disk
   * for the next start, when the agent is stopping; drops it when the server no longer wants it.
   */
  async run(): Promise<void> {
    const { log, signal } = this.deps;
    if (this.state.finished) return;
    if (!this.state.result) {
      // The opening line goes out with the first script's or update's start, which waits for the
      // server's answer (announceStart). A job taken back from disk asks at once: the run sees that
      // the agent is back on it, and a job withdrawn while the agent was away is dropped first.
      this.line('agent', this.opening());
      if (isResume(this.state)) {
        await this.flush();
        this.asked = true;
        if (this.withdrawn) return this.finish('WITHDRAWN');
        if (signal.aborted) return;
      }
      const result = this.deps.assessOnly ? this.refused() : await this.install();
      if (this.withdrawn) return this.finish('WITHDRAWN');
      if (!result) return;
      this.state.result = result;
      this.save();
    }
    if (!this.state.resultDelivered) {
      const delivered = await this.deliverResult(this.state.result);
      if (this.withdrawn) return this.finish('WITHDRAWN');
      if (!delivered) return;
      this.state.resultDelivered = true;
      this.save();
      log('info', 'job done', { jobId: this.jobId, rebooting: this.state.result.rebooting });
    }
    // The flag is saved right after the reboot is started: an agent that dies in between starts it
    // again at its next start, in the same boot (a second `shutdown -r` replaces the first), rather
    // than never (the workflow would wait for a reboot that does not come, until its timeout).
    if (rebootDue(this.state, this.bootId())) {
      this.deps.reboot();
      this.state.rebootStarted = true;
    }
    this.finish('DONE');
  }

  private opening(): string {
    if (!isResume(this.state)) return `job ${this.jobId}: ${this.job.updates.length} update(s) until ${this.job.deadline}, reboot ${this.job.rebootSetting}`;
    const done = this.job.updates.filter((u) => updateStep(this.state.updates[key(u)]) === 'SKIP').length;
    return `job ${this.jobId} taken back after the agent restarted: ${done} of ${this.job.updates.length} update(s) done before, going on`;
  }

  private refused(): JobResult {
    return {
      updates: [],
      rebootRequired: false,
      rebooting: false,
      bootId: this.bootId(),
      timedOut: false,
      error: { code: 'ASSESS_ONLY', message: 'This agent runs in assess-only mode and installs nothing. Run it without --assess-only to let deployments install.' },
    };
  }

  /** The updates in order; undefined when it stopped before the end (the agent is stopping, the job was withdrawn). */
  private async install(): Promise<JobResult | undefined> {
    const { backend, ctx, signal } = this.deps;
    const deadline = Date.parse(this.job.deadline);
    const graceEnd = deadline + this.job.graceSeconds * 1000;
    let timedOut = false;
    const ticker = setInterval(() => void this.keepalive(), KEEPALIVE_MS);
    const flusher = setInterval(() => {
      if (this.lines.length > 0 || this.changed.size > 0) void this.flush();
    }, FLUSH_MS);
    try {
      const stopped = await this.runScripts();
      if (stopped === undefined) return undefined;
      if (stopped) {
        // A failed script that stops the job: nothing is installed, and no reboot follows.
        const reason = `Not attempted: ${stopped.phase === 'PRE' ? 'Pre-step' : 'Post-step'} ${JSON.stringify(stopped.name)} failed${stopped.message ? `: ${stopped.message}` : ''}.`;
        for (const update of this.job.updates) {
          if (updateStep(this.state.updates[key(update)]) === 'SKIP') continue;
          this.setUpdate(this.notAttempted(update, reason));
        }
        this.line('agent', this.job.updates.length > 0 ? `job ${this.jobId}: ${reason}` : `job ${this.jobId} stopped at the failed step`);
        return { updates: Object.values(this.state.updates), rebootRequired: false, rebooting: false, bootId: this.bootId(), timedOut: false, error: null, steps: this.stepReports() };
      }
      for (const update of this.job.updates) {
        // Nothing new starts once the agent is stopping (the next start goes on from here) or the
        // server has withdrawn the job.
        if (signal.aborted || this.withdrawn) return undefined;
        const previous = this.state.updates[key(update)];
        const step = updateStep(previous);
        if (step === 'SKIP') continue;
        if (step === 'SETTLE') {
          const settled = await this.settleInterrupted(update, previous!, graceEnd);
          if (!settled) return undefined;
          this.setUpdate(settled.state);
          timedOut ||= settled.outlivedGrace;
          continue;
        }
        const now = Date.now();
        if (timedOut || !canStartUpdate({ nowMs: now, deadlineMs: deadline, expectedSeconds: update.expectedSeconds, rebootReserveSeconds: this.job.rebootReserveSeconds })) {
          this.setUpdate(this.notAttempted(update, timedOut ? 'The window and its grace ended while an earlier update ran.' : `Not enough time left in the maintenance window (expected ${update.expectedSeconds} s${this.job.rebootReserveSeconds ? ` plus ${Math.round(this.job.rebootReserveSeconds / 60)} min kept for a reboot` : ''}).`));
          continue;
        }
        const startedAt = new Date().toISOString();
        const inProgress: JobUpdateState = { name: update.name, arch: update.arch, status: 'IN_PROGRESS', exitCode: null, errorText: null, reason: null, installedVersion: update.installedVersion, startedAt, endedAt: null };
        if (!(await this.announceStart(inProgress))) return undefined;
        // Saved with the update's IN_PROGRESS (announced already): a restart from here on settles it, never reruns it.
        this.state.running = { key: key(update), bootId: this.bootId(), processes: [] };
        this.state.updates[key(update)] = inProgress;
        this.save();
        const outcome = await observeSpawns(
          (pid) => {
            this.state.running?.processes.push(recordProcess(pid));
            this.save();
          },
          () => this.installOne(update),
          { outputDir: this.outputDir },
        );
        if (outcome.rebootRequired) this.state.rebootRequired = { bootId: this.bootId() };
        this.state.running = null;
        this.setUpdate({ name: update.name, arch: update.arch, status: outcome.status, exitCode: outcome.exitCode, errorText: outcome.errorText, reason: outcome.reason, installedVersion: outcome.installedVersion, startedAt, endedAt: new Date().toISOString() });
        if (Date.now() > graceEnd) timedOut = true;
      }
    } finally {
      clearInterval(ticker);
      clearInterval(flusher);
    }
    const bootId = this.bootId();
    // A reboot an update asked for counts only in the boot it asked in: one that happened since (a
    // restart in the middle of the job) has done it.
    // A job of POST scripts (no update, never rebooting) has no reboot to look for.
    const scriptsOnly = this.job.updates.length === 0 && this.job.rebootSetting === 'NEVER';
    const pendingReboot =
      rebootStillRequired(this.state.rebootRequired, bootId) || (!scriptsOnly && await (backend.rebootPending ? backend.rebootPending(ctx) : backend.assess(ctx).then((r) => r.rebootPending)).catch(() => false));
    const rebooting = rebootsAfterJob({ setting: this.job.rebootSetting, rebootRequired: pendingReboot, timedOut });
    this.line('agent', `job ${this.jobId} finished${timedOut ? ' (timed out)' : ''}; reboot ${rebooting ? 'now' : pendingReboot ? 'needed but not allowed' : 'not needed'}`);
    // The boot id is read now, not when the job began: after a restart of the machine in the middle
    // of the job, the workflow waits for the boot after this one, not for the one it already had.
    return { updates: Object.values(this.state.updates), rebootRequired: pendingReboot, rebooting, bootId, timedOut, error: null, ...(this.job.scripts?.length ? { steps: this.stepReports() } : {}) };
  }

  private stepReports(): StepReport[] {
    return Object.values(this.state.steps ?? {}).sort((a, b) => a.index - b.index);
  }

  private recordStep(report: StepReport): void {
    this.state.steps = { ...(this.state.steps ?? {}), [String(report.index)]: report };
    this.state.runningStep = null;
    this.save();
  }

  /**
   * The job's scripts in order, each once: one that was running when the agent stopped is failed,
   * not run again (it may have half done its work). Returns the failed script that stops the job
   * (its onFailure is not CONTINUE; the scripts after it are NOT_RUN), null when the job goes on,
   * undefined when the agent is stopping.
   */
  private async runScripts(): Promise<StepReport | null | undefined> {
    let stopped: StepReport | null = null;
    for (const script of this.job.scripts ?? []) {
      const previous = this.state.steps?.[String(script.index)];
      let report: StepReport;
      if (previous) {
        report = previous;
      } else if (stopped) {
        report = this.stepReport(script, 'NOT_RUN', 'an earlier step failed', null, null);
        this.recordStep(report);
      } else if (this.state.runningStep === script.index) {
        report = this.stepReport(script, 'FAILED', 'the agent restarted while this script ran; it is not run again', null, null);
        this.line('agent', `step ${JSON.stringify(script.name)}: ${report.message}`);
        this.recordStep(report);
      } else {
        if (this.deps.signal.aborted || this.withdrawn) return undefined;
        this.line('agent', `step ${JSON.stringify(script.name)} (${script.phase}): running ${script.path ?? 'its inline script'} with ${script.interpreter}, timeout ${script.timeoutSeconds} s`);
        if (!(await this.announceStart())) return undefined;
        this.state.runningStep = script.index;
        this.save();
        const startedAt = new Date().toISOString();
        const outcome = await (this.deps.runScript ?? runScriptStep)(script, {
          workDir: this.deps.ctx.workDir,
          env: this.deps.ctx.env,
          context: { FLEETPATCH_RUN_ID: this.job.runId, FLEETPATCH_MACHINE_RUN_ID: this.job.machineRunId, FLEETPATCH_ROOT: this.deps.ctx.root },
          signal: this.deps.signal,
          onLine: (stream, text) => this.line(stream, text),
        });
        // Stopping: the next start finds it running and fails it.
        if (this.deps.signal.aborted) return undefined;
        report = this.stepReport(script, outcome.failure ? 'FAILED' : 'SUCCEEDED', outcome.failure, outcome.exitCode, startedAt);
        this.line('agent', `step ${JSON.stringify(script.name)}: ${report.status}${outcome.failure ? `: ${outcome.failure}` : ''}`);
        this.recordStep(report);
      }
      if (!stopped && report.status === 'FAILED' && script.onFailure !== 'CONTINUE') stopped = report;
    }
    return stopped;
  }

  private stepReport(script: ScriptJobStep, status: StepReport['status'], message: string | null, exitCode: number | null, startedAt: string | null): StepReport {
    return {
      index: script.index,
      name: script.name,
      phase: script.phase,
      kind: 'SCRIPT',
      onFailure: script.onFailure,
      status,
      message,
      exitCode,
      httpStatus: null,
      attempts: status === 'NOT_RUN' ? 0 : 1,
      startedAt,
      endedAt: status === 'NOT_RUN' ? null : new Date().toISOString(),
    };
  }

  /**
   * An update that was being installed when the agent stopped: never started again. If the package
   * manager the agent had started still runs (same boot), it is waited for, keeping the run's
   * heartbeat going, until the window's grace ends; then what a kill left half done is repaired
   * the package manager's way; then the package database says whether the update is in place.
   * Undefined when the agent is stopping meanwhile.
   */
  private async settleInterrupted(update: JobUpdate, previous: JobUpdateState, graceEnd: number): Promise<{ state: JobUpdateState; outlivedGrace: boolean } | undefined> {
    const { backend, ctx, signal } = this.deps;
    const running = this.state.running?.key === key(update) ? this.state.running : null;
    const bootId = this.bootId();
    const machineRestarted = bootChanged(running?.bootId ?? null, bootId);
    // This very process may have been given a recorded id: never wait for ourselves.
    const look = () => stillRunning(running, bootId, new Map((running?.processes ?? []).map((p) => [p.pid, p.pid === process.pid ? null : observeProcess(p.pid)])));
    let alive = look();
    if (alive.length > 0) {
      this.line('agent', `${update.name}: the agent restarted while installing it; waiting for the package manager it had started (process ${alive.map((p) => p.pid).join(', ')}) to finish`);
      void this.flush();
      while (alive.length > 0 && Date.now() < graceEnd) {
        await sleep(PROCESS_POLL_MS, signal);
        if (signal.aborted) return undefined;
        alive = look();
      }
    } else {
      this.line('agent', `${update.name}: the agent restarted while installing it${machineRestarted ? ' (the machine restarted too)' : ''}; its package manager is no longer running`);
    }
    const outlivedGrace = alive.length > 0;
    // What the package manager wrote after the agent died: nobody reads it now.
    if (!outlivedGrace) fs.rmSync(this.outputDir, { recursive: true, force: true });
    let recovery: RecoveryOutcome | null = null;
    if (!outlivedGrace && backend.recoverInterrupted) {
      recovery =
        (await backend.recoverInterrupted(ctx, (text) => this.line('stdout', text)).catch((error: unknown) => ({
          exitCode: error instanceof BackendError ? (error.details.exitCode ?? null) : null,
          errorText: `${error instanceof BackendError ? error.code : 'AGENT_ERROR'}: ${error instanceof Error ? error.message : String(error)}`,
        }))) ?? null;
      if (recovery) this.line('agent', `${update.name}: the package manager had been interrupted; repaired${recovery.errorText ? ` with errors: ${recovery.errorText}` : ''}`);
    }
    const database = backend.installedState ? await backend.installedState(ctx, update).catch(() => null) : null;
    this.state.running = null;
    const state = interruptedOutcome({ update, previous, database, machineRestarted, recovery, outlivedGrace, nowIso: new Date().toISOString() });
    this.line('agent', `${update.name}: ${state.status}: ${state.reason}`);
    return { state, outlivedGrace };
  }

  private notAttempted(update: JobUpdate, reason: string): JobUpdateState {
    return { name: update.name, arch: update.arch, status: 'NOT_ATTEMPTED', exitCode: null, errorText: null, reason, installedVersion: update.installedVersion, startedAt: null, endedAt: null };
  }

  private async installOne(update: JobUpdate) {
    try {
      const outcome = await this.deps.backend.installUpdate(this.deps.ctx, update, (text) => this.line('stdout', text), { deadline: new Date(this.job.deadline) });
      return { ...outcome, reason: null };
    } catch (error) {
      // A held lock or a crashed package manager fails this update, precisely; the others go on.
      const code = error instanceof BackendError ? error.code : 'AGENT_ERROR';
      const message = error instanceof Error ? error.message : String(error);
      this.line('agent', `${update.name}: ${code}: ${message}`);
      const exitCode = error instanceof BackendError ? (error.details.exitCode ?? null) : null;
      return { status: 'FAILED' as const, exitCode, errorText: `${code}: ${message}`, reason: null, installedVersion: update.installedVersion, rebootRequired: false };
    }
  }
}

/** Reboots the machine with `command` (`shutdown -r now ...` by default), without waiting for it. */
export function startReboot(command: string, env: NodeJS.ProcessEnv, log: AgentLog): void {
  log('info', 'rebooting the machine', { command });
  // shell: /bin/sh -c on Linux, cmd.exe /d /s /c on Windows (`shutdown /r ...`).
  const child = spawn(command, { shell: true, detached: true, stdio: 'ignore', env });
  child.unref();
}
