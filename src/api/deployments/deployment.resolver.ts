import { Arg, Args, ArgsType, Authorized, Ctx, Field, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';
import type { DeploymentRow } from '../../db/deployments.js';
import type { MachineRunRow, RunRow, UpdateResultRow } from '../../db/runs.js';
import type { ApiContext } from '../context.js';
import { Machine } from '../machines/machine.type.js';
import { notFound } from '../errors.js';
import { DEFAULT_LOG_LINES, MAX_LOG_LINES, PAGE_SIZES } from '../pageSize.js';
import { keysetWindow, ListArgs, listSlice, listWindow, PageArgs, pageWindow, toConnection, toKeysetConnection } from '../relay.js';
import { DeploymentInput, ScheduleInput } from './deployment.input.js';
import { DeploymentService, scheduleOf } from './deployment.service.js';
import { RunProgressService, type RunProgressItem } from './runProgress.service.js';
import {
  Deployment,
  DeploymentConnection,
  DeploymentPreview,
  DeploymentRun,
  DeploymentRunConnection,
  MachinePreview,
  MachineRun,
  MachineRunConnection,
  NotSelectedUpdate,
  PlannedUpdate,
  ResultCounts,
  RunLogLine,
  RunLogLineConnection,
  RunProgress,
  RunRing,
  Schedule,
  ScheduleForecast,
  UpdateResult,
  UpdateSetMember,
} from './deployment.type.js';

const service = (ctx: ApiContext) => new DeploymentService(ctx.services);

@ArgsType()
class LogPageArgs {
  @Field(() => Int, { nullable: true, description: `Lines per page (default ${DEFAULT_LOG_LINES}, at most ${MAX_LOG_LINES}).` })
  first?: number | null;

  @Field(() => String, { nullable: true, description: 'The endCursor of the previous page: the lines after it, including those written since.' })
  after?: string | null;
}

/** Counts by status, from rows (n absent: one each) or from counts the database made (n). */
function counts(results: Array<{ status: UpdateResultRow['status']; n?: number }>): ResultCounts {
  const n = (status: UpdateResultRow['status']) => results.reduce((sum, r) => sum + (r.status === status ? (r.n ?? 1) : 0), 0);
  return { total: results.reduce((sum, r) => sum + (r.n ?? 1), 0), succeeded: n('SUCCEEDED'), failed: n('FAILED'), notAttempted: n('NOT_ATTEMPTED'), notSelected: n('NOT_SELECTED'), pending: n('PENDING'), inProgress: n('IN_PROGRESS') };
}

/** Who gave a gate its verdict, for the run's log: the token's name. */
const actorName = (ctx: ApiContext) => ctx.principal?.name ?? 'an operator';

const asResult = (r: UpdateResultRow) => ({ ...r, arch: r.arch === '' ? null : r.arch });

/**
 * A read done once per row object: the progress events of one page share their run and machine run
 * rows (see ProgressPage), so a replay asking every event for the run's counts counts once per page.
 */
const reads = new WeakMap<object, Map<string, Promise<unknown>>>();
function once<T>(row: object, key: string, read: () => Promise<T>): Promise<T> {
  const ofRow = reads.get(row) ?? new Map<string, Promise<unknown>>();
  reads.set(row, ofRow);
  if (!ofRow.has(key)) ofRow.set(key, read());
  return ofRow.get(key) as Promise<T>;
}

@Resolver(() => Deployment)
export class DeploymentResolver {
  @Authorized('VIEWER')
  @Query(() => DeploymentConnection, { description: 'Every deployment, by name.' })
  async deployments(@Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).list(window);
    return toConnection(rows, window.offset, totalCount);
  }

  @Authorized('VIEWER')
  @Query(() => Deployment, { description: 'One deployment by id (null: no such deployment).', nullable: true })
  deployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The deployment.' }) id: string) {
    return service(ctx).find(id);
  }

  @Authorized('VIEWER')
  @Query(() => DeploymentPreview, { description: 'Per machine, what a deployment (by id, or an unsaved input; with both, the input as the new version of that deployment) would install, leave out, or likely not reach within its window. An input is checked by the rules of createDeployment (updateDeployment with an id) and nothing is written.' })
  previewDeployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'A saved deployment to preview.', nullable: true }) id?: string, @Arg('input', () => DeploymentInput, { description: 'A deployment as entered, not yet saved, to preview (with id: as the new version of that deployment).', nullable: true }) input?: DeploymentInput) {
    return service(ctx).preview({ id, input });
  }

  @Authorized('VIEWER')
  @Query(() => ScheduleForecast, { description: 'When a deployment schedule as entered would run: its sentence and next runs (the console says it while the operator types).' })
  scheduleForecast(
    @Ctx() ctx: ApiContext,
    @Arg('schedule', () => ScheduleInput, { nullable: true, description: 'Default: once, at now + 30 minutes.' }) schedule: ScheduleInput | null | undefined,
    @Arg('onDemandOnly', () => Boolean, { description: 'No schedule: the deployment would run only on demand.', defaultValue: false }) onDemandOnly: boolean,
    @Arg('windowMinutes', () => Int, { defaultValue: 120, description: 'The window: an hourly schedule must leave room for it.' }) windowMinutes: number,
    @Arg('count', () => Int, { defaultValue: 3, description: 'How many next runs, 1 to 10.' }) count: number,
  ) {
    return service(ctx).forecast({ schedule, onDemandOnly, windowMinutes, count });
  }

  @Authorized('OPERATOR')
  @Mutation(() => Deployment, { description: 'Creates a deployment and its schedule.' })
  createDeployment(@Ctx() ctx: ApiContext, @Arg('input', () => DeploymentInput, { description: 'The new deployment.' }) input: DeploymentInput) {
    return service(ctx).create(input);
  }

  @Authorized('OPERATOR')
  @Mutation(() => Deployment, { description: 'Replaces a deployment; its schedule follows. The same schedule.startAt as stored is kept even when it is past.' })
  updateDeployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The deployment to change.' }) id: string, @Arg('input', () => DeploymentInput, { description: 'The deployment as it is to be, every field.' }) input: DeploymentInput) {
    return service(ctx).update(id, input);
  }

  @Authorized('OPERATOR')
  @Mutation(() => ID, { description: 'Deletes a deployment and its schedule; its runs and results stay.' })
  deleteDeployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The deployment to delete.' }) id: string) {
    return service(ctx).delete(id);
  }

  @Authorized('OPERATOR')
  @Mutation(() => Deployment, { description: "Pauses the deployment's schedule: no scheduled run starts until it is resumed." })
  pauseDeployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The deployment to pause.' }) id: string) {
    return service(ctx).setPaused(id, true);
  }

  @Authorized('OPERATOR')
  @Mutation(() => Deployment, { description: "Resumes a paused deployment's schedule." })
  resumeDeployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The deployment to resume.' }) id: string) {
    return service(ctx).setPaused(id, false);
  }

  @Authorized('OPERATOR')
  @Mutation(() => DeploymentRun, { description: 'Runs a deployment now, outside its schedule.' })
  runDeploymentNow(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The deployment to run.' }) id: string) {
    return service(ctx).runNow(id);
  }

  @FieldResolver(() => Schedule, { nullable: true, description: 'Null: no schedule, the deployment runs on demand only (see onDemandOnly).' })
  schedule(@Root() row: DeploymentRow, @Ctx() ctx: ApiContext) {
    const schedule = scheduleOf(row);
    if (!schedule) return null;
    const r = schedule.recurrence as unknown as Record<string, unknown>;
    return {
      ...schedule,
      recurrence: { frequency: r.frequency, every: r.every ?? 1, weekDays: r.weekDays ?? null, monthDay: r.monthDay ?? null, nthWeekday: r.nthWeekday ?? null, offsetDays: r.offsetDays ?? null },
      description: service(ctx).describeSchedule(row),
    };
  }

  @FieldResolver(() => Boolean, { description: 'No schedule: the deployment runs only when runDeploymentNow starts it.' })
  onDemandOnly(@Root() row: DeploymentRow) {
    return row.schedule === null;
  }

  @FieldResolver(() => Date, { nullable: true, description: "When it runs next, as Temporal's schedule says (null: paused, no run left, or run on demand only)." })
  nextRunAt(@Root() row: DeploymentRow, @Ctx() ctx: ApiContext) {
    return service(ctx).nextRunAt(row);
  }

  @FieldResolver(() => DeploymentRun, { description: 'Its most recent run (null: it never ran).', nullable: true })
  async lastRun(@Root() row: DeploymentRow, @Ctx() ctx: ApiContext) {
    return (await service(ctx).lastRun(row.id)) ?? null;
  }

  @FieldResolver(() => DeploymentRunConnection, { description: 'Runs, newest first.' })
  async runs(@Root() row: DeploymentRow, @Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).runs(row.id, window);
    return toConnection(rows, window.offset, totalCount);
  }
}

