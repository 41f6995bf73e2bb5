import fs from 'node:fs';
import path from 'node:path';
import { version } from '../version.js';
import { runAssessment } from './assess.js';
import { detectBackend } from './backends/index.js';
import type { BackendContext, PackageBackend } from './backends/types.js';
import { AgentClient, ServerRefusal, ServerUnreachable } from './client.js';
import { readBootId } from './bootId.js';
import { gatherFacts } from './facts.js';
import { AgentRefused } from './errors.js';
import type { AgentLog } from './log.js';
import { InstallJobRunner, startReboot } from './jobs.js';
import { JobStore } from './jobStore.js';
import type { AgentSettings, AssessmentReport, AssessmentTrigger, UpgradeCommand } from './protocol.js';
import { resumeOrder } from './resume.js';
import { sleep, untilWoken } from './sleep.js';
import { ReportSpool } from './spool.js';
import { enrollmentRequestId, ensureStateDir, forgetEnrollmentRequestId, loadIdentity, saveIdentity } from './state.js';
import { AgentUpgrader } from './upgrade.js';

export interface AgentOptions {
  server: string;
  enrollKey: string | undefined;
  stateDir: string;
  /** The managed system: '/' on a real machine, a fixture root in tests. */
  root: string;
  /** Refuse install jobs (the local agent of `fleetpatch dev`). */
  assessOnly: boolean;
  /** Where the boot id is read (changes at every boot). */
  bootIdFile: string;
  /** How the agent reboots the machine when a deployment calls for it. */
  rebootCommand: string;
  env: NodeJS.ProcessEnv;
  log: AgentLog;
  /** PEM CA certificate(s) to verify the server with (`--ca-file`); the system's trust store otherwise. */
  ca?: Buffer;
  /** The arguments the agent was started with, to start its new executable after a self-update (without a supervisor). */
  args?: string[];
}

/** Settings until the server sends its own. */
const DEFAULT_SETTINGS: AgentSettings = {
  checkInIntervalSeconds: 60,
  assessmentIntervalSeconds: 3 * 3600,
  packageDatabaseCheckSeconds: 900,
  longPollSeconds: 25,
};

/** After a failed request, wait this long (doubling up to the maximum) before the next one. */
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;
/**
 * The command poll reconnects sooner: a job waiting for this agent counts against the install
 * activity's heartbeat timeout, and an API restart should cost seconds, not a minute.
 */
const COMMAND_RETRY_MAX_MS = 5000;
/** A held package manager lock: try the assessment again this much later. */
const LOCKED_RETRY_MS = 60_000;


/**
 * The agent on one machine: enrolls once, checks in, long-polls for commands, assesses on its
 * cadence, on demand and when the package database changes, and delivers every report through
 * its spool.
 */
export class Agent {
  private readonly client: AgentClient;
  private readonly backend: PackageBackend;
  private readonly ctx: BackendContext;
  private readonly spool: ReportSpool;
  private settings = DEFAULT_SETTINGS;
  /** Work runs one item at a time: the package manager takes one job at a time. */
  private readonly queue: Array<
    { kind: 'assess'; trigger: AssessmentTrigger; commandId: string | null } | { kind: 'install'; jobId: string } | { kind: 'upgrade'; commandId: string; upgrade: UpgradeCommand }
  > = [];
  private readonly upgrader: AgentUpgrader;
  private readonly jobsSeen = new Set<string>();
  private readonly jobs: JobStore;
  /**
   * The next command poll asks for every command not completed, also those handed out before: at
   * start (this process may have died holding some) and after a poll that failed (its answer,
   * carrying commands, may have been lost). Jobs already known here are recognised by their id.
   */
  private redeliver = true;
  private wakeAssessor: () => void = () => undefined;
  private lastAssessmentAt = 0;
  private lastFingerprint: string | undefined;

