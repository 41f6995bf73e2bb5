/**
 * A batched run (docs/deployments.md, "Runs of any size"): the run's workflow no longer holds one
 * child workflow per machine. Each machine's state lives in PostgreSQL, and an activity advances
 * the run's running machines together (their results, reboots and silences) and starts the next
 * ones, page by page. These are its decisions: how many machines to start, what a machine that is
 * running needs next, when an advance hands back to the workflow, and when the workflow continues
 * as new. The activity reads the rows and applies them; the workflow only sequences.
 *
 * Plain functions on plain data (see planning.ts).
 */
import { rebootOutcome, type RebootOutcome } from './reboot.js';
import { phaseVerdict, skippedByStepReason, type PhaseVerdict, type StepResult } from './steps.js';

/** Machines an advance ends (at most) before it hands back to the workflow: one activity's events for this many machines. */
export const RUN_BATCH_MACHINES = 500;

/**
 * A run's workflow continues as new once its history holds this many events: well below
 * Temporal's 10,240-event warning (and its 51,200 limit), whatever the run's size. Each advance
 * costs 6 events (the activity's 3, the workflow task's 3).
 */
export const RUN_HISTORY_EVENTS = 5000;

/**
 * Machines a batched run plans per page when it begins: each page is one transaction (the page's
 * targets read by key, their pending updates, their machine runs and planned updates written) and
 * moves the run's planning position, so that planning holds one page in memory whatever the run's
 * size, stays under PostgreSQL's 65,535 parameters per statement, and a retry after a crash
 * resumes after the last page written.
 */
export const RUN_PLAN_MACHINES = 1000;

/**
 * A deployment with pre or post steps keeps a child workflow per machine (machineRun.ts: its steps
 * are a sequence per machine). Its run's workflow starts at most this many children in one
 * execution, waits for them all to end, and continues as new with where it is: each child costs its
 * parent about 4.2 history events, so an execution stays near 4,300 events, under Temporal's
 * 10,240-event warning, whatever the run's size (before, one execution held every child and failed
 * at Temporal's 51,200-event limit, about 12,000 machines).
 */
export const RUN_STEP_CHILDREN = 1000;

/**
 * What a run of child workflows does once an execution's page of machines has run: STOPPED when
 * some of the page never started (the window ended, the failure threshold, a step's HALT_RUN), DONE
 * when the page was the last (shorter than asked), NEXT_PAGE otherwise (continue as new and read it).
 */
export function afterStepPage(page: { read: number; limit: number; notStarted: number }): 'STOPPED' | 'DONE' | 'NEXT_PAGE' {
  if (page.notStarted > 0) return 'STOPPED';
  return page.read < page.limit ? 'DONE' : 'NEXT_PAGE';
}

/** An advance hands back to the workflow after this long even when few machines ended: its return is the workflow's chance to see a cancel and the history's to stay small. */
export const RUN_ADVANCE_SECONDS = 60;

/**
 * Machines a batched run may run at once. Nothing in Temporal grows with it (no child workflows);
 * each running machine is a row the advance reads, and the agents' results and progress are what
 * the API and PostgreSQL carry.
 */
export const MAX_BATCHED_RUNNING_MACHINES = 10_000;

/** Margin after the window (or a POST-scripts job's deadline) and its grace for an agent's last result to arrive (as a machine run's install step has). */
export const RESULT_MARGIN_SECONDS = 120;
const RESULT_MARGIN_MS = RESULT_MARGIN_SECONDS * 1000;

/**
 * How many machines to start now: the free places, none once the window has ended, the failure
 * threshold is reached, or a step asked to halt the run (`halted`, HALT_RUN).
 */
export function machinesToStart(state: { running: number; failed: number; nowMs: number; halted?: boolean }, limits: { concurrency: number; threshold: number; windowEndsAtMs: number }): number {
  if (state.halted || state.nowMs >= limits.windowEndsAtMs || state.failed >= limits.threshold) return 0;
  return Math.max(0, limits.concurrency - state.running);
}

/** A running machine of a batched run as the advance reads it. */
export interface RunningMachine {
  status: 'IN_PROGRESS' | 'REBOOTING';
  /** No job: its machine was removed before it could be handed one. */
  hasJob: boolean;
  /** The agent's result, once it came (what the machine run's workflow got from its install step). */
  result: {
    rebooting: boolean;
    rebootRequired: boolean;
    timedOut: boolean;
    bootId: string | null;
    error: { message: string } | null;
  } | null;
  /** When the agent last showed it works on the job (hand-over, progress, an offer again). */
  lastHeardAtMs: number;
  /** The job was offered again after a first silence. */
  reoffered: boolean;
  /** REBOOTING: when the machine must be back by (null: not recorded yet). */
  rebootByMs: number | null;
  /** The boot id the machine checks in with now. */
  bootIdNow: string | null;
}

