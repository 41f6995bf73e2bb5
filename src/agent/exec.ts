import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';

export interface ExecResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the process's stdin, then closed. */
  input?: string;
  /** Kills the process (SIGKILL) after this long. */
  timeoutMs?: number;
  /** Called with each complete output line (stdout and stderr), as it arrives. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

const spawnObservers = new AsyncLocalStorage<(pid: number) => void>();

/**
 * Runs `body`, telling `observe` the process id of every program `exec` starts inside it, however
 * deep in the call chain: the install job writes down what its package manager runs as, so that an
 * agent that died meanwhile knows at its next start what may still be running.
 */
export function observeSpawns<T>(observe: (pid: number) => void, body: () => Promise<T>): Promise<T> {
  return spawnObservers.run(observe, body);
}

/**
 * Runs a program without a shell and collects its output. Never rejects for a non-zero exit:
 * callers decide what an exit code means. Rejects only when the program cannot be started
 * (ENOENT: not installed).
 */
export function exec(command: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const observe = spawnObservers.getStore();
    if (observe && child.pid !== undefined) {
      try {
        observe(child.pid);
      } catch {
        // Keeping a record of the process must never stop the process itself.
      }
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const partial = { stdout: '', stderr: '' };
    const collect = (stream: 'stdout' | 'stderr', sink: Buffer[]) => (chunk: Buffer) => {
      sink.push(chunk);
      if (!options.onLine) return;
      const text = partial[stream] + chunk.toString('utf8');
      const lines = text.split('\n');
      partial[stream] = lines.pop() ?? '';
      for (const line of lines) options.onLine(line, stream);
    };
    child.stdout!.on('data', collect('stdout', out));
    child.stderr!.on('data', collect('stderr', err));
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      if (options.onLine) {
        for (const stream of ['stdout', 'stderr'] as const) if (partial[stream]) options.onLine(partial[stream], stream);
      }
      resolve({ exitCode, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}
