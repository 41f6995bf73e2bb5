import { describe, expect, it } from 'vitest';
import {
  advanceReturns,
  afterPostCalls,
  afterPreCalls,
  afterPostScripts,
  afterPreScripts,
  AGENT_GONE_REASON,
  CALLS_RESERVE_SECONDS,
  callsMayStart,
  haltsOf,
  afterStepPage,
  agentLostError,
  countsAsFailed,
  MACHINE_REMOVED_ERROR,
  machinesToStart,
  nextMachineAction,
  nextPostScriptsAction,
  notBackError,
  postScriptsUnreported,
  PAST_WINDOW_ERROR,
  preCallsMade,
  runsPostScripts,
  shouldContinueAsNew,
  RUN_STEP_CHILDREN,
  UPDATE_PAST_WINDOW_ERROR,
  type PostScriptsAction,
  type PostScriptsJob,
  type RunningMachine,
} from '../../src/fleet/batchedRun.js';
import { deploymentRunStatus, deploymentRunStatusFromCounts, maxConcurrentMachines, MAX_RUNNING_MACHINES, type MachineRunStatus } from '../../src/fleet/planning.js';
import { MACHINE_RUN_STATUSES } from '../../src/domain/vocabulary.js';
import { phaseCallSeconds, stepPhases, type DeploymentStep, type StepResult } from '../../src/fleet/steps.js';

const NOW = 1_000_000_000;
const timings = { windowEndsAtMs: NOW + 3_600_000, graceSeconds: 600, installHeartbeatSeconds: 120, rebootTimeoutSeconds: 900 };
const waiting: RunningMachine = { status: 'IN_PROGRESS', hasJob: true, result: null, lastHeardAtMs: NOW - 1000, reoffered: false, rebootByMs: null, bootIdNow: 'boot-1' };
const result = { rebooting: false, rebootRequired: false, timedOut: false, bootId: 'boot-1', error: null };

describe('how many machines a batched run starts', () => {
  const limits = { concurrency: 100, threshold: 5, windowEndsAtMs: NOW + 1000 };
  it.each([
    ['the free places', { running: 40, failed: 0, nowMs: NOW }, 60],
    ['none when every place is taken', { running: 100, failed: 0, nowMs: NOW }, 0],
    ['none once the failure threshold is reached', { running: 0, failed: 5, nowMs: NOW }, 0],
    ['none once the window has ended', { running: 0, failed: 0, nowMs: NOW + 1000 }, 0],
    ['none once a step asked to halt the run', { running: 0, failed: 0, nowMs: NOW, halted: true }, 0],
  ] as const)('%s', (_, state, expected) => {
    expect(machinesToStart(state, limits)).toBe(expected);
  });

  it('is not held to the thousand machines of a run of child workflows', () => {
    expect(maxConcurrentMachines({ value: 2000, unit: 'COUNT' }, 100_000)).toBe(MAX_RUNNING_MACHINES);
    expect(maxConcurrentMachines({ value: 2000, unit: 'COUNT' }, 100_000, 10_000)).toBe(2000);
  });
});

