import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { computersPage, tagPage, type MachineFilter } from '../../src/db/machines.js';
import { DEFAULT_THRESHOLDS } from '../../src/fleet/compliance.js';
import { MATCHES_COUNTED_UP_TO } from '../../src/fleet/fleetSummary.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';
import { recordingDb } from '../support/plans.js';

/**
 * The computers page over 10,001 machines: past MATCHES_COUNTED_UP_TO, a filter no maintained count
 * covers (part of a name, several tags) counts its first matches and says the figure is a lower
 * bound, the pages stay complete, a counted filter stays exact; and a tag's page keeps its plan
 * while the statistics lag behind a bulk enrollment.
 */
describe('the computers page of a fleet larger than a count bound', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let viewer: string;
  const fleet = MATCHES_COUNTED_UP_TO + 1;

  beforeAll(async () => {
    ({ api, database, close } = await startApiOnFreshDatabase());
    viewer = await tokenFor(database, 'VIEWER');
    await database.sql`
      insert into machines (name, os_type, os_name, os_version, environment, tags)
      select 'host-' || lpad(i::text, 5, '0'), 'LINUX', 'Debian', '12', 'AWS', '{web,prod}' from generate_series(1, ${fleet}::int) i`;
  });

  afterAll(async () => {
    await close();
  });

  type Page = { totalCount: number; totalCountExact: boolean; pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: Array<{ node: { name: string } }> };
  async function machines(args: string): Promise<Page> {
    const response = await graphql<{ machines: Page }>(api.url, `{ machines${args} { totalCount totalCountExact pageInfo { hasNextPage endCursor } edges { node { name } } } }`, { token: viewer });
    expect(response.errors).toBeUndefined();
    return response.data!.machines;
  }

  it('counts a part every name holds, and several tags, up to the bound, and says it is a lower bound', async () => {
    for (const filter of ['{nameContains: "host-"}', '{tags: ["web", "prod"]}', '{nameContains: "HOST", tags: ["web"]}']) {
      const page = await machines(`(filter: ${filter}, first: 3)`);
      expect(page, filter).toMatchObject({ totalCount: MATCHES_COUNTED_UP_TO, totalCountExact: false, pageInfo: { hasNextPage: true } });
      expect(page.edges.map((e) => e.node.name)).toEqual(['host-00001', 'host-00002', 'host-00003']);
    }
    // The pages are complete past the bound: the last machine is there.
    const last = await machines(`(filter: {nameContains: "host-1"}, first: 2)`);
    expect(last).toMatchObject({ totalCount: 2, totalCountExact: true, pageInfo: { hasNextPage: false }, edges: [{ node: { name: 'host-10000' } }, { node: { name: 'host-10001' } }] });
  });

  it('counts a filter the maintained counts cover exactly, at any size', async () => {
    for (const filter of ['{}', '{tags: ["web"]}', '{osType: LINUX, compliance: [NOT_ASSESSED]}', '{tags: ["prod"], readiness: [NOT_CONFIGURED, DISCONNECTED, READY]}']) {
      expect(await machines(`(filter: ${filter}, first: 1)`), filter).toMatchObject({ totalCount: fleet, totalCountExact: true });
    }
  });

  it("pages a tag's machines along the tag's rows, whatever the statistics say of the tag", async () => {
    // A bulk enrollment the statistics do not know yet (autovacuum's analyze comes later): 5,000 machines of new tags, in a
    // transaction rolled back. Joined the other way round, the page read every live machine and probed the tag's rows for each;
    // with the conditions inside the lateral, it found each row's machine through the OS type's index (every Linux machine
    // per tag row). The machines whose state lapsed may still be planned otherwise until the ANALYZE (checkInPlan.test.ts).
    const nodes: Array<Record<string, unknown>> = [];
    const walk = (node: Record<string, unknown>) => {
      nodes.push(node);
      for (const child of (node.Plans as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
    };
    const rolledBack = new Error('rolled back');
    await database.sql
      .begin(async (tx) => {
        await tx`insert into machines (name, os_type, os_name, os_version, environment, tags) select 'fresh-' || i, 'LINUX', 'Debian', '12', 'AWS', '{fresh,new}' from generate_series(1, 5000) i`;
        for (const filter of [{ tags: ['fresh', 'new'] }, { tags: ['new'] }, { tags: ['new'], osType: 'LINUX' as const, compliance: ['NOT_ASSESSED' as const] }]) {
          const statement = tagPage(database.db, { filter, offset: 0, limit: 50, now: new Date(), thresholds: DEFAULT_THRESHOLDS }).toSQL();
          const [row] = await tx.unsafe<Array<{ 'QUERY PLAN': Array<{ Plan: Record<string, unknown> }> }>>(`explain (format json) ${statement.sql}`, statement.params as never[]);
          walk(row!['QUERY PLAN'][0]!.Plan);
        }
        throw rolledBack;
      })
      .catch((error: unknown) => {
        if (error !== rolledBack) throw error;
      });
    // Each walk (one per filter without a condition; with one, the stored states' and the one for other thresholds) reads
    // the tag's rows through the key (in its order, or those in the stored states through their index and sorted, where the
    // planner guesses few pass: the tag rows, never their machines) and each row's machine by its key; the lapsed machines (a few)
    // come from their own index.
    const walked = nodes.filter((n) => n['Index Name'] === 'machine_tags_tag_name_machine_id_pk' || n['Index Name'] === 'machine_tags_tag_state_idx');
    expect(walked).toHaveLength(4);
    expect(nodes.filter((n) => n['Relation Name'] === 'machine_tags' && n['Node Type'] === 'Seq Scan')).toEqual([]);
    const probes = nodes.filter((n) => n['Relation Name'] === 'machines' && JSON.stringify([n['Index Cond'], n.Filter]).includes('machine_tags.machine_id'));
    expect(probes.length, 'a walk per filter').toBeGreaterThanOrEqual(3);
    for (const probe of probes) expect(`${probe['Node Type']} ${probe['Index Name']} ${probe['Index Cond']}`).toBe('Index Scan machines_pkey (id = machine_tags.machine_id)');
  });

  it("reads only the machines whose stored state can meet a tag's condition, however many carry the tag", async () => {
    // Three of the 10,001 machines carrying `web` are non-compliant (assessed, a critical update pending); the others never assessed.
    await database.sql`update machines set last_seen_at = now(), last_assessed_at = now(), critical_count = 1 where name in ('host-00002', 'host-05000', 'host-10001')`;
    const filter: MachineFilter = { tags: ['web'], compliance: ['NON_COMPLIANT'] };
    const statement = tagPage(database.db, { filter, offset: 0, limit: 50, now: new Date(), thresholds: DEFAULT_THRESHOLDS }).toSQL();
    const [row] = await database.sql.unsafe<Array<{ 'QUERY PLAN': Array<{ Plan: Record<string, unknown> }> }>>(`explain (analyze, format json) ${statement.sql}`, statement.params as never[]);
    const nodes: Array<Record<string, unknown>> = [];
    const walk = (node: Record<string, unknown>) => {
      nodes.push(node);
      for (const child of (node.Plans as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
    };
    walk(row!['QUERY PLAN'][0]!.Plan);
    // The machines read: the three the tag rows' stored state names (each by its key), and the page's own rows.
    const machinesRead = nodes
      .filter((n) => n['Relation Name'] === 'machines')
      .reduce((sum, n) => sum + (Number(n['Actual Rows'] ?? 0) + Number(n['Rows Removed by Filter'] ?? 0)) * Number(n['Actual Loops'] ?? 0), 0);
    expect(machinesRead, JSON.stringify(row!['QUERY PLAN'])).toBeLessThanOrEqual(10);
    const page = await machines('(filter: {tags: ["web"], compliance: [NON_COMPLIANT]}, first: 2)');
    expect(page).toMatchObject({ totalCount: 3, totalCountExact: true, pageInfo: { hasNextPage: true } });
    expect(page.edges.map((e) => e.node.name)).toEqual(['host-00002', 'host-05000']);
    expect((await machines(`(filter: {tags: ["web"], compliance: [NON_COMPLIANT]}, first: 2, after: "${page.pageInfo.endCursor}")`)).edges.map((e) => e.node.name)).toEqual(['host-10001']);
  });

  it("reads the few tag rows whose state can meet the condition, not the tag's others, and the machines whose state lapsed", async () => {
    // Statistics from before a mass remediation: half the tag's machines non-compliant when analyzed, three now. Planned on
    // them, the walk along the tag's key expects a page within its first hundred rows, and reads all 10,001.
    const three = ['host-00002', 'host-05000', 'host-10001'];
    await database.sql`update machines set last_seen_at = now(), last_assessed_at = now(), critical_count = 1 where name <= 'host-05000' or name = 'host-10001'`;
    await database.sql`analyze machine_tags`;
    await database.sql`update machines set last_seen_at = null, last_assessed_at = null, critical_count = 0 where name <= 'host-05000' and name <> all(${three})`;
    const { rowsRead } = recordingDb(database);
    const page = (filter: MachineFilter, now = new Date()) => (db: Parameters<Parameters<typeof rowsRead>[1]>[0]) =>
      computersPage(db, { filter, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 50, now, thresholds: DEFAULT_THRESHOLDS });
    // Three of 10,001, read from machine_tags_tag_state_idx (0059) as the maintained counts say they are few.
    expect(await rowsRead('machine_tags', page({ tags: ['web'], compliance: ['NON_COMPLIANT'] }))).toBeLessThanOrEqual(10);
    expect(await rowsRead('machine_tags', page({ tags: ['web'], compliance: ['NON_COMPLIANT'], readiness: ['DISCONNECTED'] }))).toBe(0);
    // An hour on, the three are disconnected, their stored state (READY) lapsed: found among the lapsed machines, evaluated then.
    const hourOn = new Date(Date.now() + 3_600_000);
    const later = await page({ tags: ['web'], compliance: ['NON_COMPLIANT'], readiness: ['DISCONNECTED'] }, hourOn)(database.db);
    expect(later).toMatchObject({ totalCount: 3, totalCountExact: true });
    expect(later.rows.map((r) => r.name)).toEqual(three);
    expect((await page({ tags: ['web'], compliance: ['NON_COMPLIANT'], readiness: ['READY'] }, hourOn)(database.db)).rows).toEqual([]);
  });

  it('is exact up to the bound itself and a lower bound one match past it', async () => {
    const read = (filter: MachineFilter, countUpTo: number) =>
      computersPage(database.db, { filter, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 2, now: new Date(), thresholds: DEFAULT_THRESHOLDS, countUpTo });
    expect(await read({ nameContains: 'host-0000' }, 9)).toMatchObject({ totalCount: 9, totalCountExact: true });
    expect(await read({ nameContains: 'host-0000' }, 8)).toMatchObject({ totalCount: 8, totalCountExact: false, hasMore: true });
  });
});
