import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { environmentFromDmi } from '../../src/agent/environment.js';
import { automaticUpdateWarnings, parseOsRelease } from '../../src/agent/facts.js';

function root(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-facts-'));
  for (const [file, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), content);
  }
  return dir;
}

describe('machine facts', () => {
  it('reads os-release with quoted and unquoted values', () => {
    expect(parseOsRelease('PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\nID="rocky"\nVERSION_ID=9.4\n# comment\nID_LIKE=\'rhel centos fedora\'\n')).toEqual({
      PRETTY_NAME: 'Rocky Linux 9.4 (Blue Onyx)',
      ID: 'rocky',
      VERSION_ID: '9.4',
      ID_LIKE: 'rhel centos fedora',
    });
  });

  it('tells the cloud from DMI strings as each provider writes them', () => {
    expect(environmentFromDmi({ chassis_asset_tag: '7783-7084-3265-9085-8269-3286-77', sys_vendor: 'Microsoft Corporation' })).toBe('AZURE');
    expect(environmentFromDmi({ sys_vendor: 'Microsoft Corporation', product_name: 'Virtual Machine' })).toBe('AZURE');
    expect(environmentFromDmi({ sys_vendor: 'Amazon EC2', product_name: 'm6i.large' })).toBe('AWS');
    expect(environmentFromDmi({ sys_vendor: 'Xen', bios_version: '4.11.amazon', product_uuid: 'ec2e1916-9099-7caf-fd21-012345abcdef' })).toBe('AWS');
    expect(environmentFromDmi({ sys_vendor: 'Google', product_name: 'Google Compute Engine' })).toBe('GCP');
    expect(environmentFromDmi({ sys_vendor: 'Dell Inc.', product_name: 'PowerEdge R640' })).toBe('ON_PREMISES');
    expect(environmentFromDmi({ sys_vendor: 'Microsoft Corporation', product_name: 'Surface Pro' })).toBe('ON_PREMISES');
    expect(environmentFromDmi({})).toBe('ON_PREMISES');
  });

  it('warns when unattended-upgrades would install outside maintenance windows', () => {
    const enabled = root({
      'var/lib/dpkg/info/unattended-upgrades.list': '',
      'etc/apt/apt.conf.d/20auto-upgrades': 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n',
    });
    expect(automaticUpdateWarnings(enabled)).toEqual([expect.stringContaining('unattended-upgrades is enabled')]);
    // A later file turns it off again, as in apt.
    fs.writeFileSync(path.join(enabled, 'etc/apt/apt.conf.d/99local'), 'APT::Periodic::Unattended-Upgrade "0";\n');
    expect(automaticUpdateWarnings(enabled)).toEqual([]);
    // Configured but not installed: nothing runs it.
    expect(automaticUpdateWarnings(root({ 'etc/apt/apt.conf.d/20auto-upgrades': 'APT::Periodic::Unattended-Upgrade "1";' }))).toEqual([]);
  });

  it('warns for dnf-automatic only when it applies updates', () => {
    const wants = 'etc/systemd/system/timers.target.wants';
    expect(automaticUpdateWarnings(root({ [`${wants}/dnf-automatic-install.timer`]: '' }))).toEqual([expect.stringContaining('dnf-automatic')]);
    expect(automaticUpdateWarnings(root({ [`${wants}/dnf-automatic.timer`]: '', 'etc/dnf/automatic.conf': '[commands]\napply_updates = no\n' }))).toEqual([]);
    expect(automaticUpdateWarnings(root({ [`${wants}/dnf-automatic.timer`]: '', 'etc/dnf/automatic.conf': '[commands]\napply_updates = yes\n' }))).toHaveLength(1);
    expect(automaticUpdateWarnings(root({ 'etc/sysconfig/automatic_online_update': 'AOU_ENABLE_CRONJOB="true"\n' }))).toEqual([expect.stringContaining('Automatic Online Update')]);
  });
});
