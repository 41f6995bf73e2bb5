import { createHash } from 'node:crypto';
import { access, mkdir, readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { exec, type ExecResult } from '../exec.js';
import { rpmVersionCompare } from './rpm.js';
import {
  BackendError,
  type AssessmentResult,
  type BackendContext,
  type Classification,
  type PackageBackend,
  type PendingUpdate,
  type RepositoryProblem,
  type Severity,
  type UpdateOutcome,
} from './types.js';

/*
 * SUSE (SLES, openSUSE) through zypper. Everything is read from zypper's own XML (`-x`), except the
 * packages a patch updates: no XML form of zypper carries them, so they come from the patch's
 * conflicts (`zypper info -t patch --conflicts`: "pkg < fixed-edition", as libsolv derives them from
 * the updateinfo) in the text block of that one command.
 */

// ---------------------------------------------------------------------------------------------
// A small XML reader for zypper's `-x` stream: elements, attributes, text, the five predefined
// entities and character references. Enough for zypper's regular output; anything malformed throws.

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: Array<XmlElement | string>;
}

export class XmlSyntaxError extends Error {
  override name = 'XmlSyntaxError';
}

const NAMED_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

export function decodeXmlEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (whole, ref: string) => {
    if (ref.startsWith('#x') || ref.startsWith('#')) {
      const code = ref.startsWith('#x') ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return NAMED_ENTITIES[ref] ?? whole;
  });
}

