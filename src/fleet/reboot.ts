import type { RebootSetting } from '../agent/protocol.js';

/**
 * Whether the machine reboots after a job: ALWAYS and REBOOT_ONLY do, NEVER does not (even when a
 * package asks: the machine then stays "reboot pending" and says so), IF_REQUIRED when the
 * machine needs it.
 */
export function shouldReboot(setting: RebootSetting, rebootRequired: boolean): boolean {
  if (setting === 'ALWAYS' || setting === 'REBOOT_ONLY') return true;
  if (setting === 'NEVER') return false;
  return rebootRequired;
}
