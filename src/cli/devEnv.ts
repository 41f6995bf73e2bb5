import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig } from '../config.js';

/** What a running `fleetpatch dev` tells other processes about itself. */
export interface DevStackEnv {
  pid: number;
  dataDir: string;
  databaseUrl: string;
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  apiUrl: string;
  /** Whether the dev stack runs a worker of its own. */
  worker: boolean;
}

export function devEnvFile(dataDir: string): string {
  return path.join(dataDir, 'dev.env');
}

const quote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

/**
 * The variables that point `fleetpatch server` and `fleetpatch worker` at the dev stack, in shell
 * syntax (`eval "$(fleetpatch dev --print-env)"`), with what to know before using them.
 */
export function renderDevEnv(env: DevStackEnv): string {
  const port = new URL(env.apiUrl).port;
  const lines = [
    `# fleetpatch dev (pid ${env.pid}, data in ${env.dataDir}): its PostgreSQL and Temporal, for`,
    '# `fleetpatch server` and `fleetpatch worker` started elsewhere: eval "$(fleetpatch dev --print-env)"',
    `export DATABASE_URL=${quote(env.databaseUrl)}`,
    `export TEMPORAL_ADDRESS=${quote(env.temporalAddress)}`,
    `export TEMPORAL_NAMESPACE=${quote(env.namespace)}`,
    `export FLEETPATCH_TASK_QUEUE=${quote(env.taskQueue)}`,
    `# Its API already listens on port ${port}: give \`fleetpatch server\` another PORT (PORT=${Number(port) + 1}).`,
  ];
  if (env.worker) {
    lines.push(
      `# It runs a worker of its own on task queue "${env.taskQueue}": a \`fleetpatch worker\` started with these`,
      '# variables competes with it for the same workflow and activity tasks, and either may run any of them.',
      '# To have only yours run them, start the dev stack with FLEETPATCH_DEV_WORKER=false; or give your',
      '# server and worker a task queue of their own (FLEETPATCH_TASK_QUEUE=mine) for what your server starts.',
    );
  } else {
    lines.push('# It runs no worker (FLEETPATCH_DEV_WORKER=false): until a `fleetpatch worker` runs with these variables, no workflow moves.');
  }
  return `${lines.join('\n')}\n`;
}

/** `<data dir>/dev.env`, mode 0600 (the database URL carries its password); gone again on a clean stop. */
export function writeDevEnv(env: DevStackEnv): string {
  const file = devEnvFile(env.dataDir);
  fs.writeFileSync(`${file}.tmp`, renderDevEnv(env), { mode: 0o600 });
  fs.renameSync(`${file}.tmp`, file);
  return file;
}

export function removeDevEnv(dataDir: string, pid: number): void {
  const file = devEnvFile(dataDir);
  if (pidOf(file) === pid) fs.rmSync(file, { force: true });
}

function pidOf(file: string): number | undefined {
  try {
    const match = /^# fleetpatch dev \(pid (\d+),/.exec(fs.readFileSync(file, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function isFleetpatch(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // A pid taken over by another program after a crash is not the dev stack.
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('fleetpatch');
  } catch {
    return true; // No /proc (macOS): the pid is alive, which is as far as we can tell.
  }
}

/** `fleetpatch dev --print-env`: what the running dev stack of this data folder wrote. */
export async function printDevEnv(): Promise<void> {
  const { dataDir } = loadConfig();
  const file = devEnvFile(dataDir);
  const pid = pidOf(file);
  if (pid === undefined || !isFleetpatch(pid)) {
    throw new ConfigError(
      `fleetpatch dev is not running with the data folder ${dataDir}${pid === undefined ? '' : ` (it last ran as pid ${pid})`}: start it (npm start), then run this again from the same folder (or with the same FLEETPATCH_DATA_DIR).`,
    );
  }
  process.stdout.write(fs.readFileSync(file, 'utf8'));
}
