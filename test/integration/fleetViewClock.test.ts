import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServices } from '../../src/api/context.js';
import { MachineService } from '../../src/api/machines/machine.service.js';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/client.js';
import { applyMissingUpdateDelta } from '../../src/db/fleetCounts.js';
import { fleetSummaryUpkeep } from '../../src/db/fleetSummary.js';
import { connectTestDatabase, freshDatabase, testLogger } from '../support/env.js';

const T = new Date('2026-11-26T12:00:00Z');
const at = (ms: number) => new Date(T.getTime() + ms);
const MIN = 60_000;
/** postgres.js here takes times as ISO strings. */
const iso = (d: Date | null) => d?.toISOString() ?? null;
const HOUR = 60 * MIN;

/** The fleet view's services on a clock the test moves, with the default thresholds. */
function servicesAt(database: Database) {
  let clock = T;
  const services = { database, logger: testLogger, fleet: loadConfig({}), now: () => clock } as unknown as ApiServices;
  return { service: new MachineService(services), services, setClock: (d: Date) => (clock = d) };
}

async function insertMachine(database: Database, m: { name: string; osType?: 'LINUX' | 'WINDOWS'; assessedAt: Date | null; seenAt: Date | null; critical?: number; security?: number; other?: number; managementEnabled?: boolean; removed?: boolean }) {
  const id = randomUUID();
  await database.sql`insert into machines (id, name, os_type, os_name, os_version, environment, last_seen_at, last_assessed_at, critical_count, security_count, other_count, management_enabled, removed_at)
    values (${id}, ${m.name}, ${m.osType ?? 'LINUX'}, 'os', '1', 'AWS', ${iso(m.seenAt)}::timestamptz, ${iso(m.assessedAt)}::timestamptz, ${m.critical ?? 0}, ${m.security ?? 0}, ${m.other ?? 0}, ${m.managementEnabled ?? true}, ${m.removed ? iso(T) : null}::timestamptz)`;
  return id;
}

/** Gives a machine a new latest assessment listing these updates (older assessments stay, as history). */
async function assess(database: Database, machineId: string, updates: Array<{ name: string; arch?: string; classification: string; severity?: string | null; version: string; cves?: string[] }>, latest = true) {
  const assessmentId = randomUUID();
  await database.sql`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count) values (${assessmentId}, ${machineId}, 'SCHEDULE', 'apt', ${iso(T)}::timestamptz, ${iso(T)}::timestamptz, ${iso(T)}::timestamptz, false, 0, 0, 0)`;
  for (const u of updates) {
    await database.sql`insert into pending_updates (assessment_id, machine_id, name, arch, available_version, classification, severity, cve_ids)
      values (${assessmentId}, ${machineId}, ${u.name}, ${u.arch ?? 'amd64'}, ${u.version}, ${u.classification}, ${u.severity ?? null}, ${u.cves ?? []})`;
  }
  if (!latest) return;
  // What the ingest does in its transaction: the machine's latest assessment replaced, and the maintained counts moved from the old one to the new.
  const [before] = await database.sql<Array<{ os_type: 'LINUX' | 'WINDOWS'; latest_assessment_id: string | null; live: boolean }>>`
    select os_type, latest_assessment_id, removed_at is null as live from machines where id = ${machineId}`;
  await database.sql`update machines set latest_assessment_id = ${assessmentId} where id = ${machineId}`;
  if (before!.live) {
    const old = before!.latest_assessment_id ? [{ osType: before!.os_type, assessmentId: before!.latest_assessment_id }] : [];
    await applyMissingUpdateDelta(database.sql, old, [{ osType: before!.os_type, assessmentId }]);
  }
}

