import path from 'node:path';
import { normaliseSeverity } from '../rpm.js';
import { BackendError, type Classification, type PendingUpdate, type RepositoryProblem, type Severity } from '../types.js';

/*
 * What dnf tells, read as data: plain functions (unit-tested in test/agent/dnf.test.ts on output
 * captured from the real tools). Running dnf and its Python helper (helper.py) is run.ts; yum's text
 * output is read in ../yum/parse.ts.
 */

/**
 * The $releasever dnf would use on that machine. dnf itself takes it from the release package
 * (`system-release(releasever)`), which on the EL family is the major version ("9" on Rocky 9.4,
 * whose VERSION_ID is "9.4"); Fedora's VERSION_ID is its releasever already.
 */
export function releaseverFromOsRelease(fields: Record<string, string>): string | null {
  const versionId = fields.VERSION_ID;
  if (!versionId) return null;
  const family = `${fields.ID ?? ''} ${fields.ID_LIKE ?? ''}`.split(/\s+/);
  if (family.some((id) => ['rhel', 'centos', 'rocky', 'almalinux', 'ol'].includes(id))) return versionId.split('.')[0]!;
  return versionId;
}

/** `#!/usr/bin/python3 -s` → ['/usr/bin/python3', '-s']; null when the file is no script (dnf5 is a binary). */
export function interpreterFromShebang(firstLine: string): string[] | null {
  if (!firstLine.startsWith('#!')) return null;
  const parts = firstLine.slice(2).trim().split(/\s+/).filter(Boolean);
  if (parts.length === 0) return null;
  if (path.basename(parts[0]!) !== 'env') return parts;
  // #!/usr/bin/env [-S] python3 [flags]: the interpreter is the first word that is no env option.
  const rest = parts.slice(1);
  while (rest[0]?.startsWith('-')) rest.shift();
  return rest.length > 0 ? rest : null;
}

const severityRank: Record<Severity, number> = { CRITICAL: 4, IMPORTANT: 3, MODERATE: 2, LOW: 1 };

export interface AdvisoryFacts {
  id: string;
  /** updateinfo type: security, bugfix, enhancement, newpackage. */
  type: string;
  severity: string | null;
  cves: string[];
  /** updateinfo's `<issued date>` as the repository wrote it (see advisoryDate); absent when not given. */
  issued?: string | null;
}

/**
 * An updateinfo `<issued date>` as ISO 8601 UTC, or null when it cannot be read. Red Hat, Rocky and
 * Fedora write "2025-01-15 00:00:00" (UTC, no zone), some repositories a bare date, SUSE and
 * createrepo-made ones seconds since the epoch.
 */
