import { describe, expect, it } from 'vitest';
import { decodeMachineCursor, encodeMachineCursor } from '../../src/api/machines/machineCursor.js';
import { compareKeys, complianceOrder, complianceRank, isAfter, type MachinePosition, type SortDirection } from '../../src/fleet/machineOrder.js';

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/** The order the computers page promises: key in the direction (missing keys last ascending, first descending), then name, then id. */
function sorted(direction: SortDirection, machines: MachinePosition[]): MachinePosition[] {
  return [...machines].sort((a, b) => compareKeys(direction, a.key, b.key) || byText(a.name, b.name) || byText(a.id, b.id));
}

describe('the computers page order', () => {
  it('lists the machines that need attention first when sorted by compliance ascending, last descending', () => {
    expect(complianceOrder('ASC')).toEqual(['NON_COMPLIANT', 'NOT_ASSESSED', 'COMPLIANT']);
    expect(complianceOrder('DESC')).toEqual(['COMPLIANT', 'NOT_ASSESSED', 'NON_COMPLIANT']);
    expect(complianceOrder('ASC').map(complianceRank)).toEqual([0, 1, 2]);
  });

  it.each([
    ['ASC', 1n, 2n, -1],
    ['DESC', 1n, 2n, 1],
    ['ASC', null, 2n, 1],
    ['DESC', null, 2n, -1],
    ['ASC', 2n, null, -1],
    ['DESC', 2n, null, 1],
    ['ASC', null, null, 0],
    ['DESC', 5n, 5n, 0],
  ] as const)('%s: a machine keyed %s comes %s the position keyed %s', (direction, key, position, expected) => {
    expect(Math.sign(compareKeys(direction, key, position))).toBe(expected);
  });

  it('pages after a position read exactly what an offset would, ties on the key and the name broken by name then id', () => {
    // Many ties: 6 keys (one missing), 4 names, so most machines share their key and many their name too.
    const machines: MachinePosition[] = Array.from({ length: 97 }, (_, i) => ({ key: i % 6 === 5 ? null : BigInt(i % 5), name: `vm-${i % 4}`, id: id((i * 37) % 101) }));
    for (const direction of ['ASC', 'DESC'] as const) {
      const all = sorted(direction, machines);
      for (const size of [1, 7, 50]) {
        const pages: MachinePosition[] = [];
        let after: MachinePosition | undefined;
        for (;;) {
          const page = all.filter((m) => !after || isAfter(direction, m, after, byText)).slice(0, size);
          if (page.length === 0) break;
          pages.push(...page);
          after = page.at(-1);
        }
        expect(pages).toEqual(all);
      }
    }
  });
});

describe('the computers page cursors', () => {
  const sort = { field: 'LAST_SEEN', direction: 'DESC' } as const;

  it('hand back the position they were made from, a time kept to the microsecond', () => {
    const position = { key: 1_764_720_000_123_456n, name: 'web-01 "eu"', id: id(7) };
    expect(decodeMachineCursor(encodeMachineCursor(sort, position), sort)).toEqual({ kind: 'position', position });
    const never = { key: null, name: 'db', id: id(8) };
    expect(decodeMachineCursor(encodeMachineCursor(sort, never), sort)).toEqual({ kind: 'position', position: never });
  });

  it('still read the offset cursors handed out before, and no cursor as the start', () => {
    const old = Buffer.from('o:49').toString('base64url');
    expect(decodeMachineCursor(old, sort)).toEqual({ kind: 'offset', offset: 50 });
    expect(decodeMachineCursor(undefined, sort)).toEqual({ kind: 'start' });
  });

  it('refuse a position of another order and text that is no cursor, as BAD_USER_INPUT', () => {
    const cursor = encodeMachineCursor({ field: 'NAME', direction: 'ASC' }, { key: null, name: 'a', id: id(1) });
    expect(() => decodeMachineCursor(cursor, sort)).toThrow(expect.objectContaining({ extensions: expect.objectContaining({ code: 'BAD_USER_INPUT' }) }));
    for (const junk of ['nonsense', Buffer.from('m:[1,2').toString('base64url'), Buffer.from('m:["LAST_SEEN","DESC","x","a","b"]').toString('base64url')]) {
      expect(() => decodeMachineCursor(junk, sort)).toThrow(/not a cursor this API handed out/);
    }
  });
});
