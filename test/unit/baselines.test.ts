import { describe, expect, it } from 'vitest';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import {
  assignedBaseline,
  baselineCompliance,
  baselineDecider,
  builtInBaseline,
  clockedUpdate,
  explainCompliance,
  machineBaselineState,
  overdueCount,
  updateVerdict,
  validateBaselineInput,
  type Baseline,
  type ClockedUpdate,
  type UpdateClockInputs,
} from '../../src/fleet/baselines.js';
import { compliance, DEFAULT_THRESHOLDS } from '../../src/fleet/compliance.js';
import { planMachine } from '../../src/fleet/planning.js';

const at = (iso: string) => new Date(iso);

function baseline(over: Partial<Baseline> = {}): Baseline {
  return {
    id: 'b1',
    name: 'production',
    osType: 'LINUX',
    tags: [],
    priority: 0,
    rules: [{ classifications: ['SECURITY', 'CRITICAL'], severities: [], delayDays: 7 }],
    approvedPatterns: [],
    rejectedPatterns: [],
    slaTargets: [
      { severity: 'CRITICAL', days: 7 },
      { severity: 'IMPORTANT', days: 15 },
    ],
    timeZone: 'UTC',
    ...over,
  };
}

function update(over: Partial<ClockedUpdate> = {}): ClockedUpdate {
  return { name: 'openssl', availableVersion: '3.0.2-1', classification: 'SECURITY', severity: null, firstSeenAt: at('2026-11-02T10:00:00Z'), ...over };
}

describe('approval by rule: the start of the Nth local day after the clock', () => {
  // [what, time zone, first seen (UTC), delay days, approved from (UTC)]
  const cases: Array<[string, string, string, number, string]> = [
    ['UTC, 7 days', 'UTC', '2026-11-02T10:00:00Z', 7, '2026-11-09T00:00:00.000Z'],
    ['0 days: from the start of the day it was first seen', 'UTC', '2026-11-02T10:00:00Z', 0, '2026-11-02T00:00:00.000Z'],
    ['just before midnight UTC counts on that day', 'UTC', '2026-11-02T23:59:59Z', 1, '2026-11-03T00:00:00.000Z'],
    ['Berlin: 23:30 UTC is already the next local day', 'Europe/Berlin', '2026-11-02T23:30:00Z', 7, '2026-11-09T23:00:00.000Z'],
    ['New York: 03:00 UTC is still the previous local day', 'America/New_York', '2026-11-03T03:00:00Z', 1, '2026-11-03T05:00:00.000Z'],
    ['across the end of DST (New York, 1 Nov 2026): 7 calendar days, local midnight now at 05:00 UTC (04:00 before)', 'America/New_York', '2026-10-30T12:00:00Z', 7, '2026-11-06T05:00:00.000Z'],
    ['before the end of DST, local midnight is 04:00 UTC', 'America/New_York', '2026-10-29T12:00:00Z', 1, '2026-10-30T04:00:00.000Z'],
    ['Tokyo, ahead of UTC', 'Asia/Tokyo', '2026-11-02T16:00:00Z', 1, '2026-11-03T15:00:00.000Z'],
  ];
  it.each(cases)('%s', (_what, timeZone, firstSeen, delayDays, expected) => {
    const verdict = updateVerdict(baseline({ timeZone, rules: [{ classifications: ['SECURITY'], severities: [], delayDays }] }), update({ firstSeenAt: at(firstSeen) }));
    expect(verdict).toMatchObject({ status: 'APPROVED', by: 'rule 1' });
    expect(verdict.status === 'APPROVED' && verdict.approvedAt.toISOString()).toBe(expected);
  });

  it("counts from the advisory's issue date when the metadata gives one", () => {
    const verdict = updateVerdict(baseline(), update({ advisoryIssuedAt: at('2026-10-20T08:00:00Z') }));
    expect(verdict.status === 'APPROVED' && verdict.approvedAt.toISOString()).toBe('2026-10-27T00:00:00.000Z');
  });
});

