import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PackageBackend } from '../../src/agent/backends/types.js';
import type { AgentClient } from '../../src/agent/client.js';
import { InstallJobRunner } from '../../src/agent/jobs.js';
import { JobStore } from '../../src/agent/jobStore.js';
import type { InstallJob, JobEvents, JobResult, ScriptJobStep } from '../../src/agent/protocol.js';
import { emptyJobState } from '../../src/agent/resume.js';

/** One request the job runner made, in order; `installed` marks when the backend was asked to install. */
export type JobRequest = { kind: 'events'; batch: JobEvents } | { kind: 'result'; result: JobResult } | { kind: 'installed'; name: string };

export interface JobRunOptions {
  updates?: string[];
  scripts?: ScriptJobStep[];
  /** Changes the job's saved state before it runs (an agent that stopped part way). */
  prepare?: (store: JobStore, jobId: string, job: InstallJob) => void;
  /** Answers a request instead of the server's usual acceptance (throw a ServerRefusal to refuse it). */
  answer?: (request: JobRequest, requests: readonly JobRequest[]) => void;
}

/**
 * The agent's own install job runner (src/agent/jobs.ts) with real scripts and job store, a package
 * backend that records what it is asked to install, and a server that records every request in
 * order and accepts it (unless `answer` says otherwise).
 */
export function jobRunnerHarness() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-job-runner-'));
  let counter = 0;

  async function runJob(options: JobRunOptions = {}) {
    const jobId = `job-${++counter}`;
    const stateDir = path.join(dir, jobId);
    const store = new JobStore(stateDir);
    const requests: JobRequest[] = [];
    const job: InstallJob = {
      runId: 'run',
      machineRunId: 'machine-run',
      deadline: new Date(Date.now() + 3600_000).toISOString(),
      graceSeconds: 60,
      rebootSetting: 'NEVER',
      rebootReserveSeconds: 0,
      updates: (options.updates ?? ['demo-libssl']).map((name) => ({ name, arch: null, installedVersion: '1.0-1', availableVersion: '1.1-1', classification: 'SECURITY', severity: null, advisoryIds: [], cveIds: [], rebootSuggested: false, repository: null, expectedSeconds: 5 })),
      scripts: options.scripts ?? [],
    };
    store.save(jobId, emptyJobState(job, new Date().toISOString()));
    options.prepare?.(store, jobId, job);
    const record = (request: JobRequest) => {
      requests.push(request);
      options.answer?.(request, requests);
    };
    const backend = {
      name: 'apt',
      assess: async () => ({ updates: [], rebootPending: false }),
      installUpdate: async (_ctx: unknown, update: { name: string; availableVersion: string }) => {
        record({ kind: 'installed', name: update.name });
        return { status: 'SUCCEEDED', exitCode: 0, errorText: null, installedVersion: update.availableVersion, rebootRequired: false };
      },
      rebootPending: async () => false,
    } as unknown as PackageBackend;
    const client = {
      sendJobEvents: async (_id: string, batch: JobEvents) => {
        record({ kind: 'events', batch });
        return { applied: true };
      },
      sendJobResult: async (_id: string, result: JobResult) => {
        record({ kind: 'result', result });
        return { accepted: true };
      },
    } as unknown as AgentClient;
    await new InstallJobRunner(jobId, {
      backend,
      ctx: { root: '/', env: { PATH: process.env.PATH }, workDir: stateDir },
      client,
      store,
      log: () => undefined,
      assessOnly: false,
      bootId: () => 'boot',
      reboot: () => undefined,
      signal: new AbortController().signal,
    }).run();
    const results = requests.flatMap((r) => (r.kind === 'result' ? [r.result] : []));
    // Every batch the server was sent, on its own or carried by a result.
    const batches = requests.flatMap((r) => (r.kind === 'events' ? [r.batch] : r.kind === 'result' && r.result.events ? [r.result.events] : []));
    return {
      requests,
      installed: requests.flatMap((r) => (r.kind === 'installed' ? [r.name] : [])),
      result: results.at(-1),
      lines: batches.flatMap((b) => b.lines.map((l) => `${l.stream}: ${l.text}`)),
      finished: store.load(jobId)?.finished,
    };
  }

  return { dir, runJob, cleanUp: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
