import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readBootId } from '../bootId.js';
import { environmentFromDmi } from '../environment.js';
import type { Environment, MachineFacts } from '../protocol.js';

/*
 * What the agent says about a Windows machine: read from the registry with `reg query` (in every
 * Windows, no PowerShell start-up per check-in), parsed by plain functions tested on recorded output.
 */

export const REGISTRY_KEYS = {
  currentVersion: 'HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion',
  bios: 'HKLM\\HARDWARE\\DESCRIPTION\\System\\BIOS',
  automaticUpdatesPolicy: 'HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU',
} as const;

/**
 * The values of the first key in `reg query KEY` output ("    Name    REG_SZ    value"). DWORDs and
 * QWORDs ("0x7a1") become decimal strings; subkeys and their values are not read.
 */
export function parseRegQuery(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  let keysSeen = 0;
  for (const raw of text.split(/\r?\n/)) {
    if (/^HKEY_/.test(raw)) {
      keysSeen += 1;
      if (keysSeen > 1) break;
      continue;
    }
    const match = /^ {4}(.+?) {4}(REG_[A-Z_]+)(?: {4}(.*))?$/.exec(raw);
    if (!match) continue;
    const [, name, type, value = ''] = match;
    values[name!] = (type === 'REG_DWORD' || type === 'REG_QWORD') && /^0x[0-9a-f]+$/i.test(value) ? String(parseInt(value, 16)) : value.trim();
  }
  return values;
}

export interface WindowsFacts {
  osName: string;
  osVersion: string;
  /** "Server", "Server Core", "Nano Server" or "Client" (a desktop edition). */
  installationType: string;
  environment: Environment;
  warnings: string[];
}

/** Windows 11 still calls itself "Windows 10" in ProductName; build 22000 and later is 11. */
function productName(current: Record<string, string>): string {
  const name = current.ProductName || 'Windows';
  const build = Number(current.CurrentBuild);
  if (current.InstallationType === 'Client' && build >= 22000) return name.replace(/^Windows 10\b/, 'Windows 11');
  return name;
}

/**
 * Facts from the three registry keys. osVersion is major.minor.build.revision (10.0.20348.2031),
 * the number Microsoft's release notes use. Automatic updates that install on a schedule of their
 * own (group policy AUOptions 4, "auto download and schedule the install") get a warning, like
 * unattended-upgrades on Linux: they install outside the deployments' maintenance windows.
 */
export function windowsFactsFrom(current: Record<string, string>, bios: Record<string, string>, auPolicy: Record<string, string>): WindowsFacts {
  const version = [current.CurrentMajorVersionNumber ?? '10', current.CurrentMinorVersionNumber ?? '0', current.CurrentBuild ?? current.CurrentBuildNumber ?? '', current.UBR ?? '']
    .filter((part) => part !== '')
    .join('.');
  const warnings: string[] = [];
  if (auPolicy.NoAutoUpdate !== '1' && auPolicy.AUOptions === '4') {
    warnings.push(
      'Windows automatic updates download and install on their own schedule (group policy "Configure Automatic Updates" = 4): they install updates outside maintenance windows. Set it to 2 (notify) or 3 (download and notify).',
    );
  }
  return {
    osName: productName(current),
    osVersion: version,
    installationType: current.InstallationType ?? 'Server',
    environment: environmentFromDmi({
      sys_vendor: bios.SystemManufacturer,
      product_name: bios.SystemProductName,
      product_version: bios.SystemVersion,
      bios_vendor: bios.BIOSVendor,
      bios_version: bios.BIOSVersion,
      board_vendor: bios.BaseBoardManufacturer,
    }),
    warnings,
  };
}

function regQuery(key: string): string {
  try {
    return execFileSync('reg', ['query', key], { encoding: 'utf8', windowsHide: true, stdio: ['ignore', 'pipe', 'ignore'], timeout: 30_000 });
  } catch {
    return ''; // an absent key (no policy set) is no value
  }
}

let cached: WindowsFacts | undefined;

const factsFrom = (read: (key: string) => string) =>
  windowsFactsFrom(parseRegQuery(read(REGISTRY_KEYS.currentVersion)), parseRegQuery(read(REGISTRY_KEYS.bios)), parseRegQuery(read(REGISTRY_KEYS.automaticUpdatesPolicy)));

/**
 * From the registry, read once per agent process: none of it changes without a reboot, and a reboot
 * restarts the agent. `read` (tests) answers `reg query KEY` instead, and is not cached.
 */
export function readWindowsFacts(read?: (key: string) => string): WindowsFacts {
  if (read) return factsFrom(read);
  cached ??= factsFrom(regQuery);
  return cached;
}

// ---------------------------------------------------------------------------------------------
// Boot id

export interface BootRecord {
  id: string;
  bootMs: number;
}

/**
 * Windows has no boot id file: the boot time (now minus uptime) stands in for it. Uptime is read in
 * whole seconds and drifts a little, so a boot time within two minutes of the recorded one is the
 * same boot (an agent restart), and keeps its id; a reboot moves it by the whole previous uptime.
 */
export function stableBootRecord(previous: BootRecord | undefined, bootMs: number): BootRecord {
  if (previous && Math.abs(previous.bootMs - bootMs) < 120_000) return previous;
  return { id: `boot-${new Date(Math.round(bootMs / 1000) * 1000).toISOString()}`, bootMs };
}

/**
 * Writes this boot's id to `file` (the agent's --boot-id-file on Windows), keeping the id of the
 * same boot across agent restarts (`<file>.json` remembers it).
 */
export function writeWindowsBootId(file: string, now = Date.now(), uptimeSeconds = os.uptime()): string {
  const memory = `${file}.json`;
  let previous: BootRecord | undefined;
  try {
    previous = JSON.parse(fs.readFileSync(memory, 'utf8')) as BootRecord;
  } catch {
    previous = undefined;
  }
  const record = stableBootRecord(previous, now - uptimeSeconds * 1000);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(memory, JSON.stringify(record));
  fs.writeFileSync(file, record.id);
  return record.id;
}

export interface WindowsFactOptions {
  agentVersion: string;
  packageManager: string | null;
  bootIdFile: string;
}

/** The facts of this Windows machine, as the agent sends them at enrollment and at each check-in. */
export function gatherWindowsFacts(options: WindowsFactOptions, read?: (key: string) => string): MachineFacts {
  const facts = readWindowsFacts(read);
  return {
    hostname: os.hostname(),
    osType: 'WINDOWS',
    osName: facts.osName,
    osVersion: facts.osVersion,
    kernel: os.release(),
    agentVersion: options.agentVersion,
    bootId: readBootId(options.bootIdFile),
    packageManager: options.packageManager,
    environment: facts.environment,
    warnings: facts.warnings,
  };
}
