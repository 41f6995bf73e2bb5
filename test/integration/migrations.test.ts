import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { agentVersionRows } from '../../src/db/agentUpgrades.js';
import { saveBaseline } from '../../src/db/baselines.js';
import { prepareReport } from '../../src/db/assessmentIngest.js';
import { connectDatabase } from '../../src/db/client.js';
import { advisoryCves, advisoryExposedPairs, cveListFigures, importedExposureGroups, maintainedImportedGroups, trackerCandidates } from '../../src/db/cves.js';
import { maintainedMissingUpdateGroups } from '../../src/db/fleetCounts.js';
import { fleetSummaryUpkeep, foldMachineTagDeltas, maintainedComplianceSummary, maintainedSummaryCounts, maintainedTagGroups } from '../../src/db/fleetSummary.js';
import { complianceSummary, listMachines, machinesMissing, missingUpdateGroups, recordCheckIn, removeMachine, type MachineFilter } from '../../src/db/machines.js';
import { countedCveSummaries, cveSummaries, importedCveList, type ImportedExposureGroup } from '../../src/fleet/cves.js';
import { groupsFromCounts } from '../../src/fleet/fleetSummary.js';
import { DEFAULT_THRESHOLDS, type FleetThresholds } from '../../src/fleet/compliance.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import type { MissingUpdateGroup } from '../../src/fleet/missingUpdates.js';
import type { RebootSetting } from '../../src/fleet/planning.js';
import { rebootForecast, rebootReserveSeconds } from '../../src/fleet/reboot.js';
import { connectTestDatabase, databaseUrl } from '../support/env.js';
import { emptyDatabase, migrateUpTo } from '../support/migrations.js';
import { random, storeReportGroup } from '../support/randomFleet.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';

describe('migrations', () => {
  const name = `migrate_${Date.now()}`;
  const admin = postgres(databaseUrl(), { max: 1, onnotice: () => undefined });
  const url = (() => {
    const u = new URL(databaseUrl());
    u.pathname = `/${name}`;
    return u.toString();
  })();

  afterAll(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });

  it('are applied once when several processes start together', async () => {
    await admin.unsafe(`create database ${name}`);
    const results = await Promise.all([migrateDatabase(url), migrateDatabase(url), migrateDatabase(url)]);
    const applied = results.map((r) => r.applied).sort();
    // One of them applies everything, the others wait for the lock and find nothing left.
    expect(applied[0]).toBe(0);
    expect(applied[1]).toBe(0);
    expect(applied[2]).toBeGreaterThan(0);
    const db = postgres(url, { max: 1 });
    const tables = await db`select tablename from pg_tables where schemaname = 'public' order by tablename`;
    await db.end();
    expect(tables.map((t) => t.tablename)).toEqual(expect.arrayContaining(['api_tokens', 'self_checks']));
    expect((await migrateDatabase(url)).applied).toBe(0);
  });
});

/**
 * Each migration that moves data, applied over rows the schema before it holds (Fleet's practice):
 * migrate up to the previous one, insert what an older fleetpatch stored, apply the next one.
 */
/** (compliance, readiness) groups in one order, to compare a maintained answer with a recompute's. */
const sortedGroups = (groups: Array<{ compliance: string; readiness: string; n: number }>) => [...groups].sort((a, b) => `${a.compliance}${a.readiness}`.localeCompare(`${b.compliance}${b.readiness}`));

