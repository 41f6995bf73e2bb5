import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * The Temporal CLI carries the dev server (`temporal server start-dev`). Without internet it cannot
 * be downloaded, but the Go module proxy is reachable: v1.5.1 is the newest release `go install`
 * accepts (later ones carry a `replace` directive that `go install` refuses).
 */
export const TEMPORAL_CLI_VERSION = 'v1.5.1';
const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.FLEETPATCH_CACHE_DIR) return path.resolve(env.FLEETPATCH_CACHE_DIR);
  return path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'fleetpatch');
}

export function cachedCliPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(cacheDir(env), 'temporal-cli', TEMPORAL_CLI_VERSION, 'temporal');
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

export class TemporalCliError extends Error {
  override name = 'TemporalCliError';
}

/** TEMPORAL_CLI_PATH, then `temporal` on PATH, then the cached build; undefined if none. */
export function findTemporalCli(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.TEMPORAL_CLI_PATH) {
    if (!isExecutable(env.TEMPORAL_CLI_PATH)) {
      throw new TemporalCliError(`TEMPORAL_CLI_PATH=${env.TEMPORAL_CLI_PATH} is not an executable file. Point it at a Temporal CLI binary, or unset it to use one on PATH or a cached build.`);
    }
    return env.TEMPORAL_CLI_PATH;
  }
  return onPath('temporal', env) ?? (isExecutable(cachedCliPath(env)) ? cachedCliPath(env) : undefined);
}

const HOW_TO_FIX = [
  'To get a Temporal CLI, do one of:',
  `  - install Go (1.22 or newer) and run again: fleetpatch builds ${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION} once into ${path.dirname(cachedCliPath())};`,
  '  - put a `temporal` binary on PATH, or set TEMPORAL_CLI_PATH to one;',
  '  - or point fleetpatch at a Temporal server you already run with TEMPORAL_ADDRESS=host:port.',
].join('\n');

/**
 * Finds the Temporal CLI, or builds it once with `go install` into the cache (several minutes and
 * several hundred MB of modules on first use), printing progress through `progress`.
 */
export async function ensureTemporalCli(
  progress: (line: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const found = findTemporalCli(env);
  if (found) return found;

  const go = onPath('go', env) ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) throw new TemporalCliError(`No Temporal CLI found and no Go toolchain to build one.\n${HOW_TO_FIX}`);
  const goVersion = spawnSync(go, ['version'], { encoding: 'utf8' }).stdout.trim();

  const target = cachedCliPath(env);
  const staging = `${path.dirname(target)}.partial-${process.pid}`;
  fs.mkdirSync(staging, { recursive: true });
  progress(`Building the Temporal CLI ${TEMPORAL_CLI_VERSION} with ${goVersion} (first time only; it takes minutes)...`);

  const started = Date.now();
  const child = spawn(go, ['install', `${TEMPORAL_CLI_MODULE}@${TEMPORAL_CLI_VERSION}`], {
    env: { ...env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod', GOBIN: staging },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let downloaded = 0;
  let tail: string[] = [];
  const onOutput = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
      tail = [...tail.slice(-19), line];
      if (line.startsWith('go: downloading')) downloaded += 1;
    }
  };
  child.stdout.on('data', onOutput);
  child.stderr.on('data', onOutput);
  const ticker = setInterval(() => {
    const seconds = Math.round((Date.now() - started) / 1000);
    progress(`  ...${seconds}s, ${downloaded} modules downloaded${downloaded > 0 ? ', compiling' : ''}`);
  }, 15_000);
  const code = await new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(-1));
    child.on('close', resolve);
  });
  clearInterval(ticker);

  const built = path.join(staging, 'temporal');
  if (code !== 0 || !isExecutable(built)) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new TemporalCliError(`Building the Temporal CLI failed (go install exited ${code}). Its last lines:\n${tail.join('\n')}\n${HOW_TO_FIX}`);
  }
  // Move into place only when complete, so an interrupted build never leaves a broken binary.
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.renameSync(built, target);
  fs.rmSync(staging, { recursive: true, force: true });
  progress(`Temporal CLI built in ${Math.round((Date.now() - started) / 1000)}s: ${target}`);
  return target;
}
