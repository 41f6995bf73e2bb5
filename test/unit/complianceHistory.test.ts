import { describe, expect, it } from 'vitest';
import {
  BUILT_IN_KEY,
  HISTORY_CLASSIFICATIONS,
  MAX_HISTORY_DAYS,
  MAX_TAG_GROUPS,
  DEFAULT_HISTORY_RETENTION_DAYS,
  complianceSnapshotRows,
  compliantShare,
  daysBetween,
  historyQuery,
  historySeries,
  parseDay,
  retentionCutoff,
  snapshotAction,
  snapshotDay,
  type ComplianceCell,
  type HistoryRow,
} from '../../src/fleet/complianceHistory.js';

function cell(over: Partial<ComplianceCell>): ComplianceCell {
  return { kind: 'FLEET', key: '', compliance: 'COMPLIANT', machines: 0, overdueMachines: 0, overdueUpdates: 0, classes: {}, ...over };
}

const row = (rows: HistoryRow[], groupBy: HistoryRow['groupBy'], key: string) => rows.find((r) => r.groupBy === groupBy && r.key === key);

describe('complianceSnapshotRows', () => {
  // A fleet of 10: 6 compliant, 3 non-compliant (2 of them overdue with 5 overdue updates), 1 not assessed.
  const fleetCells: ComplianceCell[] = [
    cell({ compliance: 'COMPLIANT', machines: 6, classes: { OTHER: { updates: 12, machines: 4 } } }),
    cell({ compliance: 'NON_COMPLIANT', machines: 3, overdueMachines: 2, overdueUpdates: 5, classes: { CRITICAL: { updates: 2, machines: 1 }, SECURITY: { updates: 7, machines: 3 }, OTHER: { updates: 3, machines: 2 } } }),
    cell({ compliance: 'NOT_ASSESSED', machines: 1, classes: { SECURITY: { updates: 4, machines: 1 } } }),
  ];
  const baselineCells: ComplianceCell[] = [
    cell({ kind: 'BASELINE', key: 'b-prod', compliance: 'COMPLIANT', machines: 2 }),
    cell({ kind: 'BASELINE', key: 'b-prod', compliance: 'NON_COMPLIANT', machines: 3, overdueMachines: 2, overdueUpdates: 5 }),
    cell({ kind: 'BASELINE', key: BUILT_IN_KEY, compliance: 'COMPLIANT', machines: 4 }),
    cell({ kind: 'BASELINE', key: BUILT_IN_KEY, compliance: 'NOT_ASSESSED', machines: 1 }),
  ];
  const tagCells: ComplianceCell[] = [
    cell({ kind: 'TAG', key: 'env:prod', compliance: 'NON_COMPLIANT', machines: 3, overdueMachines: 2, overdueUpdates: 5 }),
    cell({ kind: 'TAG', key: 'env:prod', compliance: 'COMPLIANT', machines: 1 }),
  ];
  const rows = complianceSnapshotRows([...fleetCells, ...baselineCells, ...tagCells], [{ classification: 'SECURITY', machines: 2, updates: 4 }, { classification: 'CRITICAL', machines: 1, updates: 1 }], new Map([
    ['b-prod', 'production'],
    ['b-empty', 'staging'],
  ]));

  it.each([
    // groupBy, key, label, machines, compliant, nonCompliant, notAssessed, overdueMachines, overdueUpdates, pendingUpdates
    ['FLEET', '', 'Fleet', 10, 6, 3, 1, 2, 5, 28],
    ['BASELINE', 'b-prod', 'production', 5, 2, 3, 0, 2, 5, 0],
    ['BASELINE', 'b-empty', 'staging', 0, 0, 0, 0, 0, 0, 0],
    ['BASELINE', BUILT_IN_KEY, 'Built-in', 5, 4, 0, 1, 0, 0, 0],
    // Exposure per classification among the 9 assessed machines; the not-assessed one counts its updates but not in exposure.
    ['CLASSIFICATION', 'CRITICAL', 'CRITICAL', 10, 8, 1, 1, 1, 1, 2],
    ['CLASSIFICATION', 'SECURITY', 'SECURITY', 10, 6, 3, 1, 2, 4, 11],
    ['CLASSIFICATION', 'OTHER', 'OTHER', 10, 3, 6, 1, 0, 0, 15],
    ['CLASSIFICATION', 'TOOLS', 'TOOLS', 10, 9, 0, 1, 0, 0, 0],
    ['TAG', 'env:prod', 'env:prod', 4, 1, 3, 0, 2, 5, 0],
  ] as const)('%s %s: %s', (groupBy, key, label, machines, compliant, nonCompliant, notAssessed, overdueMachines, overdueUpdates, pendingUpdates) => {
    expect(row(rows, groupBy, key)).toEqual({ groupBy, key, label, machines, compliant, nonCompliant, notAssessed, overdueMachines, overdueUpdates, pendingUpdates });
  });

  it('keeps a row for every classification and every baseline, in a stable order', () => {
    expect(rows.filter((r) => r.groupBy === 'CLASSIFICATION').map((r) => r.key)).toEqual([...HISTORY_CLASSIFICATIONS]);
    expect(rows.map((r) => `${r.groupBy}:${r.label}`).slice(0, 4)).toEqual(['FLEET:Fleet', 'BASELINE:Built-in', 'BASELINE:production', 'BASELINE:staging']);
  });

  it('leaves the built-in baseline out when no machine has it, and names a baseline deleted meanwhile', () => {
    const only = complianceSnapshotRows([cell({ kind: 'BASELINE', key: 'gone', machines: 1 })], [], new Map());
    expect(only.filter((r) => r.groupBy === 'BASELINE')).toEqual([expect.objectContaining({ key: 'gone', label: 'Deleted baseline', machines: 1 })]);
  });

  it('an empty fleet still has its fleet and classification rows, at zero', () => {
    const empty = complianceSnapshotRows([], [], new Map());
    expect(empty).toHaveLength(1 + HISTORY_CLASSIFICATIONS.length);
    expect(empty.every((r) => r.machines === 0 && r.compliant === 0)).toBe(true);
  });

  it(`keeps the ${MAX_TAG_GROUPS} tags most machines carry`, () => {
    const many = Array.from({ length: MAX_TAG_GROUPS + 5 }, (_, i) => cell({ kind: 'TAG', key: `t${String(i).padStart(3, '0')}`, machines: i + 1 }));
    const tags = complianceSnapshotRows(many, [], new Map()).filter((r) => r.groupBy === 'TAG');
    expect(tags).toHaveLength(MAX_TAG_GROUPS);
    expect(tags.map((t) => t.key)).not.toContain('t000');
    expect(tags.map((t) => t.key)).toContain(`t${MAX_TAG_GROUPS + 4}`);
  });
});

