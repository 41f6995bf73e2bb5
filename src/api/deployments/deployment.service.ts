import { randomUUID } from 'node:crypto';
import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import type { SignalDefinition } from '@temporalio/common';
import { ServiceUnavailable } from '../../availability.js';
import {
  deleteDeployment,
  findDeployment,
  insertDeployment,
  lastRunOf,
  listDeployments,
  markScheduleSynced,
  selectionOf,
  setDeploymentPaused,
  undeleteDeployment,
  updateDeployment,
  type DeploymentRow,
  type DeploymentValues,
} from '../../db/deployments.js';
import { findMachines, resolveTargets } from '../../db/machines.js';
import { cancelUnstartedRun, countRunLogs, ensureRun, findRun, machineRunOfMachine, machineRunsPage, planningInputs, resultCountsOfRun, runLogsOf, runsOfDeployment, runsOfMachine, updateResultsOf } from '../../db/runs.js';
import { stepSecretNames } from '../../config.js';
import { isUuid } from '../../fleet/ids.js';
import { duplicateNameMessage, emptyTargetsMessage, forecastSchedule, otherOsTypeMessage, recurrenceOfInput, validateDeploymentInput, type DeploymentInput as ValidInput, type NormalisedDeployment } from '../../fleet/deploymentInput.js';
import { planMachine } from '../../fleet/planning.js';
import { assignRings, ringWarnings } from '../../fleet/rollout.js';
import { ringsOfRun, type RingStatus } from '../../db/rollouts.js';
import { describeSchedule, type DeploymentSchedule, type Recurrence } from '../../fleet/schedule.js';
import { toTemporalScheduleSpec } from '../../temporal/scheduleSpec.js';
import type { DeploymentRunInput } from '../../workflows/deploymentRun.js';
import { approveRingSignal, rejectRingSignal, resumeRunSignal, scheduleIds, workflowIds } from '../../workflows/config.js';
import { announceRunProgress, announceRunStarted } from '../../events/pubsub.js';
import type { ApiServices } from '../context.js';
import { apiError, badUserInput, notFound } from '../errors.js';
import type { DeploymentInput, ScheduleInput } from './deployment.input.js';

/** How far back Temporal still starts an occurrence it missed (server down): later ones are skipped. */
const CATCHUP_WINDOW = '10 minutes';

/** The GraphQL schedule as the validator takes it (null: none given). */
function scheduleInputOf(schedule: ScheduleInput | null | undefined): ValidInput['schedule'] {
  if (!schedule) return null;
  return { startAt: schedule.startAt ?? null, timeZone: schedule.timeZone ?? 'UTC', recurrence: recurrenceOfInput(schedule.recurrence), endAt: schedule.endAt ?? null };
}

/** The GraphQL input as the validator takes it. */
function toValidatorInput(input: DeploymentInput): ValidInput {
  return {
    name: input.name,
    osType: input.osType,
    machineIds: input.machineIds,
    targetFilter: input.targetFilter ? { tags: input.targetFilter.tags, nameContains: input.targetFilter.nameContains ?? null } : null,
    classifications: input.classifications,
    useBaseline: input.useBaseline ?? false,
    includePatterns: input.includePatterns,
    excludePatterns: input.excludePatterns,
    schedule: scheduleInputOf(input.schedule),
    onDemandOnly: input.onDemandOnly ?? false,
    windowMinutes: input.windowMinutes,
    rebootSetting: input.rebootSetting,
    maxConcurrent: input.maxConcurrent ?? null,
    maxFailures: input.maxFailures ?? null,
    rings: input.rings ?? null,
    steps: input.steps ?? null,
  };
}

/** The deployment's schedule; null when it runs on demand only. */
export function scheduleOf(row: DeploymentRow): DeploymentSchedule | null {
  if (row.schedule === null) return null;
  const stored = row.schedule as { startAt: string; timeZone: string; recurrence: Recurrence; endAt: string | null };
  return { startAt: new Date(stored.startAt), timeZone: stored.timeZone, recurrence: stored.recurrence, endAt: stored.endAt ? new Date(stored.endAt) : null };
}

