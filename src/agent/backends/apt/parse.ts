import path from 'node:path';
import { BackendError, type Classification, type PendingUpdate, type RepositoryProblem } from '../types.js';

/*
 * apt/dpkg backend (Debian, Ubuntu): what apt and dpkg print, read as data. Plain functions,
 * unit-tested on output recorded from apt 2.6 and dpkg 1.21 on Debian 12 (test/unit/aptParse.test.ts);
 * running the tools is run.ts. Everything goes through `apt-get` and `dpkg-query`; for a
 * machine other than '/' (a fixture root, an image), apt is pointed at the root with an APT_CONFIG
 * file (Dir, dpkg --root, chrootless maintainer scripts), so sources, lists, cache, locks and the
 * dpkg database are all the root's own.
 *
 * What apt gives and what it does not:
 * - Candidates come from `apt-get -s dist-upgrade` (the `Inst`/`Conf`/`Remv` simulate lines, the
 *   most stable machine-oriented output apt-get has). The candidate's origins (`Label:Version/Suite`,
 *   several joined by `, `) decide the classification: a `Debian-Security` label or a suite ending
 *   in `-security` is SECURITY, everything else OTHER. apt has no severities (never CRITICAL here),
 *   and its Packages indices carry no advisory or CVE ids (the changelog is not available offline),
 *   so those stay empty rather than guessed.
 * - apt has no reboot metadata either: `rebootSuggested` uses the package names after which Debian
 *   and Ubuntu write /var/run/reboot-required.
 */

// apt's final error when a lock stays held (after DPkg::Lock::Timeout): "E: Could not get lock
// /var/lib/dpkg/lock-frontend. It is held by process 123 (apt-get)", "E: Unable to acquire the dpkg
// frontend lock (...)", "E: Unable to lock directory /var/lib/apt/lists/".
const LOCK_ERROR = /^E: (Could not get lock|Unable to acquire the dpkg frontend lock|Unable to lock directory|Unable to lock the administration directory)/;
// dpkg's own, when it runs alone (see configureAlone) and another process got the lock between apt
// and dpkg: "dpkg: error: dpkg frontend lock was locked by another process with pid 123",
// "dpkg: error: dpkg status database is locked by another process".
const DPKG_LOCK_ERROR = /^dpkg: error: dpkg (frontend lock|status database) (is|was) locked/;

// Debian policy: package names are lower case alphanumerics and + - . (plus an :arch qualifier);
// versions [epoch:]upstream[-revision]. Anything else is refused before it reaches apt's command line.
export const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?$/;
export const PACKAGE_VERSION = /^[A-Za-z0-9.+~:-]+$/;

// ---------------------------------------------------------------------------------------------
// apt-get: simulate lines, refresh problems, error lines
// ---------------------------------------------------------------------------------------------

export interface AptOrigin {
  /** Release Label (Debian, Debian-Security, Ubuntu); null when the Release file has none. */
  label: string | null;
  /** Release Version (12, 12-updates, 22.04); null when none. */
  version: string | null;
  /** Release Suite/Archive (stable-security, jammy-updates); null when apt only knows a host name. */
  suite: string | null;
}

/**
 * One origin as apt prints it in simulate lines (pkgCache::VerIterator::RelStr):
 * `Label:Version/Archive`, `Label:Archive`, `Version/Archive`, `Archive` or a host name when the
 * repository has no Release file.
 */
export function parseOrigin(text: string): AptOrigin {
  let rest = text.trim();
  let label: string | null = null;
  const colon = rest.indexOf(':');
  if (colon >= 0) {
    label = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
  }
  const slash = rest.indexOf('/');
  if (slash >= 0) return { label, version: rest.slice(0, slash) || null, suite: rest.slice(slash + 1) || null };
  // Without a Release Version apt prints the archive alone (and without a Release file a host
  // name, which then lands here too: it never ends in -security).
  return { label, version: null, suite: rest || null };
}

