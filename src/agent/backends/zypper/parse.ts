import { SEVERITIES } from '../../../domain/vocabulary.js';
import { compareEditions, normaliseSeverity } from '../rpm.js';
import type { Classification, PendingUpdate, RepositoryProblem, Severity } from '../types.js';
import { childElements, descendants, parseXml, textContent, XmlSyntaxError, type XmlElement } from '../xml.js';

/*
 * What zypper says, read as data: plain functions (unit-tested in test/agent/zypper.test.ts on
 * output of the real zypper). Everything is read from zypper's own XML (`-x`), except the packages a
 * patch updates: no XML form of zypper carries them, so they come from the patch's conflicts
 * (`zypper info -t patch --conflicts`: "pkg < fixed-edition", as libsolv derives them from the
 * updateinfo) in the text block of that one command. Running zypper is run.ts.
 */

// ---------------------------------------------------------------------------------------------
// What zypper's XML says, as plain data.

export interface ZypperMessage {
  type: string;
  text: string;
}

export interface ZypperRepository {
  alias: string;
  name: string;
  url: string | null;
  enabled: boolean;
}

/** `zypper -x lu`: one installed package and its best update. */
export interface ZypperPackageUpdate {
  name: string;
  edition: string;
  editionOld: string | null;
  arch: string | null;
  repository: string | null;
}

/** `zypper -x lp`: one applicable patch. */
export interface ZypperPatch {
  name: string;
  status: string;
  category: string;
  severity: string;
  /** zypper's `restart` attribute is the patch's reboot_suggested flag (`pkgmanager` is restart_suggested). */
  rebootSuggested: boolean;
  interactive: boolean;
  repository: string | null;
  cveIds: string[];
  /** `<issue-date time_t>`, ISO 8601 UTC; null when zypper printed none. */
  issuedAt: string | null;
}

/** A package a patch updates: the patch conflicts with `name < edition` (name may carry `.arch`). */
export interface PatchPackage {
  name: string;
  edition: string;
}

export interface ZypperSolvable {
  kind: string;
  name: string;
  edition: string;
  editionOld: string | null;
  arch: string | null;
  status: string | null;
  repository: string | null;
}

export interface ZypperInstallSummary {
  upgrade: ZypperSolvable[];
  install: ZypperSolvable[];
}

function parseStream(xml: string): XmlElement {
  const document = parseXml(xml);
  const stream = childElements(document, 'stream')[0];
  if (!stream) throw new XmlSyntaxError('no <stream> element in zypper output');
  return stream;
}

export function parseMessages(xml: string): ZypperMessage[] {
  return descendants(parseStream(xml), 'message').map((m) => ({ type: m.attributes.type ?? 'info', text: textContent(m).trim() }));
}

export function parseRepositoryList(xml: string): ZypperRepository[] {
  return descendants(parseStream(xml), 'repo').map((r) => ({
    alias: r.attributes.alias ?? '',
    name: r.attributes.name ?? r.attributes.alias ?? '',
    url: childElements(r, 'url').map(textContent)[0]?.trim() ?? null,
    enabled: r.attributes.enabled !== '0',
  }));
}

function updateList(xml: string): XmlElement[] {
  const stream = parseStream(xml);
  const status = descendants(stream, 'update-status')[0];
  if (!status) throw new XmlSyntaxError('no <update-status> element in zypper output');
  return descendants(status, 'update');
}

const sourceAlias = (update: XmlElement) => childElements(update, 'source')[0]?.attributes.alias ?? null;

export function parsePackageUpdates(xml: string): ZypperPackageUpdate[] {
  return updateList(xml)
    .filter((u) => (u.attributes.kind ?? 'package') === 'package')
    .map((u) => ({
      name: u.attributes.name ?? '',
      edition: u.attributes.edition ?? '',
      editionOld: u.attributes['edition-old'] || null,
      arch: u.attributes.arch || null,
      repository: sourceAlias(u),
    }))
    .filter((u) => u.name && u.edition);
}

/** zypper's `time_t` attribute (seconds since the epoch; 0 when the patch has no date) as ISO 8601. */
function issueDate(timeT: string | undefined): string | null {
  if (!timeT || !/^\d+$/.test(timeT) || Number(timeT) === 0) return null;
  return new Date(Number(timeT) * 1000).toISOString();
}

export function parsePatches(xml: string): ZypperPatch[] {
  return updateList(xml)
    .filter((u) => u.attributes.kind === 'patch' && u.attributes.name)
    .map((u) => ({
      name: u.attributes.name!,
      status: u.attributes.status ?? '',
      category: u.attributes.category ?? '',
      severity: u.attributes.severity ?? '',
      rebootSuggested: u.attributes.restart === 'true',
      interactive: u.attributes.interactive === 'true',
      repository: sourceAlias(u),
      cveIds: descendants(u, 'issue')
        .filter((issue) => issue.attributes.type === 'cve' && issue.attributes.id)
        .map((issue) => issue.attributes.id!),
      issuedAt: issueDate(childElements(u, 'issue-date')[0]?.attributes.time_t),
    }));
}