/** A machine's side of deployments: the runs it took part in (the console's machine page). */
@Resolver(() => Machine)
export class MachineDeploymentRunsResolver {
  @FieldResolver(() => DeploymentRunConnection, { description: 'The deployment runs this machine took part in, newest first.' })
  async deploymentRuns(@Root() machine: { id: string }, @Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).runsOfMachine(machine.id, window);
    return toConnection(rows, window.offset, totalCount);
  }
}

@Resolver(() => DeploymentRun)
export class DeploymentRunResolver {
  @Authorized('VIEWER')
  @Query(() => DeploymentRun, { description: 'One deployment run by id (null: no such run).', nullable: true })
  async deploymentRun(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The run.' }) id: string) {
    return (await service(ctx).findRun(id)) ?? null;
  }

  @Authorized('OPERATOR')
  @Mutation(() => DeploymentRun, { description: 'Cancels a running run: machines not started stay so, running ones are stopped.' })
  cancelDeploymentRun(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The run to cancel.' }) id: string) {
    return service(ctx).cancelRun(id);
  }

  @Authorized('OPERATOR')
  @Mutation(() => DeploymentRun, { description: "Approves the gate of a ring WAITING_FOR_APPROVAL (1-based): the next ring starts. CONFLICT when that ring is not waiting for approval." })
  approveRing(@Ctx() ctx: ApiContext, @Arg('runId', () => ID, { description: 'The run.' }) runId: string, @Arg('ring', () => Int, { description: 'The ring whose gate to approve, 1-based.' }) ring: number) {
    return service(ctx).approveRing(runId, ring, actorName(ctx));
  }

