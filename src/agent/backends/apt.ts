import { promises as fs } from 'node:fs';
import path from 'node:path';
import { exec, type ExecResult } from '../exec.js';
import {
  BackendError,
  type AssessmentResult,
  type BackendContext,
  type Classification,
  type PackageBackend,
  type PendingUpdate,
  type RepositoryProblem,
  type UpdateOutcome,
} from './types.js';

/**
 * apt/dpkg backend (Debian, Ubuntu). Everything goes through `apt-get` and `dpkg-query`; for a
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

/** How long apt waits for the dpkg lock before giving up (seconds): an agent retries later. */
export const APT_LOCK_TIMEOUT_SECONDS = 2;

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
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?$/;
const PACKAGE_VERSION = /^[A-Za-z0-9.+~:-]+$/;

// ---------------------------------------------------------------------------------------------
// Pure parsing
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

// ---------------------------------------------------------------------------------------------
// Files inside the managed root
// ---------------------------------------------------------------------------------------------

/**
 * Resolves `relativePath` inside `root` the way the machine itself would see it: symbolic links are
 * followed, an absolute link target is taken relative to `root` (a debootstrap root has
 * `var/run -> /run`: following that on the host would read the host's /run), and `..` never leaves
 * `root`. Components that do not exist are kept literally.
 */
export async function resolveInRoot(root: string, relativePath: string): Promise<string> {
  const rootAbs = path.resolve(root);
  if (rootAbs === '/') return path.resolve('/', relativePath);
  let pending = relativePath.split('/').filter((p) => p !== '' && p !== '.');
  let resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = path.join(rootAbs, ...resolved, part);
    let isLink: boolean;
    try {
      isLink = (await fs.lstat(candidate)).isSymbolicLink();
    } catch {
      resolved.push(part, ...pending.filter((p) => p !== '..'));
      break;
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++hops > 40) throw new BackendError('COMMAND_FAILED', `too many symbolic links resolving ${relativePath} in ${root}`);
    const target = await fs.readlink(candidate);
    if (target.startsWith('/')) resolved = [];
    pending = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
  }
  return path.join(rootAbs, ...resolved);
}

async function existsInRoot(root: string, relativePath: string): Promise<boolean> {
  try {
    await fs.stat(await resolveInRoot(root, relativePath));
    return true;
  } catch {
    return false;
  }
}

/** Debian/Ubuntu write this file after an update that needs a reboot. */
async function rebootRequiredFileExists(root: string): Promise<boolean> {
  return (await existsInRoot(root, 'var/run/reboot-required')) || (await existsInRoot(root, 'run/reboot-required'));
}

// ---------------------------------------------------------------------------------------------
// Running apt and dpkg
// ---------------------------------------------------------------------------------------------

interface AptRun extends ExecResult {
  /** stdout and stderr lines in the order they arrived. */
  lines: string[];
  command: string;
}

function isRoot(ctx: BackendContext): boolean {
  return path.resolve(ctx.root) === '/';
}

async function aptEnvironment(ctx: BackendContext): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {
    ...ctx.env,
    // apt's messages are parsed: keep them untranslated.
    LC_ALL: 'C',
    LANG: 'C',
    DEBIAN_FRONTEND: 'noninteractive',
    APT_LISTCHANGES_FRONTEND: 'none',
    NEEDRESTART_MODE: 'l',
  };
  delete env.LANGUAGE;
  if (!isRoot(ctx)) {
    await fs.mkdir(ctx.workDir, { recursive: true });
    const file = path.join(ctx.workDir, 'apt.conf');
    await fs.writeFile(file, aptConfigForRoot(ctx.root));
    env.APT_CONFIG = file;
  }
  return env;
}

const COMMON_OPTIONS = ['-q', '-o', `DPkg::Lock::Timeout=${APT_LOCK_TIMEOUT_SECONDS}`, '-o', 'Dpkg::Use-Pty=0', '-o', 'APT::Color=0'];

