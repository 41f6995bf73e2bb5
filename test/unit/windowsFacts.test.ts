import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { gatherWindowsFacts, parseRegQuery, REGISTRY_KEYS, stableBootRecord, windowsFactsFrom, writeWindowsBootId } from '../../src/agent/backends/windowsFacts.js';
import { agentDefaults } from '../../src/agent/cli.js';
import { gatherFacts } from '../../src/agent/facts.js';
import { editionRefusal } from '../../src/fleet/enrollment.js';

// A Windows machine's facts from recorded `reg query` output (test/fixtures/windows/reg-*.txt),
// and the enrollment decision the server takes on them. No Windows here.

const FIXTURES = new URL('../fixtures/windows/', import.meta.url).pathname;
const reg = (name: string) => parseRegQuery(fs.readFileSync(path.join(FIXTURES, name), 'utf8'));

describe('Windows facts from the registry', () => {
  it('reads the values of the key asked for (CRLF, DWORDs as numbers), not those of its subkeys', () => {
    const current = reg('reg-currentversion-server2022.txt');
    expect(current.ProductName).toBe('Windows Server 2022 Datacenter');
    expect(current.UBR).toBe('2031');
    expect(current.CurrentMajorVersionNumber).toBe('10');
    expect(current.InstallationType).toBe('Server Core');
    expect(current.SystemRoot).toBe('C:\\Windows');
    expect(Object.values(current)).not.toContain("not this key's value");
    expect(parseRegQuery('')).toEqual({});
  });

  it('names a Windows Server by its product name and version, and tells EC2 from its BIOS strings', () => {
    const facts = windowsFactsFrom(reg('reg-currentversion-server2022.txt'), reg('reg-bios-ec2.txt'), {});
    expect(facts).toEqual({ osName: 'Windows Server 2022 Datacenter', osVersion: '10.0.20348.2031', installationType: 'Server Core', environment: 'AWS', warnings: [] });
    expect(windowsFactsFrom(reg('reg-currentversion-server2022.txt'), reg('reg-bios-vmware.txt'), {}).environment).toBe('ON_PREMISES');
  });

  it('calls Windows 11 by its name although its registry still says Windows 10', () => {
    const facts = windowsFactsFrom(reg('reg-currentversion-windows11.txt'), {}, {});
    expect(facts.osName).toBe('Windows 11 Pro');
    expect(facts.osVersion).toBe('10.0.22631.3285');
    expect(facts.installationType).toBe('Client');
  });

  it('warns when group policy lets Windows install updates on its own schedule', () => {
    const policy = reg('reg-au-policy-scheduled-install.txt');
    const [warning] = windowsFactsFrom(reg('reg-currentversion-server2022.txt'), {}, policy).warnings;
    expect(warning).toMatch(/outside maintenance windows. Set it to 2 \(notify\) or 3/);
    expect(windowsFactsFrom({}, {}, { ...policy, NoAutoUpdate: '1' }).warnings).toEqual([]);
    expect(windowsFactsFrom({}, {}, { ...policy, AUOptions: '3' }).warnings).toEqual([]);
  });

  it('sends them as a WINDOWS machine managed by the windows backend', () => {
    const recorded: Record<string, string> = {
      [REGISTRY_KEYS.currentVersion]: 'reg-currentversion-server2022.txt',
      [REGISTRY_KEYS.bios]: 'reg-bios-ec2.txt',
      [REGISTRY_KEYS.automaticUpdatesPolicy]: 'reg-au-policy-scheduled-install.txt',
    };
    const bootIdFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-boot-')), 'boot-id');
    writeWindowsBootId(bootIdFile, Date.parse('2026-01-05T10:00:00Z'), 3600);
    const options = { agentVersion: '0.1.0', packageManager: 'windows', bootIdFile };
    const facts = gatherWindowsFacts(options, (key) => fs.readFileSync(path.join(FIXTURES, recorded[key]!), 'utf8'));
    expect(facts).toMatchObject({
      osType: 'WINDOWS',
      osName: 'Windows Server 2022 Datacenter',
      osVersion: '10.0.20348.2031',
      environment: 'AWS',
      bootId: 'boot-2026-01-05T09:00:00.000Z',
      packageManager: 'windows',
      warnings: [expect.stringContaining('Configure Automatic Updates')],
    });
    // The agent's own fact gathering takes this path on Windows (here `reg` is missing: no registry values).
    expect(gatherFacts({ root: 'C:\\', ...options, platform: 'win32' })).toMatchObject({ osType: 'WINDOWS', bootId: 'boot-2026-01-05T09:00:00.000Z' });
  });
});

describe('the boot id of a Windows machine', () => {
  it('stays the same across agent restarts within one boot, and changes with a reboot', () => {
    const first = stableBootRecord(undefined, Date.parse('2026-01-05T09:00:00.400Z'));
    expect(first.id).toBe('boot-2026-01-05T09:00:00.000Z');
    expect(stableBootRecord(first, Date.parse('2026-01-05T09:00:01.300Z'))).toBe(first); // uptime drift
    expect(stableBootRecord(first, Date.parse('2026-01-07T22:13:40Z')).id).toBe('boot-2026-01-07T22:13:40.000Z');
  });

  it('is written where the agent reads it, and kept when the agent restarts', () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-boot-')), 'state', 'boot-id');
    const start = Date.parse('2026-01-05T12:00:00Z');
    const id = writeWindowsBootId(file, start, 7200);
    expect(fs.readFileSync(file, 'utf8')).toBe(id);
    expect(writeWindowsBootId(file, start + 600_000, 7800.8)).toBe(id);
    expect(writeWindowsBootId(file, start + 900_000, 30)).not.toBe(id);
  });
});

describe('agent defaults on Windows', () => {
  it('keeps its state under ProgramData and reboots with shutdown /r and a planned reason', () => {
    expect(agentDefaults('win32', { ProgramData: 'D:\\ProgramData' })).toEqual({
      stateDir: 'D:\\ProgramData\\fleetpatch-agent',
      bootIdFile: 'D:\\ProgramData\\fleetpatch-agent\\boot-id',
      bootIdWrittenByAgent: true,
      rebootCommand: 'shutdown /r /t 60 /d p:2:17 /c "fleetpatch: rebooting after installing updates"',
    });
    expect(agentDefaults('linux', {}).rebootCommand).toContain('shutdown -r +1');
  });
});

describe('enrolling Windows machines', () => {
  it('accepts Windows Server and Azure Stack HCI, and any Linux', () => {
    expect(editionRefusal({ osType: 'WINDOWS', osName: 'Windows Server 2022 Datacenter' })).toBeNull();
    expect(editionRefusal({ osType: 'WINDOWS', osName: 'Windows Server 2016 Standard Evaluation' })).toBeNull();
    expect(editionRefusal({ osType: 'WINDOWS', osName: 'Azure Stack HCI' })).toBeNull();
    expect(editionRefusal({ osType: 'LINUX', osName: 'Debian GNU/Linux 12 (bookworm)' })).toBeNull();
  });

  it('refuses a client edition with a message that says why and what to do', () => {
    const osName = windowsFactsFrom(reg('reg-currentversion-windows11.txt'), {}, {}).osName;
    expect(editionRefusal({ osType: 'WINDOWS', osName })).toBe(
      'Windows 11 Pro is a Windows client edition, and fleetpatch manages Windows Server only: client operating systems are not supported. Enroll a Windows Server machine instead.',
    );
    expect(editionRefusal({ osType: 'WINDOWS', osName: 'Windows 10 Enterprise multi-session' })).toMatch(/client edition/);
  });
});