function valuesOf(value: NormalisedDeployment): DeploymentValues {
  return {
    name: value.name,
    osType: value.osType,
    machineIds: value.machineIds,
    targetFilter: value.targetFilter,
    classifications: value.classifications,
    useBaseline: value.useBaseline,
    includePatterns: value.includePatterns,
    excludePatterns: value.excludePatterns,
    schedule: value.schedule && { ...value.schedule, startAt: value.schedule.startAt.toISOString(), endAt: value.schedule.endAt?.toISOString() ?? null },
    windowMinutes: value.windowMinutes,
    rebootSetting: value.rebootSetting,
    maxConcurrent: value.maxConcurrent,
    maxFailures: value.maxFailures,
    rings: value.rings,
    steps: value.steps,
  };
}

/** A row's values as they were stored, to write them back. */
function storedValuesOf(row: DeploymentRow): DeploymentValues {
  const { name, osType, machineIds, targetFilter, classifications, useBaseline, includePatterns, excludePatterns, schedule, windowMinutes, rebootSetting, maxConcurrent, maxFailures, rings, steps } = row;
  return { name, osType, machineIds, targetFilter, classifications, useBaseline, includePatterns, excludePatterns, schedule, windowMinutes, rebootSetting, maxConcurrent, maxFailures, rings, steps };
}

export class DeploymentService {
  constructor(private readonly services: ApiServices) {}

  private get db() {
    return this.services.database.db;
  }

  private get temporal() {
    return this.services.temporal;
  }

  /** Every rule of the input, then the ones that need the fleet: known machines, of this OS type, and at least one target. */
  async validate(input: DeploymentInput, replacing?: DeploymentRow): Promise<NormalisedDeployment> {
    const checked = validateDeploymentInput(toValidatorInput(input), this.services.now(), { storedStartAt: replacing ? (scheduleOf(replacing)?.startAt ?? null) : null, secretNames: stepSecretNames() });
    if (!checked.ok) throw badUserInput(checked.field, checked.message);
    const value = checked.value;
    const named = await findMachines(this.db, value.machineIds);
    const unknown = value.machineIds.filter((id) => !named.some((m) => m.id === id));
    if (unknown.length > 0) throw badUserInput('machineIds', `No machine with id ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ` and ${unknown.length - 5} more` : ''}.`);
    const other = named.filter((m) => m.osType !== value.osType);
    if (other.length > 0) throw badUserInput('machineIds', otherOsTypeMessage(other.map((m) => m.name), value.osType));
    const targets = await resolveTargets(this.db, { osType: value.osType, machineIds: value.machineIds, filter: value.targetFilter });
    if (targets.length === 0) throw badUserInput('machineIds', emptyTargetsMessage(value.osType));
    for (const [i, ring] of (value.rings ?? []).entries()) {
      if (!ring.machineIds) continue;
      const found = await findMachines(this.db, ring.machineIds);
      const missing = ring.machineIds.filter((id) => !found.some((m) => m.id === id));
      if (missing.length > 0) throw badUserInput(`rings[${i}].machineIds`, `rings[${i}].machineIds: no machine with id ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}.`);
      const otherOs = found.filter((m) => m.osType !== value.osType);
      if (otherOs.length > 0) throw badUserInput(`rings[${i}].machineIds`, `rings[${i}].${otherOsTypeMessage(otherOs.map((m) => m.name), value.osType)}`);
    }
    return value;
  }

  /*
   * An operator's word on a ringed run's gate. The ring must be waiting for it (checked here against
   * what the workflow recorded, so a stale click answers CONFLICT with the ring's state); the
   * workflow gets it as a signal and records what follows.
   */

  async approveRing(runId: string, ring: number, by: string) {
    const { run } = await this.ringAwaiting(runId, ring, ['WAITING_FOR_APPROVAL'], 'approve');
    await this.signal(run.workflowId, approveRingSignal, { ring, by }, 'the ring was not approved');
    return run;
  }

  async rejectRing(runId: string, ring: number, reason: string, by: string) {
    const trimmed = reason.trim();
    if (trimmed.length === 0) throw badUserInput('reason', 'reason is required: say why the rollout stops (1 to 500 characters)');
    if (trimmed.length > 500) throw badUserInput('reason', `reason is ${trimmed.length} characters long; at most 500`);
    const { run } = await this.ringAwaiting(runId, ring, ['WAITING_FOR_APPROVAL', 'HALTED'], 'reject');
    await this.signal(run.workflowId, rejectRingSignal, { ring, by, reason: trimmed }, 'the ring was not rejected');
    return run;
  }

