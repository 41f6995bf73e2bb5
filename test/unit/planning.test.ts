import { describe, expect, it } from 'vitest';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import { canStartUpdate } from '../../src/domain/jobRules.js';
import {
  DEFAULT_DURATIONS_SECONDS,
  deploymentRunStatus,
  expectedSeconds,
  failureThreshold,
  INSTALL_GRACE_SECONDS,
  machineRunStatus,
  matchesPattern,
  maxConcurrentMachines,
  orderUpdates,
  planMachine,
  type PlanMachineInput,
  resolveLimit,
  selectUpdates,
  shouldStartMoreMachines,
  summariseResults,
  type UpdateSelection,
} from '../../src/fleet/planning.js';

function update(name: string, over: Partial<PendingUpdate> = {}): PendingUpdate {
  return {
    name,
    installedVersion: '1.0',
    availableVersion: '1.1',
    arch: 'amd64',
    classification: 'OTHER',
    severity: null,
    advisoryIds: [],
    cveIds: [],
    rebootSuggested: false,
    repository: null,
    ...over,
  };
}

const kb = (id: string, over: Partial<PendingUpdate> = {}) =>
  update(id, { installedVersion: null, availableVersion: '1', arch: null, classification: 'SECURITY', rebootSuggested: true, ...over });

const ALL_LINUX: UpdateSelection = { classifications: ['CRITICAL', 'SECURITY', 'OTHER'], includePatterns: [], excludePatterns: [] };
const names = (updates: Array<{ name: string }>) => updates.map((u) => u.name);
const many = (count: number, over: Partial<PendingUpdate> = {}) =>
  Array.from({ length: count }, (_, i) => update(`pkg${String(i).padStart(2, '0')}`, over));

function plan(over: Partial<PlanMachineInput>) {
  return planMachine({
    pending: [],
    selection: ALL_LINUX,
    backend: 'apt',
    osType: 'LINUX',
    windowSeconds: 3600,
    rebootSetting: 'IF_REQUIRED',
    rebootPending: false,
    ...over,
  });
}

describe('include/exclude patterns', () => {
  it('matches package names with * and ? wildcards, case-sensitively', () => {
    expect(matchesPattern(update('openssl'), 'openssl*')).toBe(true);
    expect(matchesPattern(update('openssl-libs'), 'openssl*')).toBe(true);
    expect(matchesPattern(update('libssl3'), 'openssl*')).toBe(false);
    expect(matchesPattern(update('libssl3'), '*ssl*')).toBe(true);
    expect(matchesPattern(update('python3.11'), 'python3.1?')).toBe(true);
    expect(matchesPattern(update('python3.1'), 'python3.1?')).toBe(false);
    expect(matchesPattern(update('OpenSSL'), 'openssl')).toBe(false);
    expect(matchesPattern(update('bash'), 'bash')).toBe(true);
    expect(matchesPattern(update('bash'), 'bas')).toBe(false);
    expect(matchesPattern(update('bash'), '')).toBe(false);
  });

  it('pins an exact available version with name=version (the name may have wildcards)', () => {
    const openssl = update('openssl', { availableVersion: '3.0.2-0ubuntu1.12' });
    expect(matchesPattern(openssl, 'openssl=3.0.2-0ubuntu1.12')).toBe(true);
    expect(matchesPattern(openssl, 'openssl=3.0.2-0ubuntu1.13')).toBe(false);
    expect(matchesPattern(openssl, 'openssl=3.0.2')).toBe(false);
    expect(matchesPattern(openssl, 'open*=3.0.2-0ubuntu1.12')).toBe(true);
    expect(matchesPattern(openssl, 'curl=3.0.2-0ubuntu1.12')).toBe(false);
  });

  it('matches Windows KB ids with or without the KB prefix, in any case', () => {
    const kb5031356 = kb('KB5031356');
    expect(matchesPattern(kb5031356, 'KB5031356')).toBe(true);
    expect(matchesPattern(kb5031356, '5031356')).toBe(true);
    expect(matchesPattern(kb5031356, 'kb5031356')).toBe(true);
    expect(matchesPattern(kb5031356, 'KB503*')).toBe(true);
    expect(matchesPattern(kb5031356, '503135')).toBe(false);
    expect(matchesPattern(kb5031356, 'KB5031357')).toBe(false);
  });
});

