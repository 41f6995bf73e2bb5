// How the agent's packages are made, with the distributions' own packagers (dpkg-deb, rpmbuild)
// and zip, from the executables of scripts/build-agent-executables.mjs and the files in
// packaging/linux. scripts/package-agent.mjs (`npm run package`) makes the released set; the
// package tests make other versions of the same packages to upgrade to.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { URL, fileURLToPath } from 'node:url';
import { executableName } from './agentRuntimes.mjs';
import process from 'node:process';

const REPOSITORY = fileURLToPath(new URL('..', import.meta.url));
export const EXECUTABLES = path.join(REPOSITORY, 'dist/executables');
export const LINUX = path.join(REPOSITORY, 'packaging/linux');
export const WINDOWS_INSTALLER = path.join(REPOSITORY, 'scripts/install-windows-agent.ps1');
/** The MSI's source (wixl) and the Windows service host it carries (Go). */
export const WINDOWS_PACKAGING = path.join(REPOSITORY, 'packaging/windows');
/** Debian's and RPM's names for each Linux platform's architecture. */
export const ARCHES = [
  { platform: 'linux-x64', deb: 'amd64', rpm: 'x86_64' },
  { platform: 'linux-arm64', deb: 'arm64', rpm: 'aarch64' },
];

/**
 * The package version: the project's, with a pre-release's "-" turned into "~", which both dpkg and
 * rpm sort before the release (0.2.0~rc.1 < 0.2.0) and which neither takes for a revision separator.
 */
