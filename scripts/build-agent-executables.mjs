// Builds the agent as one self-contained executable per platform, with no Node.js needed on the
// machine: dist/executables/fleetpatch-agent-linux-x64, -linux-arm64 and -windows-x64.exe, and their
// SHA256SUMS. Everything comes from the npm registry (scripts/agentRuntimes.mjs), cached after the
// first build.
//
//   node scripts/build-agent-executables.mjs [--runtime bun|node] [--out DIR] [--platform P]... [--force]
//                                            [--agent-version V]
//
// Besides the executables, DIR gets SHA256SUMS and manifest.json (the version and each platform's
// file, sha256 and size), which the server reads to offer them to agents that upgrade themselves.
// --agent-version builds the agent as if package.json said V (tests build a second version to
// upgrade to; never ship one).
//
// Nothing is rebuilt when the agent's code, the runtimes and the platforms are what the last build
// in DIR was made from (its BUILD-INPUTS file), unless --force.
// Bun (`bun build --compile`) is the default, chosen by measurement (BENCHMARKS.md, "The agent as
// one executable"): about 20 MiB less memory at rest than a Node.js 24 single executable
// application, a tenth of its start time, and a glibc floor of 2.17 against Node's 2.28 with
// libstdc++. `--runtime node` builds the Node.js single executable applications the comparison used.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { parseArgs } from 'node:util';
import { bundleAgent } from './agentBundle.mjs';
import { BUN_RUNTIMES, BUN_VERSION, NODE_RUNTIMES, NODE_VERSION, PLATFORMS, executableName, hostPlatform, runtimeExecutable } from './agentRuntimes.mjs';
import console from 'node:console';

