import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServices } from '../../src/api/context.js';
import { BaselineService } from '../../src/api/baselines/baseline.service.js';
import { DeploymentService } from '../../src/api/deployments/deployment.service.js';
import { MachineService } from '../../src/api/machines/machine.service.js';
import type { Database } from '../../src/db/client.js';
import { complianceSummary, findMachine, listMachines } from '../../src/db/machines.js';
import type { BaselineInput } from '../../src/fleet/baselines.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { startClockedServices, type ClockedServices } from '../support/clockedServices.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';

/**
 * Baselines and SLA clocks on a real PostgreSQL, through the real ingest path, on a clock the test
 * moves (never by sleeping): compliance with a baseline changes when its approval delay passes, the
 * overdue counts when a due date does; the SQL of the fleet view agrees with the machine's own
 * verdict at each step.
 */
describe('patch baselines and SLA clocks', () => {
  const T = new Date('2026-11-26T12:00:00Z');
  let fleet: ClockedServices | undefined;
  let database: Database;
  let clock = T;
  let services: ApiServices;
  let insertMachine: ClockedServices['insertMachine'];
  let assess: ClockedServices['assess'];
  let machines: MachineService;
  let baselines: BaselineService;
  const ids: Record<string, string> = {};

  const openssl = pendingUpdate({ name: 'openssl', availableVersion: '3.0.15-1', classification: 'SECURITY', severity: 'IMPORTANT' });
  const curl = pendingUpdate({ name: 'curl', availableVersion: '7.88.1-10+deb12u8', classification: 'SECURITY', severity: 'MODERATE' });
  const vim = pendingUpdate({ name: 'vim', availableVersion: '2:9.0.1378-2+deb12u1' });

  const machine = async (name: string) => (await findMachine(database.db, ids[name.replace(/-01$/, '')]!))!;
  /** The machine's verdict, and the same verdict as the computers view's SQL filter sees it. */
  async function verdict(name: string) {
    const row = await machine(name);
    const own = machines.compliance(row);
    const { rows } = await listMachines(database.db, { filter: { compliance: [own], nameContains: name }, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 10, now: clock, thresholds: services.fleet.thresholds });
    expect(rows.map((r) => r.name), `the SQL twin agrees for ${name}`).toContain(name);
    return own;
  }

  const production: BaselineInput = {
    name: 'production',
    osType: 'LINUX',
    tags: ['env:prod'],
    rules: [{ classifications: ['CRITICAL', 'SECURITY'], severities: [], delayDays: 7 }],
    rejectedPatterns: ['curl'],
    slaTargets: [{ severity: 'IMPORTANT', days: 10 }],
    timeZone: 'Europe/Berlin',
  };

  beforeAll(async () => {
    fleet = await startClockedServices(() => clock);
    ({ database, services, insertMachine, assess } = fleet);
    machines = new MachineService(services);
    baselines = new BaselineService(services);
    ids.prod = await insertMachine('prod-01', ['env:prod']);
    ids.dev = await insertMachine('dev-01', ['env:dev']);
    for (const id of [ids.prod, ids.dev]) await assess(id!, [openssl, curl, vim]);
  });

  afterAll(async () => {
    await fleet?.close();
  });

  it('records when each update was first seen, once, fleet-wide', async () => {
    clock = new Date(T.getTime() + 3600_000);
    await assess(ids.dev!, [openssl, curl, vim]);
    const rows = await database.sql`select name, version, first_seen_at from update_first_seen order by name`;
    expect(rows.map((r) => [r.name, r.version, new Date(r.first_seen_at as string).toISOString()])).toEqual([
      ['curl', curl.availableVersion, T.toISOString()],
      ['openssl', openssl.availableVersion, T.toISOString()],
      ['vim', vim.availableVersion, T.toISOString()],
    ]);
  });

  it('without a baseline nothing changes: missing security updates make a machine NON_COMPLIANT at once', async () => {
    expect(await verdict('prod-01')).toBe('NON_COMPLIANT');
    expect((await machines.baseline(await machine('prod-01'))).id).toBeNull();
    expect(await machines.complianceReason(await machine('prod-01'))).toContain('Missing 2 update(s) approved by baseline "Built-in: critical and security updates"');
  });

  it('a baseline approving security updates after 7 days makes the machine compliant today, and not once the clock passes the 7th day', async () => {
    const created = await baselines.save(null, production);
    expect(created).toMatchObject({ name: 'production', tags: ['env:prod'], timeZone: 'Europe/Berlin' });
    expect((await machine('prod-01')).baselineId).toBe(created!.id);
    expect((await machine('dev-01')).baselineId).toBeNull();

    expect(await verdict('prod-01')).toBe('COMPLIANT');
    expect(await machines.complianceReason(await machine('prod-01'))).toMatch(/^Nothing approved by baseline "production" is missing; 1 pending update\(s\) become approved later, the first openssl on 2026-12-02T23:00:00.000Z/);
    // The other machine keeps the built-in rule.
    expect(await verdict('dev-01')).toBe('NON_COMPLIANT');

    // First seen 26 Nov (Berlin): approved from the start of 3 Dec in Berlin, 2 Dec 23:00 UTC. A
    // fresh assessment at each step keeps the machine assessed (the latest must be under 3 hours old).
    clock = new Date('2026-12-02T22:59:59.999Z');
    await assess(ids.prod!, [openssl, curl, vim]);
    expect(await verdict('prod-01')).toBe('COMPLIANT');
    clock = new Date('2026-12-02T23:00:00.000Z');
    expect(await verdict('prod-01')).toBe('NON_COMPLIANT');
    const reason = await machines.complianceReason(await machine('prod-01'));
    expect(reason).toBe(`Missing 1 update(s) approved by baseline "production": openssl ${openssl.availableVersion}.`);
    // curl is rejected: never counted against the machine.
    expect(reason).not.toContain('curl');
  });

  it('SLA clocks: overdue from the end of the 10th day, counted in the summary and listed by the computers filter', async () => {
    // IMPORTANT, 10 days from 26 Nov in Berlin: due at the start of 7 Dec in Berlin, 6 Dec 23:00 UTC.
    expect((await machine('prod-01')).slaDueDates.map((d) => new Date(d).toISOString())).toEqual(['2026-12-06T23:00:00.000Z']);
    const overdueNames = async () =>
      (await listMachines(database.db, { filter: { overdue: true }, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 10, now: clock, thresholds: services.fleet.thresholds })).rows.map((r) => r.name);

    clock = new Date('2026-12-06T22:59:59.999Z');
    await assess(ids.prod!, [openssl, curl, vim]);
    expect(machines.overdueCount(await machine('prod-01'))).toBe(0);
    expect(await overdueNames()).toEqual([]);
    expect(await complianceSummary(database.db, clock, services.fleet.thresholds)).toMatchObject({ overdueMachines: 0, overdueUpdates: 0 });
    // The computers page counts the overdue filter, alone or with compliance, from the summary's
    // maintained counts: exact at the read, the due date passing with nothing written.
    const counted = async (filter: { overdue: boolean; compliance?: Array<'NON_COMPLIANT'> }) =>
      (await machines.list(filter, { field: 'NAME', direction: 'ASC' }, { offset: 0, limit: 1 })).totalCount;
    const live = (await complianceSummary(database.db, clock, services.fleet.thresholds)).total;
    expect([await counted({ overdue: true }), await counted({ overdue: false }), await counted({ overdue: true, compliance: ['NON_COMPLIANT'] })]).toEqual([0, live, 0]);

    clock = new Date('2026-12-06T23:00:00.000Z');
    expect(machines.overdueCount(await machine('prod-01'))).toBe(1);
    expect(await overdueNames()).toEqual(['prod-01']);
    expect(await complianceSummary(database.db, clock, services.fleet.thresholds)).toMatchObject({ overdueMachines: 1, overdueUpdates: 1 });
    expect([await counted({ overdue: true }), await counted({ overdue: false }), await counted({ overdue: true, compliance: ['NON_COMPLIANT'] })]).toEqual([1, live - 1, 1]);
    expect(await machines.complianceReason(await machine('prod-01'))).toContain('Overdue: openssl (due 2026-12-06T23:00:00.000Z).');
  });

  it('a deployment that installs what the baseline approves: previewed per machine, the rejected package never selected', async () => {
    const deployments = new DeploymentService(services);
    const preview = await deployments.preview({
      input: {
        name: 'baseline patching',
        osType: 'LINUX',
        machineIds: [ids.prod!, ids.dev!],
        classifications: [],
        useBaseline: true,
        includePatterns: ['curl'],
        excludePatterns: [],
        onDemandOnly: true,
        windowMinutes: 120,
        rebootSetting: 'NEVER',
      } as never,
    });
    const byName = Object.fromEntries(preview.machines.map((m) => [m.machine.name, m]));
    expect(byName['prod-01']!.toInstall.map((u) => u.name)).toEqual(['openssl']);
    expect(Object.fromEntries(byName['prod-01']!.notSelected.map((n) => [n.update.name, n.reason]))).toEqual({
      curl: 'rejected by baseline "production" (pattern "curl")',
      vim: 'not approved by baseline "production"',
    });
    // The built-in baseline approves critical and security updates; the include pattern brings curl in there.
    expect(byName['dev-01']!.toInstall.map((u) => u.name).sort()).toEqual(['curl', 'openssl']);
  });

  it('moving a machine to another tag moves it to the built-in baseline; deleting the baseline does the same for the rest', async () => {
    await machines.setTags(ids.prod!, ['env:staging']);
    expect((await machine('prod-01')).baselineId).toBeNull();
    expect((await machine('prod-01')).slaDueDates).toEqual([]);
    await machines.setTags(ids.prod!, ['env:prod']);
    const [row] = await database.sql`select id from baselines`;
    expect((await machine('prod-01')).baselineId).toBe(row!.id);
    expect(await baselines.save(row!.id as string, null)).toMatchObject({ name: 'production' });
    expect((await machine('prod-01')).baselineId).toBeNull();
    expect(await verdict('prod-01')).toBe('NON_COMPLIANT');
  });

  it('overlapping baselines: the higher priority wins, then the one naming more tags', async () => {
    await machines.setTags(ids.prod!, ['env:prod', 'web']);
    const broad = await baselines.save(null, { ...production, name: 'all linux', tags: [], priority: 0 });
    const web = await baselines.save(null, { ...production, name: 'prod web', tags: ['env:prod', 'web'], priority: 0 });
    expect((await machine('prod-01')).baselineId).toBe(web!.id);
    expect((await machine('dev-01')).baselineId).toBe(broad!.id);
    await baselines.save(broad!.id, { ...production, name: 'all linux', tags: [], priority: 5 });
    expect((await machine('prod-01')).baselineId).toBe(broad!.id);
  });
});