describe('update selection', () => {
  const pending = [
    update('openssl', { classification: 'SECURITY' }),
    update('openssl-libs', { classification: 'SECURITY' }),
    update('vim', { classification: 'OTHER' }),
    update('htop', { classification: 'OTHER' }),
    update('kernel', { classification: 'CRITICAL' }),
  ];

  it('selects by classification and says why the rest is left out', () => {
    const result = selectUpdates(pending, { classifications: ['CRITICAL', 'SECURITY'], includePatterns: [], excludePatterns: [] });
    expect(names(result.selected)).toEqual(['openssl', 'openssl-libs', 'kernel']);
    expect(result.notSelected.map((n) => [n.update.name, n.reason])).toEqual([
      ['vim', 'classification OTHER is not selected'],
      ['htop', 'classification OTHER is not selected'],
    ]);
  });

  it('lets an include pattern force in an update of an unselected classification', () => {
    const result = selectUpdates(pending, { classifications: ['SECURITY'], includePatterns: ['vim'], excludePatterns: [] });
    expect(names(result.selected)).toEqual(['openssl', 'openssl-libs', 'vim']);
    expect(names(result.notSelected.map((n) => n.update))).toEqual(['htop', 'kernel']);
  });

  it('lets exclude win over both classification and include', () => {
    const result = selectUpdates(pending, { classifications: ['SECURITY', 'CRITICAL'], includePatterns: ['openssl-libs', 'htop'], excludePatterns: ['openssl*', 'htop'] });
    expect(names(result.selected)).toEqual(['kernel']);
    expect(result.notSelected.map((n) => [n.update.name, n.reason])).toEqual([
      ['openssl', 'excluded by pattern "openssl*"'],
      ['openssl-libs', 'excluded by pattern "openssl*"'],
      ['vim', 'classification OTHER is not selected'],
      ['htop', 'excluded by pattern "htop"'],
    ]);
  });

  it('treats a new package pulled in by an update like any other update', () => {
    const result = selectUpdates([update('libnew', { installedVersion: null, classification: 'OTHER' })], { classifications: ['SECURITY'], includePatterns: [], excludePatterns: [] });
    expect(result.selected).toEqual([]);
  });
});

describe('install order', () => {
  it('installs critical, then security, then the rest; by severity then name within each', () => {
    const ordered = orderUpdates([
      update('zlib', { classification: 'OTHER' }),
      update('bash', { classification: 'SECURITY', severity: 'LOW' }),
      update('curl', { classification: 'SECURITY', severity: 'IMPORTANT' }),
      update('kernel', { classification: 'CRITICAL', severity: 'CRITICAL' }),
      update('apache', { classification: 'SECURITY', severity: null }),
      update('aaa', { classification: 'OTHER', severity: 'MODERATE' }),
      update('glibc', { classification: 'SECURITY', severity: 'IMPORTANT' }),
    ]);
    expect(names(ordered)).toEqual(['kernel', 'curl', 'glibc', 'bash', 'apache', 'aaa', 'zlib']);
  });

  it('installs a new package before the updates of its group, so a dependency comes before what needs it', () => {
    const ordered = orderUpdates([
      update('libfoo', { classification: 'SECURITY', severity: 'CRITICAL' }),
      update('libfoo-common', { classification: 'SECURITY', severity: 'LOW', installedVersion: null }),
      update('kernel', { classification: 'CRITICAL' }),
      update('newdep', { classification: 'OTHER', installedVersion: null }),
    ]);
    expect(names(ordered)).toEqual(['kernel', 'libfoo-common', 'libfoo', 'newdep']);
  });

  it('does not reorder the caller’s array', () => {
    const input = [update('b'), update('a')];
    orderUpdates(input);
    expect(names(input)).toEqual(['b', 'a']);
  });
});

