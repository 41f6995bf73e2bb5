import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { canStartUpdate } from '../fleet/planning.js';
import { shouldReboot } from '../fleet/reboot.js';
import { BackendError, type BackendContext, type PackageBackend } from './backends/types.js';
import { ServerRefusal, type AgentClient } from './client.js';
import { readBootId } from './facts.js';
import type { AgentLog } from './log.js';
import { sleep } from './sleep.js';
import type { InstallJob, JobEvents, JobLine, JobResult, JobUpdate, JobUpdateState } from './protocol.js';

export interface JobDeps {
  backend: PackageBackend;
  ctx: BackendContext;
  client: AgentClient;
  stateDir: string;
  log: AgentLog;
  /** The local agent of `fleetpatch dev`: refuses to install. */
  assessOnly: boolean;
  bootIdFile: string;
  /** The command that reboots the machine (`shutdown -r now ...` by default). */
  rebootCommand: string;
  signal: AbortSignal;
}

/** What the agent keeps on disk about a job, so that a restart resumes it instead of starting over. */
interface JobState {
  updates: Record<string, JobUpdateState>;
  seq: number;
  result: JobResult | null;
  resultDelivered: boolean;
}

const key = (u: { name: string; arch: string | null }) => `${u.name}/${u.arch ?? ''}`;
/** A job sends a batch at least this often while it runs: the server relays it as a Temporal heartbeat. */
const KEEPALIVE_MS = 15_000;
const FLUSH_MS = 500;
const RETRY_MS = 2000;


/**
 * Runs one install job: the selected updates in the planned order, each only if the window still
 * covers it, streaming the package manager's lines; then the result, then the reboot the setting
 * calls for. Every step is written to disk first, so the same job delivered again after a crash
 * installs nothing twice.
 */
export class InstallJobRunner {
  private readonly file: string;
  private state: JobState;
  private lines: JobLine[] = [];
  private changed = new Map<string, JobUpdateState>();
  private sending: Promise<void> = Promise.resolve();

  constructor(
    private readonly jobId: string,
    private readonly job: InstallJob,
    private readonly deps: JobDeps,
  ) {
    const dir = path.join(deps.stateDir, 'jobs');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = path.join(dir, `${jobId.replace(/[^A-Za-z0-9-]/g, '_')}.json`);
    this.state = this.load();
  }

  private load(): JobState {
    try {
      return JSON.parse(fs.readFileSync(this.file, 'utf8')) as JobState;
    } catch {
      return { updates: {}, seq: 0, result: null, resultDelivered: false };
    }
  }