describe('the day of a snapshot', () => {
  it.each([
    ['2026-12-02T00:00:00.000Z', '2026-12-02'],
    ['2026-12-02T23:59:59.999Z', '2026-12-02'],
    // A snapshot taken at 00:30 in Berlin (23:30 UTC) belongs to the UTC day before.
    ['2026-12-02T23:30:00.000+00:00', '2026-12-02'],
    ['2026-12-03T00:30:00.000+01:00', '2026-12-02'],
  ])('%s → %s', (at, day) => expect(snapshotDay(new Date(at))).toBe(day));

  it.each([
    ['SCHEDULE', false, 'TAKE'],
    ['SCHEDULE', true, 'SKIP'],
    ['ON_DEMAND', false, 'TAKE'],
    ['ON_DEMAND', true, 'REPLACE'],
  ] as const)('%s with the day taken %s: %s', (trigger, taken, action) => expect(snapshotAction(trigger, taken)).toBe(action));
});

describe('historyQuery', () => {
  const now = new Date('2026-12-02T10:00:00Z');

  it.each([
    [{}, { from: '2026-11-03', to: '2026-12-02', groupBy: 'FLEET' }],
    [{ to: '2026-03-01' }, { from: '2026-01-31', to: '2026-03-01', groupBy: 'FLEET' }],
    [{ from: '2026-12-02', to: '2026-12-02', groupBy: 'TAG' }, { from: '2026-12-02', to: '2026-12-02', groupBy: 'TAG' }],
    [{ from: '2024-01-01', to: '2025-01-01', groupBy: 'BASELINE' }, { from: '2024-01-01', to: '2025-01-01', groupBy: 'BASELINE' }],
    // A range in the future is fine: it has no points.
    [{ from: '2027-01-01', to: '2027-01-05', groupBy: 'CLASSIFICATION' }, { from: '2027-01-01', to: '2027-01-05', groupBy: 'CLASSIFICATION' }],
  ])('%j → %j', (input, query) => expect(historyQuery(input, now)).toEqual({ query }));

  it.each([
    [{ groupBy: 'OS' }, 'groupBy', 'UNKNOWN_GROUP_BY', 'groupBy must be one of FLEET, BASELINE, CLASSIFICATION, TAG; got "OS".'],
    [{ from: '2026-02-30' }, 'from', 'BAD_DATE', 'from must be a date as YYYY-MM-DD; got "2026-02-30".'],
    [{ to: '2026-12-02T00:00:00Z' }, 'to', 'BAD_DATE', 'to must be a date as YYYY-MM-DD; got "2026-12-02T00:00:00Z".'],
    [{ from: '2026-12-03', to: '2026-12-02' }, 'from', 'FROM_AFTER_TO', 'from (2026-12-03) is after to (2026-12-02).'],
    // Without from, a to far back is fine; with a from after it, not.
    [{ from: '2026-12-01' , to: '2026-11-30' }, 'from', 'FROM_AFTER_TO', 'from (2026-12-01) is after to (2026-11-30).'],
    [{ from: '2024-01-01', to: '2025-01-02' }, 'to', 'RANGE_TOO_LONG', `from 2024-01-01 to 2025-01-02 is 368 days; at most ${MAX_HISTORY_DAYS} days per query: ask in parts.`],
  ])('%j is refused at %s (%s)', (input, field, reason, message) => expect(historyQuery(input, now)).toEqual({ problem: { field, reason, message } }));

  it('parses calendar days only', () => {
    expect(parseDay('2028-02-29')?.toISOString()).toBe('2028-02-29T00:00:00.000Z');
    expect(parseDay('2027-02-29')).toBeNull();
    expect(parseDay('2027-2-1')).toBeNull();
    expect(daysBetween('2026-12-30', '2027-01-02')).toEqual(['2026-12-30', '2026-12-31', '2027-01-01', '2027-01-02']);
  });
});