describe('expected durations', () => {
  it('uses the conservative constants: 90 s apt/dnf/yum, 4 min zypper, 15 min per Windows update, 20 per service pack', () => {
    expect(expectedSeconds(update('a'), 'apt')).toBe(90);
    expect(expectedSeconds(update('a'), 'dnf')).toBe(90);
    expect(expectedSeconds(update('a'), 'yum')).toBe(90);
    expect(expectedSeconds(update('a'), 'zypper')).toBe(240);
    expect(expectedSeconds(kb('KB1'), 'windows')).toBe(15 * 60);
    expect(expectedSeconds(kb('KB2', { classification: 'SERVICE_PACK' }), 'windows')).toBe(20 * 60);
    expect(DEFAULT_DURATIONS_SECONDS).toMatchObject({ apt: 90, zypper: 240, windows: 900, windowsServicePack: 1200 });
  });

  it('uses a learned duration when there is one, but never below 10 s', () => {
    expect(expectedSeconds(update('a'), 'apt', 30)).toBe(30);
    expect(expectedSeconds(update('a'), 'apt', 400)).toBe(400);
    expect(expectedSeconds(update('a'), 'apt', 2)).toBe(10);
    expect(expectedSeconds(update('a'), 'apt', 12.2)).toBe(13);
    expect(expectedSeconds(update('a'), 'apt', 0)).toBe(90);
    expect(expectedSeconds(update('a'), 'apt', null)).toBe(90);
    expect(expectedSeconds(kb('KB1'), 'windows', 120)).toBe(120);
  });
});