  async resumeRun(runId: string, by: string) {
    const run = await findRun(this.db, runId);
    if (!run) throw notFound(`No deployment run with id ${runId}.`);
    if (run.status !== 'HALTED') throw apiError('CONFLICT', `This run is ${run.status}, not HALTED; only a halted run can be resumed.`);
    const halted = (await ringsOfRun(this.db, runId)).find((r) => r.status === 'HALTED');
    if (!halted) throw apiError('CONFLICT', 'This run has no halted ring to resume.');
    await this.signal(run.workflowId, resumeRunSignal, { ring: halted.ring, by }, 'the run was not resumed');
    return run;
  }

  private async ringAwaiting(runId: string, ring: number, statuses: RingStatus[], verb: string) {
    const run = await findRun(this.db, runId);
    if (!run) throw notFound(`No deployment run with id ${runId}.`);
    if (!Number.isInteger(ring) || ring < 1) throw badUserInput('ring', `ring is a ring's number, from 1; got ${ring}.`);
    const rings = await ringsOfRun(this.db, runId);
    if (rings.length === 0) throw apiError('CONFLICT', 'This run has no rings.');
    const row = rings.find((r) => r.ring === ring);
    if (!row) throw badUserInput('ring', `This run has rings 1 to ${rings.length}; got ${ring}.`);
    if (run.endedAt) throw apiError('CONFLICT', `This run already ended (${run.status}).`);
    if (!statuses.includes(row.status as RingStatus)) {
      throw apiError('CONFLICT', `${row.name} (ring ${ring}) is ${row.status}; only a ring ${statuses.join(' or ')} can be ${verb === 'approve' ? 'approved' : 'rejected'}.`);
    }
    return { run, ring: row };
  }

  private async signal<T>(workflowId: string, signal: SignalDefinition<[T]>, arg: T, notDone: string): Promise<void> {
    const { temporal } = this;
    await temporal.call(() => temporal.client.workflow.getHandle(workflowId).signal(signal, arg)).catch((error: unknown) => {
      throw error instanceof ServiceUnavailable ? new ServiceUnavailable('TEMPORAL', `Temporal is unavailable: ${notDone}. Try again in a few seconds.`, { cause: error }) : error;
    });
  }

  ringsOfRun(runId: string) {
    return ringsOfRun(this.db, runId);
  }

  /*
   * Mutations that touch both PostgreSQL and Temporal. The row is written first and is what the
   * schedule must be; then the schedule is made to match it (syncSchedule), within the Temporal
   * call's deadline. When that fails, the row's change is undone and the mutation answers the
   * failure (Temporal away: SERVICE_UNAVAILABLE, at once while the outage is known), so a client
   * that is told something failed finds nothing changed. Temporal may still have applied the call
   * (an answer lost at the deadline): the undo is a change of its own, which the schedule
   * reconciler applies once Temporal answers, and a scheduled run of a paused or deleted
   * deployment ends CANCELED at its first step meanwhile (beginDeploymentRun).
   */

  async create(input: DeploymentInput): Promise<DeploymentRow> {
    const value = await this.validate(input);
    const row = await insertDeployment(this.db, valuesOf(value));
    if (row === 'NAME_TAKEN') throw apiError('CONFLICT', duplicateNameMessage(value.name), { field: 'name' });
    await this.syncOrUndo(row, 'the deployment was not created', () => deleteDeployment(this.db, row.id));
    return row;
  }

  async update(id: string, input: DeploymentInput): Promise<DeploymentRow> {
    const previous = await this.get(id);
    const value = await this.validate(input, previous);
    const row = await updateDeployment(this.db, id, valuesOf(value));
    if (row === 'NAME_TAKEN') throw apiError('CONFLICT', duplicateNameMessage(value.name), { field: 'name' });
    if (!row) throw notFound(`No deployment with id ${id}.`);
    await this.syncOrUndo(row, 'the deployment was not changed', () => updateDeployment(this.db, id, storedValuesOf(previous)));
    return row;
  }

  async delete(id: string): Promise<string> {
    const row = await deleteDeployment(this.db, id);
    if (!row) throw notFound(`No deployment with id ${id}.`);
    await this.syncOrUndo(row, 'the deployment was not deleted', async () => {
      // Taken by a new deployment meanwhile: this one stays deleted, its schedule goes when Temporal is back.
      if ((await undeleteDeployment(this.db, id)) === 'NAME_TAKEN') throw new Error(`deployment ${id} stays deleted: its name was taken meanwhile`);
    });
    return id;
  }