export function packageVersion(version) {
  return version.replace(/-/g, '~');
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error) throw new Error(`${command} could not start (${result.error.message}): it is needed to build the agent packages.`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

export function executable(platform) {
  const file = path.join(EXECUTABLES, executableName(platform));
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run node scripts/build-agent-executables.mjs (npm run package does).`);
  return file;
}

/**
 * Debian's package for `arch` (one of ARCHES) in `out`, its files staged under `work`. `compression`
 * xz (what every dpkg reads: Debian 11's cannot read zstd) or none (tests' throw-away packages).
 */
export function debPackage({ work, out, version, arch, compression = 'xz' }) {
  const root = path.join(work, `deb-${arch.deb}-${version}`);
  const put = (from, to, mode) => {
    fs.mkdirSync(path.dirname(path.join(root, to)), { recursive: true });
    fs.copyFileSync(from, path.join(root, to));
    fs.chmodSync(path.join(root, to), mode);
  };
  put(executable(arch.platform), 'usr/bin/fleetpatch-agent', 0o755);
  put(path.join(LINUX, 'fleetpatch-agent.service'), 'usr/lib/systemd/system/fleetpatch-agent.service', 0o644);
  put(path.join(LINUX, 'agent.env'), 'etc/fleetpatch-agent/agent.env', 0o600);
  for (const script of ['postinst', 'prerm', 'postrm']) put(path.join(LINUX, 'deb', script), `DEBIAN/${script}`, 0o755);
  fs.writeFileSync(path.join(root, 'DEBIAN/conffiles'), '/etc/fleetpatch-agent/agent.env\n');
  const installedKiB = Math.ceil(fs.statSync(path.join(root, 'usr/bin/fleetpatch-agent')).size / 1024) + 8;
  fs.writeFileSync(
    path.join(root, 'DEBIAN/control'),
    [
      'Package: fleetpatch-agent',
      `Version: ${version}`,
      `Architecture: ${arch.deb}`,
      'Maintainer: fleetpatch <fleetpatch@localhost>',
      'Section: admin',
      'Priority: optional',
      // The executable needs the C library only (GLIBC_2.17 symbols at most), nothing else.
      'Depends: libc6 (>= 2.17)',
      `Installed-Size: ${installedKiB}`,
      'Description: fleetpatch agent: assesses and installs this machine\'s updates',
      ' The program each machine managed by fleetpatch runs: it enrolls with a fleetpatch server,',
      ' reports the updates the machine is missing (from apt) and installs them when a deployment',
      ' says so. One self-contained executable, no Node.js needed, and a hardened systemd service.',
      '',
    ].join('\n'),
  );
  const file = path.join(out, `fleetpatch-agent_${version}_${arch.deb}.deb`);
  run('dpkg-deb', ['--root-owner-group', `-Z${compression}`, '--build', root, file]);
  return file;
}

/** The RPM for `arch` in `out`; `compression` xz (every rpm reads it: RHEL 8, SLES 15) or none. */
export function rpmPackage({ work, out, version, arch, compression = 'xz' }) {
  const sources = path.join(work, `rpm-${arch.rpm}-${version}`);
  fs.mkdirSync(sources, { recursive: true });
  fs.copyFileSync(executable(arch.platform), path.join(sources, 'fleetpatch-agent'));
  fs.copyFileSync(path.join(LINUX, 'fleetpatch-agent.service'), path.join(sources, 'fleetpatch-agent.service'));
  fs.copyFileSync(path.join(LINUX, 'agent.env'), path.join(sources, 'agent.env'));
  run(
    'rpmbuild',
    [
      '-bb', '--quiet', '--target', `${arch.rpm}-linux`,
      '--define', `_topdir ${path.join(work, `rpmbuild-${arch.rpm}-${version}`)}`,
      '--define', `_sourcedir ${sources}`,
      '--define', `_rpmdir ${out}`,
      '--define', '_build_name_fmt %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm',
      '--define', `fp_version ${version}`,
      ...(compression === 'none' ? ['--define', 'fp_payload w0.ufdio'] : []),
      path.join(LINUX, 'rpm/fleetpatch-agent.spec'),
    ],
    // A HOME of its own: no ~/.rpmmacros of whoever builds changes the package.
    { env: { ...process.env, HOME: work } },
  );
  return path.join(out, `fleetpatch-agent-${version}-1.${arch.rpm}.rpm`);
}

/** Windows: the executable and its install script, in one zip. */
export function windowsZip({ work, out, version }) {
  const folder = path.join(work, `windows-${version}`);
  fs.mkdirSync(folder);
  fs.copyFileSync(executable('windows-x64'), path.join(folder, 'fleetpatch-agent.exe'));
  fs.copyFileSync(WINDOWS_INSTALLER, path.join(folder, 'install-windows-agent.ps1'));
  const file = path.join(out, `fleetpatch-agent-${version}-x64.zip`);
  fs.rmSync(file, { force: true });
  run('zip', ['-q', '-X', file, 'fleetpatch-agent.exe', 'install-windows-agent.ps1'], { cwd: folder });
  return file;
}

/**
 * An MSI's ProductVersion is three numbers (major and minor below 256, build below 65,536) and has
 * no pre-release: 0.2.0-rc.1 and 0.2.0 both become 0.2.0, and the MSI does not take the second for
 * an upgrade of the first (docs/agent-packages.md).
 */
export function msiVersion(version) {
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!match || Number(match[1]) > 255 || Number(match[2]) > 255 || Number(match[3]) > 65535) throw new Error(`${version} cannot be an MSI version (a.b.c, a and b at most 255, c at most 65535)`);
  return `${Number(match[1])}.${Number(match[2])}.${Number(match[3])}`;
}

/**
 * The service host (packaging/windows/servicehost, Go, golang.org/x/sys from the Go module proxy):
 * the agent cannot answer Windows' Service Control Manager itself, the host does and runs it.
 */
export function windowsServiceHost({ work }) {
  const file = path.join(work, 'fleetpatch-agent-service.exe');
  // Go's own installer puts it in /usr/local/go, often not on PATH (as for the Temporal CLI's build).
  const onPath = (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir && fs.existsSync(path.join(dir, 'go')));
  const go = onPath || !fs.existsSync('/usr/local/go/bin/go') ? 'go' : '/usr/local/go/bin/go';
  run(go, ['build', '-trimpath', '-buildvcs=false', '-ldflags=-s -w', '-o', file, '.'], {
    cwd: path.join(WINDOWS_PACKAGING, 'servicehost'),
    env: { ...process.env, GOOS: 'windows', GOARCH: 'amd64', CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
  });
  return file;
}

/** Windows: the MSI (wixl, from Debian's msitools) with the executable, the service host and the service. */
export function windowsMsi({ work, out, version, productVersion }) {
  const folder = path.join(work, `msi-${version}`);
  fs.mkdirSync(folder, { recursive: true });
  // wixl reads the files' sources relative to the folder it runs in.
  fs.copyFileSync(executable('windows-x64'), path.join(folder, 'fleetpatch-agent.exe'));
  fs.copyFileSync(windowsServiceHost({ work: folder }), path.join(folder, 'fleetpatch-agent-service.exe'));
  fs.copyFileSync(path.join(WINDOWS_PACKAGING, 'fleetpatch-agent.wxs'), path.join(folder, 'fleetpatch-agent.wxs'));
  const file = path.join(out, `fleetpatch-agent-${version}-x64.msi`);
  run('wixl', ['-a', 'x64', '-D', `Version=${msiVersion(productVersion)}`, '-o', file, 'fleetpatch-agent.wxs'], { cwd: folder });
  return file;
}

export function outputNames(version) {
  return [
    ...ARCHES.flatMap((a) => [`fleetpatch-agent_${version}_${a.deb}.deb`, `fleetpatch-agent-${version}-1.${a.rpm}.rpm`]),
    `fleetpatch-agent-${version}-x64.zip`,
    `fleetpatch-agent-${version}-x64.msi`,
  ];
}
