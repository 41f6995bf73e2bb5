import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BaselineService } from '../../src/api/baselines/baseline.service.js';
import { ComplianceHistoryService } from '../../src/api/complianceHistory/complianceHistory.service.js';
import type { ApiServices } from '../../src/api/context.js';
import { MachineService } from '../../src/api/machines/machine.service.js';
import type { ApiServer } from '../../src/api/server.js';
import { storeAssessmentReport } from '../../src/db/assessmentIngest.js';
import type { Database } from '../../src/db/client.js';
import { createComplianceHistoryActivities } from '../../src/activities/complianceHistory.js';
import { takeComplianceSnapshot } from '../../src/db/complianceHistory.js';
import { findMachine } from '../../src/db/machines.js';
import { HISTORY_CLASSIFICATIONS, PRUNE_BATCH_DAYS, daysBetween } from '../../src/fleet/complianceHistory.js';
import type { TemporalClient, TemporalSettings } from '../../src/temporal/connection.js';
import { complianceSnapshotWorkflow } from '../../src/workflows/complianceSnapshot.js';
import { scheduleIds } from '../../src/workflows/config.js';
import { assessmentReport, pendingUpdate } from '../../testkit/agentFacts.js';
import { startClockedServices, type ClockedServices } from '../support/clockedServices.js';
import { graphql, startRunStack, tokenFor, type RunStack, type WorkerStack, waitUntil } from '../support/env.js';

/** RECORD_HISTORY=<dir> saves a snapshot workflow's history for the replay test (test/history_files/). */
async function recordHistory(temporal: TemporalClient, workflowId: string, runId: string, file: string): Promise<void> {
  const dir = process.env.RECORD_HISTORY;
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, file), historyToJSON(await temporal.client.workflow.getHandle(workflowId, runId).fetchHistory()));
}

/**
 * The compliance history on a real PostgreSQL over rows stored by the real ingest path, on a clock
 * the test moves: what a snapshot counts per fleet, baseline, classification and tag, once per day
 * however many take it at once, and the history read back by each groupBy. Then the real API, a
 * real worker and the Temporal schedule: the schedule exists once the API has started, its
 * workflow takes the day's snapshot, and a second run of it the same day changes nothing.
 */
