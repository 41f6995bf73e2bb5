import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  aptConfigForRoot,
  classifyOrigins,
  extractErrorLines,
  fullyInstalled,
  heldLock,
  isRebootSuggested,
  parseDpkgState,
  parseOrigin,
  parseSimulateLine,
  parseSimulation,
  parseSourcePackages,
  parseUnfinishedPackages,
  parseUpdateOutput,
  unfinishedNote,
} from '../../src/agent/backends/apt/parse.js';
import { aptClassification, FIXTURE_PACKAGES } from '../../testkit/catalog.js';

// The apt backend's parsers, on output recorded from apt 2.6 and dpkg 1.21 on the Debian 12 fixture
// machines (test/fixtures/apt/, made by test/fixtures/recordOutputs.ts) and on lines captured from a
// real Debian 12 host. The backend running the real apt on those machines: test/agent/apt.test.ts.

const recorded = (name: string) => fs.readFileSync(new URL(`../fixtures/apt/${name}`, import.meta.url), 'utf8');
const lines = (name: string) => recorded(name).replace(/\n$/, '').split('\n');

describe('apt-get -s dist-upgrade (recorded on the fixture machine)', () => {
  it('lists exactly the catalog updates, classified by the origin of their candidate', () => {
    const updates = parseSimulation(recorded('simulate.txt'));
    const pending = FIXTURE_PACKAGES.filter((p) => p.available !== null);
    expect(updates.map((u) => u.name).sort()).toEqual(pending.map((p) => p.name).sort());
    for (const p of pending) {
      expect(updates.find((u) => u.name === p.name)).toMatchObject({
        installedVersion: p.installed,
        availableVersion: p.available,
        classification: aptClassification(p),
        severity: null,
        advisoryIds: [],
        cveIds: [],
        rebootSuggested: p.rebootSuggested,
        repository: aptClassification(p) === 'SECURITY' ? 'Debian-Security:12/stable-security' : 'Debian:12-updates/stable-updates',
      });
    }
    expect(updates.find((u) => u.name === 'linux-image-demo')?.arch).toBe('amd64');
    expect(updates.find((u) => u.name === 'demo-tool')?.arch).toBe('all');
    expect(updates.every((u) => u.note === undefined)).toBe(true);
  });

  it('keeps a package apt only has to configure (a Conf line without an Inst) at the version it was unpacked at', () => {
    const updates = parseSimulation(recorded('simulate-half-configured.txt'));
    expect(updates.find((u) => u.name === 'demo-broken')).toMatchObject({ installedVersion: '1.1-1', availableVersion: '1.1-1', classification: 'SECURITY' });
    expect(updates).toHaveLength(FIXTURE_PACKAGES.filter((p) => p.available !== null).length);
  });

  it('refuses the output when the summary line disagrees with the Inst lines', () => {
    const text = recorded('simulate.txt').replace(/^Inst demo-tool .*\n/m, '');
    expect(() => parseSimulation(text)).toThrow(expect.objectContaining({ code: 'UNPARSEABLE_OUTPUT', message: 'apt-get announced 7 installs but listed 6' }) as Error);
  });
});

describe('dpkg-query (recorded after a postinst failed)', () => {
  it('reads the half-configured package among the finished ones', () => {
    expect(parseUnfinishedPackages(recorded('dpkg-query-status.txt'))).toEqual(new Map([['demo-broken', 'iF']]));
  });

  it('reads one package: unpacked at the new version, not fully installed', () => {
    const state = parseDpkgState(recorded('dpkg-query-demo-broken.txt'), 'all');
    expect(state).toEqual({ version: '1.1-1', status: 'iF ' });
    expect(fullyInstalled(state!, '1.1-1')).toBe(false);
    expect(fullyInstalled({ version: '1.1-1', status: 'ii ' }, '1.1-1')).toBe(true);
    expect(fullyInstalled({ version: '1.1-1', status: 'iiR' }, '1.1-1')).toBe(false);
    expect(parseDpkgState('1.0-1\tun \tall\n', 'all')).toBeNull();
    expect(parseDpkgState('', 'all')).toBeUndefined();
  });

  it('says why a half-configured package is pending', () => {
    expect(unfinishedNote({ name: 'demo-broken', availableVersion: '1.1-1' }, 'iF')).toMatch(/^Half-configured \(dpkg status iF\): demo-broken 1\.1-1 is unpacked but configuring it failed/);
    expect(unfinishedNote({ name: 'x', availableVersion: '1' }, null)).toBe('apt still has to configure x 1, which is already unpacked. Installing the update again configures it.');
  });
});