/**
 * The advisory's issue date as the clock, on the real ingest path: the verdicts stored for the fleet
 * view, the machine's own reason and the deployment preview (the planner) all count from it, and
 * agree; an update whose first report gave no date counts from when it was first seen.
 */
describe("the advisory's issue date is the clock of stored verdicts, the machine view and the planner alike", () => {
  const T = new Date('2026-11-26T12:00:00Z');
  let fleet: ClockedServices | undefined;
  let database: Database;
  let clock = T;
  let services: ApiServices;
  let assess: ClockedServices['assess'];
  let machines: MachineService;
  let baselines: BaselineService;
  let baselineId: string;
  const ids: Record<string, string> = {};

  // dnf updateinfo: an advisory issued a month ago, one issued two days ago; and one without a date
  // (yum's text output, an older agent).
  const kernel = pendingUpdate({ name: 'kernel', availableVersion: '5.14.0-427.el9', classification: 'SECURITY', severity: 'IMPORTANT', advisoryIssuedAt: '2026-10-27T08:00:00Z' });
  const bash = pendingUpdate({ name: 'bash', availableVersion: '5.1.8-9.el9', classification: 'SECURITY', severity: 'MODERATE', advisoryIssuedAt: '2026-11-24T10:00:00Z' });
  const sudo = pendingUpdate({ name: 'sudo', availableVersion: '1.9.5p2-10.el9', classification: 'SECURITY', severity: 'IMPORTANT' });

  const machine = async (name: string) => (await findMachine(database.db, ids[name]!))!;
  async function storedApprovals() {
    const rows = await database.sql`select name, approved_at from baseline_verdicts where baseline_id = ${baselineId} order by name`;
    return Object.fromEntries(rows.map((r) => [r.name as string, new Date(r.approved_at as string).toISOString()]));
  }
  async function fleetViewCompliance(name: string) {
    const { rows } = await listMachines(database.db, { filter: { nameContains: name }, sort: { field: 'NAME', direction: 'ASC' }, offset: 0, limit: 10, now: clock, thresholds: services.fleet.thresholds });
    return machines.compliance(rows[0]!);
  }
  async function preview(machineId: string) {
    const result = await new DeploymentService(services).preview({
      input: { name: 'baseline patching', osType: 'LINUX', machineIds: [machineId], classifications: [], useBaseline: true, includePatterns: [], excludePatterns: [], onDemandOnly: true, windowMinutes: 120, rebootSetting: 'NEVER' } as never,
    });
    const plan = result.machines[0]!;
    return { toInstall: plan.toInstall.map((u) => u.name), notSelected: Object.fromEntries(plan.notSelected.map((n) => [n.update.name, n.reason])) };
  }

  beforeAll(async () => {
    fleet = await startClockedServices(() => clock);
    ({ database, services, assess } = fleet);
    machines = new MachineService(services);
    baselines = new BaselineService(services);
    const rocky = { name: 'Rocky Linux', version: '9.4' };
    ids['rocky-01'] = await fleet.insertMachine('rocky-01', ['env:prod'], rocky);
    ids['rocky-02'] = await fleet.insertMachine('rocky-02', ['env:prod'], rocky);
    const created = await baselines.save(null, { name: 'production', osType: 'LINUX', tags: ['env:prod'], rules: [{ classifications: ['SECURITY'], severities: [], delayDays: 7 }], slaTargets: [] });
    baselineId = created!.id;
  });

  afterAll(async () => {
    await fleet?.close();
  });

  const expected = {
    // issued 27 Oct: approved from 3 Nov, although first seen today
    kernel: '2026-11-03T00:00:00.000Z',
    // issued 24 Nov: approved from 1 Dec, not 7 days from today
    bash: '2026-12-01T00:00:00.000Z',
    // no date: 7 days from first seen (26 Nov)
    sudo: '2026-12-03T00:00:00.000Z',
  };

  it('an update whose advisory is a month old is approved at once though first seen today; one without a date waits 7 days', async () => {
    await assess(ids['rocky-01']!, [kernel, bash, sudo]);
    // The verdicts the fleet view is computed from, as the update was first seen.
    expect(await storedApprovals()).toEqual(expected);
    expect(await fleetViewCompliance('rocky-01')).toBe('NON_COMPLIANT');
    // The machine's own reason and the planner say the same, from the same clock.
    expect(await machines.complianceReason(await machine('rocky-01'))).toBe(`Missing 1 update(s) approved by baseline "production": kernel ${kernel.availableVersion}.`);
    expect(await preview(ids['rocky-01']!)).toEqual({
      toInstall: ['kernel'],
      notSelected: { bash: `approved by baseline "production" only from ${expected.bash}`, sudo: `approved by baseline "production" only from ${expected.sudo}` },
    });
  });

  it('a later report of the same name and version with another date (or none) does not move its clock: every view still agrees', async () => {
    clock = new Date('2026-12-01T06:00:00Z');
    await assess(ids['rocky-02']!, [{ ...kernel, advisoryIssuedAt: null }, { ...bash, advisoryIssuedAt: '2026-11-30T00:00:00Z' }, { ...sudo, advisoryIssuedAt: '2026-10-01T00:00:00Z' }]);
    await assess(ids['rocky-01']!, [kernel, bash, sudo]);
    expect(await storedApprovals()).toEqual(expected);
    for (const name of ['rocky-01', 'rocky-02']) {
      expect(await fleetViewCompliance(name)).toBe('NON_COMPLIANT');
      expect(await machines.complianceReason(await machine(name))).toBe(`Missing 2 update(s) approved by baseline "production": bash ${bash.availableVersion}, kernel ${kernel.availableVersion}.`);
      expect(await preview(ids[name]!)).toEqual({ toInstall: ['kernel', 'bash'], notSelected: { sudo: `approved by baseline "production" only from ${expected.sudo}` } });
    }
  });

  it('saving the baseline again computes the same verdicts from the same clock', async () => {
    await baselines.save(baselineId, { name: 'production', osType: 'LINUX', tags: ['env:prod'], rules: [{ classifications: ['SECURITY'], severities: [], delayDays: 7 }], slaTargets: [{ severity: 'IMPORTANT', days: 10 }] });
    expect(await storedApprovals()).toEqual(expected);
    // IMPORTANT, 10 days from the kernel advisory's 27 Oct: long overdue; sudo's from first seen, 26 Nov.
    expect((await machine('rocky-01')).slaDueDates.map((d) => new Date(d).toISOString())).toEqual(['2026-11-07T00:00:00.000Z', '2026-12-07T00:00:00.000Z']);
  });
});

