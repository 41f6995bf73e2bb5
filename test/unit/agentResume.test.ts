import { describe, expect, it } from 'vitest';
import { parseProcStat } from '../../src/agent/processes.js';
import type { InstallJob, JobUpdate, JobUpdateState } from '../../src/agent/protocol.js';
import {
  bootChanged,
  emptyJobState,
  interruptedOutcome,
  isResume,
  normaliseJobState,
  rebootDue,
  rebootStillRequired,
  resumeOrder,
  resumesAtStart,
  stillRunning,
  updateStep,
  type JobState,
} from '../../src/agent/resume.js';

const update: JobUpdate = {
  name: 'demo-libssl',
  arch: 'all',
  installedVersion: '1.0-1',
  availableVersion: '1.1-1',
  classification: 'SECURITY',
  severity: null,
  advisoryIds: [],
  cveIds: [],
  rebootSuggested: false,
  repository: null,
  expectedSeconds: 60,
};
const job: InstallJob = { runId: 'r', machineRunId: 'm', deadline: '2030-01-01T01:00:00Z', graceSeconds: 600, rebootSetting: 'IF_REQUIRED', rebootReserveSeconds: 0, updates: [update] };
const inProgress: JobUpdateState = { name: update.name, arch: 'all', status: 'IN_PROGRESS', exitCode: null, errorText: null, reason: null, installedVersion: '1.0-1', startedAt: '2030-01-01T00:00:00Z', endedAt: null };
const state = (extra: Partial<JobState> = {}): JobState => ({ ...emptyJobState(job, '2030-01-01T00:00:00Z'), ...extra });

describe('taking jobs back at start', () => {
  it('takes back every job it knows and has not finished, in the order they came', () => {
    const jobs = [
      { id: 'late', state: state({ receivedAt: '2030-01-01T00:05:00Z' }) },
      { id: 'done', state: state({ finished: 'DONE' }) },
      { id: 'withdrawn', state: state({ finished: 'WITHDRAWN' }) },
      { id: 'no job kept (older agent)', state: { ...state(), job: null } },
      { id: 'early', state: state({ receivedAt: '2030-01-01T00:01:00Z', seq: 3 }) },
    ];
    expect(resumeOrder(jobs).map((j) => j.id)).toEqual(['early', 'late']);
    expect(resumesAtStart(state({ result: { updates: [], rebootRequired: false, rebooting: true, bootId: 'a', timedOut: false, error: null }, resultDelivered: true }))).toBe(true);
  });

  it('reads a state written by an older agent (progress only) with defaults for what it lacks', () => {
    const old = normaliseJobState({ updates: { 'demo-libssl/all': inProgress }, seq: 4, result: null, resultDelivered: false } as Partial<JobState>, '2030-01-01T00:00:00Z');
    expect(old).toMatchObject({ job: null, running: null, rebootRequired: null, rebootStarted: false, finished: null, seq: 4, receivedAt: '2030-01-01T00:00:00Z' });
    expect(resumesAtStart(old)).toBe(false); // the server hands the job out again, and the state is kept
  });

  it('tells a resume from a first start', () => {
    expect(isResume(state())).toBe(false);
    expect(isResume(state({ seq: 1 }))).toBe(true);
    expect(isResume(state({ updates: { 'demo-libssl/all': inProgress } }))).toBe(true);
  });
});