/** Security when any origin of the candidate is a security archive. */
export function classifyOrigins(origins: readonly AptOrigin[]): Classification {
  const security = origins.some((o) => o.label === 'Debian-Security' || (o.suite !== null && o.suite.endsWith('-security')));
  return security ? 'SECURITY' : 'OTHER';
}

export type SimulateAction =
  | { kind: 'Inst'; name: string; installedVersion: string | null; version: string; origins: string; arch: string }
  | { kind: 'Conf'; name: string; version: string; origins: string; arch: string }
  | { kind: 'Remv'; name: string; installedVersion: string };

// `Inst perl [5.36.0-7+deb12u2] (5.36.0-7+deb12u4 Debian-Security:12/oldstable-security [amd64]) []`
// The trailing bracket groups (packages this one breaks/unblocks) are apt's ordering notes.
const INST_CONF = /^(Inst|Conf) (\S+)(?: \[(\S+)\])? \((\S+) (.*?) ?\[([^\]\s]+)\]\)(?: \[[^\]]*\])*$/;
const REMV = /^(?:Remv|Purg) (\S+) \[(\S+)\](?: \[[^\]]*\])*$/;

/** Parses one simulate line; null when the line is not an action line, throws when an action line is malformed. */
export function parseSimulateLine(line: string): SimulateAction | null {
  if (!/^(Inst|Conf|Remv|Purg) /.test(line)) return null;
  const m = INST_CONF.exec(line);
  if (m) {
    const [, kind, name, old, version, origins, arch] = m as unknown as [string, 'Inst' | 'Conf', string, string | undefined, string, string, string];
    if (kind === 'Inst') return { kind, name, installedVersion: old ?? null, version, origins, arch };
    return { kind, name, version, origins, arch };
  }
  const r = REMV.exec(line);
  if (r) return { kind: 'Remv', name: r[1]!, installedVersion: r[2]! };
  throw new BackendError('UNPARSEABLE_OUTPUT', `apt-get simulate line not understood: ${line}`, { output: line });
}

/**
 * The simulate output of `apt-get -s dist-upgrade` as pending updates.
 *
 * - `Inst` lines are the updates (no `[old]`: the package is pulled in new).
 * - A `Conf` line without an `Inst` is a package apt still has to configure: one left half-configured
 *   (`iF`) by a failed maintainer script or with triggers pending. Its update did not complete, so it
 *   stays listed as pending (installed = available = the unpacked version); installing it again
 *   retries the configuration.
 * - `Remv` lines (packages the upgrade would remove) are not updates and are not listed.
 *
 * The summary line (`N upgraded, N newly installed, [N reinstalled, N downgraded,] N to remove and N
 * not upgraded.`) must be there and agree with the `Inst` lines; otherwise the output is not what
 * this parser understands and it throws UNPARSEABLE_OUTPUT.
 */
export function parseSimulation(output: string): PendingUpdate[] {
  const lines = output.split('\n');
  const actions: SimulateAction[] = [];
  for (const line of lines) {
    try {
      const action = parseSimulateLine(line);
      if (action) actions.push(action);
    } catch (error) {
      if (error instanceof BackendError) throw new BackendError(error.code, error.message, { output });
      throw error;
    }
  }
  const expectedInst = announcedInstalls(lines);
  if (expectedInst === null) throw new BackendError('UNPARSEABLE_OUTPUT', 'apt-get simulate output has no summary line', { output });
  const inst = actions.filter((a) => a.kind === 'Inst');
  if (inst.length !== expectedInst) {
    throw new BackendError('UNPARSEABLE_OUTPUT', `apt-get announced ${expectedInst} installs but listed ${inst.length}`, { output });
  }
  const installing = new Set(inst.map((a) => a.name));
  const updates: PendingUpdate[] = [];
  for (const action of actions) {
    if (action.kind === 'Remv') continue;
    if (action.kind === 'Conf' && installing.has(action.name)) continue;
    const origins = action.origins.split(', ').map(parseOrigin);
    updates.push({
      name: action.name,
      installedVersion: action.kind === 'Inst' ? action.installedVersion : action.version,
      availableVersion: action.version,
      arch: action.arch,
      classification: classifyOrigins(origins),
      severity: null,
      advisoryIds: [],
      cveIds: [],
      rebootSuggested: isRebootSuggested(action.name),
      repository: action.origins || null,
    });
  }
  return updates;
}

