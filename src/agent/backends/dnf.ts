import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { exec, type ExecResult } from '../exec.js';
import { parseOsRelease } from '../facts.js';
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

/**
 * The RHEL family: dnf (RHEL/Rocky/Alma 8+, Fedora, Amazon Linux 2023) and yum (RHEL/CentOS 7).
 *
 * dnf: assessments go through dnf's own Python API (python3-dnf, run by the interpreter of the dnf
 * script itself), which is the only place dnf 4 gives advisories per package as data; installs go
 * through the dnf command, whose output is streamed to the job. dnf 4 has no machine-readable
 * output, so the only text we interpret is its error lines.
 *
 * yum (EL7): yum there runs on Python 2 with no dnf API, so the yum backend reads `yum check-update`
 * and `yum updateinfo list` text. It was only exercised here through dnf's own yum-compatible
 * command line (which is what `yum` is on EL8+), never against EL7's yum 3: see yumAssess.
 *
 * The whole machine is `ctx.root`; on '/' the commands are plain dnf/yum. For another root every
 * command carries --installroot, the root's own dnf.conf and repo folder, and a releasever from the
 * root's os-release, so nothing of the host's configuration, cache or database is used.
 */

// ---------------------------------------------------------------------------------------------
// Pure functions (unit-tested on output captured from the real tools)


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

/**
 * Red Hat, Rocky, Alma and Oracle: Critical/Important/Moderate/Low. Fedora (Bodhi):
 * urgent/high/medium/low. SUSE (lowercase) and Amazon Linux use the Red Hat words.
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

const severityRank: Record<Severity, number> = { CRITICAL: 4, IMPORTANT: 3, MODERATE: 2, LOW: 1 };

export interface AdvisoryFacts {
  id: string;
  /** updateinfo type: security, bugfix, enhancement, newpackage. */
  type: string;
  severity: string | null;
  cves: string[];
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

/** name-[epoch:]version-release.arch → parts (the name may contain dashes; version and release may not). */
export function splitNevra(nevra: string): { name: string; evr: string; arch: string } | null {
  const match = /^(.+)-((?:\d+:)?[^-:]+-[^-]+)\.([^.]+)$/.exec(nevra.trim());
  return match ? { name: match[1]!, evr: match[2]!, arch: match[3]! } : null;
}

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

/** Compares two [epoch:]version-release strings the way rpm does (rpmvercmp per part). */
export function compareEvr(a: string, b: string): number {
  const split = (evr: string) => {
    const colon = evr.indexOf(':');
    const epoch = colon >= 0 ? Number(evr.slice(0, colon)) || 0 : 0;
    const rest = colon >= 0 ? evr.slice(colon + 1) : evr;
    const dash = rest.lastIndexOf('-');
    return { epoch, version: dash >= 0 ? rest.slice(0, dash) : rest, release: dash >= 0 ? rest.slice(dash + 1) : '' };
  };
  const x = split(a);
  const y = split(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  return rpmVersionCompare(x.version, y.version) || rpmVersionCompare(x.release, y.release);
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
  };
}

// ---------------------------------------------------------------------------------------------
// The Python helper (dnf's API). Kept to Python 3.6 (RHEL 8's platform-python) and to the dnf 4
// API present since RHEL 8.2; a missing newer call degrades to less data, not to a failure.

