import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { queueAgentCommands } from '../db/agentCommands.js';
import { batchCounts, FINISH_PAGE, finishMachineRuns, handOutPostScripts, pendingMachineRunsPage, pendingMachineRunsUnderWay, reofferJob, runningMachineRunIds, runningMachinesToLookAt, startMachineRuns, stepResultsWithHalts, type MachineRunEnd, type MachineRunKey, type RunningMachineRow } from '../db/batchedRuns.js';
import type { Db } from '../db/client.js';
import { findDeployment, runSettingsOf } from '../db/deployments.js';
import { findMachines } from '../db/machines.js';
import { findRun, finishMachineRun, installJobSources, machineRunsByIds, recordStepResultsMany, setMachineRunStatus, type StepResultsEntry } from '../db/runs.js';
import { currentTraceparent } from '../telemetry/tracing.js';
import { announceAgentCommands, announceRunProgress, type FleetPubSub } from '../events/pubsub.js';
import {
  advanceReturns,
  afterPostCalls,
  afterPostScripts,
  afterPreCalls,
  afterPreScripts,
  AGENT_GONE_REASON,
  callsMayStart,
  countsAsFailed,
  haltsOf,
  MACHINE_REMOVED_ERROR,
  machinesToStart,
  nextMachineAction,
  nextPostScriptsAction,
  postScriptsUnreported,
  preCallsMade,
  RESULT_MARGIN_SECONDS,
  runsPostScripts,
  STEP_CALLS_PARALLEL,
  type MachineEnd,
  type StepEnd,
} from '../fleet/batchedRun.js';
import { phaseCallSeconds, type PhaseVerdict, type StepPhase } from '../fleet/steps.js';
import { installJob, preScripts, sentLine, type createDeploymentActivities } from './deployments.js';
import { postScriptsJob, postScriptsSentLine, stepLine, type PageCallOptions } from './steps.js';

/** A machine run's line in its job stream when it ends (as the deployment activities' finishMachineRun writes it). */
function endLine(row: { machineName: string; status: string }, end: MachineRunEnd): string {
  return `${row.machineName}: ${row.status}${end.error ? `: ${end.error}` : ''}${end.rebootOutcome ? ` (reboot: ${end.rebootOutcome})` : ''}.`;
}

/** What a machine run's end takes (the deployment activities' finishMachineRun). */
type FinishMachineRun = ReturnType<typeof createDeploymentActivities>['finishMachineRun'];

/**
 * A machine run about to end with steps: how (StepEnd), and with `postFailed`, its POST phase has
 * failed already (no report on its POST scripts came), whatever its POST calls then say.
 */
type Ending = StepEnd & { machineRunId: string; machineId: string; postFailed?: boolean };

/** Machine runs' control-plane calls (src/activities/steps.ts): a page's calls of a phase made and recorded, and steps recorded as not run. */
export interface StepCalls {
  runPageStepCalls(input: { runId: string; machineRunIds: readonly string[]; phase: StepPhase }, options: PageCallOptions): Promise<Map<string, PhaseVerdict>>;
  skipSteps(input: { machineRunId: string; phase: StepPhase; kind: 'SCRIPT' | 'HTTP' | null; reason: string }): Promise<void>;
}

/** What an advance works within: a run's (or ring's) limits and the run's tunables. */
export interface AdvanceInput {
  runId: string;
  /** The ring (1-based), or null in a run without rings. */
  ring: number | null;
  windowEndsAtMs: number;
  concurrency: number;
  /** null: no limit. */
  failureThreshold: number | null;
  graceSeconds: number;
  installHeartbeatSeconds: number;
  rebootTimeoutSeconds: number;
  /** Machines ended before handing back to the workflow. */
  batchMachines: number;
  /** Seconds before handing back to the workflow however few ended. */
  budgetSeconds: number;
  /** How often to look when nothing wakes the advance (a result or a check-in announced through PostgreSQL wakes it at once). */
  pollMs: number;
  /**
   * A run whose steps are all control-plane calls (docs/steps.md): which phases have calls. The
   * advance makes a machine's PRE calls before it hands out its job and its POST calls before it
   * ends it. Absent: no steps (and none made, even if the deployment gained steps since the run began).
   * `preScripts`: its scripts are all PRE scripts: the install jobs carry them (to agents that run
   * scripts), and the advance records their results from the job's result before it goes on.
   * `postScripts`: some are POST scripts: a machine whose install (and reboot) is through gets them
   * as a job of their own, and ends once they report (its POST calls made then).
   */
  steps?: { pre: boolean; post: boolean; preScripts?: boolean; postScripts?: boolean };
}