/**
 * The source package of each binary package version in `apt-cache show NAME=VERSION...` output (the
 * Packages stanzas, blank-line separated), keyed `name=version`, only where it differs from the
 * binary's name. `Source:` is absent when the source has the binary's name, and carries the source
 * version in parentheses when that differs from the binary's (`Source: glibc (2.36-9)` for a binNMU):
 * only the name is kept.
 */
export function parseSourcePackages(output: string): Map<string, string> {
  const sources = new Map<string, string>();
  for (const stanza of output.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}:[ \t]*(\\S+)`, 'm').exec(stanza)?.[1] ?? null;
    const pkg = field('Package');
    const version = field('Version');
    const source = field('Source');
    if (pkg === null || version === null || source === null || source === pkg) continue;
    if (!PACKAGE_NAME.test(source)) throw new BackendError('UNPARSEABLE_OUTPUT', `apt-cache show: source package name not understood for ${pkg} ${version}: ${source.slice(0, 100)}`, { output });
    sources.set(`${pkg}=${version}`, source);
  }
  return sources;
}

/**
 * How many packages the summary line says will be unpacked, or null without one. apt 2.x:
 * `3 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.` (with `N reinstalled, ` and
 * `N downgraded, ` when there are any); apt 3.x prints `  Upgrading: 3, Installing: 1, Removing: 0,
 * Not Upgrading: 0` under `Summary:` instead (not available on this Debian 12 host to check against).
 */
function announcedInstalls(lines: readonly string[]): number | null {
  const total = (line: string, pattern: RegExp) => [...line.matchAll(pattern)].reduce((sum, m) => sum + Number(m[1]), 0);
  const apt2 = lines.find((l) => /^\d+ upgraded, \d+ newly installed, .*\d+ to remove and \d+ not upgraded\.$/.test(l));
  if (apt2) return total(apt2, /(\d+) (?:upgraded|newly installed|reinstalled|downgraded)/g);
  const apt3 = lines.find((l) => /^\s*Upgrading: \d+, Installing: \d+, .*Not Upgrading: \d+/.test(l));
  if (apt3) return total(apt3, /(?:^|,)\s*(?:Upgrading|Installing|Reinstalling|Downgrading): (\d+)/g);
  return null;
}

/**
 * Why apt lists a package it only has to configure (a `Conf` line without an `Inst`), from dpkg's
 * status of it (`iF`, `iU`, `iW`, `it`; null when dpkg did not say).
 */
export function unfinishedNote(update: Pick<PendingUpdate, 'name' | 'availableVersion'>, status: string | null): string {
  const what = `${update.name} ${update.availableVersion}`;
  switch (status?.[1]) {
    case 'F':
      return `Half-configured (dpkg status ${status}): ${what} is unpacked but configuring it failed, usually in its maintainer script (postinst). Installing the update again retries the configuration; the last run's error for it says what failed.`;
    case 'U':
      return `Unpacked, not configured (dpkg status ${status}): an install of ${what} stopped before configuring it. Installing the update again configures it.`;
    case 'W':
    case 't':
      return `Triggers not processed yet (dpkg status ${status}): ${what} is installed but waits for its triggers. Installing the update again runs them.`;
    default:
      return `apt still has to configure ${what}, which is already unpacked. Installing the update again configures it.`;
  }
}