  async setPaused(id: string, paused: boolean): Promise<DeploymentRow> {
    const row = await setDeploymentPaused(this.db, id, paused);
    if (!row) throw notFound(`No deployment with id ${id}.`);
    await this.syncOrUndo(row, `the deployment was not ${paused ? 'paused' : 'resumed'}`, () => setDeploymentPaused(this.db, id, !paused));
    return row;
  }

  /**
   * Starts a run now, outside the schedule. The run exists (SCHEDULED) before this returns. When
   * the workflow cannot be started, the run is ended CANCELED with the reason, before anything ran
   * (should the start have reached Temporal after all, its first step sees the run ended and does nothing).
   */
  async runNow(id: string) {
    const deployment = await this.get(id);
    const runId = randomUUID();
    const workflowId = workflowIds.deploymentRun(deployment.id, runId);
    const { run } = await ensureRun(this.db, { id: runId, deploymentId: deployment.id, workflowId, trigger: 'MANUAL' });
    announceRunStarted(this.services.pubsub, deployment.id, run.id);
    const input: DeploymentRunInput = { deploymentId: deployment.id, runId, trigger: 'MANUAL', ...this.runTunables() };
    const { temporal } = this;
    try {
      await temporal.call(() => temporal.client.workflow.start('deploymentRunWorkflow', { taskQueue: temporal.settings.taskQueue, workflowId, args: [input] }));
    } catch (error) {
      const away = error instanceof ServiceUnavailable;
      await cancelUnstartedRun(this.db, runId, away ? 'Temporal was unavailable when this run was to start: nothing ran. Run the deployment again.' : 'This run could not be started: nothing ran.').then(
        (canceled) => announceRunProgress(this.services.pubsub, runId, canceled.progress),
        (undo: unknown) => this.services.logger.error({ err: undo, runId }, 'could not record that a run did not start'),
      );
      throw away ? new ServiceUnavailable('TEMPORAL', 'Temporal is unavailable: the run did not start (it is recorded as CANCELED). Try again in a few seconds.', { cause: error }) : error;
    }
    return run;
  }

  async cancelRun(runId: string) {
    const run = await findRun(this.db, runId);
    if (!run) throw notFound(`No deployment run with id ${runId}.`);
    if (run.endedAt) throw apiError('CONFLICT', `This run already ended (${run.status}); there is nothing to cancel.`);
    const { temporal } = this;
    await temporal.call(() => temporal.client.workflow.getHandle(run.workflowId).cancel()).catch((error: unknown) => {
      throw error instanceof ServiceUnavailable ? new ServiceUnavailable('TEMPORAL', 'Temporal is unavailable: the run was not canceled. Try again in a few seconds.', { cause: error }) : error;
    });
    return run;
  }

  /** Makes the schedule what the row says; on failure undoes the row's change (see above) and throws. */
  private async syncOrUndo(row: DeploymentRow, notDone: string, undo: () => Promise<unknown>): Promise<void> {
    try {
      await this.syncSchedule(row);
    } catch (error) {
      await undo().catch((undoError: unknown) => this.services.logger.error({ err: undoError, deploymentId: row.id }, `could not undo a deployment change after its schedule failed (${notDone})`));
      if (error instanceof ServiceUnavailable) throw new ServiceUnavailable('TEMPORAL', `Temporal is unavailable: ${notDone}. Try again in a few seconds.`, { cause: error });
      throw error;
    }
  }

  /**
   * Makes the deployment's Temporal schedule what the row says (gone, created, or updated with its
   * spec and paused state) and records that version as applied. Idempotent: the reconciler calls it
   * again for rows Temporal has not followed.
   */
  async syncSchedule(row: DeploymentRow): Promise<void> {
    const { temporal } = this;
    const handle = temporal.client.schedule.getHandle(scheduleIds.deployment(row.id));
    await temporal.call(async () => {
      if (row.deletedAt) {
        await handle.delete().catch((error: unknown) => {
          if (!(error instanceof ScheduleNotFoundError)) throw error;
        });
        return;
      }
      // Updated when it exists (the common case: one schedule query, not two), created otherwise.
      const update = () => {
        const timing = toTemporalScheduleSpec(scheduleOf(row), { from: this.services.now() });
        return handle.update((previous) => ({
          ...previous,
          spec: timing.spec,
          state: { ...previous.state, remainingActions: timing.remainingActions, paused: row.paused, note: row.paused ? 'paused by an operator' : `fleetpatch deployment "${row.name}"` },
        }));
      };
      try {
        await update();
      } catch (error) {
        if (!(error instanceof ScheduleNotFoundError)) throw error;
        try {
          await this.createSchedule(row);
        } catch (createError) {
          // Created meanwhile by another sync of the same row (the reconciler): update it.
          if (!(createError instanceof ScheduleAlreadyRunning)) throw createError;
          await update();
        }
      }
    });
    // Temporal has it: a failure to record that only makes the reconciler apply it once more.
    await markScheduleSynced(this.db, row.id, row.scheduleVersion).catch((error: unknown) =>
      this.services.logger.warn({ err: error, deploymentId: row.id }, 'could not record that a deployment schedule follows its deployment'),
    );
  }

