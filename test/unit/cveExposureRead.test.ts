import { describe, expect, it } from 'vitest';
import { cveExposureRead } from '../../src/fleet/cves.js';
import { MISSING_MACHINES_ROWS_BUDGET } from '../../src/fleet/missingUpdates.js';

describe("how one CVE's exposed machines are read for a page", () => {
  it('computes every exposed machine for a rare CVE and walks the fleet by name for a common one', () => {
    // 1,000,000 machines, a page of 50 (51 read): one machine in 100,000 exposed, or one in five.
    expect(cveExposureRead({ exposed: 10, fleet: 1_000_000, wanted: 51 })).toBe('EVERY_MACHINE');
    expect(cveExposureRead({ exposed: 200_000, fleet: 1_000_000, wanted: 51 })).toBe('BY_NAME');
    // Where both cost about the same: exposed² = wanted × fleet.
    expect(cveExposureRead({ exposed: 7_141, fleet: 1_000_000, wanted: 51 })).toBe('EVERY_MACHINE');
    expect(cveExposureRead({ exposed: 7_142, fleet: 1_000_000, wanted: 51 })).toBe('BY_NAME');
  });

  it('computes every exposed machine for a deep page that walking by name would reach only far into the fleet', () => {
    expect(cveExposureRead({ exposed: 20_000, fleet: 1_000_000, wanted: 51 })).toBe('BY_NAME');
    expect(cveExposureRead({ exposed: 20_000, fleet: 1_000_000, wanted: 10_051 })).toBe('EVERY_MACHINE');
  });

  it('walks by name when the updates naming it have more stored rows than the budget (assessments that listed them before)', () => {
    const rare = { exposed: 10, fleet: 1_000_000, wanted: 51 };
    expect(cveExposureRead({ ...rare, storedRows: MISSING_MACHINES_ROWS_BUDGET })).toBe('EVERY_MACHINE');
    expect(cveExposureRead({ ...rare, storedRows: MISSING_MACHINES_ROWS_BUDGET + 1 })).toBe('BY_NAME');
  });

  it('never walks a fleet smaller than its count says (the planner estimate lags inserts)', () => {
    expect(cveExposureRead({ exposed: 30, fleet: 0, wanted: 51 })).toBe('EVERY_MACHINE');
  });
});
