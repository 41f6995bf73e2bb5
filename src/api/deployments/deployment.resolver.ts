import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';
import type { DeploymentRow } from '../../db/deployments.js';
import type { MachineRunRow, RunRow, UpdateResultRow } from '../../db/runs.js';
import type { RunProgressEvent } from '../../events/pubsub.js';
import type { ApiContext } from '../context.js';
import { Machine } from '../machines/machine.type.js';
import { badUserInput, notFound } from '../errors.js';
import { MAX_LOG_LINES } from '../pageSize.js';
import { PageArgs, pageWindow, toConnection } from '../relay.js';
import { DeploymentInput, ScheduleInput } from './deployment.input.js';
import { DeploymentService, scheduleOf } from './deployment.service.js';
import {
  Deployment,
  DeploymentConnection,
  DeploymentPreview,
  DeploymentRun,
  DeploymentRunConnection,
  MachineRun,
  ResultCounts,
  RunLogLine,
  RunProgress,
  RunRing,
  Schedule,
  ScheduleForecast,
  UpdateResult,
  UpdateSetMember,
} from './deployment.type.js';

const service = (ctx: ApiContext) => new DeploymentService(ctx.services);

/** Counts by status, from rows (n absent: one each) or from counts the database made (n). */
function counts(results: Array<{ status: UpdateResultRow['status']; n?: number }>): ResultCounts {
  const n = (status: UpdateResultRow['status']) => results.reduce((sum, r) => sum + (r.status === status ? (r.n ?? 1) : 0), 0);
  return { total: results.reduce((sum, r) => sum + (r.n ?? 1), 0), succeeded: n('SUCCEEDED'), failed: n('FAILED'), notAttempted: n('NOT_ATTEMPTED'), notSelected: n('NOT_SELECTED'), pending: n('PENDING'), inProgress: n('IN_PROGRESS') };
}

/** Who gave a gate its verdict, for the run's log: the token's name. */
const actorName = (ctx: ApiContext) => ctx.principal?.name ?? 'an operator';