describe('compliance history over real rows', () => {
  const T = new Date('2026-11-26T12:00:00Z');
  let fleet: ClockedServices | undefined;
  let database: Database;
  let clock = T;
  let services: ApiServices;
  let insertMachine: ClockedServices['insertMachine'];
  let assess: ClockedServices['assess'];
  let history: ComplianceHistoryService;
  const ids: Record<string, string> = {};
  let productionId = '';

  const openssl = pendingUpdate({ name: 'openssl', availableVersion: '3.0.15-1', classification: 'SECURITY', severity: 'IMPORTANT' });
  const vim = pendingUpdate({ name: 'vim', availableVersion: '2:9.0.1378-2+deb12u1' });

  const snapshot = (trigger: 'SCHEDULE' | 'ON_DEMAND') => takeComplianceSnapshot(database.db, { now: clock, thresholds: services.fleet.thresholds, trigger });
  const storedRows = async (day: string) => (await database.sql`select count(*)::int as n from compliance_history where day = ${day}`)[0]!.n as number;
  const counts = (p: { machines: number; compliant: number; nonCompliant: number; notAssessed: number; overdueMachines: number; overdueUpdates: number; pendingUpdates: number }) => [
    p.machines,
    p.compliant,
    p.nonCompliant,
    p.notAssessed,
    p.overdueMachines,
    p.overdueUpdates,
    p.pendingUpdates,
  ];

  beforeAll(async () => {
    fleet = await startClockedServices(() => clock);
    ({ database, services, insertMachine, assess } = fleet);
    history = new ComplianceHistoryService(services);
    ids.prod1 = await insertMachine('prod-01', ['env:prod']);
    ids.prod2 = await insertMachine('prod-02', ['env:prod']);
    ids.dev = await insertMachine('dev-01', ['env:dev']);
    ids.never = await insertMachine('never-01', []);
    // Security updates approved 7 days after first seen, IMPORTANT due within 10 days.
    const production = await new BaselineService(services).save(null, {
      name: 'production',
      osType: 'LINUX',
      tags: ['env:prod'],
      rules: [{ classifications: ['CRITICAL', 'SECURITY'], severities: [], delayDays: 7 }],
      slaTargets: [{ severity: 'IMPORTANT', days: 10 }],
    });
    productionId = production!.id;
    await assess(ids.prod1, [openssl, vim]);
    await assess(ids.prod2, [vim]);
    await assess(ids.dev, [openssl, vim]);
  });

  afterAll(async () => {
    await fleet?.close();
  });

  it("counts the day's fleet per baseline, classification and tag, and takes the day once", async () => {
    const first = await snapshot('SCHEDULE');
    expect(first).toMatchObject({ day: '2026-11-26', action: 'TAKE', snapshot: { trigger: 'SCHEDULE' } });
    const rows = await storedRows('2026-11-26');
    // Fleet, production, built-in, each classification, env:dev and env:prod.
    expect(rows).toBe(1 + 2 + HISTORY_CLASSIFICATIONS.length + 2);

    // A second run the same day (a retry, another worker) keeps the first.
    clock = new Date(T.getTime() + 3600_000);
    expect(await snapshot('SCHEDULE')).toMatchObject({ action: 'SKIP', snapshot: { takenAt: T } });
    expect(await storedRows('2026-11-26')).toBe(rows);
  });

  it('two workers taking the same day at once: one takes it, the other finds it taken', async () => {
    clock = new Date('2026-11-27T00:05:00Z');
    for (const id of [ids.prod1!, ids.prod2!, ids.dev!]) await assess(id, id === ids.prod2 ? [] : [openssl, vim]);
    const outcomes = await Promise.all([snapshot('SCHEDULE'), snapshot('SCHEDULE'), snapshot('SCHEDULE')]);
    expect(outcomes.map((o) => o.action).sort()).toEqual(['SKIP', 'SKIP', 'TAKE']);
    expect(await storedRows('2026-11-27')).toBe(1 + 2 + HISTORY_CLASSIFICATIONS.length + 2);
  });

  it("an on-demand snapshot replaces the day's with what is true now", async () => {
    clock = new Date('2026-11-27T09:00:00Z');
    await assess(ids.dev!, []);
    for (const id of [ids.prod1!, ids.prod2!]) await assess(id, id === ids.prod2 ? [] : [openssl, vim]);
    expect(await history.takeSnapshot()).toMatchObject({ replaced: true, snapshot: { day: '2026-11-27', trigger: 'ON_DEMAND', takenAt: clock } });
    const [fleet] = (await history.history({ from: '2026-11-27', to: '2026-11-27' })).series;
    expect(counts(fleet!.points[0]!)).toEqual([4, 3, 0, 1, 0, 0, 2]);
  });

  it('overdue updates are counted once the SLA due date has passed', async () => {
    // First seen 26 Nov: approved from 3 Dec, IMPORTANT due by the end of 6 Dec (UTC).
    clock = new Date('2026-12-08T06:00:00Z');
    await assess(ids.prod1!, [openssl, vim]);
    await assess(ids.prod2!, [vim]);
    await assess(ids.dev!, [openssl]);
    expect(await snapshot('SCHEDULE')).toMatchObject({ day: '2026-12-08', action: 'TAKE' });
  });

  it('reads the history back by each groupBy, one point per day with a snapshot', async () => {
    const range = { from: '2026-11-26', to: '2026-12-08' };
    const fleet = await history.history({ ...range, groupBy: 'FLEET' });
    expect(fleet.snapshots.map((s) => [s.day, s.trigger])).toEqual([
      ['2026-11-26', 'SCHEDULE'],
      ['2026-11-27', 'ON_DEMAND'],
      ['2026-12-08', 'SCHEDULE'],
    ]);
    expect(fleet.series.map((s) => [s.key, s.label])).toEqual([['', 'Fleet']]);
    // machines, compliant, non-compliant, not assessed, overdue machines, overdue updates, pending updates
    expect(fleet.series[0]!.points.map((p) => [p.day, ...counts(p), p.compliantShare])).toEqual([
      // prod-01 and prod-02 wait for approval; dev-01 (built-in) misses openssl; never-01 was never assessed.
      ['2026-11-26', 4, 2, 1, 1, 0, 0, 5, 2 / 3],
      ['2026-11-27', 4, 3, 0, 1, 0, 0, 2, 1],
      // openssl approved on prod-01 and past due; dev-01 misses it again.
      ['2026-12-08', 4, 1, 2, 1, 1, 1, 4, 1 / 3],
    ]);

    const byBaseline = await history.history({ ...range, groupBy: 'BASELINE' });
    expect(byBaseline.series.map((s) => [s.key, s.label, s.points.map((p) => [p.day, ...counts(p)])])).toEqual([
      ['', 'Built-in', [
        ['2026-11-26', 2, 0, 1, 1, 0, 0, 2],
        ['2026-11-27', 2, 1, 0, 1, 0, 0, 0],
        ['2026-12-08', 2, 0, 1, 1, 0, 0, 1],
      ]],
      [productionId, 'production', [
        ['2026-11-26', 2, 2, 0, 0, 0, 0, 3],
        ['2026-11-27', 2, 2, 0, 0, 0, 0, 2],
        ['2026-12-08', 2, 1, 1, 0, 1, 1, 3],
      ]],
    ]);

    const byClassification = await history.history({ ...range, groupBy: 'CLASSIFICATION' });
    expect(byClassification.series.map((s) => s.key).sort()).toEqual([...HISTORY_CLASSIFICATIONS].sort());
    const security = byClassification.series.find((s) => s.key === 'SECURITY')!;
    expect(security.points.map((p) => [p.day, ...counts(p)])).toEqual([
      ['2026-11-26', 4, 1, 2, 1, 0, 0, 2],
      ['2026-11-27', 4, 2, 1, 1, 0, 0, 1],
      ['2026-12-08', 4, 1, 2, 1, 1, 1, 2],
    ]);

    const byTag = await history.history({ ...range, groupBy: 'TAG' });
    expect(byTag.series.map((s) => [s.key, s.points.map((p) => [p.day, p.machines, p.nonCompliant])])).toEqual([
      ['env:dev', [['2026-11-26', 1, 1], ['2026-11-27', 1, 0], ['2026-12-08', 1, 1]]],
      ['env:prod', [['2026-11-26', 2, 0], ['2026-11-27', 2, 0], ['2026-12-08', 2, 1]]],
    ]);

    // A range without snapshots has no point; the defaults are the last 30 days.
    expect((await history.history({ from: '2026-11-28', to: '2026-12-07' })).series).toEqual([]);
    expect(await history.history({})).toMatchObject({ from: '2026-11-09', to: '2026-12-08', groupBy: 'FLEET' });
  });

  it("a machine's pending updates show when each was first seen and its due date under the machine's baseline", async () => {
    const machines = new MachineService(services);
    const dueOf = async (id: string) =>
      (await machines.pendingUpdates((await findMachine(database.db, id))!, { offset: 0, limit: 10 })).rows.map((u) => [u.name, u.firstSeenAt?.toISOString(), u.dueAt?.toISOString() ?? null]);
    // production: openssl (IMPORTANT, 10 days from 26 Nov) due at the start of 7 Dec; vim is not approved.
    expect(await dueOf(ids.prod1!)).toEqual([
      ['openssl', T.toISOString(), '2026-12-07T00:00:00.000Z'],
      ['vim', T.toISOString(), null],
    ]);
    // The built-in baseline has no SLA.
    expect(await dueOf(ids.dev!)).toEqual([['openssl', T.toISOString(), null]]);
  });

  it('refuses a bad range with BAD_USER_INPUT, the field and a stable reason', async () => {
    await expect(history.history({ from: '2026-12-08', to: '2026-12-01' })).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'from', reason: 'FROM_AFTER_TO' } });
    await expect(history.history({ from: '2025-01-01', to: '2026-12-01' })).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'to', reason: 'RANGE_TOO_LONG' } });
    await expect(history.history({ groupBy: 'OS' })).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'groupBy', reason: 'UNKNOWN_GROUP_BY' } });
  });
});

