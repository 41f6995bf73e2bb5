import { describe, expect, it } from 'vitest';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import { validateDeploymentInput, type DeploymentInput, type RingInput } from '../../src/fleet/deploymentInput.js';
import { planMachine } from '../../src/fleet/planning.js';
import { NOT_IN_UPDATE_SET_REASON, updateSetKey } from '../../src/fleet/planning.js';
import { assignRings, failuresWithin, freezeUpdateSet, gateDecision, ringWarnings, type Ring, type RingGate } from '../../src/fleet/rollout.js';

const machine = (name: string, tags: string[] = [], environment = 'ON_PREMISES') => ({ id: `id-${name}`, name, tags, environment });
const ring = (over: Partial<Ring>): Ring => ({ name: 'r', filter: null, machineIds: null, percent: null, maxConcurrent: null, gate: { maxFailures: null, soakSeconds: 0, requireApproval: false }, ...over });
const names = (rings: Array<Array<{ name: string }>>) => rings.map((r) => r.map((m) => m.name));

describe('assignRings: which machines are in ring k', () => {
  const fleet = [machine('a', ['canary']), machine('b', [], 'AWS'), machine('c', ['canary'], 'AWS'), machine('d'), machine('e'), machine('f'), machine('g')];

  it('takes a filter, an explicit list and a percentage of what is left, each machine once', () => {
    const out = assignRings(fleet, [
      ring({ filter: { tags: ['canary'], nameContains: null, environments: [] } }),
      ring({ machineIds: ['id-b', 'id-a'] }), // a is already in ring 1
      ring({ percent: 50 }), // 4 left: d e f g → 2
      ring({ percent: 100 }),
    ]);
    expect(names(out.rings)).toEqual([['a', 'c'], ['b'], ['d', 'e'], ['f', 'g']]);
    expect(out.unassigned).toEqual([]);
  });

  it('rounds a percentage up (at least one machine while any is left) and leaves the rest unassigned', () => {
    const out = assignRings(fleet, [ring({ percent: 10 }), ring({ percent: 34 })]);
    expect(names(out.rings)).toEqual([['a'], ['b', 'c', 'd']]);
    expect(out.unassigned.map((m) => m.name)).toEqual(['e', 'f', 'g']);
  });

  it('filters by environment and part of the name, any case', () => {
    const out = assignRings(fleet, [ring({ filter: { tags: [], nameContains: null, environments: ['AWS'] } }), ring({ filter: { tags: [], nameContains: 'D', environments: [] } })]);
    expect(names(out.rings)).toEqual([['b', 'c'], ['d']]);
  });

  it('a ring whose filter matches nothing is empty, and the preview says so at its field', () => {
    const rings = [ring({ name: 'nobody', filter: { tags: ['none'], nameContains: null, environments: [] } }), ring({ name: 'half', percent: 50 })];
    const out = assignRings(fleet, rings);
    expect(out.rings[0]).toEqual([]);
    expect(ringWarnings(rings, out)).toEqual([
      { field: 'rings[0].filter', message: expect.stringContaining('rings[0] (nobody): its filter matches none of the targets') },
      { field: 'rings', message: expect.stringMatching(/^3 target machine\(s\) fall in no ring/) },
    ]);
  });
});