describe('the fleet view from maintained counts, on a hand-built fleet and a clock the test moves', () => {
  let database: Database;
  let drop: () => Promise<void>;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    // At T: a1 NON_COMPLIANT (assessed 1 min inside Linux's 3 h) READY; a2 COMPLIANT READY (1 s inside the
    // default 270 s); a3 NOT_ASSESSED DISCONNECTED; w1 NON_COMPLIANT (5 min inside Windows' 12 h) never seen; a4 never
    // assessed, management off; r1 removed.
    ids.a1 = await insertMachine(database, { name: 'a1', assessedAt: at(-3 * HOUR + MIN), seenAt: at(-10_000), critical: 1 });
    ids.a2 = await insertMachine(database, { name: 'a2', assessedAt: at(-HOUR), seenAt: at(-269_000), other: 3 });
    ids.a3 = await insertMachine(database, { name: 'a3', assessedAt: at(-3 * HOUR - MIN), seenAt: at(-271_000), security: 1 });
    ids.w1 = await insertMachine(database, { name: 'w1', osType: 'WINDOWS', assessedAt: at(-12 * HOUR + 5 * MIN), seenAt: null, security: 2 });
    ids.a4 = await insertMachine(database, { name: 'a4', assessedAt: null, seenAt: at(-5_000), managementEnabled: false });
    ids.r1 = await insertMachine(database, { name: 'r1', assessedAt: at(-MIN), seenAt: at(-MIN), critical: 5, removed: true });
    // openssl on two architectures of a1 (one machine), on w1 in another version; an old assessment of a2
    // and the removed machine list it too, and count for nothing.
    await assess(database, ids.a1, [
      { name: 'openssl', classification: 'CRITICAL', severity: 'IMPORTANT', version: '3.0.2', cves: ['CVE-2'] },
      { name: 'openssl', arch: 'i386', classification: 'CRITICAL', severity: 'IMPORTANT', version: '3.0.2', cves: ['CVE-2'] },
      { name: 'vim', classification: 'OTHER', version: '9.1' },
    ]);
    await assess(database, ids.w1, [{ name: 'openssl', classification: 'CRITICAL', severity: 'CRITICAL', version: '3.0.1', cves: ['CVE-1'] }]);
    await assess(database, ids.a2, [{ name: 'openssl', classification: 'CRITICAL', version: '3.0.0' }], false);
    await assess(database, ids.a2, [{ name: 'vim', classification: 'OTHER', version: '9.1' }]);
    await assess(database, ids.r1, [{ name: 'openssl', classification: 'CRITICAL', version: '3.0.2' }]);
  });

  afterAll(async () => {
    await database.close();
    await drop();
  });

  it('counts each compliance state and readiness exactly at the cutoffs, and moves them as the clock passes them', async () => {
    const { service, setClock } = servicesAt(database);
    const summary = await service.summary();
    expect(summary).toMatchObject({ total: 5, computedAt: T, byCompliance: { COMPLIANT: 1, NON_COMPLIANT: 2, NOT_ASSESSED: 2 }, byReadiness: { READY: 2, DISCONNECTED: 1, NOT_CONFIGURED: 2 } });
    expect(summary.pendingByClassification).toEqual([
      { classification: 'CRITICAL', updateCount: 1, machineCount: 1 },
      { classification: 'SECURITY', updateCount: 3, machineCount: 2 },
      { classification: 'OTHER', updateCount: 3, machineCount: 1 },
    ]);
    // Two minutes on: a1's assessment is past 3 h (NOT_ASSESSED), a2 has been silent 389 s (DISCONNECTED).
    setClock(at(2 * MIN));
    expect(await service.summary()).toMatchObject({ total: 5, computedAt: at(2 * MIN), byCompliance: { COMPLIANT: 1, NON_COMPLIANT: 1, NOT_ASSESSED: 3 }, byReadiness: { READY: 1, DISCONNECTED: 2, NOT_CONFIGURED: 2 } });
  });

  it('shows a change at the very next read, and the clock passing a cutoff without any sweep; the sweep changes no answer', async () => {
    const { service, setClock } = servicesAt(database);
    expect(await service.summary()).toMatchObject({ total: 5, computedAt: T });
    // Written straight into the table, as any writer would: the triggers count it in the same statement.
    const late = await insertMachine(database, { name: 'late', assessedAt: T, seenAt: T, critical: 1 });
    expect(await service.summary()).toMatchObject({ total: 6, computedAt: T, byCompliance: { COMPLIANT: 1, NON_COMPLIANT: 3, NOT_ASSESSED: 2 } });
    // 270 s on, nobody swept: a1 and a2 have been silent longer than 270 s; 'late', seen at T, only from 270 s + 1 ms.
    setClock(at(270_000));
    expect(await service.summary()).toMatchObject({ byReadiness: { READY: 1, DISCONNECTED: 3, NOT_CONFIGURED: 2 } });
    setClock(at(270_001));
    const before = await service.summary();
    expect(before).toMatchObject({ computedAt: at(270_001), byReadiness: { READY: 0, DISCONNECTED: 4, NOT_CONFIGURED: 2 } });
    // The upkeep moves the passed machines forward and folds: the answer stays the same, and nothing is left to add up.
    expect((await fleetSummaryUpkeep(database.db, at(270_001))).moved).toBeGreaterThan(0);
    expect(await service.summary()).toEqual(before);
    expect(await database.sql`select id from machines where summary_next_at <= ${iso(at(270_001))}::timestamptz and summary_at < ${iso(at(270_001))}::timestamptz`).toHaveLength(0);
    // It checks in again: READY at once.
    await database.sql`update machines set last_seen_at = ${iso(at(270_001))}::timestamptz where id = ${late}`;
    expect(await service.summary()).toMatchObject({ byReadiness: { READY: 1, DISCONNECTED: 3, NOT_CONFIGURED: 2 } });
    await database.sql`update machines set removed_at = ${iso(T)}::timestamptz where id = ${late}`;
    expect(await service.summary()).toMatchObject({ total: 5, byReadiness: { READY: 0, DISCONNECTED: 3, NOT_CONFIGURED: 2 } });
    await database.sql`delete from machines where id = ${late}`;
  });

  it("lists the fleet's missing updates from the latest assessments of live machines, one machine once whatever its architectures", async () => {
    const { service } = servicesAt(database);
    const { rows, totalCount, computedAt } = await service.missingUpdates({}, { offset: 0, limit: 10 });
    // The time of the read: the counts are maintained, never a snapshot of before.

    expect(computedAt).toEqual(T);
    expect(totalCount).toBe(2);
    expect(rows).toEqual([
      { name: 'openssl', classification: 'CRITICAL', machineCount: 2, severity: 'CRITICAL', availableVersions: ['3.0.1', '3.0.2'], advisoryIds: [], cveIds: ['CVE-1', 'CVE-2'], rebootSuggested: false },
      { name: 'vim', classification: 'OTHER', machineCount: 2, severity: null, availableVersions: ['9.1'], advisoryIds: [], cveIds: [], rebootSuggested: false },
    ]);
    expect((await service.missingUpdates({ osType: 'WINDOWS' }, { offset: 0, limit: 10 })).rows).toMatchObject([{ name: 'openssl', machineCount: 1, availableVersions: ['3.0.1'] }]);
  });

  it('shows a new assessment in the missing updates at the next read, with no snapshot to wait for', async () => {
    const { service, setClock } = servicesAt(database);
    expect((await service.missingUpdates({ nameContains: 'curl' }, { offset: 0, limit: 10 })).totalCount).toBe(0);
    await assess(database, ids.a3!, [{ name: 'curl', classification: 'SECURITY', severity: 'MODERATE', version: '8.5' }]);
    setClock(at(1_000));
    expect(await service.missingUpdates({ nameContains: 'curl' }, { offset: 0, limit: 10 })).toMatchObject({ totalCount: 1, computedAt: at(1_000), rows: [{ name: 'curl', machineCount: 1 }] });
  });
});

