import { describe, expect, it } from 'vitest';
import { FleetSnapshot } from '../../src/api/machines/fleetSnapshot.js';
import { missingUpdatesPage, type MissingUpdateGroup } from '../../src/fleet/missingUpdates.js';
import { snapshotUse } from '../../src/fleet/snapshots.js';

const t0 = new Date('2026-11-26T05:00:00Z');
const at = (ms: number) => new Date(t0.getTime() + ms);

describe('when a fleet snapshot may be served', () => {
  const unchanged = (computedAt: Date, computeMs = 5) => ({ computedAt, computeMs, changedSince: false });
  const changed = (computedAt: Date, computeMs: number) => ({ computedAt, computeMs, changedSince: true });

  it('serves it while young, serves it and refreshes past half its bound, recomputes past the bound', () => {
    expect(snapshotUse(null, t0, 15_000)).toBe('RECOMPUTE');
    expect(snapshotUse(unchanged(t0), at(7_500), 15_000)).toBe('SERVE');
    expect(snapshotUse(unchanged(t0), at(7_501), 15_000)).toBe('SERVE_AND_REFRESH');
    expect(snapshotUse(unchanged(t0), at(15_000), 15_000)).toBe('SERVE_AND_REFRESH');
    expect(snapshotUse(unchanged(t0), at(15_001), 15_000)).toBe('RECOMPUTE');
  });

  it('never serves one from the future (the clock went back) nor any with a bound of 0', () => {
    expect(snapshotUse(unchanged(at(1)), t0, 15_000)).toBe('RECOMPUTE');
    expect(snapshotUse(unchanged(t0), t0, 0)).toBe('RECOMPUTE');
  });

  it('after a change, recomputes a cheap one at once and refreshes a costly one behind the reader, each once it is ten times as old as its recompute took', () => {
    // A small fleet: 3 ms to compute, so a change shows 30 ms later, the reader waiting 3 ms.
    expect(snapshotUse(changed(t0, 3), at(29), 15_000)).toBe('SERVE');
    expect(snapshotUse(changed(t0, 3), at(30), 15_000)).toBe('RECOMPUTE');
    // A large one: 400 ms to compute, so at most a tenth of the time goes into recomputing.
    expect(snapshotUse(changed(t0, 400), at(3_999), 15_000)).toBe('SERVE');
    expect(snapshotUse(changed(t0, 400), at(4_000), 15_000)).toBe('SERVE_AND_REFRESH');
    // A change never extends the bound.
    expect(snapshotUse(changed(t0, 400), at(15_001), 15_000)).toBe('RECOMPUTE');
  });
});

describe('a fleet snapshot', () => {
  /** A recompute that waits until released, counting calls. */
  function controlled() {
    let value = 0;
    const pending: Array<() => void> = [];
    const snapshot = new FleetSnapshot<number>(
      () => new Promise((resolve) => pending.push(() => resolve(++value))),
      (error) => {
        throw error;
      },
    );
    const release = async () => {
      while (pending.length === 0) await new Promise((r) => setImmediate(r));
      pending.shift()!();
    };
    return { snapshot, release };
  }

  it('runs one recompute however many readers wait for it, and gives them all its result', async () => {
    const { snapshot, release } = controlled();
    const readers = Array.from({ length: 20 }, () => snapshot.read(t0, 15_000));
    await release();
    const results = await Promise.all(readers);
    expect(snapshot.recomputes).toBe(1);
    expect(results.every((r) => r.value === 1 && r.computedAt.getTime() === t0.getTime())).toBe(true);
  });

  it('serves the old value and its time within the bound, refreshes in the background past half of it, and never serves one past the bound', async () => {
    const { snapshot, release } = controlled();
    const first = snapshot.read(t0, 15_000);
    await release();
    expect(await first).toEqual({ value: 1, computedAt: t0 });
    expect(await snapshot.read(at(5_000), 15_000)).toEqual({ value: 1, computedAt: t0 });
    expect(snapshot.recomputes).toBe(1);

    // Past half the bound: still the old one at once, while one recompute starts behind it.
    expect(await snapshot.read(at(10_000), 15_000)).toEqual({ value: 1, computedAt: t0 });
    expect(await snapshot.read(at(10_001), 15_000)).toEqual({ value: 1, computedAt: t0 });
    expect(snapshot.recomputes).toBe(2);
    await release();
    await new Promise((r) => setImmediate(r));
    expect(await snapshot.read(at(11_000), 15_000)).toEqual({ value: 2, computedAt: at(10_000) });

    // Past the bound: the reader waits for a fresh one.
    let done = false;
    const late = snapshot.read(at(40_000), 15_000).then((r) => {
      done = true;
      return r;
    });
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    await release();
    expect(await late).toEqual({ value: 3, computedAt: at(40_000) });
  });

  it('recomputes a cheap snapshot for the first reader after a machine changed', async () => {
    let value = 0;
    const snapshot = new FleetSnapshot<number>(async () => ++value, () => undefined);
    expect((await snapshot.read(t0, 15_000)).value).toBe(1);
    expect((await snapshot.read(at(1_000), 15_000)).value).toBe(1);
    snapshot.changed(at(1_000));
    expect(await snapshot.read(at(1_001), 15_000)).toEqual({ value: 2, computedAt: at(1_001) });
    expect((await snapshot.read(at(2_000), 15_000)).value).toBe(2);
    expect(snapshot.recomputes).toBe(2);
  });

  it('lets the next reader try again after a failed recompute', async () => {
    let calls = 0;
    const snapshot = new FleetSnapshot<number>(async () => {
      calls++;
      if (calls === 1) throw new Error('database unavailable');
      return 42;
    }, () => undefined);
    await expect(snapshot.read(t0, 15_000)).rejects.toThrow('database unavailable');
    expect((await snapshot.read(t0, 15_000)).value).toBe(42);
  });
});

