import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { assessmentOf, parseScriptOutput } from '../../src/agent/backends/windows.js';
import { assessDocument } from '../../src/agent/backends/windowsDocument.js';
import { planMachine, type PlanMachineInput, type UpdateSelection } from '../../src/fleet/planning.js';

// The deployment planner on a Windows machine: its pending updates are the recorded WSUS assessment
// (test/fixtures/windows/assess-wsus.json, 11 updates after superseded and hidden ones are left out).
// Windows durations: 15 minutes per update, 20 per service pack, 15 minutes kept for a reboot.

const record = assessmentOf(parseScriptOutput(assessDocument, fs.readFileSync(new URL('../fixtures/windows/assess-wsus.json', import.meta.url), 'utf8')));
const ALL_WINDOWS: UpdateSelection = {
  classifications: ['CRITICAL', 'SECURITY', 'UPDATE_ROLLUP', 'FEATURE_PACK', 'SERVICE_PACK', 'DEFINITION', 'TOOLS', 'UPDATES'],
  includePatterns: [],
  excludePatterns: [],
};

const plan = (over: Partial<PlanMachineInput>) =>
  planMachine({
    pending: record.updates,
    selection: ALL_WINDOWS,
    backend: 'windows',
    osType: 'WINDOWS',
    windowSeconds: 120 * 60,
    rebootSetting: 'IF_REQUIRED',
    rebootPending: record.rebootPending,
    ...over,
  });

const names = (updates: Array<{ name: string }>) => updates.map((u) => u.name);

describe('planning a Windows machine', () => {
  it('installs critical, then security, then the rest, 15 minutes each, keeping 15 minutes for the reboot', () => {
    const result = plan({});
    expect(result.rebootReserveSeconds).toBe(900);
    expect(result.willReboot).toBe('YES'); // Component Based Servicing already has a reboot pending
    // 120 min - 15 reserve = 105 min: seven 15-minute updates.
    expect(names(result.toInstall)).toEqual([
      'KB5032198',
      'KB5031364',
      'KB5031605',
      'KB5031605 (c9d0e1f2-a3b4-4cf5-96a7-b8c9d0e1f2a3)',
      'Intel Corporation - Net - 22.240.0.4',
      'KB2267602',
      'KB4052623',
    ]);
    expect(result.toInstall.every((u) => u.expectedSeconds === 900)).toBe(true);
    expect(result.expectedSeconds).toBe(7 * 900);
    expect(names(result.predictedNotAttempted)).toEqual(['KB5003279', 'KB5012170', 'KB5020032', 'KB890830']);
    expect(result.predictedNotAttempted.find((u) => u.name === 'KB5003279')!.expectedSeconds).toBe(1200);
  });

  it('gives a service pack 20 minutes: it fits a 40-minute window with the reboot reserve, not a 30-minute one', () => {
    const servicePack: UpdateSelection = { classifications: ['SERVICE_PACK'], includePatterns: [], excludePatterns: [] };
    expect(names(plan({ selection: servicePack, windowSeconds: 40 * 60 }).toInstall)).toEqual(['KB5003279']);
    const short = plan({ selection: servicePack, windowSeconds: 30 * 60 });
    expect(short.toInstall).toEqual([]);
    expect(names(short.predictedNotAttempted)).toEqual(['KB5003279']);
    // Without a reboot there is no reserve: 20 minutes fit 30.
    expect(names(plan({ selection: servicePack, windowSeconds: 30 * 60, rebootSetting: 'NEVER' }).toInstall)).toEqual(['KB5003279']);
  });

  it('keeps no reserve when nothing selected may reboot and the machine has no reboot pending', () => {
    const quiet: UpdateSelection = { classifications: ['DEFINITION', 'TOOLS', 'UPDATE_ROLLUP'], includePatterns: [], excludePatterns: [] };
    const result = plan({ selection: quiet, rebootPending: false, windowSeconds: 45 * 60 });
    expect(result.rebootReserveSeconds).toBe(0);
    expect(result.willReboot).toBe('NO');
    expect(names(result.toInstall)).toEqual(['KB2267602', 'KB5020032', 'KB890830']);
  });

  it('selects by KB id: include forces one in, exclude keeps one out, with a bare number or a wildcard', () => {
    const result = plan({ selection: { classifications: ['CRITICAL', 'SECURITY'], includePatterns: ['2267602'], excludePatterns: ['kb503160*'] } });
    expect(names(result.toInstall)).toEqual(['KB5032198', 'KB5031364', 'KB2267602']);
    expect(result.notSelected.filter((n) => n.reason.startsWith('excluded')).map((n) => n.update.name)).toEqual(['KB5031605', 'KB5031605 (c9d0e1f2-a3b4-4cf5-96a7-b8c9d0e1f2a3)']);
    // A KB names every update of it, also the second one that carries its update id in its name.
    const bare = plan({ selection: { classifications: ['SECURITY'], includePatterns: [], excludePatterns: ['5031605'] } });
    expect(names(bare.toInstall)).toEqual(['KB5031364']);
  });
});