  @Authorized('OPERATOR')
  @Mutation(() => DeploymentRun, { description: 'Rejects the gate of a ring WAITING_FOR_APPROVAL or HALTED: the run ends CANCELED with this reason; later rings do not start.' })
  rejectRing(@Ctx() ctx: ApiContext, @Arg('runId', () => ID, { description: 'The run.' }) runId: string, @Arg('ring', () => Int, { description: 'The ring whose gate to reject, 1-based.' }) ring: number, @Arg('reason', () => String, { description: "Why: the run's error and the ring's reason." }) reason: string) {
    return service(ctx).rejectRing(runId, ring, reason, actorName(ctx));
  }

  @Authorized('OPERATOR')
  @Mutation(() => DeploymentRun, { description: "Resumes a HALTED run: the halted ring's gate is overridden and the next ring starts." })
  resumeDeploymentRun(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The HALTED run.' }) id: string) {
    return service(ctx).resumeRun(id, actorName(ctx));
  }

  @Authorized('VIEWER')
  @Subscription(() => RunProgress, {
    subscribe: ({ args, context }) => new RunProgressService((context as ApiContext).services).progress((args as { runId: string }).runId, (args as { after?: number | null }).after),
    description:
      'Progress of a run: status changes per run, machine and update, and the job stream as it arrives, each event once and in order. With after (a seq already received, or 0 for everything), what happened after it is replayed first: subscribing with the last seq received after a dropped connection, or with DeploymentRun.progressSeq after reading the run, misses nothing.',
  })
  deploymentRunProgress(
    @Root() item: RunProgressItem,
    @Arg('runId', () => ID, { description: 'The run to follow.' }) _runId: string,
    @Arg('after', () => Int, { nullable: true, description: 'Replay the events after this seq first (0: every event of the run). Absent: live events only.' }) _after?: number | null,
  ): RunProgressItem {
    return item;
  }