export interface RunTimings {
  windowEndsAtMs: number;
  graceSeconds: number;
  installHeartbeatSeconds: number;
  rebootTimeoutSeconds: number;
}

/** How a machine run ends: finishMachineRun's input (src/activities/deployments.ts). */
export interface MachineEnd {
  requestAssessment?: boolean;
  timedOut?: boolean;
  rebootFailed?: boolean;
  agentLost?: boolean;
  jobFailed?: boolean;
  rebootOutcome?: RebootOutcome | null;
  error?: string | null;
}

export type MachineAction =
  | { kind: 'WAIT' }
  /** A first silence: the same job offered again (an answer may have been lost with an API process; the agent keeps a job by its id). */
  | { kind: 'REOFFER' }
  /** The agent reboots the machine: wait for it until `rebootByMs`. */
  | { kind: 'REBOOTING'; rebootByMs: number }
  | { kind: 'FINISH'; end: MachineEnd };

export const MACHINE_REMOVED_ERROR = 'The machine was removed before its updates could be installed.';
export const PAST_WINDOW_ERROR = 'The install ran past the maintenance window and its grace period.';
export const UPDATE_PAST_WINDOW_ERROR = 'An update ran past the maintenance window and its grace period.';
export const agentLostError = (heartbeatSeconds: number) =>
  `The agent stopped reporting during the install (nothing for ${heartbeatSeconds} s): it may have crashed or lost its connection. The next assessment shows what was installed.`;
export const notBackError = (rebootTimeoutSeconds: number) =>
  `The machine did not come back within ${Math.round(rebootTimeoutSeconds / 60)} minutes of its reboot. Check its console; the agent reports again once it runs.`;

/**
 * What a running machine needs next: the rules of a machine run's workflow (machineRun.ts) on what
 * PostgreSQL holds. A result ends it (or, when the agent reboots, waits for a new boot id until the
 * reboot timeout); without a result, a silence longer than the heartbeat offers the job again once
 * and loses the agent at the second, and the window's end plus grace plus a margin times it out.
 */
export function nextMachineAction(machine: RunningMachine, nowMs: number, timings: RunTimings): MachineAction {
  if (!machine.hasJob) return { kind: 'FINISH', end: { jobFailed: true, error: MACHINE_REMOVED_ERROR } };
  const result = machine.result;
  if (!result) {
    if (nowMs > timings.windowEndsAtMs + timings.graceSeconds * 1000 + RESULT_MARGIN_MS) return { kind: 'FINISH', end: { timedOut: true, error: PAST_WINDOW_ERROR } };
    if (nowMs - machine.lastHeardAtMs <= timings.installHeartbeatSeconds * 1000) return { kind: 'WAIT' };
    if (!machine.reoffered) return { kind: 'REOFFER' };
    return { kind: 'FINISH', end: { agentLost: true, error: agentLostError(timings.installHeartbeatSeconds) } };
  }
  if (result.error) return { kind: 'FINISH', end: { jobFailed: true, error: result.error.message } };
  const done: MachineEnd = { requestAssessment: true, timedOut: result.timedOut, rebootOutcome: rebootOutcome(result), error: result.timedOut ? UPDATE_PAST_WINDOW_ERROR : null };
  if (!result.rebooting) return { kind: 'FINISH', end: done };
  if (machine.status !== 'REBOOTING' || machine.rebootByMs === null) return { kind: 'REBOOTING', rebootByMs: nowMs + timings.rebootTimeoutSeconds * 1000 };
  if (machine.bootIdNow !== null && machine.bootIdNow !== result.bootId) return { kind: 'FINISH', end: done };
  if (nowMs < machine.rebootByMs) return { kind: 'WAIT' };
  return { kind: 'FINISH', end: { rebootFailed: true, rebootOutcome: rebootOutcome(result, false), timedOut: result.timedOut, error: notBackError(timings.rebootTimeoutSeconds) } };
}

/** Whether a machine run that ended counts against the failure threshold (as a machine run's child reported it). */
export function countsAsFailed(status: string): boolean {
  return status === 'FAILED' || status === 'TIMED_OUT';
}

/**
 * Whether an advance hands back to the workflow now: the run (or ring) is through (nothing running,
 * and nothing more will start), or this advance ended its batch, or ran its time.
 */
export function advanceReturns(state: { running: number; pendingLeft: boolean; startable: boolean; ended: number; elapsedMs: number }, limits: { batchSize: number; budgetMs: number }): { done: boolean; now: boolean } {
  const done = state.running === 0 && (!state.pendingLeft || !state.startable);
  return { done, now: done || state.ended >= limits.batchSize || state.elapsedMs >= limits.budgetMs };
}

