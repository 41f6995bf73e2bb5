import { describe, expect, it } from 'vitest';
import { duration, gateText, newRing, ringChoice, ringFields, ringInput } from '../../web/src/rings.js';

/** The deployment form's rings as the API takes them, and rings in words as the console says them. */
describe("the console's rings", () => {
  it('sends each way of choosing machines as its own field, and the soak in seconds', () => {
    const canary = { ...newRing(0), name: ' canary ', by: 'machines' as const, machineIds: ['m1'], maxFailures: '1', soak: '2', soakUnit: 'MINUTES' as const, requireApproval: true };
    expect(ringInput(canary, false)).toEqual({ name: 'canary', maxConcurrent: undefined, machineIds: ['m1'], gate: { maxFailures: { value: 1, unit: 'COUNT' }, soakSeconds: 120, requireApproval: true } });
    const early = { ...newRing(1), by: 'filter' as const, tags: 'web, eu', nameContains: ' ', environments: ['AWS' as const], maxConcurrent: '10', maxConcurrentUnit: 'PERCENT' as const };
    expect(ringInput(early, false)).toEqual({
      name: 'Ring 2',
      maxConcurrent: { value: 10, unit: 'PERCENT' },
      filter: { tags: ['web', 'eu'], nameContains: undefined, environments: ['AWS'] },
      gate: { maxFailures: undefined, soakSeconds: 0, requireApproval: false },
    });
  });

  it('sends no soak nor approval for the last ring (the form hides them there), and an empty percent as null for the API to refuse', () => {
    const last = { ...newRing(2), percent: '', soak: '5', requireApproval: true };
    expect(ringInput(last, true)).toMatchObject({ percent: null, gate: { soakSeconds: 0, requireApproval: false } });
    expect(ringInput({ ...last, percent: '100' }, true).percent).toBe(100);
  });

  it('says how a ring chooses its machines and what its gate asks', () => {
    expect(ringChoice({ percent: 10, machineIds: null, filter: null })).toBe('10 % of the targets left');
    expect(ringChoice({ percent: null, machineIds: ['a', 'b'], filter: null }, new Map([['a', 'debian-01'], ['b', 'rocky-01']]))).toBe('Machines: debian-01, rocky-01');
    expect(ringChoice({ percent: null, machineIds: ['a', 'b'], filter: null }, new Map([['a', 'debian-01']]))).toBe('2 chosen machines');
    expect(ringChoice({ percent: null, machineIds: null, filter: { tags: ['canary'], nameContains: 'web', environments: ['AWS', 'GCP'] } })).toBe('Filter: tags canary; name contains “web”; in AWS or GCP');
    const gate = (g: Partial<{ maxFailures: { value: number; unit: 'COUNT' | 'PERCENT' } | null; soakSeconds: number; requireApproval: boolean }>) => ({ maxFailures: null, soakSeconds: 0, requireApproval: false, ...g });
    expect(gateText({ gate: gate({ maxFailures: { value: 5, unit: 'PERCENT' }, soakSeconds: 3600, requireApproval: true }), maxConcurrent: { value: 2, unit: 'COUNT' } }, false)).toBe('at most 5 % may fail · soak 1 h · an operator’s approval · 2 at a time');
    expect(gateText({ gate: gate({}), maxConcurrent: null }, true)).toBe('Last ring: nothing after it');
    expect(gateText({ gate: gate({}), maxConcurrent: null }, false)).toBe('none may fail');
    expect([duration(3), duration(600), duration(7200), duration(86400), duration(90)]).toEqual(['3 s', '10 min', '2 h', '1 day', '90 s']);
  });

  it("knows every field the API names in a ring's error, so each is shown at its control", () => {
    expect(ringFields(2)).toContain('rings[1].gate.soakSeconds');
    expect(ringFields(2)).toContain('rings[0].filter.environments');
    expect(ringFields(1)).not.toContain('rings[1]');
  });
});