  @Authorized('VIEWER')
  @Subscription(() => DeploymentRun, {
    subscribe: ({ args, context }) => new RunProgressService((context as ApiContext).services).runsStarted((args as { deploymentId: string }).deploymentId, (args as { since?: Date | null }).since),
    description:
      'Runs of a deployment as they are created, before their first progress event: subscribe, then run the deployment (or wait for its schedule), and follow the run that comes with deploymentRunProgress(runId, after: 0). With since, the runs created since then come first.',
  })
  deploymentRunsStarted(
    @Root() run: RunRow,
    @Arg('deploymentId', () => ID, { description: 'The deployment whose runs to announce.' }) _deploymentId: string,
    @Arg('since', () => Date, { nullable: true, description: 'Also announce the runs created since this time, first.' }) _since?: Date | null,
  ): RunRow {
    return run;
  }

  @FieldResolver(() => Deployment, { description: 'The deployment (also when it has been deleted since).' })
  deployment(@Root() run: RunRow, @Ctx() ctx: ApiContext) {
    return service(ctx).find(run.deploymentId, true);
  }

  @FieldResolver(() => Int, { description: 'How long it ran, in seconds (null until it has started).', nullable: true })
  durationSeconds(@Root() run: RunRow) {
    return run.startedAt && run.endedAt ? Math.round((run.endedAt.getTime() - run.startedAt.getTime()) / 1000) : null;
  }

  @FieldResolver(() => ResultCounts, { description: 'Updates per status, across every machine.' })
  async counts(@Root() run: RunRow, @Ctx() ctx: ApiContext) {
    return counts(await once(run, 'counts', () => service(ctx).resultCountsOfRun(run.id, 'status')));
  }

  @FieldResolver(() => ResultCounts, { description: 'What the preview predicted for the same updates, to compare with counts.' })
  async predictedCounts(@Root() run: RunRow, @Ctx() ctx: ApiContext) {
    return counts(await service(ctx).resultCountsOfRun(run.id, 'predictedStatus'));
  }

  @FieldResolver(() => [RunRing], { description: 'Its rings and their gates, in order; empty for a run without rings.' })
  rings(@Root() run: RunRow, @Ctx() ctx: ApiContext) {
    return service(ctx).ringsOfRun(run.id);
  }

  @FieldResolver(() => [UpdateSetMember], {
    nullable: true,
    description: "The frozen update set of a ringed run: fixed from the first ring's plans when it starts; later rings install only these name=version pairs. Null: no rings, or the first ring has not started. `first` of them from `offset`: read the rest with offset: the number already read.",
  })
  updateSet(@Root() run: RunRow, @Args(() => ListArgs) list: ListArgs) {
    return run.updateSet ? listSlice(run.updateSet, list) : null;
  }

  @FieldResolver(() => MachineRunConnection, { description: 'The machines of the run, by name.' })
  async machineRuns(@Root() run: RunRow, @Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).machineRunsPage(run.id, { offset: window.offset, limit: window.limit + 1 });
    return toConnection(rows, window.offset, totalCount, window.limit);
  }

  @FieldResolver(() => MachineRun, { nullable: true, description: "One machine's part in the run (null: the machine took no part in it)." })
  machineRun(@Root() run: RunRow, @Ctx() ctx: ApiContext, @Arg('machineId', () => ID, { description: 'The machine.' }) machineId: string) {
    return service(ctx).machineRunOf(run.id, machineId);
  }

  @FieldResolver(() => RunLogLineConnection, { description: "The run's logs, oldest first: the server's lines and every machine's job stream. New lines come after the last page's endCursor." })
  async logs(@Root() run: RunRow, @Ctx() ctx: ApiContext, @Args(() => LogPageArgs) page: LogPageArgs) {
    const window = keysetWindow(page, PAGE_SIZES['DeploymentRun.logs']!);
    const rows = await service(ctx).logs(run.id, { afterId: window.afterId, limit: window.limit + 1 });
    return toKeysetConnection(rows, window, () => service(ctx).countLogs(run.id));
  }
}