describe('the computers page on a fleet of 10,000 machines', () => {
  let database: Database;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    // Every machine assessed and seen at T; one in four with a critical update (NON_COMPLIANT).
    await database.sql`insert into machines (name, os_type, os_name, os_version, environment, last_seen_at, last_assessed_at, critical_count)
      select 'm-' || lpad(i::text, 5, '0'), 'LINUX', 'os', '1', 'AWS', ${iso(T)}::timestamptz, ${iso(T)}::timestamptz, (i % 4 = 0)::int from generate_series(1, 10000) i`;
  });

  afterAll(async () => {
    await database.close();
    await drop();
  });

  it('takes the count of a page filtered on compliance alone from the maintained counts, exact at the read, and keeps pageInfo exact', async () => {
    const { service, setClock } = servicesAt(database);
    const first = await service.list({}, { field: 'COMPLIANCE', direction: 'ASC' }, { offset: 0, limit: 50 });
    expect(first).toMatchObject({ totalCount: 10_000, totalCountComputedAt: null, hasMore: true });
    expect(first.rows.map((r) => r.name).slice(0, 2)).toEqual(['m-00004', 'm-00008']);
    const nonCompliant = await service.list({ compliance: ['NON_COMPLIANT' as never] }, { field: 'NAME', direction: 'ASC' }, { offset: 2450, limit: 100 });
    expect(nonCompliant).toMatchObject({ totalCount: 2500, totalCountComputedAt: null, hasMore: false });
    expect(nonCompliant.rows).toHaveLength(50);

    // Five more machines: counted at once.
    await database.sql`insert into machines (name, os_type, os_name, os_version, environment, last_seen_at, last_assessed_at, critical_count)
      select 'm-9' || i, 'LINUX', 'os', '1', 'AWS', ${iso(T)}::timestamptz, ${iso(T)}::timestamptz, 1 from generate_series(1, 5) i`;
    setClock(at(1_000));
    const last = await service.list({ compliance: ['NON_COMPLIANT' as never] }, { field: 'NAME', direction: 'ASC' }, { offset: 2450, limit: 100 });
    expect(last).toMatchObject({ totalCount: 2505, totalCountComputedAt: null, hasMore: false });
    expect(last.rows).toHaveLength(55);

    // Past the 3 h of their assessments, with no sweep: every one NOT_ASSESSED.
    setClock(at(3 * HOUR + 1));
    expect(await service.list({ compliance: ['NOT_ASSESSED' as never] }, { field: 'NAME', direction: 'ASC' }, { offset: 0, limit: 1 })).toMatchObject({ totalCount: 10_005, totalCountComputedAt: null });
    // Any other filter counts with the page.
    expect(await service.list({ nameContains: 'm-9' }, { field: 'NAME', direction: 'ASC' }, { offset: 0, limit: 2 })).toMatchObject({ totalCount: 5, totalCountComputedAt: null, hasMore: true });
  });
});
