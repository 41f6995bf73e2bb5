import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { exec, type ExecResult } from '../../exec.js';
import { existsInRoot } from '../root.js';
import { compareEditions, installedEditions as rpmInstalledEditions, rpmDatabaseFingerprint } from '../rpm.js';
import { BackendError, type AssessmentResult, type BackendContext, type PackageBackend, type PendingUpdate, type RepositoryProblem, type UpdateOutcome } from '../types.js';
import { decodeXmlEntities } from '../xml.js';
import {
  combineAssessment,
  installErrorText,
  parseInstallSummary,
  parseMessages,
  parsePackageUpdates,
  parsePatchPackages,
  parsePatches,
  parseRepositoryList,
  parseSearchResult,
  repositoryProblemsFrom,
  scriptletErrors,
  type PatchPackage,
  type ZypperSolvable,
} from './parse.js';

/*
 * SUSE (SLES, openSUSE) through zypper: running zypper and rpm on the machine. What their output
 * says is read in parse.ts: everything comes from zypper's own XML (`-x`), except the packages a
 * patch updates (see parse.ts).
 */

// ---------------------------------------------------------------------------------------------
// Running zypper and rpm on the machine.

/** zypper's exit codes (zypper(8), EXIT CODES). */
const EXIT = {
  OK: 0,
  ERR_ZYPP: 4,
  ERR_PRIVILEGES: 5,
  NO_REPOS: 6,
  LOCKED: 7,
  ERR_COMMIT: 8,
  INF_REBOOT_NEEDED: 102,
  INF_RESTART_NEEDED: 103,
  INF_CAP_NOT_FOUND: 104,
  INF_REPOS_SKIPPED: 106,
  INF_RPM_SCRIPT_FAILED: 107,
} as const;

// Queries finish in seconds; a refresh may have to download metadata of large remote repositories.
// Installs get no timeout: killing rpm in the middle of a transaction does more harm than waiting.
const REFRESH_TIMEOUT_MS = 15 * 60_000;
const QUERY_TIMEOUT_MS = 5 * 60_000;

function zypperEnv(ctx: BackendContext): NodeJS.ProcessEnv {
  return {
    ...ctx.env,
    // zypper's human output is read (install errors, patch info): keep it in one language.
    LC_ALL: 'C',
    // libzypp writes its log and temporary files to the host's /var/log and /var/tmp otherwise.
    ZYPP_LOGFILE: ctx.env.ZYPP_LOGFILE ?? path.join(ctx.workDir, 'zypper.log'),
    TMPDIR: ctx.env.TMPDIR ?? path.join(ctx.workDir, 'tmp'),
  };
}

interface Run extends ExecResult {
  command: string;
}

async function runZypper(
  ctx: BackendContext,
  args: readonly string[],
  options: { timeoutMs?: number; onLine?: (line: string) => void } = {},
): Promise<Run> {
  const env = zypperEnv(ctx);
  await mkdir(ctx.workDir, { recursive: true });
  if (!ctx.env.TMPDIR) await mkdir(env.TMPDIR!, { recursive: true });
  const fullArgs = ['--non-interactive', ...(ctx.root === '/' ? [] : ['--root', ctx.root]), ...args];
  const command = `zypper ${fullArgs.join(' ')}`;
  let result: ExecResult;
  try {
    result = await exec('zypper', fullArgs, { env, timeoutMs: options.timeoutMs, onLine: options.onLine && ((line) => options.onLine!(line)) });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new BackendError('NOT_INSTALLED', 'zypper is not installed', { command });
    throw new BackendError('COMMAND_FAILED', `zypper could not be started: ${(error as Error).message}`, { command });
  }
  const output = `${result.stdout}${result.stderr}`;
  if (result.exitCode === EXIT.LOCKED) {
    throw new BackendError('LOCKED', firstMessage(output) ?? 'System management is locked by another process', { exitCode: result.exitCode, output, command });
  }
  if (result.exitCode === null) {
    throw new BackendError('COMMAND_FAILED', `zypper was stopped by ${result.signal ?? 'a signal'}`, { exitCode: null, output, command });
  }
  return { ...result, command };
}

