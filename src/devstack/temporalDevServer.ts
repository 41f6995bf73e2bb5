import { spawn, type ChildProcess } from 'node:child_process';
import { Connection } from '@temporalio/client';
import type { Logger } from '../logger.js';
import { assertPortFree, waitForPort } from '../net.js';
import { exitOf, isRunning, killOnExit, stopChild, type ProcessExit } from './processes.js';

export interface TemporalDevServerOptions {
  cliPath: string;
  ip: string;
  port: number;
  /** The Web UI's port; ignored when headless. */
  uiPort: number;
  headless: boolean;
  namespace: string;
  /** SQLite file that keeps workflows across restarts; omitted: in memory. */
  dbFile?: string;
  logger: Logger;
}

export interface TemporalDevServer {
  address: string;
  uiUrl: string | undefined;
  /** The running server's pid. */
  readonly pid: number | undefined;
  /** Resolves when the running server exits, however it ends; a restart makes a new one. */
  readonly exited: Promise<ProcessExit>;
  /** Starts it again after it died: same ports and SQLite file (its workflows are kept). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `temporal server start-dev` and resolves once its frontend answers for the namespace. */
export async function startTemporalDevServer(options: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const { ip, port, uiPort, logger } = options;
  await assertPortFree(port, ip, 'Temporal dev server', 'FLEETPATCH_TEMPORAL_PORT');
  if (!options.headless) await assertPortFree(uiPort, ip, 'Temporal Web UI', 'FLEETPATCH_TEMPORAL_UI_PORT');
  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port), '--namespace', options.namespace, '--log-level', 'warn', '--log-format', 'json'];
  if (options.headless) args.push('--headless');
  else args.push('--ui-port', String(uiPort));
  if (options.dbFile) args.push('--db-filename', options.dbFile);

  const address = `${ip}:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<ProcessExit> = Promise.resolve({ code: null, signal: null });
  let forget = () => undefined as void;
  const start = async () => {
    // Its own process group: a terminal's Ctrl-C reaches fleetpatch alone, which stops it in order.
    const started = spawn(options.cliPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    exited = exitOf(started);
    forget();
    forget = killOnExit(started);
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4000);
    };
    started.stdout.on('data', keep);
    started.stderr.on('data', keep);
    let spawnError: Error | undefined;
    // Also keeps a later 'error' (a kill that failed) from ending this process.
    started.on('error', (error) => {
      spawnError ??= error;
      logger.warn({ err: error }, 'Temporal dev server process error');
    });
    let gone = false;
    void exited.then((exit) => {
      gone = true;
      logger.debug(exit, 'Temporal dev server exited');
    });
    try {
      await waitForPort(port, ip, 60_000, () => !gone);
      await waitForNamespace(address, options.namespace, 60_000);
    } catch (error) {
      await stopChild(started);
      throw new Error(`The Temporal dev server did not start: ${(spawnError ?? (error as Error)).message}. Its last output:\n${output}`);
    }
  };
  await start();
  const running = () => isRunning(child);
  return {
    address,
    uiUrl: options.headless ? undefined : `http://${ip}:${uiPort}`,
    get pid() {
      return running() ? child!.pid : undefined;
    },
    get exited() {
      return exited;
    },
    async restart() {
      if (running()) throw new Error('the Temporal dev server is still running');
      await assertPortFree(port, ip, 'Temporal dev server', 'FLEETPATCH_TEMPORAL_PORT');
      await start();
    },
    async stop() {
      if (child) await stopChild(child);
      forget();
    },
  };
}

async function waitForNamespace(address: string, namespace: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const connection = await Connection.connect({ address });
  try {
    for (;;) {
      try {
        await connection.workflowService.describeNamespace({ namespace });
        return;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await connection.close();
  }
}
