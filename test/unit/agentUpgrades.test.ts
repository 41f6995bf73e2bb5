import { describe, expect, it } from 'vitest';
import {
  afterBusy,
  agentUpgradeStatus,
  checkUpgradeRequest,
  chooseUpgradeTargets,
  compareAgentVersions,
  isOutdated,
  MAX_CONCURRENT_UPGRADES,
  upgradeConcurrency,
  upgradeFailureThreshold,
  versionCounts,
  type UpgradeCandidate,
} from '../../src/fleet/agentUpgrades.js';

describe('agent versions', () => {
  it.each<[string, string, -1 | 0 | 1 | null]>([
    ['0.1.0', '0.1.0', 0],
    ['0.1.0', '0.2.0', -1],
    ['0.10.0', '0.9.9', 1],
    ['1.0.0', '0.99.99', 1],
    ['0.2.0-rc.1', '0.2.0', -1],
    ['0.2.0-rc.2', '0.2.0-rc.10', -1],
    ['0.2.0-alpha', '0.2.0-1', 1],
    ['0.2.0-rc.1', '0.2.0-rc.1.1', -1],
    ['0.2.0+build.5', '0.2.0', 0],
    ['v0.3.0', '0.3.0', 0],
    ['simulated', '0.1.0', null],
  ])('%s against %s is %s', (a, b, expected) => {
    expect(compareAgentVersions(a, b)).toBe(expected);
  });

  it('calls an agent outdated when it is older, or not a version at all; unknown when either is unknown', () => {
    expect(isOutdated('0.1.0', '0.2.0')).toBe(true);
    expect(isOutdated('0.2.0', '0.2.0')).toBe(false);
    expect(isOutdated('0.3.0', '0.2.0')).toBe(false);
    expect(isOutdated('simulated', '0.2.0')).toBe(true);
    expect(isOutdated(null, '0.2.0')).toBeNull();
    expect(isOutdated('0.1.0', null)).toBeNull();
  });

  it('counts machines per version newest first, with machines that never reported one last', () => {
    expect(versionCounts([{ version: '0.1.0', machines: 3 }, { version: null, machines: 1 }, { version: '0.10.0', machines: 2 }, { version: 'simulated', machines: 5 }, { version: '0.9.0', machines: 4 }], '0.10.0')).toEqual([
      { version: '0.10.0', machines: 2, outdated: false },
      { version: '0.9.0', machines: 4, outdated: true },
      { version: '0.1.0', machines: 3, outdated: true },
      { version: 'simulated', machines: 5, outdated: true },
      { version: null, machines: 1, outdated: null },
    ]);
  });
});

describe('which machines an upgrade takes', () => {
  const now = new Date('2026-03-01T12:00:00Z');
  const seen = new Date('2026-03-01T11:59:30Z');
  const machine = (name: string, over: Partial<UpgradeCandidate> = {}): UpgradeCandidate => ({ id: `id-${name}`, name, osType: 'LINUX', agentVersion: '0.1.0', lastSeenAt: seen, ...over });

  it('takes connected Linux agents behind the version, in name order, and says why it leaves out the others', () => {
    const targets = chooseUpgradeTargets(
      [
        machine('web-2'),
        machine('web-1'),
        machine('win-1', { osType: 'WINDOWS' }),
        machine('current', { agentVersion: '0.2.0' }),
        machine('newer', { agentVersion: '0.3.0' }),
        machine('gone', { lastSeenAt: new Date('2026-03-01T11:50:00Z') }),
        machine('never', { lastSeenAt: null }),
        machine('sim', { agentVersion: 'simulated' }),
      ],
      '0.2.0',
      now,
      180_000,
    );
    expect(targets.map((t) => [t.machineName, t.status, t.code])).toEqual([
      ['current', 'SKIPPED', 'ALREADY_CURRENT'],
      ['gone', 'SKIPPED', 'DISCONNECTED'],
      ['never', 'SKIPPED', 'DISCONNECTED'],
      ['newer', 'SKIPPED', 'NEWER'],
      ['sim', 'PENDING', null],
      ['web-1', 'PENDING', null],
      ['web-2', 'PENDING', null],
      ['win-1', 'SKIPPED', 'NOT_SUPPORTED'],
    ]);
    expect(targets.find((t) => t.machineName === 'gone')!.message).toBe('The agent has not checked in since 2026-03-01T11:50:00.000Z: it cannot be reached.');
    expect(targets.find((t) => t.machineName === 'newer')!.message).toBe('The agent runs version 0.3.0, newer than the 0.2.0 this server ships: it is not downgraded.');
  });
});

