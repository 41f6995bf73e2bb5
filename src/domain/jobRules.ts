/**
 * The rules of an install job that both ends of the wire apply: the agent decides with them while it
 * runs the job, and the server's planner predicts with the same window rule (src/fleet/planning.ts),
 * so a forecast and what the agent then does cannot drift apart. Pure, like
 * the rest of src/domain, so the agent bundle carries it.
 */
import type { RebootSetting } from './vocabulary.js';

/**
 * The rule the agent applies before each update: start it only if now + its expected seconds + the
 * reboot reserve is at most the window's end, so that no update is started that would overrun the
 * operator's window. What cannot start is NOT_ATTEMPTED.
 */
export function canStartUpdate(input: { nowMs: number; deadlineMs: number; expectedSeconds: number; rebootReserveSeconds: number }): boolean {
  return input.nowMs + (input.expectedSeconds + input.rebootReserveSeconds) * 1000 <= input.deadlineMs;
}

/**
 * Whether the agent reboots the machine once its job is done: never after a job that ran past the
 * window and its grace (the operator's window is over); otherwise ALWAYS and REBOOT_ONLY do, NEVER
 * does not (even when a package asks: the machine then stays "reboot pending" and says so),
 * IF_REQUIRED when the machine needs it (`rebootRequired`: an update asked, or the system says so).
 */
export function rebootsAfterJob({ setting, rebootRequired, timedOut }: { setting: RebootSetting; rebootRequired: boolean; timedOut: boolean }): boolean {
  if (timedOut) return false;
  if (setting === 'ALWAYS' || setting === 'REBOOT_ONLY') return true;
  if (setting === 'NEVER') return false;
  return rebootRequired;
}