  constructor(private readonly options: AgentOptions) {
    const backend = detectBackend(options.root, options.env);
    if (!backend) throw new Error(`No supported package manager (apt, dnf, yum, zypper) found for the system at ${options.root}.`);
    this.backend = backend;
    ensureStateDir(options.stateDir);
    const workDir = path.join(options.stateDir, 'work');
    fs.mkdirSync(workDir, { recursive: true, mode: 0o700 });
    this.ctx = { root: options.root, env: options.env, workDir };
    this.spool = new ReportSpool(options.stateDir, 100, (file) => options.log('warn', 'spool full: dropped the oldest report', { file }));
    this.jobs = new JobStore(options.stateDir);
    this.client = new AgentClient(options.server, null, options.ca);
    this.upgrader = new AgentUpgrader({ client: this.client, stateDir: options.stateDir, log: options.log, env: options.env, args: options.args ?? [] });
  }

  get packageManager(): string {
    return this.backend.name;
  }

  private facts() {
    return gatherFacts({ root: this.options.root, agentVersion: version, packageManager: this.backend.name, bootIdFile: this.options.bootIdFile });
  }

  /** Runs until the signal aborts; rejects with AgentRefused when the server refuses this machine. */
  async run(signal: AbortSignal): Promise<void> {
    const { log } = this.options;
    await this.enroll(signal);
    this.takeBackJobs();
    this.upgrader.atStart();
    await this.checkIn(signal);
    await this.afterCheckIn();
    this.request('STARTUP', null);
    await Promise.all([this.checkInLoop(signal), this.commandLoop(signal), this.scheduleLoop(signal), this.assessLoop(signal)]);
    log('info', 'agent stopped');
  }

  private async enroll(signal: AbortSignal): Promise<void> {
    const { stateDir, server, enrollKey, log } = this.options;
    const identity = loadIdentity(stateDir);
    if (identity) {
      if (identity.server !== server) log('warn', 'enrolled with another server URL; using the stored identity', { stored: identity.server, given: server });
      this.client.setCredential(identity.credential);
      log('info', 'using stored machine identity', { machineId: identity.machineId });
      return;
    }
    if (!enrollKey) throw new AgentRefused(`This agent is not enrolled yet (no identity in ${stateDir}): pass --enroll-key KEY.`);
    const requestId = enrollmentRequestId(stateDir);
    await this.withRetry(signal, 'enroll', async () => {
      const enrolled = await this.client.enroll(enrollKey, this.facts(), requestId);
      saveIdentity(stateDir, { server, machineId: enrolled.machineId, credential: enrolled.credential });
      forgetEnrollmentRequestId(stateDir);
      this.client.setCredential(enrolled.credential);
      this.settings = enrolled.settings;
      this.upgrader.pinAtEnrollment(enrolled.releaseKey);
      log('info', 'enrolled', { machineId: enrolled.machineId });
    });
  }

  /** Install jobs an earlier run of the agent had not finished go first, before the start-up assessment. */
  private takeBackJobs(): void {
    for (const { jobId, state } of resumeOrder(this.jobs.unfinished())) {
      this.options.log('info', 'taking back an unfinished install job', { jobId, runId: state.job?.runId });
      this.jobsSeen.add(jobId);
      this.queue.push({ kind: 'install', jobId });
    }
  }

  private async checkIn(signal: AbortSignal): Promise<void> {
    await this.withRetry(signal, 'check-in', async () => {
      const answer = await this.client.checkIn(this.facts());
      this.settings = answer.settings;
      this.upgrader.followOffer(answer.releaseKey);
    });
  }

  /** A check-in went through: an upgraded agent confirms its upgrade; waiting upgrade outcomes go out. */
  private async afterCheckIn(): Promise<void> {
    const next = await this.upgrader.afterCheckIn().catch((error: unknown) => {
      this.handleLoopError(error, 'upgrade outcome delivery');
      return 'GO_ON' as const;
    });
    if (next === 'STOP') this.restart(false);
  }

