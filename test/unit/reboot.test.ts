import { describe, expect, it } from 'vitest';
import { rebootsAfterJob } from '../../src/domain/jobRules.js';
import { REBOOT_RESERVE_SECONDS, rebootForecast, rebootOutcome, rebootReserveSeconds, type RebootForecast, type RebootForecastInput } from '../../src/fleet/reboot.js';

const plain = { rebootSuggested: false };
const kernel = { rebootSuggested: true };

describe('what the planner says about a reboot, and the reserve it keeps', () => {
  const cases: Array<[string, RebootForecastInput, RebootForecast]> = [
    ['ALWAYS reboots, whatever is installed', { setting: 'ALWAYS', backend: 'dnf', machineRebootPending: false, updates: [] }, 'YES'],
    ['REBOOT_ONLY reboots', { setting: 'REBOOT_ONLY', backend: 'apt', machineRebootPending: false, updates: [] }, 'YES'],
    ['NEVER never, not for a kernel on a machine pending a reboot', { setting: 'NEVER', backend: 'apt', machineRebootPending: true, updates: [kernel] }, 'NO'],
    ['IF_REQUIRED on a machine already pending a reboot', { setting: 'IF_REQUIRED', backend: 'dnf', machineRebootPending: true, updates: [] }, 'YES'],
    ['IF_REQUIRED with an update whose metadata suggests one (dnf)', { setting: 'IF_REQUIRED', backend: 'dnf', machineRebootPending: false, updates: [plain, kernel] }, 'IF_REQUIRED'],
    ['IF_REQUIRED with a kernel on apt (the assessment names it)', { setting: 'IF_REQUIRED', backend: 'apt', machineRebootPending: false, updates: [plain, kernel] }, 'IF_REQUIRED'],
    ['IF_REQUIRED on dnf with nothing asking: its metadata would say', { setting: 'IF_REQUIRED', backend: 'dnf', machineRebootPending: false, updates: [plain] }, 'NO'],
    ['IF_REQUIRED on zypper with nothing asking', { setting: 'IF_REQUIRED', backend: 'zypper', machineRebootPending: false, updates: [plain] }, 'NO'],
    ['IF_REQUIRED on Windows with nothing asking', { setting: 'IF_REQUIRED', backend: 'windows', machineRebootPending: false, updates: [plain] }, 'NO'],
    ['IF_REQUIRED on apt with nothing known to ask: any postinst may write /run/reboot-required', { setting: 'IF_REQUIRED', backend: 'apt', machineRebootPending: false, updates: [plain] }, 'MAYBE'],
    ['IF_REQUIRED on apt with nothing to install', { setting: 'IF_REQUIRED', backend: 'apt', machineRebootPending: false, updates: [] }, 'NO'],
  ];

  it.each(cases)('%s', (_what, input, expected) => {
    expect(rebootForecast(input)).toBe(expected);
  });

  it('keeps 10 minutes on Linux and 15 on Windows for every forecast but NO', () => {
    expect(REBOOT_RESERVE_SECONDS).toEqual({ LINUX: 600, WINDOWS: 900 });
    expect((['YES', 'IF_REQUIRED', 'MAYBE', 'NO'] as const).map((f) => [rebootReserveSeconds(f, 'LINUX'), rebootReserveSeconds(f, 'WINDOWS')])).toEqual([
      [600, 900],
      [600, 900],
      [600, 900],
      [0, 0],
    ]);
  });
});

describe('whether the agent reboots after the job', () => {
  it.each([
    ['ALWAYS', false, false, true],
    ['REBOOT_ONLY', false, false, true],
    ['NEVER', true, false, false],
    ['IF_REQUIRED', false, false, false],
    ['IF_REQUIRED', true, false, true],
    // A job that ran past the window and its grace never reboots: the operator's window is over.
    ['ALWAYS', true, true, false],
    ['IF_REQUIRED', true, true, false],
  ] as const)('%s, reboot required %s, timed out %s: %s', (setting, rebootRequired, timedOut, expected) => {
    expect(rebootsAfterJob({ setting, rebootRequired, timedOut })).toBe(expected);
  });
});

describe('what the machine run records of the reboot', () => {
  it.each([
    [{ rebooting: true, rebootRequired: true }, true, 'REBOOTED'],
    [{ rebooting: true, rebootRequired: false }, true, 'REBOOTED'],
    [{ rebooting: true, rebootRequired: true }, false, 'TIMED_OUT'],
    [{ rebooting: false, rebootRequired: true }, true, 'NOT_ALLOWED'],
    [{ rebooting: false, rebootRequired: false }, true, 'NOT_NEEDED'],
  ] as const)('%j, came back %s: %s', (result, cameBack, expected) => {
    expect(rebootOutcome(result, cameBack)).toBe(expected);
  });
});
