import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { exec, type ExecResult } from '../../exec.js';
import { parseOsRelease } from '../../facts.js';
import { resolveInRoot } from '../root.js';
import { compareEditions, installedEditions, installedPackages, rpmDatabaseFingerprint } from '../rpm.js';
import { BackendError, type AssessmentResult, type BackendContext, type PackageBackend, type PendingUpdate, type UpdateOutcome } from '../types.js';
import { dnfHelperScript } from './helperScript.js';
import {
  CORE_REBOOT_PACKAGES,
  dnfErrorLines,
  interpreterFromShebang,
  isLockedOutput,
  parseBootTime,
  readProblems,
  readRebootCandidates,
  readUpdates,
  rebootPendingFrom,
  releaseverFromOsRelease,
  scriptletErrorLines,
  type RebootCandidate,
} from './parse.js';

/**
 * The RHEL family: dnf (RHEL/Rocky/Alma 8+, Fedora, Amazon Linux 2023) and yum (RHEL/CentOS 7).
 *
 * dnf: assessments go through dnf's own Python API (python3-dnf, run by the interpreter of the dnf
 * script itself): helper.py, the only place dnf 4 gives advisories per package as data; installs go
 * through the dnf command, whose output is streamed to the job. dnf 4 has no machine-readable
 * output, so the only text we interpret is its error lines (parse.ts).
 *
 * yum (EL7) has its own assessment (../yum/run.ts) and installs through installWith here.
 *
 * The whole machine is `ctx.root`; on '/' the commands are plain dnf/yum. For another root every
 * command carries --installroot, the root's own dnf.conf and repo folder, and a releasever from the
 * root's os-release, so nothing of the host's configuration, cache or database is used.
 */

// ---------------------------------------------------------------------------------------------
// Running things on a root

export type Tool = 'dnf' | 'yum';

export interface Machine {
  tool: Tool;
  /** The dnf/yum executable (dnf-3 preferred: on Fedora 41+ plain `dnf` is dnf5). */
  executable: string;
  /** Options that point the tool at the machine (nothing for '/'). */
  rootArgs: string[];
  releasever: string | null;
  configFile: string | null;
  reposdir: string | null;
  env: NodeJS.ProcessEnv;
  isHost: boolean;
}

