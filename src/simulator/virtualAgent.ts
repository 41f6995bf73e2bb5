import { randomUUID } from 'node:crypto';
import { AgentClient, ServerUnreachable } from '../agent/client.js';
import { sleep } from '../agent/sleep.js';
import { InstallJobRunner } from '../agent/jobs.js';
import type { JobStorage } from '../agent/jobStore.js';
import type { AgentSettings, AssessmentReport, AssessmentTrigger, InstallJob, MachineFacts, UpgradeCommand, UpgradeReport } from '../agent/protocol.js';
import { releaseStatement, verifyStatement } from '../agent/release.js';
import { emptyJobState, type JobState } from '../agent/resume.js';
import { syntheticBackend, type SyntheticMachine } from './syntheticMachine.js';

/** Tries of each step of joining before the machine counts as failed to join (about a minute of retries). */
const JOIN_ATTEMPTS = 6;

/** What one virtual agent did, for the simulator's progress line and for benchmarks. */
export interface AgentCounters {
  checkIns: number;
  reports: number;
  jobs: number;
  updatesInstalled: number;
  updatesFailed: number;
  reboots: number;
  upgrades: number;
  errors: number;
  lastError?: string;
}

/** A job kept in memory: a simulated agent has no state dir, and is never restarted in the middle of a job. */
class MemoryJobStore implements JobStorage {
  readonly dir = '(memory)';
  private readonly jobs = new Map<string, JobState>();
  load(jobId: string): JobState | undefined {
    return this.jobs.get(jobId);
  }
  save(jobId: string, state: JobState): void {
    this.jobs.set(jobId, state);
  }
}

/**
 * One simulated machine's agent, in-process: the real protocol client (`AgentClient`) on the
 * real endpoint, the behaviour of `src/agent/runner.ts` (enroll, check in, report assessments,
 * long-poll, one thing at a time), the agent's own install job runner (`src/agent/jobs.ts`: the
 * updates in order within the window, progress, the result, the reboot decision), a reboot that
 * comes back with a new boot id, and a `SyntheticMachine` in place of a package manager. Nothing is
 * written to disk.
 */
export class VirtualAgent {
  readonly client: AgentClient;
  machineId: string | undefined;
  private bootId = randomUUID();
  private settings: AgentSettings = { checkInIntervalSeconds: 60, assessmentIntervalSeconds: 3 * 3600, packageDatabaseCheckSeconds: 900, longPollSeconds: 25 };
  private readonly jobsSeen = new Set<string>();
  private readonly queue: Array<
    { kind: 'assess'; trigger: AssessmentTrigger; commandId: string | null } | { kind: 'install'; id: string; job: InstallJob } | { kind: 'upgrade'; id: string; upgrade: UpgradeCommand }
  > = [];
  /** The release key pinned at enrollment, as the real agent keeps it. */
  private pinnedKey: string | null = null;
  private readonly upgradesSeen = new Set<string>();
  /** The agent version it reports: the profile's, then the one an upgrade installed. */
  agentVersion: string;
  private wake: () => void = () => undefined;
  /** Aborted while the machine is rebooting: its loops stop talking to the server. */
  private up = new AbortController();
  readonly counters: AgentCounters = { checkIns: 0, reports: 0, jobs: 0, updatesInstalled: 0, updatesFailed: 0, reboots: 0, upgrades: 0, errors: 0 };
  /** Called with each INSTALL job as it arrives (benchmarks time the hand-over with it). */
  onJob?: (jobId: string) => void;
  /** Called when an upgrade begins its download and when the new version has checked in (benchmarks and tests watch the rate with it). */
  onUpgrade?: (phase: 'BEGIN' | 'DONE', commandId: string) => void;

  constructor(
    serverUrl: string,
    readonly hostname: string,
    readonly machine: SyntheticMachine,
    private readonly rebootSeconds: number,
    agentVersion = 'simulated',
    private readonly upgradeSeconds = 3,
  ) {
    this.client = new AgentClient(serverUrl);
    this.agentVersion = agentVersion;
  }

  facts(): MachineFacts {
    return {
      hostname: this.hostname,
      osType: 'LINUX',
      osName: 'Debian GNU/Linux 12 (bookworm)',
      osVersion: '12',
      kernel: '6.1.0-28-amd64',
      agentVersion: this.agentVersion,
      bootId: this.bootId,
      packageManager: 'apt',
      environment: 'ON_PREMISES',
      warnings: [],
      // Its jobs' scripts "run" at once and succeed (runJob): a deployment with script steps runs on a simulated fleet as on agents that run them.
      capabilities: ['SCRIPT_STEPS'],
    };
  }