  /** Retries while the server is unreachable; a refusal is final. */
  private async withRetry(signal: AbortSignal, what: string, attempt: () => Promise<void>): Promise<void> {
    let delay = RETRY_MIN_MS;
    while (!signal.aborted) {
      try {
        return await attempt();
      } catch (error) {
        if (error instanceof ServerRefusal) {
          throw new AgentRefused(`The server refused the ${what} (${error.status} ${error.code}): ${error.message}`);
        }
        if (!(error instanceof ServerUnreachable)) throw error;
        this.options.log('warn', `${what} failed; retrying`, { error: error.message, retryInMs: delay });
        await sleep(delay, signal);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }

  private async checkInLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await sleep(this.settings.checkInIntervalSeconds * 1000, signal);
      if (signal.aborted) return;
      try {
        const answer = await this.client.checkIn(this.facts());
        this.settings = answer.settings;
        this.upgrader.followOffer(answer.releaseKey);
        await this.afterCheckIn();
        await this.deliverSpool();
      } catch (error) {
        this.handleLoopError(error, 'check-in');
      }
    }
  }

  private async commandLoop(signal: AbortSignal): Promise<void> {
    let delay = RETRY_MIN_MS;
    while (!signal.aborted) {
      try {
        const { commands } = await this.client.commands(this.settings.longPollSeconds, signal, this.redeliver);
        this.redeliver = false;
        delay = RETRY_MIN_MS;
        for (const command of commands) {
          if (command.kind === 'ASSESS') this.request('COMMAND', command.id);
          else if (command.kind === 'INSTALL' && command.install && !this.jobsSeen.has(command.id)) {
            // On disk before it is queued: from here on a restart takes it back.
            this.jobs.receive(command.id, command.install);
            this.jobsSeen.add(command.id);
            this.queue.push({ kind: 'install', jobId: command.id });
            this.wakeAssessor();
          } else if (command.kind === 'UPGRADE' && command.upgrade && !this.queue.some((q) => q.kind === 'upgrade' && q.commandId === command.id)) {
            this.queue.push({ kind: 'upgrade', commandId: command.id, upgrade: command.upgrade });
            this.wakeAssessor();
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        this.redeliver = true;
        this.handleLoopError(error, 'command poll');
        await sleep(delay, signal);
        delay = Math.min(delay * 2, COMMAND_RETRY_MAX_MS);
      }
    }
  }

  /** The cadence: a full assessment every interval, and a look at the package database in between. */
  private async scheduleLoop(signal: AbortSignal): Promise<void> {
    let lastDatabaseCheck = Date.now();
    while (!signal.aborted) {
      await sleep(Math.min(this.settings.packageDatabaseCheckSeconds, this.settings.assessmentIntervalSeconds, 60) * 1000, signal);
      if (signal.aborted) return;
      const now = Date.now();
      if (now - this.lastAssessmentAt >= this.settings.assessmentIntervalSeconds * 1000) {
        this.request('SCHEDULE', null);
      } else if (now - lastDatabaseCheck >= this.settings.packageDatabaseCheckSeconds * 1000) {
        lastDatabaseCheck = now;
        const fingerprint = await this.backend.databaseFingerprint(this.ctx).catch(() => undefined);
        if (fingerprint !== undefined && this.lastFingerprint !== undefined && fingerprint !== this.lastFingerprint) {
          this.request('PACKAGE_DATABASE_CHANGED', null);
        }
      }
    }
  }

  private request(trigger: AssessmentTrigger, commandId: string | null): void {
    // One waiting assessment answers every request made before it starts (keep the command ids);
    // a command handed out again while it waits is the same request.
    if (this.queue.some((q) => q.kind === 'assess' && q.commandId === commandId)) return;
    this.queue.push({ kind: 'assess', trigger, commandId });
    this.wakeAssessor();
  }

  /** Assessments and install jobs run one at a time, in the order they came. */
  private async assessLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const next = this.queue.shift();
      if (!next) {
        await untilWoken(signal, (wake) => (this.wakeAssessor = wake));
        continue;
      }
      if (next.kind === 'upgrade') {
        // Work runs one item at a time, so no install job runs now; one queued, or one kept unfinished in
        // the state dir (e.g. waiting for its reboot), makes the agent busy too: a restart into a new
        // executable in the middle of a job is what the job store exists to survive, not something to cause.
        const busyWith = () => {
          const queued = this.queue.find((q) => q.kind === 'install');
          if (queued?.kind === 'install') return queued.jobId;
          return this.jobs.unfinished()[0]?.jobId ?? null;
        };
        const outcome = await this.upgrader.run(next.commandId, next.upgrade, busyWith, signal);
        if (outcome === 'RESTART') this.restart(true);
        continue;
      }
      if (next.kind === 'install') {
        const { log, assessOnly, bootIdFile, rebootCommand } = this.options;
        const bootId = () => readBootId(bootIdFile);
        const reboot = () => startReboot(rebootCommand, this.ctx.env, log);
        try {
          await new InstallJobRunner(next.jobId, { backend: this.backend, ctx: this.ctx, client: this.client, store: this.jobs, log, assessOnly, bootId, reboot, signal }).run();
        } catch (error) {
          // The job stays on disk as far as it got: the next start takes it back.
          log('error', 'install job stopped by an error', { jobId: next.jobId, error: error instanceof Error ? error.message : String(error) });
        }
        continue;
      }
      const fingerprint = await this.backend.databaseFingerprint(this.ctx).catch(() => undefined);
      const report = await runAssessment(this.backend, this.ctx, next.trigger, next.commandId);
      this.lastAssessmentAt = Date.now();
      this.lastFingerprint = fingerprint;
      this.options.log(report.error ? 'warn' : 'info', report.error ? 'assessment failed' : 'assessment done', {
        trigger: report.trigger,
        updates: report.result?.updates.length,
        error: report.error?.message,
      });
      if (report.error?.code === 'LOCKED') {
        const { trigger, commandId } = next;
        setTimeout(() => this.request(trigger, commandId), LOCKED_RETRY_MS).unref();
      }
      this.spool.add(report);
      await this.deliverSpool().catch((error: unknown) => this.handleLoopError(error, 'report delivery'));
    }
  }