async function findExecutable(names: readonly string[], env: NodeJS.ProcessEnv): Promise<string | null> {
  const dirs = (env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean);
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name);
      try {
        await fs.access(candidate, fsConstants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return null;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

export async function machineFor(tool: Tool, ctx: BackendContext): Promise<Machine> {
  const names = tool === 'dnf' ? ['dnf-3', 'dnf'] : ['yum'];
  const executable = await findExecutable(names, ctx.env);
  if (!executable) throw new BackendError('NOT_INSTALLED', `${tool} is not installed (no ${names.join(' or ')} in PATH)`);
  // Messages in English, whatever the machine's locale: the error lines are read. EL7 has no C.UTF-8.
  const env: NodeJS.ProcessEnv = { ...ctx.env, LC_ALL: tool === 'yum' ? 'C' : 'C.UTF-8', LANGUAGE: undefined };
  const root = path.resolve(ctx.root);
  if (root === '/') return { tool, executable, rootArgs: [], releasever: null, configFile: null, reposdir: null, env, isHost: true };

  const candidates = tool === 'yum' ? ['etc/yum.conf', 'etc/dnf/dnf.conf'] : ['etc/dnf/dnf.conf'];
  let configFile: string | null = null;
  for (const candidate of candidates) {
    const file = await resolveInRoot(root, candidate);
    if (await exists(file)) {
      configFile = file;
      break;
    }
  }
  const reposdir = await resolveInRoot(root, 'etc/yum.repos.d');
  let releasever: string | null = null;
  try {
    releasever = releaseverFromOsRelease(parseOsRelease(await fs.readFile(await resolveInRoot(root, 'etc/os-release'), 'utf8')));
  } catch {
    try {
      releasever = releaseverFromOsRelease(parseOsRelease(await fs.readFile(await resolveInRoot(root, 'usr/lib/os-release'), 'utf8')));
    } catch {
      releasever = null;
    }
  }
  const rootArgs = [
    `--installroot=${root}`,
    // An absent config must not fall back to the host's: an empty file is dnf's defaults.
    `--config=${configFile ?? '/dev/null'}`,
    `--setopt=reposdir=${reposdir}`,
    ...(releasever ? [`--releasever=${releasever}`] : []),
  ];
  return { tool, executable, rootArgs, releasever, configFile: configFile ?? '/dev/null', reposdir, env, isHost: false };
}

export async function run(machine: Machine, args: readonly string[], options: { onLine?: (line: string) => void; timeoutMs?: number } = {}): Promise<ExecResult> {
  const fullArgs = [...machine.rootArgs, ...args];
  try {
    return await exec(machine.executable, fullArgs, {
      env: machine.env,
      timeoutMs: options.timeoutMs,
      onLine: options.onLine ? (line) => options.onLine!(line) : undefined,
    });
  } catch (error) {
    throw new BackendError('NOT_INSTALLED', `cannot start ${machine.executable}: ${(error as Error).message}`, {
      command: [machine.executable, ...fullArgs].join(' '),
    });
  }
}

// Metadata downloads over a slow mirror can take minutes; a helper that is still running after
// this is stuck (it never waits on a lock: exit_on_lock).
export const ASSESS_TIMEOUT_MS = 15 * 60_000;

// helper.py prints its result on a line of its own after this marker (MARKER there), so that what dnf
// or a plugin prints on stdout around it is never taken for the result.
const HELPER_MARKER = '@@FLEETPATCH-DNF@@';

interface HelperResult {
  updates?: unknown;
  repositoryProblems?: unknown;
  rebootCandidates?: unknown;
  error?: string;
  message?: string;
}

async function runHelper(machine: Machine, ctx: BackendContext, mode: 'assess' | 'reboot'): Promise<HelperResult> {
  let firstLine = '';
  try {
    const handle = await fs.open(await fs.realpath(machine.executable), 'r');
    try {
      const buffer = Buffer.alloc(256);
      const { bytesRead } = await handle.read(buffer, 0, 256, 0);
      firstLine = buffer.subarray(0, bytesRead).toString('latin1').split('\n')[0] ?? '';
    } finally {
      await handle.close();
    }
  } catch {
    firstLine = '';
  }
  const interpreter = interpreterFromShebang(firstLine);
  if (!interpreter) {
    throw new BackendError('NOT_INSTALLED', `${machine.executable} is not dnf 4 (no Python script: dnf5 is not supported yet)`);
  }
  const request = {
    mode,
    root: machine.isHost ? '/' : path.resolve(ctx.root),
    configFile: machine.configFile,
    reposdir: machine.reposdir,
    releasever: machine.releasever,
  };
  const command = [...interpreter, '-c', '<fleetpatch dnf helper>'].join(' ');
  let result: ExecResult;
  try {
    result = await exec(interpreter[0]!, [...interpreter.slice(1), '-c', dnfHelperScript()], {
      env: machine.env,
      input: JSON.stringify(request),
      timeoutMs: ASSESS_TIMEOUT_MS,
    });
  } catch (error) {
    throw new BackendError('NOT_INSTALLED', `cannot start dnf's Python (${interpreter[0]}): ${(error as Error).message}`, { command });
  }
  const output = `${result.stdout}${result.stderr ? `\n${result.stderr}` : ''}`;
  const markerLine = result.stdout
    .split('\n')
    .reverse()
    .find((line) => line.startsWith(HELPER_MARKER));
  if (result.exitCode !== 0 || result.signal) {
    // A traceback's last line is the exception: "dnf.exceptions.ConfigError: Parsing file ... failed".
    const reason = result.stderr.trim().split('\n').at(-1) ?? '';
    throw new BackendError('COMMAND_FAILED', `dnf (Python API) failed with ${result.signal ?? `exit code ${result.exitCode}`}${reason ? `: ${reason}` : ''}`, {
      exitCode: result.exitCode,
      output,
      command,
    });
  }
  if (!markerLine) throw new BackendError('UNPARSEABLE_OUTPUT', 'dnf (Python API) printed no result', { exitCode: result.exitCode, output, command });
  let parsed: HelperResult;
  try {
    parsed = JSON.parse(markerLine.slice(HELPER_MARKER.length)) as HelperResult;
  } catch {
    throw new BackendError('UNPARSEABLE_OUTPUT', 'dnf (Python API) printed a result that is no JSON', { exitCode: result.exitCode, output, command });
  }
  if (parsed.error) {
    const code = parsed.error === 'LOCKED' || parsed.error === 'NOT_INSTALLED' ? parsed.error : 'COMMAND_FAILED';
    throw new BackendError(code, parsed.message ?? parsed.error, { exitCode: result.exitCode, output, command });
  }
  return parsed;
}

export async function bootTime(): Promise<number | null> {
  try {
    return parseBootTime(await fs.readFile('/proc/stat', 'utf8'));
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// dnf

async function dnfAssess(ctx: BackendContext): Promise<AssessmentResult> {
  const machine = await machineFor('dnf', ctx);
  const result = await runHelper(machine, ctx, 'assess');
  const candidates = readRebootCandidates(result.rebootCandidates);
  return {
    rebootPending: rebootPendingFrom(candidates, await bootTime()),
    updates: readUpdates(result.updates),
    repositoryProblems: readProblems(result.repositoryProblems),
  };
}

/**
 * Installs one update with the dnf (or yum) command. The package spec is the full NEVRA, so exactly
 * that version is installed even when a newer one has appeared since the assessment; a package
 * that is not installed yet (a new dependency) goes through `install`.
 *
 * Outcomes:
 * - exit 0 and no scriptlet error: SUCCEEDED.
 * - exit 0 with a scriptlet error (%post, %posttrans, a trigger, the old package's %preun/%postun):
 *   rpm has installed the new version, but what the scriptlet was to do (restart a service,
 *   rebuild a cache, migrate data) did not happen. FAILED, with exitCode 0, the scriptlet's error
 *   lines and the new installedVersion: the operator must look at it, as with apt's failing
 *   postinst. The next assessment no longer lists it, so it is not retried by itself.
 * - exit 1 (`Error: Transaction failed` from a %pre failure, no match, depsolve problem): FAILED
 *   with dnf's error lines; rpm has kept the old version.
 * - exit 200 (dnf's exit_on_lock) or rpm's transaction lock held: LOCKED is thrown.
 * - killed, a traceback, another exit code: COMMAND_FAILED is thrown.
 *
 * A repository that cannot be reached does not stop the install (skip_if_unavailable for this
 * run): the package comes from another one, and the assessment reports the broken one.
 */
export async function installWith(tool: Tool, ctx: BackendContext, update: PendingUpdate, onOutput: (line: string) => void): Promise<UpdateOutcome> {
  const machine = await machineFor(tool, ctx);
  const spec = `${update.name}-${update.availableVersion}${update.arch ? `.${update.arch}` : ''}`;
  const verb = update.installedVersion === null ? 'install' : 'upgrade';
  // yum 3 knows no repo globs in --setopt: there the main setting (which repos may override) has to do.
  const skipUnavailable = tool === 'dnf' ? '--setopt=*.skip_if_unavailable=True' : '--setopt=skip_if_unavailable=True';
  const args = ['-y', '--setopt=exit_on_lock=True', skipUnavailable, verb, spec];
  const result = await run(machine, args, { onLine: onOutput });
  const output = `${result.stdout}\n${result.stderr}`;
  const command = [machine.executable, ...machine.rootArgs, ...args].join(' ');
  if (isLockedOutput(result.exitCode, output)) {
    throw new BackendError('LOCKED', `${tool} is locked by another process`, { exitCode: result.exitCode, output, command });
  }
  if (result.signal || /^Traceback \(most recent call last\)/m.test(output) || (result.exitCode !== 0 && result.exitCode !== 1)) {
    throw new BackendError('COMMAND_FAILED', `${tool} failed with ${result.signal ?? `exit code ${result.exitCode}`}`, {
      exitCode: result.exitCode,
      output,
      command,
    });
  }
  const versions = (await installedEditions(ctx.root, update.name, machine.env)).map((e) => e.edition);
  const installedVersion = versions.includes(update.availableVersion) ? update.availableVersion : (versions.at(-1) ?? null);
  const rebootRequired = await rebootAfterInstall(tool, machine, ctx, update);
  if (result.exitCode === 0) {
    const scriptletErrors = scriptletErrorLines(output);
    if (!versions.some((v) => compareEditions(v, update.availableVersion) >= 0)) {
      // "Nothing to do" for a package that is not there (excluded, version-locked): the exit code alone would say done.
      const text = [`${tool} exited 0 but ${update.name} is at ${installedVersion ?? 'no version'}, not ${update.availableVersion}`, ...dnfErrorLines(output)];
      return { status: 'FAILED', exitCode: 0, errorText: text.join('\n'), installedVersion, rebootRequired };
    }
    return {
      status: scriptletErrors.length === 0 ? 'SUCCEEDED' : 'FAILED',
      exitCode: 0,
      errorText: scriptletErrors.length === 0 ? null : scriptletErrors.join('\n'),
      installedVersion,
      rebootRequired,
    };
  }
  const errors = dnfErrorLines(output);
  const fallback = result.stderr.trim().split('\n').slice(-10).join('\n');
  return { status: 'FAILED', exitCode: result.exitCode, errorText: errors.length > 0 ? errors.join('\n') : fallback || null, installedVersion, rebootRequired };
}

/** rpm's view of the update's package: installed when the update's own version is among the installed ones. */
export async function rpmInstalledState(tool: Tool, ctx: BackendContext, update: PendingUpdate): Promise<{ installed: boolean; installedVersion: string | null }> {
  const versions = (await installedEditions(ctx.root, update.name, (await machineFor(tool, ctx)).env)).map((e) => e.edition);
  const installed = versions.includes(update.availableVersion);
  return { installed, installedVersion: installed ? update.availableVersion : (versions.at(-1) ?? null) };
}

async function rebootAfterInstall(tool: Tool, machine: Machine, ctx: BackendContext, update: PendingUpdate): Promise<boolean> {
  const boot = await bootTime();
  if (tool === 'dnf') {
    try {
      const result = await runHelper(machine, ctx, 'reboot');
      return rebootPendingFrom(readRebootCandidates(result.rebootCandidates), boot);
    } catch {
      // The install is done and must be reported: fall through to what rpm alone tells.
    }
  }
  const packages = await installedPackages(ctx.root, machine.env);
  const candidates: RebootCandidate[] = packages
    .filter((p) => CORE_REBOOT_PACKAGES.includes(p.name) || (update.rebootSuggested && p.name === update.name))
    .map((p) => ({ name: p.name, version: p.evr, arch: p.arch, installTime: p.installTime, reason: 'core' }));
  return rebootPendingFrom(candidates, boot);
}

export const dnfBackend: PackageBackend = {
  name: 'dnf',
  assess: dnfAssess,
  installUpdate: (ctx, update, onOutput) => installWith('dnf', ctx, update, onOutput),
  databaseFingerprint: (ctx) => rpmDatabaseFingerprint(ctx.root),
  installedState: (ctx, update) => rpmInstalledState('dnf', ctx, update),
};
