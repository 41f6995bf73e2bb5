import { describe, expect, it } from 'vitest';
import { settledMachineRunStatus, settledUpdateStatuses, settleUnreportedUpdate, UNSETTLED_UPDATE_STATUSES } from '../../src/fleet/settle.js';

describe('settling the updates of a machine run that ends', () => {
  it.each([
    ['PENDING', null, { status: 'NOT_ATTEMPTED', reason: 'The machine run ended before this update was attempted.' }],
    ['PENDING', 'The run was canceled.', { status: 'NOT_ATTEMPTED', reason: 'The run was canceled.' }],
    ['IN_PROGRESS', null, { status: 'FAILED', errorText: 'No result arrived for this update.', ended: true }],
    ['IN_PROGRESS', 'The agent stopped reporting.', { status: 'FAILED', errorText: 'The agent stopped reporting.', ended: true }],
    ['SUCCEEDED', 'anything', null],
    ['FAILED', null, null],
    ['NOT_ATTEMPTED', null, null],
    ['NOT_SELECTED', null, null],
  ] as const)('%s with error %s becomes %j', (status, error, expected) => {
    expect(settleUnreportedUpdate(status, error)).toEqual(expected);
  });

  it('settles every unsettled status, and only those', () => {
    expect(UNSETTLED_UPDATE_STATUSES.map((s) => settleUnreportedUpdate(s, null)?.status)).toEqual(['NOT_ATTEMPTED', 'FAILED']);
    expect(settledUpdateStatuses(['PENDING', 'IN_PROGRESS', 'SUCCEEDED', 'NOT_SELECTED'])).toEqual(['NOT_ATTEMPTED', 'FAILED', 'SUCCEEDED', 'NOT_SELECTED']);
  });
});

describe('the status a machine run ends with', () => {
  const ok = { timedOut: false, rebootFailed: false, agentLost: false, canceled: false, jobFailed: false };
  it.each([
    ['every update in', ['SUCCEEDED', 'NOT_SELECTED'], ok, 'SUCCEEDED'],
    ['updates never started: the window was honoured', ['SUCCEEDED', 'PENDING'], ok, 'SUCCEEDED'],
    ['an update started and never reported: failed', ['SUCCEEDED', 'IN_PROGRESS'], ok, 'FAILED'],
    ['timed out with nothing failed', ['SUCCEEDED', 'PENDING'], { ...ok, timedOut: true }, 'TIMED_OUT'],
    ['canceled, whatever the updates', ['IN_PROGRESS'], { ...ok, canceled: true }, 'CANCELED'],
    ['the agent lost', ['PENDING'], { ...ok, agentLost: true }, 'FAILED'],
  ] as const)('%s: %s', (_what, statuses, outcome, expected) => {
    expect(settledMachineRunStatus(statuses, outcome)).toBe(expected);
  });
});
