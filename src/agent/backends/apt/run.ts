import { promises as fs } from 'node:fs';
import path from 'node:path';
import { exec, type ExecResult } from '../../exec.js';
import { existsInRoot, resolveInRoot } from '../root.js';
import { BackendError, type AssessmentResult, type BackendContext, type PackageBackend, type PendingUpdate, type UpdateOutcome } from '../types.js';
import {
  aptConfigForRoot,
  bareName,
  DPKG_STATE_FORMAT,
  DPKG_STATUS_FORMAT,
  extractErrorLines,
  fullyInstalled,
  heldLock,
  PACKAGE_NAME,
  PACKAGE_VERSION,
  parseDpkgState,
  parseSimulation,
  parseSourcePackages,
  parseUnfinishedPackages,
  parseUpdateOutput,
  unfinishedNote,
  type DpkgState,
} from './parse.js';

/*
 * apt/dpkg backend, the part that runs them: see parse.ts for what is read from their output. For a
 * machine other than '/', apt gets an APT_CONFIG file that moves it and dpkg into the root.
 */

/** How long apt waits for the dpkg lock before giving up (seconds): an agent retries later. */
export const APT_LOCK_TIMEOUT_SECONDS = 2;

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
  const held = run.exitCode !== 0 ? heldLock(run.lines) : null;
  if (held !== null) {
    throw new BackendError('LOCKED', `apt/dpkg lock is held by another process: ${held}`, {
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

function adminDir(ctx: BackendContext): string[] {
  return isRoot(ctx) ? [] : [`--admindir=${path.join(path.resolve(ctx.root), 'var/lib/dpkg')}`];
}

/** dpkg's record of `name` (for a Multi-Arch: same package installed twice, the one of `arch`). */
async function dpkgState(ctx: BackendContext, name: string, arch: string | null, env: NodeJS.ProcessEnv): Promise<DpkgState | null> {
  const run = await runProgram('dpkg-query', [...adminDir(ctx), '-W', `-f=${DPKG_STATE_FORMAT}`, name], env);
  if (run.exitCode !== 0) {
    if (/no packages found matching/.test(output(run))) return null;
    checkRun(run);
    throw commandFailed(run);
  }
  const state = parseDpkgState(run.stdout, arch);
  if (state === undefined) throw new BackendError('UNPARSEABLE_OUTPUT', `dpkg-query output not understood`, { output: run.stdout, command: run.command });
  return state;
}

/** Every package dpkg has not finished installing, with its status (see parseUnfinishedPackages). */
async function unfinishedPackages(ctx: BackendContext, env: NodeJS.ProcessEnv): Promise<Map<string, string>> {
  const run = await runProgram('dpkg-query', [...adminDir(ctx), '-W', `-f=${DPKG_STATUS_FORMAT}`], env);
  if (run.exitCode !== 0) {
    checkRun(run);
    throw commandFailed(run);
  }
  return parseUnfinishedPackages(run.stdout);
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

  await addSourcePackages(updates, env);
  return { rebootPending: await rebootRequiredFileExists(ctx.root), updates, repositoryProblems: problems };
}

/**
 * Each update's source package where it differs from the binary's name, from the candidate version's
 * Packages stanza (`apt-cache show NAME=VERSION...`, one run for them all): security trackers name
 * source packages (`openssl`), apt's updates are binaries (`libssl3`).
 */
async function addSourcePackages(updates: PendingUpdate[], env: NodeJS.ProcessEnv): Promise<void> {
  if (updates.length === 0) return;
  const show = await runProgram('apt-cache', ['-q', '-o', 'APT::Cache::AllVersions=0', 'show', ...new Set(updates.map((u) => `${u.name}=${u.availableVersion}`))], env, { timeoutMs: 5 * 60_000 });
  // Source names are information for CVE matching, never a reason to fail the assessment: when
  // apt-cache cannot show a version (exit 100), the stanzas it did print still count.
  if (show.exitCode === null) return;
  const sources = parseSourcePackages(show.stdout);
  for (const u of updates) {
    const source = sources.get(`${u.name}=${u.availableVersion}`);
    if (source !== undefined) u.sourcePackage = source;
  }
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