/** Packages after which Debian and Ubuntu ask for a reboot (kernel, libc, init, bus, microcode, firmware). */
export function isRebootSuggested(name: string): boolean {
  const bare = name.replace(/:[^:]+$/, '');
  return (
    /^linux-image-/.test(bare) ||
    /^linux-modules-/.test(bare) ||
    /^linux-.*-image/.test(bare) ||
    /^linux-firmware/.test(bare) ||
    /microcode/.test(bare) ||
    bare === 'libc6' ||
    bare === 'systemd' ||
    bare === 'dbus'
  );
}

/**
 * Repository problems in `apt-get update` output. apt has no structured form for them; these are
 * its stable line shapes (LC_ALL=C):
 *   Err:2 http://127.0.0.1:9/debian bookworm InRelease
 *     Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
 *   E: The repository 'file:/srv/repo bookworm Release' does not have a Release file.
 *   W: GPG error: http://host/debian bookworm InRelease: The following signatures ...
 *   W: Failed to fetch http://host/debian/dists/bookworm/InRelease  Could not connect ...
 * The repository is named as apt names it: `URI suite`.
 * `unexplained` are the E: lines that belong to no repository (the refresh failed as a whole).
 */
export function parseUpdateOutput(output: string): { problems: RepositoryProblem[]; unexplained: string[] } {
  const lines = output.split('\n');
  const problems = new Map<string, string[]>();
  const add = (repository: string, message: string) => {
    const messages = problems.get(repository) ?? [];
    if (message && !messages.includes(message)) messages.push(message);
    problems.set(repository, messages);
  };
  const repoOfUrl = (url: string): string => {
    const m = /^(.*?)\/dists\/([^/]+(?:\/updates)?)\//.exec(url);
    if (m) return `${m[1]} ${m[2]}`;
    return url;
  };
  const unexplained: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    let m: RegExpExecArray | null;
    if ((m = /^Err:\d+ (\S+) (\S+)/.exec(line))) {
      const repository = `${m[1]} ${m[2]!.split('/')[0]}`;
      const reasons: string[] = [];
      while (i + 1 < lines.length && /^ {2}\S/.test(lines[i + 1]!)) reasons.push(lines[++i]!.trim());
      add(repository, reasons.join(' '));
    } else if ((m = /^[EW]: The repository '(\S+) (\S+?)(?: \S+)? Release' (.*)$/.exec(line))) {
      add(`${m[1]} ${m[2]}`, `The repository ${m[3]}`);
    } else if ((m = /^[EW]: GPG error: (\S+) (\S+) \S+: (.*)$/.exec(line))) {
      add(`${m[1]} ${m[2]}`, `GPG error: ${m[3]}`);
    } else if ((m = /^[EWN]: Repository '(\S+) (\S+) \S+' (.*)$/.exec(line))) {
      add(`${m[1]} ${m[2]}`, `The repository ${m[3]}`);
    } else if ((m = /^[EW]: Release file for (\S+) is (.*)$/.exec(line))) {
      add(repoOfUrl(m[1]!), `Release file is ${m[2]}`);
    } else if ((m = /^[EW]: Failed to fetch (\S+)\s+(.*)$/.exec(line))) {
      const repository = repoOfUrl(m[1]!);
      // Usually repeats an Err: block; only kept when that block named no reason.
      if (!problems.get(repository)?.length) add(repository, m[2]!.trim());
    } else if (/^E: /.test(line) && !/^E: Some index files failed to download/.test(line)) {
      unexplained.push(line);
    }
  }
  return {
    problems: [...problems].map(([repository, messages]) => ({ repository, message: messages.join('; ') || 'failed to download' })),
    unexplained,
  };
}

/**
 * apt's and dpkg's own error lines in an install transcript: `E:` lines, dpkg's `error processing`
 * / `dependency problems` blocks with their indented continuation, and the `Errors were encountered
 * while processing:` list. Not the progress, not the maintainer scripts' chatter.
 */
export function extractErrorLines(lines: readonly string[]): string | null {
  const picked: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^E: /.test(line)) {
      picked.push(line);
    } else if (/^dpkg: (error|dependency problems)/.test(line) || /^Errors were encountered while processing:/.test(line)) {
      picked.push(line);
      while (i + 1 < lines.length && /^ \S/.test(lines[i + 1]!)) picked.push(lines[++i]!);
    }
  }
  return picked.length ? picked.join('\n') : null;
}

