import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { listMachines } from '../../src/db/machines.js';
import { compliance, DEFAULT_THRESHOLDS, readiness } from '../../src/fleet/compliance.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';
import { enrollMachine, enrollmentKey } from '../support/machines.js';

/**
 * The computers view, missing updates and the summary on a small fleet built through the real
 * agent protocol, with some machines' clocks moved back to make them stale or silent.
 */
describe('the fleet view over GraphQL', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let viewer: string;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    ({ api, database, close } = await startApiOnFreshDatabase());
    viewer = await tokenFor(database, 'VIEWER');
    const secret = await enrollmentKey(database, 'fleet');
    const base = api.url.replace('/graphql', '');

    const enroll = async (name: string, osType: 'LINUX' | 'WINDOWS', environment: 'AWS' | 'AZURE' | 'ON_PREMISES', updates: ReturnType<typeof pendingUpdate>[] | null) => {
      ids[name] = (await enrollMachine(base, secret, { facts: { hostname: name, osType, environment }, updates: updates ?? undefined })).machineId;
    };
    const ssl = pendingUpdate({ name: 'openssl', classification: 'CRITICAL', severity: 'CRITICAL', advisoryIds: ['DSA-1'], cveIds: ['CVE-2025-1'] });
    await enroll('db-01', 'LINUX', 'AWS', [ssl, pendingUpdate({ name: 'vim' })]);
    await enroll('db-02', 'LINUX', 'AWS', [ssl, pendingUpdate({ name: 'sudo', classification: 'SECURITY', severity: 'IMPORTANT' })]);
    await enroll('web-01', 'LINUX', 'AZURE', [pendingUpdate({ name: 'vim' }), pendingUpdate({ name: 'curl' })]);
    await enroll('web-02', 'LINUX', 'ON_PREMISES', null); // never assessed
    await enroll('win-01', 'WINDOWS', 'AZURE', [pendingUpdate({ name: 'KB5031', classification: 'UPDATE_ROLLUP', installedVersion: null })]);
    await enroll('stale-01', 'LINUX', 'ON_PREMISES', [ssl]);
    // stale-01: assessed 4 hours ago (beyond Linux's 3 h), silent for 10 minutes.
    await database.sql`update machines set last_assessed_at = now() - interval '4 hours', last_seen_at = now() - interval '10 minutes' where id = ${ids['stale-01']!}`;
    // win-01: assessed 11 hours ago (within Windows' 12 h).
    await database.sql`update machines set last_assessed_at = now() - interval '11 hours' where id = ${ids['win-01']!}`;
    await database.sql`update machines set tags = '{web,prod}' where name like 'web-%'`;
  });

  afterAll(async () => {
    await close();
  });

  type Row = { name: string; compliance: string; agentReadiness: string; environment: string; osType: string; criticalAndSecurityCount: number; otherCount: number };
  const MACHINE_FIELDS = 'name compliance agentReadiness environment osType criticalAndSecurityCount otherCount';

  async function machines(args: string) {
    const response = await graphql<{ machines: { totalCount: number; edges: Array<{ cursor: string; node: Row }>; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(
      api.url,
      `{ machines${args} { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ${MACHINE_FIELDS} } } } }`,
      { token: viewer },
    );
    expect(response.errors).toBeUndefined();
    return response.data!.machines;
  }

  it("shows the seed's columns for every machine", async () => {
    const page = await machines('');
    expect(page.totalCount).toBe(6);
    const byName = Object.fromEntries(page.edges.map((e) => [e.node.name, e.node]));
    expect(byName['db-01']).toEqual({ name: 'db-01', compliance: 'NON_COMPLIANT', agentReadiness: 'READY', environment: 'AWS', osType: 'LINUX', criticalAndSecurityCount: 1, otherCount: 1 });
    expect(byName['web-01']).toMatchObject({ compliance: 'COMPLIANT', criticalAndSecurityCount: 0, otherCount: 2, environment: 'AZURE' });
    expect(byName['web-02']).toMatchObject({ compliance: 'NOT_ASSESSED', agentReadiness: 'READY' });
    expect(byName['win-01']).toMatchObject({ compliance: 'COMPLIANT', osType: 'WINDOWS', otherCount: 1 });
    expect(byName['stale-01']).toMatchObject({ compliance: 'NOT_ASSESSED', agentReadiness: 'DISCONNECTED' });
  });

  it('explains a disconnected agent with since when', async () => {
    const response = await graphql<{ machine: { readinessDetail: { state: string; since: string; reason: string } } }>(
      api.url,
      'query($id: ID!) { machine(id: $id) { readinessDetail { state since reason } } }',
      { token: viewer, variables: { id: ids['stale-01'] } },
    );
    const detail = response.data!.machine.readinessDetail;
    expect(detail.state).toBe('DISCONNECTED');
    expect(Date.now() - Date.parse(detail.since)).toBeGreaterThan(9 * 60_000);
    expect(detail.reason).toContain(detail.since.slice(0, 16));
  });

  it('filters on compliance, OS type, readiness, tags and name, and pages with totalCount', async () => {
    expect((await machines('(filter: {compliance: [NON_COMPLIANT]})')).edges.map((e) => e.node.name)).toEqual(['db-01', 'db-02']);
    expect((await machines('(filter: {osType: WINDOWS})')).edges.map((e) => e.node.name)).toEqual(['win-01']);
    expect((await machines('(filter: {readiness: [DISCONNECTED]})')).edges.map((e) => e.node.name)).toEqual(['stale-01']);
    expect((await machines('(filter: {tags: ["web", "prod"]})')).edges.map((e) => e.node.name)).toEqual(['web-01', 'web-02']);
    // One tag, alone or with the OS type, is counted from the maintained counts per tag and OS type; with another filter, with the page.
    expect(await machines('(filter: {tags: ["web"]}, first: 1)')).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: true } });
    expect((await machines('(filter: {tags: ["web"], osType: WINDOWS})')).totalCount).toBe(0);
    expect(await machines('(filter: {tags: ["web"], osType: LINUX}, first: 1)')).toMatchObject({ totalCount: 2, pageInfo: { hasNextPage: true } });
    expect(await machines('(filter: {tags: ["web"], osType: LINUX, compliance: [COMPLIANT]})')).toMatchObject({ totalCount: 1, edges: [{ node: { name: 'web-01' } }] });
    expect((await machines('(filter: {nameContains: "DB-"})')).totalCount).toBe(2);
    // The OS type with compliance or readiness is counted from the maintained counts per OS type and state.
    expect(await machines('(filter: {osType: LINUX, compliance: [NON_COMPLIANT, NOT_ASSESSED]}, first: 1)')).toMatchObject({ totalCount: 4, pageInfo: { hasNextPage: true } });
    expect((await machines('(filter: {osType: LINUX, readiness: [DISCONNECTED]})')).totalCount).toBe(1);
    expect((await machines('(filter: {osType: WINDOWS, compliance: [NON_COMPLIANT]})')).totalCount).toBe(0);
    expect(await machines('(filter: {osType: LINUX}, first: 2)')).toMatchObject({ totalCount: 5, pageInfo: { hasNextPage: true } });
    // One tag with compliance or readiness, from the maintained counts per tag and state.
    expect(await machines('(filter: {tags: ["web"], compliance: [NOT_ASSESSED]})')).toMatchObject({ totalCount: 1, edges: [{ node: { name: 'web-02' } }] });
    expect((await machines('(filter: {tags: ["prod"], compliance: [NON_COMPLIANT, COMPLIANT], readiness: [READY]})')).totalCount).toBe(1);

    // A small fleet counts its matches with the page.
    const counted = await graphql<{ machines: { totalCount: number; totalCountComputedAt: string | null } }>(api.url, '{ machines { totalCount totalCountComputedAt } }', { token: viewer });
    expect(counted.data!.machines).toEqual({ totalCount: 6, totalCountComputedAt: null });
    const first = await machines('(first: 4)');
    expect(first.edges).toHaveLength(4);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = await machines(`(first: 4, after: "${first.pageInfo.endCursor}")`);
    expect(second.edges.map((e) => e.node.name)).toEqual(['web-02', 'win-01']);
    expect(second.totalCount).toBe(6);
    expect(second.pageInfo.hasNextPage).toBe(false);
  });

  it("answers a tag with a condition none of its machines meet from its count, without walking the tag's machines", async () => {
    // Another transaction holds machine_tags (what a tag's page walks): a page read would wait on it, in pg_stat_activity.
    await database.sql.begin(async (tx) => {
      await tx`lock table machine_tags in access exclusive mode`;
      for (const filter of ['{tags: ["web"], osType: WINDOWS}', '{tags: ["web"], overdue: true}', '{tags: ["prod"], compliance: [NON_COMPLIANT]}']) {
        let answered = false;
        const answer = machines(`(filter: ${filter})`).finally(() => (answered = true));
        while (!answered) {
          const [waiting] = await database.sql<Array<{ n: number }>>`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query ilike '%machine_tags%'`;
          expect(waiting!.n, `${filter}: a read waited for machine_tags`).toBe(0);
        }
        expect(await answer, filter).toMatchObject({ totalCount: 0, edges: [], pageInfo: { hasNextPage: false } });
      }
    });
    // With matches, the page is read as before.
    expect(await machines('(filter: {tags: ["web"], readiness: [READY], compliance: [NOT_ASSESSED]})')).toMatchObject({ totalCount: 1, edges: [{ node: { name: 'web-02' } }] });
  });

  it('sorts by compliance (non-compliant first) and by update counts', async () => {
    const byCompliance = await machines('(orderBy: {field: COMPLIANCE})');
    expect(byCompliance.edges.map((e) => e.node.compliance)).toEqual(['NON_COMPLIANT', 'NON_COMPLIANT', 'NOT_ASSESSED', 'NOT_ASSESSED', 'COMPLIANT', 'COMPLIANT']);
    // Page by page (pages that cut across compliance groups), and the other way round: the same order.
    for (const direction of ['ASC', 'DESC']) {
      const whole = (await machines(`(orderBy: {field: COMPLIANCE, direction: ${direction}})`)).edges.map((e) => e.node.name);
      const paged: string[] = [];
      let after: string | null = null;
      do {
        const page: Awaited<ReturnType<typeof machines>> = await machines(`(orderBy: {field: COMPLIANCE, direction: ${direction}}, first: 3${after ? `, after: "${after}"` : ''})`);
        expect(page.totalCount).toBe(6);
        paged.push(...page.edges.map((e) => e.node.name));
        after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
      } while (after);
      expect(paged).toEqual(whole);
      if (direction === 'DESC') expect(whole.slice(0, 2).map((name) => byCompliance.edges.find((e) => e.node.name === name)!.node.compliance)).toEqual(['COMPLIANT', 'COMPLIANT']);
    }
    const byOther = await machines('(orderBy: {field: OTHER_COUNT, direction: DESC}, first: 1)');
    expect(byOther.edges[0]!.node.name).toBe('web-01');
  });

  it('refuses a page too large and a cursor it did not hand out', async () => {
    const big = await graphql(api.url, '{ machines(first: 501) { totalCount } }', { token: viewer });
    expect(big.errors?.[0]).toMatchObject({ message: 'first must be between 0 and 500; got 501.', extensions: { code: 'BAD_USER_INPUT', field: 'first' } });
    const forged = await graphql(api.url, '{ machines(after: "bm9wZQ") { totalCount } }', { token: viewer });
    expect(forged.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it('lists missing updates across the fleet with how many machines miss each, critical first', async () => {
    const response = await graphql<{ missingUpdates: { totalCount: number; edges: Array<{ node: { name: string; classification: string; machineCount: number; severity: string | null; cveIds: string[] } }> } }>(
      api.url,
      '{ missingUpdates { totalCount edges { node { name classification machineCount severity cveIds } } } }',
      { token: viewer },
    );
    const nodes = response.data!.missingUpdates.edges.map((e) => e.node);
    expect(nodes[0]).toEqual({ name: 'openssl', classification: 'CRITICAL', machineCount: 3, severity: 'CRITICAL', cveIds: ['CVE-2025-1'] });
    expect(nodes[1]).toMatchObject({ name: 'sudo', classification: 'SECURITY', machineCount: 1 });
    expect(nodes.find((n) => n.name === 'vim')).toMatchObject({ machineCount: 2 });
    expect(response.data!.missingUpdates.totalCount).toBe(5); // openssl, sudo, vim, curl, KB5031
    const asOf = await graphql<{ missingUpdates: { computedAt: string } }>(api.url, '{ missingUpdates(first: 1) { computedAt } }', { token: viewer });
    expect(Date.now() - Date.parse(asOf.data!.missingUpdates.computedAt)).toBeLessThan(301_000);

    // Page by page: the same rows with the same details, and the total on every page, the last one too.
    type Page = { missingUpdates: { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: Array<{ node: { name: string; classification: string; machineCount: number; severity: string | null; cveIds: string[] } }> } };
    const paged: typeof nodes = [];
    let after: string | null = null;
    do {
      const page: Page = (await graphql<Page>(api.url, `{ missingUpdates(first: 2${after ? `, after: "${after}"` : ''}) { totalCount pageInfo { hasNextPage endCursor } edges { node { name classification machineCount severity cveIds } } } }`, { token: viewer })).data!;
      expect(page.missingUpdates.totalCount).toBe(5);
      paged.push(...page.missingUpdates.edges.map((e) => e.node));
      after = page.missingUpdates.pageInfo.hasNextPage ? page.missingUpdates.pageInfo.endCursor : null;
    } while (after);
    expect(paged).toEqual(nodes);
  });

  it('names the machines missing each update, by name and paged', async () => {
    type Page = { missingUpdates: { edges: Array<{ node: { name: string; machines: { totalCount: number; pageInfo: { hasNextPage: boolean }; edges: Array<{ node: { name: string } }> } } }> } };
    const response = await graphql<Page>(api.url, '{ missingUpdates(filter: {nameContains: "openssl"}) { edges { node { name machines(first: 2) { totalCount pageInfo { hasNextPage } edges { node { name } } } } } } }', { token: viewer });
    const openssl = response.data!.missingUpdates.edges[0]!.node.machines;
    expect(openssl).toMatchObject({ totalCount: 3, pageInfo: { hasNextPage: true } });
    expect(openssl.edges.map((e) => e.node.name)).toEqual(['db-01', 'db-02']);
    const vim = (await graphql<Page>(api.url, '{ missingUpdates(filter: {nameContains: "vim"}) { edges { node { name machines { totalCount pageInfo { hasNextPage } edges { node { name } } } } } } }', { token: viewer })).data!.missingUpdates.edges[0]!.node.machines;
    expect(vim.edges.map((e) => e.node.name)).toEqual(['db-01', 'web-01']);
  });

  it('summarises compliance, readiness and pending updates per classification', async () => {
    const response = await graphql<{ complianceSummary: Record<string, unknown> }>(
      api.url,
      '{ complianceSummary { total compliant nonCompliant notAssessed ready disconnected notConfigured computedAt pendingByClassification { classification updateCount machineCount } } }',
      { token: viewer },
    );
    const summary = response.data!.complianceSummary;
    // Maintained counts, exact at the read: computedAt is the time of the read.
    expect(Math.abs(Date.now() - Date.parse(summary.computedAt as string))).toBeLessThan(5_000);
    expect(summary).toMatchObject({ total: 6, compliant: 2, nonCompliant: 2, notAssessed: 2, ready: 5, disconnected: 1, notConfigured: 0 });
    expect(summary.pendingByClassification).toEqual(
      expect.arrayContaining([
        { classification: 'CRITICAL', updateCount: 3, machineCount: 3 },
        { classification: 'SECURITY', updateCount: 1, machineCount: 1 },
        { classification: 'OTHER', updateCount: 3, machineCount: 2 },
        { classification: 'UPDATE_ROLLUP', updateCount: 1, machineCount: 1 },
      ]),
    );
  });

  it('computes compliance and readiness in SQL exactly as the plain functions do', async () => {
    const now = new Date();
    for (const state of ['COMPLIANT', 'NON_COMPLIANT', 'NOT_ASSESSED'] as const) {
      const { rows } = await listMachines(database.db, { filter: { compliance: [state] }, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 100, now, thresholds: DEFAULT_THRESHOLDS });
      for (const row of rows) expect(compliance(row, now)).toBe(state);
    }
    for (const state of ['READY', 'DISCONNECTED', 'NOT_CONFIGURED'] as const) {
      const { rows } = await listMachines(database.db, { filter: { readiness: [state] }, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 100, now, thresholds: DEFAULT_THRESHOLDS });
      for (const row of rows) expect(readiness(row, now).state).toBe(state);
    }
  });
});
