import { describe, expect, it } from 'vitest';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import { failedAtGate, planRunMachine, stillToRun } from '../../src/fleet/runPlanning.js';
import { carriesScripts, handedOverAtRunStart, handsOverAtRunStart, type DeploymentStep } from '../../src/fleet/steps.js';
import type { MachineRunStatus } from '../../src/fleet/planning.js';

const update = (name: string, extra: Partial<PendingUpdate> = {}): PendingUpdate => ({
  name,
  arch: 'amd64',
  installedVersion: '1',
  availableVersion: '2',
  classification: 'SECURITY',
  severity: 'IMPORTANT',
  advisoryIds: [],
  cveIds: [],
  rebootSuggested: false,
  repository: null,
  note: null,
  ...extra,
});

const base = {
  machine: { osType: 'LINUX' as const, packageManager: 'apt', rebootPending: false },
  selection: { classifications: ['SECURITY' as const], includePatterns: [], excludePatterns: [] },
  windowMinutes: 60,
  rebootSetting: 'IF_REQUIRED' as const,
};

describe('a machine of a run, planned as the run records it', () => {
  it.each([
    ['apt: any update may ask for a reboot', { ...base, pending: [update('openssl')] }, 600],
    ['an unknown package manager is planned as apt', { ...base, machine: { ...base.machine, packageManager: null }, pending: [update('openssl')] }, 600],
    ['dnf says beforehand: nothing asks', { ...base, machine: { ...base.machine, packageManager: 'dnf' }, pending: [update('openssl')] }, 0],
    ['Windows keeps 15 minutes', { ...base, machine: { osType: 'WINDOWS' as const, packageManager: 'windows', rebootPending: false }, rebootSetting: 'ALWAYS' as const, pending: [update('KB1')] }, 900],
    ['NEVER keeps nothing', { ...base, rebootSetting: 'NEVER' as const, pending: [update('linux-image', { rebootSuggested: true })] }, 0],
    ['nothing selected, nothing kept', { ...base, pending: [update('vim', { classification: 'OTHER' })] }, 0],
  ])('%s: reserve %i s', (_what, input, reserve) => {
    expect(planRunMachine(input).rebootReserveSeconds).toBe(reserve);
  });

  it('records planned updates PENDING with their prediction, and left-out ones NOT_SELECTED with the reason, after them', () => {
    // A 2-minute window holds one of apt's 90-second installs.
    const plan = planRunMachine({ ...base, rebootSetting: 'NEVER', windowMinutes: 2, pending: [update('vim', { classification: 'OTHER' }), update('openssl'), update('curl')] });
    expect(plan.results.map((r) => [r.update.name, r.status, r.predictedStatus, r.orderIndex, r.expectedSeconds, r.reason])).toEqual([
      ['curl', 'PENDING', 'SUCCEEDED', 1, 90, null],
      ['openssl', 'PENDING', 'NOT_ATTEMPTED', 2, 90, null],
      ['vim', 'NOT_SELECTED', 'NOT_SELECTED', 10_000, 0, 'classification OTHER is not selected'],
    ]);
    expect(plan.selected.map((u) => u.name)).toEqual(['curl', 'openssl']);
  });

  it('leaves out what is not in a ringed run\'s frozen set', () => {
    const plan = planRunMachine({ ...base, pending: [update('openssl'), update('curl')], updateSet: new Set(['openssl=2']) });
    expect(plan.selected.map((u) => u.name)).toEqual(['openssl']);
    expect(plan.results.find((r) => r.update.name === 'curl')).toMatchObject({ status: 'NOT_SELECTED', reason: "not in the run's approved set" });
  });
});

describe('machine runs a run takes up again, and failures at a ring\'s gate', () => {
  it.each([
    ['PENDING', true, false],
    ['IN_PROGRESS', true, false],
    ['REBOOTING', true, false],
    ['SUCCEEDED', false, false],
    ['FAILED', false, true],
    ['TIMED_OUT', false, true],
    ['CANCELED', false, false],
    ['NOT_STARTED', false, false],
  ] as const)('%s: still to run %s, failed at the gate %s', (status: MachineRunStatus, toRun, failed) => {
    expect([stillToRun(status), failedAtGate(status)]).toEqual([toRun, failed]);
  });
});

describe('which install jobs a run hands over with its first machines', () => {
  const script = (phase: 'PRE' | 'POST'): DeploymentStep => ({ name: `${phase} script`, phase, onFailure: 'FAIL_MACHINE', script: { inline: 'true', path: null, interpreter: '/bin/sh', timeoutSeconds: 60 }, http: null });
  const call = (phase: 'PRE' | 'POST'): DeploymentStep => ({ name: `${phase} call`, phase, onFailure: 'FAIL_MACHINE', script: null, http: { url: 'https://lb.example/drain', method: 'POST', headers: [], expectedStatus: [200], timeoutSeconds: 10, retries: 0 } } as unknown as DeploymentStep);
  const able = ['SCRIPT_STEPS'];
  it.each([
    ['no steps, a pending machine run', [], 'PENDING', [], true],
    ['no steps, a machine run already taken', [], 'IN_PROGRESS', [], true],
    ['a machine run rebooting is left to its workflow', [], 'REBOOTING', [], false],
    ['a machine run that ended is left alone', [], 'SUCCEEDED', [], false],
    ['PRE calls come first, in the workflow', [call('PRE')], 'PENDING', able, false],
    ['POST calls change nothing', [call('POST')], 'PENDING', [], true],
    ['PRE scripts to an agent that runs them', [script('PRE')], 'PENDING', able, true],
    ['PRE scripts to an agent that cannot: its workflow fails the first one', [script('PRE')], 'PENDING', [], false],
  ] as const)('%s', (_what, steps, status, agentCapabilities, expected) => {
    expect(handedOverAtRunStart(steps, { status, agentCapabilities })).toBe(expected);
  });

  it('hands over nothing at the start of a run with PRE calls, and scripts only to agents that run them', () => {
    expect([handsOverAtRunStart([]), handsOverAtRunStart([call('PRE')]), handsOverAtRunStart([script('PRE'), call('POST')])]).toEqual([true, false, true]);
    expect([carriesScripts(able), carriesScripts([])]).toEqual([true, false]);
  });
});