describe('fitting updates into the maintenance window', () => {
  it('fits exactly 33 apt updates of 90 s into a 60-minute window keeping 10 minutes for a reboot', () => {
    const result = plan({ pending: many(40), rebootSetting: 'ALWAYS' });
    expect(result.rebootReserveSeconds).toBe(600);
    expect(result.toInstall).toHaveLength(33); // (3600 - 600) / 90 = 33.3
    expect(result.predictedNotAttempted).toHaveLength(7);
    expect(result.expectedSeconds).toBe(33 * 90);
    expect(result.toInstall.map((u) => u.order)).toEqual(Array.from({ length: 33 }, (_, i) => i + 1));
    expect(result.predictedNotAttempted[0]).toMatchObject({ name: 'pkg33', order: 34, expectedSeconds: 90 });
    expect(result.willReboot).toBe('YES');
  });

  it('keeps no reserve when no reboot may follow, so 40 updates fit the same window', () => {
    // dnf says beforehand which updates ask for a reboot: none of these does.
    const result = plan({ pending: many(40), backend: 'dnf' });
    expect(result.rebootReserveSeconds).toBe(0);
    expect(result.toInstall).toHaveLength(40);
    expect(result.willReboot).toBe('NO');
  });

  it('keeps the reserve on apt, where any package may ask for a reboot, and says MAYBE', () => {
    const result = plan({ pending: many(40) });
    expect(result.rebootReserveSeconds).toBe(600);
    expect(result.toInstall).toHaveLength(33);
    expect(result.willReboot).toBe('MAYBE');
  });

  it('plans an update that ends exactly at the window minus the reserve, not one second later', () => {
    const two = many(2, { rebootSuggested: true });
    expect(plan({ pending: two, windowSeconds: 90 + 90 + 600 }).toInstall).toHaveLength(2);
    const tight = plan({ pending: two, windowSeconds: 90 + 90 + 600 - 1 });
    expect(names(tight.toInstall)).toEqual(['pkg00']);
    expect(names(tight.predictedNotAttempted)).toEqual(['pkg01']);
    expect(tight.willReboot).toBe('IF_REQUIRED');
  });

  it('skips a big update that does not fit but still installs a later small one', () => {
    const result = plan({
      pending: [update('aaa'), update('bigdb'), update('zzz')],
      windowSeconds: 1800,
      rebootSetting: 'ALWAYS',
      learnedSeconds: { bigdb: 1500 },
    });
    expect(names(result.toInstall)).toEqual(['aaa', 'zzz']);
    expect(result.predictedNotAttempted).toEqual([expect.objectContaining({ name: 'bigdb', expectedSeconds: 1500, order: 2 })]);
  });

  it('puts critical and security updates first so they are the ones that fit', () => {
    const result = plan({
      pending: [update('aaa'), update('bbb'), update('openssl', { classification: 'SECURITY' }), update('kernel', { classification: 'CRITICAL' })],
      windowSeconds: 90 * 2,
      rebootSetting: 'NEVER',
    });
    expect(names(result.toInstall)).toEqual(['kernel', 'openssl']);
    expect(names(result.predictedNotAttempted)).toEqual(['aaa', 'bbb']);
  });

  it('fits exactly 3 Windows updates of 15 minutes into a 60-minute window with a 15-minute reserve', () => {
    const result = plan({
      pending: [kb('KB1'), kb('KB2'), kb('KB3'), kb('KB4')],
      selection: { classifications: ['SECURITY', 'SERVICE_PACK'], includePatterns: [], excludePatterns: [] },
      backend: 'windows',
      osType: 'WINDOWS',
    });
    expect(result.rebootReserveSeconds).toBe(900);
    expect(names(result.toInstall)).toEqual(['KB1', 'KB2', 'KB3']);
    expect(names(result.predictedNotAttempted)).toEqual(['KB4']);
    expect(result.expectedSeconds).toBe(2700);
  });

  it('fits only 2 Windows updates when the third is a 20-minute service pack', () => {
    const result = plan({
      pending: [kb('KB1'), kb('KB2'), kb('KB3', { classification: 'SERVICE_PACK' })],
      selection: { classifications: ['SECURITY', 'SERVICE_PACK'], includePatterns: [], excludePatterns: [] },
      backend: 'windows',
      osType: 'WINDOWS',
    });
    expect(names(result.toInstall)).toEqual(['KB1', 'KB2']);
    expect(result.predictedNotAttempted).toEqual([expect.objectContaining({ name: 'KB3', expectedSeconds: 1200 })]);
  });

  it('uses learned durations per package, floored at 10 s', () => {
    const result = plan({ pending: many(3), windowSeconds: 100, rebootSetting: 'NEVER', learnedSeconds: { pkg00: 40, pkg01: 1, pkg02: 60 } });
    expect(result.toInstall.map((u) => [u.name, u.expectedSeconds])).toEqual([['pkg00', 40], ['pkg01', 10]]);
    expect(names(result.predictedNotAttempted)).toEqual(['pkg02']);
    expect(result.expectedSeconds).toBe(50);
  });

  it('reports the updates the selection leaves out alongside the plan', () => {
    const result = plan({
      pending: [update('vim'), update('openssl', { classification: 'SECURITY' })],
      selection: { classifications: ['SECURITY'], includePatterns: [], excludePatterns: [] },
    });
    expect(names(result.toInstall)).toEqual(['openssl']);
    expect(result.notSelected).toEqual([{ update: expect.objectContaining({ name: 'vim' }), reason: 'classification OTHER is not selected' }]);
  });

  it('installs nothing with REBOOT_ONLY and plans a reboot', () => {
    const result = plan({
      pending: [update('vim'), update('openssl', { classification: 'SECURITY' })],
      selection: { classifications: ['SECURITY'], includePatterns: [], excludePatterns: [] },
      rebootSetting: 'REBOOT_ONLY',
    });
    expect(result.toInstall).toEqual([]);
    expect(result.predictedNotAttempted).toEqual([]);
    expect(result.notSelected.map((n) => [n.update.name, n.reason])).toEqual([
      ['vim', 'classification OTHER is not selected'],
      ['openssl', 'the deployment only reboots'],
    ]);
    expect(result.willReboot).toBe('YES');
    expect(result.expectedSeconds).toBe(0);
  });

  it('keeps no reserve and plans no reboot with NEVER, even for a kernel on a machine pending a reboot', () => {
    const result = plan({ pending: [update('kernel', { rebootSuggested: true }), ...many(39)], rebootSetting: 'NEVER', rebootPending: true });
    expect(result.rebootReserveSeconds).toBe(0);
    expect(result.toInstall).toHaveLength(40);
    expect(result.willReboot).toBe('NO');
  });

  it('reboots with IF_REQUIRED on a machine already pending a reboot, and keeps the reserve for it', () => {
    const result = plan({ pending: many(40), rebootPending: true });
    expect(result.rebootReserveSeconds).toBe(600);
    expect(result.toInstall).toHaveLength(33);
    expect(result.willReboot).toBe('YES');
  });
});

describe('the runtime rule before each update', () => {
  const deadlineMs = Date.parse('2026-11-25T12:00:00Z');

  it('starts an update only if it and the reboot reserve end by the deadline', () => {
    const nowMs = deadlineMs - (90 + 600) * 1000;
    expect(canStartUpdate({ nowMs, deadlineMs, expectedSeconds: 90, rebootReserveSeconds: 600 })).toBe(true);
    expect(canStartUpdate({ nowMs: nowMs + 1, deadlineMs, expectedSeconds: 90, rebootReserveSeconds: 600 })).toBe(false);
    expect(canStartUpdate({ nowMs: nowMs + 1, deadlineMs, expectedSeconds: 90, rebootReserveSeconds: 0 })).toBe(true);
    expect(canStartUpdate({ nowMs: deadlineMs + 1, deadlineMs, expectedSeconds: 0, rebootReserveSeconds: 0 })).toBe(false);
  });

  it('gives an update running at the deadline 10 minutes of grace', () => {
    expect(INSTALL_GRACE_SECONDS).toBe(600);
  });
});