async function runProgram(
  program: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: { onLine?: (line: string) => void; timeoutMs?: number } = {},
): Promise<AptRun> {
  const command = [program, ...args].join(' ');
  const lines: string[] = [];
  let result: ExecResult;
  try {
    result = await exec(program, args, {
      env,
      timeoutMs: options.timeoutMs,
      onLine: (raw) => {
        // A line rewritten in place (\r) counts as its last state.
        const line = raw.split('\r').filter((part) => part !== '').pop() ?? '';
        lines.push(line);
        options.onLine?.(line);
      },
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new BackendError('NOT_INSTALLED', `${program} is not installed (not found on PATH)`, { command });
    }
    throw new BackendError('COMMAND_FAILED', `${program} could not be started: ${(error as Error).message}`, { command });
  }
  return { ...result, lines, command };
}

function output(run: AptRun): string {
  return run.lines.join('\n');
}

/** Throws LOCKED when apt reports a held lock, COMMAND_FAILED when it was killed. */
function checkRun(run: AptRun): void {
  const locked = (l: string) => LOCK_ERROR.test(l) || DPKG_LOCK_ERROR.test(l);
  if (run.exitCode !== 0 && run.lines.some(locked)) {
    // The most telling line names the holder: "Could not get lock X. It is held by process N (name)".
    const line = run.lines.find((l) => /Could not get lock/.test(l)) ?? run.lines.find(locked)!;
    throw new BackendError('LOCKED', `apt/dpkg lock is held by another process: ${line.replace(/^(E: |dpkg: error: |Waiting for cache lock: )/, '').replace(/\.\.\.$/, '')}`, {
      exitCode: run.exitCode,
      output: output(run),
      command: run.command,
    });
  }
  if (run.exitCode === null) {
    throw new BackendError('COMMAND_FAILED', `${run.command} was killed (${run.signal ?? 'unknown signal'})`, {
      exitCode: null,
      output: output(run),
      command: run.command,
    });
  }
}

function commandFailed(run: AptRun, errors?: string | null): BackendError {
  const text = errors ?? extractErrorLines(run.lines) ?? run.lines.filter((l) => l.trim()).slice(-10).join('\n');
  return new BackendError('COMMAND_FAILED', `${run.command} exited with ${run.exitCode}: ${text}`, {
    exitCode: run.exitCode,
    output: output(run),
    command: run.command,
  });
}

interface DpkgState {
  version: string;
  /** dpkg's status abbreviation: want, status, error flag (`ii `, `iF `, `iU `, `iHR`). */
  status: string;
}

/** dpkg's record of `name` (for a Multi-Arch: same package installed twice, the one of `arch`). */
function adminDir(ctx: BackendContext): string[] {
  return isRoot(ctx) ? [] : [`--admindir=${path.join(path.resolve(ctx.root), 'var/lib/dpkg')}`];
}

async function dpkgState(ctx: BackendContext, name: string, arch: string | null, env: NodeJS.ProcessEnv): Promise<DpkgState | null> {
  const run = await runProgram('dpkg-query', [...adminDir(ctx), '-W', '-f=${Version}\\t${db:Status-Abbrev}\\t${Architecture}\\n', name], env);
  if (run.exitCode !== 0) {
    if (/no packages found matching/.test(output(run))) return null;
    checkRun(run);
    throw commandFailed(run);
  }
  const records = run.stdout.split('\n').filter((l) => l.includes('\t'));
  const line = records.find((l) => l.split('\t')[2] === arch) ?? records[0];
  if (line === undefined) throw new BackendError('UNPARSEABLE_OUTPUT', `dpkg-query output not understood`, { output: run.stdout, command: run.command });
  const [version = '', status = ''] = line.split('\t');
  if (!version || status.startsWith('un') || status[1] === 'n') return null;
  return { version, status };
}

/**
 * Every package dpkg has not finished installing, by name as dpkg names it (`name` or `name:arch`),
 * with its status abbreviation: unpacked (`iU`), half-configured (`iF`), half-installed (`iH`),
 * awaiting or pending triggers (`iW`, `it`). Status `i` is done; `n`/`c` are not installed.
 */
async function unfinishedPackages(ctx: BackendContext, env: NodeJS.ProcessEnv): Promise<Map<string, string>> {
  const run = await runProgram('dpkg-query', [...adminDir(ctx), '-W', '-f=${binary:Package}\\t${db:Status-Abbrev}\\n'], env);
  if (run.exitCode !== 0) {
    checkRun(run);
    throw commandFailed(run);
  }
  const unfinished = new Map<string, string>();
  for (const line of run.stdout.split('\n')) {
    const [name, status = ''] = line.split('\t');
    if (name && 'HUFWt'.includes(status[1] ?? 'n')) unfinished.set(name, status.trim());
  }
  return unfinished;
}

const bareName = (name: string) => name.replace(/:[^:]+$/, '');

/** Installed and configured: status `i`, no reinstall-required flag. */
function fullyInstalled(state: DpkgState | null, version: string): boolean {
  return state !== null && state.version === version && state.status[1] === 'i' && state.status[2] !== 'R';
}

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------

async function assess(ctx: BackendContext): Promise<AssessmentResult> {
  const env = await aptEnvironment(ctx);

  const update = await runProgram('apt-get', [...COMMON_OPTIONS, 'update'], env, { timeoutMs: 30 * 60_000 });
  checkRun(update);
  const { problems, unexplained } = parseUpdateOutput(output(update));
  // apt-get update exits 100 for a repository without a Release file and the like while refreshing
  // the others: that is a repository problem, not a failed assessment. Errors that name no
  // repository mean the refresh failed as a whole.
  if (update.exitCode !== 0 && (unexplained.length > 0 || problems.length === 0)) {
    throw commandFailed(update, unexplained.join('\n') || null);
  }

  const simulate = await runProgram('apt-get', [...COMMON_OPTIONS, '-s', 'dist-upgrade'], env, { timeoutMs: 10 * 60_000 });
  checkRun(simulate);
  if (simulate.exitCode !== 0) throw commandFailed(simulate);
  const updates = parseSimulation(simulate.stdout);
  // A package apt only has to configure is listed with the same installed and available version:
  // say why, from dpkg's own status of it.
  const toConfigure = updates.filter((u) => u.installedVersion === u.availableVersion);
  if (toConfigure.length > 0) {
    const unfinished = await unfinishedPackages(ctx, env);
    const statusOf = (u: PendingUpdate) => unfinished.get(u.name) ?? unfinished.get(`${u.name}:${u.arch}`) ?? null;
    for (const u of toConfigure) u.note = unfinishedNote(u, statusOf(u));
  }

  return { rebootPending: await rebootRequiredFileExists(ctx.root), updates, repositoryProblems: problems };
}

/*
 * Installing one update: `apt-get install --only-upgrade NAME=VERSION` (a plain install for a package
 * the update pulls in new). The outcome is judged by what dpkg says about NAME afterwards, not by the
 * exit code alone.
 *
 * Each update gets its own outcome, also on a machine where an earlier maintainer script failed. A
 * failed postinst leaves its package half-configured (`iF`), and every later `apt-get install`
 * retries configuring it ("1 not fully installed or removed"), fails again and exits 100, even when
 * the package asked for was installed fine: every later update would carry exit 100 and the other
 * package's error. So when dpkg has packages it has not finished (other than NAME), apt unpacks
 * NAME without its final `dpkg --configure --pending` (`DPkg::ConfigurePending=false`), and dpkg then
 * configures exactly what this run unpacked (`configureAlone`). The half-configured package stays as
 * it is and keeps its own FAILED result; the assessment keeps listing it (a `Conf` line without an
 * `Inst`, with its dpkg status in its `note`) until a run installs it again, which retries its
 * configuration and fails the same way while the script fails. On a machine with nothing unfinished
 * apt runs as usual.
 *
 * - NAME fully installed at the requested version: SUCCEEDED, with the exit code of the run;
 * - otherwise FAILED with the exit code and apt's or dpkg's error lines.
 */
async function installUpdate(ctx: BackendContext, update: PendingUpdate, onOutput: (line: string) => void): Promise<UpdateOutcome> {
  if (!PACKAGE_NAME.test(update.name) || !PACKAGE_VERSION.test(update.availableVersion)) {
    throw new BackendError('COMMAND_FAILED', `not a Debian package name and version: ${JSON.stringify(`${update.name}=${update.availableVersion}`)}`);
  }
  const env = await aptEnvironment(ctx);
  const target = `${update.name}=${update.availableVersion}`;
  const unfinishedBefore = await unfinishedPackages(ctx, env);
  const othersUnfinished = [...unfinishedBefore.keys()].some((name) => bareName(name) !== update.name);
  const args = [
    ...COMMON_OPTIONS,
    '-y',
    '-o',
    'Dpkg::Options::=--force-confdef',
    '-o',
    'Dpkg::Options::=--force-confold',
    ...(othersUnfinished ? ['-o', 'DPkg::ConfigurePending=false'] : []),
    'install',
    ...(update.installedVersion === null ? [] : ['--only-upgrade']),
    target,
  ];
  const streamed = (line: string) => {
    try {
      onOutput(line);
    } catch {
      // A failing listener must not break the install running underneath it.
    }
  };
  let run = await runProgram('apt-get', args, env, { onLine: streamed });
  checkRun(run);
  if (othersUnfinished && run.exitCode === 0) {
    const configured = await configureAlone(ctx, env, update.name, unfinishedBefore, streamed);
    if (configured) {
      checkRun(configured);
      run = configured;
    }
  }

  const state = await dpkgState(ctx, update.name, update.arch, env);
  const rebootRequired = await rebootRequiredFileExists(ctx.root);
  const installedVersion = state?.version ?? null;
  const errors = extractErrorLines(run.lines);

  if (fullyInstalled(state, update.availableVersion)) {
    return { status: 'SUCCEEDED', exitCode: run.exitCode, errorText: run.exitCode === 0 ? null : errors, installedVersion, rebootRequired };
  }
  let errorText = errors;
  if (errorText === null) {
    // apt exited without an error line (e.g. 0 after "Skipping X, it is not installed and only
    // upgrades are requested"): say what dpkg has instead, with apt's last words.
    const now = state ? `${state.version} (dpkg status ${state.status.trim()})` : 'not installed';
    const tail = run.lines.filter((l) => l.trim()).slice(-3).join('\n');
    errorText = `${update.name} ${update.availableVersion} was not installed: dpkg has ${update.name} ${now}${tail ? `\n${tail}` : ''}`;
  }
  return { status: 'FAILED', exitCode: run.exitCode, errorText, installedVersion, rebootRequired };
}

/**
 * `dpkg --configure` of what an apt run left unfinished that was finished before it (what it
 * unpacked, and packages whose triggers it activated), and of `name` itself when it is unfinished:
 * never of the packages that were already unfinished, whose failures are their own. dpkg orders
 * the packages it is given by their dependencies. Undefined when there is nothing to configure.
 */
async function configureAlone(ctx: BackendContext, env: NodeJS.ProcessEnv, name: string, before: ReadonlyMap<string, string>, onLine: (line: string) => void): Promise<AptRun | undefined> {
  const after = await unfinishedPackages(ctx, env);
  const packages = [...after].filter(([pkg, status]) => status[1] !== 'H' && (bareName(pkg) === name || !before.has(pkg))).map(([pkg]) => pkg);
  if (packages.length === 0) return undefined;
  const root = isRoot(ctx) ? [] : [`--root=${path.resolve(ctx.root)}`, '--force-script-chrootless', `--log=${path.resolve(ctx.root)}/var/log/dpkg.log`];
  return runProgram('dpkg', [...root, '--force-confdef', '--force-confold', '--configure', ...packages], env, { onLine });
}

/** The update's package as dpkg has it: installed means at the update's version and fully configured. */
async function installedState(ctx: BackendContext, update: PendingUpdate): Promise<{ installed: boolean; installedVersion: string | null }> {
  const state = await dpkgState(ctx, update.name, update.arch, await aptEnvironment(ctx));
  return { installed: fullyInstalled(state, update.availableVersion), installedVersion: state?.version ?? null };
}

/**
 * dpkg killed in the middle of its work (a reboot, a power cut, its agent's whole service killed)
 * leaves entries in its journal (`updates/`, files named by numbers: what apt itself looks at), and
 * from then on every apt run stops with "dpkg was interrupted, you must manually run 'dpkg
 * --configure -a' to correct the problem". That is what is run here: it finishes configuring what
 * was unpacked (the interrupted update's own maintainer script runs to its end, which is what the
 * killed run was doing, so nothing is installed twice) and, as dpkg requires, retries any other
 * package left unconfigured. Undefined when dpkg was not interrupted.
 */
async function recoverInterrupted(ctx: BackendContext, onOutput: (line: string) => void): Promise<{ exitCode: number | null; errorText: string | null } | undefined> {
  let journal: string[];
  try {
    journal = (await fs.readdir(await resolveInRoot(ctx.root, 'var/lib/dpkg/updates'))).filter((name) => /^\d+$/.test(name));
  } catch {
    return undefined;
  }
  if (journal.length === 0) return undefined;
  const env = await aptEnvironment(ctx);
  const r = path.resolve(ctx.root);
  const rootArgs = isRoot(ctx) ? [] : [`--root=${r}`, '--force-script-chrootless', `--log=${r}/var/log/dpkg.log`];
  const run = await runProgram('dpkg', [...rootArgs, '--force-confdef', '--force-confold', '--configure', '-a'], env, { onLine: onOutput });
  checkRun(run);
  return { exitCode: run.exitCode, errorText: run.exitCode === 0 ? null : (extractErrorLines(run.lines) ?? run.lines.filter((l) => l.trim()).slice(-10).join('\n')) };
}

async function databaseFingerprint(ctx: BackendContext): Promise<string> {
  const file = await resolveInRoot(ctx.root, 'var/lib/dpkg/status');
  try {
    const stat = await fs.stat(file);
    return `${stat.mtimeMs}:${stat.size}`;
  } catch (error) {
    throw new BackendError('NOT_INSTALLED', `no dpkg database at ${file}: ${(error as Error).message}`);
  }
}

export const aptBackend: PackageBackend = {
  name: 'apt',
  assess,
  installUpdate,
  databaseFingerprint,
  installedState,
  recoverInterrupted,
};