const solvableOf = (s: XmlElement): ZypperSolvable => ({
  kind: s.attributes.type ?? s.attributes.kind ?? 'package',
  name: s.attributes.name ?? '',
  edition: s.attributes.edition ?? '',
  editionOld: s.attributes['edition-old'] || null,
  arch: s.attributes.arch || null,
  status: s.attributes.status ?? null,
  repository: s.attributes.repository ?? null,
});

/** The `<install-summary>` of `zypper -x up --dry-run` (and the like); null when zypper printed none. */
export function parseInstallSummary(xml: string): ZypperInstallSummary | null {
  const summary = descendants(parseStream(xml), 'install-summary')[0];
  if (!summary) return null;
  const section = (name: string) => childElements(summary, name).flatMap((s) => childElements(s, 'solvable').map(solvableOf));
  return { upgrade: section('to-upgrade'), install: section('to-install') };
}

/** `zypper -x search --details`: every matching solvable (an empty list when nothing matched). */
export function parseSearchResult(xml: string): ZypperSolvable[] {
  return descendants(parseStream(xml), 'solvable').map(solvableOf);
}

/**
 * `zypper -x info -t patch --conflicts ID...`: zypper prints each patch as a text block inside a
 * `<message>`; its Conflicts are the packages it updates (`name[.arch] < edition`), either on the
 * line itself or, after `[N]`, one per indented line.
 */
export function parsePatchPackages(xml: string): Map<string, PatchPackage[]> {
  const packages = new Map<string, PatchPackage[]>();
  for (const message of parseMessages(xml)) {
    const lines = message.text.split('\n');
    const name = lines.map((l) => /^Name\s*:\s*(\S.*)$/.exec(l)?.[1]?.trim()).find(Boolean);
    const at = lines.findIndex((l) => /^Conflicts\s*:/.test(l));
    if (!name || at === -1) continue;
    const first = lines[at]!.replace(/^Conflicts\s*:\s*/, '').trim();
    const count = /^\[(\d+)\]$/.exec(first);
    const deps = count ? lines.slice(at + 1, at + 1 + Number(count[1])).map((l) => l.trim()) : [first];
    const list = packages.get(name) ?? [];
    for (const dep of deps) {
      const match = /^(\S+)\s*<\s*(\S+)$/.exec(dep);
      if (match && !list.some((p) => p.name === match[1] && p.edition === match[2])) list.push({ name: match[1]!, edition: match[2]! });
    }
    packages.set(name, list);
  }
  return packages;
}

/**
 * Which repositories failed, from zypper's error messages (refresh has no structured form for it):
 * a message belongs to a repository when it carries libzypp's `[alias|url]`, names the repository in
 * quotes ('alias' or 'name', as zypper's label is either) or contains its URL. "Skipping repository
 * 'X' because of the above error." closes the group; the generic closing line belongs to none.
 */
export function repositoryProblemsFrom(messages: readonly ZypperMessage[], repositories: readonly ZypperRepository[]): RepositoryProblem[] {
  const byRepository = new Map<string, string[]>();
  const trimUrl = (u: string) => u.replace(/\/+$/, '');
  const repositoryOf = (text: string): ZypperRepository | undefined => {
    const bracket = /\[([^|\]\s]+)\|[^\]]*\]/.exec(text);
    if (bracket) return repositories.find((r) => r.alias === bracket[1]) ?? { alias: bracket[1]!, name: bracket[1]!, url: null, enabled: true };
    for (const quoted of text.matchAll(/'([^']+)'/g)) {
      const label = quoted[1]!;
      const repository = repositories.find((r) => r.alias === label) ?? repositories.find((r) => r.name === label);
      if (repository) return repository;
    }
    return repositories.find((r) => r.url && text.includes(trimUrl(r.url)));
  };
  for (const message of messages) {
    if (message.type !== 'error' && !/^Skipping repository /.test(message.text)) continue;
    const repository = repositoryOf(message.text);
    if (!repository) continue;
    const texts = byRepository.get(repository.alias) ?? [];
    texts.push(message.text);
    byRepository.set(repository.alias, texts);
  }
  return [...byRepository].map(([alias, texts]) => {
    const reasons = texts.filter((t) => !/^Skipping repository /.test(t));
    let message = [...new Set(reasons.length ? reasons : texts)].join('\n');
    const url = repositories.find((r) => r.alias === alias)?.url;
    if (url && !message.includes(trimUrl(url))) message = `${message}\n(${url})`;
    return { repository: alias, message };
  });
}

// ---------------------------------------------------------------------------------------------
// From zypper's lists to pending updates.


export interface AssessmentInput {
  packageUpdates: readonly ZypperPackageUpdate[];
  /** Packages an update pulls in new (the `to-install` of `up --dry-run`), with their repository where known. */
  newPackages: readonly ZypperSolvable[];
  patches: readonly ZypperPatch[];
  patchPackages: ReadonlyMap<string, readonly PatchPackage[]>;
  /** Available packages that provide installhint(reboot-needed). */
  rebootHintPackages: readonly ZypperSolvable[];
}

