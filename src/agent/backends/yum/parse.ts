import { BackendError, type RepositoryProblem } from '../types.js';
import { splitNevra } from '../rpm.js';

/*
 * What yum prints, read as data: yum on EL7 has no API the agent can use (Python 2, no dnf), so its
 * text is read (unit-tested in test/agent/dnf.test.ts on output of dnf's yum-compatible command
 * line). Running yum is run.ts.
 */

export interface CheckUpdateLine {
  name: string;
  arch: string;
  version: string;
  repository: string;
}

/**
 * `yum check-update` / `dnf check-update` text: `name.arch  [epoch:]version-release  repo`, one per
 * update, wrapped onto the next line when the name is long; stops at "Obsoleting Packages". Throws
 * UNPARSEABLE_OUTPUT on a line it cannot read.
 */
export function parseCheckUpdate(stdout: string): CheckUpdateLine[] {
  const out: CheckUpdateLine[] = [];
  const tokens: string[] = [];
  for (const raw of stdout.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (/^Obsoleting Packages/i.test(line)) break;
    if (/^(Last metadata expiration check|Loaded plugins|Loading mirror speeds|Security: )/.test(line) || /^\*/.test(line)) continue;
    tokens.push(...line.split(/\s+/));
    while (tokens.length >= 3) {
      const [nameArch, version, repository] = tokens.splice(0, 3) as [string, string, string];
      const dot = nameArch.lastIndexOf('.');
      if (dot <= 0 || !/\d/.test(version) || !/-/.test(version)) {
        throw new BackendError('UNPARSEABLE_OUTPUT', `check-update: cannot read "${line}"`, { output: stdout });
      }
      out.push({ name: nameArch.slice(0, dot), arch: nameArch.slice(dot + 1), version, repository: repository.replace(/^@/, '') });
    }
  }
  if (tokens.length > 0) throw new BackendError('UNPARSEABLE_OUTPUT', `check-update: incomplete line "${tokens.join(' ')}"`, { output: stdout });
  return out;
}

export interface UpdateinfoListLine {
  /** Advisory id, or a CVE id with the `cves` filter. */
  id: string;
  type: string;
  severity: string | null;
  nevra: string;
}

/**
 * `updateinfo list` text: `DEMO-2025:0001 Critical/Sec.  demo-libssl-1.1-1.noarch`,
 * `DEMO-2025:0003 bugfix  demo-editor-1.1-1.noarch`. Lines of another shape (headers, yum 3's
 * "updateinfo list done") are skipped.
 */
export function parseUpdateinfoList(stdout: string): UpdateinfoListLine[] {
  const out: UpdateinfoListLine[] = [];
  for (const raw of stdout.split('\n')) {
    const parts = raw.trim().split(/\s+/);
    if (parts.length !== 3) continue;
    const [id, kind, nevra] = parts as [string, string, string];
    if (!splitNevra(nevra)) continue;
    const sec = /^(?:(\w+)\/)?Sec\.?$/i.exec(kind);
    if (sec) out.push({ id, type: 'security', severity: sec[1] ?? null, nevra });
    else if (/^(bugfix|enhancement|newpackage|unknown|security)$/i.test(kind)) out.push({ id, type: kind.toLowerCase(), severity: null, nevra });
  }
  return out;
}

/**
 * Repositories named in a refresh's complaints. dnf: `Error: Failed to download metadata for repo
 * 'ID': REASON`. yum 3 (EL7): `failure: repodata/repomd.xml from ID: [Errno 256] ...` and
 * `Cannot retrieve repository metadata (repomd.xml) for repository: ID`.
 */
export function parseRepositoryProblems(stderr: string): RepositoryProblem[] {
  const problems = new Map<string, string>();
  const details = new Map<string, string[]>();
  let detailsOf: string | null = null;
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    const header = /^Errors during downloading metadata for repository '([^']+)':$/.exec(line);
    if (header) {
      detailsOf = header[1]!;
      continue;
    }
    const detail = /^- (.*)$/.exec(line);
    if (detail && detailsOf) {
      details.set(detailsOf, [...(details.get(detailsOf) ?? []), detail[1]!]);
      continue;
    }
    detailsOf = null;
    const dnfStyle = /^Error: (Failed to download metadata for repo '([^']+)': .*)$/.exec(line);
    if (dnfStyle) {
      problems.set(dnfStyle[2]!, dnfStyle[1]!);
      continue;
    }
    const yumStyle = /^failure: \S+ from ([^:\s]+): .*$/.exec(line) ?? /^Cannot retrieve repository metadata \(repomd\.xml\) for repository: ([^.\s]+)/.exec(line);
    if (yumStyle && !problems.has(yumStyle[1]!)) problems.set(yumStyle[1]!, line);
  }
  return [...problems].map(([repository, message]) => ({
    repository,
    message: [message, ...(details.get(repository) ?? [])].join('; '),
  }));
}