describe('what a running machine of a batched run needs next', () => {
  it('waits for its agent while it reports', () => {
    expect(nextMachineAction(waiting, NOW, timings)).toEqual({ kind: 'WAIT' });
  });

  it('offers the job again after a first silence, and loses the agent at the second', () => {
    const silent = { ...waiting, lastHeardAtMs: NOW - 121_000 };
    expect(nextMachineAction(silent, NOW, timings)).toEqual({ kind: 'REOFFER' });
    expect(nextMachineAction({ ...silent, reoffered: true }, NOW, timings)).toEqual({ kind: 'FINISH', end: { agentLost: true, error: agentLostError(120) } });
  });

  it('times out without a result once the window, its grace and the margin have passed, whatever the heartbeat says', () => {
    expect(nextMachineAction(waiting, timings.windowEndsAtMs + 600_000 + 120_001, timings)).toEqual({ kind: 'FINISH', end: { timedOut: true, error: PAST_WINDOW_ERROR } });
  });

  it('fails a machine run without a job: its machine was removed', () => {
    expect(nextMachineAction({ ...waiting, hasJob: false }, NOW, timings)).toEqual({ kind: 'FINISH', end: { jobFailed: true, error: MACHINE_REMOVED_ERROR } });
  });

  it('ends with the result, asking for a fresh assessment', () => {
    expect(nextMachineAction({ ...waiting, result }, NOW, timings)).toEqual({ kind: 'FINISH', end: { requestAssessment: true, timedOut: false, rebootOutcome: 'NOT_NEEDED', error: null } });
    expect(nextMachineAction({ ...waiting, result: { ...result, timedOut: true, rebootRequired: true } }, NOW, timings)).toEqual({
      kind: 'FINISH',
      end: { requestAssessment: true, timedOut: true, rebootOutcome: 'NOT_ALLOWED', error: UPDATE_PAST_WINDOW_ERROR },
    });
  });

  it('fails the machine run with the error of a job that could not run', () => {
    expect(nextMachineAction({ ...waiting, result: { ...result, error: { message: 'dpkg is locked' } } }, NOW, timings)).toEqual({ kind: 'FINISH', end: { jobFailed: true, error: 'dpkg is locked' } });
  });

  it('waits for a rebooted machine until its new boot id, or fails it at the reboot timeout', () => {
    const rebooting = { ...waiting, result: { ...result, rebooting: true, rebootRequired: true } };
    expect(nextMachineAction(rebooting, NOW, timings)).toEqual({ kind: 'REBOOTING', rebootByMs: NOW + 900_000 });
    const marked = { ...rebooting, status: 'REBOOTING' as const, rebootByMs: NOW + 900_000 };
    expect(nextMachineAction(marked, NOW + 1000, timings)).toEqual({ kind: 'WAIT' });
    // A check-in without a boot id is not a return.
    expect(nextMachineAction({ ...marked, bootIdNow: null }, NOW + 1000, timings)).toEqual({ kind: 'WAIT' });
    expect(nextMachineAction({ ...marked, bootIdNow: 'boot-2' }, NOW + 1000, timings)).toEqual({ kind: 'FINISH', end: { requestAssessment: true, timedOut: false, rebootOutcome: 'REBOOTED', error: null } });
    expect(nextMachineAction(marked, NOW + 900_000, timings)).toEqual({ kind: 'FINISH', end: { rebootFailed: true, rebootOutcome: 'TIMED_OUT', timedOut: false, error: notBackError(900) } });
  });
});