/** The first message of zypper's output, XML or not (for error summaries). */
function firstMessage(output: string): string | null {
  const xmlMessage = /<message type="error">([\s\S]*?)<\/message>/.exec(output);
  const text = xmlMessage ? decodeXmlEntities(xmlMessage[1]!) : output.replace(/<[^>]*>/g, '');
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(0, 2)
      .join(' ') || null
  );
}

function failed(run: Run, what: string): BackendError {
  const output = `${run.stdout}${run.stderr}`;
  return new BackendError('COMMAND_FAILED', `${what} failed (exit ${run.exitCode}): ${firstMessage(output) ?? 'no output'}`, {
    exitCode: run.exitCode,
    output,
    command: run.command,
  });
}

/** Parses zypper's XML, or throws UNPARSEABLE_OUTPUT carrying it. */
function parsed<T>(run: Run, parse: (xml: string) => T): T {
  try {
    return parse(run.stdout);
  } catch (error) {
    throw new BackendError('UNPARSEABLE_OUTPUT', `could not read the output of ${run.command}: ${(error as Error).message}`, {
      exitCode: run.exitCode,
      output: `${run.stdout}${run.stderr}`,
      command: run.command,
    });
  }
}

function expectExit(run: Run, what: string, accepted: readonly number[]): void {
  if (!accepted.includes(run.exitCode!)) throw failed(run, what);
}

/** libzypp marks a needed reboot in <root>/run/reboot-needed (installhint(reboot-needed), reboot_suggested patches). */
const rebootFlag = (ctx: BackendContext) => existsInRoot(ctx.root, 'run/reboot-needed');

async function rebootPending(ctx: BackendContext): Promise<boolean> {
  const run = await runZypper(ctx, ['needs-rebooting'], { timeoutMs: QUERY_TIMEOUT_MS });
  // 102: reboot needed. zypper older than needs-rebooting fails with a usage error: the flag file says it.
  return run.exitCode === EXIT.INF_REBOOT_NEEDED || (await rebootFlag(ctx));
}

/** The installed editions of a package, read from the rpm database (as zypper spells them: [epoch:]version-release). */
const installedEditions = (ctx: BackendContext, name: string) => rpmInstalledEditions(ctx.root, name, ctx.env, { timeoutMs: QUERY_TIMEOUT_MS });

