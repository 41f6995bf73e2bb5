import { installedPackages, compareEditions, splitNevra, rpmDatabaseFingerprint } from '../rpm.js';
import { BackendError, type AssessmentResult, type BackendContext, type PackageBackend } from '../types.js';
import { ASSESS_TIMEOUT_MS, bootTime, installWith, machineFor, rpmInstalledState, run } from '../dnf/run.js';
import { CORE_REBOOT_PACKAGES, rebootPendingFrom, toPendingUpdate, isLockedOutput, type AdvisoryFacts, type RebootCandidate } from '../dnf/parse.js';
import { parseCheckUpdate, parseRepositoryProblems, parseUpdateinfoList, type UpdateinfoListLine } from './parse.js';

/**
 * yum on EL7: text only. `check-update` gives the updates (exit 100 when there are some), and
 * `updateinfo list available` / `updateinfo list available cves` the advisories and CVEs per
 * package NEVRA; an advisory counts for an update when its NEVRA is newer than the installed
 * version and not newer than the available one. yum's list output carries no reboot_suggested
 * (rebootSuggested is the core-package rule) and no new dependencies (only `yum upgrade
 * --assumeno` would show them, by screen-scraping its table: left out), and rebootPending is the
 * core-package rule on rpm's install times.
 *
 * Untested on EL7 itself (no EL7 machine here): the tests drive this code through dnf's
 * yum-compatible command line, which accepts the same commands and prints the same shapes. What
 * EL7's yum 3 prints for an unreachable repository differs from dnf; both wordings are read.
 */
async function yumAssess(ctx: BackendContext): Promise<AssessmentResult> {
  const machine = await machineFor('yum', ctx);
  // -d 0 and not -q: -q also silences the complaints about unreachable repositories.
  const common = ['-d', '0', '--setopt=exit_on_lock=True', '--setopt=skip_if_unavailable=True'];
  // metadata_expire=0: refresh now (yum 3 has no --refresh); librepo fetches only what changed.
  const check = await run(machine, [...common, '--setopt=metadata_expire=0', 'check-update'], { timeoutMs: ASSESS_TIMEOUT_MS });
  const checkOutput = `${check.stdout}\n${check.stderr}`;
  if (isLockedOutput(check.exitCode, checkOutput)) throw new BackendError('LOCKED', 'yum is locked by another process', { exitCode: check.exitCode, output: checkOutput });
  if (check.exitCode !== 0 && check.exitCode !== 100) {
    throw new BackendError('COMMAND_FAILED', `yum check-update failed with ${check.signal ?? `exit code ${check.exitCode}`}`, {
      exitCode: check.exitCode,
      output: checkOutput,
    });
  }
  const lines = parseCheckUpdate(check.stdout);
  const problems = parseRepositoryProblems(check.stderr);

  const advisories: UpdateinfoListLine[] = [];
  const cves: UpdateinfoListLine[] = [];
  if (lines.length > 0) {
    for (const [target, extra] of [
      [advisories, []],
      [cves, ['cves']],
    ] as const) {
      const listed = await run(machine, [...common, '-C', 'updateinfo', 'list', 'available', ...extra], { timeoutMs: ASSESS_TIMEOUT_MS });
      if (isLockedOutput(listed.exitCode, `${listed.stdout}\n${listed.stderr}`)) throw new BackendError('LOCKED', 'yum is locked by another process');
      if (listed.exitCode !== 0) {
        throw new BackendError('COMMAND_FAILED', `yum updateinfo list failed with exit code ${listed.exitCode}`, {
          exitCode: listed.exitCode,
          output: `${listed.stdout}\n${listed.stderr}`,
        });
      }
      target.push(...parseUpdateinfoList(listed.stdout));
    }
  }
  const installed = await installedPackages(ctx.root, machine.env);
  const updates = lines.map((line) => {
    const current = installed.filter((p) => p.name === line.name && (p.arch === line.arch || line.arch === 'noarch' || p.arch === 'noarch'));
    const installedVersion = current.map((p) => p.evr).sort(compareEditions).at(-1) ?? null;
    const covers = (entry: UpdateinfoListLine) => {
      const n = splitNevra(entry.nevra);
      return (
        n !== null &&
        n.name === line.name &&
        compareEditions(n.evr, line.version) <= 0 &&
        (installedVersion === null || compareEditions(n.evr, installedVersion) > 0)
      );
    };
    const byId = new Map<string, AdvisoryFacts>();
    for (const a of advisories.filter(covers)) byId.set(a.id, { id: a.id, type: a.type, severity: a.severity, cves: [] });
    const update = toPendingUpdate({
      name: line.name,
      installedVersion,
      availableVersion: line.version,
      arch: line.arch,
      repository: line.repository,
      rebootSuggested: false,
      advisories: [...byId.values()],
    });
    // The list output does not say which advisory carries which CVE: they go to the update as a whole.
    update.cveIds = [...new Set(cves.filter(covers).map((c) => c.id))].sort();
    return update;
  });
  const candidates: RebootCandidate[] = installed
    .filter((p) => CORE_REBOOT_PACKAGES.includes(p.name))
    .map((p) => ({ name: p.name, version: p.evr, arch: p.arch, installTime: p.installTime, reason: 'core' }));
  return { rebootPending: rebootPendingFrom(candidates, await bootTime()), updates, repositoryProblems: problems };
}

export const yumBackend: PackageBackend = {
  name: 'yum',
  assess: yumAssess,
  installUpdate: (ctx, update, onOutput) => installWith('yum', ctx, update, onOutput),
  databaseFingerprint: (ctx) => rpmDatabaseFingerprint(ctx.root),
  installedState: (ctx, update) => rpmInstalledState('yum', ctx, update),
};