describe('baselines over GraphQL', () => {
  let close: () => Promise<void>;
  let url: string;
  let operator: string;
  let viewer: string;

  beforeAll(async () => {
    const started = await startApiOnFreshDatabase();
    close = started.close;
    url = started.api.url;
    operator = await tokenFor(started.database, 'OPERATOR');
    viewer = await tokenFor(started.database, 'VIEWER');
  });

  afterAll(async () => {
    await close();
  });

  const create = (token: string, input: Record<string, unknown>) =>
    graphql<{ createBaseline: { id: string; name: string; tags: string[]; builtIn: boolean } }>(url, 'mutation($input: BaselineInput!) { createBaseline(input: $input) { id name tags builtIn } }', { token, variables: { input } });

  it('an OPERATOR creates one (tags no machine carries are fine); a VIEWER may not', async () => {
    const created = await create(operator, { name: 'prod', osType: 'LINUX', tags: ['nobody-has-this'], rules: [{ classifications: ['SECURITY'], delayDays: 7 }] });
    expect(created.errors).toBeUndefined();
    expect(created.data!.createBaseline).toMatchObject({ name: 'prod', tags: ['nobody-has-this'], builtIn: false });
    expect((await create(viewer, { name: 'other', osType: 'LINUX' })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await create(operator, { name: 'prod', osType: 'LINUX' })).errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', field: 'name' });
  });

  it('refuses a bad pattern with BAD_USER_INPUT and the field', async () => {
    const response = await create(operator, { name: 'bad', osType: 'LINUX', rejectedPatterns: ['openssl', 'not a package'] });
    expect(response.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'rejectedPatterns[1]' });
    expect(response.errors?.[0]?.message).toContain('is not a package pattern');
  });
});