describe('an install transcript (recorded: demo-broken, whose postinst fails)', () => {
  it('keeps dpkg and apt error lines, not the progress or the maintainer script chatter', () => {
    expect(extractErrorLines(lines('install-postinst-fails.txt'))).toBe(
      [
        'dpkg: error processing package demo-broken (--configure):',
        ' installed demo-broken package post-installation script subprocess returned error exit status 1',
        'Errors were encountered while processing:',
        ' demo-broken',
        'E: Sub-process /usr/bin/dpkg returned an error code (1)',
      ].join('\n'),
    );
    expect(extractErrorLines(['Reading package lists...', 'Setting up demo-tool (1.1-1) ...'])).toBeNull();
  });
});

describe('apt-get update (recorded)', () => {
  it('names each repository that failed, with apt reason, and nothing unexplained', () => {
    const { problems, unexplained } = parseUpdateOutput(recorded('update-unreachable.txt'));
    expect([...problems].sort((a, b) => a.repository.localeCompare(b.repository))).toEqual([
      {
        repository: 'file:/nonexistent/fleetpatch-repo bookworm',
        message: 'File not found - /nonexistent/fleetpatch-repo/dists/bookworm/Release (2: No such file or directory); The repository does not have a Release file.',
      },
      { repository: 'http://127.0.0.1:9/debian bookworm', message: 'Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)' },
    ]);
    expect(unexplained).toEqual([]);
  });

  it('keeps an error that names no repository apart: the refresh failed as a whole', () => {
    expect(parseUpdateOutput('E: Malformed entry 1 in sources file /etc/apt/sources.list.d/broken.sources (URI)\n')).toEqual({
      problems: [],
      unexplained: ['E: Malformed entry 1 in sources file /etc/apt/sources.list.d/broken.sources (URI)'],
    });
  });

  it('finds the lock holder apt names', () => {
    expect(heldLock(lines('update-locked.txt'))).toMatch(/^Could not get lock \/tmp\/fixture\/fresh\/root\/var\/lib\/apt\/lists\/lock\. It is held by process \d+ \(python3\)$/);
    expect(heldLock(['dpkg: error: dpkg frontend lock was locked by another process with pid 123'])).toBe('dpkg frontend lock was locked by another process with pid 123');
    expect(heldLock(lines('install-postinst-fails.txt'))).toBeNull();
  });
});

describe('origins, reboot hints and the root', () => {
  it('reads origins in each form apt prints them, and classifies a security archive', () => {
    expect(parseOrigin('Debian-Security:12/stable-security')).toEqual({ label: 'Debian-Security', version: '12', suite: 'stable-security' });
    expect(parseOrigin('Ubuntu:22.04/jammy-security')).toEqual({ label: 'Ubuntu', version: '22.04', suite: 'jammy-security' });
    expect(parseOrigin('stable')).toEqual({ label: null, version: null, suite: 'stable' });
    expect(classifyOrigins([parseOrigin('Debian:12.15/oldstable'), parseOrigin('Ubuntu:22.04/jammy-security')])).toBe('SECURITY');
    expect(classifyOrigins([parseOrigin('Debian:12-updates/stable-updates')])).toBe('OTHER');
  });

  it('suggests a reboot after a kernel, libc, init, bus or microcode update', () => {
    expect(['linux-image-6.1.0-28-amd64', 'libc6:amd64', 'systemd', 'intel-microcode', 'dbus'].map(isRebootSuggested)).toEqual([true, true, true, true, true]);
    expect(['libssl3', 'linux-libc-dev', 'dbus-user-session'].map(isRebootSuggested)).toEqual([false, false, false]);
  });

  it('points apt and dpkg at the root, and refuses a root path it cannot quote', () => {
    expect(aptConfigForRoot('/srv/machines/m1')).toContain('DPkg::Options { "--root=/srv/machines/m1"; "--force-script-chrootless"; "--log=/srv/machines/m1/var/log/dpkg.log"; };');
    expect(() => aptConfigForRoot('/srv/"quoted"')).toThrow(expect.objectContaining({ code: 'COMMAND_FAILED' }) as Error);
  });
});