const DNF_HELPER = String.raw`
import json, logging, os, sys

MARKER = '@@FLEETPATCH-DNF@@'

def emit(obj):
    sys.stdout.write('\n' + MARKER + json.dumps(obj) + '\n')
    sys.stdout.flush()

def main():
    request = json.loads(sys.stdin.read())
    root = request['root']
    try:
        import dnf, dnf.conf, dnf.exceptions, dnf.lock, dnf.rpm, dnf.transaction, hawkey
    except ImportError as e:
        emit({'error': 'NOT_INSTALLED', 'message': 'the dnf Python API cannot be imported: %s' % e})
        return
    conf = dnf.conf.Conf()
    conf.installroot = root
    if request.get('configFile'):
        conf.config_file_path = request['configFile']
        conf.read(filename=request['configFile'])
    else:
        conf.read()
    if request.get('reposdir'):
        conf.reposdir = [request['reposdir']]
    # Without this the Base opens the host's cache, history and logs: --installroot does it in the CLI.
    for opt in ('cachedir', 'logdir', 'persistdir'):
        conf.prepend_installroot(opt)
    releasever = request.get('releasever') or dnf.rpm.detect_releasever(root)
    if releasever:
        conf.releasever = releasever
    try:
        conf.substitutions.update_from_etc(root, varsdir=conf.varsdir)
    except TypeError:
        conf.substitutions.update_from_etc(root)
    # Fail at once on a held lock (dnf's default is to wait forever).
    conf.exit_on_lock = True
    try:
        with dnf.Base(conf) as base:
            base.read_all_repos()
            if request['mode'] == 'assess':
                result = assess(base, conf, root, dnf, hawkey)
            else:
                result = reboot_only(base, root, dnf)
            emit(result)
    except dnf.exceptions.ProcessLockError as e:
        emit({'error': 'LOCKED', 'message': str(e)})
    except dnf.exceptions.Error as e:
        emit({'error': 'COMMAND_FAILED', 'message': '%s: %s' % (type(e).__name__, e)})

class Collect(logging.Handler):
    def __init__(self):
        logging.Handler.__init__(self, logging.WARNING)
        self.lines = []
    def emit(self, record):
        self.lines.append(record.getMessage())

def assess(base, conf, root, dnf, hawkey):
    problems = []
    enabled = list(base.repos.iter_enabled())
    # Refresh: what "dnf --refresh" does (librepo fetches repomd.xml, and the rest only if it changed).
    for repo in enabled:
        repo._repo.expire()
    # Each repository on its own, so that one that cannot be read is reported with its reason and
    # left out, whatever its skip_if_unavailable says, while the others are still assessed.
    with dnf.lock.build_metadata_lock(conf.cachedir, True):
        logger = logging.getLogger('dnf')
        for repo in enabled:
            handler = Collect()
            logger.addHandler(handler)
            try:
                repo.load()
            except Exception as e:
                details = [l for line in handler.lines for l in line.split('\n')
                           if l.strip().startswith('- ')]
                message = str(e) + ''.join('; ' + d.strip()[2:] for d in details)
                problems.append({'repository': repo.id, 'message': message})
                repo.disable()
            finally:
                logger.removeHandler(handler)
    # The rpmdb lock while reading the installed packages (not during the downloads above): a
    # transaction running now would leave a half-changed package list. fill_sack takes the
    # metadata lock again itself (dnf's locks do not nest within one process).
    with dnf.lock.build_rpmdb_lock(conf.persistdir, True):
        base.fill_sack(load_system_repo=True, load_available_repos=True)
        flags = reboot_suggested_flags(base)
        return {
            'repositoryProblems': problems,
            'rebootCandidates': reboot_candidates(base, root, flags),
            'updates': pending_updates(base, flags, dnf, hawkey),
        }

def reboot_only(base, root, dnf):
    for repo in base.repos.iter_enabled():
        repo.skip_if_unavailable = True
    try:
        base.fill_sack_from_repos_in_cache(load_system_repo=True)
    except AttributeError:
        base.fill_sack(load_system_repo=True, load_available_repos=False)
    return {'rebootCandidates': reboot_candidates(base, root, reboot_suggested_flags(base))}

def nevra(name, evr, arch):
    return '%s-%s.%s' % (name, evr, arch)

def truthy(text):
    return (text or '').strip().lower() in ('true', '1', 'yes')

def reboot_suggested_flags(base):
    """NEVRAs whose updateinfo entry says <reboot_suggested> (libdnf's Python API does not expose it)."""
    import xml.etree.ElementTree as ET
    flags = set()
    for repo in base.repos.iter_enabled():
        try:
            content = repo.get_metadata_content('updateinfo')
        except Exception:
            continue
        if not content:
            continue
        try:
            tree = ET.fromstring(content)
        except ET.ParseError:
            continue
        for update in tree.iter('update'):
            whole = truthy(update.findtext('reboot_suggested'))
            for pkg in update.iter('package'):
                if whole or truthy(pkg.findtext('reboot_suggested')):
                    epoch = pkg.get('epoch') or '0'
                    evr = ('%s:' % epoch if epoch != '0' else '') + '%s-%s' % (pkg.get('version'), pkg.get('release'))
                    flags.add(nevra(pkg.get('name'), evr, pkg.get('arch')))
    return flags

CORE = ['kernel', 'kernel-core', 'kernel-rt', 'kernel-rt-core', 'glibc', 'linux-firmware', 'systemd',
        'dbus', 'dbus-broker', 'dbus-daemon', 'microcode_ctl']

def reboot_candidates(base, root, flags):
    """What dnf needs-restarting -r looks at: installed core packages, and installed packages
    an advisory marks reboot_suggested. The caller compares their install time with boot time."""
    names = set(CORE)
    installed = base.sack.query().installed()
    if installed.filter(name=['dbus', 'dbus-daemon', 'dbus-broker']):
        names.add('zlib')
    confdir = os.path.join(root, 'etc/dnf/plugins/needs-restarting.d')
    if os.path.isdir(confdir):
        for entry in sorted(os.listdir(confdir)):
            if entry.endswith('.conf'):
                with open(os.path.join(confdir, entry)) as fp:
                    names.update(line.strip() for line in fp if line.strip() and not line.startswith('#'))
    out = []
    for pkg in installed:
        reason = None
        if pkg.name in names:
            reason = 'core'
        elif nevra(pkg.name, pkg.evr, pkg.arch) in flags:
            reason = 'reboot_suggested'
        if reason:
            out.append({'name': pkg.name, 'version': pkg.evr, 'arch': pkg.arch,
                        'installTime': pkg.installtime, 'reason': reason})
    return out

def pending_updates(base, flags, dnf, hawkey):
    import functools
    sack = base.sack
    q = sack.query()
    installed = q.installed().run()
    by_name = {}
    for pkg in installed:
        by_name.setdefault(pkg.name, []).append(pkg)
    newest_first = functools.cmp_to_key(lambda a, b: sack.evr_cmp(b.evr, a.evr))
    # Advisories of every version newer than the installed one, up to the candidate: the
    # update fixes them all (as "dnf updateinfo list" counts them).
    apkgs = {}
    for apkg in q.installed().latest().get_advisory_pkgs(hawkey.GT):
        apkgs.setdefault(apkg.name, []).append(apkg)
    out = []
    for pkg in sorted(q.upgrades().latest().run(), key=lambda p: (p.name, p.arch)):
        same_arch = [p for p in by_name.get(pkg.name, []) if p.arch == pkg.arch] or by_name.get(pkg.name, [])
        current = sorted(same_arch, key=newest_first)[0].evr if same_arch else None
        out.append(describe(pkg, current, apkgs.get(pkg.name, []), sack, flags, hawkey))
    # What the upgrade pulls in that is not installed yet (new dependencies, replacing packages):
    # what "dnf upgrade" would do, from dnf's own resolver rather than its printed table.
    installed_names = set(by_name)
    base.conf.best = False
    try:
        base.upgrade_all()
        base.resolve(allow_erasing=False)
        new_actions = (dnf.transaction.PKG_INSTALL, getattr(dnf.transaction, 'PKG_OBSOLETE', -1))
        for tsi in sorted(base.transaction, key=lambda t: t.pkg.name):
            if tsi.action in new_actions and tsi.pkg.name not in installed_names:
                out.append(describe(tsi.pkg, None, [], sack, flags, hawkey))
    except dnf.exceptions.Error as e:
        # The upgrades above stand; only the new packages they would pull in stay unknown.
        sys.stderr.write('fleetpatch: resolving the upgrade failed: %s\n' % e)
    return out

def describe(pkg, installed_evr, apkgs, sack, flags, hawkey):
    advisories = {}
    reboot = nevra(pkg.name, pkg.evr, pkg.arch) in flags
    for apkg in apkgs:
        if apkg.arch not in (pkg.arch, 'noarch', 'src') or sack.evr_cmp(apkg.evr, pkg.evr) > 0:
            continue
        advisory = apkg.get_advisory(sack)
        if advisory is None:
            continue
        if nevra(apkg.name, apkg.evr, apkg.arch) in flags:
            reboot = True
        advisories[advisory.id] = advisory
    for advisory in pkg.get_advisories(hawkey.EQ):
        advisories.setdefault(advisory.id, advisory)
    types = {hawkey.ADVISORY_SECURITY: 'security', hawkey.ADVISORY_BUGFIX: 'bugfix',
             hawkey.ADVISORY_ENHANCEMENT: 'enhancement', hawkey.ADVISORY_NEWPACKAGE: 'newpackage'}
    return {
        'name': pkg.name, 'installedVersion': installed_evr, 'availableVersion': pkg.evr,
        'arch': pkg.arch, 'repository': pkg.reponame, 'rebootSuggested': reboot,
        'advisories': [{'id': a.id, 'type': types.get(a.type, 'unknown'), 'severity': a.severity or None,
                        'cves': sorted(set(r.id for r in a.references if r.type == hawkey.REFERENCE_CVE))}
                       for a in sorted(advisories.values(), key=lambda a: a.id)],
    }

main()
`;

