import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { exec, type ExecResult } from '../exec.js';
import { resolveInRoot } from './root.js';
import { BackendError, type Severity } from './types.js';

/*
 * rpm, for the rpm-based backends (dnf, yum, zypper): its version order (rpmvercmp, checked against
 * rpm's own vercmp in the tests), package names as the tools print them, and what rpm's database
 * says about the machine (installed editions, install times, whether it changed).
 */

// ---------------------------------------------------------------------------------------------
// Versions and names

/** rpmvercmp: compares one version (or release) string the way rpm does. */
export function rpmVersionCompare(a: string, b: string): number {
  if (a === b) return 0;
  let i = 0;
  let j = 0;
  const isAlnum = (c: string | undefined) => c !== undefined && /[A-Za-z0-9]/.test(c);
  while (i < a.length || j < b.length) {
    while (i < a.length && !isAlnum(a[i]) && a[i] !== '~' && a[i] !== '^') i++;
    while (j < b.length && !isAlnum(b[j]) && b[j] !== '~' && b[j] !== '^') j++;
    // Tilde sorts before everything, even the end of the string.
    if (a[i] === '~' || b[j] === '~') {
      if (a[i] !== '~') return 1;
      if (b[j] !== '~') return -1;
      i++;
      j++;
      continue;
    }
    // Caret sorts after the end of the string but before anything else.
    if (a[i] === '^' || b[j] === '^') {
      if (i >= a.length) return -1;
      if (j >= b.length) return 1;
      if (a[i] !== '^') return 1;
      if (b[j] !== '^') return -1;
      i++;
      j++;
      continue;
    }
    if (i >= a.length || j >= b.length) break;
    const numeric = /[0-9]/.test(a[i]!);
    const segment = numeric ? /^[0-9]+/ : /^[A-Za-z]+/;
    const sa = segment.exec(a.slice(i))?.[0] ?? '';
    const sb = segment.exec(b.slice(j))?.[0] ?? '';
    // Segments of different kinds: numeric is newer.
    if (!sb) return numeric ? 1 : -1;
    i += sa.length;
    j += sb.length;
    if (numeric) {
      const na = sa.replace(/^0+/, '');
      const nb = sb.replace(/^0+/, '');
      if (na.length !== nb.length) return na.length > nb.length ? 1 : -1;
      if (na !== nb) return na > nb ? 1 : -1;
    } else if (sa !== sb) {
      return sa > sb ? 1 : -1;
    }
  }
  if (i >= a.length && j >= b.length) return 0;
  return i >= a.length ? -1 : 1;
}

/**
 * Compares `[epoch:]version[-release]` editions the way rpm does (rpmvercmp per part); a missing
 * release matches any (as rpm ranges do). dnf, yum and zypper all print editions in this form.
 */
export function compareEditions(a: string, b: string): number {
  const split = (e: string) => {
    const colon = e.indexOf(':');
    const epoch = colon > 0 && /^\d+$/.test(e.slice(0, colon)) ? Number(e.slice(0, colon)) : 0;
    const rest = colon > 0 ? e.slice(colon + 1) : e;
    const dash = rest.lastIndexOf('-');
    return dash === -1 ? { epoch, version: rest, release: null } : { epoch, version: rest.slice(0, dash), release: rest.slice(dash + 1) };
  };
  const ea = split(a);
  const eb = split(b);
  if (ea.epoch !== eb.epoch) return ea.epoch > eb.epoch ? 1 : -1;
  const byVersion = rpmVersionCompare(ea.version, eb.version);
  if (byVersion !== 0 || ea.release === null || eb.release === null) return byVersion;
  return rpmVersionCompare(ea.release, eb.release);
}

/** name-[epoch:]version-release.arch → parts (the name may contain dashes; version and release may not). */
export function splitNevra(nevra: string): { name: string; evr: string; arch: string } | null {
  const match = /^(.+)-((?:\d+:)?[^-:]+-[^-]+)\.([^.]+)$/.exec(nevra.trim());
  return match ? { name: match[1]!, evr: match[2]!, arch: match[3]! } : null;
}

// ---------------------------------------------------------------------------------------------
// rpm's database

// An edition as dnf and zypper spell it: [epoch:]version-release.
const EDITION_FORMAT = '%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}';

function rootArgs(root: string): string[] {
  const r = path.resolve(root);
  return r === '/' ? [] : ['--root', r];
}