export function advisoryDate(raw: string | null | undefined): string | null {
  const text = (raw ?? '').trim();
  let ms: number;
  if (/^\d{9,11}$/.test(text)) ms = Number(text) * 1000;
  else {
    const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.exec(text);
    if (!m) return null;
    const [, y, mo, d, h = '00', mi = '00', sec = '00', zone] = m;
    ms = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${sec}${zone ? (zone === 'Z' ? 'Z' : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone) : 'Z'}`);
  }
  if (!Number.isFinite(ms)) return null;
  return new Date(ms).toISOString();
}

/** The newest issue date among an update's advisories: the advisory that published the version offered. */
export function newestAdvisoryDate(raws: ReadonlyArray<string | null | undefined>): string | null {
  const dates = raws.map(advisoryDate).filter((d): d is string => d !== null).sort();
  return dates.at(-1) ?? null;
}

/**
 * CRITICAL: a security advisory rated critical; SECURITY: any other security advisory; OTHER:
 * bugfix, enhancement, or no advisory at all. The severity is the highest one of the security
 * advisories (of all advisories when there is none).
 */
export function classifyAdvisories(advisories: readonly AdvisoryFacts[]): { classification: Classification; severity: Severity | null } {
  const security = advisories.filter((a) => a.type.toLowerCase() === 'security');
  const rated = (security.length > 0 ? security : advisories).map((a) => normaliseSeverity(a.severity)).filter((s): s is Severity => s !== null);
  const severity = rated.sort((a, b) => severityRank[b] - severityRank[a])[0] ?? null;
  if (security.some((a) => normaliseSeverity(a.severity) === 'CRITICAL')) return { classification: 'CRITICAL', severity };
  if (security.length > 0) return { classification: 'SECURITY', severity };
  return { classification: 'OTHER', severity };
}

/**
 * The packages `dnf needs-restarting -r` treats as needing a reboot when updated since boot
 * (dnf-plugins-core, from https://access.redhat.com/solutions/27943). zlib counts only where a
 * D-Bus daemon is installed, as there.
 */
export const CORE_REBOOT_PACKAGES = [
  'kernel',
  'kernel-core',
  'kernel-rt',
  'kernel-rt-core',
  'glibc',
  'linux-firmware',
  'systemd',
  'dbus',
  'dbus-broker',
  'dbus-daemon',
  'microcode_ctl',
];

/** Seconds since the epoch at which the running kernel booted (`btime` in /proc/stat). */
export function parseBootTime(procStat: string): number | null {
  const match = /^btime\s+(\d+)\s*$/m.exec(procStat);
  return match ? Number(match[1]) : null;
}

export interface RebootCandidate {
  name: string;
  version: string;
  arch: string;
  /** rpm INSTALLTIME, seconds since the epoch. */
  installTime: number;
  /** core: a CORE_REBOOT_PACKAGES name (or one listed in etc/dnf/plugins/needs-restarting.d); reboot_suggested: its advisory says so. */
  reason: 'core' | 'reboot_suggested';
}

/** needs-restarting -r: a core or reboot-suggested package installed after the last boot. */
export function rebootPendingFrom(candidates: readonly RebootCandidate[], bootTime: number | null): boolean {
  if (bootTime === null) return false;
  return candidates.some((c) => c.installTime > bootTime);
}

/**
 * dnf's own error lines in an install's output (stdout and stderr together), without the
 * progress table, and without the noise of a repository that could not be refreshed (that is
 * an assessment's business, and the install went on without it):
 * `Error: Transaction failed`, `Error in PREIN scriptlet in rpm package X`, rpm's
 * `error: lua script failed: ...`, `warning: %post(X) scriptlet failed, exit status 1`,
 * depsolve problems (the indented lines after `Error:`), `No match for argument: X`.
 */
export function dnfErrorLines(output: string): string[] {
  const lines = output.split('\n');
  const picked: string[] = [];
  let inError = false;
  for (const raw of lines) {
    const line = raw.replace(/\s+$/, '');
    if (/^Error: Failed to download metadata for repo /.test(line) || /^Errors during downloading metadata for repository /.test(line)) {
      inError = false;
      continue;
    }
    if (
      /^Error:/.test(line) ||
      /^error:/.test(line) ||
      /^RPM: error:/.test(line) ||
      /^Error in \S+ scriptlet in rpm package /.test(line) ||
      /^Error unpacking rpm package /.test(line) ||
      /^warning: %\S+\(.*\) scriptlet failed/.test(line) ||
      /^No match for argument: /.test(line) ||
      /^Problem( \d+)?: /.test(line.trim()) ||
      /^Traceback \(most recent call last\)/.test(line)
    ) {
      picked.push(line.trim());
      inError = true;
      continue;
    }
    if (inError && /^\s+\S/.test(line) && !/^\s+(Verifying|Running scriptlet|Preparing|Installing|Upgrading|Cleanup|Erasing)\s*:/.test(line)) {
      picked.push(line.trim());
      continue;
    }
    inError = false;
  }
  return [...new Set(picked)];
}

/** A scriptlet of the transaction failed (dnf still exits 0 when it is %post or later: the package is installed). */
export function scriptletErrorLines(output: string): string[] {
  return dnfErrorLines(output).filter((l) => /scriptlet/i.test(l) || /^error: lua script failed/.test(l));
}

/** dnf's exit_on_lock (200, for its own locks) or rpm's transaction lock held by another rpm process. */
export function isLockedOutput(exitCode: number | null, output: string): boolean {
  if (exitCode === 200) return true;
  return /can't create transaction lock on/.test(output) || /already locked by \d+/.test(output) || /Another app is currently holding the yum lock/.test(output);
}

/** Turns what the helper (or yum's text) found about one update into the agent's PendingUpdate. */
export function toPendingUpdate(raw: {
  name: string;
  installedVersion: string | null;
  availableVersion: string;
  arch: string | null;
  repository: string | null;
  rebootSuggested: boolean;
  advisories: readonly AdvisoryFacts[];
}): PendingUpdate {
  const { classification, severity } = classifyAdvisories(raw.advisories);
  const issuedAt = newestAdvisoryDate(raw.advisories.map((a) => a.issued));
  return {
    name: raw.name,
    installedVersion: raw.installedVersion,
    availableVersion: raw.availableVersion,
    arch: raw.arch,
    classification,
    severity,
    advisoryIds: [...new Set(raw.advisories.map((a) => a.id))].sort(),
    cveIds: [...new Set(raw.advisories.flatMap((a) => a.cves))].sort(),
    rebootSuggested: raw.rebootSuggested || CORE_REBOOT_PACKAGES.includes(raw.name),
    repository: raw.repository,
    ...(issuedAt ? { advisoryIssuedAt: issuedAt } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The helper's result (one JSON document, see helper.py)

function invalid(what: string, output: unknown): BackendError {
  return new BackendError('UNPARSEABLE_OUTPUT', `dnf (Python API): unexpected ${what}`, { output: JSON.stringify(output) });
}

/** The helper's `rebootCandidates` (helper.py), checked. */
export function readRebootCandidates(value: unknown): RebootCandidate[] {
  if (!Array.isArray(value)) throw invalid('reboot candidates', value);
  return value.map((c: Record<string, unknown>) => {
    if (typeof c.name !== 'string' || typeof c.installTime !== 'number') throw invalid('reboot candidate', c);
    return {
      name: c.name,
      version: String(c.version),
      arch: String(c.arch),
      installTime: c.installTime,
      reason: c.reason === 'reboot_suggested' ? 'reboot_suggested' : 'core',
    };
  });
}

/** The helper's `updates` (helper.py), checked, as the agent's pending updates. */
export function readUpdates(value: unknown): PendingUpdate[] {
  if (!Array.isArray(value)) throw invalid('update list', value);
  return value.map((u: Record<string, unknown>) => {
    if (typeof u.name !== 'string' || typeof u.availableVersion !== 'string' || !Array.isArray(u.advisories)) throw invalid('update', u);
    return toPendingUpdate({
      name: u.name,
      installedVersion: typeof u.installedVersion === 'string' ? u.installedVersion : null,
      availableVersion: u.availableVersion,
      arch: typeof u.arch === 'string' ? u.arch : null,
      repository: typeof u.repository === 'string' ? u.repository : null,
      rebootSuggested: u.rebootSuggested === true,
      advisories: (u.advisories as Array<Record<string, unknown>>).map((a) => ({
        id: String(a.id),
        type: String(a.type),
        severity: typeof a.severity === 'string' ? a.severity : null,
        cves: Array.isArray(a.cves) ? a.cves.map(String) : [],
        issued: typeof a.issued === 'string' ? a.issued : null,
      })),
    });
  });
}

/** The helper's `repositoryProblems` (helper.py), checked. */
export function readProblems(value: unknown): RepositoryProblem[] {
  if (!Array.isArray(value)) throw invalid('repository problems', value);
  return value.map((p: Record<string, unknown>) => ({ repository: String(p.repository), message: String(p.message) }));
}