/** Parses a whole document; returns a synthetic `#document` element holding the top-level nodes. */
export function parseXml(text: string): XmlElement {
  const document: XmlElement = { name: '#document', attributes: {}, children: [] };
  const stack: XmlElement[] = [document];
  const top = () => stack[stack.length - 1]!;
  const addText = (raw: string) => {
    if (!raw) return;
    const siblings = top().children;
    const last = siblings[siblings.length - 1];
    if (typeof last === 'string') siblings[siblings.length - 1] = last + raw;
    else siblings.push(raw);
  };
  const fail = (message: string, at: number): never => {
    throw new XmlSyntaxError(`${message} at offset ${at}`);
  };
  const skipTo = (token: string, from: number) => {
    const end = text.indexOf(token, from);
    if (end === -1) fail(`unterminated markup (expected ${token})`, from);
    return end + token.length;
  };

  let i = 0;
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    if (lt === -1) {
      addText(decodeXmlEntities(text.slice(i)));
      break;
    }
    if (lt > i) addText(decodeXmlEntities(text.slice(i, lt)));
    if (text.startsWith('<?', lt)) {
      i = skipTo('?>', lt);
    } else if (text.startsWith('<!--', lt)) {
      i = skipTo('-->', lt);
    } else if (text.startsWith('<![CDATA[', lt)) {
      const end = skipTo(']]>', lt);
      addText(text.slice(lt + 9, end - 3));
      i = end;
    } else if (text.startsWith('<!', lt)) {
      i = skipTo('>', lt);
    } else if (text.startsWith('</', lt)) {
      const end = skipTo('>', lt);
      const name = text.slice(lt + 2, end - 1).trim();
      if (stack.length === 1 || top().name !== name) fail(`unexpected </${name}>`, lt);
      stack.pop();
      i = end;
    } else {
      const nameMatch = /^[^\s/>]+/.exec(text.slice(lt + 1, lt + 257));
      if (!nameMatch) fail('element without a name', lt);
      const element: XmlElement = { name: nameMatch![0], attributes: {}, children: [] };
      let j = lt + 1 + element.name.length;
      for (;;) {
        while (j < text.length && /\s/.test(text[j]!)) j++;
        if (j >= text.length) fail(`unterminated <${element.name}>`, lt);
        if (text.startsWith('/>', j)) {
          top().children.push(element);
          j += 2;
          break;
        }
        if (text[j] === '>') {
          top().children.push(element);
          stack.push(element);
          j += 1;
          break;
        }
        const attribute = /^([^\s=/>]+)\s*=\s*(["'])/.exec(text.slice(j, j + 512));
        if (!attribute) fail(`malformed attribute in <${element.name}>`, j);
        const valueStart = j + attribute![0].length;
        const valueEnd = text.indexOf(attribute![2]!, valueStart);
        if (valueEnd === -1) fail(`unterminated attribute value in <${element.name}>`, j);
        element.attributes[attribute![1]!] = decodeXmlEntities(text.slice(valueStart, valueEnd));
        j = valueEnd + 1;
      }
      i = j;
    }
  }
  if (stack.length > 1) fail(`unclosed <${top().name}>`, text.length);
  return document;
}

/** Child elements, optionally only those with this name. */
export function childElements(element: XmlElement, name?: string): XmlElement[] {
  return element.children.filter((c): c is XmlElement => typeof c !== 'string' && (name === undefined || c.name === name));
}

/** Every element below this one (depth first, document order) with this name. */
export function descendants(element: XmlElement, name: string): XmlElement[] {
  const found: XmlElement[] = [];
  const visit = (e: XmlElement) => {
    for (const child of childElements(e)) {
      if (child.name === name) found.push(child);
      visit(child);
    }
  };
  visit(element);
  return found;
}

export function textContent(element: XmlElement): string {
  return element.children.map((c) => (typeof c === 'string' ? c : textContent(c))).join('');
}

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

/** Compares `[epoch:]version[-release]` editions; a missing release matches any (as rpm ranges do). */
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

// ---------------------------------------------------------------------------------------------
// From zypper's lists to pending updates.

const SEVERITIES: readonly Severity[] = ['CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW'];

/** SUSE severities are lowercase critical/important/moderate/low; "unspecified" and empty mean none. */
export function normaliseSeverity(severity: string): Severity | null {
  const upper = severity.trim().toUpperCase();
  return (SEVERITIES as readonly string[]).includes(upper) ? (upper as Severity) : null;
}

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

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** libzypp marks a needed reboot in <root>/run/reboot-needed (installhint(reboot-needed), reboot_suggested patches). */
const rebootFlag = (ctx: BackendContext) => exists(path.join(ctx.root, 'run', 'reboot-needed'));

async function rebootPending(ctx: BackendContext): Promise<boolean> {
  const run = await runZypper(ctx, ['needs-rebooting'], { timeoutMs: QUERY_TIMEOUT_MS });
  // 102: reboot needed. zypper older than needs-rebooting fails with a usage error: the flag file says it.
  return run.exitCode === EXIT.INF_REBOOT_NEEDED || (await rebootFlag(ctx));
}

/** The installed editions of a package, read from the rpm database (as zypper spells them: [epoch:]version-release). */
async function installedEditions(ctx: BackendContext, name: string): Promise<Array<{ arch: string; edition: string }>> {
  const args = [...(ctx.root === '/' ? [] : ['--root', ctx.root]), '-q', '--qf', '%{ARCH} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n', name];
  let result: ExecResult;
  try {
    result = await exec('rpm', args, { env: ctx.env, timeoutMs: QUERY_TIMEOUT_MS });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new BackendError('NOT_INSTALLED', 'rpm is not installed', { command: `rpm ${args.join(' ')}` });
    throw error;
  }
  if (result.exitCode !== 0) return []; // "package X is not installed"
  return result.stdout
    .split('\n')
    .map((l) => /^(\S+) (\S+)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ arch: m[1]!, edition: m[2]! }));
}

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

/** Where rpm keeps its database: SUSE moved it to usr/lib/sysimage/rpm (var/lib/rpm links there). */
const RPM_DATABASE_DIRS = ['var/lib/rpm', 'usr/lib/sysimage/rpm'];

async function databaseFingerprint(ctx: BackendContext): Promise<string> {
  const seen = new Set<string>();
  const entries: string[] = [];
  for (const dir of RPM_DATABASE_DIRS) {
    let real: string;
    try {
      real = await realpath(path.join(ctx.root, dir));
    } catch {
      continue;
    }
    if (seen.has(real)) continue;
    seen.add(real);
    for (const entry of await readdir(real, { withFileTypes: true })) {
      // Readers touch SQLite's shared-memory index and the lock file: only writes may change the fingerprint.
      if (!entry.isFile() || entry.name.endsWith('-shm') || entry.name === '.rpm.lock' || entry.name.startsWith('__db')) continue;
      const info = await stat(path.join(real, entry.name));
      entries.push(`${entry.name}:${info.size}:${info.mtimeMs}`);
    }
  }
  return createHash('sha256').update(entries.sort().join('\n')).digest('hex').slice(0, 32);
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
  databaseFingerprint,
  installedState,
};