describe('rate control', () => {
  it('rounds percentages up and takes counts as they are', () => {
    expect(resolveLimit({ value: 10, unit: 'PERCENT' }, 15, 99)).toBe(2);
    expect(resolveLimit({ value: 10, unit: 'PERCENT' }, 30, 99)).toBe(3);
    expect(resolveLimit({ value: 50, unit: 'PERCENT' }, 7, 99)).toBe(4);
    expect(resolveLimit({ value: 5, unit: 'COUNT' }, 100, 99)).toBe(5);
    expect(resolveLimit(null, 100, 99)).toBe(99);
  });

  it('runs every machine at once by default, and at least one machine whatever the limit', () => {
    expect(maxConcurrentMachines(null, 80)).toBe(80);
    // Without a limit, a large run goes 100 machines at a time (a whole-fleet burst crashed the worker).
    expect(maxConcurrentMachines(null, 250)).toBe(100);
    expect(maxConcurrentMachines(null, 0)).toBe(1);
    expect(maxConcurrentMachines({ value: 1, unit: 'PERCENT' }, 10)).toBe(1);
    expect(maxConcurrentMachines({ value: 0, unit: 'COUNT' }, 10)).toBe(1);
    expect(maxConcurrentMachines({ value: 25, unit: 'PERCENT' }, 10)).toBe(3);
  });

  it('never runs more than 1,000 machines at once: Temporal allows a workflow 2,000 pending children', () => {
    expect(maxConcurrentMachines({ value: 5000, unit: 'COUNT' }, 5000)).toBe(1000);
    expect(maxConcurrentMachines({ value: 100, unit: 'PERCENT' }, 5000)).toBe(1000);
    expect(maxConcurrentMachines({ value: 100, unit: 'PERCENT' }, 800)).toBe(800);
  });

  it('has no failure threshold by default; a threshold stops new machines once reached', () => {
    expect(failureThreshold(null, 10)).toBe(Number.POSITIVE_INFINITY);
    expect(failureThreshold({ value: 2, unit: 'COUNT' }, 10)).toBe(2);
    expect(failureThreshold({ value: 10, unit: 'PERCENT' }, 15)).toBe(2);
    expect(failureThreshold({ value: 0, unit: 'COUNT' }, 10)).toBe(1);

    const threshold = failureThreshold({ value: 2, unit: 'COUNT' }, 10);
    expect(shouldStartMoreMachines({ running: 1, failed: 1, remaining: 5 }, 3, threshold)).toBe(true);
    expect(shouldStartMoreMachines({ running: 1, failed: 2, remaining: 5 }, 3, threshold)).toBe(false);
    expect(shouldStartMoreMachines({ running: 0, failed: 100, remaining: 5 }, 3, Number.POSITIVE_INFINITY)).toBe(true);
  });

  it('starts a machine only when one remains and a concurrency slot is free', () => {
    expect(shouldStartMoreMachines({ running: 3, failed: 0, remaining: 5 }, 3, Number.POSITIVE_INFINITY)).toBe(false);
    expect(shouldStartMoreMachines({ running: 2, failed: 0, remaining: 5 }, 3, Number.POSITIVE_INFINITY)).toBe(true);
    expect(shouldStartMoreMachines({ running: 0, failed: 0, remaining: 0 }, 3, Number.POSITIVE_INFINITY)).toBe(false);
  });
});