describe('apt simulate-line parser (lines captured from apt 2.6 on Debian 12)', () => {
  it('reads several origins, a security one among them, and the ordering notes apt appends', () => {
    expect(
      parseSimulateLine('Inst libgnutls30 [3.7.9-2+deb12u6] (3.7.9-2+deb12u7 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64]) []'),
    ).toEqual({
      kind: 'Inst',
      name: 'libgnutls30',
      installedVersion: '3.7.9-2+deb12u6',
      version: '3.7.9-2+deb12u7',
      origins: 'Debian:12.15/oldstable, Debian-Security:12/oldstable-security',
      arch: 'amd64',
    });
    expect(
      parseSimulateLine(
        'Inst libpam-modules-bin [1.5.2-6+deb12u1] (1.5.2-6+deb12u2 Debian:12.15/oldstable [amd64]) [libpam-modules:amd64 on libpam-modules-bin:amd64] [libpam-modules:amd64 ]',
      ),
    ).toMatchObject({ name: 'libpam-modules-bin', installedVersion: '1.5.2-6+deb12u1', origins: 'Debian:12.15/oldstable' });
    expect(parseSimulateLine('Inst login [1:4.13+dfsg1-1+deb12u1] (1:4.13+dfsg1-1+deb12u2 Debian:12.15/oldstable [amd64])')).toMatchObject({
      installedVersion: '1:4.13+dfsg1-1+deb12u1',
      version: '1:4.13+dfsg1-1+deb12u2',
    });
    expect(parseSimulateLine('Reading package lists...')).toBeNull();
  });

  it('refuses output it does not understand rather than reporting nothing pending', () => {
    expect(() => parseSimulateLine('Inst libgnutls30 [3.7.9-2+deb12u6] (3.7.9-2+deb12u7')).toThrow(
      expect.objectContaining({ code: 'UNPARSEABLE_OUTPUT' }) as Error,
    );
    expect(() => parseSimulation('')).toThrow(expect.objectContaining({ code: 'UNPARSEABLE_OUTPUT' }) as Error);
  });
});

describe('apt-cache show: the source package of each candidate', () => {
  it('on the fixture machine: the binary whose Packages stanza names another source (linux-image-demo from linux), no other', () => {
    expect([...parseSourcePackages(recorded('show-candidates.txt'))]).toEqual([['linux-image-demo=5.1-1', 'linux']]);
  });

  it("on Debian 12's own archive: `Source: name (version)` keeps the name; a binNMU of a same-named source is left out", () => {
    // Recorded with `apt-cache show telnet libssl3 bash` on a Debian 12 host (bookworm, bookworm-security).
    expect(Object.fromEntries(parseSourcePackages(recorded('show-debian12.txt')))).toEqual({
      'telnet=0.17+2.4-2+deb12u3': 'inetutils',
      'libssl3=3.0.22-1~deb12u2': 'openssl',
    });
  });

  it('refuses a source field that is no package name', () => {
    expect(() => parseSourcePackages('Package: libfoo1\nVersion: 1.0-1\nSource: Foo;rm\n')).toThrow(/source package name not understood/);
    expect(parseSourcePackages('')).toEqual(new Map());
  });
});