async function runRpm(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs?: number): Promise<ExecResult> {
  try {
    return await exec('rpm', args, { env, timeoutMs });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new BackendError('NOT_INSTALLED', 'rpm is not installed', { command: `rpm ${args.join(' ')}` });
    throw new BackendError('NOT_INSTALLED', `cannot start rpm: ${(error as Error).message}`, { command: `rpm ${args.join(' ')}` });
  }
}

/** The installed editions of a package, in rpm's order (an installonly package such as the kernel has several); none when it is not installed. */
export async function installedEditions(root: string, name: string, env: NodeJS.ProcessEnv, options: { timeoutMs?: number } = {}): Promise<Array<{ arch: string; edition: string }>> {
  const result = await runRpm([...rootArgs(root), '-q', '--qf', `%{ARCH} ${EDITION_FORMAT}\\n`, name], env, options.timeoutMs);
  if (result.exitCode !== 0) return []; // "package X is not installed"
  return result.stdout
    .split('\n')
    .map((l) => /^(\S+) (\S+)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ arch: m[1]!, edition: m[2]! }));
}

/** Every installed package with its install time (rpm INSTALLTIME, seconds since the epoch). */
export async function installedPackages(root: string, env: NodeJS.ProcessEnv): Promise<Array<{ name: string; arch: string; evr: string; installTime: number }>> {
  const result = await runRpm([...rootArgs(root), '-qa', '--qf', `%{NAME}\\t%{ARCH}\\t${EDITION_FORMAT}\\t%{INSTALLTIME}\\n`], env);
  if (result.exitCode !== 0) {
    throw new BackendError('COMMAND_FAILED', `rpm -qa failed with exit code ${result.exitCode}`, { exitCode: result.exitCode, output: result.stderr });
  }
  return result.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const [name, arch, evr, installTime] = line.split('\t');
      if (!name || !arch || !evr || !installTime) throw new BackendError('UNPARSEABLE_OUTPUT', `rpm -qa: cannot read "${line}"`, { output: result.stdout });
      return { name, arch, evr, installTime: Number(installTime) };
    });
}

/** Where rpm keeps its database: SUSE and newer Fedora moved it to usr/lib/sysimage/rpm (var/lib/rpm links there). */
const RPM_DATABASE_DIRS = ['var/lib/rpm', 'usr/lib/sysimage/rpm'];

/**
 * Changes whenever rpm's database is written: size and mtime of its files (rpmdb.sqlite on EL9 and
 * SUSE, Berkeley DB files on EL7/8). Left out: the lock file and the files rpm rewrites on every
 * read (BDB's __db.00N, SQLite's -shm), which would make every read look like a change.
 */
export async function rpmDatabaseFingerprint(root: string): Promise<string> {
  const seen = new Set<string>();
  const entries: string[] = [];
  for (const dir of RPM_DATABASE_DIRS) {
    const real = await resolveInRoot(root, dir);
    if (seen.has(real)) continue;
    let names: string[];
    try {
      names = await fs.readdir(real);
    } catch {
      continue;
    }
    seen.add(real);
    for (const name of names) {
      if (name.startsWith('.') || name.startsWith('__db') || name.endsWith('-shm')) continue;
      const info = await fs.stat(path.join(real, name)).catch(() => null);
      if (info?.isFile()) entries.push(`${name}:${info.size}:${info.mtimeMs}`);
    }
  }
  if (seen.size === 0) throw new BackendError('NOT_INSTALLED', `no rpm database in ${RPM_DATABASE_DIRS.map((d) => path.join(root, d)).join(' or ')}`);
  return createHash('sha256').update(entries.sort().join('\n')).digest('hex').slice(0, 32);
}

// ---------------------------------------------------------------------------------------------
// Advisory severities (dnf's updateinfo and zypper's patches)

/**
 * Red Hat, Rocky, Alma and Oracle: Critical/Important/Moderate/Low. Fedora (Bodhi):
 * urgent/high/medium/low. SUSE (lowercase) and Amazon Linux use the Red Hat words. "unspecified",
 * "None" and empty mean no severity.
 */
export function normaliseSeverity(raw: string | null | undefined): Severity | null {
  switch ((raw ?? '').trim().toLowerCase()) {
    case 'critical':
    case 'urgent':
      return 'CRITICAL';
    case 'important':
    case 'high':
      return 'IMPORTANT';
    case 'moderate':
    case 'medium':
      return 'MODERATE';
    case 'low':
      return 'LOW';
    default:
      return null;
  }
}