describe('rate control', () => {
  it('runs 100 at once by default, as many as asked (count or percent), never more than Temporal allows', () => {
    expect(upgradeConcurrency(null, 5000)).toBe(100);
    expect(upgradeConcurrency(null, 30)).toBe(30);
    expect(upgradeConcurrency({ value: 10, unit: 'COUNT' }, 1000)).toBe(10);
    expect(upgradeConcurrency({ value: 5, unit: 'PERCENT' }, 1000)).toBe(50);
    expect(upgradeConcurrency({ value: 100, unit: 'PERCENT' }, 50_000)).toBe(MAX_CONCURRENT_UPGRADES);
    expect(upgradeFailureThreshold(null, 1000)).toBe(Number.POSITIVE_INFINITY);
    expect(upgradeFailureThreshold({ value: 2, unit: 'PERCENT' }, 1000)).toBe(20);
  });

  it('asks a busy agent again a minute later, and gives up after half an hour', () => {
    expect(afterBusy(1)).toEqual({ retryInSeconds: 60 });
    expect(afterBusy(29)).toEqual({ retryInSeconds: 60 });
    expect(afterBusy(30)).toEqual({ skip: 'The agent was running an install job each of the 30 times it was asked (over 30 minutes): not upgraded; run the upgrade again after its deployments.' });
    expect(afterBusy(2, { retrySeconds: 1, maxAttempts: 2 })).toHaveProperty('skip');
  });

  it('checks a request: one way of choosing machines, limits in range, a sane rollback window', () => {
    expect(checkUpgradeRequest({})).toEqual({ field: 'input', problem: 'Choose the machines one way: allMachines: true, machineIds, or filter.' });
    expect(checkUpgradeRequest({ allMachines: true, machineIds: ['a'] })).toEqual({ field: 'input', problem: 'Choose the machines one way: allMachines: true, machineIds, or filter; got allMachines and machineIds.' });
    expect(checkUpgradeRequest({ filter: { tags: [] } })).toEqual({ field: 'filter', problem: 'filter needs tags or nameContains (allMachines: true takes every machine).' });
    expect(checkUpgradeRequest({ allMachines: true, maxConcurrent: { value: 0, unit: 'COUNT' } })).toMatchObject({ field: 'maxConcurrent.value' });
    expect(checkUpgradeRequest({ allMachines: true, maxFailures: { value: 101, unit: 'PERCENT' } })).toMatchObject({ field: 'maxFailures.value' });
    expect(checkUpgradeRequest({ allMachines: true, rollbackAfterSeconds: 10 })).toEqual({ field: 'rollbackAfterSeconds', problem: 'rollbackAfterSeconds must be a whole number from 30 to 3600; got 10.' });
    expect(checkUpgradeRequest({ filter: { tags: ['web'], nameContains: '  ' }, maxConcurrent: { value: 10, unit: 'PERCENT' } })).toEqual({
      targets: { allMachines: false, machineIds: [], filter: { tags: ['web'], nameContains: null } },
      maxConcurrent: { value: 10, unit: 'PERCENT' },
      maxFailures: null,
      rollbackAfterSeconds: 180,
    });
  });
});

describe('how an upgrade ended', () => {
  it.each<[string, Parameters<typeof agentUpgradeStatus>[0], boolean, string]>([
    ['canceled', ['SUCCEEDED', 'PENDING'], true, 'CANCELED'],
    ['machines still going', ['SUCCEEDED', 'IN_PROGRESS'], false, 'IN_PROGRESS'],
    ['every machine upgraded (skipped ones aside)', ['SUCCEEDED', 'SKIPPED'], false, 'SUCCEEDED'],
    ['nothing to upgrade', ['SKIPPED', 'SKIPPED'], false, 'SUCCEEDED'],
    ['some rolled back', ['SUCCEEDED', 'ROLLED_BACK'], false, 'PARTIALLY_FAILED'],
    ['none upgraded', ['FAILED', 'TIMED_OUT', 'NOT_STARTED'], false, 'FAILED'],
  ])('%s', (_, statuses, canceled, expected) => {
    expect(agentUpgradeStatus(statuses, canceled)).toBe(expected);
  });
});