/** The state a progress event shows, read when it is delivered (see ProgressPage). */
@Resolver(() => RunProgress)
export class RunProgressResolver {
  @FieldResolver(() => DeploymentRun, { description: 'The run as it is now.' })
  async run(@Root() item: RunProgressItem) {
    const run = await item.page.run();
    if (!run) throw notFound(`No deployment run with id ${item.runId}.`);
    return run;
  }

  @FieldResolver(() => MachineRun, { nullable: true, description: 'MACHINE, UPDATES and LINES of a machine: the machine run as it is now.' })
  machineRun(@Root() item: RunProgressItem) {
    return item.page.machineRun(item.machineRunId);
  }

  @FieldResolver(() => [UpdateResult], { description: 'UPDATES: the updates whose status changed, as they are now: `first` of them from `offset` (read the rest with offset, or all of them from MachineRun.updates).' })
  async updates(@Root() item: RunProgressItem, @Args(() => ListArgs) list: ListArgs) {
    const window = listWindow(list);
    return item.kind === 'UPDATES' ? (await item.page.updates(item.machineRunId, item.updateNames.slice(window.offset, window.offset + window.limit))).map(asResult) : [];
  }

  @FieldResolver(() => [RunLogLine], { description: 'LINES: the new lines, oldest first.' })
  lines(@Root() item: RunProgressItem) {
    return item.kind === 'LINES' ? item.page.lines(item.lineIds) : [];
  }
}

@Resolver(() => MachineRun)
export class MachineRunResolver {
  @FieldResolver(() => [UpdateResult], {
    description:
      'The updates of this machine in the run, in install order, then those not selected: `first` of them from `offset` (a machine may have thousands). counts.total says how many there are; read the rest with offset: the number already read.',
  })
  async updates(@Root() machineRun: MachineRunRow, @Ctx() ctx: ApiContext, @Args(() => ListArgs) list: ListArgs) {
    // Only the slice asked for is read: the cost model counts this list by `first`, not by its length.
    return (await service(ctx).updateResults(machineRun.id, listWindow(list))).map(asResult);
  }

  @FieldResolver(() => ResultCounts, { description: 'Its updates counted by status.' })
  async counts(@Root() machineRun: MachineRunRow, @Ctx() ctx: ApiContext) {
    return counts(await once(machineRun, 'updates', () => service(ctx).updateResults(machineRun.id)));
  }

  @FieldResolver(() => RunLogLineConnection, { description: "The job stream, oldest first: the package manager's, the agent's and the server's lines about this machine." })
  async jobStream(@Root() machineRun: MachineRunRow, @Ctx() ctx: ApiContext, @Args(() => LogPageArgs) page: LogPageArgs) {
    const window = keysetWindow(page, PAGE_SIZES['MachineRun.jobStream']!);
    const rows = await service(ctx).logs(machineRun.runId, { machineRunId: machineRun.id, afterId: window.afterId, limit: window.limit + 1 });
    return toKeysetConnection(rows, window, () => service(ctx).countLogs(machineRun.runId, machineRun.id));
  }
}

const REST = 'Read the rest with offset: the number already read (a machine may have thousands of pending updates).';

/** A preview's lists per machine follow the machine's pending updates: each is read a slice at a time. */
@Resolver(() => MachinePreview)
export class MachinePreviewResolver {
  @FieldResolver(() => [PlannedUpdate], { description: `Would be installed, in this order: \`first\` of them from \`offset\`. ${REST}` })
  toInstall(@Root() preview: MachinePreview, @Args(() => ListArgs) list: ListArgs) {
    return listSlice(preview.toInstall, list);
  }

  @FieldResolver(() => [PlannedUpdate], { description: `Selected, but likely NOT_ATTEMPTED: the window is too short. \`first\` of them from \`offset\`. ${REST}` })
  predictedNotAttempted(@Root() preview: MachinePreview, @Args(() => ListArgs) list: ListArgs) {
    return listSlice(preview.predictedNotAttempted, list);
  }

  @FieldResolver(() => [NotSelectedUpdate], { description: `Its pending updates the deployment leaves out, and why: \`first\` of them from \`offset\`. ${REST}` })
  notSelected(@Root() preview: MachinePreview, @Args(() => ListArgs) list: ListArgs) {
    return listSlice(preview.notSelected, list);
  }
}