describe("the fleet's missing updates page", () => {
  const group = (g: Partial<MissingUpdateGroup> & Pick<MissingUpdateGroup, 'name' | 'classification' | 'machineCount'>): MissingUpdateGroup => ({
    osType: 'LINUX',
    severity: null,
    availableVersions: ['1.0'],
    advisoryIds: [],
    cveIds: [],
    rebootSuggested: false,
    ...g,
  });
  const groups: MissingUpdateGroup[] = [
    group({ name: 'vim', classification: 'OTHER', machineCount: 7 }),
    group({ name: 'openssl', classification: 'CRITICAL', machineCount: 2, severity: 'IMPORTANT', availableVersions: ['3.0.2'], advisoryIds: ['DSA-2'], cveIds: ['CVE-2'] }),
    group({ name: 'openssl', classification: 'CRITICAL', machineCount: 1, osType: 'WINDOWS', severity: 'CRITICAL', availableVersions: ['3.0.1'], advisoryIds: ['DSA-1'], cveIds: ['CVE-1', 'CVE-2'], rebootSuggested: true }),
    group({ name: 'sudo', classification: 'SECURITY', machineCount: 9 }),
    group({ name: 'curl', classification: 'OTHER', machineCount: 7 }),
    group({ name: 'KB5031', classification: 'UPDATE_ROLLUP', machineCount: 8, osType: 'WINDOWS' }),
  ];

  it('adds up an update over both OS types, with the highest severity and every version, advisory and CVE', () => {
    const { rows } = missingUpdatesPage(groups, { offset: 0, limit: 50 });
    expect(rows[0]).toEqual({ name: 'openssl', classification: 'CRITICAL', machineCount: 3, severity: 'CRITICAL', availableVersions: ['3.0.1', '3.0.2'], advisoryIds: ['DSA-1', 'DSA-2'], cveIds: ['CVE-1', 'CVE-2'], rebootSuggested: true });
  });

  it('lists critical first, then security, then the rest by how many machines miss them, then by name', () => {
    const { rows, totalCount } = missingUpdatesPage(groups, { offset: 0, limit: 50 });
    expect(rows.map((r) => `${r.name}:${r.machineCount}`)).toEqual(['openssl:3', 'sudo:9', 'KB5031:8', 'curl:7', 'vim:7']);
    expect(totalCount).toBe(5);
    const second = missingUpdatesPage(groups, { offset: 2, limit: 2 });
    expect(second).toEqual({ rows: rows.slice(2, 4), totalCount: 5 });
  });

  it('filters on OS type, classification and a case-insensitive part of the name', () => {
    expect(missingUpdatesPage(groups, { osType: 'WINDOWS', offset: 0, limit: 50 }).rows.map((r) => `${r.name}:${r.machineCount}`)).toEqual(['openssl:1', 'KB5031:8']);
    expect(missingUpdatesPage(groups, { classification: ['SECURITY', 'OTHER'], offset: 0, limit: 50 }).rows.map((r) => r.name)).toEqual(['sudo', 'curl', 'vim']);
    expect(missingUpdatesPage(groups, { nameContains: 'SSL', offset: 0, limit: 50 })).toMatchObject({ totalCount: 1, rows: [{ name: 'openssl', machineCount: 3 }] });
  });
});
