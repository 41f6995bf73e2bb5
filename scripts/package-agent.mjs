// Packages the agent executables (scripts/build-agent-executables.mjs) for the machines they run
// on (scripts/agentPackages.mjs says how):
//
//   dist/packages/fleetpatch-agent_<version>_amd64.deb, ..._arm64.deb
//   dist/packages/fleetpatch-agent-<version>-1.x86_64.rpm, ...-1.aarch64.rpm
//   dist/packages/fleetpatch-agent-<version>-x64.zip (Windows: the executable and its install script)
//   dist/packages/fleetpatch-agent-<version>-x64.msi (Windows: the executable, its service host, the service)
//   dist/packages/SHA256SUMS
//   dist/packages/manifest.json (the version and each package's file, format, architecture, sha256
//                                and size: what the server's install script picks from)
//
// `npm run package` builds the executables first. Nothing is packaged again when the executables,
// packaging/linux and packaging/windows, the packaging scripts and the version are what the last
// packages were made from (dist/packages/BUILD-INPUTS), unless --force: compressing 100 MiB
// executables takes minutes.
// --uncompressed makes the same packages without compression, in seconds, to try a change to the
// packaging; never ship them (each is as large as its executable).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { ARCHES, EXECUTABLES, LINUX, WINDOWS_INSTALLER, WINDOWS_PACKAGING, debPackage, outputNames, packageVersion, rpmPackage, windowsMsi, windowsZip } from './agentPackages.mjs';
import console from 'node:console';
import { URL } from 'node:url';

const OUT = path.resolve('dist/packages');

/** Every file under `dir`, sorted, for the inputs' digest. */
function filesUnder(dir) {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath ?? e.path, e.name))
    .sort();
}

const started = Date.now();
const agentVersion = JSON.parse(fs.readFileSync('package.json', 'utf8')).version;
const version = packageVersion(agentVersion);
const sumsOfExecutables = path.join(EXECUTABLES, 'SHA256SUMS');
if (!fs.existsSync(sumsOfExecutables)) throw new Error(`${sumsOfExecutables} is missing: run node scripts/build-agent-executables.mjs (npm run package does).`);
const compression = process.argv.includes('--uncompressed') ? 'none' : 'xz';
const digest = createHash('sha256').update(version).update(compression).update(fs.readFileSync(sumsOfExecutables));
const scripts = ['package-agent.mjs', 'agentPackages.mjs'].map((name) => new URL(name, import.meta.url).pathname);
for (const file of [...filesUnder(LINUX), ...filesUnder(WINDOWS_PACKAGING), WINDOWS_INSTALLER, ...scripts]) digest.update(path.relative(process.cwd(), file)).update(fs.readFileSync(file));
const inputs = digest.digest('hex');
const inputsFile = path.join(OUT, 'BUILD-INPUTS');
if (!process.argv.includes('--force') && fs.existsSync(inputsFile) && fs.readFileSync(inputsFile, 'utf8').trim() === inputs && [...outputNames(version), 'manifest.json'].every((n) => fs.existsSync(path.join(OUT, n)))) {
  console.log(`agent packages: up to date in ${path.relative(process.cwd(), OUT)} (same executables, packaging files and version as their last build)`);
  process.exit(0);
}
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-packages-'));
try {
  fs.mkdirSync(OUT, { recursive: true });
  fs.rmSync(inputsFile, { force: true });
  const built = [];
  for (const arch of ARCHES) {
    built.push({ file: debPackage({ work, out: OUT, version, arch, compression }), format: 'deb', arch: arch.deb, platform: arch.platform });
    built.push({ file: rpmPackage({ work, out: OUT, version, arch, compression }), format: 'rpm', arch: arch.rpm, platform: arch.platform });
  }
  built.push({ file: windowsZip({ work, out: OUT, version }), format: 'zip', arch: 'x64', platform: 'windows-x64' });
  built.push({ file: windowsMsi({ work, out: OUT, version, productVersion: agentVersion }), format: 'msi', arch: 'x64', platform: 'windows-x64' });
  const files = built.map(({ file, format, arch, platform }) => {
    const bytes = fs.readFileSync(file);
    return { name: path.basename(file), format, arch, platform, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
  });
  fs.writeFileSync(path.join(OUT, 'SHA256SUMS'), `${files.map((f) => `${f.sha256}  ${f.name}`).join('\n')}\n`);
  fs.writeFileSync(path.join(OUT, 'manifest.json'), `${JSON.stringify({ version: agentVersion, packageVersion: version, files }, null, 2)}\n`);
  fs.writeFileSync(inputsFile, `${inputs}\n`);
  for (const { file } of built) console.log(`agent packages: ${path.basename(file)}: ${(fs.statSync(file).size / 2 ** 20).toFixed(1)} MiB`);
  console.log(`agent packages: version ${version}${compression === 'none' ? ', uncompressed' : ''} in ${((Date.now() - started) / 1000).toFixed(1)} s: ${path.relative(process.cwd(), OUT)}`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
