import { CompleteAsyncError, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { InstallJob, JobResult, JobUpdate } from '../agent/protocol.js';
import { unavailableDependency } from '../availability.js';
import { isDatabaseUnavailable, type Db } from '../db/client.js';
import { findDeployment, selectionOf } from '../db/deployments.js';
import { queueAgentCommand } from '../db/agentCommands.js';
import { findMachine, resolveTargets } from '../db/machines.js';
import {
  attachInstallActivity,
  beginRun,
  ensureInstallCommand,
  ensureRun,
  findMachineRun,
  findRun,
  finishMachineRun,
  handOverInstallJobs as storeHandOver,
  installJobSources,
  finishRun,
  machineRunsOf,
  planningInputs,
  plannedUpdates,
  setMachineRunStatus,
  outcomeCountsByMachineRun,
  updateResultsOf,
  type PlannedResult,
  type UpdateResultRow,
} from '../db/runs.js';
import type { RunProgressEvent } from '../db/runProgress.js';
import { announceAgentCommands, announceRunProgress, announceRunStarted, type FleetPubSub } from '../events/pubsub.js';
import { deploymentRunStatus, failureThreshold, machineRunStatus, maxConcurrentMachines, planMachine, type MachineRunStatus, type UpdateResultStatus } from '../fleet/planning.js';
import { rebootForecast, rebootReserveSeconds } from '../fleet/reboot.js';

export interface DeploymentActivityDeps {
  db: Db;
  pubsub: FleetPubSub;
}

export interface BeginRunInput {
  deploymentId: string;
  workflowId: string;
  /** Given when the API created the run (run now); absent for a scheduled occurrence. */
  runId?: string;
  trigger: 'SCHEDULE' | 'MANUAL';
}

export interface BegunRun {
  runId: string;
  /** null: nothing to do (the reason is on the run, which is already finished). */
  windowEndsAtMs: number | null;
  machines: Array<{ machineRunId: string; machineId: string }>;
  concurrency: number;
  /** null: no limit. */
  failureThreshold: number | null;
}

export function createDeploymentActivities({ db, pubsub }: DeploymentActivityDeps) {
  // Each change records its progress event in its own transaction; they are published once committed.
  const published = <T extends { progress: RunProgressEvent[] }>(runId: string, changed: T): T => {
    announceRunProgress(pubsub, runId, changed.progress);
    return changed;
  };

  /** dispatchInstall's one pass (see there). */
  const dispatchInstallOnce = async (input: { machineRunId: string; graceSeconds: number }): Promise<JobResult> => {
    const { taskToken: token, attempt } = Context.current().info;
    const taskToken = Buffer.from(token).toString('base64');
    // Handed over in bulk at the run's start (or by an earlier attempt): only the token to attach.
    const attached = await attachInstallActivity(db, input.machineRunId, taskToken, attempt > 1);
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
    const job = installJob(run, machineRun.id, deployment.rebootSetting, machine, await plannedUpdates(db, machineRun.id), input.graceSeconds);
    const command = await ensureInstallCommand(db, { machineId: machine.id, machineRunId: machineRun.id, job, taskToken });
    if (command.result) return command.result; // finished while no activity was waiting for it
    const started = await setMachineRunStatus(db, machineRun.id, 'IN_PROGRESS', {}, () => sentLine(machine.name, job));
    pubsub.publish('agentCommandQueued', machine.id, { commandId: command.id });
    published(run.id, started);
    throw new CompleteAsyncError();
  };

  return {
    /**
     * Records the run, resolves its targets at this moment, and plans every machine from its latest
     * assessment. Idempotent: a retry finds the run and its plans already there.
     */
    async beginDeploymentRun(input: BeginRunInput): Promise<BegunRun> {
      const deployment = await findDeployment(db, input.deploymentId, { includeDeleted: true });
      if (!deployment) throw ApplicationFailure.nonRetryable(`Deployment ${input.deploymentId} does not exist.`, 'NOT_FOUND');
      const { run, created } = await ensureRun(db, { id: input.runId, deploymentId: deployment.id, workflowId: input.workflowId, trigger: input.trigger });
      if (created) announceRunStarted(pubsub, deployment.id, run.id);
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
      const windowEndsAt = run.windowEndsAt ?? new Date(Date.now() + deployment.windowMinutes * 60_000);
      let machines: Array<{ machineRunId: string; machineId: string }>;
      if (run.startedAt) {
        machines = (await machineRunsOf(db, run.id)).filter((m) => m.status === 'PENDING' || m.status === 'IN_PROGRESS' || m.status === 'REBOOTING').map((m) => ({ machineRunId: m.id, machineId: m.machineId }));
      } else {
        const targets = await resolveTargets(db, { osType: deployment.osType, machineIds: deployment.machineIds, filter: deployment.targetFilter });
        if (targets.length === 0) {
          return nothing('No machine matched the deployment\'s targets when the run began (machines removed, disabled, or of the other OS type).', 'FAILED');
        }
        const { pending, learned } = await planningInputs(db, targets.map((t) => t.id));
        const windowSeconds = deployment.windowMinutes * 60;
        const plans = targets.map((machine) => {
          const plan = planMachine({
            pending: pending.get(machine.id) ?? [],
            selection: selectionOf(deployment),
            backend: machine.packageManager ?? 'apt',
            osType: machine.osType,
            windowSeconds,
            rebootSetting: deployment.rebootSetting,
            rebootPending: machine.rebootPending,
            learnedSeconds: learned.get(machine.id),
          });
          const results: PlannedResult[] = [
            ...plan.toInstall.map((u) => ({ update: u, status: 'PENDING' as const, predictedStatus: 'SUCCEEDED' as const, orderIndex: u.order, expectedSeconds: u.expectedSeconds, reason: null })),
            ...plan.predictedNotAttempted.map((u) => ({ update: u, status: 'PENDING' as const, predictedStatus: 'NOT_ATTEMPTED' as const, orderIndex: u.order, expectedSeconds: u.expectedSeconds, reason: null })),
            ...plan.notSelected.map((n, i) => ({ update: n.update, status: 'NOT_SELECTED' as const, predictedStatus: 'NOT_SELECTED' as const, orderIndex: 10_000 + i, expectedSeconds: 0, reason: n.reason })),
          ];
          return { machineId: machine.id, machineName: machine.name, results, reserve: plan.rebootReserveSeconds };
        });
        const started = `Run started: ${targets.length} machine(s), window until ${windowEndsAt.toISOString()}.`;
        machines = published(run.id, await beginRun(db, run.id, windowEndsAt, plans, started)).machines;
      }
      const threshold = failureThreshold(deployment.maxFailures, machines.length);
      return {
        runId: run.id,
        windowEndsAtMs: windowEndsAt.getTime(),
        machines,
        concurrency: maxConcurrentMachines(deployment.maxConcurrent, machines.length),
        failureThreshold: Number.isFinite(threshold) ? threshold : null,
      };
    },

    /**
     * Hands the machine's install job to its agent and returns without completing: the API
     * completes this activity with the agent's result (and relays the agent's progress as
     * heartbeats). The job is created once per machine run, so a retry resumes it. PostgreSQL
     * away is waited out here: this activity has one retry only (see machineRun.ts), which an
     * outage of a few seconds must not use up and fail the machine.
     */
    async dispatchInstall(input: { machineRunId: string; graceSeconds: number }): Promise<JobResult> {
      return whileDatabaseAway(() => dispatchInstallOnce(input));
    },

    /**
     * Hands the install jobs of the run's first machines (as many as may run at once) to their
     * agents in one transaction, before any machine run's workflow starts: dispatch then costs one
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
      const sources = (await installJobSources(db, input.machineRunIds)).filter((m) => m.status === 'PENDING' || m.status === 'IN_PROGRESS');
      const jobs = sources.map((m) => {
        const job = installJob(run, m.machineRunId, deployment.rebootSetting, m, m.updates, input.graceSeconds);
        return { machineId: m.machineId, machineRunId: m.machineRunId, job, logLine: sentLine(m.machineName, job) };
      });
      const handedOver = await storeHandOver(db, run.id, jobs);
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
    async finishMachineRun(input: { machineRunId: string; requestAssessment?: boolean; timedOut: boolean; rebootFailed: boolean; agentLost: boolean; canceled: boolean; jobFailed: boolean; rebootOutcome: string | null; error: string | null }): Promise<MachineRunStatus> {
      const machineRun = await findMachineRun(db, input.machineRunId);
      if (!machineRun) throw ApplicationFailure.nonRetryable(`Machine run ${input.machineRunId} does not exist.`, 'NOT_FOUND');
      if (input.requestAssessment) {
        // Before the end is recorded, so that a retry after a crash in between still asks (a waiting request is not queued twice).
        const command = await queueAgentCommand(db, machineRun.machineId, 'ASSESS');
        if (command.queued) pubsub.publish('agentCommandQueued', machineRun.machineId, { commandId: command.id });
      }
      if (machineRun.endedAt) return machineRun.status;
      const results = await updateResultsOf(db, machineRun.id);
      const settled = results.map((r) => (r.status === 'PENDING' ? 'NOT_ATTEMPTED' : r.status === 'IN_PROGRESS' ? 'FAILED' : r.status)) as UpdateResultStatus[];
      const status = machineRunStatus(settled, input);
      const line = `${machineRun.machineName}: ${status}${input.error ? `: ${input.error}` : ''}${input.rebootOutcome ? ` (reboot: ${input.rebootOutcome})` : ''}.`;
      const { row } = published(machineRun.runId, await finishMachineRun(db, machineRun.id, { status, rebootOutcome: input.rebootOutcome, error: input.error }, () => line));
      return row?.status ?? status;
    },

    /** Machines the run never started (window over, failure threshold, cancel), then the run's status. */
    async finishDeploymentRun(input: { runId: string; canceled: boolean; notStarted: string[]; notStartedReason: string | null }): Promise<string> {
      for (const machineRunId of input.notStarted) {
        published(input.runId, await finishMachineRun(db, machineRunId, { status: input.canceled ? 'CANCELED' : 'NOT_STARTED', rebootOutcome: null, error: input.notStartedReason }));
      }
      const run = await findRun(db, input.runId);
      if (!run) throw ApplicationFailure.nonRetryable(`Run ${input.runId} does not exist.`, 'NOT_FOUND');
      if (run.endedAt) return run.status;
      const outcomes = new Map((await outcomeCountsByMachineRun(db, input.runId)).map((o) => [o.machineRunId, o]));
      const machineRuns = (await machineRunsOf(db, input.runId)).map((m) => ({
        status: m.status as MachineRunStatus,
        failedUpdates: outcomes.get(m.id)?.failed ?? 0,
        succeededUpdates: outcomes.get(m.id)?.succeeded ?? 0,
      }));
      const status = deploymentRunStatus(machineRuns, input.canceled);
      published(input.runId, await finishRun(db, input.runId, status, input.canceled ? 'Canceled by an operator.' : null, `Run ended: ${status}.`));
      return status;
    },
  };
}

/** The install job a machine run hands its agent: its planned updates in order, the window's end, the reboot setting and reserve. */
function installJob(
  run: { id: string; windowEndsAt: Date | null },
  machineRunId: string,
  rebootSetting: InstallJob['rebootSetting'],
  machine: { osType: 'LINUX' | 'WINDOWS'; rebootPending: boolean; packageManager: string | null },
  updates: UpdateResultRow[],
  graceSeconds: number,
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
    machineRunId,
    deadline: run.windowEndsAt!.toISOString(),
    graceSeconds,
    rebootSetting,
    // The reserve the plan kept, by the same rule on the same updates (planMachine keeps it for every
    // selected update): the agent checks each update against the time left minus it.
    rebootReserveSeconds: rebootReserveSeconds(
      rebootForecast({ setting: rebootSetting, backend: machine.packageManager ?? 'apt', machineRebootPending: machine.rebootPending, updates: jobUpdates }),
      machine.osType,
    ),
    updates: jobUpdates,
  };
}

const sentLine = (machineName: string, job: InstallJob) => `${machineName}: install job sent to the agent (${job.updates.length} update(s)).`;

/**
 * Runs `step` again, a second apart, while it fails because PostgreSQL is away, heartbeating so
 * that the activity is seen alive meanwhile; any other failure is thrown. Stops when the activity
 * is cancelled or its own timeout ends it.
 */
async function whileDatabaseAway<T>(step: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await step();
    } catch (error) {
      if (unavailableDependency(error, [['DATABASE', isDatabaseUnavailable]]) !== 'DATABASE') throw error;
      const context = Context.current();
      context.log.warn('PostgreSQL is unavailable; trying again in a second', { error: String(error) });
      context.heartbeat();
      await context.sleep(1000);
    }
  }
}
