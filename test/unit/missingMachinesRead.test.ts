import { describe, expect, it } from 'vitest';
import { missingMachinesRead } from '../../src/fleet/missingUpdates.js';

describe('how the machines missing one update are read', () => {
  it("starts from the update's rows when few machines miss it, and walks the fleet by name when a page of it is met early", () => {
    // 1,000,000 machines, a page of 50 (51 read): one machine in 100,000 misses it, or one in four.
    expect(missingMachinesRead(10, 1_000_000, 51)).toBe('BY_UPDATE');
    expect(missingMachinesRead(250_000, 1_000_000, 51)).toBe('BY_NAME');
    // Where both cost about the same: missing² = wanted × fleet.
    expect(missingMachinesRead(7_141, 1_000_000, 51)).toBe('BY_UPDATE');
    expect(missingMachinesRead(7_142, 1_000_000, 51)).toBe('BY_NAME');
  });

  it('reads from the update for a deep page that walking by name would reach only far into the fleet', () => {
    expect(missingMachinesRead(20_000, 1_000_000, 51)).toBe('BY_NAME');
    expect(missingMachinesRead(20_000, 1_000_000, 10_051)).toBe('BY_UPDATE');
  });
});