export interface AdvanceOutcome {
  /** The run (or ring) is through: nothing runs, and nothing more will start. */
  done: boolean;
  /** Machine runs of the run (or ring) ended FAILED or TIMED_OUT, all told. */
  failed: number;
  /** Machine runs this advance ended. */
  ended: number;
  /** Machine runs still PENDING (when done: never started, the window, the failure threshold or a halt stopped them). */
  pendingLeft: boolean;
  /** Why steps of the run's (or ring's) machines asked to halt it (HALT_RUN), so far; absent in advances recorded before steps ran in them. */
  halts?: string[];
}

const FAILED_STATUSES = ['FAILED', 'TIMED_OUT'] as const;
/** Between two looks, at least: a burst of results is read together, not one look per result. */
const MIN_LOOK_GAP_MS = 250;
/** Machines started per transaction: their jobs, machine runs and log lines together. */
const START_PAGE = 1000;
/** Machine runs ended at once outside a look (a removed machine, a cancel): each is a transaction of its own. */
const PARALLEL_ENDS = 4;

/**
 * The I/O of a batched run (docs/deployments.md): one activity advances many machines, reading
 * their rows by key; src/fleet/batchedRun.ts decides. Every step is a conditional write in
 * PostgreSQL, so a retried or repeated advance (a worker that died mid-way) does nothing twice.
 */