  /**
   * Enrolls, checks in and sends the first assessment: the machine is then in the fleet view. Each
   * step is retried while the server is unreachable (a dropped connection, a 5xx, a 429), as the
   * real agent does (`runner.ts`): a busy server slows a large fleet's ramp-up, it does not lose
   * machines.
   */
  async join(enrollKey: string, signal?: AbortSignal): Promise<void> {
    // One id for the enrollment and all its retries, as the real agent: a retry after a lost answer must not enroll the machine twice.
    const requestId = randomUUID();
    const enrolled = await this.retrying(() => this.client.enroll(enrollKey, this.facts(), requestId), signal);
    this.machineId = enrolled.machineId;
    this.client.setCredential(enrolled.credential);
    this.settings = enrolled.settings;
    this.pinnedKey = enrolled.releaseKey?.publicKey ?? null;
    await this.retrying(() => this.checkIn(), signal);
    await this.retrying(() => this.report('STARTUP', null), signal);
  }

  private async retrying<T>(step: () => Promise<T>, signal: AbortSignal | undefined, attempts = JOIN_ATTEMPTS): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await step();
      } catch (error) {
        if (!(error instanceof ServerUnreachable) || attempt >= attempts || signal?.aborted) throw error;
        this.failed(error);
        await sleep(Math.min(30_000, 1000 * 2 ** (attempt - 1)) * (0.5 + Math.random()), signal);
      }
    }
  }

  /** The agent's loops, until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const stop = () => {
      this.up.abort();
      this.wake();
    };
    signal.addEventListener('abort', stop, { once: true });
    try {
      await Promise.all([this.checkInLoop(signal), this.commandLoop(signal), this.workLoop(signal)]);
    } finally {
      signal.removeEventListener('abort', stop);
    }
  }

  private async checkIn(): Promise<void> {
    this.settings = (await this.client.checkIn(this.facts())).settings;
    this.counters.checkIns++;
  }

  private async report(trigger: AssessmentTrigger, commandId: string | null): Promise<void> {
    const now = new Date().toISOString();
    const report: AssessmentReport = {
      id: randomUUID(),
      commandId,
      trigger,
      backend: 'apt',
      startedAt: now,
      finishedAt: now,
      result: { rebootPending: this.machine.rebootPending, updates: this.machine.pendingUpdates(), repositoryProblems: [] },
      error: null,
    };
    await this.client.sendReport(report);
    this.counters.reports++;
  }

  private failed(error: unknown): void {
    this.counters.errors++;
    this.counters.lastError = error instanceof Error ? error.message : String(error);
  }

  private async checkInLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      // Spread over the interval, as a real fleet's agents started at different times are.
      await sleep(this.settings.checkInIntervalSeconds * 1000 * (0.75 + Math.random() / 2), signal);
      if (signal.aborted) return;
      if (this.up.signal.aborted) continue; // rebooting
      await this.checkIn().catch((error: unknown) => this.failed(error));
    }
  }

  private async commandLoop(signal: AbortSignal): Promise<void> {
    // As the real agent (runner.ts): after a failed poll the next asks for every command not
    // completed, since the failed one may have been handed commands whose answer never arrived.
    let redeliver = false;
    while (!signal.aborted) {
      if (this.up.signal.aborted) {
        await sleep(200, signal);
        continue;
      }
      // A signal per poll: the rebooting machine drops its open poll as a real one would.
      const poll = this.up.signal;
      try {
        const { commands } = await this.client.commands(this.settings.longPollSeconds, poll, redeliver);
        redeliver = false;
        for (const command of commands) {
          if (command.kind === 'ASSESS') this.enqueue({ kind: 'assess', trigger: 'COMMAND', commandId: command.id });
          else if (command.kind === 'INSTALL' && command.install && !this.jobsSeen.has(command.id)) {
            this.jobsSeen.add(command.id);
            this.onJob?.(command.id);
            this.enqueue({ kind: 'install', id: command.id, job: command.install });
          } else if (command.kind === 'UPGRADE' && command.upgrade && !this.upgradesSeen.has(command.id)) {
            this.upgradesSeen.add(command.id);
            this.enqueue({ kind: 'upgrade', id: command.id, upgrade: command.upgrade });
          }
        }
      } catch (error) {
        if (signal.aborted || poll.aborted) continue;
        redeliver = true;
        this.failed(error);
        await sleep(1000 + Math.random() * 2000, signal);
      }
    }
  }

  private enqueue(item: (typeof this.queue)[number]): void {
    this.queue.push(item);
    this.wake();
  }

  /** One thing at a time, in order, as the package manager allows. */
  private async workLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const next = this.queue.shift();
      if (!next) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      try {
        if (next.kind === 'assess') await this.report(next.trigger, next.commandId);
        else if (next.kind === 'upgrade') await this.runUpgrade(next.id, next.upgrade, signal);
        else await this.runJob(next.id, next.job, signal);
      } catch (error) {
        this.failed(error);
      }
    }
  }

  /**
   * The agent's own install job runner (src/agent/jobs.ts) on the synthetic machine: the same
   * batches, window checks, result and reboot decision as a real agent, with the job kept in memory.
   */
  private async runJob(id: string, job: InstallJob, signal: AbortSignal): Promise<void> {
    this.counters.jobs++;
    const store = new MemoryJobStore();
    store.save(id, emptyJobState(job, new Date().toISOString()));
    let rebootStarted = false;
    const backend = syntheticBackend(this.machine, {
      signal,
      installed: (outcome) => {
        if (outcome.status === 'SUCCEEDED') this.counters.updatesInstalled++;
        else this.counters.updatesFailed++;
      },
    });
    await new InstallJobRunner(id, {
      backend,
      // The synthetic backend starts no program and touches no file.
      ctx: { root: '/', workDir: '/nonexistent/fleetpatch-simulator', env: {} },
      client: this.client,
      store,
      // A thousand agents' job logs would drown the simulator's own lines; what they did shows in the run.
      log: () => undefined,
      assessOnly: false,
      bootId: () => this.bootId,
      reboot: () => (rebootStarted = true),
      signal,
      // A synthetic machine has no program to run: its script steps succeed at once.
      runScript: () => Promise.resolve({ exitCode: 0, failure: null }),
    }).run();
    if (rebootStarted) await this.reboot(signal);
  }

  /**
   * A self-update as the real agent decides it (src/agent/selfUpdate.ts): busy with an install job,
   * or the linux-x64 executable's signature checked against the pinned key with real Ed25519; then,
   * instead of downloading and swapping, away for the profile's upgrade time and back with the new
   * version, which reports the outcome after its first check-in.
   */
  private async runUpgrade(id: string, command: UpgradeCommand, signal: AbortSignal): Promise<void> {
    const send = (report: Omit<UpgradeReport, 'fromVersion' | 'toVersion'>, fromVersion: string) => this.client.sendUpgradeReport(id, { ...report, fromVersion, toVersion: command.version });
    const from = this.agentVersion;
    if (this.queue.some((q) => q.kind === 'install')) return void (await send({ status: 'BUSY', code: 'INSTALL_JOB_RUNNING', message: 'An install job waits: the agent upgrades only between jobs.' }, from));
    if (command.version === from) return void (await send({ status: 'SUCCEEDED', code: 'ALREADY_CURRENT', message: `The agent already runs version ${from}.` }, from));
    const artifact = command.artifacts.find((a) => a.platform === 'linux-x64');
    if (!artifact || !this.pinnedKey || !verifyStatement(this.pinnedKey, releaseStatement(artifact), artifact.signature)) {
      return void (await send({ status: 'FAILED', code: 'BAD_SIGNATURE', message: 'The release does not verify with the pinned release key.' }, from));
    }
    this.onUpgrade?.('BEGIN', id);
    this.up.abort();
    await sleep(this.upgradeSeconds * 1000 * (0.5 + Math.random()), signal);
    if (signal.aborted) return;
    this.agentVersion = command.version;
    this.up = new AbortController();
    await this.retrying(() => this.checkIn(), signal);
    this.counters.upgrades++;
    this.onUpgrade?.('DONE', id);
    await this.retrying(() => send({ status: 'SUCCEEDED', code: 'UPGRADED', message: `Upgraded from version ${from} to ${command.version}; the new agent checked in.` }, from), signal);
  }

  /** Away for the profile's reboot time, then back with a new boot id, as after a real reboot. */
  private async reboot(signal: AbortSignal): Promise<void> {
    this.counters.reboots++;
    this.up.abort();
    await sleep(this.rebootSeconds * 1000, signal);
    if (signal.aborted) return;
    this.bootId = randomUUID();
    this.machine.rebooted();
    this.up = new AbortController();
    await this.checkIn();
    await this.report('STARTUP', null);
  }
}