const POSTJECT = { package: 'postject', integrity: 'sha512-b9Eb8h2eVqNE8edvKdwqkrY6O7kAwmI8kcnBv1NScolYJbo59XUF0noFq+lxbC1yN20bmC0WBEbDC5H/7ASb0A==', file: 'dist/api.js' };
const POSTJECT_VERSION = '1.0.0-alpha.6';
/** The fuse Node.js looks for to know it carries a blob (Node's documentation, "Single executable applications"). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const { values } = parseArgs({
  options: {
    runtime: { type: 'string', default: 'bun' },
    out: { type: 'string', default: 'dist/executables' },
    platform: { type: 'string', multiple: true },
    force: { type: 'boolean', default: false },
    'agent-version': { type: 'string' },
  },
  strict: true,
});
if (!['bun', 'node'].includes(values.runtime)) throw new Error(`--runtime is bun or node, not ${values.runtime}`);
const platforms = values.platform ?? PLATFORMS;
for (const p of platforms) if (!PLATFORMS.includes(p)) throw new Error(`--platform is one of ${PLATFORMS.join(', ')}, not ${p}`);
const host = hostPlatform();
if (!host || host.startsWith('windows')) throw new Error(`the agent executables are built on Linux x64 or arm64, not ${process.platform}-${process.arch}`);

const log = (line) => console.log(`agent executables: ${line}`);
const outDir = path.resolve(values.out);
fs.mkdirSync(outDir, { recursive: true });
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-executables-'));

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error) throw new Error(`${command} could not start: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

async function buildWithBun(bundle) {
  const compiler = runtimeExecutable(BUN_RUNTIMES[host], BUN_VERSION, log);
  for (const platform of platforms) {
    const runtime = BUN_RUNTIMES[platform];
    const base = runtimeExecutable(runtime, BUN_VERSION, log);
    const outfile = path.join(work, executableName(platform));
    // No .env nor bunfig.toml read from the working folder at start: an agent's behaviour comes
    // from its flags and environment only, whatever folder a service manager starts it in.
    run(compiler, [
      'build', '--compile', `--target=${runtime.bunTarget}`, `--compile-executable-path=${base}`,
      '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig', bundle, '--outfile', outfile,
    ], { cwd: work, env: { ...process.env, BUN_INSTALL_CACHE_DIR: path.join(work, 'bun-cache') } });
  }
}

async function buildWithNode() {
  // A single executable application's main script is CommonJS on Node 24, and the blob is made by
  // the same Node.js version it is injected into; without a code cache or snapshot it is the same
  // for every platform.
  const cjs = path.join(work, 'agent.cjs');
  await bundleAgent({ outfile: cjs, format: 'cjs', target: 'node24' });
  const config = path.join(work, 'sea-config.json');
  fs.writeFileSync(config, JSON.stringify({ main: cjs, output: path.join(work, 'agent.blob'), disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: false }));
  run(runtimeExecutable(NODE_RUNTIMES[host], NODE_VERSION, log), ['--experimental-sea-config', config], { cwd: work });
  const blob = fs.readFileSync(path.join(work, 'agent.blob'));
  const { inject } = createRequire(import.meta.url)(runtimeExecutable(POSTJECT, POSTJECT_VERSION, log));
  for (const platform of platforms) {
    const outfile = path.join(work, executableName(platform));
    fs.copyFileSync(runtimeExecutable(NODE_RUNTIMES[platform], NODE_VERSION, log), outfile);
    // postject warns about ELF note sections it does not name; the injection itself is checked below.
    const warn = console.warn;
    console.warn = () => {};
    try {
      await inject(outfile, 'NODE_SEA_BLOB', blob, { sentinelFuse: SEA_FUSE });
    } finally {
      console.warn = warn;
    }
  }
}

async function main() {
  const started = Date.now();
  const bundle = path.join(work, 'fleetpatch-agent.mjs');
  await bundleAgent({ outfile: bundle, version: values['agent-version'] });
  const inputs = createHash('sha256')
    .update(JSON.stringify({ runtime: values.runtime, platforms, bun: [BUN_VERSION, BUN_RUNTIMES], node: [NODE_VERSION, NODE_RUNTIMES], postject: POSTJECT }))
    .update(fs.readFileSync(bundle))
    .digest('hex');
  const inputsFile = path.join(outDir, 'BUILD-INPUTS');
  const upToDate = fs.existsSync(inputsFile) && fs.readFileSync(inputsFile, 'utf8').trim() === inputs && fs.existsSync(path.join(outDir, 'manifest.json')) && platforms.every((p) => fs.existsSync(path.join(outDir, executableName(p))));
  if (upToDate && !values.force) {
    log(`up to date in ${path.relative(process.cwd(), outDir) || '.'} (same agent code and runtimes as its last build)`);
    return;
  }
  fs.rmSync(inputsFile, { force: true });
  if (values.runtime === 'bun') await buildWithBun(bundle);
  else await buildWithNode();

  const version = values['agent-version'] ?? JSON.parse(fs.readFileSync('package.json', 'utf8')).version;
  // The executable for this machine must answer like the agent before anything is packaged from it.
  if (platforms.includes(host)) {
    const said = run(path.join(work, executableName(host)), ['--version']).trim();
    if (said !== version) throw new Error(`the built ${executableName(host)} says its version is "${said}", not ${version}`);
  }
  const sums = [];
  const files = [];
  for (const platform of platforms) {
    const name = executableName(platform);
    const target = path.join(outDir, name);
    // Replaced by rename: a running agent started from the old file keeps running.
    fs.renameSync(path.join(work, name), `${target}.new`);
    fs.renameSync(`${target}.new`, target);
    const bytes = fs.readFileSync(target);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    sums.push(`${sha256}  ${name}`);
    files.push({ platform, name, sha256, size: bytes.length });
    log(`${name}: ${(bytes.length / 2 ** 20).toFixed(1)} MiB`);
  }
  fs.writeFileSync(path.join(outDir, 'SHA256SUMS'), `${sums.join('\n')}\n`);
  fs.writeFileSync(path.join(outDir, 'manifest.json'), `${JSON.stringify({ version, runtime: values.runtime, files }, null, 2)}\n`);
  fs.writeFileSync(inputsFile, `${inputs}\n`);
  log(`version ${version}, ${values.runtime} runtime, in ${((Date.now() - started) / 1000).toFixed(1)} s: ${path.relative(process.cwd(), outDir) || '.'}`);
}

try {
  await main();
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