describe("the clock: the advisory's issue date when the metadata gives one, else first seen", () => {
  // A production baseline: security updates 7 days after their clock, critical ones due in 7 days.
  const b = baseline({ timeZone: 'Europe/Berlin' });
  const today = at('2026-12-02T09:30:00Z');
  // [what, advisory issue date (null: none), approved from, due at (CRITICAL)]
  const cases: Array<[string, string | null, string, string]> = [
    ['dnf advisory issued a month ago, first seen today: approved at once, already overdue', '2026-11-02T00:00:00Z', '2026-11-08T23:00:00.000Z', '2026-11-09T23:00:00.000Z'],
    ['zypper patch issued 8 days ago (its issue-date time_t), first seen today: approved at once', '2026-11-24T06:00:00Z', '2026-11-30T23:00:00.000Z', '2026-12-01T23:00:00.000Z'],
    ['issued 5 days ago: waits 2 more days, not the 7 from first seen', '2026-11-27T12:00:00Z', '2026-12-03T23:00:00.000Z', '2026-12-04T23:00:00.000Z'],
    ['issued late in the Berlin day (23:30 local): that day counts', '2026-11-25T22:30:00Z', '2026-12-01T23:00:00.000Z', '2026-12-02T23:00:00.000Z'],
    ['no issue date (apt, yum text output): 7 days from first seen today', null, '2026-12-08T23:00:00.000Z', '2026-12-09T23:00:00.000Z'],
    ['an issue date after the first sighting counts as the first sighting: never approved later than first seen would', '2026-12-04T00:00:00Z', '2026-12-08T23:00:00.000Z', '2026-12-09T23:00:00.000Z'],
  ];
  it.each(cases)('%s', (_what, issued, approvedFrom, dueAt) => {
    const clocks = new Map<string, UpdateClockInputs>([['openssl=3.0.7-28.el9_4', { firstSeenAt: today, advisoryIssuedAt: issued === null ? null : at(issued) }]]);
    const u = clockedUpdate({ name: 'openssl', availableVersion: '3.0.7-28.el9_4', classification: 'SECURITY', severity: 'CRITICAL' }, clocks, today);
    const verdict = updateVerdict(b, u);
    expect(verdict.status === 'APPROVED' && [verdict.approvedAt.toISOString(), verdict.dueAt?.toISOString()]).toEqual([approvedFrom, dueAt]);
    const approvedNow = new Date(approvedFrom).getTime() <= today.getTime();
    expect(machineBaselineState(b, [u]).nonCompliantFrom!.getTime() <= today.getTime()).toBe(approvedNow);
    expect(explainCompliance(b, [u], today).missingApproved.length).toBe(approvedNow ? 1 : 0);
  });

  it('the built-in baseline approves at once whatever the issue date, as the fleet view counts it', () => {
    const builtIn = builtInBaseline('LINUX');
    for (const issued of [at('2020-01-01T00:00:00Z'), at('2026-12-03T00:00:00Z'), null]) {
      const clocks = new Map<string, UpdateClockInputs>([['openssl=2', { firstSeenAt: today, advisoryIssuedAt: issued }]]);
      const reported: PendingUpdate = { name: 'openssl', installedVersion: '1', availableVersion: '2', arch: null, classification: 'CRITICAL', severity: 'CRITICAL', advisoryIds: [], cveIds: [], rebootSuggested: false, repository: null };
      expect(baselineDecider(builtIn, clocks, today)(reported)).toMatchObject({ approved: true });
    }
  });

  it('the planner counts from the recorded clock, not from the date a report carries', () => {
    // The clock inputs are fleet-wide (what the first report of this name and version said); a
    // later report's own date does not move this machine's decision away from the stored verdicts'.
    const clocks = new Map<string, UpdateClockInputs>([['openssl=2', { firstSeenAt: today, advisoryIssuedAt: at('2026-11-01T00:00:00Z') }]]);
    const reported: PendingUpdate = { name: 'openssl', installedVersion: '1', availableVersion: '2', arch: null, classification: 'SECURITY', severity: null, advisoryIds: [], cveIds: [], rebootSuggested: false, repository: null, advisoryIssuedAt: '2026-12-01T00:00:00Z' };
    expect(baselineDecider(b, clocks, today)(reported)).toMatchObject({ approved: true });
    expect(baselineDecider(b, new Map(), today)(reported)).toMatchObject({ approved: false, reason: 'approved by baseline "production" only from 2026-12-08T23:00:00.000Z' });
  });
});

