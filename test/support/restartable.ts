import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/devstack/embeddedPostgres.js';
import { findTemporalCli } from '../../src/devstack/temporalCli.js';
import { startTemporalDevServer, type TemporalDevServer } from '../../src/devstack/temporalDevServer.js';
import { freePort } from '../../src/net.js';
import { testLogger } from './env.js';

/**
 * A PostgreSQL or a Temporal dev server of a test's own, which the test can kill with SIGKILL and
 * start again on the same port with the same data: what an operator's restart (or a crash) does
 * to a running fleetpatch. The shared ones of the global setup must never be killed.
 */
export interface Restartable {
  /** SIGKILL, and wait until the process is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data, once the killed one has let go of them. */
  start(): Promise<void>;
  /** Stops it for good and removes its data. */
  stop(): Promise<void>;
}

function isGone(pid: number): boolean {
  try {
    // A killed child that is not yet reaped is a zombie ('Z'): gone for our purpose.
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}

async function waitUntilGone(pid: number, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!isGone(pid)) {
    if (Date.now() > deadline) throw new Error(`${what} (pid ${pid}) did not exit after SIGKILL`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Retries `start` while it fails (a killed PostgreSQL's backends hold its shared memory for a moment). */
async function startWithin(start: () => Promise<void>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await start();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what} did not start again: ${(error as Error).message}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

export async function startRestartablePostgres(database = 'fleetpatch'): Promise<Restartable & { url: string; postmasterPid(): number }> {
  // Not under /root: PostgreSQL runs as the postgres user and must reach its folder.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-restart-pg-'));
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  let running: RunningPostgres = await startEmbeddedPostgres({ dir, port, database, logger: testLogger });
  const postmasterPid = () => Number(fs.readFileSync(path.join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  return {
    url: running.url,
    postmasterPid,
    async kill() {
      const pid = postmasterPid();
      process.kill(pid, 'SIGKILL');
      await waitUntilGone(pid, 'PostgreSQL');
    },
    async start() {
      await startWithin(async () => {
        running = await startEmbeddedPostgres({ dir, port, database, logger: testLogger });
      }, 'PostgreSQL');
    },
    async stop() {
      await running.stop().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startRestartableTemporal(): Promise<Restartable & { address: string }> {
  const cliPath = findTemporalCli();
  if (!cliPath) throw new Error('No Temporal CLI: run `npm run temporal-cli` first (the global setup builds it).');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-restart-temporal-'));
  const port = await freePort();
  // A SQLite file: workflows, schedules and timers outlive the restart, as on a real cluster.
  const options = { cliPath, ip: '127.0.0.1', port, uiPort: 0, headless: true, namespace: 'default', dbFile: path.join(dir, 'temporal.db'), logger: testLogger };
  let server: TemporalDevServer = await startTemporalDevServer(options);
  return {
    address: server.address,
    async kill() {
      const pid = server.process.pid!;
      server.process.kill('SIGKILL');
      await waitUntilGone(pid, 'Temporal dev server');
    },
    async start() {
      await startWithin(async () => {
        server = await startTemporalDevServer(options);
      }, 'Temporal dev server');
    },
    async stop() {
      await server.stop().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
