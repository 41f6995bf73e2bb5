import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gatherWindowsFacts } from './backends/windowsFacts.js';
import { readBootId } from './bootId.js';
import { environmentFromDmi } from './environment.js';
import type { Environment, MachineFacts } from './protocol.js';

/** Reads a file under the managed root; undefined when absent. Never falls back to the host's file. */
function readUnder(root: string, file: string): string | undefined {
  try {
    return fs.readFileSync(path.join(root, file), 'utf8');
  } catch {
    return undefined;
  }
}

/** os-release (freedesktop format): KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    let value = match[2]!.trim();
    if ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'"))) {
      value = value.slice(1, -1).replace(/\\(["'$`\\])/g, '$1');
    }
    fields[match[1]!] = value;
  }
  return fields;
}

export function readOsRelease(root: string): Record<string, string> {
  return parseOsRelease(readUnder(root, 'etc/os-release') ?? readUnder(root, 'usr/lib/os-release') ?? '');
}

const DMI_FIELDS = ['sys_vendor', 'product_name', 'product_version', 'product_uuid', 'product_serial', 'bios_vendor', 'bios_version', 'board_vendor', 'chassis_asset_tag'];

export function detectEnvironment(root: string): Environment {
  const dmi: Record<string, string | undefined> = {};
  for (const field of DMI_FIELDS) dmi[field] = readUnder(root, `sys/class/dmi/id/${field}`);
  return environmentFromDmi(dmi);
}

function aptPeriodicValue(root: string, key: string): string | undefined {
  const dir = path.join(root, 'etc/apt/apt.conf.d');
  let value: string | undefined;
  let files: string[] = [];
  try {
    files = fs.readdirSync(dir).sort();
  } catch {
    return undefined;
  }
  const pattern = new RegExp(`${key}\\s+"([^"]*)"`, 'i');
  for (const file of files) {
    const match = pattern.exec(readUnder(root, `etc/apt/apt.conf.d/${file}`) ?? '');
    if (match) value = match[1]; // later files override earlier ones, as in apt
  }
  return value;
}

const exists = (root: string, file: string) => fs.existsSync(path.join(root, file));

/**
 * Something that installs updates on its own, outside any maintenance window. The seed warns about
 * exactly this for Ubuntu's unattended-upgrades; dnf-automatic, yum-cron and SUSE's automatic online
 * update do the same.
 */
export function automaticUpdateWarnings(root: string): string[] {
  const warnings: string[] = [];
  const unattended = aptPeriodicValue(root, 'APT::Periodic::Unattended-Upgrade');
  if (exists(root, 'var/lib/dpkg/info/unattended-upgrades.list') && unattended !== undefined && unattended !== '0' && unattended !== '') {
    warnings.push('unattended-upgrades is enabled (APT::Periodic::Unattended-Upgrade): it installs updates outside maintenance windows. Set it to "0" in /etc/apt/apt.conf.d/20auto-upgrades.');
  }
  const timers = 'etc/systemd/system/timers.target.wants';
  const automaticConf = readUnder(root, 'etc/dnf/automatic.conf') ?? '';
  if (exists(root, `${timers}/dnf-automatic-install.timer`) || (exists(root, `${timers}/dnf-automatic.timer`) && /^\s*apply_updates\s*=\s*(yes|true|1)\s*$/im.test(automaticConf))) {
    warnings.push('dnf-automatic is enabled and applies updates outside maintenance windows. Disable it: systemctl disable --now dnf-automatic.timer dnf-automatic-install.timer.');
  }
  if (exists(root, 'etc/systemd/system/multi-user.target.wants/yum-cron.service') && /^\s*apply_updates\s*=\s*yes\s*$/im.test(readUnder(root, 'etc/yum/yum-cron.conf') ?? '')) {
    warnings.push('yum-cron is enabled with apply_updates = yes: it installs updates outside maintenance windows. Disable it: systemctl disable --now yum-cron.');
  }
  if (/^AOU_ENABLE_CRONJOB\s*=\s*"?true"?/m.test(readUnder(root, 'etc/sysconfig/automatic_online_update') ?? '')) {
    warnings.push('Automatic Online Update is enabled (AOU_ENABLE_CRONJOB): it installs patches outside maintenance windows. Disable it in YaST or /etc/sysconfig/automatic_online_update.');
  }
  return warnings;
}

export interface FactOptions {
  root: string;
  agentVersion: string;
  packageManager: string | null;
  bootIdFile: string;
  /** process.platform unless a test says otherwise. */
  platform?: NodeJS.Platform;
}

export function gatherFacts(options: FactOptions): MachineFacts {
  if ((options.platform ?? process.platform) === 'win32') return gatherWindowsFacts(options);
  const { root } = options;
  const release = readOsRelease(root);
  const hostname = (readUnder(root, 'etc/hostname') ?? '').trim() || os.hostname();
  return {
    hostname,
    osType: 'LINUX',
    osName: release.PRETTY_NAME || release.NAME || 'Linux',
    osVersion: release.VERSION_ID ?? '',
    kernel: os.release(),
    agentVersion: options.agentVersion,
    bootId: readBootId(options.bootIdFile),
    packageManager: options.packageManager,
    environment: detectEnvironment(root),
    warnings: automaticUpdateWarnings(root),
    capabilities: [...AGENT_CAPABILITIES],
  };
}

/** What this agent announces it can do (MachineFacts.capabilities). */
export const AGENT_CAPABILITIES = ['SCRIPT_STEPS'] as const;