describe('migrations over existing rows', () => {
  async function withDatabase(test: (sql: postgres.Sql, url: string) => Promise<void>): Promise<void> {
    const { url, drop } = await emptyDatabase();
    const sql = postgres(url, { max: 2, onnotice: () => undefined });
    try {
      await test(sql, url);
    } finally {
      await sql.end({ timeout: 5 });
      await drop();
    }
  }

  const insertMachine = async (sql: postgres.Sql, name: string, osType: 'LINUX' | 'WINDOWS') =>
    (await sql`insert into machines (name, os_type, os_name, os_version, environment) values (${name}, ${osType}::os_type, ${name}, '1', 'ON_PREMISES'::environment) returning id`)[0]!.id as string;

  /** An assessment of the machine finished at `finishedAt`, with one pending update per [name, classification]. */
  async function insertAssessment(sql: postgres.Sql, machineId: string, finishedAt: string, updates: Array<[string, string]>): Promise<string> {
    const id = randomUUID();
    await sql`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, reboot_pending, critical_count, security_count, other_count)
      values (${id}, ${machineId}, 'SCHEDULE', 'windows', ${finishedAt}, ${finishedAt}, false, 0, 0, 0)`;
    for (const [name, classification] of updates) {
      await sql`insert into pending_updates (assessment_id, machine_id, name, available_version, classification) values (${id}, ${machineId}, ${name}, '2', ${classification}::classification)`;
    }
    return id;
  }

  it('0004 fills the new Windows classification counts from each machine\'s latest assessment', async () => {
    await withDatabase(async (sql, url) => {
      await migrateUpTo(url, '0003');
      const windows = await insertMachine(sql, 'win-01', 'WINDOWS');
      // An older assessment that no longer counts, then the latest one.
      await insertAssessment(sql, windows, '2026-01-01T00:00:00Z', [['KB1', 'UPDATE_ROLLUP'], ['KB2', 'UPDATE_ROLLUP'], ['KB3', 'UPDATE_ROLLUP']]);
      const latest = await insertAssessment(sql, windows, '2026-01-02T00:00:00Z', [
        ['KB10', 'UPDATE_ROLLUP'],
        ['KB11', 'FEATURE_PACK'],
        ['KB12', 'SERVICE_PACK'],
        ['KB13', 'DEFINITION'],
        ['KB14', 'DEFINITION'],
        ['KB15', 'TOOLS'],
        ['KB16', 'UPDATES'],
        ['KB17', 'UPDATES'],
        ['KB18', 'UPDATES'],
        ['KB19', 'CRITICAL'],
      ]);
      await sql`update machines set latest_assessment_id = ${latest}, last_assessed_at = '2026-01-02T00:00:00Z' where id = ${windows}`;
      const linux = await insertMachine(sql, 'debian-01', 'LINUX');
      const linuxLatest = await insertAssessment(sql, linux, '2026-01-02T00:00:00Z', [['openssl', 'SECURITY'], ['vim', 'OTHER']]);
      await sql`update machines set latest_assessment_id = ${linuxLatest} where id = ${linux}`;
      const neverAssessed = await insertMachine(sql, 'new-01', 'LINUX');

      await migrateUpTo(url, '0004');
      const counts = async (id: string) =>
        (await sql`select update_rollup_count, feature_pack_count, service_pack_count, definition_count, tools_count, updates_count from machines where id = ${id}`)[0];
      expect(await counts(windows)).toEqual({ update_rollup_count: 1, feature_pack_count: 1, service_pack_count: 1, definition_count: 2, tools_count: 1, updates_count: 3 });
      const none = { update_rollup_count: 0, feature_pack_count: 0, service_pack_count: 0, definition_count: 0, tools_count: 0, updates_count: 0 };
      expect(await counts(linux)).toEqual(none);
      expect(await counts(neverAssessed)).toEqual(none);
    });
  });

  it('0005 keeps the pending updates already stored and holds new rows to their assessment per statement', async () => {
    await withDatabase(async (sql, url) => {
      await migrateUpTo(url, '0004');
      const machine = await insertMachine(sql, 'debian-01', 'LINUX');
      const first = await insertAssessment(sql, machine, '2026-01-01T00:00:00Z', [['openssl', 'SECURITY'], ['sudo', 'SECURITY'], ['vim', 'OTHER']]);
      const second = await insertAssessment(sql, machine, '2026-01-02T00:00:00Z', [['openssl', 'SECURITY'], ['vim', 'OTHER']]);
      const rowsOf = async (id: string) => Number((await sql`select count(*)::int as n from pending_updates where assessment_id = ${id}`)[0]!.n);

      await migrateUpTo(url, '0005');
      // Nothing stored before is lost.
      expect([await rowsOf(first), await rowsOf(second)]).toEqual([3, 2]);
      // The rules the foreign key kept: rows of an assessment that does not exist are refused, on insert and on update...
      await expect(sql`insert into pending_updates (assessment_id, machine_id, name, available_version, classification) values (${randomUUID()}, ${machine}, 'curl', '2', 'OTHER'::classification)`).rejects.toMatchObject({ code: '23503' });
      await expect(sql`update pending_updates set assessment_id = ${randomUUID()} where assessment_id = ${second}`).rejects.toMatchObject({ code: '23503' });
      await sql`insert into pending_updates (assessment_id, machine_id, name, available_version, classification) values (${second}, ${machine}, 'curl', '2', 'OTHER'::classification)`;
      // ...and an assessment deleted takes its rows along, and only its own.
      await sql`delete from assessments where id = ${first}`;
      expect([await rowsOf(first), await rowsOf(second)]).toEqual([0, 3]);
      // Whatever comes after applies over these rows too.
      await migrateDatabase(url);
    });
  });

  it('0009 puts stored reports on the server clock and frees a machine frozen by a report "finished in 2099"', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0008');
      const [machine] = await db`insert into machines (name, os_type, os_name, os_version, environment) values ('frozen', 'WINDOWS', 'Windows Server 2022', '10.0', 'ON_PREMISES') returning id`;
      const id = machine!.id as string;
      const future = '00000000-0000-4000-8000-000000000001';
      const honest = '00000000-0000-4000-8000-000000000002';
      await db`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, received_at, reboot_pending, critical_count, security_count, other_count)
        values (${future}, ${id}, 'SCHEDULE', 'windows', '2099-01-01T00:00:00Z', '2099-01-01T00:00:00Z', '2026-11-25T10:00:00Z', false, 2, 0, 0),
               (${honest}, ${id}, 'SCHEDULE', 'windows', '2026-11-25T11:00:00Z', '2026-11-25T11:00:00Z', '2026-11-25T11:00:01Z', true, 0, 1, 2)`;
      await db`insert into pending_updates (assessment_id, machine_id, name, available_version, classification)
        values (${honest}, ${id}, 'KB1', '1', 'SECURITY'), (${honest}, ${id}, 'KB2', '1', 'TOOLS'), (${honest}, ${id}, 'KB3', '1', 'DEFINITION')`;
      await db`update machines set latest_assessment_id = ${future}, last_assessed_at = '2099-01-01T00:00:00Z', critical_count = 2 where id = ${id}`;

      await migrateUpTo(url, '0009');

      const assessed = await db`select id::text, assessed_at from assessments order by id`;
      expect(assessed.map((a) => [a.id, (a.assessed_at as Date).toISOString()])).toEqual([
        [future, '2026-11-25T10:00:00.000Z'],
        [honest, '2026-11-25T11:00:00.000Z'],
      ]);
      const [after] = await db`select latest_assessment_id::text as latest, last_assessed_at, reboot_pending, critical_count, security_count, other_count, tools_count, definition_count, clock_offset_seconds from machines where id = ${id}`;
      expect({ ...after, last_assessed_at: (after!.last_assessed_at as Date).toISOString() }).toEqual({
        latest: honest,
        last_assessed_at: '2026-11-25T11:00:00.000Z',
        reboot_pending: true,
        critical_count: 0,
        security_count: 1,
        other_count: 2,
        tools_count: 1,
        definition_count: 1,
        clock_offset_seconds: null,
      });
    });
  });
  it('0020 backfills first-seen dates from the assessments already stored: the earliest that listed each update, per kind', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0019');
      const machine = await insertMachine(db, 'debian-01', 'LINUX');
      const other = await insertMachine(db, 'debian-02', 'LINUX');
      const assessment = async (machineId: string, assessedAt: string, updates: Array<[string, string, string, string | null]>) => {
        const id = randomUUID();
        await db`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
          values (${id}, ${machineId}, 'SCHEDULE', 'apt', ${assessedAt}, ${assessedAt}, ${assessedAt}, false, 0, 0, 0)`;
        for (const [name, version, classification, severity] of updates) {
          await db`insert into pending_updates (assessment_id, machine_id, name, available_version, classification, severity) values (${id}, ${machineId}, ${name}, ${version}, ${classification}::classification, ${severity}::severity)`;
        }
        return id;
      };
      await assessment(machine, '2026-11-01T08:00:00Z', [['openssl', '3.0.14', 'SECURITY', 'IMPORTANT']]);
      const latest = await assessment(machine, '2026-11-05T08:00:00Z', [['openssl', '3.0.15', 'SECURITY', 'IMPORTANT'], ['vim', '9.1', 'OTHER', null]]);
      await db`update machines set latest_assessment_id = ${latest}, last_assessed_at = '2026-11-05T08:00:00Z', security_count = 1, other_count = 1 where id = ${machine}`;
      // Seen earlier by another machine: the fleet-wide first sighting counts.
      await assessment(other, '2026-10-20T08:00:00Z', [['vim', '9.1', 'OTHER', null]]);

      await migrateUpTo(url, '0020');
      const rows = await db`select name, version, classification, severity, first_seen_at from update_first_seen order by name, version`;
      expect(rows.map((r) => [r.name, r.version, r.classification, r.severity, new Date(r.first_seen_at as string).toISOString()])).toEqual([
        ['openssl', '3.0.14', 'SECURITY', 'IMPORTANT', '2026-11-01T08:00:00.000Z'],
        ['openssl', '3.0.15', 'SECURITY', 'IMPORTANT', '2026-11-05T08:00:00.000Z'],
        ['vim', '9.1', 'OTHER', '', '2026-10-20T08:00:00.000Z'],
      ]);
      // No baseline yet: every machine keeps the built-in one, and nothing about its compliance moved.
      const [after] = await db`select baseline_id, non_compliant_from, sla_due_dates, security_count from machines where id = ${machine}`;
      expect(after).toEqual({ baseline_id: null, non_compliant_from: null, sla_due_dates: [], security_count: 1 });
      expect((await db`select use_baseline from deployments`).length).toBe(0);
    });
  });

  it('0021 and 0022 leave the rows already stored without an issue-date clock or a source: their verdicts still count from first seen', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0020');
      const machine = await insertMachine(db, 'rocky-01', 'LINUX');
      const id = randomUUID();
      await db`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
        values (${id}, ${machine}, 'SCHEDULE', 'dnf', '2026-11-20T08:00:00Z', '2026-11-20T08:00:00Z', '2026-11-20T08:00:00Z', false, 0, 1, 0)`;
      // The report carried an issue date (stored since the issue dates were read), first seen 20 Nov.
      await db`insert into pending_updates (assessment_id, machine_id, name, available_version, classification, advisory_issued_at) values (${id}, ${machine}, 'kernel', '5.14', 'SECURITY', '2026-10-01T00:00:00Z')`;
      await db`insert into update_first_seen (name, version, classification, severity, first_seen_at) values ('kernel', '5.14', 'SECURITY', '', '2026-11-20T08:00:00Z')`;
      await db`update machines set latest_assessment_id = ${id}, last_assessed_at = '2026-11-20T08:00:00Z', security_count = 1 where id = ${machine}`;

      await migrateDatabase(url);
      expect(await db`select advisory_issued_at from update_first_seen`).toEqual([{ advisory_issued_at: null }]);
      expect(await db`select source_package from pending_updates`).toEqual([{ source_package: null }]);
      // A baseline saved now counts the update seen before from its first sighting, as before.
      const database = connectTestDatabase(url);
      try {
        const saved = await saveBaseline(database.db, null, { name: 'production', osType: 'LINUX', tags: [], priority: 0, rules: [{ classifications: ['SECURITY'], severities: [], delayDays: 7 }], approvedPatterns: [], rejectedPatterns: [], slaTargets: [], timeZone: 'UTC' });
        expect(saved).toMatchObject({ name: 'production' });
        const [verdict] = await db`select approved_at from baseline_verdicts`;
        expect(new Date(verdict!.approved_at as string).toISOString()).toBe('2026-11-27T00:00:00.000Z');
      } finally {
        await database.close();
      }
    });
  });

  it('0023 fills the maintained missing-update counts from the latest assessments of live machines', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0020');
      const debian = await insertMachine(db, 'debian-01', 'LINUX');
      const other = await insertMachine(db, 'debian-02', 'LINUX');
      const windows = await insertMachine(db, 'win-01', 'WINDOWS');
      const removed = await insertMachine(db, 'gone-01', 'LINUX');
      const assessment = async (machineId: string, updates: Array<[string, string, string, string, string[]]>) => {
        const id = randomUUID();
        await db`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
          values (${id}, ${machineId}, 'SCHEDULE', 'apt', now(), now(), now(), false, 0, 0, 0)`;
        for (const [name, arch, version, classification, cves] of updates) {
          await db`insert into pending_updates (assessment_id, machine_id, name, arch, available_version, classification, cve_ids) values (${id}, ${machineId}, ${name}, ${arch}, ${version}, ${classification}::classification, ${cves})`;
        }
        await db`update machines set latest_assessment_id = ${id} where id = ${machineId}`;
        return id;
      };
      // An older assessment of debian-01 that no longer counts, then its latest (openssl on two architectures: one machine).
      await assessment(debian, [['curl', 'amd64', '8.5', 'SECURITY', []]]);
      await assessment(debian, [['openssl', 'amd64', '3.0.15', 'SECURITY', ['CVE-1']], ['openssl', 'i386', '3.0.15', 'SECURITY', ['CVE-1']], ['vim', 'amd64', '9.1', 'OTHER', []]]);
      await assessment(other, [['openssl', 'amd64', '3.0.14', 'SECURITY', ['CVE-2']]]);
      await assessment(windows, [['KB5031', '', '1', 'UPDATE_ROLLUP', []]]);
      await assessment(removed, [['openssl', 'amd64', '3.0.15', 'SECURITY', []]]);
      await db`update machines set removed_at = now() where id = ${removed}`;

      await migrateUpTo(url, '0023');
      const counts = await db`select os_type, name, classification, machines from missing_update_counts order by os_type, name`;
      expect(counts.map((r) => [r.os_type, r.name, r.classification, r.machines])).toEqual([
        ['LINUX', 'openssl', 'SECURITY', 2],
        ['LINUX', 'vim', 'OTHER', 1],
        ['WINDOWS', 'KB5031', 'UPDATE_ROLLUP', 1],
      ]);
      // What the API reads equals a full recompute over the same rows.
      const database = connectDatabase(url, { max: 2 });
      try {
        const sorted = (groups: MissingUpdateGroup[]) => [...groups].sort((a, b) => `${a.osType} ${a.name}`.localeCompare(`${b.osType} ${b.name}`));
        const maintained = sorted(await maintainedMissingUpdateGroups(database.db));
        expect(maintained).toEqual(sorted(await missingUpdateGroups(database.db)));
        expect(maintained.find((g) => g.name === 'openssl')).toMatchObject({ machineCount: 2, availableVersions: ['3.0.14', '3.0.15'], cveIds: ['CVE-1', 'CVE-2'] });
      } finally {
        await database.close();
      }
    });
  });

  it('0029 rebuilds the missing-update details under a key that keeps apart lists the old key merged', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0022');
      // Two machines listing one update with lists the old key (ids joined with chr(2)) could not tell apart.
      const lists: Array<[string[], string[]]> = [[['a\u0002b'], ['']], [['a', 'b'], []]];
      for (const [i, [advisories, cves]] of lists.entries()) {
        const machineId = await insertMachine(db, `split-${i}`, 'LINUX');
        const id = randomUUID();
        await db`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
          values (${id}, ${machineId}, 'SCHEDULE', 'apt', now(), now(), now(), false, 0, 1, 0)`;
        await db`insert into pending_updates (assessment_id, machine_id, name, arch, available_version, classification, advisory_ids, cve_ids)
          values (${id}, ${machineId}, 'split-ids', 'amd64', '2.0', 'SECURITY'::classification, ${advisories}, ${cves})`;
        await db`update machines set latest_assessment_id = ${id} where id = ${machineId}`;
      }
      await migrateUpTo(url, '0028');
      // Under the old key the two lists shared one row.
      expect((await db`select rows from missing_update_details where name = 'split-ids'`).map((r) => r.rows)).toEqual([2]);

      await migrateUpTo(url, '0029');
      const details = await db`select advisory_ids, cve_ids, rows from missing_update_details where name = 'split-ids' order by advisory_ids`;
      expect(details.map((r) => [r.advisory_ids, r.cve_ids, r.rows])).toEqual([
        [['a', 'b'], [], 1],
        [['a\u0002b'], [''], 1],
      ]);
      const database = connectDatabase(url, { max: 2 });
      try {
        expect(await maintainedMissingUpdateGroups(database.db)).toEqual(await missingUpdateGroups(database.db));
      } finally {
        await database.close();
      }
    });
  });

  it('0027 fills the maintained compliance summary from the machines already stored, as a full recompute counts them', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0026');
      const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
      const set = async (id: string, columns: Record<string, unknown>) => {
        await db`update machines set ${db(columns)} where id = ${id}`;
      };
      // Linux NON_COMPLIANT and READY; Linux assessed 4 h ago (NOT_ASSESSED) and silent 10 min (DISCONNECTED);
      // Windows COMPLIANT with Windows classes, management off; never seen nor assessed; under a baseline
      // with an approval passed and one due date passed; removed (not counted).
      const linux = await insertMachine(db, 'linux-01', 'LINUX');
      await set(linux, { last_seen_at: minutesAgo(1), last_assessed_at: minutesAgo(30), critical_count: 1, security_count: 2, other_count: 4 });
      const stale = await insertMachine(db, 'linux-02', 'LINUX');
      await set(stale, { last_seen_at: minutesAgo(10), last_assessed_at: minutesAgo(240), other_count: 1 });
      const windows = await insertMachine(db, 'win-01', 'WINDOWS');
      await set(windows, { last_seen_at: minutesAgo(1), last_assessed_at: minutesAgo(60), management_enabled: false, other_count: 3, update_rollup_count: 1, definition_count: 2 });
      await insertMachine(db, 'new-01', 'LINUX');
      const [baseline] = await db`insert into baselines (name, os_type, rules, sla_targets) values ('prod', 'LINUX', '[]'::jsonb, '[]'::jsonb) returning id`;
      const governed = await insertMachine(db, 'linux-03', 'LINUX');
      await set(governed, { last_seen_at: minutesAgo(1), last_assessed_at: minutesAgo(5), baseline_id: baseline!.id, security_count: 1, non_compliant_from: minutesAgo(60) });
      await db`update machines set sla_due_dates = ${`{${minutesAgo(30)},${new Date(Date.now() + 86_400_000).toISOString()}}`}::timestamptz[] where id = ${governed}`;
      const removed = await insertMachine(db, 'gone-01', 'LINUX');
      await set(removed, { last_seen_at: minutesAgo(1), last_assessed_at: minutesAgo(5), critical_count: 9, removed_at: minutesAgo(1) });

      await migrateUpTo(url, '0027');
      expect(await db`select count(*)::int as n from fleet_summary_deltas`).toEqual([{ n: 0 }]);
      // The reader of today needs the migrations after it (0046's OS type keys).
      await migrateDatabase(url);
      const database = connectDatabase(url, { max: 2 });
      try {
        const now = new Date();
        const maintained = await maintainedComplianceSummary(database.db, now, DEFAULT_THRESHOLDS);
        const sorted = <T extends { groups: Array<{ compliance: string; readiness: string }> }>(s: T) => ({ ...s, groups: [...s.groups].sort((a, b) => `${a.compliance}${a.readiness}`.localeCompare(`${b.compliance}${b.readiness}`)) });
        expect(sorted(maintained)).toEqual(sorted(await complianceSummary(database.db, now, DEFAULT_THRESHOLDS)));
        // The figures themselves, so that the backfill and the recompute cannot be wrong together unseen.
        expect(maintained).toMatchObject({
          total: 5,
          byCompliance: { COMPLIANT: 1, NON_COMPLIANT: 2, NOT_ASSESSED: 2 },
          byReadiness: { READY: 2, DISCONNECTED: 1, NOT_CONFIGURED: 2 },
          overdueMachines: 1,
          overdueUpdates: 1,
        });
        expect(maintained.pendingByClassification).toEqual([
          { classification: 'CRITICAL', updateCount: 1, machineCount: 1 },
          { classification: 'SECURITY', updateCount: 3, machineCount: 2 },
          { classification: 'OTHER', updateCount: 5, machineCount: 2 },
          { classification: 'UPDATE_ROLLUP', updateCount: 1, machineCount: 1 },
          { classification: 'DEFINITION', updateCount: 2, machineCount: 1 },
        ]);
      } finally {
        await database.close();
      }
    });
  });

  it('0032 counts the agents per version of the machines already stored, as a count over the fleet does, and keeps counting after', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0031');
      const old = await insertMachine(db, 'old-01', 'LINUX');
      const upgraded = await insertMachine(db, 'new-01', 'LINUX');
      await insertMachine(db, 'never-01', 'LINUX');
      const gone = await insertMachine(db, 'gone-01', 'LINUX');
      await db`update machines set agent_version = '0.9.0' where id in (${old}, ${gone})`;
      await db`update machines set agent_version = '1.0.0' where id = ${upgraded}`;
      await db`update machines set removed_at = now() where id = ${gone}`;

      await migrateUpTo(url, '0032');
      const database = connectDatabase(url, { max: 2 });
      try {
        const byVersion = async () => Object.fromEntries((await agentVersionRows(database.db)).map((r) => [r.version ?? 'unknown', r.machines]));
        expect(await byVersion()).toEqual({ '0.9.0': 1, '1.0.0': 1, unknown: 1 });
        // After the fill the triggers count: an upgrade, a removal.
        await db`update machines set agent_version = '1.0.0' where id = ${old}`;
        await db`delete from machines where id = ${upgraded}`;
        expect(await byVersion()).toEqual({ '1.0.0': 1, unknown: 1 });
      } finally {
        await database.close();
      }
    });
  });

  it('0033 lists the machines missing an update, and those of an OS type, from rows stored before it as a pass over the fleet did', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0020');
      const stored = async (machineId: string, at: string, updates: Array<[string, string]>) => {
        const id = randomUUID();
        await db`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
          values (${id}, ${machineId}, 'SCHEDULE', 'apt', ${at}, ${at}, ${at}, false, 0, 0, 0)`;
        for (const [name, classification] of updates) {
          await db`insert into pending_updates (assessment_id, machine_id, name, available_version, classification) values (${id}, ${machineId}, ${name}, '2', ${classification}::classification)`;
        }
        return id;
      };
      const linux = await insertMachine(db, 'b-linux', 'LINUX');
      const windows = await insertMachine(db, 'a-windows', 'WINDOWS');
      const gone = await insertMachine(db, 'c-gone', 'LINUX');
      // b-linux listed rare-tool once and no longer does; a-windows and c-gone (removed) still do.
      const older = await stored(linux, '2026-11-01T00:00:00Z', [['rare-tool', 'OTHER']]);
      const latest = await stored(linux, '2026-11-02T00:00:00Z', [['kernel', 'SECURITY']]);
      const win = await stored(windows, '2026-11-02T00:00:00Z', [['rare-tool', 'OTHER'], ['kernel', 'SECURITY']]);
      const removed = await stored(gone, '2026-11-02T00:00:00Z', [['rare-tool', 'OTHER']]);
      expect(older).not.toBe(latest);
      await db`update machines set latest_assessment_id = ${latest}, tags = '{rare}' where id = ${linux}`;
      await db`update machines set latest_assessment_id = ${win} where id = ${windows}`;
      await db`update machines set latest_assessment_id = ${removed}, tags = '{rare}', removed_at = now() where id = ${gone}`;

      // It and the ones after it: today's code reads today's schema.
      await migrateDatabase(url);
      const database = connectDatabase(url, { max: 2 });
      try {
        const names = (rows: Array<{ name: string }>) => rows.map((r) => r.name);
        const missing = await machinesMissing(database.db, { name: 'rare-tool', classification: 'OTHER' }, 0, 50);
        expect({ names: names(missing.rows), total: missing.totalCount }).toEqual({ names: ['a-windows'], total: 1 });
        expect(names((await machinesMissing(database.db, { name: 'kernel', classification: 'SECURITY' }, 0, 50)).rows)).toEqual(['a-windows', 'b-linux']);
        const page = (filter: MachineFilter) =>
          listMachines(database.db, { filter, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 50, now: new Date(), thresholds: DEFAULT_THRESHOLDS }).then((p) => ({ names: names(p.rows), total: p.totalCount }));
        // (A tag's page reads machine_tags since 0041: its migration test holds it to the tags stored before.)
        expect(await page({ osType: 'WINDOWS' })).toEqual({ names: ['a-windows'], total: 1 });
      } finally {
        await database.close();
      }
    });
  });

  it('0034 counts the live machines per OS type already stored, as a count over the fleet does, and keeps counting after', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0033');
      const moved = await insertMachine(db, 'l-01', 'LINUX');
      await insertMachine(db, 'l-02', 'LINUX');
      await insertMachine(db, 'w-01', 'WINDOWS');
      const gone = await insertMachine(db, 'w-02', 'WINDOWS');
      await db`update machines set removed_at = now() where id = ${gone}`;

      await migrateUpTo(url, '0034');
      const database = connectDatabase(url, { max: 2 });
      try {
        // 0034's keys, as its reader summed them (0046 replaced them).
        const ofType = async (os: string) =>
          Number((await db<Array<{ n: number }>>`select coalesce(sum(n), 0)::int as n from (select n from fleet_summary_counts where key = ${`os_type:${os}`} union all select n from fleet_summary_deltas where key = ${`os_type:${os}`}) t`)[0]!.n);
        const byType = async () => ({ LINUX: await ofType('LINUX'), WINDOWS: await ofType('WINDOWS') });
        expect(await byType()).toEqual({ LINUX: 2, WINDOWS: 1 });
        // After the fill the triggers count: an OS type change, an enrollment, a removal.
        await db`update machines set os_type = 'WINDOWS' where id = ${moved}`;
        await insertMachine(db, 'w-03', 'WINDOWS');
        await db`update machines set removed_at = now() where name = 'l-02'`;
        expect(await byType()).toEqual({ LINUX: 0, WINDOWS: 3 });
      } finally {
        await database.close();
      }
    });
  });

  it('0038 counts the live machines per tag already stored, as a count over the fleet does, and keeps counting after', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0037');
      const web = await insertMachine(db, 'web-01', 'LINUX');
      const twice = await insertMachine(db, 'web-02', 'LINUX');
      await insertMachine(db, 'db-01', 'WINDOWS');
      const gone = await insertMachine(db, 'web-03', 'LINUX');
      await db`update machines set tags = '{web,prod}' where name like 'web-%'`;
      // A tag listed twice is one machine carrying it; a removed machine is not counted.
      await db`update machines set tags = '{web,web}' where id = ${twice}`;
      await db`update machines set removed_at = now() where id = ${gone}`;

      await migrateUpTo(url, '0038');
      const database = connectDatabase(url, { max: 2 });
      try {
        // The tag's count as every reader sums it (over its states since 0047).
        const ofTag = async (tag: string) =>
          Number((await db<Array<{ n: number }>>`select coalesce(sum(n), 0)::int as n from (select n from machine_tag_counts where tag = ${tag} union all select n from machine_tag_deltas where tag = ${tag}) t`)[0]!.n);
        const byTag = async () => ({ web: await ofTag('web'), prod: await ofTag('prod'), db: await ofTag('db') });
        const counted = async () =>
          (await db<Array<{ web: number; prod: number; db: number }>>`select count(*) filter (where tags @> '{web}')::int as web, count(*) filter (where tags @> '{prod}')::int as prod,
            count(*) filter (where tags @> '{db}')::int as db from machines where removed_at is null`)[0];
        expect(await byTag()).toEqual({ web: 2, prod: 1, db: 0 });
        // After the fill the triggers count: tags replaced, an enrollment with tags, a removal, a deletion.
        await db`update machines set tags = '{db}' where name = 'db-01'`;
        await db`update machines set tags = '{prod}' where id = ${web}`;
        await db`insert into machines (name, os_type, os_name, os_version, environment, tags) values ('db-02', 'LINUX', 'os', '1', 'ON_PREMISES', '{db,prod}')`;
        await db`update machines set removed_at = now() where id = ${twice}`;
        await db`delete from machines where name = 'db-01'`;
        expect(await byTag()).toEqual({ web: 0, prod: 2, db: 1 });
        expect(await byTag()).toEqual({ ...(await counted()) });
        // Today's fold keys the counts by tag, OS type and state (0047, 0052).
        await migrateDatabase(url);
        await db`update machines set tags = tags || '{web}' where name = 'db-02'`;
        expect(await foldMachineTagDeltas(database.db)).toBeGreaterThan(0);
        expect(await byTag()).toEqual({ web: 1, prod: 2, db: 1 });
      } finally {
        await database.close();
      }
    });
  });

  it('0043 counts the live machines per advisory CVE already stored, as the CVE list recomputed over the fleet does, and keeps counting after', async () => {
    await withDatabase(async (db, url) => {
      // Stored before 0023, which fills the missing-update details the CVE list takes its severities from.
      await migrateUpTo(url, '0022');
      const [rocky, suse, win, gone] = [await insertMachine(db, 'rocky-01', 'LINUX'), await insertMachine(db, 'suse-01', 'LINUX'), await insertMachine(db, 'win-01', 'WINDOWS'), await insertMachine(db, 'gone-01', 'LINUX')];
      const assessment = async (machineId: string, updates: Array<[string, string, string | null, string[]]>) => {
        const id = randomUUID();
        await db`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
          values (${id}, ${machineId}, 'SCHEDULE', 'dnf', now(), now(), now(), false, 0, 0, 0)`;
        for (const [name, classification, severity, cves] of updates) {
          await db`insert into pending_updates (assessment_id, machine_id, name, arch, available_version, classification, severity, cve_ids)
            values (${id}, ${machineId}, ${name}, 'x86_64', '2', ${classification}::classification, ${severity}::severity, ${cves})`;
        }
        await db`update machines set latest_assessment_id = ${id} where id = ${machineId}`;
      };
      // rocky-01: an older assessment that no longer counts, then two updates naming CVE-1 (one machine) and one naming CVE-1 and CVE-2.
      await assessment(rocky, [['curl', 'SECURITY', 'LOW', ['CVE-OLD']]]);
      await assessment(rocky, [['openssl', 'SECURITY', 'MODERATE', ['CVE-1']], ['openssl-libs', 'CRITICAL', 'CRITICAL', ['CVE-1', 'CVE-2']], ['vim', 'OTHER', null, []]]);
      await assessment(suse, [['libxml2', 'SECURITY', 'IMPORTANT', ['CVE-2']]]);
      await assessment(win, [['KB5031', 'SECURITY', null, ['CVE-3']]]);
      await assessment(gone, [['openssl', 'SECURITY', 'LOW', ['CVE-1', 'CVE-GONE']]]);
      await db`update machines set removed_at = now() where id = ${gone}`;
      const database = connectDatabase(url, { max: 2 });
      try {
        await migrateUpTo(url, '0043');
        const counts = await db`select cve_id, machines from cve_exposure_counts order by cve_id`;
        expect(counts.map((r) => [r.cve_id, r.machines])).toEqual([
          ['CVE-1', 1],
          ['CVE-2', 2],
          ['CVE-3', 1],
        ]);
        // The code below is today's: it needs the schema of today (0048's imported-fix counts, 0051's refresh).
        await migrateDatabase(url);
        const listed = async () => {
          const { advisory, imported } = await cveListFigures(database.db);
          return countedCveSummaries(advisory, imported);
        };
        const recomputed = async () => cveSummaries(await advisoryCves(database.db), await trackerCandidates(database.db));
        expect(await listed()).toEqual(await recomputed());
        expect(await listed()).toEqual([
          { id: 'CVE-2', severity: 'CRITICAL', machineCount: 2, sources: ['ADVISORY'] },
          { id: 'CVE-1', severity: 'CRITICAL', machineCount: 1, sources: ['ADVISORY'] },
          { id: 'CVE-3', severity: null, machineCount: 1, sources: ['ADVISORY'] },
        ]);
        // After the fill the maintained statement counts: rocky-01 removed, suse-01's next report.
        await removeMachine(database.db, rocky);
        await storeReportGroup(database.sql, [prepareReport(suse, assessmentReport([pendingUpdate({ name: 'libxml2', classification: 'SECURITY', severity: 'IMPORTANT', cveIds: ['CVE-2', 'CVE-4'] })]))]);
        expect(await listed()).toEqual(await recomputed());
        expect((await listed()).map((c) => [c.id, c.machineCount])).toEqual([
          ['CVE-2', 1],
          ['CVE-4', 1],
          ['CVE-3', 1],
        ]);
      } finally {
        await database.close();
      }
    });
  });

  it('0048 fills the imported fixes\' exposures of the machines already stored, as the recompute over the fixed packages counts them, and keeps them after', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0047');
      const debian = async (name: string, version: string) =>
        (await db`insert into machines (name, os_type, os_name, os_version, environment, package_manager) values (${name}, 'LINUX', 'Debian GNU/Linux', ${version}, 'ON_PREMISES', 'apt') returning id`)[0]!.id as string;
      const [a, b, c, old, gone] = [await debian('deb-a', '12'), await debian('deb-b', '12'), await debian('deb-c', '11'), await debian('deb-old', '12'), await debian('deb-gone', '12')];
      const rocky = await insertMachine(db, 'rocky-01', 'LINUX');
      const assessment = async (machineId: string, updates: Array<[name: string, source: string | null, installed: string | null, available: string, severity: string | null, cves: string[]]>) => {
        const id = randomUUID();
        await db`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
          values (${id}, ${machineId}, 'SCHEDULE', 'apt', now(), now(), now(), false, 0, 0, 0)`;
        for (const [name, source, installed, available, severity, cves] of updates) {
          await db`insert into pending_updates (assessment_id, machine_id, name, arch, installed_version, available_version, classification, severity, cve_ids, source_package)
            values (${id}, ${machineId}, ${name}, 'amd64', ${installed}, ${available}, 'SECURITY', ${severity}::severity, ${cves}, ${source})`;
        }
        await db`update machines set latest_assessment_id = ${id} where id = ${machineId}`;
      };
      // deb-a: libssl3 from openssl reaches both fixes (DEBIAN's and OSV's) of CVE-1; deb-b: below the fix, and an advisory naming CVE-1;
      // deb-c: bullseye (no fix for it); deb-old: reached only by an older assessment; deb-gone: removed; rocky-01: not apt.
      await assessment(a, [['libssl3', 'openssl', '3.0.1-1', '3.0.9-1', null, []], ['curl', null, '7.0-1', '7.1-1', null, []]]);
      await assessment(b, [['openssl', null, '3.0.1-1', '3.0.2-1', null, []], ['libssl3', 'openssl', '3.0.1-1', '3.0.9-1', 'LOW', ['CVE-1']]]);
      await assessment(c, [['openssl', null, '3.0.1-1', '3.0.9-1', null, []]]);
      await assessment(old, [['openssl', null, '3.0.1-1', '3.0.9-1', null, []]]);
      await assessment(old, [['curl', null, '7.0-1', '7.0-2', null, []]]);
      await assessment(gone, [['openssl', null, '3.0.1-1', '3.0.9-1', null, []]]);
      await db`update machines set removed_at = now() where id = ${gone}`;
      await assessment(rocky, [['openssl', null, '3.0.1-1', '3.0.9-1', null, ['CVE-1']]]);
      await db`insert into cve_tracker_fixes (source, cve_id, package, release, fixed_version, severity) values
        ('DEBIAN', 'CVE-1', 'openssl', 'bookworm', '3.0.5-1', 'MODERATE'), ('OSV:DEBIAN', 'CVE-1', 'openssl', 'bookworm', '3.0.4-1', 'CRITICAL'),
        ('DEBIAN', 'CVE-2', 'curl', 'bookworm', '7.1-1', null)`;
      await migrateUpTo(url, '0048');
      const rows = await db`select m.name, e.cve_id, e.rank, e.origin, e.advisory_rank, e.reach from cve_fix_exposures e join machines m on m.id = e.machine_id order by 1, 2`;
      expect(rows.map((r) => [r.name, r.cve_id, r.rank, r.origin, r.advisory_rank, r.reach])).toEqual([
        // DEBIAN's fix is the first by source (MODERATE, rank 2); both fixes reached: bits 2×2 (DEBIAN_TRACKER) and 4×2+1 (OSV).
        ['deb-a', 'CVE-1', 2, 'DEBIAN_TRACKER', null, (1 << 4) | (1 << 9)],
        ['deb-a', 'CVE-2', 0, 'DEBIAN_TRACKER', null, 1 << 0],
        // Reached only through the update whose advisories name CVE-1 (LOW: rank 1).
        ['deb-b', 'CVE-1', null, null, 1, (1 << 4) | (1 << 9)],
      ]);
      // The code below is today's: it needs the schema of today (0051's refresh).
      await migrateDatabase(url);
      const database = connectDatabase(url, { max: 2 });
      try {
        const expectAsRecomputed = async () => {
          for (const cveId of ['CVE-1', 'CVE-2']) {
            const key = (g: ImportedExposureGroup) => `${g.rank} ${g.origin} ${g.advisoryRank} ${g.machines}`;
            expect((await maintainedImportedGroups(database.db, cveId)).map(key).sort()).toEqual((await importedExposureGroups(database.db, cveId, true)).map(key).sort());
          }
          // The list's imported part (the advisories' counts were not filled for rows stored after 0043 by hand).
          const tracker = await trackerCandidates(database.db);
          const counted = await advisoryExposedPairs(database.db, tracker);
          const byId = (x: { cveId: string }, y: { cveId: string }) => x.cveId.localeCompare(y.cveId);
          expect((await cveListFigures(database.db)).imported.sort(byId)).toEqual(
            importedCveList(tracker.map((t) => ({ ...t, advisoryCounted: counted.has(`${t.machineId} ${t.cveId}`) }))).sort(byId),
          );
        };
        await expectAsRecomputed();
        expect((await cveListFigures(database.db)).imported.sort((x, y) => x.cveId.localeCompare(y.cveId))).toEqual([
          { cveId: 'CVE-1', importedOnly: 1, severity: 'CRITICAL', sources: ['DEBIAN_TRACKER', 'OSV'] },
          { cveId: 'CVE-2', importedOnly: 1, severity: null, sources: ['DEBIAN_TRACKER'] },
        ]);
        // Kept after the fill: deb-c moves to bookworm (a check-in), deb-a is removed, deb-old reports openssl again.
        await recordCheckIn(database.db, c, machineFacts({ hostname: 'deb-c', osType: 'LINUX', osName: 'Debian GNU/Linux', osVersion: '12', bootId: null }), new Date());
        await removeMachine(database.db, a);
        await storeReportGroup(database.sql, [prepareReport(old, assessmentReport([pendingUpdate({ name: 'openssl', installedVersion: '3.0.1-1', availableVersion: '3.0.5-1', classification: 'SECURITY' })]))]);
        await expectAsRecomputed();
        expect((await db`select m.name from cve_fix_exposures e join machines m on m.id = e.machine_id where e.cve_id = 'CVE-1' order by 1`).map((r) => r.name)).toEqual(['deb-b', 'deb-c', 'deb-old']);
      } finally {
        await database.close();
      }
    });
  });

  it("0050 and 0051 answer what 0048's exposures function answered, on random machines, fixes and advisories: the stored exposures unchanged", async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0047');
      const { int, pick, next } = random(50);
      const cves = ['CVE-1', 'CVE-2', 'CVE-3', 'CVE-4', 'CVE-5', 'CVE-6'];
      const packages = ['openssl', 'curl', 'zlib', 'bash', 'glibc'];
      const severities = [null, 'LOW', 'MODERATE', 'IMPORTANT', 'CRITICAL'];
      const version = (n: number) => `1.${n}-1`;
      const fixes = [];
      for (const pkg of packages) {
        for (const cve of cves) {
          for (const source of ['DEBIAN', 'OSV:DEBIAN']) if (next() < 0.3) fixes.push({ source, cve_id: cve, package: pkg, release: 'bookworm', fixed_version: version(1 + int(6)), severity: pick(severities) });
        }
      }
      for (const f of fixes) await db`insert into cve_tracker_fixes (source, cve_id, package, release, fixed_version, severity) values (${f.source}, ${f.cve_id}, ${f.package}, ${f.release}, ${f.fixed_version}, ${f.severity}) on conflict do nothing`;
      for (let i = 0; i < 40; i++) {
        const machineId = (await db`insert into machines (name, os_type, os_name, os_version, environment, package_manager) values (${`deb-${i}`}, 'LINUX', 'Debian GNU/Linux', '12', 'ON_PREMISES', 'apt') returning id`)[0]!.id as string;
        const assessmentId = randomUUID();
        await db`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
          values (${assessmentId}, ${machineId}, 'SCHEDULE', 'apt', now(), now(), now(), false, 0, 0, 0)`;
        for (let r = 0; r < 8; r++) {
          const installed = int(5);
          const named = cves.filter(() => next() < 0.25);
          await db`insert into pending_updates (assessment_id, machine_id, name, arch, installed_version, available_version, classification, severity, cve_ids, source_package)
            values (${assessmentId}, ${machineId}, ${`pkg-${r}`}, 'amd64', ${next() < 0.1 ? null : version(installed)}, ${version(installed + 1 + int(3))}, 'SECURITY', ${pick(severities)}::severity, ${named}, ${pick(packages)})`;
        }
        await db`update machines set latest_assessment_id = ${assessmentId} where id = ${machineId}`;
      }
      const exposures = () => db`select cve_id, machine_id, rank, origin, advisory_rank, reach from cve_fix_exposures_of(array(select id from machines)) order by 1, 2`;
      const stored = () => db`select cve_id, machine_id, rank, origin, advisory_rank, reach from cve_fix_exposures order by 1, 2`;
      // 0048 fills the stored exposures of the machines stored; 0050 replaces its function.
      await migrateUpTo(url, '0049');
      const before = await exposures();
      expect(await stored()).toEqual(before);
      // Not a trivial set: exposures with and without an advisory naming their CVE, and several ranks.
      expect(before.some((e) => e.advisory_rank !== null) && before.some((e) => e.advisory_rank === null)).toBe(true);
      expect(new Set(before.map((e) => e.advisory_rank)).size).toBeGreaterThanOrEqual(3);
      await migrateUpTo(url, '0050');
      expect(await exposures()).toEqual(before);
      expect(await stored()).toEqual(before);
      // 0051 keeps the versions' keys: none kept yet (computed on the spot), then those of every row, given to a refresh of every machine.
      await migrateUpTo(url, '0051');
      expect(await exposures()).toEqual(before);
      const versions = (await db`select distinct v from pending_updates, unnest(array[installed_version, available_version]) v where installed_version is not null order by 1`).map((r) => r.v as string);
      await db`select cve_fix_refresh(array(select id from machines order by id), ${versions}::text[])`;
      expect(await stored()).toEqual(before);
      expect(await exposures()).toEqual(before);
      const kept = await db`select version, key = dpkg_version_key(version) as same from dpkg_version_keys order by version`;
      expect(kept.map((k) => k.version)).toEqual(versions);
      expect(kept.every((k) => k.same)).toBe(true);
    });
  });

  it('0041 lists the live machines already stored by tag and name, and keeps them listed through tag, name and removal changes', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0040');
      const web = await insertMachine(db, 'web-01', 'LINUX');
      await insertMachine(db, 'web-02', 'LINUX');
      const gone = await insertMachine(db, 'web-03', 'LINUX');
      await insertMachine(db, 'db-01', 'LINUX');
      await db`update machines set tags = '{web,prod,web}' where name like 'web-%'`;
      await db`update machines set removed_at = now() where id = ${gone}`;

      // It and the ones after it: today's code reads today's schema.
      await migrateDatabase(url);
      const listed = async () => (await db<Array<{ row: string }>>`select tag || ' ' || name as row from machine_tags order by tag, name`).map((r) => r.row);
      expect(await listed()).toEqual(['prod web-01', 'prod web-02', 'web web-01', 'web web-02']);
      const database = connectDatabase(url, { max: 2 });
      try {
        const page = async (tags: string[]) =>
          (await listMachines(database.db, { filter: { tags }, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 10, now: new Date(), thresholds: DEFAULT_THRESHOLDS, count: false })).rows.map((m) => m.name);
        expect(await page(['web'])).toEqual(['web-01', 'web-02']);
        // Renamed, tags replaced, removed, enrolled with tags, deleted: the page follows.
        await db`update machines set name = 'app-01' where id = ${web}`;
        await db`update machines set tags = '{db}' where name = 'db-01'`;
        await db`update machines set removed_at = now() where name = 'web-02'`;
        await db`insert into machines (name, os_type, os_name, os_version, environment, tags) values ('db-02', 'LINUX', 'os', '1', 'ON_PREMISES', '{db,prod}')`;
        expect(await page(['prod'])).toEqual(['app-01', 'db-02']);
        expect(await page(['db', 'prod'])).toEqual(['db-02']);
        await db`delete from machines where name = 'db-01'`;
        expect(await page(['db'])).toEqual(['db-02']);
        expect(await listed()).toEqual(['db db-02', 'prod app-01', 'prod db-02', 'web app-01']);
      } finally {
        await database.close();
      }
    });
  });

  it('0035 keeps the compliance summary of the machines already stored counting, by statement, as a full recompute counts it', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0034');
      const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) ids.push(await insertMachine(db, `m-${i}`, i % 3 === 0 ? 'WINDOWS' : 'LINUX'));
      // Stored under 0034's row trigger: some assessed and seen, one with Windows classes, one removed.
      await db`update machines set last_seen_at = ${minutesAgo(1)}, last_assessed_at = ${minutesAgo(20)}, security_count = 2, other_count = 3 where id = any(${ids.slice(0, 5)}::uuid[])`;
      await db`update machines set update_rollup_count = 1, other_count = 4 where id = ${ids[0]!}`;
      await db`update machines set removed_at = now() where id = ${ids[7]!}`;

      await migrateUpTo(url, '0035');
      // The reader of today needs the migrations after it (0046's OS type keys, which re-define 0035's function).
      await migrateDatabase(url);
      const database = connectDatabase(url, { max: 2 });
      try {
        const same = async () => {
          const now = new Date();
          const sorted = <T extends { groups: Array<{ compliance: string; readiness: string }> }>(s: T) => ({ ...s, groups: [...s.groups].sort((a, b) => `${a.compliance}${a.readiness}`.localeCompare(`${b.compliance}${b.readiness}`)) });
          const maintained = await maintainedComplianceSummary(database.db, now, DEFAULT_THRESHOLDS);
          expect(sorted(maintained)).toEqual(sorted(await complianceSummary(database.db, now, DEFAULT_THRESHOLDS)));
          return maintained;
        };
        expect(await same()).toMatchObject({ total: 7, byCompliance: { NON_COMPLIANT: 5, NOT_ASSESSED: 2 } });
        // One statement changing many machines, some of them in nothing the summary counts; one changing one; one changing none.
        await db`update machines set security_count = case when name in ('m-0', 'm-1') then 0 else security_count end, critical_count = 1, name = name || '-x' where id = any(${ids.slice(0, 6)}::uuid[])`;
        await db`update machines set management_enabled = false, last_assessed_at = ${minutesAgo(300)} where id = ${ids[2]!}`;
        await db`update machines set name = name where false`;
        // A removal and a machine brought back.
        await db`update machines set removed_at = now() where id = ${ids[3]!}`;
        await db`update machines set removed_at = null where id = ${ids[7]!}`;
        expect(await same()).toMatchObject({ total: 7 });
        expect((await same()).pendingByClassification).toEqual(
          expect.arrayContaining([{ classification: 'CRITICAL', updateCount: 5, machineCount: 5 }, { classification: 'UPDATE_ROLLUP', updateCount: 1, machineCount: 1 }]),
        );
      } finally {
        await database.close();
      }
    });
  });

  it('0046 counts the live machines already stored per OS type and summary state, as a recompute of each OS type does, replaces the per-type keys of 0034, and keeps counting after', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0045');
      const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
      const ids: string[] = [];
      for (let i = 0; i < 9; i++) ids.push(await insertMachine(db, `m-${i}`, i % 3 === 0 ? 'WINDOWS' : 'LINUX'));
      // Stored before it, in several states: assessed and seen (some non-compliant), never assessed, not managed, removed.
      await db`update machines set last_seen_at = ${minutesAgo(1)}, last_assessed_at = ${minutesAgo(20)} where id = any(${ids.slice(0, 6)}::uuid[])`;
      await db`update machines set security_count = 2 where id = any(${[ids[0]!, ids[1]!, ids[4]!]}::uuid[])`;
      await db`update machines set management_enabled = false where id = ${ids[6]!}`;
      await db`update machines set removed_at = now() where id = ${ids[8]!}`;

      // It and the ones after it: today's code reads today's schema.
      await migrateDatabase(url);
      const database = connectDatabase(url, { max: 2 });
      try {
        const same = async () => {
          const now = new Date();
          const counts = await maintainedSummaryCounts(database.db, now, DEFAULT_THRESHOLDS);
          const byOs = { LINUX: sortedGroups(groupsFromCounts(counts, { osType: 'LINUX' })), WINDOWS: sortedGroups(groupsFromCounts(counts, { osType: 'WINDOWS' })) };
          expect(byOs).toEqual({
            LINUX: sortedGroups((await complianceSummary(database.db, now, DEFAULT_THRESHOLDS, { osType: 'LINUX' })).groups),
            WINDOWS: sortedGroups((await complianceSummary(database.db, now, DEFAULT_THRESHOLDS, { osType: 'WINDOWS' })).groups),
          });
          return byOs;
        };
        const before = await same();
        expect(before.LINUX).toEqual(expect.arrayContaining([expect.objectContaining({ compliance: 'NON_COMPLIANT', readiness: 'READY', n: 2 })]));
        expect(before.WINDOWS.reduce((n, g) => n + g.n, 0)).toBe(3);
        expect(await db`select key from fleet_summary_counts where key like 'os\_type:%' union all select key from fleet_summary_deltas where key like 'os\_type:%'`).toEqual([]);
        // After the fill the triggers count: an OS type change alone, one statement changing several
        // machines' states, an enrollment, a removal.
        await db`update machines set os_type = 'WINDOWS' where id = ${ids[1]!}`;
        await db`update machines set security_count = case when name = 'm-0' then 0 else 3 end where id = any(${ids.slice(0, 6)}::uuid[])`;
        await insertMachine(db, 'w-new', 'WINDOWS');
        await db`update machines set removed_at = now() where id = ${ids[2]!}`;
        const after = await same();
        expect(after.WINDOWS.reduce((n, g) => n + g.n, 0)).toBe(5);
        expect(after.LINUX.reduce((n, g) => n + g.n, 0)).toBe(3);
      } finally {
        await database.close();
      }
    });
  });

  it('0053 counts the overdue live machines already stored per summary state, as a recompute of the overdue ones and the others does, and keeps counting after', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0052');
      const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) ids.push(await insertMachine(db, `m-${i}`, 'LINUX'));
      // Stored before it: overdue in several states (assessed and seen, never assessed, not managed), not overdue yet, removed.
      await db`update machines set last_seen_at = ${minutesAgo(1)}, last_assessed_at = ${minutesAgo(20)} where id = any(${ids.slice(0, 4)}::uuid[])`;
      await db`update machines set security_count = 2 where id = any(${ids.slice(0, 2)}::uuid[])`;
      await db`update machines set management_enabled = false where id = ${ids[5]!}`;
      await db`update machines set sla_due_dates = array[${minutesAgo(60)}::timestamptz] where id = any(${[ids[0]!, ids[2]!, ids[4]!, ids[5]!, ids[7]!]}::uuid[])`;
      await db`update machines set sla_due_dates = array[${minutesAgo(-600)}::timestamptz] where id = ${ids[1]!}`;
      await db`update machines set removed_at = now() where id = ${ids[7]!}`;

      // It and the ones after it: today's code reads today's schema.
      await migrateDatabase(url);
      const database = connectDatabase(url, { max: 2 });
      try {
        const same = async () => {
          const now = new Date();
          const counts = await maintainedSummaryCounts(database.db, now, DEFAULT_THRESHOLDS);
          const groups = { overdue: sortedGroups(groupsFromCounts(counts, { overdue: true })), others: sortedGroups(groupsFromCounts(counts, { overdue: false })) };
          expect(groups).toEqual({
            overdue: sortedGroups((await complianceSummary(database.db, now, DEFAULT_THRESHOLDS, { overdue: true })).groups),
            others: sortedGroups((await complianceSummary(database.db, now, DEFAULT_THRESHOLDS, { overdue: false })).groups),
          });
          return groups;
        };
        const total = (groups: Array<{ n: number }>) => groups.reduce((n, g) => n + g.n, 0);
        const before = await same();
        expect([total(before.overdue), total(before.others)]).toEqual([4, 3]);
        expect(before.overdue.length).toBeGreaterThan(1);
        // After the fill the triggers count: a due date passed and one put off in one statement, a
        // state change of an overdue machine, an enrollment, a removal; then a fold.
        await db`update machines set sla_due_dates = case when name = 'm-3' then array[${minutesAgo(5)}::timestamptz] else array[${minutesAgo(-60)}::timestamptz] end where id = any(${[ids[3]!, ids[4]!]}::uuid[])`;
        await db`update machines set security_count = 0 where id = ${ids[0]!}`;
        await insertMachine(db, 'new', 'LINUX');
        await db`update machines set removed_at = now() where id = ${ids[2]!}`;
        const after = await same();
        expect([total(after.overdue), total(after.others)]).toEqual([3, 4]);
        await fleetSummaryUpkeep(database.db, new Date());
        expect(await same()).toEqual(after);
      } finally {
        await database.close();
      }
    });
  });

  it('0056 counts the overdue live machines already stored per OS type and per tag, as a recompute of each does, and keeps counting after', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0055');
      const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
      const ids: string[] = [];
      for (let i = 0; i < 9; i++) ids.push(await insertMachine(db, `m-${i}`, i % 3 === 0 ? 'WINDOWS' : 'LINUX'));
      // Stored before it: overdue in several states and both OS types, tagged or not; not overdue yet; removed.
      await db`update machines set tags = '{prod}' where id = any(${ids.slice(0, 5)}::uuid[])`;
      await db`update machines set tags = '{prod,web}' where id = any(${ids.slice(5, 8)}::uuid[])`;
      await db`update machines set last_seen_at = ${minutesAgo(1)}, last_assessed_at = ${minutesAgo(20)} where id = any(${ids.slice(0, 6)}::uuid[])`;
      await db`update machines set security_count = 2 where id = any(${ids.slice(0, 2)}::uuid[])`;
      await db`update machines set sla_due_dates = array[${minutesAgo(60)}::timestamptz] where id = any(${[ids[0]!, ids[1]!, ids[3]!, ids[6]!, ids[8]!]}::uuid[])`;
      await db`update machines set sla_due_dates = array[${minutesAgo(-600)}::timestamptz] where id = ${ids[2]!}`;
      await db`update machines set removed_at = now() where id = ${ids[8]!}`;
      // Deltas of 0052's shape, not folded: 0056 counts again from the stored states.
      await db`update machines set tags = '{web}' where id = ${ids[4]!}`;

      await migrateDatabase(url);
      const database = connectDatabase(url, { max: 2 });
      try {
        // Overdue and not, of each OS type and each tag (alone and per OS type), as today's readers answer and as a recompute of those machines does.
        const same = async () => {
          const now = new Date();
          const counts = await maintainedSummaryCounts(database.db, now, DEFAULT_THRESHOLDS);
          const groups: Record<string, Array<{ compliance: string; readiness: string; n: number }>> = {};
          for (const overdue of [true, false]) {
            for (const osType of [undefined, 'LINUX', 'WINDOWS'] as const) {
              if (osType) {
                const name = `${osType} ${overdue}`;
                groups[name] = sortedGroups(groupsFromCounts(counts, { osType, overdue }));
                expect(groups[name], name).toEqual(sortedGroups((await complianceSummary(database.db, now, DEFAULT_THRESHOLDS, { osType, overdue })).groups));
              }
              for (const tag of ['prod', 'web']) {
                const name = `${tag}${osType ? ` ${osType}` : ''} ${overdue}`;
                groups[name] = sortedGroups(await maintainedTagGroups(database.db, tag, now, DEFAULT_THRESHOLDS, { osType, overdue }));
                expect(groups[name], name).toEqual(sortedGroups((await complianceSummary(database.db, now, DEFAULT_THRESHOLDS, { tag, osType, overdue })).groups));
              }
            }
          }
          return groups;
        };
        const total = (groups: Array<{ n: number }> | undefined) => (groups ?? []).reduce((n, g) => n + g.n, 0);
        const before = await same();
        expect([total(before['LINUX true']), total(before['WINDOWS true']), total(before['prod true']), total(before['web true']), total(before['prod WINDOWS true'])]).toEqual([1, 3, 4, 1, 3]);
        expect(before['prod true']!.length).toBeGreaterThan(1);
        // After the fill the triggers count: a due date passed and one put off in one statement, an
        // overdue machine's OS type and tags changed, a removal, an enrollment; then a fold.
        await db`update machines set sla_due_dates = case when name = 'm-2' then array[${minutesAgo(5)}::timestamptz] else array[${minutesAgo(-60)}::timestamptz] end where id = any(${[ids[2]!, ids[3]!]}::uuid[])`;
        await db`update machines set os_type = 'LINUX', tags = '{web}' where id = ${ids[0]!}`;
        await db`update machines set removed_at = now() where id = ${ids[6]!}`;
        await db`insert into machines (name, os_type, os_name, os_version, environment, tags, sla_due_dates) values ('new', 'WINDOWS', 'os', '1', 'ON_PREMISES', '{prod,web}', array[${minutesAgo(60)}::timestamptz])`;
        const after = await same();
        expect([total(after['LINUX true']), total(after['WINDOWS true']), total(after['prod true']), total(after['web true']), total(after['prod WINDOWS true'])]).toEqual([3, 1, 3, 2, 1]);
        await fleetSummaryUpkeep(database.db, new Date());
        expect(await same()).toEqual(after);
      } finally {
        await database.close();
      }
    });
  });

  it('0054 records the generation of the thresholds of the machines already stored, none for removed ones, and a change of thresholds re-evaluates them in the sweep', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0053');
      const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push(await insertMachine(db, `m-${i}`, i % 2 === 0 ? 'LINUX' : 'WINDOWS'));
      // Stored before it: seen 2 minutes ago (READY at 270 s, DISCONNECTED at 60 s), assessed 2 hours ago (assessed at 3 h, not at 1 h), one removed.
      await db`update machines set last_seen_at = ${minutesAgo(2)}, last_assessed_at = ${minutesAgo(120)} where id = any(${ids.slice(0, 4)}::uuid[])`;
      await db`update machines set removed_at = now() where id = ${ids[5]!}`;

      await migrateUpTo(url, '0054');
      expect(await db`select name, summary_generation from machines order by name`).toEqual(
        ids.map((_, i) => ({ name: `m-${i}`, summary_generation: i === 5 ? null : 0 })),
      );
      // The ones after it: today's code reads today's schema.
      await migrateDatabase(url);
      const database = connectDatabase(url, { max: 2 });
      try {
        const lapsed = async () => (await db<Array<{ n: number }>>`select count(*)::int as n from machines where summary_generation < (select generation from fleet_summary_settings)`)[0]!.n;
        const same = async (thresholds: FleetThresholds) => {
          const now = new Date();
          const read = await maintainedComplianceSummary(database.db, now, thresholds);
          expect(sortedGroups(read.groups)).toEqual(sortedGroups((await complianceSummary(database.db, now, thresholds)).groups));
          return read;
        };
        expect((await same(DEFAULT_THRESHOLDS)).byReadiness.READY).toBe(4);
        // Other thresholds: stored in one row, every live machine (not the removed one) of the older generation until the sweep.
        const strict: FleetThresholds = { assessmentMaxAgeMs: { LINUX: 3_600_000, WINDOWS: 3_600_000 }, disconnectedAfterMs: 60_000 };
        const read = await same(strict);
        expect([read.byReadiness.DISCONNECTED, read.byCompliance.NOT_ASSESSED]).toEqual([4, 5]);
        expect(await lapsed()).toBe(5);
        await fleetSummaryUpkeep(database.db, new Date());
        expect(await lapsed()).toBe(0);
        expect(await same(strict)).toEqual(read);
      } finally {
        await database.close();
      }
    });
  });

  it("0059 indexes the tag rows already stored by tag and state: a tag's machines in a state are found without its other rows", async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0058');
      await db`insert into machines (name, os_type, os_name, os_version, environment, tags, last_seen_at, last_assessed_at, critical_count, sla_due_dates, summary_at)
        select 'web-' || i, 'LINUX', 'os', '1', 'AWS', '{web}', now(), now(), (i % 500 = 0)::int, '{}', now() from generate_series(1, 2000) i`;
      await migrateDatabase(url);
      await db`analyze machine_tags`;
      const [row] = await db<Array<{ 'QUERY PLAN': Array<{ Plan: { 'Index Name'?: string; 'Actual Rows': number; Plans?: unknown[] } }> }>>`
        explain (analyze, format json) select machine_id from machine_tags where tag = 'web' and state = any('{NON_COMPLIANT:READY}') order by state, os_type, overdue, machine_id`;
      const plan = row!['QUERY PLAN'][0]!.Plan;
      expect(plan).toMatchObject({ 'Index Name': 'machine_tags_tag_state_idx', 'Actual Rows': 4 });
    });
  });

  it("0058 cuts the stored machines' names into their parts of one and two characters, and keeps them so through enrollment, renames, removal and deletion", async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0057');
      await db`insert into machines (name, os_type, os_name, os_version, environment, removed_at) values
        ('Web-01', 'LINUX', 'os', '1', 'AWS', null), ('DB ä', 'LINUX', 'os', '1', 'AWS', null), ('gone', 'LINUX', 'os', '1', 'AWS', now())`;
      const stored = async () => (await db<Array<{ row: string }>>`select gram || '|' || name as row from machine_name_grams order by 1`).map((r) => r.row);
      const asMachines = async () =>
        (await db<Array<{ row: string }>>`select distinct substr(lower(name), i, k) || '|' || name as row from machines, generate_series(1, 2) k, generate_series(1, length(name) - k + 1) i where removed_at is null order by 1`).map((r) => r.row);

      await migrateDatabase(url);
      // Every live machine's distinct parts, lowercased; none of the removed machine's.
      expect((await stored()).filter((r) => r.endsWith('|Web-01'))).toEqual(['-0|Web-01', '-|Web-01', '01|Web-01', '0|Web-01', '1|Web-01', 'b-|Web-01', 'b|Web-01', 'e|Web-01', 'eb|Web-01', 'w|Web-01', 'we|Web-01'].sort());
      expect(await stored()).toEqual(await asMachines());
      expect(await stored()).toEqual(expect.arrayContaining(['ä|DB ä', ' ä|DB ä', 'b |DB ä']));
      expect((await stored()).some((r) => r.endsWith('|gone'))).toBe(false);

      await db`insert into machines (name, os_type, os_name, os_version, environment) values ('new-1', 'LINUX', 'os', '1', 'AWS')`;
      await db`update machines set name = 'web-02' where name = 'Web-01'`;
      await db`update machines set removed_at = null where name = 'gone'`;
      await db`update machines set removed_at = now() where name = 'DB ä'`;
      await db`update machines set last_seen_at = now()`;
      expect(await stored()).toEqual(await asMachines());
      expect((await stored()).filter((r) => r.startsWith('we|'))).toEqual(['we|web-02']);
      await db`delete from machines where name = 'new-1'`;
      expect(await stored()).toEqual(await asMachines());
      expect((await stored()).some((r) => r.endsWith('|new-1'))).toBe(false);
    });
  });

  it("0057 gives the tag rows already stored their machine's OS type, stored state and overdue, and keeps them so through state, OS type, tag, name and removal changes", async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0056');
      // Each evaluated now (summary_at): the stored state is the state at that instant.
      await db`insert into machines (name, os_type, os_name, os_version, environment, tags, last_seen_at, last_assessed_at, critical_count, sla_due_dates, summary_at) values
        ('web-01', 'LINUX', 'os', '1', 'AWS', '{web,prod}', now(), now(), 1, '{}', now()),
        ('web-02', 'WINDOWS', 'os', '1', 'AWS', '{web}', now(), null, 0, '{}', now()),
        ('db-01', 'LINUX', 'os', '1', 'AWS', '{db,prod}', now(), now(), 1, '{}', now()),
        ('db-02', 'LINUX', 'os', '1', 'AWS', '{db}', now(), now(), 0, '{}', now())`;
      const stored = async () => db<Array<{ row: string }>>`select concat_ws(' ', tag, name, os_type, state, overdue) as row from machine_tags order by 1`;
      const asMachines = async () =>
        db<Array<{ row: string }>>`select concat_ws(' ', t, name, os_type, summary_state, coalesce(summary_overdue, 0) > 0) as row from machines cross join unnest(tags) t where removed_at is null order by 1`;

      // It and the ones after it: today's code reads today's schema.
      await migrateDatabase(url);
      expect(await stored()).toEqual(await asMachines());
      expect((await stored()).map((r) => r.row)).toEqual(expect.arrayContaining(['prod db-01 LINUX NON_COMPLIANT:READY f', 'web web-02 WINDOWS NOT_ASSESSED:READY f']));
      // A state, an OS type, tags, a name changed, a machine removed, one enrolled: the rows follow, in the writer's statement
      // (overdue, which needs a baseline's due dates, changes in fleetSummary.test.ts's random operations).
      await db`update machines set critical_count = 0 where name = 'web-01'`;
      await db`update machines set os_type = 'LINUX' where name = 'web-02'`;
      await db`update machines set critical_count = 0 where name = 'db-01'`;
      await db`update machines set tags = '{db,web}', name = 'db-20', last_seen_at = now() - interval '1 day', summary_at = now() where name = 'db-02'`;
      await db`update machines set removed_at = now() where name = 'web-02'`;
      await db`insert into machines (name, os_type, os_name, os_version, environment, tags, last_seen_at, last_assessed_at, critical_count) values ('db-03', 'WINDOWS', 'os', '1', 'AWS', '{db}', now(), now(), 2)`;
      // (db-03 evaluated at its enrollment's summary_at, as enrollments are.)
      const after = await stored();
      expect(after).toEqual(await asMachines());
      expect(after.map((r) => r.row)).toEqual(
        expect.arrayContaining(['prod db-01 LINUX COMPLIANT:READY f', 'web db-20 LINUX COMPLIANT:DISCONNECTED f', 'db db-03 WINDOWS NON_COMPLIANT:READY f', 'web web-01 LINUX COMPLIANT:READY f']),
      );
    });
  });

  it("0055 joins an UPDATE's old and new machine rows in the summary's trigger by hash, whatever the connection updated first", async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0054');
      await db`insert into machines (name, os_type, os_name, os_version, environment, last_seen_at) select 'm-' || i, 'LINUX', 'os', '1', 'AWS', now() from generate_series(1, 300) i`;
      type Plan = { 'Node Type': string; Plans?: Plan[] };
      const scansTransitionRows = (plan: Plan): boolean => plan['Node Type'] === 'Named Tuplestore Scan' || (plan.Plans ?? []).some(scansTransitionRows);
      /** The node that joins the trigger's old_rows and new_rows, when the connection's first UPDATE of machines was of one row and its next of 300. */
      const triggerJoin = async (): Promise<string | undefined> => {
        const plans: Plan[] = [];
        const session = postgres(url, {
          max: 1,
          onnotice: (notice) => {
            const text = String(notice.message ?? '');
            const at = text.indexOf('{');
            if (at >= 0 && text.includes('changed_rows')) plans.push((JSON.parse(text.slice(at)) as { Plan: Plan }).Plan);
          },
        });
        try {
          await session`load 'auto_explain'`;
          await session.unsafe(`set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on; set auto_explain.log_level = notice; set auto_explain.log_format = json`);
          await session`update machines set last_seen_at = now() where name = 'm-1'`;
          plans.length = 0;
          await session`update machines set last_seen_at = now()`;
          const join = (plan: Plan): Plan | undefined =>
            (plan.Plans ?? []).filter(scansTransitionRows).length >= 2 ? plan : (plan.Plans ?? []).map(join).find((p) => p !== undefined);
          expect(plans).toHaveLength(1);
          return join(plans[0]!)?.['Node Type'];
        } finally {
          await session.end();
        }
      };
      // Before: the plan the one-row UPDATE made is kept, a nested loop, 300 × 300 comparisons (a sweep of 9,633 machines took 42 s).
      expect(await triggerJoin()).toBe('Nested Loop');
      await migrateDatabase(url);
      expect(['Hash Join', 'Merge Join']).toContain(await triggerJoin());
    });
  });

  it('0047 and 0052 count the live machines already stored per tag, OS type and summary state, as a recompute of each does, and keep counting after', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0046');
      const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000).toISOString();
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) ids.push(await insertMachine(db, `m-${i}`, i % 3 === 0 ? 'WINDOWS' : 'LINUX'));
      // Stored before them: tagged in several states (assessed and seen, some non-compliant; never assessed; not managed), a tag listed twice, one removed.
      await db`update machines set tags = '{prod,web}' where id = any(${ids.slice(0, 4)}::uuid[])`;
      await db`update machines set tags = '{prod,prod}' where id = any(${ids.slice(4, 7)}::uuid[])`;
      await db`update machines set last_seen_at = ${minutesAgo(1)}, last_assessed_at = ${minutesAgo(20)} where id = any(${ids.slice(0, 5)}::uuid[])`;
      await db`update machines set security_count = 2 where id = any(${[ids[0]!, ids[4]!]}::uuid[])`;
      await db`update machines set management_enabled = false where id = ${ids[5]!}`;
      await db`update machines set removed_at = now() where id = ${ids[6]!}`;
      // As 0047 keys them, summed as every reader sums them, against the stored states recounted.
      const storedByTagState = async () =>
        (await db<Array<{ row: string }>>`select tag || ' ' || state || ' ' || sum(n) as row from (select tag, state, n from machine_tag_counts union all select tag, state, n from machine_tag_deltas) t group by tag, state having sum(n) <> 0 order by 1`).map((r) => r.row);
      const recountedByTagState = async () =>
        (await db<Array<{ row: string }>>`select t || ' ' || summary_state || ' ' || count(*) as row from machines cross join lateral (select distinct t from unnest(tags) t) u where removed_at is null group by t, summary_state order by 1`).map((r) => r.row);

      await migrateUpTo(url, '0047');
      expect(await storedByTagState()).toEqual(await recountedByTagState());
      // Changes under 0047's triggers: deltas of its shape are left for 0052 to replace.
      await db`update machines set tags = '{web}' where id = ${ids[3]!}`;
      expect(await storedByTagState()).toEqual(await recountedByTagState());

      await migrateDatabase(url);
      const database = connectDatabase(url, { max: 2 });
      try {
        // Each tag alone and with each OS type, as today's reader answers and as a recompute of those machines does.
        const same = async () => {
          const now = new Date();
          const groups: Record<string, Array<{ compliance: string; readiness: string; n: number }>> = {};
          for (const tag of ['prod', 'web']) {
            for (const osType of [undefined, 'LINUX', 'WINDOWS'] as const) {
              const name = `${tag}${osType ? ` ${osType}` : ''}`;
              groups[name] = sortedGroups(await maintainedTagGroups(database.db, tag, now, DEFAULT_THRESHOLDS, { osType }));
              expect(groups[name], name).toEqual(sortedGroups((await complianceSummary(database.db, now, DEFAULT_THRESHOLDS, { tag, osType })).groups));
            }
          }
          return groups;
        };
        const total = (groups: Array<{ n: number }> | undefined) => (groups ?? []).reduce((n, g) => n + g.n, 0);
        const before = await same();
        expect([total(before.prod), total(before.web), total(before['prod WINDOWS']), total(before['web WINDOWS'])]).toEqual([5, 4, 1, 2]);
        expect(before.prod).toEqual(expect.arrayContaining([{ compliance: 'NON_COMPLIANT', readiness: 'READY', n: 2 }]));
        // After the fill the triggers count: one statement changing several machines' states, tags
        // replaced, a machine whose OS type changed, a removal, a deletion, an enrollment with tags; then a fold.
        await db`update machines set security_count = case when name = 'm-0' then 0 else 3 end where id = any(${ids.slice(0, 5)}::uuid[])`;
        await db`update machines set tags = '{web}' where id = ${ids[4]!}`;
        await db`update machines set os_type = 'WINDOWS' where id = ${ids[1]!}`;
        await db`update machines set removed_at = now() where id = ${ids[2]!}`;
        await db`delete from machines where id = ${ids[5]!}`;
        await db`insert into machines (name, os_type, os_name, os_version, environment, tags) values ('new', 'LINUX', 'os', '1', 'ON_PREMISES', '{prod,web}')`;
        const after = await same();
        expect([total(after.prod), total(after.web), total(after['prod WINDOWS']), total(after['web WINDOWS'])]).toEqual([3, 5, 2, 3]);
        expect(await foldMachineTagDeltas(database.db)).toBeGreaterThan(0);
        expect(await same()).toEqual(after);
      } finally {
        await database.close();
      }
    });
  });

  it('0037 moves the stored DISCONNECTED threshold to the new default and re-evaluates the machines stored; a configured threshold is left', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0036');
      const secondsAgo = (n: number) => new Date(Date.now() - n * 1000).toISOString();
      const quiet = await insertMachine(db, 'quiet', 'LINUX');
      const live = await insertMachine(db, 'live', 'LINUX');
      await db`update machines set last_seen_at = ${secondsAgo(200)}, summary_at = now() where id = ${quiet}`;
      await db`update machines set last_seen_at = ${secondsAgo(10)}, summary_at = now() where id = ${live}`;
      const readiness = async () =>
        Object.fromEntries((await db`select name, split_part(summary_state, ':', 2) as r from machines order by name`).map((row) => [row.name as string, row.r as string]));
      // 200 s of silence: DISCONNECTED under 0027's 180 s, READY under the default 270 s.
      expect(await readiness()).toEqual({ live: 'READY', quiet: 'DISCONNECTED' });

      await migrateUpTo(url, '0037');
      const [settings] = await db`select disconnected_after_ms::float8 as ms from fleet_summary_settings`;
      expect(settings!.ms).toBe(DEFAULT_THRESHOLDS.disconnectedAfterMs);
      // Re-evaluated by the migration, before any process read the summary.
      expect(await readiness()).toEqual({ live: 'READY', quiet: 'READY' });
      // The reader of today needs the migrations after it (0046's OS type keys).
      await migrateDatabase(url);
      const database = connectDatabase(url, { max: 2 });
      try {
        const summary = await maintainedComplianceSummary(database.db, new Date(), DEFAULT_THRESHOLDS);
        expect(summary.total).toBe(2);
        expect(summary.groups.filter((g) => g.readiness === 'DISCONNECTED')).toEqual([]);
      } finally {
        await database.close();
      }
    });
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0036');
      await db`update fleet_summary_settings set disconnected_after_ms = 600000`;
      await migrateUpTo(url, '0037');
      const [settings] = await db`select disconnected_after_ms::float8 as ms from fleet_summary_settings`;
      expect(settings!.ms).toBe(600_000);
    });
  });

  it('0025 gives the machine runs already stored the reboot reserve their plan kept, by the planner\'s rule', async () => {
    await withDatabase(async (db, url) => {
      await migrateUpTo(url, '0020');
      type Case = { name: string; osType: 'LINUX' | 'WINDOWS'; backend: string | null; rebootPending: boolean; deploymentSetting: RebootSetting; runSetting: RebootSetting | null; updates: Array<{ selected: boolean; rebootSuggested: boolean }> };
      const plain = { selected: true, rebootSuggested: false };
      const kernel = { selected: true, rebootSuggested: true };
      const cases: Case[] = [
        { name: 'apt-maybe', osType: 'LINUX', backend: 'apt', rebootPending: false, deploymentSetting: 'IF_REQUIRED', runSetting: null, updates: [plain] },
        { name: 'unknown-backend-is-apt', osType: 'LINUX', backend: null, rebootPending: false, deploymentSetting: 'IF_REQUIRED', runSetting: 'IF_REQUIRED', updates: [plain] },
        { name: 'dnf-plain', osType: 'LINUX', backend: 'dnf', rebootPending: false, deploymentSetting: 'IF_REQUIRED', runSetting: 'IF_REQUIRED', updates: [plain] },
        { name: 'dnf-kernel', osType: 'LINUX', backend: 'dnf', rebootPending: false, deploymentSetting: 'IF_REQUIRED', runSetting: 'IF_REQUIRED', updates: [plain, kernel] },
        { name: 'dnf-pending-nothing-to-install', osType: 'LINUX', backend: 'dnf', rebootPending: true, deploymentSetting: 'IF_REQUIRED', runSetting: 'IF_REQUIRED', updates: [] },
        { name: 'apt-only-left-out', osType: 'LINUX', backend: 'apt', rebootPending: false, deploymentSetting: 'IF_REQUIRED', runSetting: 'IF_REQUIRED', updates: [{ selected: false, rebootSuggested: true }] },
        { name: 'windows-always', osType: 'WINDOWS', backend: 'windows', rebootPending: false, deploymentSetting: 'ALWAYS', runSetting: 'ALWAYS', updates: [plain] },
        { name: 'windows-reboot-only', osType: 'WINDOWS', backend: 'windows', rebootPending: false, deploymentSetting: 'REBOOT_ONLY', runSetting: 'REBOOT_ONLY', updates: [] },
        { name: 'apt-never', osType: 'LINUX', backend: 'apt', rebootPending: true, deploymentSetting: 'NEVER', runSetting: 'NEVER', updates: [kernel] },
        // The run keeps the settings it began with, whatever the deployment says now.
        { name: 'run-kept-always', osType: 'LINUX', backend: 'dnf', rebootPending: false, deploymentSetting: 'NEVER', runSetting: 'ALWAYS', updates: [plain] },
      ];
      const machineRunOf = new Map<string, string>();
      for (const c of cases) {
        const machine = await insertMachine(db, c.name, c.osType);
        await db`update machines set package_manager = ${c.backend}, reboot_pending = ${c.rebootPending} where id = ${machine}`;
        const [deployment] = await db`insert into deployments (name, os_type, classifications, window_minutes, reboot_setting) values (${c.name}, ${c.osType}::os_type, '{SECURITY}', 60, ${c.deploymentSetting}::reboot_setting) returning id`;
        const settings = c.runSetting ? { classifications: ['SECURITY'], includePatterns: [], excludePatterns: [], windowMinutes: 60, rebootSetting: c.runSetting, maxConcurrent: null, maxFailures: null } : null;
        const [run] = await db`insert into deployment_runs (deployment_id, workflow_id, trigger, status, settings) values (${deployment!.id}, ${`wf-${c.name}`}, 'MANUAL', 'IN_PROGRESS', ${settings ? db.json(settings) : null}) returning id`;
        const [machineRun] = await db`insert into machine_runs (run_id, machine_id, machine_name) values (${run!.id}, ${machine}, ${c.name}) returning id`;
        machineRunOf.set(c.name, machineRun!.id as string);
        for (const [i, u] of c.updates.entries()) {
          const status = u.selected ? 'PENDING' : 'NOT_SELECTED';
          const predicted = u.selected ? 'SUCCEEDED' : 'NOT_SELECTED';
          await db`insert into update_results (machine_run_id, run_id, name, classification, target_version, order_index, expected_seconds, status, predicted_status, reboot_suggested)
            values (${machineRun!.id}, ${run!.id}, ${`pkg-${i}`}, 'SECURITY'::classification, '2', ${i}, 90, ${status}::update_result_status, ${predicted}::update_result_status, ${u.rebootSuggested})`;
        }
      }

      await migrateUpTo(url, '0025');
      const stored = new Map((await db`select id, reboot_reserve_seconds from machine_runs`).map((r) => [r.id as string, r.reboot_reserve_seconds as number]));
      const byRule = (c: Case) =>
        rebootReserveSeconds(
          rebootForecast({ setting: c.runSetting ?? c.deploymentSetting, backend: c.backend ?? 'apt', machineRebootPending: c.rebootPending, updates: c.updates.filter((u) => u.selected) }),
          c.osType,
        );
      expect(cases.map((c) => [c.name, stored.get(machineRunOf.get(c.name)!)])).toEqual(cases.map((c) => [c.name, byRule(c)]));
      // The figures themselves, so that the rule and the backfill cannot drift together unseen.
      expect(cases.map((c) => stored.get(machineRunOf.get(c.name)!))).toEqual([600, 600, 0, 600, 600, 0, 900, 900, 0, 600]);
    });
  });
});