/** Patches that no longer apply (applied, not-needed) say nothing about pending updates. */
const APPLICABLE_PATCH = new Set(['needed', 'optional', 'unwanted', 'locked']);

export function combineAssessment(input: AssessmentInput): PendingUpdate[] {
  const hinted = (name: string, edition: string, arch: string | null) =>
    input.rebootHintPackages.some((s) => s.name === name && s.edition === edition && (!arch || !s.arch || s.arch === arch));
  const patchesFor = (u: ZypperPackageUpdate) =>
    input.patches.filter(
      (patch) =>
        APPLICABLE_PATCH.has(patch.status) &&
        (input.patchPackages.get(patch.name) ?? []).some(
          (p) =>
            (p.name === u.name || (u.arch !== null && p.name === `${u.name}.${u.arch}`)) &&
            // The patch fixes something the installed edition lacks and this update reaches the fix.
            u.editionOld !== null &&
            compareEditions(u.editionOld, p.edition) < 0 &&
            compareEditions(p.edition, u.edition) <= 0,
        ),
    );

  const updates: PendingUpdate[] = input.packageUpdates.map((u) => {
    const patches = patchesFor(u);
    const security = patches.filter((p) => p.category === 'security');
    const severities = patches.map((p) => normaliseSeverity(p.severity)).filter((s): s is Severity => s !== null);
    const severity = SEVERITIES.find((s) => severities.includes(s)) ?? null;
    const issuedAt = patches.map((p) => p.issuedAt).filter((d): d is string => d !== null).sort().at(-1) ?? null;
    const classification: Classification = security.some((p) => normaliseSeverity(p.severity) === 'CRITICAL')
      ? 'CRITICAL'
      : security.length > 0
        ? 'SECURITY'
        : 'OTHER';
    return {
      name: u.name,
      installedVersion: u.editionOld,
      availableVersion: u.edition,
      arch: u.arch,
      classification,
      severity,
      advisoryIds: [...new Set(patches.map((p) => p.name))].sort(),
      cveIds: [...new Set(patches.flatMap((p) => p.cveIds))].sort(),
      rebootSuggested: patches.some((p) => p.rebootSuggested) || hinted(u.name, u.edition, u.arch),
      repository: u.repository,
      ...(issuedAt ? { advisoryIssuedAt: issuedAt } : {}),
    };
  });
  for (const n of input.newPackages) {
    if (n.kind !== 'package' || updates.some((u) => u.name === n.name && (u.arch === n.arch || !u.arch || !n.arch))) continue;
    updates.push({
      name: n.name,
      installedVersion: null,
      availableVersion: n.edition,
      arch: n.arch,
      classification: 'OTHER',
      severity: null,
      advisoryIds: [],
      cveIds: [],
      rebootSuggested: hinted(n.name, n.edition, n.arch),
      repository: n.repository,
    });
  }
  return updates.sort((a, b) => a.name.localeCompare(b.name) || (a.arch ?? '').localeCompare(b.arch ?? ''));
}

// ---------------------------------------------------------------------------------------------
// Reading an install's human output.

/**
 * Errors rpm printed under "Additional rpm output:" although zypper exited 0 (a failing `%post`:
 * the package is installed but its scriptlet failed). rpm's error lines and "scriptlet failed"
 * warnings count; other lines there (Debian's rpm warns on every run) do not.
 */
export function scriptletErrors(stdout: string): string[] {
  const errors: string[] = [];
  let inRpmOutput = false;
  for (const line of stdout.split('\n')) {
    if (/^Additional rpm output:/.test(line)) {
      inRpmOutput = true;
      continue;
    }
    if (!inRpmOutput) continue;
    if (line.trim() === '' || /^\(\d+\/\d+\) /.test(line)) {
      inRpmOutput = false;
      continue;
    }
    if (/^error: /.test(line) || /scriptlet failed/.test(line)) errors.push(line.trim());
  }
  return errors;
}

/**
 * zypper's own error text for a failed install: its stderr (where it writes errors), from the failed
 * package on when the transaction failed (repository errors printed before it are reported by the
 * assessment); for solver problems, which go to stdout, the "Problem:" block up to the solutions
 * prompt; else the last lines.
 */
export function installErrorText(stdout: string, stderr: string): string {
  let errorLines = stderr
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '');
  const commitError = errorLines.findIndex((l) => /^(Installation|Removal) of \S+ failed:/.test(l));
  if (commitError > 0) errorLines = errorLines.slice(commitError);
  if (errorLines.length) return errorLines.join('\n');
  const lines = stdout.split('\n').map((l) => l.trimEnd());
  const problem = lines.findIndex((l) => /^Problem: /.test(l));
  if (problem !== -1) {
    const end = lines.findIndex((l, k) => k > problem && /^Choose from above solutions/.test(l));
    return lines
      .slice(problem, end === -1 ? undefined : end)
      .filter((l) => l.trim() !== '')
      .join('\n');
  }
  return lines
    .filter((l) => l.trim() !== '')
    .slice(-10)
    .join('\n');
}
