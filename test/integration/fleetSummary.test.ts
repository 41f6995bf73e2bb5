import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AssessmentReport, OsType } from '../../src/agent/protocol.js';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import { agentVersionRows, agentVersionRowsRecomputed } from '../../src/db/agentUpgrades.js';
import { prepareReport } from '../../src/db/assessmentIngest.js';
import { saveBaseline } from '../../src/db/baselines.js';
import { connectDatabase, type Database, type Db } from '../../src/db/client.js';
import { fleetSummaryUpkeep, maintainedComplianceSummary, maintainedSummaryCounts, maintainedTagGroups, sweepFleetSummary, sweepLapsedGenerations, syncFleetSummaryThresholds } from '../../src/db/fleetSummary.js';
import { complianceSql } from '../../src/db/fleetSql.js';
import { complianceSummary, listMachines, machineConditions, recordCheckIn, removeMachine, setMachineManagement, setMachineTags, type ComplianceSummaryRow, type MachineFilter } from '../../src/db/machines.js';
import * as schema from '../../src/db/schema.js';
import { machines as machinesTable } from '../../src/db/schema.js';
import { DEFAULT_THRESHOLDS, type FleetThresholds } from '../../src/fleet/compliance.js';
import { complianceRank, type MachinePosition } from '../../src/fleet/machineOrder.js';
import { groupsFromCounts, nextSummaryChange, summaryState, type FleetSummary } from '../../src/fleet/fleetSummary.js';
import { assessmentReport, machineFacts } from '../../testkit/agentFacts.js';
import { freshDatabase } from '../support/env.js';
import { concurrentRounds, random, storeReportGroup } from '../support/randomFleet.js';

const CLASSES = ['CRITICAL', 'SECURITY', 'OTHER', 'UPDATE_ROLLUP', 'DEFINITION'] as const;
const SEVERITIES = ['CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW', null] as const;
const NAMES = Array.from({ length: 16 }, (_, i) => `pkg-${i}`);
const MIN = 60_000;
const HOUR = 60 * MIN;

/** The two summaries in one shape, whatever order their groups were read in. */
const canonical = (s: FleetSummary | ComplianceSummaryRow) => ({ ...s, groups: sorted(s.groups) });
const sorted = (groups: FleetSummary['groups']) => [...groups].sort((a, b) => `${a.compliance} ${a.readiness}`.localeCompare(`${b.compliance} ${b.readiness}`));

/** A tag with each kind of condition its page reads from the tag rows' stored states (storedStatesMeeting). */
const TAG_PAGE_FILTERS: MachineFilter[] = [
  { tags: ['prod'], compliance: ['NON_COMPLIANT'] },
  { tags: ['web'], readiness: ['DISCONNECTED', 'NOT_CONFIGURED'] },
  { tags: ['prod'], overdue: true },
  { tags: ['web'], osType: 'WINDOWS', compliance: ['COMPLIANT', 'NOT_ASSESSED'] },
  { tags: ['prod', 'web'], overdue: false },
];