  private save(): void {
    const partial = `${this.file}.partial`;
    fs.writeFileSync(partial, JSON.stringify(this.state), { mode: 0o600 });
    fs.renameSync(partial, this.file);
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
      const lines = this.lines.splice(0, 500);
      const updates = [...this.changed.values()];
      this.changed.clear();
      if (lines.length === 0 && updates.length === 0 && !evenIfEmpty) return;
      evenIfEmpty = false;
      this.state.seq += 1;
      this.save();
      const batch: JobEvents = { seq: this.state.seq, lines, updates };
      if (!(await this.deliver(() => this.deps.client.sendJobEvents(this.jobId, batch)))) return;
    } while (this.lines.length > 0 || this.changed.size > 0);
  }

  /** Retries while the server is away; a refusal (the job was withdrawn) ends the attempt. */
  private async deliver(send: () => Promise<unknown>): Promise<boolean> {
    while (!this.deps.signal.aborted) {
      try {
        await send();
        return true;
      } catch (error) {
        if (error instanceof ServerRefusal) {
          this.deps.log('warn', 'the server refused job progress', { jobId: this.jobId, error: error.message });
          return false;
        }
        await sleep(RETRY_MS, this.deps.signal);
      }
    }
    return false;
  }

  async run(): Promise<void> {
    const { log } = this.deps;
    if (!this.state.result) {
      this.state.result = this.deps.assessOnly ? this.refused() : await this.install();
      this.save();
    }
    await this.flush();
    if (!this.state.resultDelivered) {
      const delivered = await this.deliver(() => this.deps.client.sendJobResult(this.jobId, this.state.result!));
      if (!delivered) return;
      this.state.resultDelivered = true;
      this.save();
      log('info', 'job done', { jobId: this.jobId, rebooting: this.state.result.rebooting });
      if (this.state.result.rebooting) this.reboot();
    }
  }

  private refused(): JobResult {
    return {
      updates: [],
      rebootRequired: false,
      rebooting: false,
      bootId: readBootId(this.deps.bootIdFile),
      timedOut: false,
      error: { code: 'ASSESS_ONLY', message: 'This agent runs in assess-only mode and installs nothing. Run it without --assess-only to let deployments install.' },
    };
  }

  private async install(): Promise<JobResult> {
    const { backend, ctx } = this.deps;
    const deadline = Date.parse(this.job.deadline);
    const graceEnd = deadline + this.job.graceSeconds * 1000;
    let rebootRequired = false;
    let timedOut = false;
    const ticker = setInterval(() => void this.keepalive(), KEEPALIVE_MS);
    const flusher = setInterval(() => {
      if (this.lines.length > 0 || this.changed.size > 0) void this.flush();
    }, FLUSH_MS);
    try {
      this.line('agent', `job ${this.jobId}: ${this.job.updates.length} update(s) until ${this.job.deadline}, reboot ${this.job.rebootSetting}`);
      for (const update of this.job.updates) {
        const previous = this.state.updates[key(update)];
        if (previous && previous.status !== 'IN_PROGRESS') continue; // done before a restart
        if (previous?.status === 'IN_PROGRESS') {
          // The agent stopped while this update ran: never run it again blindly.
          this.setUpdate({ ...previous, status: 'FAILED', reason: 'The agent stopped while installing this update; the next assessment shows whether it was installed.', endedAt: new Date().toISOString() });
          continue;
        }
        const now = Date.now();
        if (timedOut || !canStartUpdate({ nowMs: now, deadlineMs: deadline, expectedSeconds: update.expectedSeconds, rebootReserveSeconds: this.job.rebootReserveSeconds })) {
          this.setUpdate(this.notAttempted(update, timedOut ? 'The window and its grace ended while an earlier update ran.' : `Not enough time left in the maintenance window (expected ${update.expectedSeconds} s${this.job.rebootReserveSeconds ? ` plus ${Math.round(this.job.rebootReserveSeconds / 60)} min kept for a reboot` : ''}).`));
          continue;
        }
        const startedAt = new Date().toISOString();
        this.setUpdate({ name: update.name, arch: update.arch, status: 'IN_PROGRESS', exitCode: null, errorText: null, reason: null, installedVersion: update.installedVersion, startedAt, endedAt: null });
        void this.flush();
        const outcome = await this.installOne(update);
        rebootRequired ||= outcome.rebootRequired;
        this.setUpdate({ name: update.name, arch: update.arch, status: outcome.status, exitCode: outcome.exitCode, errorText: outcome.errorText, reason: outcome.reason, installedVersion: outcome.installedVersion, startedAt, endedAt: new Date().toISOString() });
        if (Date.now() > graceEnd) timedOut = true;
      }
    } finally {
      clearInterval(ticker);
      clearInterval(flusher);
    }
    const pendingReboot = rebootRequired || (await (backend.rebootPending ? backend.rebootPending(ctx) : backend.assess(ctx).then((r) => r.rebootPending)).catch(() => false));
    const rebooting = !timedOut && shouldReboot(this.job.rebootSetting, pendingReboot);
    this.line('agent', `job ${this.jobId} finished${timedOut ? ' (timed out)' : ''}; reboot ${rebooting ? 'now' : pendingReboot ? 'needed but not allowed' : 'not needed'}`);
    return { updates: Object.values(this.state.updates), rebootRequired: pendingReboot, rebooting, bootId: readBootId(this.deps.bootIdFile), timedOut, error: null };
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

  private reboot(): void {
    this.deps.log('info', 'rebooting the machine', { command: this.deps.rebootCommand });
    // shell: /bin/sh -c on Linux, cmd.exe /d /s /c on Windows (`shutdown /r ...`).
    const child = spawn(this.deps.rebootCommand, { shell: true, detached: true, stdio: 'ignore', env: this.deps.ctx.env });
    child.unref();
  }
}