describe('the daily snapshot on Temporal, and the API', () => {
  let stack: RunStack;
  let settings: TemporalSettings;
  let database: Database;
  let api: ApiServer;
  let temporal: TemporalClient;

  beforeAll(async () => {
    stack = await startRunStack({ workerIdentity: 'history-worker' });
    ({ settings, database, api, temporal } = stack);
  });

  afterAll(async () => {
    await temporal?.client.schedule.getHandle(scheduleIds.complianceHistory(settings.taskQueue)).delete().catch(() => undefined);
    await stack?.close();
  });

  it('the API makes the schedule; each run of it takes the day once', async () => {
    const schedule = temporal.client.schedule.getHandle(scheduleIds.complianceHistory(settings.taskQueue));
    const description = await waitUntil(() => schedule.describe().catch(() => null), (d) => d !== null, 30_000, 'the compliance history schedule');
    expect(description!.spec.calendars?.[0]).toMatchObject({ hour: [{ start: 0, end: 0, step: 1 }], minute: [{ start: 5, end: 5, step: 1 }] });

    const runsOf = async () => {
      const runs = [];
      for await (const w of temporal.client.workflow.list({ query: `WorkflowId STARTS_WITH "${scheduleIds.complianceSnapshotPrefix(settings.taskQueue)}"` })) runs.push(w);
      return runs;
    };
    await schedule.trigger();
    const [firstRun] = await waitUntil(runsOf, (runs) => runs.length === 1, 30_000, 'the first scheduled snapshot');
    const first = await temporal.client.workflow.getHandle(firstRun!.workflowId, firstRun!.runId).result();
    expect(first.action).toBe('TAKE');
    await recordHistory(temporal, firstRun!.workflowId, firstRun!.runId, 'complianceSnapshot.json');
    await schedule.trigger();
    const runs = await waitUntil(runsOf, (r) => r.length === 2, 30_000, 'the second scheduled snapshot');
    const second = runs.find((r) => r.runId !== firstRun!.runId)!;
    expect(await temporal.client.workflow.getHandle(second.workflowId, second.runId).result()).toEqual({ day: first.day, action: 'SKIP' });
    expect((await database.sql`select day::text, trigger from compliance_snapshots`).map((r) => [r.day, r.trigger])).toEqual([[first.day, 'SCHEDULE']]);
  });

  it('over HTTP: an OPERATOR takes one on demand, a VIEWER may not; bad input is refused with its code', async () => {
    const operator = await tokenFor(database, 'OPERATOR');
    const viewer = await tokenFor(database, 'VIEWER');
    const take = 'mutation { takeComplianceSnapshot { replaced snapshot { day trigger computeMs } } }';
    expect((await graphql(api.url, take, { token: viewer })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const taken = await graphql<{ takeComplianceSnapshot: { replaced: boolean; snapshot: { trigger: string } } }>(api.url, take, { token: operator });
    expect(taken.data?.takeComplianceSnapshot).toMatchObject({ replaced: true, snapshot: { trigger: 'ON_DEMAND' } });

    const read = await graphql<{ complianceHistory: { groupBy: string; series: Array<{ label: string; points: Array<{ machines: number }> }> } }>(
      api.url,
      '{ complianceHistory(groupBy: FLEET) { groupBy series { label points { day machines compliantShare } } } }',
      { token: viewer },
    );
    expect(read.data?.complianceHistory).toMatchObject({ groupBy: 'FLEET', series: [{ label: 'Fleet', points: [{ machines: 0 }] }] });

    const refused = async (args: string) => (await graphql(api.url, `{ complianceHistory(${args}) { from } }`, { token: viewer })).errors?.[0];
    expect(await refused('from: "2026-12-08", to: "2026-12-01"')).toMatchObject({ message: 'from (2026-12-08) is after to (2026-12-01).', extensions: { code: 'BAD_USER_INPUT', field: 'from', reason: 'FROM_AFTER_TO' } });
    expect(await refused('from: "2020-01-01", to: "2026-12-01"')).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'to', reason: 'RANGE_TOO_LONG' } });
    expect(await refused('from: "yesterday"')).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'from', reason: 'BAD_DATE' } });
    // A machine's pending updates with their dates, as the console's machine page asks.
    const machineId = randomUUID();
    await database.sql`insert into machines (id, name, os_type, os_name, os_version, environment, last_seen_at) values (${machineId}, 'web-01', 'LINUX', 'Debian', '12', 'AWS', now())`;
    await storeAssessmentReport(database.sql, machineId, assessmentReport([pendingUpdate({ name: 'curl', classification: 'SECURITY', severity: 'IMPORTANT' })]), { receivedAtMs: Date.now(), agentSentAtMs: Date.now() });
    const page = await graphql<{ machine: { pendingUpdates: { edges: Array<{ node: { name: string; firstSeenAt: string; dueAt: string | null } }> } } }>(
      api.url,
      `{ machine(id: "${machineId}") { pendingUpdates(first: 500) { edges { node { name firstSeenAt dueAt } } } } }`,
      { token: viewer },
    );
    expect(page.errors).toBeUndefined();
    expect(page.data?.machine.pendingUpdates.edges).toEqual([{ node: { name: 'curl', firstSeenAt: expect.stringMatching(/^\d{4}-/), dueAt: null } }]);

    // groupBy is an enum: GraphQL itself refuses a value it does not know, naming the type.
    expect(await refused('groupBy: OS')).toMatchObject({ message: expect.stringContaining('ComplianceHistoryGroupBy'), extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
  });
});