describe('the maintained compliance summary', () => {
  let database: Database;
  let drop: () => Promise<void>;
  let url: string;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    url = fresh.url;
    database = connectDatabase(url, { max: 12 });
  });

  afterAll(async () => {
    await database?.close();
    await drop?.();
  });

  /**
   * Every live machine's stored state and next instant, as src/fleet/fleetSummary.ts decides them at
   * its summary_at, when evaluated in the stored thresholds' generation (the others are the sweep's
   * to re-evaluate). Answers how many were of an older generation.
   */
  async function expectTwinsAgree(thresholds: FleetThresholds): Promise<number> {
    const all = await database.db.select().from(machinesTable).where(sql`removed_at is null`);
    expect(all.length).toBeGreaterThan(0);
    const [settings] = await database.sql<Array<{ generation: number }>>`select generation from fleet_summary_settings`;
    const rows = all.filter((row) => row.summaryGeneration === settings!.generation);
    for (const row of rows) {
      const machine = { ...row, slaDueDates: row.slaDueDates.map((d) => new Date(d)) };
      const state = summaryState(machine, row.summaryAt, thresholds);
      expect({ id: row.id, state: row.summaryState, overdue: row.summaryOverdue, next: row.summaryNextAt }).toEqual({
        id: row.id,
        state: `${state.compliance}:${state.readiness}`,
        overdue: state.overdueUpdates,
        next: nextSummaryChange(machine, row.summaryAt, thresholds),
      });
    }
    return all.length - rows.length;
  }

  /** The computers page sorted by compliance (read from the stored states that hold, and the lapsed ones evaluated): every live machine, each in its state's block as recomputed. */
  async function expectPageByCompliance(now: Date, thresholds: FleetThresholds) {
    const page = await listMachines(database.db, { filter: {}, sort: { field: 'COMPLIANCE', direction: 'ASC' }, offset: 0, limit: 1000, now, thresholds, count: false });
    const recomputed = new Map(
      (await database.db.select({ id: machinesTable.id, compliance: complianceSql(now, thresholds) }).from(machinesTable).where(sql`removed_at is null`)).map((r) => [r.id, r.compliance]),
    );
    expect(page.rows.map((r) => r.id).sort()).toEqual([...recomputed.keys()].sort());
    const ranks = page.rows.map((r) => complianceRank(recomputed.get(r.id)!));
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
  }

  it('equals a full recompute after thousands of random reports, removals, check-ins, management, tag, baseline and threshold changes and clock moves, run concurrently', async () => {
    const rng = random(2718);
    // Readers read with the thresholds last changed to; the sweep catches up in batches, or not at all before a read.
    const THRESHOLDS: FleetThresholds[] = [DEFAULT_THRESHOLDS, { assessmentMaxAgeMs: { LINUX: 2 * HOUR, WINDOWS: 24 * HOUR }, disconnectedAfterMs: 90_000 }];
    let thresholds = DEFAULT_THRESHOLDS;
    // The clock the API would pass: reports are received on it, and so first seen, approved and due on it.
    let clock = Date.parse('2026-12-01T00:00:00Z');
    const machines: Array<{ id: string; osType: OsType; reports: AssessmentReport[] }> = [];
    const addMachine = async () => {
      const osType: OsType = rng.next() < 0.7 ? 'LINUX' : 'WINDOWS';
      const seen = rng.next() < 0.9 ? new Date(clock).toISOString() : null;
      const [row] = await database.sql<Array<{ id: string }>>`insert into machines (name, os_type, os_name, os_version, environment, last_seen_at, tags)
        values (${`m-${machines.length}`}, ${osType}, 'os', '1', 'AWS', ${seen}::timestamptz, ${rng.next() < 0.5 ? ['prod'] : []}) returning id`;
      machines.push({ id: row!.id, osType, reports: [] });
    };
    for (let i = 0; i < 30; i++) await addMachine();

    const update = (): PendingUpdate => {
      const name = rng.pick(NAMES);
      return {
        name,
        installedVersion: '1.0',
        availableVersion: `1.${rng.int(3)}`,
        arch: rng.pick(['amd64', null]),
        classification: CLASSES[Number(name.slice(4)) % CLASSES.length]!,
        severity: rng.pick(SEVERITIES),
        advisoryIds: [],
        cveIds: [],
        rebootSuggested: false,
        repository: null,
      };
    };
    const newReport = (): AssessmentReport => {
      // Some reports come from a spool: older than what the machine already reported.
      const finishedAt = new Date(rng.next() < 0.15 ? clock - HOUR : clock).toISOString();
      return assessmentReport(Array.from({ length: rng.int(6) }, update), { startedAt: finishedAt, finishedAt });
    };
    /** Baselines by name, so that a save replaces or deletes the one of that name. */
    const baselineIds = new Map<string, string>();
    const saveRandomBaseline = async () => {
      const name = rng.pick(['prod-linux', 'all-linux', 'windows']);
      const id = baselineIds.get(name) ?? null;
      if (id && rng.next() < 0.25) {
        await saveBaseline(database.db, id, null);
        baselineIds.delete(name);
        return;
      }
      const row = await saveBaseline(database.db, id, {
        name,
        osType: name === 'windows' ? 'WINDOWS' : 'LINUX',
        tags: name === 'prod-linux' ? ['prod'] : [],
        priority: name === 'prod-linux' ? 1 : 0,
        rules: [{ classifications: rng.next() < 0.5 ? ['SECURITY'] : [], severities: [], delayDays: rng.int(3) }],
        approvedPatterns: rng.next() < 0.3 ? ['pkg-1*'] : [],
        rejectedPatterns: rng.next() < 0.3 ? ['pkg-2'] : [],
        slaTargets: rng.next() < 0.8 ? [{ severity: 'CRITICAL', days: 1 }, { severity: 'IMPORTANT', days: 1 + rng.int(3) }] : [],
        timeZone: rng.pick(['UTC', 'Europe/Berlin']),
      });
      if (row && row !== 'NAME_TAKEN') baselineIds.set(name, row.id);
    };

    /** One operation of a random kind; several run at once. */
    const operation = async () => {
      const roll = rng.next();
      const machine = rng.pick(machines);
      if (roll < 0.4) {
        const group = Array.from({ length: 1 + rng.int(4) }, () => {
          const m = rng.pick(machines);
          const report = m.reports.length > 0 && rng.next() < 0.15 ? rng.pick(m.reports) : newReport();
          if (!m.reports.includes(report)) m.reports.push(report);
          return prepareReport(m.id, report, { receivedAtMs: Math.max(clock, Date.parse(report.finishedAt)), agentSentAtMs: null });
        });
        await storeReportGroup(database.sql, group);
      } else if (roll < 0.6) {
        // A check-in; now and then the machine says it runs another OS.
        if (rng.next() < 0.1) machine.osType = machine.osType === 'LINUX' ? 'WINDOWS' : 'LINUX';
        // Its agent's version too (an upgrade, or one rolled back): the overview's agentVersions count it.
        await recordCheckIn(database.db, machine.id, machineFacts({ osType: machine.osType, bootId: null, agentVersion: rng.pick(['0.1.0', '0.2.0', '0.3.0']) }), new Date(clock));
      } else if (roll < 0.67) {
        await removeMachine(database.db, machine.id);
        machines.splice(machines.indexOf(machine), 1);
        await addMachine();
      } else if (roll < 0.74) {
        await setMachineManagement(database.db, machine.id, rng.next() < 0.6);
      } else if (roll < 0.81) {
        // Tags kept, added, dropped and replaced (the live machines per tag count each change once).
        await setMachineTags(database.db, machine.id, rng.pick([['prod'], [], ['prod', 'web'], ['web']]));
      } else if (roll < 0.86) {
        await saveRandomBaseline();
      } else if (roll < 0.95) {
        // The clock moves: past a check-in interval, an assessment's 3 h, a day's approvals and due dates.
        clock += rng.pick([1000, MIN, 3 * MIN + 1, HOUR, 3 * HOUR, 12 * HOUR]);
      } else if (roll < 0.965) {
        await fleetSummaryUpkeep(database.db, new Date(clock));
      } else if (roll < 0.985) {
        // A sweep of a few machines only: the rest stay lapsed for readers to evaluate.
        await sweepFleetSummary(database.db, new Date(clock), 1 + rng.int(5));
      } else {
        // The configuration changes (whichever process wrote last, readers store theirs when they read).
        thresholds = thresholds === THRESHOLDS[0] ? THRESHOLDS[1]! : THRESHOLDS[0]!;
        await syncFleetSummaryThresholds(database.db, thresholds);
      }
    };

    const seen = { notAssessed: 0, disconnected: 0, nonCompliant: 0, overdue: 0, agentVersions: 0, osTypes: 0, tags: 0, tagOsTypes: 0, overdueGroups: 0, overdueOsGroups: 0, overdueTagGroups: 0, lapsedGenerations: 0, tagPages: 0 };
    const operations = await concurrentRounds(10, operation, async () => {
      const now = new Date(clock);
      const recomputed = await complianceSummary(database.db, now, thresholds);
      expect(canonical(await maintainedComplianceSummary(database.db, now, thresholds))).toEqual(canonical(recomputed));
      seen.lapsedGenerations += await expectTwinsAgree(thresholds);
      await expectPageByCompliance(now, thresholds);
      const versions = (rows: Array<{ version: string | null; machines: number }>) => rows.map((r) => `${r.version ?? 'unknown'} ${r.machines}`).sort();
      const agents = versions(await agentVersionRowsRecomputed(database.db));
      expect(versions(await agentVersionRows(database.db))).toEqual(agents);
      seen.agentVersions = Math.max(seen.agentVersions, agents.length);
      // The live machines per (compliance, readiness) of the fleet, each OS type and each tag, alone or per OS type, each overdue or not or
      // either (the count of a page filtered on those, with or without compliance and readiness), as the recompute of those machines, at the same instant.
      const expectGroups = async (at: Date) => {
        const counts = await maintainedSummaryCounts(database.db, at, thresholds);
        for (const osType of [undefined, 'LINUX', 'WINDOWS'] as const) {
          for (const overdue of [undefined, true, false]) {
            if (osType === undefined && overdue === undefined) continue; // the summary itself, compared above
            const recomputedGroups = sorted((await complianceSummary(database.db, at, thresholds, { osType, overdue })).groups);
            expect(sorted(groupsFromCounts(counts, { osType, overdue })), `${osType} overdue ${overdue} at ${at.toISOString()}`).toEqual(recomputedGroups);
            seen[overdue ? (osType ? 'overdueOsGroups' : 'overdueGroups') : 'osTypes'] += recomputedGroups.length > 1 ? 1 : 0;
          }
        }
        for (const tag of ['prod', 'web']) {
          for (const osType of [undefined, 'LINUX', 'WINDOWS'] as const) {
            for (const overdue of [undefined, true, false]) {
              const recomputedGroups = sorted((await complianceSummary(database.db, at, thresholds, { tag, osType, overdue })).groups);
              expect(sorted(await maintainedTagGroups(database.db, tag, at, thresholds, { osType, overdue })), `${tag} ${osType} overdue ${overdue} at ${at.toISOString()}`).toEqual(recomputedGroups);
              seen[overdue ? 'overdueTagGroups' : osType ? 'tagOsTypes' : 'tags'] += recomputedGroups.length > 1 ? 1 : 0;
            }
          }
        }
      };
      await expectGroups(now);
      // The rows the tag filter's page walks (machine_tags): each live machine's distinct tags with its name, OS type, stored state and overdue as stored now.
      const tagRows = (rows: Array<{ row: string }>) => rows.map((r) => r.row).sort();
      expect(tagRows(await database.sql<Array<{ row: string }>>`select concat_ws(' ', tag, name, machine_id, os_type, state, overdue) as row from machine_tags`)).toEqual(
        tagRows(
          await database.sql<Array<{ row: string }>>`
            select distinct concat_ws(' ', t, name, id, os_type, summary_state, coalesce(summary_overdue, 0) > 0) as row from machines cross join unnest(tags) t where removed_at is null`,
        ),
      );
      // The upkeep changes no answer; a minute later (nobody swept) the answer is still the recompute's.
      await fleetSummaryUpkeep(database.db, now);
      expect(canonical(await maintainedComplianceSummary(database.db, now, thresholds))).toEqual(canonical(recomputed));
      expect(versions(await agentVersionRows(database.db))).toEqual(agents);
      await expectGroups(now);
      const later = new Date(clock + 3 * MIN + 1);
      expect(canonical(await maintainedComplianceSummary(database.db, later, thresholds))).toEqual(canonical(await complianceSummary(database.db, later, thresholds)));
      await expectGroups(later);
      // A tag's page with a condition (the stored states that hold, and the lapsed machines evaluated), read page by page: the machines the condition recomputed keeps, in name order.
      for (const at of [now, later]) {
        for (const filter of TAG_PAGE_FILTERS) {
          const expected = await database.db.select({ id: machinesTable.id }).from(machinesTable).where(machineConditions(filter, at, thresholds)).orderBy(machinesTable.name, machinesTable.id);
          const ids: string[] = [];
          let after: MachinePosition | undefined;
          for (;;) {
            const page = await listMachines(database.db, { filter, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, after, limit: 7, now: at, thresholds, count: false });
            ids.push(...page.rows.map((r) => r.id));
            if (!page.hasMore) break;
            after = page.positions.at(-1);
          }
          expect(ids, `${JSON.stringify(filter)} at ${at.toISOString()}`).toEqual(expected.map((r) => r.id));
          seen.tagPages += ids.length > 0 ? 1 : 0;
        }
      }
      seen.notAssessed += recomputed.byCompliance.NOT_ASSESSED;
      seen.disconnected += recomputed.byReadiness.DISCONNECTED;
      seen.nonCompliant += recomputed.byCompliance.NON_COMPLIANT;
      seen.overdue += recomputed.overdueUpdates;
    });
    expect(operations).toBeGreaterThanOrEqual(2400);
    expect(seen.lapsedGenerations, 'rounds read machines evaluated with older thresholds').toBeGreaterThan(0);
    // The comparisons were between fleets in every state, not between two empty summaries.
    expect(Object.values(seen).every((n) => n > 0)).toBe(true);
  }, 300_000);

  it('takes other thresholds in one row written, reads exact while machines are still of the older ones, and sweeps them in batches', async () => {
    // After the clock of the test before (the stored states are evaluated up to it).
    const [latest] = await database.sql<Array<{ ms: number }>>`select (extract(epoch from max(summary_at)) * 1000)::float8 as ms from machines`;
    const now = new Date(Math.max(Date.now(), latest!.ms) + 1000);
    const shorter: FleetThresholds = { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: 1000 };
    await syncFleetSummaryThresholds(database.db, DEFAULT_THRESHOLDS);
    await database.sql`insert into machines (name, os_type, os_name, os_version, environment, last_seen_at) values ('quiet', 'LINUX', 'os', '1', 'AWS', ${new Date(now.getTime() - 5000).toISOString()}::timestamptz)`;
    await fleetSummaryUpkeep(database.db, now);
    const lapsed = async () =>
      (await database.sql<Array<{ n: number }>>`select count(*)::int as n from machines where removed_at is null and summary_generation < (select generation from fleet_summary_settings)`)[0]!.n;
    const live = (await database.sql<Array<{ n: number }>>`select count(*)::int as n from machines where removed_at is null`)[0]!.n;
    expect(await lapsed()).toBe(0);
    const silent = (s: FleetSummary | ComplianceSummaryRow) => s.byReadiness.DISCONNECTED;
    expect(silent(await maintainedComplianceSummary(database.db, now, DEFAULT_THRESHOLDS))).toBe(silent(await complianceSummary(database.db, now, DEFAULT_THRESHOLDS)));
    // A reader with a 1 s threshold stores it and re-evaluates no machine: all of them are of the older thresholds now, and the reader evaluates them itself ('quiet', silent 5 s, is DISCONNECTED for it).
    const read = await maintainedComplianceSummary(database.db, now, shorter);
    expect(canonical(read)).toEqual(canonical(await complianceSummary(database.db, now, shorter)));
    expect(await database.sql`select disconnected_after_ms::int as ms from fleet_summary_settings`).toEqual([{ ms: 1000 }]);
    expect(await lapsed()).toBe(live);
    await expectPageByCompliance(now, shorter);
    // A writer meanwhile evaluates its machine with the stored thresholds.
    await database.sql`update machines set last_seen_at = last_seen_at - interval '1 second' where name = 'quiet'`;
    expect(await lapsed()).toBe(live - 1);
    // The sweep takes them in batches; every read in between is exact.
    expect(await sweepFleetSummary(database.db, now, 3)).toBe(3);
    expect(await lapsed()).toBe(live - 4);
    expect(canonical(await maintainedComplianceSummary(database.db, now, shorter))).toEqual(canonical(await complianceSummary(database.db, now, shorter)));
    expect(sorted(await maintainedTagGroups(database.db, 'prod', now, shorter))).toEqual(sorted((await complianceSummary(database.db, now, shorter, { tag: 'prod' })).groups));
    await expectPageByCompliance(now, shorter);
    // The walk through the table, a page a statement, passes a machine another transaction holds: the upkeep's sweep takes it after.
    const before = await lapsed();
    const [held] = await database.sql<Array<{ id: string }>>`select id from machines where removed_at is null and summary_generation < (select generation from fleet_summary_settings) limit 1`;
    const seen: number[] = [];
    await database.sql.begin(async (tx) => {
      await tx`select 1 from machines where id = ${held!.id} for update`;
      const moved = await sweepLapsedGenerations(database.db, now, ({ pagesRead, pages }) => void seen.push(pagesRead / pages), 1);
      expect(moved).toBe(before - 1);
    });
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.at(-1)).toBe(1);
    expect(await lapsed()).toBe(1);
    expect(canonical(await maintainedComplianceSummary(database.db, now, shorter))).toEqual(canonical(await complianceSummary(database.db, now, shorter)));
    await fleetSummaryUpkeep(database.db, now);
    expect(await lapsed()).toBe(0);
    expect(await expectTwinsAgree(shorter)).toBe(0);
    expect(await syncFleetSummaryThresholds(database.db, DEFAULT_THRESHOLDS)).toBe(true);
    expect(await syncFleetSummaryThresholds(database.db, DEFAULT_THRESHOLDS)).toBe(false);
    expect(canonical(await maintainedComplianceSummary(database.db, now, DEFAULT_THRESHOLDS))).toEqual(canonical(await complianceSummary(database.db, now, DEFAULT_THRESHOLDS)));
  });

  it('reads the machines of older thresholds only while some exist: at rest no read plans a scan for them', async () => {
    type Plan = { Plans?: Plan[]; Filter?: string; 'Index Cond'?: string; 'One-Time Filter'?: string };
    const conditions = (plan: Plan): string[] => [plan.Filter, plan['Index Cond'], plan['One-Time Filter']].filter((c): c is string => !!c).concat((plan.Plans ?? []).flatMap(conditions));
    const plans: Plan[] = [];
    const session = postgres(url, {
      max: 1,
      onnotice: (notice) => {
        const text = String(notice.message ?? '');
        if (text.includes('"Plan"')) plans.push((JSON.parse(text.slice(text.indexOf('{'))) as { Plan: Plan }).Plan);
      },
    });
    /** Whether the reads of the summary and of a tag's groups planned a scan for older generations (a parallel one, at 1,000,000 machines: 9 ms a read to read nothing). */
    await database.sql`insert into machines (name, os_type, os_name, os_version, environment, last_seen_at, tags) values ('older-1', 'LINUX', 'os', '1', 'AWS', now(), '{prod}'), ('older-2', 'WINDOWS', 'os', '1', 'AWS', now(), '{}')`;
    // After the clock of the tests before (the stored states are evaluated up to it).
    const [latest] = await database.sql<Array<{ ms: number }>>`select (extract(epoch from max(summary_at)) * 1000)::float8 as ms from machines`;
    const now = new Date(latest!.ms + 60_000);
    const scansOlderGenerations = async (thresholds: FleetThresholds) => {
      const db = drizzle(session, { schema }) as Db;
      plans.length = 0;
      expect(canonical(await maintainedComplianceSummary(db, now, thresholds))).toEqual(canonical(await complianceSummary(database.db, now, thresholds)));
      expect(sorted(await maintainedTagGroups(db, 'prod', now, thresholds, { overdue: false }))).toEqual(sorted((await complianceSummary(database.db, now, thresholds, { tag: 'prod', overdue: false })).groups));
      return plans.some((plan) => conditions(plan).some((c) => /summary_generation < /.test(c)));
    };
    try {
      await session`load 'auto_explain'`;
      await session.unsafe(`set auto_explain.log_min_duration = 0; set auto_explain.log_level = notice; set auto_explain.log_format = json`);
      await fleetSummaryUpkeep(database.db, now);
      expect(await scansOlderGenerations(DEFAULT_THRESHOLDS)).toBe(false);
      // Other thresholds: every machine is of an older generation until the sweep; the reads take them.
      const shorter: FleetThresholds = { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: 60_000 };
      expect(await scansOlderGenerations(shorter)).toBe(true);
      await fleetSummaryUpkeep(database.db, now);
      expect(await scansOlderGenerations(shorter)).toBe(false);
      await syncFleetSummaryThresholds(database.db, DEFAULT_THRESHOLDS);
      await fleetSummaryUpkeep(database.db, now);
    } finally {
      await session.end();
    }
  });
});
