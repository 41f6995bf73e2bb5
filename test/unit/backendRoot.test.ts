import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsInRoot, resolveInRoot } from '../../src/agent/backends/root.js';

// Files inside a managed root as the machine itself sees them: a fixture root or an image must never
// lead a backend to the host's own files.

let root: string;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-root-'));
  fs.mkdirSync(path.join(root, 'run'));
  fs.writeFileSync(path.join(root, 'run/reboot-required'), '');
  fs.mkdirSync(path.join(root, 'var'));
  // debootstrap's var/run -> /run: absolute, meant inside the root.
  fs.symlinkSync('/run', path.join(root, 'var/run'));
  fs.mkdirSync(path.join(root, 'etc/dnf'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/dnf/dnf.conf'), '[main]\n');
  // EL8's etc/yum.conf -> dnf/dnf.conf: relative.
  fs.symlinkSync('dnf/dnf.conf', path.join(root, 'etc/yum.conf'));
  fs.symlinkSync('../../../../../../../../etc', path.join(root, 'escape'));
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('resolveInRoot', () => {
  it('follows an absolute link inside the root, not on the host', async () => {
    expect(await resolveInRoot(root, 'var/run/reboot-required')).toBe(path.join(root, 'run/reboot-required'));
    expect(await existsInRoot(root, 'var/run/reboot-required')).toBe(true);
  });

  it('follows a relative link, and keeps a path that does not exist as it is', async () => {
    expect(await resolveInRoot(root, 'etc/yum.conf')).toBe(path.join(root, 'etc/dnf/dnf.conf'));
    expect(await resolveInRoot(root, 'etc/yum.repos.d/x.repo')).toBe(path.join(root, 'etc/yum.repos.d/x.repo'));
    expect(await existsInRoot(root, 'etc/yum.repos.d')).toBe(false);
  });

  it('never leaves the root through .. or a link that climbs out', async () => {
    expect(await resolveInRoot(root, '../../etc/passwd')).toBe(path.join(root, 'etc/passwd'));
    expect(await resolveInRoot(root, 'escape/passwd')).toBe(path.join(root, 'etc/passwd'));
  });

  it("is the host's own path on '/'", async () => {
    expect(await resolveInRoot('/', 'var/lib/dpkg/status')).toBe('/var/lib/dpkg/status');
  });
});
