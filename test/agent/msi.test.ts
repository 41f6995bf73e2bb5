import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, type ExecResult } from '../../src/agent/exec.js';
import pkg from '../../package.json' with { type: 'json' };
import { msiVersion, packageVersion, windowsMsi } from '../../scripts/agentPackages.mjs';

// The Windows installer as far as it can be checked without Windows (none is reachable here): the
// MSI that scripts/package-agent.mjs makes with wixl, read back with msitools' msiinfo and
// msiextract. Windows Installer itself never ran it: that it installs, registers and starts the
// service on a real Windows Server is not known from these tests.

const REPOSITORY = new URL('../..', import.meta.url).pathname;
const WINDOWS = path.join(REPOSITORY, 'dist/executables/fleetpatch-agent-windows-x64.exe');
const VERSION = packageVersion(pkg.version);
const UPGRADE_CODE = '{561BB296-9503-4246-A9F0-42D922F9DC12}';

let work: string;
let msi: string;

async function must(result: Promise<ExecResult>, what: string): Promise<ExecResult> {
  const r = await result;
  if (r.exitCode !== 0) throw new Error(`${what} exited ${r.exitCode ?? r.signal}:\n${r.stderr}\n${r.stdout}`);
  return r;
}

/** A table's rows (after msiinfo's three header lines: names, types, table name), each a list of columns. */
async function table(name: string): Promise<string[][]> {
  const out = (await must(exec('msiinfo', ['export', msi, name]), `msiinfo export ${name}`)).stdout;
  return out.split(/\r?\n/).slice(3).filter(Boolean).map((line) => line.split('\t'));
}

