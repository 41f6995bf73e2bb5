import { CompleteAsyncError, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { InstallJob, JobResult, JobUpdate } from '../domain/types.js';
import { whileDatabaseAway, type Db } from '../db/client.js';
import { findDeployment, runSettingsOf, selectionOf, type DeploymentRow } from '../db/deployments.js';
import {
  beginRingedRun as beginRingedRunRows,
  closeOpenRings,
  findRunRing,
  machineRunsOfRing,
  pendingMachineRunIds,
  ringsOfRun,
  setRingState,
  setRunHalted,
  beginRingPlanning,
  endRingPlanning,
  planRingPage,
  ringMachineRunsPage,
} from '../db/rollouts.js';
import { queueAgentCommand } from '../db/agentCommands.js';
import { findMachine, findMachines, resolveTargets, targetsPage, type MachineRow } from '../db/machines.js';
import { currentTraceparent } from '../telemetry/tracing.js';
import {
  attachInstallActivity,
  beginRun,
  beginRunPlanning,
  endRunPlanning,
  planRunPage,
  ensureRun,
  keepRunSettings,
  findMachineRun,
  findRun,
  finishMachineRun,
  handOverInstallJob,
  handOverInstallJobs as storeHandOver,
  installJobSources,
  logRunChange,
  finishRun,
  machineRunsOf,
  planningInputs,
  plannedUpdates,
  setMachineRunStatus,
  runOutcomeCounts,
  updateResultsOf,
  type RunRow,
  type UpdateResultRow,
} from '../db/runs.js';
import type { RunProgressEvent } from '../db/runProgress.js';
import type { RunSettings } from '../db/schema.js';
import { announceAgentCommands, announceRunProgress, announceRunStarted, type FleetPubSub } from '../events/pubsub.js';
import { deploymentRunStatusFromCounts, failureThreshold, MAX_RUNNING_MACHINES, maxConcurrentMachines, updateSetKey, type MachineRunStatus } from '../fleet/planning.js';
import { assignRings, freezeUpdateSet, type Ring, type RingGate, type UpdateSetMember } from '../fleet/rollout.js';
import { carriesScripts, handedOverAtRunStart, handsOverAtRunStart, stepPhases, type DeploymentStep, type StepPhases } from '../fleet/steps.js';
import { failedAtGate, planRunMachine, stillToRun } from '../fleet/runPlanning.js';
import { settledMachineRunStatus } from '../fleet/settle.js';
import { MAX_BATCHED_RUNNING_MACHINES, RUN_PLAN_MACHINES } from '../fleet/batchedRun.js';
import { createStepActivities, scriptJobSteps } from './steps.js';

/** A paged planning writes a line in the run's job stream every this many pages (every 10,000 machines by default). */
const PLAN_LINE_PAGES = 10;

export interface DeploymentActivityDeps {
  db: Db;
  pubsub: FleetPubSub;
  /** The clock baselines' approvals are judged by (tests move it); default the system's. */
  now?: () => Date;
}

export interface BeginRunInput {
  deploymentId: string;
  workflowId: string;
  /** Given when the API created the run (run now); absent for a scheduled occurrence, whose run this activity creates. */
  runId?: string;
  trigger: 'SCHEDULE' | 'MANUAL';
  /** A batched run: machines planned per page (default RUN_PLAN_MACHINES); absent in runs begun before paged planning. */
  planMachines?: number;
}

export interface BegunRun {
  runId: string;
  /** null: nothing to do (the reason is on the run, which is already finished). */
  windowEndsAtMs: number | null;
  machines: Array<{ machineRunId: string; machineId: string }>;
  concurrency: number;
  /** null: no limit. */
  failureThreshold: number | null;
  /**
   * A ringed run's rings, in order (absent: no rings, `machines` is the whole run). Their machines
   * are planned and handed out ring by ring (beginRing), so `machines` is empty then.
   */
  rings?: Array<{ ring: number; name: string; machineCount: number }>;
  /** Which phases of each machine run have steps (absent: none; runs begun before steps never have it). */
  steps?: StepPhases;
}

/** A ring as it starts: its machines still to run, its window, its rate control and gate. */
export interface BegunRing {
  ring: number;
  name: string;
  machines: Array<{ machineRunId: string; machineId: string }>;
  windowEndsAtMs: number;
  concurrency: number;
  /** null: no limit. */
  failureThreshold: number | null;
  gate: RingGate;
  /** As BegunRun's. */
  steps?: StepPhases;
}

/** What a ring's gate records as the workflow goes through it. */
export type RingStep =
  | { kind: 'SOAKING'; seconds: number }
  | { kind: 'WAITING_FOR_APPROVAL' }
  | { kind: 'HALTED'; reason: string }
  | { kind: 'RESUMED'; by: string }
  | { kind: 'PROMOTED'; approvedBy: string | null }
  | { kind: 'DONE' }
  | { kind: 'SKIPPED' };

export function createDeploymentActivities({ db, pubsub, now = () => new Date() }: DeploymentActivityDeps) {
  const withSteps = (deployment: DeploymentRow) => {
    const phases = stepPhases(deployment.steps);
    return phases ? { steps: phases } : {};
  };
  // Each change records its progress event in its own transaction; they are published once committed.
  const published = <T extends { progress: RunProgressEvent[] }>(runId: string, changed: T): T => {
    announceRunProgress(pubsub, runId, changed.progress);
    return changed;
  };

  /** One pass of handing over a machine run's install job (the activity registered as dispatchInstall). */
  const handOverInstallJobOnce = async (input: { machineRunId: string; graceSeconds: number }): Promise<JobResult> => {
    const { taskToken: token, attempt } = Context.current().info;
    const taskToken = Buffer.from(token).toString('base64');
    // Handed over in bulk at the run's start (or by an earlier attempt): only the token to attach.
    // With traces on, the agent's reports on the job join this activity's trace (agent.service.ts).
    const traceparent = currentTraceparent();
    const attached = await attachInstallActivity(db, input.machineRunId, taskToken, attempt > 1, traceparent);
    if (attached) {
      if (attached.result) return attached.result; // finished while no activity was waiting for it
      if (attached.reoffered) pubsub.publish('agentCommandQueued', attached.machineId, { commandId: attached.id });
      throw new CompleteAsyncError();
    }
    const machineRun = await findMachineRun(db, input.machineRunId);
    const run = machineRun && (await findRun(db, machineRun.runId));
    if (!machineRun || !run) throw ApplicationFailure.nonRetryable(`Machine run ${input.machineRunId} does not exist.`, 'NOT_FOUND');
    const deployment = await findDeployment(db, run.deploymentId, { includeDeleted: true });
    if (!deployment) throw ApplicationFailure.nonRetryable(`Deployment ${run.deploymentId} does not exist.`, 'NOT_FOUND');
    const machine = await findMachine(db, machineRun.machineId);
    if (!machine) throw ApplicationFailure.nonRetryable('The machine was removed before its updates could be installed.', 'MACHINE_REMOVED');
    const job = installJob(run, machineRun, (run.settings ?? runSettingsOf(deployment)).rebootSetting, await plannedUpdates(db, machineRun.id), input.graceSeconds, preScripts(deployment.steps, machine.agentCapabilities));
    const command = await handOverInstallJob(db, { machineId: machine.id, machineRunId: machineRun.id, job, taskToken, traceparent });
    if (command.result) return command.result; // finished while no activity was waiting for it
    const started = await setMachineRunStatus(db, machineRun.id, 'IN_PROGRESS', {}, () => sentLine(machine.name, job));
    pubsub.publish('agentCommandQueued', machine.id, { commandId: command.id });
    published(run.id, started);
    throw new CompleteAsyncError();
  };

  /** A ringed run's first step: its targets split into rings (rollout.ts), recorded; nothing planned yet. */
  const beginRingedRun = async (run: RunRow, deployment: DeploymentRow, settings: RunSettings, rings: Ring[], nothing: (reason: string, status: 'CANCELED' | 'FAILED') => Promise<BegunRun>): Promise<BegunRun> => {
    if (!run.startedAt) {
      const targets = await resolveTargets(db, { osType: deployment.osType, machineIds: deployment.machineIds, filter: deployment.targetFilter });
      if (targets.length === 0) {
        return nothing('No machine matched the deployment\'s targets when the run began (machines removed, disabled, or of the other OS type).', 'FAILED');
      }
      const assigned = assignRings(targets, rings);
      if (assigned.rings.every((r) => r.length === 0)) return nothing('None of the deployment\'s targets fell in any of its rings when the run began.', 'FAILED');
      await beginRingedRunRows(db, run.id, assigned.rings.map((machines, i) => ({ definition: rings[i]!, machines })));
      const lines = [`Run started: ${targets.length - assigned.unassigned.length} machine(s) in ${rings.length} ring(s) (${assigned.rings.map((m, i) => `${rings[i]!.name}: ${m.length}`).join(', ')}).`];
      if (assigned.unassigned.length > 0) {
        lines.push(`${assigned.unassigned.length} target machine(s) fall in no ring and are not part of this run: ${assigned.unassigned.slice(0, 10).map((m) => m.name).join(', ')}${assigned.unassigned.length > 10 ? ', …' : ''}.`);
      }
      published(run.id, await logRunChange(db, run.id, lines));
    }
    const recorded = await ringsOfRun(db, run.id);
    return {
      runId: run.id,
      // Each ring has a window of its own from when it starts (beginRing); this is the first one's, were it to start now.
      windowEndsAtMs: Date.now() + settings.windowMinutes * 60_000,
      machines: [],
      concurrency: 1,
      failureThreshold: null,
      rings: recorded.map((r) => ({ ring: r.ring, name: r.name, machineCount: r.machineCount })),
      ...withSteps(deployment),
    };
  };

  /**
   * The plan of each target machine under the run's settings, from their inputs read together, with
   * the updates it selected. `updateSet`: the run's frozen set (a ringed run's later rings install
   * only its members).
   */
  const planTargets = async (targets: readonly MachineRow[], settings: RunSettings, updateSet?: ReadonlySet<string> | null) => {
    const { pending, learned, decide } = await planningInputs(db, targets.map((t) => t.id));
    return targets.map((machine) => {
      const { results, rebootReserveSeconds, selected } = planRunMachine({
        machine,
        pending: pending.get(machine.id) ?? [],
        selection: selectionOf(settings),
        windowMinutes: settings.windowMinutes,
        rebootSetting: settings.rebootSetting,
        learnedSeconds: learned.get(machine.id),
        baseline: decide(machine.id, machine.osType, now()),
        ...(updateSet ? { updateSet } : {}),
      });
      return { machineId: machine.id, machineName: machine.name, results, rebootReserveSeconds, selected };
    });
  };

  /**
   * A ring's machines planned page by page, through planTargets as a run's are (beginPagedRun):
   * each page of `pageSize` machine runs, by key in (machine name, id) order, planned and written in
   * a transaction of its own that moves the ring's planning position and keeps the updates selected
   * so far; the activity heartbeats after each. A retry resumes after the last page written. Ends
   * the planning, the first ring fixing the run's update set from what its pages selected. Answers
   * that set when this call fixed it.
   */
  const planRingPages = async (run: RunRow, ring: number, settings: RunSettings, pageSize: number): Promise<UpdateSetMember[] | null> => {
    const frozen = run.updateSet ? new Set(run.updateSet.map((m) => updateSetKey({ name: m.name, availableVersion: m.version }))) : null;
    let planning = (await findRunRing(db, run.id, ring))?.planning ?? null;
    while (planning) {
      const page = await ringMachineRunsPage(db, run.id, ring, planning.after, pageSize);
      if (page.length === 0) break;
      // A machine removed since the run began has no plan: its install step says so.
      const live = new Map((await findMachines(db, page.map((m) => m.machineId))).map((m) => [m.id, m]));
      const plans = await planTargets(page.flatMap((m) => (live.has(m.machineId) ? [live.get(m.machineId)!] : [])), settings, frozen);
      const runOf = new Map(page.map((m) => [m.machineId, m.machineRunId]));
      const last = page.at(-1)!;
      const selected = frozen ? [] : freezeUpdateSet([...planning.selected.map((m) => ({ name: m.name, availableVersion: m.version })), ...plans.flatMap((p) => p.selected)]);
      const to = { after: { name: last.machineName, id: last.machineRunId }, planned: planning.planned + plans.length, selected };
      planning = (await planRingPage(db, { runId: run.id, ring, from: planning, to, plans: plans.map((p) => ({ machineRunId: runOf.get(p.machineId)!, results: p.results, rebootReserveSeconds: p.rebootReserveSeconds })) })).planning;
      Context.current().heartbeat(planning?.planned);
    }
    return (await endRingPlanning(db, run.id, ring, !frozen)).updateSet;
  };

  /**
   * A batched run's machines planned page by page (docs/deployments.md, "Runs of any size"): the
   * run begins (IN_PROGRESS, its window fixed), then each page of `pageSize` targets, read by key
   * in (name, id) order, is planned and written in a transaction of its own that moves the run's
   * planning position; the activity heartbeats after each. A retry (the worker died) resumes after
   * the last page written. Its memory and each transaction hold one page, whatever the run's size.
   * The job stream shows the planning: a line when it begins, one every PLAN_LINE_PAGES pages, one
   * when every machine is planned.
   */
  const beginPagedRun = async (
    run: RunRow,
    deployment: DeploymentRow,
    settings: RunSettings,
    pageSize: number,
    cap: number,
    nothing: (reason: string, status: 'CANCELED' | 'FAILED') => Promise<BegunRun>,
  ): Promise<BegunRun & { machineCount: number }> => {
    const windowEndsAt = run.windowEndsAt ?? new Date(Date.now() + settings.windowMinutes * 60_000);
    if (!run.startedAt) {
      published(run.id, await beginRunPlanning(db, run.id, windowEndsAt, `Run started: planning its machines ${pageSize} at a time, window until ${windowEndsAt.toISOString()}.`));
      run = (await findRun(db, run.id))!;
    }
    const target = { osType: deployment.osType, machineIds: deployment.machineIds, filter: deployment.targetFilter };
    let planning = run.planning;
    for (let page = 1; planning; page++) {
      const targets = await targetsPage(db, target, planning.after, pageSize, run.startedAt!);
      if (targets.length === 0) break;
      const plans = await planTargets(targets, settings);
      const line = page % PLAN_LINE_PAGES === 0 ? `Planning: ${planning.planned + plans.length} machine(s) planned so far.` : undefined;
      planning = published(run.id, await planRunPage(db, run.id, planning, plans, line)).planning;
      Context.current().heartbeat(planning?.planned);
    }
    const { planned } = published(run.id, await endRunPlanning(db, run.id, (n) => `Planned: ${n} machine(s).`));
    if (planned === 0) {
      return { ...(await nothing('No machine matched the deployment\'s targets when the run began (machines removed, disabled, or of the other OS type).', 'FAILED')), machineCount: 0 };
    }
    const threshold = failureThreshold(settings.maxFailures, planned);
    return {
      runId: run.id,
      windowEndsAtMs: windowEndsAt.getTime(),
      machines: [],
      machineCount: planned,
      concurrency: maxConcurrentMachines(settings.maxConcurrent, planned, cap),
      failureThreshold: Number.isFinite(threshold) ? threshold : null,
      ...withSteps(deployment),
    };
  };

  /**
   * Creates a scheduled occurrence's run (one started now comes with the run the API created),
   * resolves its targets at this moment, and plans every machine from its latest assessment.
   * Idempotent: a retry finds the run and its plans already there. `cap`: the most machines that
   * may run at once (a run of child workflows has Temporal's; a batched run its own). `paged`: a
   * batched run's, planned page by page (beginPagedRun).
   */
  const begin = async (input: BeginRunInput, cap: number, paged = false): Promise<BegunRun & { machineCount?: number }> => {
    const deployment = await findDeployment(db, input.deploymentId, { includeDeleted: true });
    if (!deployment) throw ApplicationFailure.nonRetryable(`Deployment ${input.deploymentId} does not exist.`, 'NOT_FOUND');
    // Each run row is created once: a run started now by the API (runNow), before its workflow,
    // which is given its id; a scheduled occurrence here (a retry finds it by its workflow id).
    let run: RunRow;
    if (input.runId) {
      const found = await findRun(db, input.runId);
      if (!found) throw ApplicationFailure.nonRetryable(`Run ${input.runId} does not exist.`, 'NOT_FOUND');
      run = found;
    } else {
      const ensured = await ensureRun(db, { deploymentId: deployment.id, workflowId: input.workflowId, trigger: input.trigger });
      run = ensured.run;
      if (ensured.created) announceRunStarted(pubsub, deployment.id, run.id);
    }
    // Ended before it began: the API canceled it when it could not tell whether this workflow
    // had started (Temporal unavailable). It did: nothing runs, and the run stays as it is.
    if (run.endedAt && !run.startedAt) return { runId: run.id, windowEndsAtMs: null, machines: [], concurrency: 1, failureThreshold: null };
    const nothing = async (reason: string, status: 'CANCELED' | 'FAILED'): Promise<BegunRun> => {
      published(run.id, await beginRun(db, run.id, new Date(), []));
      published(run.id, await finishRun(db, run.id, status, reason, reason));
      return { runId: run.id, windowEndsAtMs: null, machines: [], concurrency: 1, failureThreshold: null };
    };
    if (!run.startedAt) {
      if (deployment.deletedAt) return nothing('The deployment was deleted before this run began.', 'CANCELED');
      if (deployment.paused && input.trigger === 'SCHEDULE') return nothing('The deployment is paused: this occurrence did not run.', 'CANCELED');
    }
    // A run that began keeps the shape and settings it began with, whatever the deployment says now.
    if (!run.startedAt) run = await keepRunSettings(db, run.id, runSettingsOf(deployment));
    const settings = run.settings ?? runSettingsOf(deployment);
    const ringed = run.startedAt ? (await ringsOfRun(db, run.id)).length > 0 : (deployment.rings?.length ?? 0) > 0;
    if (ringed) return beginRingedRun(run, deployment, settings, deployment.rings ?? [], nothing);
    // A retry after the planning ended (or of a run planned in one transaction, before paged planning) only counts the machine runs.
    if (paged) return beginPagedRun(run, deployment, settings, input.planMachines ?? RUN_PLAN_MACHINES, cap, nothing);
    const windowEndsAt = run.windowEndsAt ?? new Date(Date.now() + settings.windowMinutes * 60_000);
    let machines: Array<{ machineRunId: string; machineId: string }>;
    if (run.startedAt) {
      machines = (await machineRunsOf(db, run.id)).filter((m) => stillToRun(m.status)).map((m) => ({ machineRunId: m.id, machineId: m.machineId }));
    } else {
      const targets = await resolveTargets(db, { osType: deployment.osType, machineIds: deployment.machineIds, filter: deployment.targetFilter });
      if (targets.length === 0) {
        return nothing('No machine matched the deployment\'s targets when the run began (machines removed, disabled, or of the other OS type).', 'FAILED');
      }
      const plans = await planTargets(targets, settings);
      const started = `Run started: ${targets.length} machine(s), window until ${windowEndsAt.toISOString()}.`;
      machines = published(run.id, await beginRun(db, run.id, windowEndsAt, plans, started)).machines;
    }
    const threshold = failureThreshold(settings.maxFailures, machines.length);
    return {
      runId: run.id,
      windowEndsAtMs: windowEndsAt.getTime(),
      machines,
      concurrency: maxConcurrentMachines(settings.maxConcurrent, machines.length, cap),
      failureThreshold: Number.isFinite(threshold) ? threshold : null,
      ...withSteps(deployment),
    };
  };

  return {
    ...createStepActivities({ db, pubsub }),
    /**
     * Creates a scheduled occurrence's run (one started now comes with the run the API created),
     * resolves its targets at this moment, and plans every machine from its latest assessment.
     * Idempotent: a retry finds the run and its plans already there.
     */
    async beginDeploymentRun(input: BeginRunInput): Promise<BegunRun> {
      return begin(input, MAX_RUNNING_MACHINES);
    },

    /**
     * beginDeploymentRun for a batched run (docs/deployments.md): the same run begun, without its
     * machine list (a run of 100,000 machines would not fit in an activity's result), and with a
     * batched run's own concurrency limit.
     */
    async beginBatchedRun(input: BeginRunInput): Promise<Omit<BegunRun, 'machines'> & { machineCount: number }> {
      const { machines, machineCount, ...begun } = await begin(input, MAX_BATCHED_RUNNING_MACHINES, true);
      return { ...begun, machineCount: machineCount ?? machines.length };
    },

    /**
     * Hands over the machine run's install job to its agent and returns without completing: the API
     * completes this activity with the agent's result (and relays the agent's progress as
     * heartbeats). The job is created once per machine run, so a retry resumes it. PostgreSQL
     * away is waited out here: this activity has one retry only (see machineRun.ts), which an
     * outage of a few seconds must not use up and fail the machine.
     *
     * "Hand over" is the one name for giving an agent its install job (handOverInstallJob,
     * handOverInstallJobs); this activity keeps the name it is registered under, dispatchInstall,
     * because the histories of machine runs in flight call it by that name (renaming it would break
     * their replay), and traces name its spans after it.
     */
    async dispatchInstall(input: { machineRunId: string; graceSeconds: number }): Promise<JobResult> {
      return whileDatabaseAway(() => handOverInstallJobOnce(input), { pause: pauseInActivity });
    },

    /**
     * Hands over the install jobs of the run's first machines (as many as may run at once) to their
     * agents in one transaction, before any machine run's workflow starts: handing over then costs one
     * activity for the whole batch instead of one workflow start and one activity per machine. Each
     * machine run's workflow later attaches to its job (dispatchInstall). Machine runs no longer
     * running (ended, rebooting), or whose machine was removed, are left to their workflow. Idempotent:
     * a job is created once per machine run.
     */
    async handOverInstallJobs(input: { runId: string; machineRunIds: string[]; graceSeconds: number }): Promise<{ handedOver: number }> {
      const run = await findRun(db, input.runId);
      if (!run) throw ApplicationFailure.nonRetryable(`Run ${input.runId} does not exist.`, 'NOT_FOUND');
      const deployment = await findDeployment(db, run.deploymentId, { includeDeleted: true });
      if (!deployment) throw ApplicationFailure.nonRetryable(`Deployment ${run.deploymentId} does not exist.`, 'NOT_FOUND');
      // Machines with PRE calls to make first, or PRE scripts their agent cannot run, get their job
      // from their machine run's workflow, after its PRE step calls (runStepCalls).
      const steps = deployment.steps ?? [];
      if (!handsOverAtRunStart(steps)) return { handedOver: 0 };
      const sources = (await installJobSources(db, input.machineRunIds)).filter((m) => handedOverAtRunStart(steps, m));
      const jobs = sources.map((m) => {
        const job = installJob(run, { id: m.machineRunId, rebootReserveSeconds: m.rebootReserveSeconds }, (run.settings ?? runSettingsOf(deployment)).rebootSetting, m.updates, input.graceSeconds, preScripts(steps, m.agentCapabilities));
        return { machineId: m.machineId, machineRunId: m.machineRunId, job, logLine: sentLine(m.machineName, job) };
      });
      // With traces on, a result that comes before its machine run's activity attaches joins the run's trace here.
      const handedOver = await storeHandOver(db, run.id, jobs, currentTraceparent());
      // Wakes the agents' long-polls after the commit: one NOTIFY per 150 machines, not one per machine.
      announceAgentCommands(pubsub, handedOver.commands);
      published(run.id, handedOver);
      return { handedOver: handedOver.commands.length };
    },

    async markRebooting(input: { machineRunId: string }): Promise<void> {
      const { row, progress } = await setMachineRunStatus(db, input.machineRunId, 'REBOOTING', {}, (m) => `${m.machineName}: rebooting; waiting for the agent to come back.`);
      if (row) announceRunProgress(pubsub, row.runId, progress);
    },

    /** Whether the machine checked in with another boot id than the one it had before the reboot. */
    async machineReturned(input: { machineId: string; bootIdBefore: string | null }): Promise<boolean> {
      const machine = await findMachine(db, input.machineId);
      return Boolean(machine?.bootId && machine.bootId !== input.bootIdBefore);
    },

    /**
     * Settles the machine run from its update results and what happened around them. With
     * `requestAssessment` (the install went through), first asks the agent for a fresh assessment,
     * so that compliance shows the result: one activity per machine fewer than a step of its own.
     */
    /** A flag left out is false, an outcome or error left out null (a batched run sends only what happened). */
    async finishMachineRun(input: { machineRunId: string; requestAssessment?: boolean; timedOut?: boolean; rebootFailed?: boolean; agentLost?: boolean; canceled?: boolean; jobFailed?: boolean; rebootOutcome?: string | null; error?: string | null }): Promise<MachineRunStatus> {
      const machineRun = await findMachineRun(db, input.machineRunId);
      if (!machineRun) throw ApplicationFailure.nonRetryable(`Machine run ${input.machineRunId} does not exist.`, 'NOT_FOUND');
      if (input.requestAssessment) {
        // Before the end is recorded, so that a retry after a crash in between still asks (a waiting request is not queued twice).
        const command = await queueAgentCommand(db, machineRun.machineId, 'ASSESS');
        if (command.queued) pubsub.publish('agentCommandQueued', machineRun.machineId, { commandId: command.id });
      }
      if (machineRun.endedAt) return machineRun.status;
      const results = await updateResultsOf(db, machineRun.id);
      const status = settledMachineRunStatus(results.map((r) => r.status), {
        timedOut: input.timedOut ?? false,
        rebootFailed: input.rebootFailed ?? false,
        agentLost: input.agentLost ?? false,
        canceled: input.canceled ?? false,
        jobFailed: input.jobFailed ?? false,
      });
      const line = `${machineRun.machineName}: ${status}${input.error ? `: ${input.error}` : ''}${input.rebootOutcome ? ` (reboot: ${input.rebootOutcome})` : ''}.`;
      const { row } = published(machineRun.runId, await finishMachineRun(db, machineRun.id, { status, rebootOutcome: input.rebootOutcome ?? null, error: input.error ?? null }, () => line));
      return row?.status ?? status;
    },

    /**
     * Starts a ring of a ringed run: plans its machines from their latest assessments (the first
     * ring that starts fixes the run's update set from its plans; later rings install only its members), opens the
     * ring's window, and answers what the workflow needs to run it. Idempotent: a retry finds the
     * ring started and answers the same.
     */
    async beginRing(input: { runId: string; ring: number; batched?: boolean; planMachines?: number }): Promise<BegunRing> {
      const run = await findRun(db, input.runId);
      if (!run) throw ApplicationFailure.nonRetryable(`Run ${input.runId} does not exist.`, 'NOT_FOUND');
      const deployment = await findDeployment(db, run.deploymentId, { includeDeleted: true });
      if (!deployment) throw ApplicationFailure.nonRetryable(`Deployment ${run.deploymentId} does not exist.`, 'NOT_FOUND');
      const recorded = await findRunRing(db, run.id, input.ring);
      if (!recorded) throw ApplicationFailure.nonRetryable(`Run ${run.id} has no ring ${input.ring}.`, 'NOT_FOUND');
      // The ring and the settings as the run began (the deployment may have been edited since).
      const ring = recorded.definition;
      const settings = run.settings ?? runSettingsOf(deployment);
      const gate: RingGate = ring.gate;
      // Its machine runs were recorded when the run began: as many as the ring counts.
      const machineCount = recorded.machineCount;
      // Planned page by page (planRingPages) once the ring has started; a retry after a crash resumes
      // the planning where it was, and one after the planning ended finds nothing left to plan.
      const begun = await beginRingPlanning(db, run.id, input.ring, new Date(Date.now() + settings.windowMinutes * 60_000));
      const windowEndsAt = begun.windowEndsAt;
      if (begun.started) published(run.id, await logRunChange(db, run.id, [`${recorded.name} started: ${machineCount} machine(s), window until ${windowEndsAt.toISOString()}.`]));
      const updateSet = await planRingPages(run, input.ring, settings, input.planMachines ?? RUN_PLAN_MACHINES);
      if (updateSet) {
        published(run.id, await logRunChange(db, run.id, [`The run's update set is fixed: ${updateSet.length} update(s)${updateSet.length > 0 ? ` (${updateSet.slice(0, 10).map((m) => `${m.name}=${m.version}`).join(', ')}${updateSet.length > 10 ? ', …' : ''})` : ''}; later rings install only these.`]));
      }
      // A batched run pages the ring's machines from PostgreSQL itself (advanceMachines): none in the answer.
      const running = input.batched ? [] : (await machineRunsOfRing(db, run.id, input.ring)).filter((m) => stillToRun(m.status)).map((m) => ({ machineRunId: m.id, machineId: m.machineId }));
      const threshold = failureThreshold(settings.maxFailures, machineCount);
      return {
        ring: input.ring,
        name: recorded.name,
        machines: running,
        windowEndsAtMs: windowEndsAt.getTime(),
        concurrency: maxConcurrentMachines(ring.maxConcurrent ?? settings.maxConcurrent, machineCount, input.batched ? MAX_BATCHED_RUNNING_MACHINES : MAX_RUNNING_MACHINES),
        failureThreshold: Number.isFinite(threshold) ? threshold : null,
        gate,
        ...withSteps(deployment),
      };
    },

    /** A ring's last machine has finished: the machines it never started are settled, and its gate's numbers counted. */
    async endRing(input: { runId: string; ring: number; notStarted: string[]; notStartedReason: string | null }): Promise<{ total: number; failed: number }> {
      for (const machineRunId of input.notStarted) {
        published(input.runId, await finishMachineRun(db, machineRunId, { status: 'NOT_STARTED', rebootOutcome: null, error: input.notStartedReason }));
      }
      const { byStatus } = await runOutcomeCounts(db, input.runId, input.ring);
      const counted = Object.entries(byStatus) as Array<[MachineRunStatus, number]>;
      const total = counted.reduce((n, [, c]) => n + c, 0);
      const failed = counted.filter(([status]) => failedAtGate(status)).reduce((n, [, c]) => n + c, 0);
      const row = await setRingState(db, input.runId, input.ring, { failedCount: failed, ended: true });
      // After the ring's change, so a reader of the RUN event sees it; a retry records them again.
      published(input.runId, await logRunChange(db, input.runId, [`${row?.name ?? `Ring ${input.ring}`} finished: ${total - failed} of ${total} machine(s) without failure.`]));
      return { total, failed };
    },

    /** Records where a ring's gate is (soaking, waiting for approval, halted, promoted...), for the API and the operator. */
    async recordRingStep(input: { runId: string; ring: number; step: RingStep }): Promise<void> {
      const { step } = input;
      let row;
      let line: string;
      const name = async () => (await findRunRing(db, input.runId, input.ring))?.name ?? `Ring ${input.ring}`;
      switch (step.kind) {
        case 'SOAKING':
          row = await setRingState(db, input.runId, input.ring, { status: 'SOAKING', soakEndsAt: new Date(Date.now() + step.seconds * 1000) });
          line = `${row?.name ?? (await name())}: soaking for ${step.seconds} s before its gate goes on.`;
          break;
        case 'WAITING_FOR_APPROVAL':
          row = await setRingState(db, input.runId, input.ring, { status: 'WAITING_FOR_APPROVAL' });
          line = `${row?.name ?? (await name())}: waiting for an operator's approval (approveRing) before the next ring starts.`;
          break;
        case 'HALTED':
          row = await setRingState(db, input.runId, input.ring, { status: 'HALTED', reason: step.reason });
          await setRunHalted(db, input.runId, step.reason, { number: input.ring, name: row?.name ?? `Ring ${input.ring}` });
          line = `Run halted: ${step.reason}`;
          break;
        case 'RESUMED':
          row = await setRingState(db, input.runId, input.ring, { status: 'PROMOTED', decidedBy: step.by, decided: true });
          await setRunHalted(db, input.runId, null);
          line = `${row?.name ?? (await name())}: resumed by ${step.by}; the next ring starts.`;
          break;
        case 'PROMOTED':
          row = await setRingState(db, input.runId, input.ring, { status: 'PROMOTED', ...(step.approvedBy ? { decidedBy: step.approvedBy, decided: true } : {}) });
          line = `${row?.name ?? (await name())}: gate passed${step.approvedBy ? ` (approved by ${step.approvedBy})` : ''}; the next ring starts.`;
          break;
        case 'DONE':
          row = await setRingState(db, input.runId, input.ring, { status: 'DONE' });
          line = `${row?.name ?? (await name())}: done (the last ring).`;
          break;
        case 'SKIPPED':
          row = await setRingState(db, input.runId, input.ring, { status: 'SKIPPED', ended: true, failedCount: 0 });
          line = `${row?.name ?? (await name())}: no machine in this ring; skipped.`;
          break;
      }
      // After the change above, so a reader of the RUN event sees it; a retried activity records the line and event again.
      published(input.runId, await logRunChange(db, input.runId, [line]));
    },

    /** Machines the run never started (window over, failure threshold, cancel), then the run's status. */
    async finishDeploymentRun(input: { runId: string; canceled: boolean; notStarted: string[]; notStartedReason: string | null; reason?: string | null; ringed?: boolean }): Promise<string> {
      // A ringed run's later rings were never handed to the workflow machine by machine: whatever is still PENDING never started.
      const notStarted = input.ringed ? [...new Set([...input.notStarted, ...(await pendingMachineRunIds(db, input.runId))])] : input.notStarted;
      for (const machineRunId of notStarted) {
        published(input.runId, await finishMachineRun(db, machineRunId, { status: input.canceled ? 'CANCELED' : 'NOT_STARTED', rebootOutcome: null, error: input.notStartedReason }));
      }
      const run = await findRun(db, input.runId);
      if (!run) throw ApplicationFailure.nonRetryable(`Run ${input.runId} does not exist.`, 'NOT_FOUND');
      if (run.endedAt) return run.status;
      // Counted in the database: a run of a million machines is not read into memory to end it.
      const status = deploymentRunStatusFromCounts(await runOutcomeCounts(db, input.runId), input.canceled);
      // The rings close before the run ends: whoever sees the run's end sees no ring still open.
      if (input.ringed) await closeOpenRings(db, input.runId, input.reason ?? null);
      published(input.runId, await finishRun(db, input.runId, status, input.canceled ? (input.reason ?? 'Canceled by an operator.') : null, `Run ended: ${status}.`));
      return status;
    },
  };
}

/** The install job a machine run hands its agent: its planned updates in order, the window's end, the reboot setting and the reserve its plan kept. */
export function installJob(
  run: { id: string; windowEndsAt: Date | null },
  machineRun: { id: string; rebootReserveSeconds: number },
  rebootSetting: InstallJob['rebootSetting'],
  updates: UpdateResultRow[],
  graceSeconds: number,
  scripts: InstallJob['scripts'] = [],
): InstallJob {
  const jobUpdates: JobUpdate[] = updates.map((u) => ({
    name: u.name,
    arch: u.arch === '' ? null : u.arch,
    installedVersion: u.installedVersion,
    availableVersion: u.targetVersion,
    classification: u.classification,
    severity: u.severity,
    advisoryIds: [],
    cveIds: [],
    rebootSuggested: u.rebootSuggested,
    repository: null,
    expectedSeconds: u.expectedSeconds,
  }));
  return {
    runId: run.id,
    machineRunId: machineRun.id,
    deadline: run.windowEndsAt!.toISOString(),
    graceSeconds,
    rebootSetting,
    // The agent checks each update against the time left minus it.
    rebootReserveSeconds: machineRun.rebootReserveSeconds,
    updates: jobUpdates,
    // Only when there are some: the job of a deployment without steps stays as it was.
    ...(scripts && scripts.length > 0 ? { scripts } : {}),
  };
}

/** The PRE scripts an install job carries: none for an agent that cannot run them (runStepCalls has failed its first one). */
export function preScripts(steps: readonly DeploymentStep[] | null | undefined, capabilities: readonly string[]): InstallJob['scripts'] {
  return carriesScripts(capabilities) ? scriptJobSteps(steps, 'PRE') : [];
}

export const sentLine = (machineName: string, job: InstallJob) => `${machineName}: install job sent to the agent (${job.updates.length} update(s)).`;

/**
 * Between two tries of an activity's step while PostgreSQL is away (whileDatabaseAway): says so,
 * heartbeats so that the activity is seen alive meanwhile, and sleeps as the activity, so that its
 * cancellation or its own timeout ends the wait.
 */
function pauseInActivity(error: unknown): Promise<void> {
  const context = Context.current();
  context.log.warn('PostgreSQL is unavailable; trying again in a second', { error: String(error) });
  context.heartbeat();
  return context.sleep(1000);
}