/** Whether the run's workflow continues as new before its next advance: its history is past the limit, or Temporal suggests it. */
export function shouldContinueAsNew(historyLength: number, limit: number, suggested: boolean): boolean {
  return suggested || historyLength >= limit;
}

/**
 * Machines of a batched run with steps whose control-plane calls the advance makes at once: each
 * call waits on another system (a load balancer, a change-management API), so many go together,
 * but not so many that a run of 10,000 machines opens 10,000 connections to it at once.
 */
export const STEP_CALLS_PARALLEL = 50;

/**
 * Seconds an advance keeps for what follows its last call (ending the machines called, handing out
 * the next jobs) before its own start-to-close timeout: writes in pages, seconds even for thousands.
 */
export const CALLS_RESERVE_SECONDS = 120;

/**
 * Whether an advance may start a machine's phase of calls now: only if they end (every attempt at
 * its timeout, `callSeconds`) with CALLS_RESERVE_SECONDS left before the advance's attempt times
 * out (`deadlineMs`). However many machines wait and however slow their receivers, every call an
 * attempt makes has ended before it can be retried, so a retry never repeats a call still in
 * flight; the machines not called wait for the next advance.
 */
export function callsMayStart(nowMs: number, deadlineMs: number, callSeconds: number, reserveSeconds = CALLS_RESERVE_SECONDS): boolean {
  return nowMs + (callSeconds + reserveSeconds) * 1000 <= deadlineMs;
}

/** A machine run's end, and why a step asks to halt the run (HALT_RUN), if one does. */
export interface StepEnd {
  end: MachineEnd;
  halt?: string;
}

/**
 * What a machine's PRE calls decide (the rules of machineRun.ts): null when its install job goes
 * out; otherwise how it ends without one. SKIP_INSTALLS leaves it not failed (its updates
 * NOT_ATTEMPTED with the step's reason); FAIL_MACHINE fails it; HALT_RUN fails it and halts the run.
 */
export function afterPreCalls(verdict: PhaseVerdict): StepEnd | null {
  if (verdict.action === 'GO_ON') return null;
  if (verdict.action === 'SKIP_INSTALLS') return { end: { error: skippedByStepReason(verdict) } };
  if (verdict.action === 'HALT_RUN') return { end: { jobFailed: true, error: `${verdict.reason}.` }, halt: verdict.reason };
  return { end: { jobFailed: true, error: `${verdict.reason}.` } };
}

/**
 * Whether a PENDING machine of a batched run is under way: an advance made its PRE calls (their
 * results are recorded) but did not hand out its job or end it (it had no time left to start its
 * POST calls, or its worker died in between). Such a machine has started, as a child workflow has
 * once it made its PRE calls: the next advance carries it through as its PRE verdict says
 * (afterPreCalls) whatever stops new machines (a halt, the window, the failure threshold), rather
 * than leaving it to be settled NOT_STARTED with its POST calls never made.
 */
export function preCallsMade(results: readonly StepResult[]): boolean {
  return results.some((r) => r.phase === 'PRE');
}

/**
 * A machine's end once its POST steps have run (machineRun.ts): a FAIL_MACHINE or HALT_RUN fails
 * it, its reason after the install's own error; a HALT_RUN halts the run unless an earlier step of
 * the machine already did.
 */
export function afterPostCalls(before: StepEnd, verdict: PhaseVerdict): StepEnd {
  if (verdict.action !== 'FAIL_MACHINE' && verdict.action !== 'HALT_RUN') return before;
  const error = before.end.error ? `${before.end.error}; ${verdict.reason}.` : `${verdict.reason}.`;
  const halt = before.halt ?? (verdict.action === 'HALT_RUN' ? verdict.reason : undefined);
  return { end: { ...before.end, jobFailed: true, error }, ...(halt !== undefined ? { halt } : {}) };
}

/**
 * Why steps asked to halt a run (or ring), from its machine runs' recorded step results, in the
 * order given: a machine's PRE phase first, then its POST phase. What an advance starts from, so
 * that a halt recorded before a worker died still stops new machines after the retry.
 */
export function haltsOf(machineRuns: ReadonlyArray<readonly StepResult[]>): string[] {
  const halts: string[] = [];
  for (const results of machineRuns) {
    for (const phase of ['PRE', 'POST'] as const) {
      const verdict = phaseVerdict(results.filter((r) => r.phase === phase));
      if (verdict.action === 'HALT_RUN') {
        halts.push(verdict.reason);
        break;
      }
    }
  }
  return halts;
}

/** Step results compared by content, whatever the order of their keys (PostgreSQL's jsonb keeps its own). */
function sameResult(a: StepResult | undefined, b: StepResult): boolean {
  if (!a) return false;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((k) => JSON.stringify((a as unknown as Record<string, unknown>)[k] ?? null) === JSON.stringify((b as unknown as Record<string, unknown>)[k] ?? null));
}

