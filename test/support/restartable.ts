import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../../src/devstack/embeddedPostgres.js';
import { findTemporalCli } from '../../src/devstack/temporalCli.js';
import { startTemporalDevServer } from '../../src/devstack/temporalDevServer.js';
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
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it for good and removes its data. */
  stop(): Promise<void>;
}

/** SIGKILL to a running server, resolved once it has exited. */
async function killNow(server: { pid: number | undefined; exited: Promise<unknown> }, what: string): Promise<void> {
  if (server.pid === undefined) throw new Error(`${what} is not running`);
  process.kill(server.pid, 'SIGKILL');
  await server.exited;
}

export async function startRestartablePostgres(database = 'fleetpatch'): Promise<Restartable & { url: string }> {
  // Not under /root: PostgreSQL runs as the postgres user and must reach its folder.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-restart-pg-'));
  fs.chmodSync(dir, 0o755);
  const server = await startEmbeddedPostgres({ dir, port: await freePort(), database, logger: testLogger });
  return {
    url: server.url,
    kill: () => killNow(server, 'PostgreSQL'),
    start: () => server.restart(),
    async stop() {
      await server.stop().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startRestartableTemporal(): Promise<Restartable & { address: string }> {
  const cliPath = findTemporalCli();
  if (!cliPath) throw new Error('No Temporal CLI: run `npm run temporal-cli` first (the global setup builds it).');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-restart-temporal-'));
  // A SQLite file: workflows, schedules and timers outlive the restart, as on a real cluster.
  const server = await startTemporalDevServer({ cliPath, ip: '127.0.0.1', port: await freePort(), uiPort: 0, headless: true, namespace: 'default', dbFile: path.join(dir, 'temporal.db'), logger: testLogger });
  return {
    address: server.address,
    kill: () => killNow(server, 'the Temporal dev server'),
    start: () => server.restart(),
    async stop() {
      await server.stop().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