async function assess(ctx: BackendContext): Promise<AssessmentResult> {
  const refresh = await runZypper(ctx, ['-x', 'refresh'], { timeoutMs: REFRESH_TIMEOUT_MS });
  let repositoryProblems: RepositoryProblem[] = [];
  if (refresh.exitCode === EXIT.NO_REPOS) {
    return {
      rebootPending: await rebootPending(ctx),
      updates: [],
      repositoryProblems: [{ repository: '*', message: firstMessage(refresh.stdout + refresh.stderr) ?? 'No repositories defined.' }],
    };
  }
  // Without root privileges refresh is refused (exit 5); the lists below then come from the cached metadata.
  expectExit(refresh, 'zypper refresh', [EXIT.OK, EXIT.ERR_ZYPP, EXIT.ERR_PRIVILEGES, EXIT.INF_REPOS_SKIPPED]);
  const refreshMessages = parsed(refresh, parseMessages);
  // Repositories that failed are left out of the queries below: without a cache each query would
  // try (and wait for) them again, and a cache they may have is as old as the last good refresh.
  let onlyRepositories: string[] = [];
  if (refresh.exitCode !== EXIT.OK && refresh.exitCode !== EXIT.ERR_PRIVILEGES) {
    const list = await runZypper(ctx, ['-x', 'repos'], { timeoutMs: QUERY_TIMEOUT_MS });
    expectExit(list, 'zypper repos', [EXIT.OK]);
    const repositories = parsed(list, parseRepositoryList);
    repositoryProblems = repositoryProblemsFrom(refreshMessages, repositories);
    if (repositoryProblems.length === 0) {
      const errors = refreshMessages.filter((m) => m.type === 'error').map((m) => m.text);
      if (errors.length === 0) throw failed(refresh, 'zypper refresh');
      repositoryProblems = [{ repository: '*', message: errors.join('\n') }];
    }
    const failing = new Set(repositoryProblems.map((p) => p.repository));
    const healthy = repositories.filter((r) => r.enabled && !failing.has(r.alias));
    if (healthy.length === 0) return { rebootPending: await rebootPending(ctx), updates: [], repositoryProblems };
    if (healthy.length < repositories.filter((r) => r.enabled).length) onlyRepositories = healthy.flatMap((r) => ['--repo', r.alias]);
  }

  // The repositories were just refreshed: the queries below need not check them again. 106: a
  // repository was skipped, the others are listed.
  const query = ['--no-refresh', '-x'];
  const listed = [EXIT.OK, EXIT.INF_REPOS_SKIPPED];

  const lu = await runZypper(ctx, [...query, 'list-updates', ...onlyRepositories], { timeoutMs: QUERY_TIMEOUT_MS });
  expectExit(lu, 'zypper list-updates', listed);
  const packageUpdates = parsed(lu, parsePackageUpdates);

  const lp = await runZypper(ctx, [...query, 'list-patches', '--with-optional', ...onlyRepositories], { timeoutMs: QUERY_TIMEOUT_MS });
  expectExit(lp, 'zypper list-patches', [...listed, 100, 101]);
  const patches = parsed(lp, parsePatches);

  let patchPackages = new Map<string, PatchPackage[]>();
  const patchNames = [...new Set(patches.map((p) => p.name))];
  if (patchNames.length) {
    const info = await runZypper(ctx, [...query, 'info', '-t', 'patch', '--conflicts', ...onlyRepositories, ...patchNames], { timeoutMs: QUERY_TIMEOUT_MS });
    expectExit(info, 'zypper info -t patch', [...listed, EXIT.INF_CAP_NOT_FOUND]);
    patchPackages = parsed(info, parsePatchPackages);
  }

  // Packages an update pulls in new appear only in the transaction: a dry run of the same update
  // lists them under to-install. A dependency problem (exit 4) leaves them unknown; lu still lists the rest.
  let newPackages: ZypperSolvable[] = [];
  if (packageUpdates.length) {
    const dryRun = await runZypper(ctx, [...query, 'update', '--dry-run', '--no-recommends', '--auto-agree-with-licenses', ...onlyRepositories], { timeoutMs: QUERY_TIMEOUT_MS });
    expectExit(dryRun, 'zypper update --dry-run', [...listed, EXIT.ERR_ZYPP, EXIT.INF_REBOOT_NEEDED, EXIT.INF_RESTART_NEEDED]);
    const summary = dryRun.exitCode === EXIT.ERR_ZYPP ? null : parsed(dryRun, parseInstallSummary);
    newPackages = (summary?.install ?? []).filter((s) => s.kind === 'package');
  }
  if (newPackages.length) {
    // The dry run does not say where a package comes from: search does.
    const names = [...new Set(newPackages.map((n) => n.name))];
    const search = await runZypper(ctx, [...query, 'search', '--details', '--match-exact', '-t', 'package', ...onlyRepositories, ...names], { timeoutMs: QUERY_TIMEOUT_MS });
    expectExit(search, 'zypper search', [...listed, EXIT.INF_CAP_NOT_FOUND]);
    const found = parsed(search, parseSearchResult);
    newPackages = newPackages.map((n) => ({
      ...n,
      repository: found.find((f) => f.name === n.name && f.edition === n.edition && (!n.arch || f.arch === n.arch))?.repository ?? null,
    }));
  }

  let rebootHintPackages: ZypperSolvable[] = [];
  if (packageUpdates.length || newPackages.length) {
    const hint = await runZypper(ctx, [...query, 'search', '--details', '-t', 'package', ...onlyRepositories, '--provides', 'installhint(reboot-needed)'], {
      timeoutMs: QUERY_TIMEOUT_MS,
    });
    expectExit(hint, 'zypper search --provides', [...listed, EXIT.INF_CAP_NOT_FOUND]);
    rebootHintPackages = hint.exitCode === EXIT.INF_CAP_NOT_FOUND ? [] : parsed(hint, parseSearchResult);
  }

  return {
    rebootPending: await rebootPending(ctx),
    updates: combineAssessment({ packageUpdates, newPackages, patches, patchPackages, rebootHintPackages }),
    repositoryProblems,
  };
}

