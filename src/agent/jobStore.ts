import fs from 'node:fs';
import path from 'node:path';
import type { InstallJob } from './protocol.js';
import { emptyJobState, normaliseJobState, type JobState } from './resume.js';

/** Finished job files are kept this long (a resent job is recognised by them), then removed at a start. */
const KEEP_FINISHED_MS = 90 * 24 * 3600_000;

/** What the install job runner keeps a job in: JobStore on a machine, memory in the simulator. */
export interface JobStorage {
  /** Where the jobs are kept, for messages. */
  readonly dir: string;
  load(jobId: string): JobState | undefined;
  save(jobId: string, state: JobState): void;
}

/**
 * The install jobs an agent was handed, one file each (`<state dir>/jobs/<id>.json`, mode 0600,
 * replaced atomically): the job itself and how far it got, so that an agent that starts again
 * takes back what it had not finished.
 */
export class JobStore implements JobStorage {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'jobs');
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  private file(jobId: string): string {
    return path.join(this.dir, `${jobId.replace(/[^A-Za-z0-9-]/g, '_')}.json`);
  }

  load(jobId: string): JobState | undefined {
    const file = this.file(jobId);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
    try {
      return normaliseJobState(JSON.parse(text) as Partial<JobState>, fs.statSync(file).mtime.toISOString());
    } catch {
      // Written atomically, so unreadable only if damaged outside the agent: start it afresh.
      return undefined;
    }
  }

  save(jobId: string, state: JobState): void {
    const file = this.file(jobId);
    const partial = `${file}.partial`;
    fs.writeFileSync(partial, JSON.stringify(state), { mode: 0o600 });
    fs.renameSync(partial, file);
  }

  /**
   * Writes a job down as it arrives, before it is queued: from here on a restart takes it back. A
   * job already known (handed out again) keeps its state, and gains the job if its file predates
   * kept jobs.
   */
  receive(jobId: string, job: InstallJob, now = new Date()): JobState {
    const known = this.load(jobId);
    if (known?.job) return known;
    const state = known ? { ...known, job } : emptyJobState(job, now.toISOString());
    this.save(jobId, state);
    return state;
  }

  /** The jobs not finished yet; finished ones older than the keeping time are removed on the way. */
  unfinished(now = Date.now()): Array<{ jobId: string; state: JobState }> {
    const jobs: Array<{ jobId: string; state: JobState }> = [];
    for (const name of fs.readdirSync(this.dir)) {
      const match = /^([A-Za-z0-9-]+)\.json$/.exec(name);
      if (!match) continue;
      const state = this.load(match[1]!);
      if (!state) continue;
      if (state.finished !== null) {
        const file = path.join(this.dir, name);
        if (now - fs.statSync(file).mtimeMs > KEEP_FINISHED_MS) fs.rmSync(file, { force: true });
        continue;
      }
      jobs.push({ jobId: match[1]!, state });
    }
    return jobs;
  }
}