describe('retention: the daily workflow deletes the snapshots older than the setting', () => {
  // 00:05 UTC, when the schedule fires. Keeping 30 days keeps 28 Oct to 26 Nov.
  const now = new Date('2026-11-26T00:05:00Z');
  const RETENTION_DAYS = 30;
  const old = daysBetween('2026-08-01', '2026-10-27');
  const kept = ['2026-10-28', '2026-11-20'];
  let stack: WorkerStack;
  let settings: TemporalSettings;
  let database: Database;
  let temporal: TemporalClient;

  beforeAll(async () => {
    // No API: it would make the daily schedule, and this test starts the workflow itself.
    stack = await startRunStack({ api: false, workerIdentity: 'retention-worker', now: () => now, worker: { historyRetentionDays: RETENTION_DAYS } });
    ({ settings, database, temporal } = stack);
    // Snapshots as the daily workflow leaves them: a row per day, three groups each.
    const days = [...old, ...kept];
    await database.sql`insert into compliance_snapshots ${database.sql(days.map((day) => ({ day, taken_at: `${day}T00:05:00Z`, trigger: 'SCHEDULE', compute_ms: 3 })))}`;
    const groups: Array<[string, string, string]> = [
      ['FLEET', '', 'Fleet'],
      ['CLASSIFICATION', 'CRITICAL', 'CRITICAL'],
      ['TAG', 'env:prod', 'env:prod'],
    ];
    await database.sql`insert into compliance_history ${database.sql(
      days.flatMap((day) =>
        groups.map(([group_by, key, label]) => ({ day, group_by, key, label, machines: 10, compliant: 7, non_compliant: 2, not_assessed: 1, overdue_machines: 1, overdue_updates: 2, pending_updates: 9 })),
      ),
    )}`;
  });

  afterAll(async () => {
    await stack?.close();
  });

  const storedDays = async () => (await database.sql<Array<{ day: string; rows: number }>>`
    select s.day::text as day, (select count(*)::int from compliance_history h where h.day = s.day) as rows from compliance_snapshots s order by s.day`).map((r) => [r.day, r.rows]);

  it('takes the day, then deletes the days before the first kept one in batches, keeping the recent ones whole', async () => {
    expect(old.length).toBeGreaterThan(2 * PRUNE_BATCH_DAYS);
    const workflowId = `compliance-retention-${randomUUID()}`;
    const handle = await temporal.client.workflow.start(complianceSnapshotWorkflow, { taskQueue: settings.taskQueue, workflowId });
    expect(await handle.result()).toEqual({ day: '2026-11-26', action: 'TAKE' });
    const days = await storedDays();
    expect(days.map(([day]) => day)).toEqual([...kept, '2026-11-26']);
    expect(days.slice(0, 2)).toEqual(kept.map((day) => [day, 3]));
    expect((await database.sql`select count(*)::int as n from compliance_history where day < '2026-10-28'`)[0]!.n).toBe(0);
    await recordHistory(temporal, workflowId, handle.firstExecutionRunId, 'complianceSnapshotRetention.json');
  });

  it('0 keeps every snapshot, however old', async () => {
    await database.sql`insert into compliance_snapshots (day, taken_at, trigger, compute_ms) values ('2020-01-01', '2020-01-01T00:05:00Z', 'SCHEDULE', 1)`;
    const keepForever = createComplianceHistoryActivities({ db: database.db, pubsub: undefined as never, workerIdentity: 'test', now: () => now, historyRetentionDays: 0 });
    expect(await keepForever.pruneComplianceHistory()).toEqual({ keptFrom: null, days: 0, rows: 0 });
    expect((await storedDays())[0]).toEqual(['2020-01-01', 0]);
    // The same activity with the setting deletes it.
    const keep30 = createComplianceHistoryActivities({ db: database.db, pubsub: undefined as never, workerIdentity: 'test', now: () => now, historyRetentionDays: RETENTION_DAYS });
    expect(await keep30.pruneComplianceHistory()).toEqual({ keptFrom: '2026-10-28', days: 1, rows: 0 });
    expect((await storedDays()).map(([day]) => day)).toEqual([...kept, '2026-11-26']);
  });
});