  private async deliverSpool(): Promise<void> {
    await this.spool.flush(async (report: AssessmentReport) => {
      try {
        await this.client.sendReport(report);
        return 'delivered';
      } catch (error) {
        // A report the server will never take (invalid): drop it rather than block the spool forever.
        if (error instanceof ServerRefusal && error.status === 400) {
          this.options.log('error', 'the server refused a report as invalid; dropped', { id: report.id, error: error.message });
          return 'rejected';
        }
        throw error;
      }
    });
  }

  private handleLoopError(error: unknown, what: string): void {
    if (error instanceof ServerRefusal && error.status === 401) {
      // The machine was removed or its credential revoked: nothing this agent can do will help.
      this.options.log('error', `${what}: the server no longer accepts this machine's credential`, { error: error.message });
      this.fatal(new AgentRefused(error.message));
      return;
    }
    this.options.log('warn', `${what} failed`, { error: error instanceof Error ? error.message : String(error) });
  }

  private fatal: (error: Error) => void = (error) => {
    throw error;
  };

  /** Stops the agent so that its new executable takes over (`handOver`: start it, without a supervisor). */
  private restart: (handOver: boolean) => void = () => undefined;

  /**
   * Runs the agent; resolves when stopped ('RESTART' when it stopped for its new executable after a
   * self-update, and must exit now), rejects when refused for good.
   */
  static async start(options: AgentOptions, signal: AbortSignal): Promise<'STOPPED' | 'RESTART'> {
    const agent = new Agent(options);
    const stop = new AbortController();
    signal.addEventListener('abort', () => stop.abort(), { once: true });
    let refused: Error | undefined;
    let restart: { handOver: boolean } | undefined;
    agent.fatal = (error) => {
      refused = error;
      stop.abort();
    };
    agent.restart = (handOver) => {
      restart = { handOver };
      stop.abort();
    };
    await agent.run(stop.signal);
    if (refused) throw refused;
    if (!restart) return 'STOPPED';
    if (restart.handOver) agent.upgrader.handOver();
    return 'RESTART';
  }
}