async function installUpdate(ctx: BackendContext, update: PendingUpdate, onOutput: (line: string) => void): Promise<UpdateOutcome> {
  // One package at one edition (`name.arch=edition`); whatever it requires comes along, recommends do
  // not (as in the assessment's dry run). Licenses cannot be confirmed by anyone here: accepting
  // them is what scheduling the update means.
  const capability = `${update.name}${update.arch ? `.${update.arch}` : ''}=${update.availableVersion}`;
  const run = await runZypper(ctx, ['install', '--no-recommends', '--auto-agree-with-licenses', capability], { onLine: onOutput });
  const code = run.exitCode!;
  // 106: some repository was skipped, which need not concern this package (the edition read back decides).
  const accepted: number[] = [EXIT.OK, EXIT.INF_REBOOT_NEEDED, EXIT.INF_RESTART_NEEDED, EXIT.INF_REPOS_SKIPPED, EXIT.INF_RPM_SCRIPT_FAILED];
  const packageFailures: number[] = [EXIT.ERR_ZYPP, EXIT.NO_REPOS, EXIT.ERR_COMMIT, EXIT.INF_CAP_NOT_FOUND];
  if (!accepted.includes(code) && !packageFailures.includes(code)) throw failed(run, 'zypper install');

  const editions = await installedEditions(ctx, update.name);
  const ofArch = editions.filter((e) => !update.arch || e.arch === update.arch || e.arch === 'noarch' || update.arch === 'noarch');
  const installedVersion =
    ofArch.find((e) => e.edition === update.availableVersion)?.edition ??
    ofArch.map((e) => e.edition).sort((a, b) => compareEditions(b, a))[0] ??
    null;
  const rebootRequired = code === EXIT.INF_REBOOT_NEEDED || (await rebootFlag(ctx));

  // A failing %post leaves the new package installed and zypper exits 0 (lua scriptlets) or 107
  // (shell scriptlets), the error only under "Additional rpm output". Reported as FAILED, as apt
  // reports a failing postinst: the files are in place (installedVersion says so) but the package
  // may not work, and someone has to look at it.
  const scriptErrors = scriptletErrors(run.stdout);
  const reached = ofArch.some((e) => compareEditions(e.edition, update.availableVersion) >= 0);
  if (accepted.includes(code) && reached && code !== EXIT.INF_RPM_SCRIPT_FAILED && scriptErrors.length === 0) {
    return { status: 'SUCCEEDED', exitCode: code, errorText: null, installedVersion, rebootRequired };
  }
  let errorText = scriptErrors.join('\n') || installErrorText(run.stdout, run.stderr);
  if (accepted.includes(code) && !reached) {
    errorText = `zypper exited ${code} but ${update.name} is at ${installedVersion ?? 'no version'}, not ${update.availableVersion}:\n${errorText}`;
  }
  return { status: 'FAILED', exitCode: code, errorText, installedVersion, rebootRequired };
}

/** rpm's view of the update's package, read as the install reads it (the update's edition, of its arch or noarch). */
async function installedState(ctx: BackendContext, update: PendingUpdate): Promise<{ installed: boolean; installedVersion: string | null }> {
  const ofArch = (await installedEditions(ctx, update.name)).filter((e) => !update.arch || e.arch === update.arch || e.arch === 'noarch' || update.arch === 'noarch');
  const installed = ofArch.some((e) => e.edition === update.availableVersion);
  return { installed, installedVersion: installed ? update.availableVersion : (ofArch.map((e) => e.edition).sort((a, b) => compareEditions(b, a))[0] ?? null) };
}

export const zypperBackend: PackageBackend = {
  name: 'zypper',
  assess,
  installUpdate,
  databaseFingerprint: (ctx) => rpmDatabaseFingerprint(ctx.root),
  installedState,
};