const asResult = (r: UpdateResultRow) => ({ ...r, arch: r.arch === '' ? null : r.arch });

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
  @Query(() => Deployment, { nullable: true })
  deployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID) id: string) {
    return service(ctx).find(id);
  }

  @Authorized('VIEWER')
  @Query(() => DeploymentPreview, { description: 'Per machine, what a deployment (by id, or an unsaved input; with both, the input as the new version of that deployment) would install, leave out, or likely not reach within its window. An input is checked by the rules of createDeployment (updateDeployment with an id) and nothing is written.' })
  previewDeployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { nullable: true }) id?: string, @Arg('input', () => DeploymentInput, { nullable: true }) input?: DeploymentInput) {
    return service(ctx).preview({ id, input });
  }

  @Authorized('VIEWER')
  @Query(() => ScheduleForecast, { description: 'When a deployment schedule as entered would run: its sentence and next runs (the console says it while the operator types).' })
  scheduleForecast(
    @Ctx() ctx: ApiContext,
    @Arg('schedule', () => ScheduleInput, { nullable: true, description: 'Default: once, at now + 30 minutes.' }) schedule: ScheduleInput | null | undefined,
    @Arg('onDemandOnly', () => Boolean, { defaultValue: false }) onDemandOnly: boolean,
    @Arg('windowMinutes', () => Int, { defaultValue: 120, description: 'The window: an hourly schedule must leave room for it.' }) windowMinutes: number,
    @Arg('count', () => Int, { defaultValue: 3, description: 'How many next runs, 1 to 10.' }) count: number,
  ) {
    return service(ctx).forecast({ schedule, onDemandOnly, windowMinutes, count });
  }

  @Authorized('OPERATOR')
  @Mutation(() => Deployment, { description: 'Creates a deployment and its schedule.' })
  createDeployment(@Ctx() ctx: ApiContext, @Arg('input', () => DeploymentInput) input: DeploymentInput) {
    return service(ctx).create(input);
  }

  @Authorized('OPERATOR')
  @Mutation(() => Deployment, { description: 'Replaces a deployment; its schedule follows. The same schedule.startAt as stored is kept even when it is past.' })
  updateDeployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID) id: string, @Arg('input', () => DeploymentInput) input: DeploymentInput) {
    return service(ctx).update(id, input);
  }

  @Authorized('OPERATOR')
  @Mutation(() => ID, { description: 'Deletes a deployment and its schedule; its runs and results stay.' })
  deleteDeployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID) id: string) {
    return service(ctx).delete(id);
  }

  @Authorized('OPERATOR')
  @Mutation(() => Deployment)
  pauseDeployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID) id: string) {
    return service(ctx).setPaused(id, true);
  }

  @Authorized('OPERATOR')
  @Mutation(() => Deployment)
  resumeDeployment(@Ctx() ctx: ApiContext, @Arg('id', () => ID) id: string) {
    return service(ctx).setPaused(id, false);
  }

  @Authorized('OPERATOR')
  @Mutation(() => DeploymentRun, { description: 'Runs a deployment now, outside its schedule.' })
  runDeploymentNow(@Ctx() ctx: ApiContext, @Arg('id', () => ID) id: string) {
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

  @FieldResolver(() => DeploymentRun, { nullable: true })
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
  @Query(() => DeploymentRun, { nullable: true })
  async deploymentRun(@Ctx() ctx: ApiContext, @Arg('id', () => ID) id: string) {
    return (await service(ctx).findRun(id)) ?? null;
  }

  @Authorized('OPERATOR')
  @Mutation(() => DeploymentRun, { description: 'Cancels a running run: machines not started stay so, running ones are stopped.' })
  cancelDeploymentRun(@Ctx() ctx: ApiContext, @Arg('id', () => ID) id: string) {
    return service(ctx).cancelRun(id);
  }

  @Authorized('OPERATOR')
  @Mutation(() => DeploymentRun, { description: "Approves the gate of a ring WAITING_FOR_APPROVAL (1-based): the next ring starts. CONFLICT when that ring is not waiting for approval." })
  approveRing(@Ctx() ctx: ApiContext, @Arg('runId', () => ID) runId: string, @Arg('ring', () => Int) ring: number) {
    return service(ctx).approveRing(runId, ring, actorName(ctx));
  }

  @Authorized('OPERATOR')
  @Mutation(() => DeploymentRun, { description: 'Rejects the gate of a ring WAITING_FOR_APPROVAL or HALTED: the run ends CANCELED with this reason; later rings do not start.' })
  rejectRing(@Ctx() ctx: ApiContext, @Arg('runId', () => ID) runId: string, @Arg('ring', () => Int) ring: number, @Arg('reason', () => String) reason: string) {
    return service(ctx).rejectRing(runId, ring, reason, actorName(ctx));
  }

  @Authorized('OPERATOR')
  @Mutation(() => DeploymentRun, { description: "Resumes a HALTED run: the halted ring's gate is overridden and the next ring starts." })
  resumeDeploymentRun(@Ctx() ctx: ApiContext, @Arg('id', () => ID) id: string) {
    return service(ctx).resumeRun(id, actorName(ctx));
  }

  @Authorized('VIEWER')
  @Subscription(() => RunProgress, {
    topics: 'deploymentRunProgress',
    topicId: ({ args }) => (args as { runId: string }).runId,
    description: 'Live progress of a run: status changes per run, machine and update, and the job stream as it arrives.',
  })
  async deploymentRunProgress(@Root() event: RunProgressEvent & { runId?: string }, @Ctx() ctx: ApiContext, @Arg('runId', () => ID) runId: string): Promise<RunProgress> {
    const s = service(ctx);
    const run = await s.findRun(runId);
    if (!run) throw notFound(`No deployment run with id ${runId}.`);
    const machineRun = event.machineRunId ? ((await s.machineRuns(runId)).find((m) => m.id === event.machineRunId) ?? null) : null;
    const updates = event.kind === 'UPDATES' && event.machineRunId ? (await s.updateResults(event.machineRunId)).filter((u) => event.updateNames.includes(u.name)).map(asResult) : [];
    const lines = event.kind === 'LINES' && event.lineIds ? await s.logs(runId, { afterId: event.lineIds[0] - 1, limit: event.lineIds[1] - event.lineIds[0] + 1 }) : [];
    return { runId, kind: event.kind, run, machineRun, updates, lines } as RunProgress;
  }

  @FieldResolver(() => Deployment, { description: 'The deployment (also when it has been deleted since).' })
  deployment(@Root() run: RunRow, @Ctx() ctx: ApiContext) {
    return service(ctx).find(run.deploymentId, true);
  }

  @FieldResolver(() => Int, { nullable: true })
  durationSeconds(@Root() run: RunRow) {
    return run.startedAt && run.endedAt ? Math.round((run.endedAt.getTime() - run.startedAt.getTime()) / 1000) : null;
  }

  @FieldResolver(() => ResultCounts, { description: 'Updates per status, across every machine.' })
  async counts(@Root() run: RunRow, @Ctx() ctx: ApiContext) {
    return counts(await service(ctx).resultCountsOfRun(run.id, 'status'));
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
    description: "The frozen update set of a ringed run: fixed from the first ring's plans when it starts; later rings install only these name=version pairs. Null: no rings, or the first ring has not started.",
  })
  updateSet(@Root() run: RunRow) {
    return run.updateSet ?? null;
  }

  @FieldResolver(() => [MachineRun])
  machineRuns(@Root() run: RunRow, @Ctx() ctx: ApiContext) {
    return service(ctx).machineRuns(run.id);
  }

  @FieldResolver(() => [RunLogLine], { description: 'All logs of the run, oldest first: the server\'s and every machine\'s job stream.' })
  logs(@Root() run: RunRow, @Ctx() ctx: ApiContext, @Arg('afterId', () => Int, { defaultValue: 0 }) afterId: number, @Arg('limit', () => Int, { defaultValue: 1000 }) limit: number) {
    if (limit < 1 || limit > MAX_LOG_LINES) throw badUserInput('limit', `limit must be between 1 and ${MAX_LOG_LINES}; got ${limit}.`);
    return service(ctx).logs(run.id, { afterId, limit });
  }
}

@Resolver(() => MachineRun)
export class MachineRunResolver {
  @FieldResolver(() => [UpdateResult], { description: 'Every update of this machine in the run, in install order, then those not selected.' })
  async updates(@Root() machineRun: MachineRunRow, @Ctx() ctx: ApiContext) {
    return (await service(ctx).updateResults(machineRun.id)).map(asResult);
  }

  @FieldResolver(() => ResultCounts)
  async counts(@Root() machineRun: MachineRunRow, @Ctx() ctx: ApiContext) {
    return counts(await service(ctx).updateResults(machineRun.id));
  }

  @FieldResolver(() => [RunLogLine], { description: "The job stream: the package manager's and the agent's lines." })
  jobStream(@Root() machineRun: MachineRunRow, @Ctx() ctx: ApiContext, @Arg('afterId', () => Int, { defaultValue: 0 }) afterId: number, @Arg('limit', () => Int, { defaultValue: 1000 }) limit: number) {
    if (limit < 1 || limit > MAX_LOG_LINES) throw badUserInput('limit', `limit must be between 1 and ${MAX_LOG_LINES}; got ${limit}.`);
    return service(ctx).logs(machineRun.runId, { machineRunId: machineRun.id, afterId, limit });
  }
}
