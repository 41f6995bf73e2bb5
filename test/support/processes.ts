import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const FLEETPATCH_BIN = fileURLToPath(new URL('../../bin/fleetpatch.js', import.meta.url));

export interface Spawned {
  child: ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  /** Resolves when the output matches, rejects if the process exits first or time runs out. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs the built `fleetpatch` command as a real process (npm test builds dist/ first). `bin`:
 * another copy of bin/fleetpatch.js; `inheritEnv: false`: only `env` and PATH, as in a container.
 */
export function spawnFleetpatch(
  args: string[],
  env: NodeJS.ProcessEnv,
  { bin = FLEETPATCH_BIN, inheritEnv = true, cwd }: { bin?: string; inheritEnv?: boolean; cwd?: string } = {},
): Spawned {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd,
    env: inheritEnv ? { ...process.env, LOG_FORMAT: 'json', LOG_LEVEL: 'info', ...env } : { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString('utf8');
    for (const listener of listeners) listener();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      for (const listener of listeners) listener();
    }),
  );
  return {
    child,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`timed out waiting for ${pattern}; output:\n${output}`)), timeoutMs);
        const check = () => {
          const match = output.match(pattern);
          if (match) done(undefined, match);
          else if (child.exitCode !== null || child.signalCode !== null) done(new Error(`process exited before ${pattern}; output:\n${output}`));
        };
        const done = (error?: Error, match?: RegExpMatchArray) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (error) reject(error);
          else resolve(match!);
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/** Stops the process with a signal and waits for it to exit. */
export async function stop(spawned: Spawned, signal: NodeJS.Signals = 'SIGTERM') {
  if (spawned.child.exitCode === null && spawned.child.signalCode === null) spawned.child.kill(signal);
  return spawned.exited;
}