describe('gateDecision: whether a ring promotes', () => {
  const gate = (over: Partial<RingGate> = {}): RingGate => ({ maxFailures: null, soakSeconds: 0, requireApproval: false, ...over });
  const decide = (g: RingGate, state: { total?: number; failed?: number; soaked?: boolean; verdict?: Parameters<typeof gateDecision>[0]['verdict'] } = {}) =>
    gateDecision({ ringName: 'Canary', gate: g, total: state.total ?? 4, failed: state.failed ?? 0, soaked: state.soaked ?? false, verdict: state.verdict ?? null });

  it('counts failures against N machines or N % of the ring', () => {
    expect(failuresWithin(null, 0, 4)).toBe(true);
    expect(failuresWithin(null, 1, 4)).toBe(false);
    expect(failuresWithin({ value: 1, unit: 'COUNT' }, 1, 4)).toBe(true);
    expect(failuresWithin({ value: 1, unit: 'COUNT' }, 2, 4)).toBe(false);
    expect(failuresWithin({ value: 25, unit: 'PERCENT' }, 1, 4)).toBe(true);
    expect(failuresWithin({ value: 25, unit: 'PERCENT' }, 2, 4)).toBe(false);
    expect(failuresWithin({ value: 0, unit: 'PERCENT' }, 0, 0)).toBe(true);
  });

  it('halts with the reason when too many failed, and a resume promotes', () => {
    expect(decide(gate(), { failed: 1 })).toEqual({ kind: 'HALT', reason: 'Canary: 1 of 4 machine(s) failed; its gate allows none may fail. Resume the run to go on, or cancel it.' });
    expect(decide(gate({ maxFailures: { value: 25, unit: 'PERCENT' } }), { failed: 2 })).toMatchObject({ kind: 'HALT', reason: expect.stringContaining('at most 25 % may fail') });
    expect(decide(gate({ requireApproval: true, soakSeconds: 60 }), { failed: 1, verdict: { kind: 'RESUMED', by: 'ops' } })).toEqual({ kind: 'PROMOTE' });
  });

  it('soaks first, then waits for approval, then promotes', () => {
    const g = gate({ soakSeconds: 600, requireApproval: true });
    expect(decide(g)).toEqual({ kind: 'SOAK', seconds: 600 });
    expect(decide(g, { soaked: true })).toEqual({ kind: 'WAIT_FOR_APPROVAL' });
    expect(decide(g, { soaked: true, verdict: { kind: 'APPROVED', by: 'ops' } })).toEqual({ kind: 'PROMOTE' });
    expect(decide(gate())).toEqual({ kind: 'PROMOTE' });
  });

  it('a rejection ends the rollout with who and why, whatever else', () => {
    expect(decide(gate({ requireApproval: true }), { failed: 3, verdict: { kind: 'REJECTED', by: 'ops', reason: 'errors in the logs' } })).toEqual({ kind: 'REJECT', reason: 'Canary was rejected by ops: errors in the logs' });
  });
});

describe('the frozen update set', () => {
  const update = (name: string, availableVersion: string, classification: PendingUpdate['classification'] = 'SECURITY'): PendingUpdate => ({
    name,
    installedVersion: '1',
    availableVersion,
    arch: 'amd64',
    classification,
    severity: null,
    advisoryIds: [],
    cveIds: [],
    rebootSuggested: false,
    repository: null,
  });

  it('holds each name=version once, in order', () => {
    expect(freezeUpdateSet([update('b', '2'), update('a', '1'), update('b', '2'), update('a', '0')])).toEqual([
      { name: 'a', version: '0' },
      { name: 'a', version: '1' },
      { name: 'b', version: '2' },
    ]);
  });

  it('leaves out of a later ring what is not in it, a newer version included, with the reason', () => {
    const set = new Set(['openssl=3.0.1', 'curl=8.1'].map((k) => k));
    expect(updateSetKey({ name: 'openssl', availableVersion: '3.0.1' })).toBe('openssl=3.0.1');
    const plan = planMachine({
      pending: [update('openssl', '3.0.2'), update('curl', '8.1'), update('zlib', '1.3'), update('vim', '9', 'OTHER')],
      selection: { classifications: ['SECURITY'], includePatterns: [], excludePatterns: [] },
      backend: 'apt',
      osType: 'LINUX',
      windowSeconds: 3600,
      rebootSetting: 'NEVER',
      rebootPending: false,
      updateSet: set,
    });
    expect(plan.toInstall.map((u) => `${u.name}=${u.availableVersion}`)).toEqual(['curl=8.1']);
    expect(plan.notSelected.map((n) => [n.update.name, n.reason])).toEqual([
      ['vim', 'classification OTHER is not selected'],
      ['openssl', NOT_IN_UPDATE_SET_REASON],
      ['zlib', NOT_IN_UPDATE_SET_REASON],
    ]);
  });
});

