import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

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

interface SpawnWatch {
  observe: (pid: number) => void;
  outputDir: string | undefined;
}

const spawnWatches = new AsyncLocalStorage<SpawnWatch>();

/**
 * Runs `body`, telling `observe` the process id of every program `exec` starts inside it, however
 * deep in the call chain: the install job writes down what its package manager runs as, so that an
 * agent that died meanwhile knows at its next start what may still be running.
 *
 * With `outputDir`, those programs write their output into files there (read as they grow, removed
 * when they end) instead of pipes to the agent. A package manager outlives an agent that dies (the
 * packaged unit stops the agent alone, so as not to break a transaction), but through a pipe whose
 * reader is gone the first line it or a maintainer script prints kills it (SIGPIPE), which leaves
 * the package database half done; into a file it goes on to its end.
 */
export function observeSpawns<T>(observe: (pid: number) => void, body: () => Promise<T>, options: { outputDir?: string } = {}): Promise<T> {
  return spawnWatches.run({ observe, outputDir: options.outputDir }, body);
}

/** How often output written to files is read while the program runs. */
const FILE_OUTPUT_POLL_MS = 100;

/**
 * Runs a program without a shell and collects its output. Never rejects for a non-zero exit:
 * callers decide what an exit code means. Rejects only when the program cannot be started
 * (ENOENT: not installed).
 */
export function exec(command: string, args: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const watch = spawnWatches.getStore();
    const files = watch?.outputDir ? outputFiles(watch.outputDir) : undefined;
    let child;
    try {
      child = spawn(command, args, {
        env: options.env ?? process.env,
        cwd: options.cwd,
        stdio: [options.input === undefined ? 'ignore' : 'pipe', files ? files.stdout.writeFd : 'pipe', files ? files.stderr.writeFd : 'pipe'],
      });
    } catch (error) {
      files?.remove();
      throw error;
    } finally {
      // The child has its own copies of the write ends.
      if (files) for (const f of [files.stdout, files.stderr]) fs.closeSync(f.writeFd);
    }
    if (watch && child.pid !== undefined) {
      try {
        watch.observe(child.pid);
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
    const sinks = { stdout: collect('stdout', out), stderr: collect('stderr', err) };
    let poller: NodeJS.Timeout | undefined;
    if (files) {
      poller = setInterval(() => files.drain(sinks), FILE_OUTPUT_POLL_MS);
    } else {
      child.stdout!.on('data', sinks.stdout);
      child.stderr!.on('data', sinks.stderr);
    }
    const timer = options.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), options.timeoutMs) : undefined;
    const done = () => {
      clearTimeout(timer);
      clearInterval(poller);
      if (files) {
        files.drain(sinks);
        files.remove();
      }
    };
    child.once('error', (error) => {
      done();
      reject(error);
    });
    child.once('close', (exitCode, signal) => {
      done();
      if (options.onLine) {
        for (const stream of ['stdout', 'stderr'] as const) if (partial[stream]) options.onLine(partial[stream], stream);
      }
      resolve({ exitCode, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** A pair of output files for one program, with the reading side: what was written since the last read. */
function outputFiles(dir: string) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const stem = path.join(dir, `${Date.now()}-${randomUUID().slice(0, 8)}`);
  const open = (suffix: string) => {
    const file = `${stem}.${suffix}`;
    const writeFd = fs.openSync(file, 'w', 0o600);
    return { file, writeFd, readFd: fs.openSync(file, 'r'), position: 0 };
  };
  const streams = { stdout: open('out'), stderr: open('err') };
  const chunk = Buffer.alloc(64 * 1024);
  return {
    ...streams,
    drain(sinks: Record<'stdout' | 'stderr', (chunk: Buffer) => void>): void {
      for (const stream of ['stdout', 'stderr'] as const) {
        const f = streams[stream];
        for (;;) {
          const n = fs.readSync(f.readFd, chunk, 0, chunk.length, f.position);
          if (n <= 0) break;
          f.position += n;
          sinks[stream](Buffer.from(chunk.subarray(0, n)));
        }
      }
    },
    remove(): void {
      for (const f of [streams.stdout, streams.stderr]) {
        fs.closeSync(f.readFd);
        fs.rmSync(f.file, { force: true });
      }
    },
  };
}
