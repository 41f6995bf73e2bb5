import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { indexedSortPage, listMachines, machineConditions, tagPage, type MachineFilter } from '../../src/db/machines.js';
import { machines } from '../../src/db/schema.js';
import { DEFAULT_THRESHOLDS } from '../../src/fleet/compliance.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';

/**
 * The computers page read page by page through its position cursors, over a fleet made of ties:
 * every sort and direction, deep pages equal to the one long page (what offsets read), machines
 * sharing their key and their name, times never recorded and times that differ by a microsecond,
 * and the offset cursors clients still hold.
 */
describe('the computers page cursors', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let viewer: string;
  // About 200 pages are read here: the page sizes keep them within the API's burst of 200 a client (FLEETPATCH_API_RATE_LIMIT).

  beforeAll(async () => {
    ({ api, database, close } = await startApiOnFreshDatabase());
    viewer = await tokenFor(database, 'VIEWER');
    // 61 machines: 4 names (many share one), counts 0–2, a fifth never seen or assessed, the rest at
    // three instants a microsecond apart; one in four has no critical or security update.
    await database.sql`
      insert into machines (name, os_type, os_name, os_version, environment, last_seen_at, last_assessed_at, critical_count, security_count, other_count)
      select 'vm-' || (i % 4), 'LINUX', 'Debian', '12', 'AWS',
        case when i % 5 = 0 then null else now() - (i % 3) * interval '1 microsecond' end,
        case when i % 5 = 1 then null else now() - (i % 2) * interval '1 microsecond' end,
        case when i % 4 = 0 then 0 else i % 3 end, 0, i % 3
      from generate_series(1, 61) i`;
  });

  afterAll(async () => {
    await close();
  });

  type Page = { totalCount: number; edges: Array<{ cursor: string; node: { id: string } }>; pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; endCursor: string | null } };

  async function page(args: string): Promise<Page> {
    const response = await graphql<{ machines: Page }>(api.url, `{ machines${args} { totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { id } } } }`, { token: viewer });
    expect(response.errors).toBeUndefined();
    return response.data!.machines;
  }

  async function allPages(order: string, filter: string, size: number): Promise<string[]> {
    const ids: string[] = [];
    let after: string | null = null;
    for (;;) {
      const next: Page = await page(`(first: ${size}, orderBy: ${order}${filter}${after ? `, after: "${after}"` : ''})`);
      ids.push(...next.edges.map((e) => e.node.id));
      expect(next.pageInfo.hasPreviousPage).toBe(after !== null);
      if (!next.pageInfo.hasNextPage) return ids;
      after = next.pageInfo.endCursor;
    }
  }

  const fields = ['NAME', 'COMPLIANCE', 'CRITICAL_AND_SECURITY_COUNT', 'OTHER_COUNT', 'LAST_SEEN', 'LAST_ASSESSED'];

  it.each(fields)('reads every machine once, in the order of one long page, sorted by %s either way', async (field) => {
    for (const direction of ['ASC', 'DESC']) {
      const order = `{field: ${field}, direction: ${direction}}`;
      const whole = (await page(`(first: 500, orderBy: ${order})`)).edges.map((e) => e.node.id);
      expect(whole).toHaveLength(61);
      expect(await allPages(order, '', 13)).toEqual(whole);
      // Two machines a page: nearly every machine's own position is a cursor (times a microsecond apart included).
      if (field === 'LAST_SEEN' && direction === 'ASC') expect(await allPages(order, '', 2)).toEqual(whole);
      // A filter pages the same way (compliance: the sets read one after the other).
      const filter = ', filter: {compliance: [NON_COMPLIANT, COMPLIANT]}';
      const filtered = (await page(`(first: 500, orderBy: ${order}${filter})`)).edges.map((e) => e.node.id);
      expect(filtered.length).toBeGreaterThan(0);
      expect(filtered.length).toBeLessThan(61);
      expect(await allPages(order, filter, 9)).toEqual(filtered);
    }
  });

  it.each([
    ['CRITICAL_AND_SECURITY_COUNT', 'critical_count + security_count', '(critical_count + security_count)::text', 'machines_live_urgent'],
    ['OTHER_COUNT', 'other_count', 'other_count::text', 'machines_live_other'],
    // A machine never assessed: last ascending, first descending (PostgreSQL's own nulls order).
    ['LAST_ASSESSED', 'last_assessed_at', '((extract(epoch from last_assessed_at) * 1000000)::bigint)::text', 'machines_live_assessed'],
  ] as const)('sorts by %s in its order, then name and id, reading a page along an index in either direction, never sorting the fleet', async (field, order, key, index) => {
    for (const direction of ['ASC', 'DESC'] as const) {
      const whole = (await page(`(first: 500, orderBy: {field: ${field}, direction: ${direction}})`)).edges.map((e) => e.node.id);
      const expected = await database.sql.unsafe<Array<{ id: string }>>(`select id from machines where removed_at is null order by ${order} ${direction}, name, id`);
      expect(whole).toEqual(expected.map((r) => r.id));
      // The page's statement, first and after a position (one with a key, one without: never assessed), planned with sorting priced out: along the index (its own direction's), no Sort node, the position an index condition.
      const positions = await database.sql<Array<{ id: string; name: string; k: string | null }>>`
        select id, name, (${database.sql.unsafe(key)}) as k from machines where id = any(${[whole[30]!, ...whole]}::uuid[])`;
      const at = positions.find((p) => p.id === whole[30])!;
      const missing = positions.find((p) => p.k === null);
      for (const after of [undefined, at, ...(missing ? [missing] : [])].map((p) => p && { key: p.k === null ? null : BigInt(p.k), name: p.name, id: p.id })) {
        const where = machineConditions({}, new Date(), DEFAULT_THRESHOLDS);
        const statement = indexedSortPage(database.db, where, { sort: { field, direction }, after, offset: 0, limit: 10 }).toSQL();
        const plan = await database.sql.begin(async (tx) => {
          await tx`set local enable_sort = off`;
          await tx`set local enable_seqscan = off`;
          const [row] = await tx.unsafe<Array<{ 'QUERY PLAN': unknown }>>(`explain (format json) ${statement.sql}`, statement.params as never[]);
          return JSON.stringify(row!['QUERY PLAN']);
        });
        expect(plan).not.toContain('"Node Type":"Sort"');
        expect(plan).toContain(`"Index Name":"${index}_${direction.toLowerCase()}_idx"`);
        if (after) expect(plan).toMatch(/"Index Cond":"\(ROW\(/);
      }
    }
  });

  it('pages the machines of a tag in name order along the tag rows, reading a page of them, never every machine carrying the tag', async () => {
    await database.sql`update machines set tags = case when i % 3 = 0 then '{blue}'::text[] when i % 3 = 1 then '{blue,green}'::text[] else '{}'::text[] end
      from (select id, row_number() over (order by id) as i from machines) n where n.id = machines.id`;
    try {
      for (const [filter, where] of [
        ['{tags: ["blue"]}', `tags @> '{blue}'`],
        ['{tags: ["green", "blue"]}', `tags @> '{blue,green}'`],
        ['{tags: ["green"], nameContains: "M-1"}', `tags @> '{green}' and name = 'vm-1'`],
      ] as const) {
        const expected = await database.sql.unsafe<Array<{ id: string }>>(`select id from machines where removed_at is null and ${where} order by name, id`);
        expect(expected.length).toBeGreaterThan(0);
        expect(await allPages('{field: NAME, direction: ASC}', `, filter: ${filter}`, 4)).toEqual(expected.map((r) => r.id));
      }
      // The page's statement planned with sorting priced out: along machine_tags' key, no Sort node.
      const statement = tagPage(database.db, { filter: { tags: ['blue'] }, offset: 0, limit: 10, now: new Date(), thresholds: DEFAULT_THRESHOLDS }).toSQL();
      const plan = await database.sql.begin(async (tx) => {
        await tx`set local enable_sort = off`;
        const [row] = await tx.unsafe<Array<{ 'QUERY PLAN': unknown }>>(`explain (format json) ${statement.sql}`, statement.params as never[]);
        return JSON.stringify(row!['QUERY PLAN']);
      });
      expect(plan, plan).not.toContain('"Node Type":"Sort"');
      expect(plan, plan).toContain('"Index Name":"machine_tags_tag_name_machine_id_pk"');
    } finally {
      await database.sql`update machines set tags = '{}'`;
    }
  });

  it('finds the machines by part of their name, ignoring case, through the trigram index of the live names', async () => {
    const found = await page('(first: 500, filter: {nameContains: "M-1"})');
    const expected = await database.sql<Array<{ id: string }>>`select id from machines where removed_at is null and name = 'vm-1' order by name, id`;
    expect(found.totalCount).toBe(expected.length);
    expect(found.edges.map((e) => e.node.id)).toEqual(expected.map((r) => r.id));
    // The matches of a rare part (the count's read, and its page) are found in the index, not by testing every name: planned over
    // 5,000 more machines (added and analyzed in a transaction rolled back), with a scan of the table priced out.
    const statement = database.db.select({ n: sql<number>`count(*)` }).from(machines).where(machineConditions({ nameContains: 'ST-432' }, new Date(), DEFAULT_THRESHOLDS)).toSQL();
    let plan = '';
    const rolledBack = new Error('rolled back');
    await database.sql.begin(async (tx) => {
      await tx`insert into machines (name, os_type, os_name, os_version, environment) select 'host-' || i, 'LINUX', 'Debian', '12', 'AWS' from generate_series(1, 5000) i`;
      // As autovacuum leaves it: the new entries moved from the index's pending list into the index, the table's statistics taken.
      await tx`select gin_clean_pending_list('machines_live_name_trgm_idx')`;
      await tx`analyze machines`;
      await tx`set local enable_seqscan = off`;
      await tx`set local enable_indexscan = off`;
      await tx`set local enable_indexonlyscan = off`;
      const [row] = await tx.unsafe<Array<{ 'QUERY PLAN': unknown }>>(`explain (format json) ${statement.sql}`, statement.params as never[]);
      plan = JSON.stringify(row!['QUERY PLAN']);
      // Nothing of the 5,000 stays.
      throw rolledBack;
    }).catch((error: unknown) => {
      if (error !== rolledBack) throw error;
    });
    expect(plan, plan).toContain('"Index Name":"machines_live_name_trgm_idx"');
  });

  it('still reads an offset cursor handed out before, and goes on from its page by position', async () => {
    const order = '{field: OTHER_COUNT, direction: DESC}';
    const whole = (await page(`(first: 500, orderBy: ${order})`)).edges.map((e) => e.node.id);
    const old = Buffer.from('o:9').toString('base64url');
    const fromOld = await page(`(first: 10, orderBy: ${order}, after: "${old}")`);
    expect(fromOld.edges.map((e) => e.node.id)).toEqual(whole.slice(10, 20));
    expect(fromOld.pageInfo.hasPreviousPage).toBe(true);
    const next = await page(`(first: 10, orderBy: ${order}, after: "${fromOld.pageInfo.endCursor}")`);
    expect(next.edges.map((e) => e.node.id)).toEqual(whole.slice(20, 30));
  });

  it('sorts and filters by compliance as it is now, not as the summary last stored it', async () => {
    const read = (now: Date, filter: MachineFilter, thresholds = DEFAULT_THRESHOLDS) =>
      listMachines(database.db, { filter, sort: { field: 'COMPLIANCE', direction: 'ASC' }, offset: 0, limit: 100, now, thresholds, count: false });
    const now = new Date();
    const assessed = (await read(now, { compliance: ['COMPLIANT', 'NON_COMPLIANT'] })).rows.length;
    expect(assessed).toBeGreaterThan(0);
    // Four hours on, with no upkeep: every assessment is past Linux's 3 h, whatever the stored states say.
    const later = new Date(now.getTime() + 4 * 3600_000);
    expect((await read(later, { compliance: ['NOT_ASSESSED'] })).rows).toHaveLength(61);
    expect((await read(later, { compliance: ['COMPLIANT', 'NON_COMPLIANT'] })).rows).toHaveLength(0);
    // Thresholds other than the stored states': each machine is evaluated with these.
    const lenient = { ...DEFAULT_THRESHOLDS, assessmentMaxAgeMs: { LINUX: 8 * 3600_000, WINDOWS: 8 * 3600_000 } };
    expect((await read(later, { compliance: ['COMPLIANT', 'NON_COMPLIANT'] }, lenient)).rows).toHaveLength(assessed);
  });

  it('refuses a cursor of another order as BAD_USER_INPUT', async () => {
    const byName = await page('(first: 2, orderBy: {field: NAME})');
    const response = await graphql(api.url, `{ machines(first: 2, orderBy: {field: LAST_SEEN}, after: "${byName.pageInfo.endCursor}") { totalCount } }`, { token: viewer });
    expect(response.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'after' });
  });
});