export function createBatchedRunActivities({ db, pubsub }: { db: Db; pubsub: FleetPubSub }, finishMachine: FinishMachineRun, stepCalls: StepCalls, options: { callsParallel?: number } = {}) {
  /** Machines whose calls run at once (tests make it small to see a page's machines called in turn). */
  const callsParallel = options.callsParallel ?? STEP_CALLS_PARALLEL;
  const end = (machineRunId: string, outcome: MachineEnd & { canceled?: boolean }) => finishMachine({ machineRunId, ...outcome });

  /**
   * Ends the machine runs one look found through, together: their fresh assessments asked for
   * first (so that a retry after a crash in between still asks; a waiting request is not queued
   * twice), then up to FINISH_PAGE of them per transaction. Answers each one's status.
   */
  async function endTogether(runId: string, ends: ReadonlyArray<MachineEnd & { machineRunId: string; machineId: string }>): Promise<string[]> {
    const assess = await queueAgentCommands(db, ends.filter((e) => e.requestAssessment).map((e) => e.machineId), 'ASSESS');
    pubsub.publishMany(assess.filter((c) => c.queued).map((c) => ['agentCommandQueued', c.machineId, { commandId: c.id }] as const));
    const statuses: string[] = [];
    for (let i = 0; i < ends.length; i += FINISH_PAGE) {
      const page: MachineRunEnd[] = ends.slice(i, i + FINISH_PAGE).map(({ requestAssessment: _, machineId: __, ...end }) => end);
      const { statuses: ended, progress } = await finishMachineRuns(db, runId, page, endLine);
      announceRunProgress(pubsub, runId, progress);
      // A machine run that vanished (its run deleted) counts as it would have ended: failed.
      statuses.push(...ended.map((status) => status ?? 'FAILED'));
      Context.current().heartbeat();
    }
    return statuses;
  }

  /**
   * The POST calls of the machines about to end, a page at a time, each machine's end then changed
   * as their results say (afterPostCalls). Answers those called; a machine `mayStart` refused is
   * left out (it stays running, and the next advance makes its calls). A retry after a crash finds
   * the calls made recorded and makes only the others, as a machine run's workflow's retry does.
   */
  async function withPostCalls(runId: string, ends: readonly Ending[], post: boolean, mayStart: () => boolean): Promise<Ending[]> {
    if (!post) return [...ends];
    const called: Ending[] = [];
    for (let i = 0; i < ends.length && mayStart(); i += FINISH_PAGE) {
      const page = ends.slice(i, i + FINISH_PAGE);
      const verdicts = await stepCalls.runPageStepCalls({ runId, machineRunIds: page.map((e) => e.machineRunId), phase: 'POST' }, { parallel: callsParallel, mayStart });
      for (const e of page) {
        const verdict = verdicts.get(e.machineRunId);
        if (verdict) called.push(e.postFailed ? e : { ...e, ...afterPostCalls(e, verdict) });
      }
    }
    return called;
  }

  async function inParallel<T>(items: readonly T[], each: (item: T) => Promise<void>): Promise<void> {
    for (let i = 0; i < items.length; i += PARALLEL_ENDS) {
      await Promise.all(items.slice(i, i + PARALLEL_ENDS).map(each));
      // Thousands of machines may end in one look: the activity stays seen alive meanwhile.
      Context.current().heartbeat();
    }
  }

  return {
    /**
     * Advances a batched run's (or ring's) machines until `batchMachines` of them ended, or
     * `budgetSeconds` passed, or nothing more can happen: ends the machines whose result came (or
     * whose agent went silent twice, or that ran past the window), waits for rebooted machines'
     * new boot id, and starts PENDING machines, by key, into the places free. Heartbeats as it
     * goes: a cancel of the run reaches it at its next look.
     */
    async advanceMachines(input: AdvanceInput): Promise<AdvanceOutcome> {
      const context = Context.current();
      const startedAt = Date.now();
      const run = await findRun(db, input.runId);
      if (!run) throw ApplicationFailure.nonRetryable(`Run ${input.runId} does not exist.`, 'NOT_FOUND');
      const deployment = await findDeployment(db, run.deploymentId, { includeDeleted: true });
      if (!deployment) throw ApplicationFailure.nonRetryable(`Deployment ${run.deploymentId} does not exist.`, 'NOT_FOUND');
      const rebootSetting = (run.settings ?? runSettingsOf(deployment)).rebootSetting;
      // The job's deadline is the window's end; a ring's window is its own (the run's row follows the running ring).
      const jobRun = { id: run.id, windowEndsAt: new Date(input.windowEndsAtMs) };
      const limits = { concurrency: input.concurrency, threshold: input.failureThreshold ?? Number.POSITIVE_INFINITY, windowEndsAtMs: input.windowEndsAtMs };
      const timings = { windowEndsAtMs: input.windowEndsAtMs, graceSeconds: input.graceSeconds, installHeartbeatSeconds: input.installHeartbeatSeconds, rebootTimeoutSeconds: input.rebootTimeoutSeconds };
      const installDeadline = new Date(input.windowEndsAtMs + (input.graceSeconds + RESULT_MARGIN_SECONDS) * 1000);
      // Calls start only while they can end before this attempt times out (callsMayStart); once one
      // could not, the advance starts nothing more and hands back, and the next advance goes on.
      const attemptEndsAtMs = startedAt + context.info.startToCloseTimeoutMs;
      const callSeconds = { PRE: phaseCallSeconds(deployment.steps ?? [], 'PRE'), POST: phaseCallSeconds(deployment.steps ?? [], 'POST') };
      let callsSpent = false;
      const mayCall = (phase: StepPhase) => () => {
        if (!callsSpent && !callsMayStart(Date.now(), attemptEndsAtMs, callSeconds[phase])) callsSpent = true;
        return !callsSpent;
      };

      let { running, failed } = await batchCounts(db, input.runId, input.ring, FAILED_STATUSES);
      // Both read once the machines under way are carried through (below).
      let pendingLeft = true;
      // Why steps asked to halt the run, by machine run: one each (its first), however often its results are read.
      let halts = new Map<string, string>();
      let ended = 0;

      const ended1 = (status: string) => {
        ended += 1;
        if (countsAsFailed(status)) failed += 1;
      };

      /**
       * The POST scripts of machines about to end (a run with POST scripts), before their POST calls,
       * as machineRun.ts runs them: a machine whose agent is gone has them recorded NOT_RUN; one that
       * was removed, or whose agent does not run scripts, has them recorded failed at once; the others
       * get them as a job of their own (handOutPostScripts, their end kept on their row) and end when
       * they report (the look below). Answers the machines that go on to their POST calls now.
       */
      const postScriptsFirst = async (ends: readonly Ending[]): Promise<{ goOn: Ending[]; handedOut: number }> => {
        const gone = ends.filter((e) => !runsPostScripts(e.end));
        await inParallel(gone, (e) => stepCalls.skipSteps({ machineRunId: e.machineRunId, phase: 'POST', kind: 'SCRIPT', reason: AGENT_GONE_REASON }));
        const others = ends.filter((e) => runsPostScripts(e.end));
        if (others.length === 0) return { goOn: [...gone], handedOut: 0 };
        const rows = new Map((await machineRunsByIds(db, others.map((e) => e.machineRunId))).map((m) => [m.id, m]));
        const live = new Map((await findMachines(db, others.map((e) => e.machineId))).map((m) => [m.id, m]));
        const goOn: Ending[] = [...gone];
        const recorded: StepResultsEntry[] = [];
        const jobs: Parameters<typeof handOutPostScripts>[2] = [];
        for (const e of others) {
          const row = rows.get(e.machineRunId);
          // A machine run that vanished (its run deleted) ends as any other would.
          if (!row) {
            goOn.push(e);
            continue;
          }
          const { job, results } = postScriptsJob(deployment.steps, row, live.get(e.machineId), input.graceSeconds, Date.now());
          if (job) {
            jobs.push({ machineId: e.machineId, machineRunId: e.machineRunId, job, end: { end: e.end, ...(e.halt !== undefined ? { halt: e.halt } : {}) }, logLine: postScriptsSentLine(row.machineName, job.scripts?.length ?? 0) });
            continue;
          }
          if (results.length > 0) recorded.push({ machineRunId: e.machineRunId, results, lines: results.map((r) => stepLine(row.machineName, r)) });
          // Without POST calls, nothing else adds to the POST phase's verdict (with them, theirs includes the scripts').
          goOn.push(input.steps?.post ? e : { ...e, ...afterPostCalls(e, afterPostScripts(row.stepResults, results).verdict) });
        }
        if (recorded.length > 0) announceRunProgress(pubsub, input.runId, (await recordStepResultsMany(db, input.runId, recorded)).progress);
        // With traces on, the agents' reports on these jobs join the advance's trace, as their install jobs' do.
        const handed = await handOutPostScripts(db, input.runId, jobs, currentTraceparent());
        announceAgentCommands(pubsub, handed.commands);
        announceRunProgress(pubsub, input.runId, handed.progress);
        running += handed.started;
        return { goOn, handedOut: ends.length - goOn.length };
      };

      /**
       * Ends machine runs of a run with steps: their POST scripts first (when the run has them and
       * `postScriptsRan` is not set: those handed out are not ended now), then their POST calls (when
       * the run has them), then the ends together; a HALT_RUN is noted. Answers the statuses of those
       * ended, and how many wait on their POST scripts: a machine whose POST calls the advance had no
       * time left to start is neither (the next advance ends it).
       */
      const endWithSteps = async (ends: readonly Ending[], postScriptsRan = false): Promise<{ statuses: string[]; handedOut: number }> => {
        const noteHalts = (of: readonly Ending[]) => {
          for (const e of of) if (e.halt !== undefined && !halts.has(e.machineRunId)) halts.set(e.machineRunId, e.halt);
        };
        // A halt stops new machines at once, even while its machine runs its POST scripts.
        noteHalts(ends);
        const { goOn, handedOut } = input.steps?.postScripts && !postScriptsRan ? await postScriptsFirst(ends) : { goOn: [...ends], handedOut: 0 };
        const after = await withPostCalls(input.runId, goOn, input.steps?.post ?? false, mayCall('POST'));
        noteHalts(after);
        const statuses = await endTogether(input.runId, after.map((e) => ({ ...e.end, machineRunId: e.machineRunId, machineId: e.machineId })));
        for (const status of statuses) ended1(status);
        return { statuses, handedOut };
      };

      /**
       * The PRE calls of a page of machines about to start, many at once: those whose calls say
       * GO_ON get their job; the others end here (their POST calls made first), without one.
       */
      const preCalls = async <T extends { machineRunId: string; machineId: string }>(page: readonly T[], underWay = false): Promise<T[]> => {
        if (!input.steps?.pre || page.length === 0) return [...page];
        const stopped = new Map<string, StepEnd>();
        const going = new Set<string>();
        let halted = false;
        const budget = mayCall('PRE');
        await stepCalls.runPageStepCalls(
          { runId: input.runId, machineRunIds: page.map((m) => m.machineRunId), phase: 'PRE' },
          {
            parallel: callsParallel,
            // Once a machine's PRE calls halt the run, the page's machines not yet called stay PENDING
            // (never started: NOT_STARTED with the halt); those under way go on, as children started together did.
            mayStart: () => (underWay || !halted) && budget(),
            called: (machineRunId, verdict) => {
              const stop = afterPreCalls(verdict);
              if (!stop) going.add(machineRunId);
              else stopped.set(machineRunId, stop);
              if (stop?.halt !== undefined) halted = true;
            },
          },
        );
        const ended = await endWithSteps(page.filter((m) => stopped.has(m.machineRunId)).map((m) => ({ ...stopped.get(m.machineRunId)!, machineRunId: m.machineRunId, machineId: m.machineId })));
        // Machines left uncalled (or stopped, their POST calls not made) are still PENDING: a later advance, or the run's settling once it is through, takes them.
        if (going.size + ended.statuses.length + ended.handedOut < page.length) pendingLeft = true;
        return page.filter((m) => going.has(m.machineRunId));
      };

      /** Starts a page of PENDING machines: their jobs handed over in one transaction; a machine removed meanwhile fails at once. */
      const startPage = async (count: number) => {
        const read = await pendingMachineRunsPage(db, input.runId, input.ring, count);
        if (read.length < count) pendingLeft = false;
        if (read.length === 0) return;
        await handOut(await preCalls(read));
      };

      /** Hands out the jobs of machines whose PRE calls said GO_ON (or that have none), in one transaction; a machine removed meanwhile fails at once. */
      const handOut = async (page: ReadonlyArray<{ machineRunId: string; machineId: string }>) => {
        if (page.length === 0) return;
        const live = new Set((await findMachines(db, page.map((m) => m.machineId))).map((m) => m.id));
        const sources = (await installJobSources(db, page.filter((m) => live.has(m.machineId)).map((m) => m.machineRunId))).filter((m) => m.status === 'PENDING');
        const jobs = sources.map((m) => {
          const scripts = input.steps?.preScripts ? preScripts(deployment.steps, m.agentCapabilities) : [];
          const job = installJob(jobRun, { id: m.machineRunId, rebootReserveSeconds: m.rebootReserveSeconds }, rebootSetting, m.updates, input.graceSeconds, scripts);
          return { machineId: m.machineId, machineRunId: m.machineRunId, job, logLine: sentLine(m.machineName, job) };
        });
        // With traces on, the agents' reports on these jobs join the advance's trace (agent.service.ts).
        const handedOver = await startMachineRuns(db, input.runId, jobs, currentTraceparent());
        announceAgentCommands(pubsub, handedOver.commands);
        announceRunProgress(pubsub, input.runId, handedOver.progress);
        running += handedOver.commands.length;
        const removed = page.filter((m) => !live.has(m.machineId));
        if (input.steps) {
          const ended = await endWithSteps(removed.map((m) => ({ machineRunId: m.machineRunId, machineId: m.machineId, end: { jobFailed: true, error: MACHINE_REMOVED_ERROR } })));
          if (ended.statuses.length + ended.handedOut < removed.length) pendingLeft = true;
        } else await inParallel(removed, async (m) => ended1(await end(m.machineRunId, { jobFailed: true, error: MACHINE_REMOVED_ERROR })));
      };

      /**
       * The running machines whose install job carried PRE scripts and whose result came: their
       * scripts' results recorded first (those not recorded yet, together, a line each), as a machine
       * run's workflow records them before its reboot; a machine whose PRE phase says to stop ends
       * (`stopped`, its POST calls made first), the others go on to nextMachineAction (`rows`). A
       * worker that dies after the record and before the end leaves the machine running with its
       * result: the next look records nothing again and decides the same.
       */
      const withPreScripts = async <R extends RunningMachineRow>(looked: readonly R[]): Promise<{ rows: R[]; stopped: Array<StepEnd & { machineRunId: string; machineId: string }> }> => {
        if (!input.steps?.preScripts) return { rows: [...looked], stopped: [] };
        const rows: R[] = [];
        const stopped: Array<StepEnd & { machineRunId: string; machineId: string }> = [];
        const entries: StepResultsEntry[] = [];
        for (const row of looked) {
          const reported = row.status === 'IN_PROGRESS' && row.result && !row.result.error ? (row.result.steps ?? []) : [];
          if (reported.length === 0) {
            rows.push(row);
            continue;
          }
          const { fresh, stop } = afterPreScripts(row.stepResults, reported);
          if (fresh.length > 0) entries.push({ machineRunId: row.machineRunId, results: fresh, lines: fresh.map((r) => stepLine(row.machineName, r)) });
          if (stop) stopped.push({ ...stop, machineRunId: row.machineRunId, machineId: row.machineId });
          else rows.push(row);
        }
        if (entries.length > 0) announceRunProgress(pubsub, input.runId, (await recordStepResultsMany(db, input.runId, entries)).progress);
        return { rows, stopped };
      };

      /**
       * The running machines whose POST scripts went to their agent, as their job stands: those whose
       * report came have its results recorded (those not recorded yet, together, a line each), those
       * no report will come from have their scripts recorded NOT_RUN; both are answered, to end as
       * their row says (their POST calls then made). A first silence offers the job again. A worker
       * that dies after the record and before the end leaves the machine with its report: the next
       * look records nothing again and decides the same.
       */
      const postScriptsLooked = async (looked: readonly RunningMachineRow[], nowMs: number): Promise<Ending[]> => {
        const ending: Ending[] = [];
        const entries: StepResultsEntry[] = [];
        await inParallel(looked, async (row) => {
          const { job, end } = row.postScripts!;
          const action = nextPostScriptsAction(job, nowMs, timings);
          const keys = { machineRunId: row.machineRunId, machineId: row.machineId };
          switch (action.kind) {
            case 'WAIT':
              return;
            case 'REOFFER': {
              const offered = await reofferJob(db, row.machineRunId, 'POST_SCRIPTS');
              if (offered?.reoffered) pubsub.publish('agentCommandQueued', offered.machineId, { commandId: offered.id });
              return;
            }
            case 'REPORTED': {
              const { fresh, verdict } = afterPostScripts(row.stepResults, action.steps);
              if (fresh.length > 0) entries.push({ machineRunId: row.machineRunId, results: fresh, lines: fresh.map((r) => stepLine(row.machineName, r)) });
              // With POST calls, their verdict includes the scripts' (withPostCalls).
              ending.push({ ...keys, ...(input.steps?.post ? end : afterPostCalls(end, verdict)) });
              return;
            }
            case 'UNREPORTED':
              await stepCalls.skipSteps({ machineRunId: row.machineRunId, phase: 'POST', kind: 'SCRIPT', reason: action.reason });
              ending.push({ ...keys, ...postScriptsUnreported(end, action.reason), postFailed: true });
              return;
          }
        });
        if (entries.length > 0) announceRunProgress(pubsub, input.runId, (await recordStepResultsMany(db, input.runId, entries)).progress);
        return ending;
      };

      /**
       * Carries through the machines under way (preCallsMade): their PRE verdicts are read from what
       * was recorded, no call made again (a call of theirs not yet made is made now); GO_ON hands out
       * the job, as the advance that made the calls would have, and a stop ends the machine, its POST
       * calls first. A halt, the window or the failure threshold does not hold them back: they have
       * started. Left PENDING only when the advance has no time left for their calls.
       */
      const carryOn = async () => {
        if (!input.steps?.pre) return;
        while (!callsSpent) {
          const read = (await pendingMachineRunsUnderWay(db, input.runId, input.ring, START_PAGE)).filter((m) => preCallsMade(m.stepResults));
          if (read.length === 0) return;
          await handOut(await preCalls(read, true));
          context.heartbeat({ ended });
          if (read.length < START_PAGE) return;
        }
      };

      /** Starts up to `count` PENDING machines, a page per transaction; a machine removed meanwhile fails at once. */
      const start = async (count: number) => {
        for (let left = count; left > 0 && pendingLeft && halts.size === 0 && !callsSpent; left -= START_PAGE) {
          await startPage(Math.min(left, START_PAGE));
          context.heartbeat({ ended });
        }
      };

      await carryOn();
      pendingLeft = (await pendingMachineRunsPage(db, input.runId, input.ring, 1)).length > 0;
      // Halts recorded before (an earlier advance, this one's attempt before a worker died, the machines just carried through) stop new machines.
      if (input.steps) {
        halts = new Map();
        for (const m of await stepResultsWithHalts(db, input.runId, input.ring)) {
          const [halt] = haltsOf([m.stepResults]);
          if (halt !== undefined) halts.set(m.machineRunId, halt);
        }
      }

      // Woken by what the API announces through PostgreSQL: a result or progress of this run, or a machine checking in (a new boot id).
      let wake: (() => void) | null = null;
      let woken = false;
      const stopObserving = pubsub.observe({
        delivered(topic) {
          if (topic !== `deploymentRunProgress:${input.runId}` && topic !== 'machineChanged') return;
          woken = true;
          wake?.();
        },
      });
      try {
        for (;;) {
          if (context.cancellationSignal.aborted) throw new CancelledFailure('The run was canceled.');
          context.heartbeat({ ended });
          woken = false;
          const lookedAt = Date.now();
          const { nowMs, rows: looked } = await runningMachinesToLookAt(db, input.runId, input.ring, input.installHeartbeatSeconds, installDeadline, input.graceSeconds + RESULT_MARGIN_SECONDS);
          const finishing: Array<MachineEnd & { machineRunId: string; machineId: string }> = [];
          const afterScripts = await postScriptsLooked(looked.filter((row) => row.postScripts !== null), nowMs);
          const { rows, stopped } = await withPreScripts(looked.filter((row) => row.postScripts === null));
          await inParallel(rows, async (row) => {
            const action = nextMachineAction({ ...row, hasJob: row.commandId !== null }, nowMs, timings);
            switch (action.kind) {
              case 'WAIT':
                return;
              case 'REOFFER': {
                const offered = await reofferJob(db, row.machineRunId);
                if (offered?.reoffered) pubsub.publish('agentCommandQueued', offered.machineId, { commandId: offered.id });
                return;
              }
              case 'REBOOTING': {
                const { progress } = await setMachineRunStatus(db, row.machineRunId, 'REBOOTING', { rebootBy: new Date(action.rebootByMs) }, (m) => `${m.machineName}: rebooting; waiting for the agent to come back.`);
                announceRunProgress(pubsub, input.runId, progress);
                return;
              }
              case 'FINISH':
                finishing.push({ ...action.end, machineRunId: row.machineRunId, machineId: row.machineId });
                return;
            }
          });
          if (input.steps) {
            const { statuses } = await endWithSteps([...stopped, ...finishing.map(({ machineRunId, machineId, ...end }) => ({ machineRunId, machineId, end }))]);
            const { statuses: afterTheirScripts } = await endWithSteps(afterScripts, true);
            running -= statuses.length + afterTheirScripts.length;
          } else {
            for (const status of await endTogether(input.runId, finishing)) {
              running -= 1;
              ended1(status);
            }
          }
          const halted = halts.size > 0;
          const toStart = pendingLeft ? machinesToStart({ running, failed, nowMs: Date.now(), halted }, limits) : 0;
          if (toStart > 0) await start(toStart);
          const startable = machinesToStart({ running: 0, failed, nowMs: Date.now(), halted: halts.size > 0 }, limits) > 0;
          const returns = advanceReturns({ running, pendingLeft, startable, ended, elapsedMs: Date.now() - startedAt }, { batchSize: input.batchMachines, budgetMs: input.budgetSeconds * 1000 });
          // Machines whose calls were not started for want of time are left to the next advance: not done.
          if (returns.now || callsSpent) return { done: returns.done && !callsSpent, failed, ended, pendingLeft, ...(input.steps ? { halts: [...halts.values()] } : {}) };
          // Sleeps through the activity's context: a cancel ends the wait at once.
          await context.sleep(Math.max(0, MIN_LOOK_GAP_MS - (Date.now() - lookedAt)));
          if (!woken) {
            await Promise.race([
              context.sleep(input.pollMs),
              new Promise<void>((resolve) => {
                wake = () => resolve();
              }),
            ]);
          }
          wake = null;
        }
      } finally {
        stopObserving();
      }
    },

    /**
     * The next page of a run's (or ring's) machines for a run of child workflows (a deployment with
     * steps, deploymentRun.ts): the PENDING ones after `after` in (machine name, id) order, and the
     * key of the last. The workflow carries the key: a machine behind it is never handed out again,
     * so no machine's child is started twice, across retries and continue-as-new alike.
     */
    async pendingMachinesPage(input: { runId: string; ring: number | null; after: MachineRunKey | null; limit: number }): Promise<{ machines: Array<{ machineRunId: string; machineId: string }>; after: MachineRunKey | null }> {
      const rows = await pendingMachineRunsPage(db, input.runId, input.ring, input.limit, input.after);
      const last = rows.at(-1);
      return { machines: rows.map((r) => ({ machineRunId: r.machineRunId, machineId: r.machineId })), after: last ? { name: last.machineName, id: last.machineRunId } : input.after };
    },

    /**
     * Ends a batched run's machine runs that are left when it stops: those never started (PENDING),
     * with `status` and `reason`, and with `running`, those still running too (a cancel: their jobs
     * withdrawn, so a late agent installs nothing more). Page by page; answers how many it ended.
     */
    async settleMachineRuns(input: { runId: string; ring?: number | null; running: boolean; status: 'NOT_STARTED' | 'CANCELED'; reason: string | null; skipPostSteps?: boolean }): Promise<number> {
      const pendingUnderWay = async () => (await pendingMachineRunsUnderWay(db, input.runId, input.ring, 200)).filter((m) => preCallsMade(m.stepResults));
      const context = Context.current();
      let settled = 0;
      // Machines under way though PENDING (their PRE calls made, their job not handed out) have
      // started: a cancel records their POST steps as not run, as a running machine's.
      for (let underWay = input.skipPostSteps ? await pendingUnderWay() : []; underWay.length > 0; underWay = await pendingUnderWay()) {
        context.heartbeat(settled);
        await inParallel(underWay, async (m) => {
          await stepCalls.skipSteps({ machineRunId: m.machineRunId, phase: 'POST', kind: null, reason: 'the run was canceled' });
          await end(m.machineRunId, { canceled: true, error: 'The run was canceled.' });
        });
        settled += underWay.length;
      }
      for (;;) {
        context.heartbeat(settled);
        const pending = await pendingMachineRunsPage(db, input.runId, input.ring, 200);
        const running = input.running && pending.length === 0 ? await runningMachineRunIds(db, input.runId, input.ring, 200) : [];
        if (pending.length === 0 && running.length === 0) return settled;
        await inParallel(pending, async (m) => {
          announceRunProgress(pubsub, input.runId, (await finishMachineRun(db, m.machineRunId, { status: input.status, rebootOutcome: null, error: input.reason })).progress);
        });
        await inParallel(running, async (m) => {
          // A machine of a batched run with steps that was running: its POST steps not run, as a machine run's workflow records them after a cancel.
          if (input.skipPostSteps) await stepCalls.skipSteps({ machineRunId: m.machineRunId, phase: 'POST', kind: null, reason: 'the run was canceled' });
          await end(m.machineRunId, { canceled: true, error: 'The run was canceled.' });
        });
        settled += pending.length + running.length;
      }
    },
  };
}