const HELPER_MARKER = '@@FLEETPATCH-DNF@@';

// ---------------------------------------------------------------------------------------------
// Running things on a root

type Tool = 'dnf' | 'yum';

interface Machine {
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

/** A path inside the root, following a last-component symlink inside the root (EL8 has /etc/yum.conf -> dnf/dnf.conf). */
async function inRoot(root: string, relative: string): Promise<string> {
  const full = path.join(root, relative);
  try {
    const stat = await fs.lstat(full);
    if (stat.isSymbolicLink()) {
      const target = await fs.readlink(full);
      return path.isAbsolute(target) ? path.join(root, target) : path.join(path.dirname(full), target);
    }
  } catch {
    // absent: the caller decides
  }
  return full;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

async function machineFor(tool: Tool, ctx: BackendContext): Promise<Machine> {
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
    const file = await inRoot(root, candidate);
    if (await exists(file)) {
      configFile = file;
      break;
    }
  }
  const reposdir = await inRoot(root, 'etc/yum.repos.d');
  let releasever: string | null = null;
  try {
    releasever = releaseverFromOsRelease(parseOsRelease(await fs.readFile(await inRoot(root, 'etc/os-release'), 'utf8')));
  } catch {
    try {
      releasever = releaseverFromOsRelease(parseOsRelease(await fs.readFile(await inRoot(root, 'usr/lib/os-release'), 'utf8')));
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

async function run(machine: Machine, args: readonly string[], options: { onLine?: (line: string) => void; timeoutMs?: number } = {}): Promise<ExecResult> {
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
const ASSESS_TIMEOUT_MS = 15 * 60_000;

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
    result = await exec(interpreter[0]!, [...interpreter.slice(1), '-c', DNF_HELPER], {
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

function invalid(what: string, output: unknown): BackendError {
  return new BackendError('UNPARSEABLE_OUTPUT', `dnf (Python API): unexpected ${what}`, { output: JSON.stringify(output) });
}

function readRebootCandidates(value: unknown): RebootCandidate[] {
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

function readUpdates(value: unknown): PendingUpdate[] {
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
      })),
    });
  });
}

function readProblems(value: unknown): RepositoryProblem[] {
  if (!Array.isArray(value)) throw invalid('repository problems', value);
  return value.map((p: Record<string, unknown>) => ({ repository: String(p.repository), message: String(p.message) }));
}

async function bootTime(): Promise<number | null> {
  try {
    return parseBootTime(await fs.readFile('/proc/stat', 'utf8'));
  } catch {
    return null;
  }
}

/** rpm's view of one package: its installed versions ([epoch:]version-release, as dnf prints them). */
async function installedVersions(machine: Machine, ctx: BackendContext, name: string): Promise<string[]> {
  const rootArgs = machine.isHost ? [] : ['--root', path.resolve(ctx.root)];
  let result: ExecResult;
  try {
    result = await exec('rpm', [...rootArgs, '-q', '--qf', '%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n', name], { env: machine.env });
  } catch (error) {
    throw new BackendError('NOT_INSTALLED', `cannot start rpm: ${(error as Error).message}`);
  }
  if (result.exitCode !== 0) return [];
  return result.stdout.split('\n').filter((l) => l.trim() !== '');
}

async function installedPackages(machine: Machine, ctx: BackendContext): Promise<Array<{ name: string; arch: string; evr: string; installTime: number }>> {
  const rootArgs = machine.isHost ? [] : ['--root', path.resolve(ctx.root)];
  let result: ExecResult;
  try {
    result = await exec('rpm', [...rootArgs, '-qa', '--qf', '%{NAME}\\t%{ARCH}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{INSTALLTIME}\\n'], {
      env: machine.env,
    });
  } catch (error) {
    throw new BackendError('NOT_INSTALLED', `cannot start rpm: ${(error as Error).message}`);
  }
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
async function installWith(tool: Tool, ctx: BackendContext, update: PendingUpdate, onOutput: (line: string) => void): Promise<UpdateOutcome> {
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
  const versions = await installedVersions(machine, ctx, update.name);
  const installedVersion = versions.includes(update.availableVersion) ? update.availableVersion : (versions.at(-1) ?? null);
  const rebootRequired = await rebootAfterInstall(tool, machine, ctx, update);
  if (result.exitCode === 0) {
    const scriptletErrors = scriptletErrorLines(output);
    if (!versions.some((v) => compareEvr(v, update.availableVersion) >= 0)) {
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
async function rpmInstalledState(tool: Tool, ctx: BackendContext, update: PendingUpdate): Promise<{ installed: boolean; installedVersion: string | null }> {
  const versions = await installedVersions(await machineFor(tool, ctx), ctx, update.name);
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
  const packages = await installedPackages(machine, ctx);
  const candidates: RebootCandidate[] = packages
    .filter((p) => CORE_REBOOT_PACKAGES.includes(p.name) || (update.rebootSuggested && p.name === update.name))
    .map((p) => ({ name: p.name, version: p.evr, arch: p.arch, installTime: p.installTime, reason: 'core' }));
  return rebootPendingFrom(candidates, boot);
}

/**
 * mtime and size of the rpm database files (rpmdb.sqlite on EL9, Berkeley DB files on EL7/8).
 * Left out: the lock file and the files rpm rewrites on every read (BDB's __db.00N, SQLite's
 * -shm), which would make every read look like a change.
 */
async function rpmDatabaseFingerprint(ctx: BackendContext): Promise<string> {
  const dir = await inRoot(path.resolve(ctx.root), 'var/lib/rpm');
  let entries: string[];
  try {
    entries = await fs.readdir(dir);
  } catch {
    throw new BackendError('NOT_INSTALLED', `no rpm database at ${dir}`);
  }
  const parts: string[] = [];
  for (const entry of entries.sort()) {
    if (entry.startsWith('.') || entry.startsWith('__db.') || entry.endsWith('-shm')) continue;
    const stat = await fs.stat(path.join(dir, entry)).catch(() => null);
    if (stat?.isFile()) parts.push(`${entry}:${stat.size}:${Math.trunc(stat.mtimeMs)}`);
  }
  return parts.join(';');
}

export const dnfBackend: PackageBackend = {
  name: 'dnf',
  assess: dnfAssess,
  installUpdate: (ctx, update, onOutput) => installWith('dnf', ctx, update, onOutput),
  databaseFingerprint: rpmDatabaseFingerprint,
  installedState: (ctx, update) => rpmInstalledState('dnf', ctx, update),
};

// ---------------------------------------------------------------------------------------------
// yum (EL7)

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
  const installed = await installedPackages(machine, ctx);
  const updates = lines.map((line) => {
    const current = installed.filter((p) => p.name === line.name && (p.arch === line.arch || line.arch === 'noarch' || p.arch === 'noarch'));
    const installedVersion = current.map((p) => p.evr).sort(compareEvr).at(-1) ?? null;
    const covers = (entry: UpdateinfoListLine) => {
      const n = splitNevra(entry.nevra);
      return (
        n !== null &&
        n.name === line.name &&
        compareEvr(n.evr, line.version) <= 0 &&
        (installedVersion === null || compareEvr(n.evr, installedVersion) > 0)
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

export const yumBackend: PackageBackend = {
  name: 'yum',
  assess: yumAssess,
  installUpdate: (ctx, update, onOutput) => installWith('yum', ctx, update, onOutput),
  databaseFingerprint: rpmDatabaseFingerprint,
  installedState: (ctx, update) => rpmInstalledState('yum', ctx, update),
};