/**
 * What the PRE scripts an install job carried decide once its result came (machineRun.ts records
 * them, then applies the phase's verdict before the reboot): the results not recorded yet (`fresh`:
 * none on a second look, after a worker died between the record and the machine's end), and how the
 * machine ends when the PRE phase (its calls and scripts together) says to stop, as afterPreCalls;
 * null to go on (its reboot, its end). The agent that stopped at a script installed nothing and
 * asked for no reboot.
 */
export function afterPreScripts(recorded: readonly StepResult[], reported: readonly StepResult[]): { fresh: StepResult[]; stop: StepEnd | null } {
  const { fresh, verdict } = scriptsReported(recorded, reported, 'PRE');
  return { fresh, stop: afterPreCalls(verdict) };
}

/** A job's script results against those recorded: the ones not recorded yet, and the verdict of the phase's results with them. */
function scriptsReported(recorded: readonly StepResult[], reported: readonly StepResult[], phase: StepResult['phase']): { fresh: StepResult[]; verdict: PhaseVerdict } {
  const known = new Map(recorded.map((r) => [r.index, r]));
  const fresh = reported.filter((r) => !sameResult(known.get(r.index), r));
  const merged = new Map(known);
  for (const r of reported) merged.set(r.index, r);
  return { fresh, verdict: phaseVerdict([...merged.values()].filter((r) => r.phase === phase)) };
}

/**
 * Whether a machine about to end runs its POST scripts first (a run with POST scripts): not when
 * its agent is gone (lost during the install, or the machine did not come back from its reboot), as
 * machineRun.ts decides; those scripts are recorded NOT_RUN with AGENT_GONE_REASON.
 */
export function runsPostScripts(end: MachineEnd): boolean {
  return !end.agentLost && !end.rebootFailed;
}

export const AGENT_GONE_REASON = 'the agent was not there to run it';

/** A machine's POST-scripts job (a job without updates, after its install and reboot) as the advance reads it. */
export interface PostScriptsJob {
  /** The agent's result, once it came. */
  result: { steps?: StepResult[] } | null;
  /** When the agent last showed it works on the job (hand-over, progress, an offer again). */
  lastHeardAtMs: number;
  /** The job was offered again after a first silence. */
  reoffered: boolean;
  /** The job's deadline: its scripts' timeouts from when it was handed out. */
  deadlineMs: number;
}

export type PostScriptsAction =
  | { kind: 'WAIT' }
  /** A first silence: the same job offered again. */
  | { kind: 'REOFFER' }
  /** The agent reported how the scripts went. */
  | { kind: 'REPORTED'; steps: StepResult[] }
  /** No report will come: the scripts not recorded are NOT_RUN with `reason`, and the machine fails (postScriptsUnreported). */
  | { kind: 'UNREPORTED'; reason: string };

/**
 * What a machine whose POST scripts went to its agent needs next: the rules of a machine run's
 * workflow for that job (machineRun.ts, dispatchPostScripts) on what PostgreSQL holds. A result
 * ends the wait; a silence longer than the heartbeat offers the job again once and gives up at the
 * second; the scripts' deadline plus grace plus a margin gives up too.
 */
export function nextPostScriptsAction(job: PostScriptsJob, nowMs: number, timings: Pick<RunTimings, 'graceSeconds' | 'installHeartbeatSeconds'>): PostScriptsAction {
  if (job.result) return { kind: 'REPORTED', steps: job.result.steps ?? [] };
  if (nowMs > job.deadlineMs + timings.graceSeconds * 1000 + RESULT_MARGIN_MS) return { kind: 'UNREPORTED', reason: 'the agent did not report on its post-step scripts: they ran past their timeouts' };
  if (nowMs - job.lastHeardAtMs <= timings.installHeartbeatSeconds * 1000) return { kind: 'WAIT' };
  if (!job.reoffered) return { kind: 'REOFFER' };
  return { kind: 'UNREPORTED', reason: `the agent did not report on its post-step scripts (nothing for ${timings.installHeartbeatSeconds} s)` };
}

/**
 * A machine's end when no report on its POST scripts will come (machineRun.ts): it fails with the
 * reason, whatever its POST calls then say.
 */
export function postScriptsUnreported(before: StepEnd, reason: string): StepEnd {
  return afterPostCalls(before, { action: 'FAIL_MACHINE', reason: reason.charAt(0).toUpperCase() + reason.slice(1) });
}

/**
 * What the POST scripts' job reported, against what was recorded (a second look after a worker
 * died records nothing again): the results not recorded yet, and the POST phase's verdict so far
 * (the calls, made next, add theirs).
 */
export function afterPostScripts(recorded: readonly StepResult[], reported: readonly StepResult[]): { fresh: StepResult[]; verdict: PhaseVerdict } {
  return scriptsReported(recorded, reported, 'POST');
}