  private runTunables() {
    const timings = this.services.fleet.runTimings;
    return {
      installHeartbeatSeconds: timings.installHeartbeatSeconds,
      rebootTimeoutSeconds: timings.rebootTimeoutSeconds,
      ...(timings.runBatchMachines ? { batchMachines: timings.runBatchMachines } : {}),
      ...(timings.runHistoryEvents ? { historyEvents: timings.runHistoryEvents } : {}),
      ...(timings.runPlanMachines ? { planMachines: timings.runPlanMachines } : {}),
      ...(timings.runStepChildren ? { stepChildren: timings.runStepChildren } : {}),
      ...(timings.runMachineWorkflows ? { machineWorkflows: true } : {}),
    };
  }

  private async createSchedule(row: DeploymentRow): Promise<void> {
    // From now: a deployment re-created by the reconciler long after it was saved.
    const schedule = scheduleOf(row);
    const timing = toTemporalScheduleSpec(schedule, { from: new Date(Math.max(schedule?.startAt.getTime() ?? 0, this.services.now().getTime())) });
    const input: DeploymentRunInput = { deploymentId: row.id, trigger: 'SCHEDULE', ...this.runTunables() };
    await this.temporal.client.schedule.create({
      scheduleId: scheduleIds.deployment(row.id),
      spec: timing.spec,
      action: { type: 'startWorkflow', workflowType: 'deploymentRunWorkflow', taskQueue: this.temporal.settings.taskQueue, workflowId: scheduleIds.deploymentRunPrefix(row.id), args: [input] },
      // A run still going when the next occurrence comes: the occurrence is skipped, never doubled.
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: CATCHUP_WINDOW },
      state: { remainingActions: timing.remainingActions, paused: row.paused, note: `fleetpatch deployment "${row.name}"` },
    });
  }

  async get(id: string): Promise<DeploymentRow> {
    const row = await findDeployment(this.db, id);
    if (!row) throw notFound(`No deployment with id ${id}.`);
    return row;
  }

  find(id: string, includeDeleted = false) {
    return findDeployment(this.db, id, { includeDeleted });
  }

  list(page: { offset: number; limit: number }) {
    return listDeployments(this.db, page.offset, page.limit);
  }

  /** Temporal's own next fire time for the schedule (null when it will not run again, is paused, or runs on demand only). */
  async nextRunAt(row: DeploymentRow): Promise<Date | null> {
    if (row.paused || row.schedule === null) return null;
    const { temporal } = this;
    try {
      const description = await temporal.call(() => temporal.client.schedule.getHandle(scheduleIds.deployment(row.id)).describe());
      return description.info.nextActionTimes[0] ?? null;
    } catch (error) {
      if (error instanceof ScheduleNotFoundError) return null;
      throw error;
    }
  }

  /** When a schedule as entered would run (its sentence and next runs), or BAD_USER_INPUT at its field. */
  forecast(input: { schedule: ScheduleInput | null | undefined; onDemandOnly: boolean; windowMinutes: number; count: number }) {
    if (!Number.isInteger(input.count) || input.count < 1 || input.count > 10) throw badUserInput('count', `count must be from 1 to 10; got ${input.count}.`);
    const forecast = forecastSchedule({ schedule: scheduleInputOf(input.schedule), onDemandOnly: input.onDemandOnly, windowMinutes: input.windowMinutes }, this.services.now(), input.count);
    if (!forecast.ok) throw badUserInput(forecast.field, forecast.message);
    return { onDemandOnly: forecast.schedule === null, description: forecast.description, nextRuns: forecast.nextRuns };
  }

  describeSchedule(row: DeploymentRow): string {
    return describeSchedule(scheduleOf(row));
  }

  lastRun(deploymentId: string) {
    return lastRunOf(this.db, deploymentId);
  }

  runs(deploymentId: string, page: { offset: number; limit: number }) {
    return runsOfDeployment(this.db, deploymentId, page.offset, page.limit);
  }

  runsOfMachine(machineId: string, page: { offset: number; limit: number }) {
    return runsOfMachine(this.db, machineId, page.offset, page.limit);
  }

  findRun(id: string) {
    return findRun(this.db, id);
  }

  machineRunsPage(runId: string, page: { offset: number; limit: number }) {
    return machineRunsPage(this.db, runId, page.offset, page.limit);
  }

  async machineRunOf(runId: string, machineId: string) {
    return isUuid(machineId) ? ((await machineRunOfMachine(this.db, runId, machineId)) ?? null) : null;
  }

  countLogs(runId: string, machineRunId?: string) {
    return countRunLogs(this.db, { runId, machineRunId });
  }

  updateResults(machineRunId: string, window?: { offset: number; limit: number }) {
    return updateResultsOf(this.db, machineRunId, window);
  }

  resultCountsOfRun(runId: string, by: 'status' | 'predictedStatus') {
    return resultCountsOfRun(this.db, runId, by);
  }

  logs(runId: string, options: { machineRunId?: string | null; afterId?: number; limit: number }) {
    return runLogsOf(this.db, { runId, ...options });
  }

  /**
   * What a deployment (saved, or only typed in) would do on each machine, from the latest
   * assessments, and when its next scheduled run is: for a saved deployment Temporal's own (a one-off
   * schedule that has fired, a paused one and one run on demand only have none), for an input the
   * schedule's first run.
   */
  async preview(source: { id?: string | null; input?: DeploymentInput | null }) {
    let value: Pick<NormalisedDeployment, 'osType' | 'machineIds' | 'targetFilter' | 'windowMinutes' | 'rebootSetting' | 'schedule' | 'rings'> & { selection: ReturnType<typeof selectionOf> };
    let nextRunAt: Date | null;
    if (source.input) {
      // With an id too, the input is checked as that deployment's next version (its start is kept).
      const v = await this.validate(source.input, source.id ? await this.get(source.id) : undefined);
      value = { ...v, selection: { classifications: v.classifications, includePatterns: v.includePatterns, excludePatterns: v.excludePatterns, useBaseline: v.useBaseline } };
      nextRunAt = v.firstRunAt;
    } else if (source.id) {
      const row = await this.get(source.id);
      value = { osType: row.osType, machineIds: row.machineIds, targetFilter: row.targetFilter ?? null, windowMinutes: row.windowMinutes, rebootSetting: row.rebootSetting, schedule: scheduleOf(row), selection: selectionOf(row), rings: row.rings ?? null };
      nextRunAt = await this.nextRunAt(row);
    } else {
      throw badUserInput('id', 'Give the id of a deployment or an input to preview.');
    }
    const targets = await resolveTargets(this.db, { osType: value.osType, machineIds: value.machineIds, filter: value.targetFilter });
    const { pending, learned, decide } = await planningInputs(this.db, targets.map((t) => t.id));
    const assigned = value.rings ? assignRings(targets, value.rings) : null;
    const ringOf = new Map(assigned?.rings.flatMap((ms, i) => ms.map((m) => [m.id, i + 1] as const)) ?? []);
    const warnings = value.rings && assigned ? ringWarnings(value.rings, assigned) : [];
    const machines = targets.map((machine) => ({
      machine,
      ring: ringOf.get(machine.id) ?? null,
      ...planMachine({
        pending: pending.get(machine.id) ?? [],
        selection: value.selection,
        backend: machine.packageManager ?? 'apt',
        osType: machine.osType,
        windowSeconds: value.windowMinutes * 60,
        rebootSetting: value.rebootSetting,
        rebootPending: machine.rebootPending,
        learnedSeconds: learned.get(machine.id),
        baseline: decide(machine.id, machine.osType, this.services.now()),
      }),
    }));
    return { windowMinutes: value.windowMinutes, warnings, machines, nextRunAt, onDemandOnly: value.schedule === null, scheduleDescription: describeSchedule(value.schedule) };
  }
}