describe('SLA due dates: by the end of the Nth local day after the clock', () => {
  const cases: Array<[string, string, ClockedUpdate['severity'], string | null]> = [
    ['critical, 7 days, UTC', 'UTC', 'CRITICAL', '2026-11-10T00:00:00.000Z'],
    ['important, 15 days, UTC', 'UTC', 'IMPORTANT', '2026-11-18T00:00:00.000Z'],
    ['moderate has no target', 'UTC', 'MODERATE', null],
    ['no severity has no SLA', 'UTC', null, null],
    ['critical, 7 days, Berlin', 'Europe/Berlin', 'CRITICAL', '2026-11-09T23:00:00.000Z'],
  ];
  it.each(cases)('%s', (_what, timeZone, severity, expected) => {
    const verdict = updateVerdict(baseline({ timeZone }), update({ severity }));
    expect(verdict.status).toBe('APPROVED');
    expect(verdict.status === 'APPROVED' && (verdict.dueAt?.toISOString() ?? null)).toBe(expected);
  });

  it('is overdue from the due instant on, not a millisecond before', () => {
    const state = machineBaselineState(baseline(), [update({ severity: 'CRITICAL' })]);
    expect(state.dueDates.map((d) => d.toISOString())).toEqual(['2026-11-10T00:00:00.000Z']);
    expect(overdueCount(state.dueDates, at('2026-11-09T23:59:59.999Z'))).toBe(0);
    expect(overdueCount(state.dueDates, at('2026-11-10T00:00:00.000Z'))).toBe(1);
  });
});

describe('patterns', () => {
  it('rejected wins over an approved pattern and over every rule', () => {
    const b = baseline({ approvedPatterns: ['openssl'], rejectedPatterns: ['openssl=3.0.2-1'] });
    expect(updateVerdict(b, update())).toEqual({ status: 'REJECTED', pattern: 'openssl=3.0.2-1' });
    expect(updateVerdict(b, update({ availableVersion: '3.0.3-1' }))).toMatchObject({ status: 'APPROVED', by: 'approved pattern "openssl"' });
  });

  it('an approved pattern approves an update no rule approves, from its first day', () => {
    const verdict = updateVerdict(baseline({ approvedPatterns: ['vim*'] }), update({ name: 'vim-tiny', classification: 'OTHER' }));
    expect(verdict.status === 'APPROVED' && verdict.approvedAt.toISOString()).toBe('2026-11-02T00:00:00.000Z');
    expect(updateVerdict(baseline(), update({ name: 'vim-tiny', classification: 'OTHER' }))).toEqual({ status: 'NOT_APPROVED' });
  });

  it('KB ids on Windows, case-insensitively', () => {
    const b = baseline({ osType: 'WINDOWS', rejectedPatterns: ['KB5031356'] });
    expect(updateVerdict(b, update({ name: 'kb5031356', classification: 'SECURITY' })).status).toBe('REJECTED');
  });

  it('rules filter by severity; the earliest matching rule wins', () => {
    const b = baseline({
      rules: [
        { classifications: ['SECURITY'], severities: [], delayDays: 14 },
        { classifications: [], severities: ['CRITICAL'], delayDays: 2 },
      ],
    });
    expect(updateVerdict(b, update({ severity: 'CRITICAL' }))).toMatchObject({ by: 'rule 2' });
    expect(updateVerdict(b, update({ severity: 'LOW' }))).toMatchObject({ by: 'rule 1' });
  });
});

