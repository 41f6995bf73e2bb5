import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDatabase, type Database } from '../../src/db/client.js';
import { computersPage, type MachineFilter } from '../../src/db/machines.js';
import { DEFAULT_THRESHOLDS } from '../../src/fleet/compliance.js';
import type { MachinePosition, MachineSort } from '../../src/fleet/machineOrder.js';
import { freshDatabase } from '../support/env.js';
import { recordingDb } from '../support/plans.js';

/**
 * A part of a name of one or two characters (machine_name_grams, migration 0058): the computers page
 * finds exactly the machines whose name holds it, as ILIKE does, page after page and counted, with
 * or without other conditions; and a part that few names hold, or many, is found without reading
 * the other machines.
 */
describe('the computers page filtered on a part of a name of one or two characters', () => {
  let database: Database;
  let drop: () => Promise<void>;
  let recorded: ReturnType<typeof recordingDb>;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectDatabase(fresh.url, { max: 4 });
    recorded = recordingDb(database);
    // 2,400 `node-NNNN` (every one holds `n`, `de`, `-0` or `-1`/`-2`), names in mixed case with LIKE's special
    // characters and a letter outside ASCII, three names at the end of the name order holding `zq`, removed machines
    // whose names would match; a few machines non-compliant (assessed, a critical update pending); tags `fleet` (2,402) and `db`.
    await database.sql`
      insert into machines (name, os_type, os_name, os_version, environment, tags)
      select 'node-' || lpad(i::text, 4, '0'), 'LINUX', 'Debian', '12', 'AWS', '{fleet}' from generate_series(1, 2400) i`;
    await database.sql`
      insert into machines (name, os_type, os_name, os_version, environment, tags, removed_at) values
        ('Alpha_1', 'LINUX', 'Debian', '12', 'AWS', '{db}', null), ('alpha%2', 'LINUX', 'Debian', '12', 'AWS', '{db}', null),
        ('ALPHA\\3', 'WINDOWS', 'Windows', '11', 'AZURE', '{}', null), ('Zeta Ω', 'LINUX', 'Debian', '12', 'AWS', '{}', null),
        ('zzq-1', 'LINUX', 'Debian', '12', 'AWS', '{db}', null), ('zzq-2', 'LINUX', 'Debian', '12', 'AWS', '{fleet}', null),
        ('zzq-3', 'LINUX', 'Debian', '12', 'AWS', '{fleet}', null), ('zzq-gone', 'LINUX', 'Debian', '12', 'AWS', '{}', now()),
        ('Qx-gone', 'LINUX', 'Debian', '12', 'AWS', '{}', now())`;
    await database.sql`update machines set last_seen_at = now(), last_assessed_at = now(), critical_count = 1
      where name in ('node-0007', 'node-1500', 'node-2400', 'zzq-2', 'Alpha_1')`;
    await database.sql`analyze machines, machine_name_grams`;
  });

  afterAll(async () => {
    await database?.close();
    await drop?.();
  });

  /** Every page of the filter in the sort, `first` at a time, each after the last's position; and the first page's count. */
  async function readAll(filter: MachineFilter, sort: MachineSort = { field: 'NAME', direction: 'ASC' }, first = 7, countUpTo?: number) {
    const names: string[] = [];
    let after: MachinePosition | undefined;
    let counted: { totalCount: number; totalCountExact: boolean } | undefined;
    for (;;) {
      const page = await computersPage(database.db, { filter, sort, offset: 0, limit: first, after, now: new Date(), thresholds: DEFAULT_THRESHOLDS, countUpTo });
      counted ??= { totalCount: page.totalCount, totalCountExact: page.totalCountExact };
      names.push(...page.rows.map((r) => r.name));
      if (!page.hasMore) return { names, ...counted };
      after = page.positions.at(-1);
    }
  }

  /** The live machines whose name ILIKE matches the part, in name order: what the filter means. */
  async function holding(part: string): Promise<string[]> {
    const rows = await database.sql<Array<{ name: string }>>`
      select name from machines where removed_at is null and name ilike ${`%${part.replace(/[\\%_]/g, (c) => `\\${c}`)}%`} order by name, id`;
    return rows.map((r) => r.name);
  }

  it('finds exactly the machines whose name holds the part, page after page, counted', async () => {
    // Few holders (read by key), many (walked in name order), none; LIKE's special characters taken literally; case and a letter outside ASCII.
    for (const part of ['zq', 'Q', 'n', 'de', '-0', 'xx', '_', '%', '\\', 'a%', 'ω', 'Ω', ' ω', 'z']) {
      const expected = await holding(part);
      const all = await readAll({ nameContains: part }, undefined, expected.length > 100 ? 700 : 2);
      expect(all.names, part).toEqual(expected);
      expect(all, part).toMatchObject({ totalCount: expected.length, totalCountExact: true });
    }
    expect(await holding('zq')).toEqual(['zzq-1', 'zzq-2', 'zzq-3']);
    expect((await holding('n')).length).toBeGreaterThan(2000);
    // Counted up to a bound: exact below it, that many and a lower bound past it, the pages complete either way.
    const bounded = await readAll({ nameContains: 'de' }, undefined, 700, 1000);
    expect(bounded).toMatchObject({ totalCount: 1000, totalCountExact: false });
    expect(bounded.names).toEqual(await holding('de'));
    expect(await readAll({ nameContains: 'zq' }, undefined, 2, 3)).toMatchObject({ totalCount: 3, totalCountExact: true });
  });

  it('meets the filter’s other conditions and any sort', async () => {
    const nonCompliant = (await readAll({ compliance: ['NON_COMPLIANT'] })).names;
    expect(nonCompliant).toEqual(['Alpha_1', 'node-0007', 'node-1500', 'node-2400', 'zzq-2']);
    const linux = (await readAll({ osType: 'LINUX', overdue: false }, undefined, 1000)).names;
    for (const part of ['zq', 'n', '-2', 'a']) {
      const holds = (name: string) => name.toLowerCase().includes(part.toLowerCase());
      expect((await readAll({ nameContains: part, compliance: ['NON_COMPLIANT'] })).names, part).toEqual(nonCompliant.filter(holds));
      for (const tag of ['db', 'fleet']) {
        const tagged = (await readAll({ tags: [tag] }, undefined, 1000)).names;
        const expected = tagged.filter(holds);
        expect((await readAll({ nameContains: part, tags: [tag] }, undefined, expected.length > 100 ? 700 : 2)).names, `${part} ${tag}`).toEqual(expected);
      }
      expect((await readAll({ nameContains: part, osType: 'LINUX', overdue: false }, undefined, 700)).names, part).toEqual(linux.filter(holds));
      // Sorted by critical and security updates, most first: the non-compliant machines first, then the others by name.
      const bySeverity = await readAll({ nameContains: part }, { field: 'CRITICAL_AND_SECURITY_COUNT', direction: 'DESC' }, 700);
      const expected = await holding(part);
      expect(bySeverity.names, part).toEqual([...expected.filter((n) => nonCompliant.includes(n)), ...expected.filter((n) => !nonCompliant.includes(n))]);
      expect(bySeverity.totalCount, part).toBe(expected.length);
    }
  });

  /** Rows of machines (its table or its indexes) that the computers page's statements read. */
  const machineRowsRead = (filter: MachineFilter, sort: MachineSort = { field: 'NAME', direction: 'ASC' }) =>
    recorded.rowsRead('machines', (db) => computersPage(db, { filter, sort, offset: 0, limit: 50, now: new Date(), thresholds: DEFAULT_THRESHOLDS }));

  it('reads the machines that hold the part, not the others, whether few or many names hold it', async () => {
    // Three machines at the end of the name order: before, every live name was read to find them (the trigram index holds no
    // part of two characters), for the page and again for its count.
    expect(await machineRowsRead({ nameContains: 'zq' })).toBeLessThanOrEqual(10);
    // In another order than the name's, the few are read by key and sorted (along the order's index, every machine was read).
    expect(await machineRowsRead({ nameContains: 'zq' }, { field: 'CRITICAL_AND_SECURITY_COUNT', direction: 'DESC' })).toBeLessThanOrEqual(10);
    expect(await machineRowsRead({ nameContains: 'zq' }, { field: 'COMPLIANCE', direction: 'ASC' })).toBeLessThanOrEqual(20);
    expect(await machineRowsRead({ nameContains: 'xx' })).toBe(0);
    // With a tag of 2,402 machines, the few by key too (along the tag's rows, each of its machines was read).
    expect(await machineRowsRead({ nameContains: 'zq', tags: ['fleet'] })).toBeLessThanOrEqual(10);
    // 2,400 holders: a page's worth of machines, the count from machine_name_grams' key alone.
    expect(await machineRowsRead({ nameContains: 'de' })).toBeLessThanOrEqual(60);
  });

  it('reads no machine when the counts say none meets the other conditions, and only the few that do otherwise, whatever the part', async () => {
    // None compliant and disconnected: before, the names holding the part were walked until a page of them met the
    // conditions, every one of them here (2,400 for `n`, every live name for `-`). Five non-compliant machines: read through
    // the condition's own path (on a fleet this small, a scan of the table), then tested for the part.
    for (const nameContains of ['n', 'node', '-']) {
      // (The counts' read probes one machine: the oldest generation of thresholds stored.)
      expect(await machineRowsRead({ nameContains, compliance: ['COMPLIANT'], readiness: ['DISCONNECTED'] }), nameContains).toBeLessThanOrEqual(2);
      const expected = ['Alpha_1', 'node-0007', 'node-1500', 'node-2400', 'zzq-2'].filter((name) => name.includes(nameContains));
      expect((await readAll({ nameContains, compliance: ['NON_COMPLIANT'] }, undefined, 2)).names, nameContains).toEqual(expected);
      expect((await readAll({ nameContains, compliance: ['COMPLIANT'], readiness: ['DISCONNECTED'] })).names, nameContains).toEqual([]);
    }
  });
});