describe('the updates of a job taken back', () => {
  it('skips what ended, settles what was running, starts what was not begun', () => {
    expect(updateStep(undefined)).toBe('START');
    expect(updateStep(inProgress)).toBe('SETTLE');
    for (const status of ['SUCCEEDED', 'FAILED', 'NOT_ATTEMPTED'] as const) expect(updateStep({ ...inProgress, status })).toBe('SKIP');
  });

  it('waits only for the package manager processes that still run, the same ones, in the same boot', () => {
    const running = { key: 'demo-libssl/all', bootId: 'boot-1', processes: [{ pid: 10, startTicks: '500' }, { pid: 11, startTicks: '501' }, { pid: 12, startTicks: null }, { pid: 13, startTicks: '503' }] };
    const observed = new Map([
      [10, { startTicks: '500', exited: false }], // still the apt-get the agent started
      [11, { startTicks: '900', exited: false }], // the id was taken by another process since
      [12, { startTicks: null, exited: false }], // no /proc (Windows): the id alone
      [13, { startTicks: '503', exited: true }], // a zombie nobody collected
    ]);
    expect(stillRunning(running, 'boot-1', observed).map((p) => p.pid)).toEqual([10, 12]);
    expect(stillRunning(running, 'boot-2', observed)).toEqual([]); // the machine restarted: nothing of it runs
    expect(stillRunning(running, null, observed).map((p) => p.pid)).toEqual([10, 12]); // boot unknown: the processes say
    expect(stillRunning(running, 'boot-1', new Map())).toEqual([]);
    expect(stillRunning(null, 'boot-1', observed)).toEqual([]);
  });

  it('reports the interrupted update SUCCEEDED when the package database shows the new version, FAILED otherwise, saying the agent restarted', () => {
    const base = { update, previous: inProgress, machineRestarted: false, recovery: null, outlivedGrace: false, nowIso: '2030-01-01T00:03:00Z' };
    expect(interruptedOutcome({ ...base, database: { installed: true, installedVersion: '1.1-1' } })).toEqual({
      name: 'demo-libssl',
      arch: 'all',
      status: 'SUCCEEDED',
      exitCode: null,
      errorText: null,
      installedVersion: '1.1-1',
      startedAt: '2030-01-01T00:00:00Z',
      endedAt: '2030-01-01T00:03:00Z',
      reason: 'The agent restarted while this update was being installed; the package database shows demo-libssl 1.1-1 installed.',
    });
    expect(interruptedOutcome({ ...base, database: { installed: false, installedVersion: '1.0-1' } })).toMatchObject({
      status: 'FAILED',
      installedVersion: '1.0-1',
      reason: 'The agent restarted while this update was being installed; the package database shows demo-libssl at 1.0-1, not 1.1-1 installed.',
    });
    // A package manager that cannot say (Windows Update): FAILED, never run again.
    expect(interruptedOutcome({ ...base, database: null })).toMatchObject({ status: 'FAILED', installedVersion: '1.0-1', reason: expect.stringMatching(/^The agent restarted while this update was being installed; this package manager cannot tell/) });
    expect(interruptedOutcome({ ...base, machineRestarted: true, database: { installed: false, installedVersion: null } }).reason).toBe(
      'The agent restarted while this update was being installed (the machine restarted too); the package database shows demo-libssl not installed, not 1.1-1 installed.',
    );
  });

  it('keeps what repairing the package manager said, and fails an update whose package manager outlived the grace', () => {
    const base = { update, previous: inProgress, machineRestarted: true, nowIso: '2030-01-01T00:03:00Z' };
    const repaired = interruptedOutcome({ ...base, database: { installed: true, installedVersion: '1.1-1' }, recovery: { exitCode: 1, errorText: 'dpkg: error processing package demo-broken (--configure):' }, outlivedGrace: false });
    expect(repaired).toMatchObject({ status: 'SUCCEEDED', exitCode: 1, errorText: 'dpkg: error processing package demo-broken (--configure):' });
    const outlived = interruptedOutcome({ ...base, machineRestarted: false, database: { installed: true, installedVersion: '1.1-1' }, recovery: null, outlivedGrace: true });
    expect(outlived).toMatchObject({ status: 'FAILED', reason: expect.stringContaining("still running when the window's grace ended") });
  });
});

describe('reboots around a restart', () => {
  const result = { updates: [], rebootRequired: true, rebooting: true, bootId: 'boot-1', timedOut: false, error: null };

  it('starts the announced reboot once, after the result is delivered, unless the machine already rebooted', () => {
    expect(rebootDue({ result, resultDelivered: true, rebootStarted: false }, 'boot-1')).toBe(true);
    expect(rebootDue({ result, resultDelivered: false, rebootStarted: false }, 'boot-1')).toBe(false);
    expect(rebootDue({ result, resultDelivered: true, rebootStarted: true }, 'boot-1')).toBe(false);
    expect(rebootDue({ result, resultDelivered: true, rebootStarted: false }, 'boot-2')).toBe(false);
    expect(rebootDue({ result, resultDelivered: true, rebootStarted: false }, null)).toBe(true);
    expect(rebootDue({ result: { ...result, rebooting: false }, resultDelivered: true, rebootStarted: false }, 'boot-1')).toBe(false);
  });

  it('counts a reboot an update asked for only until the machine restarts', () => {
    expect(rebootStillRequired({ bootId: 'boot-1' }, 'boot-1')).toBe(true);
    expect(rebootStillRequired({ bootId: 'boot-1' }, 'boot-2')).toBe(false);
    expect(rebootStillRequired({ bootId: null }, 'boot-2')).toBe(true);
    expect(rebootStillRequired(null, 'boot-1')).toBe(false);
    expect(bootChanged(null, 'boot-1')).toBe(false);
  });
});

describe('/proc/<pid>/stat', () => {
  it('reads the state and the start time after a command name with spaces and parentheses', () => {
    const text = '4242 (apt-get (x) y) S 1 4242 4242 0 -1 4194560 1077 0 0 0 3 1 0 0 20 0 1 0 123456 12345678 1234 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n';
    expect(parseProcStat(text)).toEqual({ state: 'S', startTicks: '123456' });
    expect(parseProcStat('4242 (zombie) Z 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0')).toEqual({ state: 'Z', startTicks: '99' });
    expect(parseProcStat('garbage')).toBeNull();
  });
});