describe('compliance with the baseline', () => {
  const thresholds = DEFAULT_THRESHOLDS;
  const assessed = at('2026-11-12T11:00:00Z');

  it('is COMPLIANT until the approval of a missing update passes, NON_COMPLIANT from that instant', () => {
    const state = machineBaselineState(baseline(), [update(), update({ name: 'vim', classification: 'OTHER' })]);
    expect(state.nonCompliantFrom?.toISOString()).toBe('2026-11-09T00:00:00.000Z');
    const verdictAt = (now: string) => baselineCompliance({ osType: 'LINUX', lastAssessedAt: at(now), nonCompliantFrom: state.nonCompliantFrom }, at(now), thresholds);
    expect(verdictAt('2026-11-08T23:59:59.999Z')).toBe('COMPLIANT');
    expect(verdictAt('2026-11-09T00:00:00.000Z')).toBe('NON_COMPLIANT');
  });

  it('is NOT_ASSESSED without a recent assessment, as before', () => {
    expect(baselineCompliance({ osType: 'LINUX', lastAssessedAt: assessed, nonCompliantFrom: null }, at('2026-11-12T14:00:01Z'), thresholds)).toBe('NOT_ASSESSED');
  });

  it('the reason names the missing approved updates and the overdue ones', () => {
    const explained = explainCompliance(baseline(), [update({ severity: 'CRITICAL' }), update({ name: 'sudo', availableVersion: '1.9', firstSeenAt: at('2026-11-11T00:00:00Z') })], assessed);
    expect(explained.reason).toBe(
      'Missing 1 update(s) approved by baseline "production": openssl 3.0.2-1. Overdue: openssl (due 2026-11-10T00:00:00.000Z).',
    );
    expect(explained.upcoming.map((u) => u.name)).toEqual(['sudo']);
  });

  it('the built-in baseline is the rule compliance had before baselines, whatever the clock', () => {
    const built = builtInBaseline('LINUX');
    const now = at('2026-11-25T12:00:00Z');
    const lists: Array<Array<Partial<ClockedUpdate>>> = [[], [{ classification: 'OTHER' }], [{ classification: 'SECURITY' }], [{ classification: 'CRITICAL', severity: 'LOW' }], [{ classification: 'OTHER' }, { name: 'x', classification: 'SECURITY' }]];
    for (const list of lists) {
      // First seen a moment ago, or long ago: the same verdict.
      for (const firstSeenAt of [now, at('2020-01-01T00:00:00Z')]) {
        const updates = list.map((u) => update({ firstSeenAt, ...u }));
        const state = machineBaselineState(built, updates);
        const before = compliance(
          { osType: 'LINUX', lastAssessedAt: now, criticalCount: updates.filter((u) => u.classification === 'CRITICAL').length, securityCount: updates.filter((u) => u.classification === 'SECURITY').length },
          now,
        );
        expect(baselineCompliance({ osType: 'LINUX', lastAssessedAt: now, nonCompliantFrom: state.nonCompliantFrom }, now, DEFAULT_THRESHOLDS)).toBe(before);
        expect(state.dueDates).toEqual([]);
      }
    }
  });
});

describe('assignment by tag', () => {
  const b = (name: string, tags: string[], priority = 0, osType: 'LINUX' | 'WINDOWS' = 'LINUX') => ({ name, tags, priority, osType });
  const machine = { osType: 'LINUX' as const, tags: ['env:prod', 'web'] };

  it('needs every tag of the baseline and the same OS type; an empty list reaches every machine of its OS type', () => {
    expect(assignedBaseline(machine, [b('db', ['env:prod', 'db'])])).toBeNull();
    expect(assignedBaseline(machine, [b('win', [], 0, 'WINDOWS')])).toBeNull();
    expect(assignedBaseline(machine, [b('all', [])])?.name).toBe('all');
  });

  it('precedence: higher priority, then more tags, then name', () => {
    expect(assignedBaseline(machine, [b('prod', ['env:prod'], 1), b('web', ['env:prod', 'web'], 0)])?.name).toBe('prod');
    expect(assignedBaseline(machine, [b('prod', ['env:prod']), b('web', ['env:prod', 'web'])])?.name).toBe('web');
    expect(assignedBaseline(machine, [b('zeta', ['web']), b('alpha', ['env:prod'])])?.name).toBe('alpha');
  });
});

