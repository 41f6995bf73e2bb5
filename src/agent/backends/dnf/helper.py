# fleetpatch's dnf helper: what dnf's Python API (python3-dnf) knows and its command line does not
# print as data (advisories per package, reboot candidates), as one JSON line after MARKER on
# stdout. Run by the agent with the interpreter of the dnf script itself (`python3 -c <this>`), the
# request on stdin (src/agent/backends/dnf/run.ts, runHelper). Kept to Python 3.6 (RHEL 8's
# platform-python) and to the dnf 4 API present since RHEL 8.2; a missing newer call degrades to less
# data, not to a failure.
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
        flags, issued = read_updateinfo(base)
        return {
            'repositoryProblems': problems,
            'rebootCandidates': reboot_candidates(base, root, flags),
            'updates': pending_updates(base, flags, issued, dnf, hawkey),
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
    return read_updateinfo(base)[0]

def read_updateinfo(base):
    """From each enabled repository's updateinfo.xml: the NEVRAs whose entry says
    <reboot_suggested>, and each advisory's <issued date> as written (libdnf's Python API exposes
    neither: its Advisory.updated is the later of issued and updated)."""
    import xml.etree.ElementTree as ET
    flags = set()
    issued = {}
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
            advisory_id = (update.findtext('id') or '').strip()
            date = update.find('issued')
            if advisory_id and date is not None and date.get('date'):
                issued.setdefault(advisory_id, date.get('date'))
            whole = truthy(update.findtext('reboot_suggested'))
            for pkg in update.iter('package'):
                if whole or truthy(pkg.findtext('reboot_suggested')):
                    epoch = pkg.get('epoch') or '0'
                    evr = ('%s:' % epoch if epoch != '0' else '') + '%s-%s' % (pkg.get('version'), pkg.get('release'))
                    flags.add(nevra(pkg.get('name'), evr, pkg.get('arch')))
    return flags, issued

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

def pending_updates(base, flags, issued, dnf, hawkey):
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
        out.append(describe(pkg, current, apkgs.get(pkg.name, []), sack, flags, issued, hawkey))
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
                out.append(describe(tsi.pkg, None, [], sack, flags, issued, hawkey))
    except dnf.exceptions.Error as e:
        # The upgrades above stand; only the new packages they would pull in stay unknown.
        sys.stderr.write('fleetpatch: resolving the upgrade failed: %s\n' % e)
    return out

def describe(pkg, installed_evr, apkgs, sack, flags, issued, hawkey):
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
                        'issued': issued.get(a.id),
                        'cves': sorted(set(r.id for r in a.references if r.type == hawkey.REFERENCE_CVE))}
                       for a in sorted(advisories.values(), key=lambda a: a.id)],
    }

main()