/** The APT_CONFIG file that moves apt and dpkg into `root` (without chroot). */
export function aptConfigForRoot(root: string): string {
  const r = path.resolve(root);
  if (/["\n]/.test(r)) throw new BackendError('COMMAND_FAILED', `apt cannot be configured for a root path with quotes or newlines: ${r}`);
  return [
    `Dir "${r}/";`,
    `Dir::State::status "${r}/var/lib/dpkg/status";`,
    `APT::Sandbox::User "root";`,
    `Dpkg::Use-Pty "false";`,
    `DPkg::Options { "--root=${r}"; "--force-script-chrootless"; "--log=${r}/var/log/dpkg.log"; };`,
    '',
  ].join('\n');
}

/**
 * The lock holder apt or dpkg names in a run's lines, as the agent reports it ("Could not get lock X.
 * It is held by process N (name)" is the most telling line); null when no line says a lock is held.
 */
export function heldLock(lines: readonly string[]): string | null {
  const locked = (l: string) => LOCK_ERROR.test(l) || DPKG_LOCK_ERROR.test(l);
  const line = lines.find((l) => /Could not get lock/.test(l)) ?? lines.find(locked);
  if (line === undefined || !lines.some(locked)) return null;
  return line.replace(/^(E: |dpkg: error: |Waiting for cache lock: )/, '').replace(/\.\.\.$/, '');
}

// ---------------------------------------------------------------------------------------------
// dpkg's database, as dpkg-query prints it
// ---------------------------------------------------------------------------------------------

/** `dpkg-query -W -f=` format read by parseDpkgState. */
export const DPKG_STATE_FORMAT = '${Version}\\t${db:Status-Abbrev}\\t${Architecture}\\n';
/** `dpkg-query -W -f=` format read by parseUnfinishedPackages. */
export const DPKG_STATUS_FORMAT = '${binary:Package}\\t${db:Status-Abbrev}\\n';

export interface DpkgState {
  version: string;
  /** dpkg's status abbreviation: want, status, error flag (`ii `, `iF `, `iU `, `iHR`). */
  status: string;
}

/**
 * dpkg's record of one package (DPKG_STATE_FORMAT; for a Multi-Arch: same package installed twice,
 * the one of `arch`): null when it is not installed, undefined when the output holds no record.
 */
export function parseDpkgState(stdout: string, arch: string | null): DpkgState | null | undefined {
  const records = stdout.split('\n').filter((l) => l.includes('\t'));
  const line = records.find((l) => l.split('\t')[2] === arch) ?? records[0];
  if (line === undefined) return undefined;
  const [version = '', status = ''] = line.split('\t');
  if (!version || status.startsWith('un') || status[1] === 'n') return null;
  return { version, status };
}

/**
 * Every package dpkg has not finished installing (DPKG_STATUS_FORMAT over all packages), by name as
 * dpkg names it (`name` or `name:arch`), with its status abbreviation: unpacked (`iU`),
 * half-configured (`iF`), half-installed (`iH`), awaiting or pending triggers (`iW`, `it`). Status
 * `i` is done; `n`/`c` are not installed.
 */
export function parseUnfinishedPackages(stdout: string): Map<string, string> {
  const unfinished = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [name, status = ''] = line.split('\t');
    if (name && 'HUFWt'.includes(status[1] ?? 'n')) unfinished.set(name, status.trim());
  }
  return unfinished;
}

/** `name:arch` → `name`. */
export const bareName = (name: string) => name.replace(/:[^:]+$/, '');

/** Installed and configured: status `i`, no reinstall-required flag. */
export function fullyInstalled(state: DpkgState | null, version: string): boolean {
  return state !== null && state.version === version && state.status[1] === 'i' && state.status[2] !== 'R';
}