describe('deployments under a baseline', () => {
  const pending = (name: string, classification: PendingUpdate['classification']): PendingUpdate => ({
    name,
    installedVersion: '1',
    availableVersion: '2',
    arch: null,
    classification,
    severity: null,
    advisoryIds: [],
    cveIds: [],
    rebootSuggested: false,
    repository: null,
  });
  const firstSeen = new Map<string, UpdateClockInputs>([
    ['openssl=2', { firstSeenAt: at('2026-11-01T10:00:00Z'), advisoryIssuedAt: null }],
    ['sudo=2', { firstSeenAt: at('2026-11-10T10:00:00Z'), advisoryIssuedAt: null }],
    ['curl=2', { firstSeenAt: at('2026-11-01T10:00:00Z'), advisoryIssuedAt: null }],
  ]);
  const b = baseline({ rejectedPatterns: ['curl'] });
  const now = at('2026-11-12T12:00:00Z');
  const plan = (selection: { classifications: PendingUpdate['classification'][]; useBaseline?: boolean }, includePatterns: string[] = []) =>
    planMachine({
      pending: [pending('openssl', 'SECURITY'), pending('sudo', 'SECURITY'), pending('curl', 'SECURITY'), pending('vim', 'OTHER')],
      selection: { ...selection, includePatterns, excludePatterns: [] },
      backend: 'apt',
      osType: 'LINUX',
      windowSeconds: 3600,
      rebootSetting: 'NEVER',
      rebootPending: false,
      baseline: baselineDecider(b, firstSeen, now),
    });

  it('"install what the baseline approves" installs what is approved now, and says why the rest is not', () => {
    const p = plan({ classifications: [], useBaseline: true });
    expect(p.toInstall.map((u) => u.name)).toEqual(['openssl']);
    expect(Object.fromEntries(p.notSelected.map((n) => [n.update.name, n.reason]))).toEqual({
      sudo: 'approved by baseline "production" only from 2026-11-17T00:00:00.000Z',
      curl: 'rejected by baseline "production" (pattern "curl")',
      vim: 'not approved by baseline "production"',
    });
  });

  it('a rejected update is never installed, by a deployment of classifications or one that includes it by name', () => {
    const p = plan({ classifications: ['SECURITY', 'OTHER'] }, ['curl']);
    expect(p.toInstall.map((u) => u.name).sort()).toEqual(['openssl', 'sudo', 'vim']);
    expect(p.notSelected.map((n) => n.update.name)).toEqual(['curl']);
  });
});

describe('baseline input', () => {
  it('normalises a valid baseline', () => {
    const result = validateBaselineInput({
      name: ' production ',
      osType: 'LINUX',
      tags: ['web', 'env:prod', 'web'],
      rules: [{ classifications: ['SECURITY', 'CRITICAL'], severities: [], delayDays: 7 }],
      rejectedPatterns: ['openssl=3.0.2-1', 'openssl=3.0.2-1'],
      slaTargets: [{ severity: 'IMPORTANT', days: 15 }, { severity: 'CRITICAL', days: 7 }],
      timeZone: 'europe/berlin',
    });
    expect(result).toEqual({
      ok: true,
      baseline: {
        name: 'production',
        osType: 'LINUX',
        tags: ['env:prod', 'web'],
        priority: 0,
        rules: [{ classifications: ['CRITICAL', 'SECURITY'], severities: [], delayDays: 7 }],
        approvedPatterns: [],
        rejectedPatterns: ['openssl=3.0.2-1'],
        slaTargets: [{ severity: 'CRITICAL', days: 7 }, { severity: 'IMPORTANT', days: 15 }],
        timeZone: 'Europe/Berlin',
      },
    });
  });

  const bad: Array<[string, Parameters<typeof validateBaselineInput>[0], string]> = [
    ['a bad pattern', { name: 'b', osType: 'LINUX', rejectedPatterns: ['ok', 'open ssl'] }, 'rejectedPatterns[1]'],
    ['a KB pattern on Windows that is not one', { name: 'b', osType: 'WINDOWS', approvedPatterns: ['openssl'] }, 'approvedPatterns[0]'],
    ['a Windows classification on Linux', { name: 'b', osType: 'LINUX', rules: [{ classifications: ['TOOLS'], severities: [], delayDays: 0 }] }, 'rules[0].classifications'],
    ['a negative delay', { name: 'b', osType: 'LINUX', rules: [{ classifications: [], severities: [], delayDays: -1 }] }, 'rules[0].delayDays'],
    ['a target twice', { name: 'b', osType: 'LINUX', slaTargets: [{ severity: 'LOW', days: 3 }, { severity: 'LOW', days: 4 }] }, 'slaTargets[1].severity'],
    ['an SLA of 0 days', { name: 'b', osType: 'LINUX', slaTargets: [{ severity: 'LOW', days: 0 }] }, 'slaTargets[0].days'],
    ['an unknown time zone', { name: 'b', osType: 'LINUX', timeZone: 'Mars/Olympus' }, 'timeZone'],
    ['a bad tag', { name: 'b', osType: 'LINUX', tags: ['no spaces'] }, 'tags'],
    ['an empty name', { name: ' ', osType: 'LINUX' }, 'name'],
  ];
  it.each(bad)('refuses %s, naming the field', (_what, input, field) => {
    expect(validateBaselineInput(input)).toMatchObject({ ok: false, field });
  });
});