describe('ring input: BAD_USER_INPUT at the field', () => {
  const base: DeploymentInput = {
    name: 'rollout',
    osType: 'LINUX',
    machineIds: [],
    targetFilter: { tags: ['web'], nameContains: null },
    classifications: ['SECURITY'],
    includePatterns: [],
    excludePatterns: [],
    schedule: null,
    onDemandOnly: true,
    windowMinutes: 60,
    rebootSetting: 'IF_REQUIRED',
    maxConcurrent: null,
    maxFailures: null,
  };
  const check = (rings: RingInput[] | null) => validateDeploymentInput({ ...base, rings }, new Date('2026-12-01T00:00:00Z'));
  const problem = (rings: RingInput[]) => {
    const out = check(rings);
    return out.ok ? null : { field: out.field, message: out.message };
  };

  it('normalises rings: default names, gates, filters', () => {
    const out = check([{ filter: { tags: ['canary'], environments: ['AWS'] }, gate: { soakSeconds: 60, requireApproval: true } }, { percent: 100 }]);
    expect(out.ok && out.value.rings).toEqual([
      { name: 'Ring 1', filter: { tags: ['canary'], nameContains: null, environments: ['AWS'] }, machineIds: null, percent: null, maxConcurrent: null, gate: { maxFailures: null, soakSeconds: 60, requireApproval: true } },
      { name: 'Ring 2', filter: null, machineIds: null, percent: 100, maxConcurrent: null, gate: { maxFailures: null, soakSeconds: 0, requireApproval: false } },
    ]);
    expect(check(null).ok && (check(null) as { value: { rings: unknown } }).value.rings).toBeNull();
  });

  it('refuses empty rings, rings choosing machines in none or two ways, bad percentages, gates on the last ring', () => {
    expect(problem([])).toMatchObject({ field: 'rings', message: expect.stringContaining('rings is empty') });
    expect(problem([{ name: 'x' }])).toMatchObject({ field: 'rings[0]', message: expect.stringContaining('exactly one way') });
    expect(problem([{ percent: 10, machineIds: ['6f1c1f4e-4a4e-4d7b-9a55-0d3f4f1b2c3d'] }])).toMatchObject({ field: 'rings[0]' });
    expect(problem([{ percent: 101 }])).toEqual({ field: 'rings[0].percent', message: 'rings[0].percent must be a whole number from 1 to 100 (percent of the targets no earlier ring took); got 101' });
    expect(problem([{ percent: 0 }])).toMatchObject({ field: 'rings[0].percent' });
    expect(problem([{ percent: 100 }, { percent: 50 }])).toMatchObject({ field: 'rings[0].percent', message: expect.stringContaining('only the last ring may take 100 %') });
    expect(problem([{ machineIds: [] }])).toMatchObject({ field: 'rings[0].machineIds' });
    expect(problem([{ machineIds: ['nope'] }])).toMatchObject({ field: 'rings[0].machineIds[0]' });
    expect(problem([{ filter: {} }])).toMatchObject({ field: 'rings[0].filter' });
    expect(problem([{ filter: { environments: ['MOON'] } }])).toMatchObject({ field: 'rings[0].filter.environments[0]' });
    expect(problem([{ percent: 10, gate: { maxFailures: { value: 150, unit: 'PERCENT' } } }, { percent: 100 }])).toMatchObject({ field: 'rings[0].gate.maxFailures.value' });
    expect(problem([{ percent: 10, gate: { soakSeconds: -1 } }, { percent: 100 }])).toMatchObject({ field: 'rings[0].gate.soakSeconds' });
    expect(problem([{ percent: 10, maxConcurrent: { value: 0, unit: 'COUNT' } }, { percent: 100 }])).toMatchObject({ field: 'rings[0].maxConcurrent.value' });
    expect(problem([{ percent: 10 }, { percent: 100, gate: { requireApproval: true } }])).toMatchObject({ field: 'rings[1].gate.requireApproval' });
    expect(problem([{ percent: 10 }, { percent: 100, gate: { soakSeconds: 60 } }])).toMatchObject({ field: 'rings[1].gate.soakSeconds' });
    expect(problem([{ name: 'a', percent: 10 }, { name: 'A', percent: 100 }])).toMatchObject({ field: 'rings[1].name' });
  });
});