describe('when an advance hands back to the workflow', () => {
  const limits = { batchSize: 10, budgetMs: 60_000 };
  it.each([
    ['done: nothing runs and nothing is left', { running: 0, pendingLeft: false, startable: true, ended: 3, elapsedMs: 5 }, { done: true, now: true }],
    ['done: nothing runs and nothing more may start', { running: 0, pendingLeft: true, startable: false, ended: 0, elapsedMs: 5 }, { done: true, now: true }],
    ['its batch ended', { running: 4, pendingLeft: true, startable: true, ended: 10, elapsedMs: 5 }, { done: false, now: true }],
    ['its time ran', { running: 4, pendingLeft: false, startable: true, ended: 1, elapsedMs: 60_000 }, { done: false, now: true }],
    ['not yet', { running: 4, pendingLeft: true, startable: true, ended: 9, elapsedMs: 59_999 }, { done: false, now: false }],
  ] as const)('%s', (_, state, expected) => {
    expect(advanceReturns(state, limits)).toEqual(expected);
  });

  it('counts failed and timed-out machines against the threshold, as a run of child workflows did', () => {
    expect(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELED', 'NOT_STARTED'].filter(countsAsFailed)).toEqual(['FAILED', 'TIMED_OUT']);
  });

  it('continues as new past the history limit, or when Temporal suggests it', () => {
    expect(shouldContinueAsNew(4999, 5000, false)).toBe(false);
    expect(shouldContinueAsNew(5000, 5000, false)).toBe(true);
    expect(shouldContinueAsNew(10, 5000, true)).toBe(true);
  });
});

describe('a run with steps (a child workflow per machine), page by page', () => {
  it('continues as new after a full page, ends after a short one, and stops when some of the page never started', () => {
    expect(afterStepPage({ read: 3, limit: 3, notStarted: 0 })).toBe('NEXT_PAGE');
    expect(afterStepPage({ read: 2, limit: 3, notStarted: 0 })).toBe('DONE');
    expect(afterStepPage({ read: 0, limit: 3, notStarted: 0 })).toBe('DONE');
    // The window, the failure threshold or a step's HALT_RUN held machines back: no next page.
    expect(afterStepPage({ read: 3, limit: 3, notStarted: 1 })).toBe('STOPPED');
    expect(afterStepPage({ read: 2, limit: 3, notStarted: 2 })).toBe('STOPPED');
  });

  it("holds an execution's history under Temporal's warning: about 4.2 events per child", () => {
    expect(RUN_STEP_CHILDREN * 4.2 + 100).toBeLessThan(10_240);
  });
});

describe('a batched run whose steps are control-plane calls: the verdicts as a machine run applies them', () => {
  const failedCall = (r: Partial<StepResult>): StepResult => ({ index: 0, name: 'drain', phase: 'PRE', kind: 'HTTP', onFailure: 'SKIP_INSTALLS', status: 'FAILED', message: 'answered HTTP 503', exitCode: null, httpStatus: 503, attempts: 1, startedAt: null, endedAt: null, ...r });

  it.each([
    ['GO_ON: the job goes out', { action: 'GO_ON' }, null],
    ['SKIP_INSTALLS: ends not failed, its updates NOT_ATTEMPTED with the reason', { action: 'SKIP_INSTALLS', reason: 'Pre-step "drain" failed' }, { end: { error: 'Not attempted: Pre-step "drain" failed.' } }],
    ['FAIL_MACHINE: ends failed', { action: 'FAIL_MACHINE', reason: 'Pre-step "drain" failed' }, { end: { jobFailed: true, error: 'Pre-step "drain" failed.' } }],
    ['HALT_RUN: ends failed and halts the run', { action: 'HALT_RUN', reason: 'Pre-step "drain" failed' }, { end: { jobFailed: true, error: 'Pre-step "drain" failed.' }, halt: 'Pre-step "drain" failed' }],
  ] as const)('PRE calls, %s', (_, verdict, expected) => {
    expect(afterPreCalls(verdict)).toEqual(expected);
  });

  it('POST calls fail the machine after its own error, and the first halt of a machine is the one kept', () => {
    const installed = { end: { requestAssessment: true, timedOut: false, rebootOutcome: null, error: null } };
    expect(afterPostCalls(installed, { action: 'GO_ON' })).toEqual(installed);
    expect(afterPostCalls(installed, { action: 'SKIP_INSTALLS', reason: 'x' })).toEqual(installed);
    expect(afterPostCalls(installed, { action: 'FAIL_MACHINE', reason: 'Post-step "check" failed' })).toEqual({ end: { ...installed.end, jobFailed: true, error: 'Post-step "check" failed.' } });
    expect(afterPostCalls(installed, { action: 'HALT_RUN', reason: 'Post-step "health" failed' })).toEqual({ end: { ...installed.end, jobFailed: true, error: 'Post-step "health" failed.' }, halt: 'Post-step "health" failed' });
    const lost = { end: { agentLost: true, error: 'The agent stopped reporting.' } };
    expect(afterPostCalls(lost, { action: 'FAIL_MACHINE', reason: 'Post-step "check" failed' }).end.error).toBe('The agent stopped reporting.; Post-step "check" failed.');
    const halted = afterPreCalls({ action: 'HALT_RUN', reason: 'Pre-step "drain" failed' })!;
    expect(afterPostCalls(halted, { action: 'HALT_RUN', reason: 'Post-step "health" failed' }).halt).toBe('Pre-step "drain" failed');
  });

  it('a PENDING machine is under way once any of its PRE results is recorded (a success, a failure, a call not run after one), not for POST results or none', () => {
    expect(preCallsMade([])).toBe(false);
    expect(preCallsMade([failedCall({ status: 'SUCCEEDED', message: null })])).toBe(true);
    expect(preCallsMade([failedCall({ onFailure: 'HALT_RUN' })])).toBe(true);
    expect(preCallsMade([failedCall({ index: 1, status: 'NOT_RUN' })])).toBe(true);
    expect(preCallsMade([failedCall({ phase: 'POST', status: 'NOT_RUN' })])).toBe(false);
  });

  it("reads a run's halts back from its machine runs' step results, one per machine, PRE before POST", () => {
    expect(haltsOf([])).toEqual([]);
    expect(
      haltsOf([
        [failedCall({ onFailure: 'HALT_RUN' }), failedCall({ index: 1, name: 'health', phase: 'POST', onFailure: 'HALT_RUN' })],
        [failedCall({ onFailure: 'CONTINUE' }), failedCall({ index: 1, name: 'health', phase: 'POST', onFailure: 'HALT_RUN', message: null })],
        // A failure that is not a halt comes first in its phase: the phase's verdict is not a halt.
        [failedCall({ onFailure: 'FAIL_MACHINE' }), failedCall({ index: 1, name: 'again', onFailure: 'HALT_RUN' })],
      ]),
    ).toEqual(['Pre-step "drain" failed: answered HTTP 503', 'Post-step "health" failed']);
  });
});

describe('a batched run whose install jobs carry PRE scripts: their results as a machine run records and applies them', () => {
  const script = (r: Partial<StepResult>): StepResult => ({ index: 1, name: 'stop app', phase: 'PRE', kind: 'SCRIPT', onFailure: 'SKIP_INSTALLS', status: 'SUCCEEDED', message: null, exitCode: 0, httpStatus: null, attempts: 1, startedAt: '2026-12-03T21:00:00.000Z', endedAt: '2026-12-03T21:00:01.000Z', ...r });
  const call = (r: Partial<StepResult>): StepResult => ({ index: 0, name: 'drain', phase: 'PRE', kind: 'HTTP', onFailure: 'SKIP_INSTALLS', status: 'SUCCEEDED', message: null, exitCode: null, httpStatus: 200, attempts: 1, startedAt: null, endedAt: null, ...r });
  const failed = (onFailure: StepResult['onFailure']) => script({ onFailure, status: 'FAILED', message: 'exited with code 3', exitCode: 3 });

  it('records what is new and goes on when every script succeeded (or failed with CONTINUE)', () => {
    expect(afterPreScripts([call({})], [script({})])).toEqual({ fresh: [script({})], stop: null });
    expect(afterPreScripts([], [failed('CONTINUE')])).toEqual({ fresh: [failed('CONTINUE')], stop: null });
  });

  it.each([
    ['SKIP_INSTALLS', { end: { error: 'Not attempted: Pre-step "stop app" failed: exited with code 3.' } }],
    ['FAIL_MACHINE', { end: { jobFailed: true, error: 'Pre-step "stop app" failed: exited with code 3.' } }],
    ['HALT_RUN', { end: { jobFailed: true, error: 'Pre-step "stop app" failed: exited with code 3.' }, halt: 'Pre-step "stop app" failed: exited with code 3' }],
  ] as const)('a script failed with %s: the machine ends as after a PRE call that failed so', (onFailure, stop) => {
    expect(afterPreScripts([call({})], [failed(onFailure), script({ index: 2, name: 'after', status: 'NOT_RUN', exitCode: null, message: 'an earlier step failed' })]).stop).toEqual(stop);
  });

  it('records nothing twice: results already recorded (their keys in another order, as jsonb keeps them) are not fresh, and decide the same', () => {
    const reported = [failed('HALT_RUN')];
    const stored = reported.map((r) => Object.fromEntries(Object.entries(r).reverse()) as unknown as StepResult);
    const again = afterPreScripts([call({}), ...stored], reported);
    expect(again.fresh).toEqual([]);
    expect(again.stop).toEqual(afterPreScripts([call({})], reported).stop);
  });

  it('a result that differs from the one recorded is recorded again (the agent reported it anew)', () => {
    expect(afterPreScripts([script({})], [failed('FAIL_MACHINE')]).fresh).toEqual([failed('FAIL_MACHINE')]);
  });
});

describe('a batched run with POST scripts: their job after the install, as a machine run waits for it and applies its report', () => {
  const post = (r: Partial<StepResult>): StepResult => ({ index: 2, name: 'health', phase: 'POST', kind: 'SCRIPT', onFailure: 'FAIL_MACHINE', status: 'SUCCEEDED', message: null, exitCode: 0, httpStatus: null, attempts: 1, startedAt: '2026-12-03T21:00:00.000Z', endedAt: '2026-12-03T21:00:01.000Z', ...r });
  const job = { result: null, lastHeardAtMs: NOW - 1000, reoffered: false, deadlineMs: NOW + 60_000 };
  const done = { end: { requestAssessment: true, timedOut: false, rebootOutcome: 'NOT_NEEDED' as const, error: null } };

  it('runs them unless the agent is gone: lost during the install, or the machine not back from its reboot', () => {
    expect(runsPostScripts(done.end)).toBe(true);
    expect(runsPostScripts({ jobFailed: true, error: 'Pre-step "drain" failed.' })).toBe(true);
    expect(runsPostScripts({ timedOut: true, error: 'x' })).toBe(true);
    expect(runsPostScripts({ agentLost: true, error: 'x' })).toBe(false);
    expect(runsPostScripts({ rebootFailed: true, error: 'x' })).toBe(false);
    expect(AGENT_GONE_REASON).toBe('the agent was not there to run it');
  });

  it.each([
    ['waits while the agent works on the job', job, { kind: 'WAIT' }],
    ['takes the report when it came, even past the deadline', { ...job, deadlineMs: NOW - 3_600_000, result: { steps: [post({})] } }, { kind: 'REPORTED', steps: [post({})] }],
    ['a report without script results reports none', { ...job, result: {} }, { kind: 'REPORTED', steps: [] }],
    ['offers the job again after a first silence longer than the heartbeat', { ...job, lastHeardAtMs: NOW - 121_000 }, { kind: 'REOFFER' }],
    ['gives up after a second silence', { ...job, lastHeardAtMs: NOW - 121_000, reoffered: true }, { kind: 'UNREPORTED', reason: 'the agent did not report on its post-step scripts (nothing for 120 s)' }],
    ['waits past the deadline within the grace and the margin', { ...job, deadlineMs: NOW - 600_000 - 119_000 }, { kind: 'WAIT' }],
    ['gives up past the deadline, its grace and the margin', { ...job, deadlineMs: NOW - 600_000 - 121_000 }, { kind: 'UNREPORTED', reason: 'the agent did not report on its post-step scripts: they ran past their timeouts' }],
  ] as Array<[string, PostScriptsJob, PostScriptsAction]>)('%s', (_, state, action) => {
    expect(nextPostScriptsAction(state, NOW, timings)).toEqual(action);
  });

  it("fails a machine no report came from, after its install's own error, whatever its POST calls say", () => {
    expect(postScriptsUnreported(done, 'the agent did not report on its post-step scripts (nothing for 120 s)')).toEqual({ end: { ...done.end, jobFailed: true, error: 'The agent did not report on its post-step scripts (nothing for 120 s).' } });
    expect(postScriptsUnreported({ end: { jobFailed: true, error: 'apt failed.' }, halt: 'Pre-step "x" failed' }, 'why').end.error).toBe('apt failed.; Why.');
  });

  it('records what is new, and the verdict of the POST phase with it', () => {
    expect(afterPostScripts([], [post({})])).toEqual({ fresh: [post({})], verdict: { action: 'GO_ON' } });
    const failed = post({ status: 'FAILED', message: 'exited with code 1', exitCode: 1, onFailure: 'HALT_RUN' });
    expect(afterPostScripts([post({ index: 0, name: 'drain', phase: 'PRE', kind: 'HTTP' })], [failed])).toEqual({ fresh: [failed], verdict: { action: 'HALT_RUN', reason: 'Post-step "health" failed: exited with code 1' } });
    // A second look after a worker died: nothing fresh, the same verdict.
    expect(afterPostScripts([failed], [failed])).toEqual({ fresh: [], verdict: { action: 'HALT_RUN', reason: 'Post-step "health" failed: exited with code 1' } });
    // A PRE failure recorded before is not the POST phase's.
    expect(afterPostScripts([post({ phase: 'PRE', index: 0, status: 'FAILED', onFailure: 'FAIL_MACHINE' })], [post({})]).verdict).toEqual({ action: 'GO_ON' });
  });
});

describe("a run's status from its counts (a run too large to read machine by machine)", () => {
  it('is the status its machine runs give, on thousands of random runs', () => {
    // A small deterministic generator: the same runs every time.
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 5000; i++) {
      const statuses = random() < 0.5 ? (['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'NOT_STARTED'] as MachineRunStatus[]) : [...MACHINE_RUN_STATUSES];
      const runs = Array.from({ length: Math.floor(random() * 5) }, () => ({
        status: statuses[Math.floor(random() * statuses.length)]!,
        failedUpdates: random() < 0.3 ? 1 : 0,
        succeededUpdates: random() < 0.5 ? 2 : 0,
      }));
      const byStatus: Partial<Record<MachineRunStatus, number>> = {};
      for (const r of runs) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
      const counts = { byStatus, failedUpdates: runs.reduce((n, r) => n + r.failedUpdates, 0), succeededUpdates: runs.reduce((n, r) => n + r.succeededUpdates, 0) };
      for (const canceled of [false, true]) expect(deploymentRunStatusFromCounts(counts, canceled)).toBe(deploymentRunStatus(runs, canceled));
    }
  });
});

describe("an advance's calls within its attempt's time", () => {
  const deadline = 1_000_000;
  it('starts a phase of calls only if it ends with the reserve left before the attempt times out', () => {
    expect(callsMayStart(deadline - (30 + CALLS_RESERVE_SECONDS) * 1000, deadline, 30)).toBe(true);
    expect(callsMayStart(deadline - (30 + CALLS_RESERVE_SECONDS) * 1000 + 1, deadline, 30)).toBe(false);
    expect(callsMayStart(0, deadline, 0, 0)).toBe(true);
    expect(callsMayStart(deadline + 1, deadline, 0, 0)).toBe(false);
  });

  it("measures a phase's calls on a machine as every attempt at its timeout plus the waits between, the longer phase being the run's callSeconds", () => {
    const http = (timeoutSeconds: number, retries: number) => ({ method: 'POST', url: 'http://cp/x', headers: [], body: null, expectedStatus: [], retries, timeoutSeconds });
    const steps = [
      { name: 'a', phase: 'PRE', onFailure: 'SKIP_INSTALLS', script: null, http: http(10, 0) },
      { name: 'b', phase: 'PRE', onFailure: 'SKIP_INSTALLS', script: null, http: http(5, 2) },
      { name: 'c', phase: 'POST', onFailure: 'CONTINUE', script: null, http: http(3, 0) },
    ] as unknown as DeploymentStep[];
    const pre = phaseCallSeconds(steps, 'PRE');
    expect(pre).toBeGreaterThan(10 + 15);
    expect(phaseCallSeconds(steps, 'POST')).toBe(3);
    expect(stepPhases(steps)!.callSeconds).toBe(pre);
  });
});
