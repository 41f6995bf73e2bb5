import { spawn, type ChildProcess } from 'node:child_process';
import { Connection } from '@temporalio/client';
import type { Logger } from '../logger.js';
import { assertPortFree, waitForPort } from '../net.js';
import { stopChild } from './processes.js';

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
  process: ChildProcess;
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

  const child = spawn(options.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = false;
  child.once('exit', (code, signal) => {
    exited = true;
    logger.debug({ code, signal }, 'Temporal dev server exited');
  });

  const address = `${ip}:${port}`;
  try {
    await waitForPort(port, ip, 60_000, () => !exited);
    await waitForNamespace(address, options.namespace, 60_000);
  } catch (error) {
    await stopChild(child);
    throw new Error(`The Temporal dev server did not start: ${(error as Error).message}. Its last output:\n${output}`);
  }
  return {
    address,
    uiUrl: options.headless ? undefined : `http://${ip}:${uiPort}`,
    process: child,
    stop: () => stopChild(child),
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
