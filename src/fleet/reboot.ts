/**
 * Reboots around an install job: whether one may follow (and so whether the window keeps time for
 * it), and whether the agent reboots once the updates are in.
 *
 * Plain functions on plain data, imported by the planner (preview and runs, whose plan keeps the
 * reserve the install job carries), the agent (whether it reboots) and the machine run's workflow
 * (what came of it): one module, so the preview, the job's reserve, the agent and the run agree.
 */
import type { RebootSetting } from '../domain/vocabulary.js';
import type { OsType } from './compliance.js';

/**
 * Time kept free at the end of the window when a reboot may follow the updates: 10 minutes on
 * Linux, 15 on Windows (which applies updates while it restarts), so the machine is back up before
 * the window closes.
 */
export const REBOOT_RESERVE_SECONDS: Readonly<Record<OsType, number>> = { LINUX: 600, WINDOWS: 900 };

/**
 * What the planner can say about a reboot after the updates:
 * - YES: the machine reboots (ALWAYS, REBOOT_ONLY, or IF_REQUIRED on a machine already pending one);
 * - IF_REQUIRED: an update's metadata suggests one (a kernel, reboot_suggested, installhint); the
 *   install decides;
 * - MAYBE: nothing planned is known to ask for one, but on this package manager any update may:
 *   a Debian maintainer script may write /run/reboot-required whatever its package's name;
 * - NO: NEVER, nothing planned, or nothing planned asks for one on a package manager whose
 *   metadata says so beforehand (dnf, zypper, Windows Update).
 * Every answer but NO keeps the reboot reserve.
 */
export type RebootForecast = 'NO' | 'MAYBE' | 'IF_REQUIRED' | 'YES';

/**
 * Package managers whose updates may ask for a reboot without saying so beforehand. apt has no
 * reboot metadata: an assessment's rebootSuggested comes from package names (kernel, libc6,
 * systemd, dbus, microcode, firmware), and any other package's postinst may still ask. dnf's
 * reboot rule (needs-restarting: core packages and reboot_suggested advisories), zypper's
 * (reboot-needed hints and patch flags) and Windows Update's (RebootBehavior) are the very ones
 * their assessments report.
 */
const REBOOT_NOT_KNOWN_BEFOREHAND: ReadonlySet<string> = new Set(['apt']);

export interface RebootForecastInput {
  setting: RebootSetting;
  /** The machine's package backend: apt, dnf, yum, zypper, windows. */
  backend: string;
  /** The machine already needs a reboot (from its last assessment). */
  machineRebootPending: boolean;
  /** The updates the job installs (or may install): whether their metadata suggests a reboot. */
  updates: ReadonlyArray<{ rebootSuggested: boolean }>;
}

export function rebootForecast({ setting, backend, machineRebootPending, updates }: RebootForecastInput): RebootForecast {
  switch (setting) {
    case 'ALWAYS':
    case 'REBOOT_ONLY':
      return 'YES';
    case 'NEVER':
      return 'NO';
    case 'IF_REQUIRED':
      if (machineRebootPending) return 'YES';
      if (updates.length === 0) return 'NO';
      if (updates.some((update) => update.rebootSuggested)) return 'IF_REQUIRED';
      return REBOOT_NOT_KNOWN_BEFOREHAND.has(backend) ? 'MAYBE' : 'NO';
  }
}

/** Seconds to keep free at the window's end for a reboot the forecast allows for (0 for NO). */
export function rebootReserveSeconds(forecast: RebootForecast, osType: OsType): number {
  return forecast === 'NO' ? 0 : REBOOT_RESERVE_SECONDS[osType];
}

/**
 * What became of the reboot after a job, as its machine run records it: REBOOTED (the agent
 * rebooted and the machine came back with a new boot id), TIMED_OUT (it did not come back in
 * time), NOT_ALLOWED (a reboot is needed but the setting or the window kept the agent from it),
 * NOT_NEEDED.
 */
export type RebootOutcome = 'NOT_NEEDED' | 'NOT_ALLOWED' | 'REBOOTED' | 'TIMED_OUT';

/** The reboot outcome of a job's result (`cameBack`: the machine came back from the reboot it started; see RebootOutcome). */
export function rebootOutcome(result: { rebooting: boolean; rebootRequired: boolean }, cameBack = true): RebootOutcome {
  if (result.rebooting) return cameBack ? 'REBOOTED' : 'TIMED_OUT';
  return result.rebootRequired ? 'NOT_ALLOWED' : 'NOT_NEEDED';
}