/** The rows of a table as objects by column name. */
async function rows(name: string): Promise<Array<Record<string, string>>> {
  const out = (await must(exec('msiinfo', ['export', msi, name]), `msiinfo export ${name}`)).stdout.split(/\r?\n/);
  const columns = out[0]!.split('\t');
  return out.slice(3).filter(Boolean).map((line) => Object.fromEntries(line.split('\t').map((v, i) => [columns[i]!, v])));
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-msi-test-'));
  await must(exec(process.execPath, ['scripts/build-agent-executables.mjs', '--platform', 'windows-x64'], { cwd: REPOSITORY, timeoutMs: 600_000 }), 'build-agent-executables');
  msi = windowsMsi({ work, out: work, version: VERSION, productVersion: pkg.version });
}, 600_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('the MSI (wixl), read back with msitools', () => {
  it('is an x64 per-machine package of this version, with a fixed upgrade code', async () => {
    expect(path.basename(msi)).toBe(`fleetpatch-agent-${VERSION}-x64.msi`);
    const summary = (await must(exec('msiinfo', ['suminfo', msi]), 'msiinfo suminfo')).stdout;
    expect(summary).toMatch(/^Template: x64;1033$/m);
    const properties = Object.fromEntries((await table('Property')).map(([k, v]) => [k!, v!]));
    expect(properties).toMatchObject({ ProductName: 'fleetpatch agent', ProductVersion: msiVersion(pkg.version), Manufacturer: 'fleetpatch', ALLUSERS: '1' });
    expect(properties.UpgradeCode!.toUpperCase()).toBe(UPGRADE_CODE);
    // The enrollment key never reaches msiexec's logs.
    expect(properties.MsiHiddenProperties!.split(';')).toContain('ENROLL_KEY');
  });

  it('installs the agent executable and its service host under Program Files (64-bit)\\fleetpatch-agent, byte for byte', async () => {
    const directories = await rows('Directory');
    expect(directories).toEqual(expect.arrayContaining([expect.objectContaining({ Directory: 'INSTALLDIR', Directory_Parent: 'ProgramFiles64Folder', DefaultDir: 'fleetpatch-agent' })]));
    const files = await rows('File');
    expect(files.map((f) => f.FileName).sort()).toEqual(['fleetpatch-agent-service.exe', 'fleetpatch-agent.exe']);
    const components = await rows('Component');
    for (const component of components) {
      expect(component.Directory_, component.Component).toBe('INSTALLDIR');
      // msidbComponentAttributes64bit: installed into the 64-bit Program Files and registry view.
      expect(Number(component.Attributes) & 256, component.Component).toBe(256);
    }
    const extracted = path.join(work, 'extracted');
    await must(exec('msiextract', ['-C', extracted, msi]), 'msiextract');
    expect(sha256(path.join(extracted, 'fleetpatch-agent/fleetpatch-agent.exe'))).toBe(sha256(WINDOWS));
    // The host is an x64 Windows program (PE32+, machine 0x8664).
    const host = fs.readFileSync(path.join(extracted, 'fleetpatch-agent/fleetpatch-agent-service.exe'));
    const pe = host.readUInt32LE(0x3c);
    expect(host.subarray(pe, pe + 4).toString('latin1')).toBe('PE\0\0');
    expect(host.readUInt16LE(pe + 4)).toBe(0x8664);
    expect(host.readUInt16LE(pe + 24)).toBe(0x20b);
    expect(host.includes(Buffer.from('fleetpatch-agent.exe'))).toBe(true);
  });

  it('registers the service host as the automatic LocalSystem service fleetpatch-agent, started on install, stopped and deleted on removal', async () => {
    const services = await rows('ServiceInstall');
    expect(services).toHaveLength(1);
    const files = Object.fromEntries((await rows('File')).map((f) => [f.FileName!, f]));
    const host = files['fleetpatch-agent-service.exe']!;
    // The service's program is its component's key file: the host, not the agent.
    const component = (await rows('Component')).find((c) => c.Component === services[0]!.Component_)!;
    expect(component.KeyPath).toBe(host.File);
    expect(services[0]).toMatchObject({
      Name: 'fleetpatch-agent',
      DisplayName: 'fleetpatch agent',
      ServiceType: '16', // SERVICE_WIN32_OWN_PROCESS
      StartType: '2', // SERVICE_AUTO_START
      ErrorControl: '1', // SERVICE_ERROR_NORMAL
      StartName: 'LocalSystem',
      Arguments: '', // settings come from the registry, never the command line
    });
    const controls = await rows('ServiceControl');
    expect(controls).toHaveLength(1);
    // 1 start on install + 2 stop on install (an upgrade) + 32 stop on uninstall + 128 delete on uninstall.
    expect(controls[0]).toMatchObject({ Name: 'fleetpatch-agent', Event: '163', Wait: '1', Component_: services[0]!.Component_ });
    const sequence = Object.fromEntries((await table('InstallExecuteSequence')).map(([action, , order]) => [action!, Number(order)]));
    expect(sequence.StopServices! < sequence.DeleteServices! && sequence.DeleteServices! < sequence.InstallFiles!).toBe(true);
    expect(sequence.InstallFiles! < sequence.WriteRegistryValues! && sequence.WriteRegistryValues! < sequence.InstallServices! && sequence.InstallServices! < sequence.StartServices!).toBe(true);
  });

  it('hands SERVER and ENROLL_KEY to the service host through HKLM\\SOFTWARE\\fleetpatch-agent\\Install', async () => {
    const values = (await rows('Registry')).map(({ Root, Key, Name, Value }) => ({ Root, Key, Name, Value }));
    expect(values.sort((a, b) => a.Name!.localeCompare(b.Name!))).toEqual([
      { Root: '2', Key: 'SOFTWARE\\fleetpatch-agent\\Install\\', Name: 'EnrollKey', Value: '[ENROLL_KEY]' },
      { Root: '2', Key: 'SOFTWARE\\fleetpatch-agent\\Install\\', Name: 'Server', Value: '[SERVER]' },
    ]);
  });

  it('upgrades an older version in place (major upgrade) and refuses to downgrade', async () => {
    const upgrades = await rows('Upgrade');
    expect(upgrades.map((u) => ({ code: u.UpgradeCode, min: u.VersionMin, max: u.VersionMax, property: u.ActionProperty }))).toEqual(
      expect.arrayContaining([
        { code: UPGRADE_CODE, min: '', max: msiVersion(pkg.version), property: 'WIX_UPGRADE_DETECTED' },
        { code: UPGRADE_CODE, min: msiVersion(pkg.version), max: '', property: 'WIX_DOWNGRADE_DETECTED' },
      ]),
    );
    const sequence = (await table('InstallExecuteSequence')).map(([action]) => action);
    expect(sequence).toContain('RemoveExistingProducts');
  });
});

describe('msiVersion', () => {
  it('is the three numbers of the version, without a pre-release; a version an MSI cannot hold is refused', () => {
    expect(msiVersion('0.1.0')).toBe('0.1.0');
    expect(msiVersion('0.2.0-rc.1')).toBe('0.2.0');
    expect(msiVersion('1.20.300')).toBe('1.20.300');
    expect(() => msiVersion('256.0.0')).toThrow('256.0.0 cannot be an MSI version');
    expect(() => msiVersion('1.0')).toThrow('cannot be an MSI version');
  });
});