describe('machine run status', () => {
  const ok = { timedOut: false, rebootFailed: false, agentLost: false };

  it('succeeds when nothing failed, even with updates not attempted or not selected', () => {
    expect(machineRunStatus(['SUCCEEDED', 'NOT_ATTEMPTED', 'NOT_SELECTED'], ok)).toBe('SUCCEEDED');
    expect(machineRunStatus([], ok)).toBe('SUCCEEDED');
  });

  it('fails on a failed update, a failed reboot or a lost agent, before timing out', () => {
    expect(machineRunStatus(['SUCCEEDED', 'FAILED'], ok)).toBe('FAILED');
    // A job that could not run at all (an assess-only agent) fails the machine run; a cancel wins over all.
    expect(machineRunStatus(['NOT_ATTEMPTED'], { ...ok, jobFailed: true })).toBe('FAILED');
    expect(machineRunStatus(['FAILED'], { ...ok, agentLost: true, canceled: true })).toBe('CANCELED');
    expect(machineRunStatus(['SUCCEEDED'], { ...ok, rebootFailed: true })).toBe('FAILED');
    expect(machineRunStatus(['SUCCEEDED'], { ...ok, agentLost: true })).toBe('FAILED');
    expect(machineRunStatus(['FAILED'], { ...ok, timedOut: true })).toBe('FAILED');
  });

  it('times out when an update overran the window and its grace', () => {
    expect(machineRunStatus(['SUCCEEDED', 'NOT_ATTEMPTED'], { ...ok, timedOut: true })).toBe('TIMED_OUT');
  });
});

describe('deployment run status', () => {
  const succeeded = { status: 'SUCCEEDED' as const, failedUpdates: 0, succeededUpdates: 3 };
  const failed = { status: 'FAILED' as const, failedUpdates: 1, succeededUpdates: 0 };

  it('is CANCELED when canceled, whatever the machines did', () => {
    expect(deploymentRunStatus([succeeded], true)).toBe('CANCELED');
    expect(deploymentRunStatus([], true)).toBe('CANCELED');
  });

  it('is FAILED when the run targeted no machine', () => {
    expect(deploymentRunStatus([], false)).toBe('FAILED');
  });

  it('is SUCCEEDED when every machine run succeeded', () => {
    expect(deploymentRunStatus([succeeded, succeeded], false)).toBe('SUCCEEDED');
    expect(deploymentRunStatus([succeeded, { status: 'SUCCEEDED', failedUpdates: 0, succeededUpdates: 0 }], false)).toBe('SUCCEEDED');
  });

  it('is PARTIALLY_FAILED when one or more updates fail alongside successes', () => {
    expect(deploymentRunStatus([succeeded, failed], false)).toBe('PARTIALLY_FAILED');
    expect(deploymentRunStatus([{ status: 'FAILED', failedUpdates: 1, succeededUpdates: 4 }], false)).toBe('PARTIALLY_FAILED');
    expect(deploymentRunStatus([succeeded, { status: 'TIMED_OUT', failedUpdates: 0, succeededUpdates: 0 }], false)).toBe('PARTIALLY_FAILED');
    expect(deploymentRunStatus([succeeded, { status: 'NOT_STARTED', failedUpdates: 0, succeededUpdates: 0 }], false)).toBe('PARTIALLY_FAILED');
    expect(deploymentRunStatus([{ status: 'TIMED_OUT', failedUpdates: 0, succeededUpdates: 2 }], false)).toBe('PARTIALLY_FAILED');
  });

  it('is FAILED when no machine run got any update installed', () => {
    expect(deploymentRunStatus([failed, failed], false)).toBe('FAILED');
    expect(
      deploymentRunStatus([failed, { status: 'TIMED_OUT', failedUpdates: 0, succeededUpdates: 0 }, { status: 'NOT_STARTED', failedUpdates: 0, succeededUpdates: 0 }], false),
    ).toBe('FAILED');
  });

  it('is IN_PROGRESS while a machine run has not finished', () => {
    expect(deploymentRunStatus([succeeded, { status: 'REBOOTING', failedUpdates: 0, succeededUpdates: 1 }], false)).toBe('IN_PROGRESS');
    expect(deploymentRunStatus([{ status: 'PENDING', failedUpdates: 0, succeededUpdates: 0 }], false)).toBe('IN_PROGRESS');
  });
});

describe('result summary', () => {
  it('counts every status, zero when absent', () => {
    expect(summariseResults(['SUCCEEDED', 'SUCCEEDED', 'FAILED', 'NOT_SELECTED'])).toEqual({ SUCCEEDED: 2, FAILED: 1, NOT_ATTEMPTED: 0, NOT_SELECTED: 1 });
    expect(summariseResults([])).toEqual({ SUCCEEDED: 0, FAILED: 0, NOT_ATTEMPTED: 0, NOT_SELECTED: 0 });
  });
});