describe('historySeries', () => {
  const counts = { machines: 4, compliant: 3, nonCompliant: 1, notAssessed: 0, overdueMachines: 0, overdueUpdates: 0, pendingUpdates: 2 };
  it('one series per group, oldest first, labelled by its latest day, with gaps where no snapshot was taken', () => {
    const series = historySeries([
      { day: '2026-12-03', groupBy: 'BASELINE', key: 'b1', label: 'prod', ...counts },
      { day: '2026-12-01', groupBy: 'BASELINE', key: 'b1', label: 'production', ...counts, compliant: 1, nonCompliant: 3 },
      { day: '2026-12-01', groupBy: 'BASELINE', key: '', label: 'Built-in', ...counts },
    ]);
    expect(series.map((s) => [s.key, s.label, s.points.map((p) => p.day)])).toEqual([
      ['', 'Built-in', ['2026-12-01']],
      ['b1', 'prod', ['2026-12-01', '2026-12-03']],
    ]);
    expect(series[1]!.points.map(compliantShare)).toEqual([0.25, 0.75]);
  });

  it('a point with no assessed machine has no share', () => expect(compliantShare({ compliant: 0, nonCompliant: 0 })).toBeNull());
});

describe('retention', () => {
  it.each([
    // The first day kept: today and the days before it, as many as kept in all, on UTC days as snapshots are dated.
    ['2026-12-02T00:05:00Z', 400, '2025-10-29'],
    ['2026-12-02T23:59:59Z', 400, '2025-10-29'],
    ['2026-12-03T00:00:00Z', 400, '2025-10-30'],
    ['2026-03-01T12:00:00Z', 1, '2026-03-01'],
    ['2026-03-01T12:00:00Z', 2, '2026-02-28'],
    ['2028-03-01T12:00:00Z', 2, '2028-02-29'],
    ['2026-12-02T00:05:00Z', 30, '2026-11-03'],
  ])('at %s keeping %i days, keeps from %s', (at, days, first) => {
    const from = retentionCutoff(new Date(at), days)!;
    expect(from).toBe(first);
    expect(daysBetween(from, snapshotDay(new Date(at)))).toHaveLength(days);
  });

  it('0 keeps every snapshot; the default keeps more than the longest range a query reads', () => {
    expect(retentionCutoff(new Date('2026-12-02T00:05:00Z'), 0)).toBeNull();
    expect(DEFAULT_HISTORY_RETENTION_DAYS).toBeGreaterThan(MAX_HISTORY_DAYS);
  });
});
