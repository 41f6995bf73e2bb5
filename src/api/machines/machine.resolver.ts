import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';
import type { MachineRow } from '../../db/machines.js';
import { clockWarning } from '../../fleet/agentClock.js';
import type { Events } from '../../events/pubsub.js';
import type { ApiContext } from '../context.js';
import { notFound } from '../errors.js';
import { PageArgs, pageWindow, toConnection } from '../relay.js';
import { decodeMachineCursor, encodeMachineCursor } from './machineCursor.js';
import { AgentReadiness, Compliance, SortDirection } from './machine.enums.js';
import { MachineFilter, MachineOrder, MachineSortField, MissingUpdateFilter } from './machine.input.js';
import { MachineService } from './machine.service.js';
import { Baseline } from '../baselines/baseline.type.js';
import {
  AssessmentConnection,
  AssessmentError,
  AssessRequestResult,
  ComplianceSummary,
  Machine,
  MachineConnection,
  MissingUpdateConnection,
  PendingUpdateConnection,
  ReadinessDetail,
  RepositoryProblem,
} from './machine.type.js';


const service = (ctx: ApiContext) => new MachineService(ctx.services);

@Resolver(() => Machine)
export class MachineResolver {
  @Authorized('VIEWER')
  @Query(() => MachineConnection, { description: 'The computers view: every managed machine, filtered, sorted and paged.' })
  async machines(
    @Ctx() ctx: ApiContext,
    @Args(() => PageArgs) page: PageArgs,
    @Arg('filter', () => MachineFilter, { description: 'Which machines (default: every managed machine).', nullable: true }) filter?: MachineFilter,
    @Arg('orderBy', () => MachineOrder, { description: 'Their order (default: by name).', nullable: true }) orderBy?: MachineOrder,
  ) {
    const sort = orderBy ?? { field: MachineSortField.NAME, direction: SortDirection.ASC };
    const { limit } = pageWindow({ first: page.first });
    const cursor = decodeMachineCursor(page.after, sort);
    const window = { limit, offset: cursor.kind === 'offset' ? cursor.offset : 0, after: cursor.kind === 'position' ? cursor.position : undefined };
    const { rows, positions, hasMore, totalCount, totalCountExact, totalCountComputedAt } = await service(ctx).list(filter ?? {}, sort, window);
    const edges = rows.map((node, i) => ({ cursor: encodeMachineCursor(sort, positions[i]!), node }));
    // Not relay.ts's toConnection: its cursors are offsets, these are positions in the order (machineCursor.ts), so a deep page is read through an index and hasPreviousPage follows the cursor, not an offset.
    return {
      edges,
      pageInfo: { hasNextPage: hasMore, hasPreviousPage: cursor.kind === 'position' || (cursor.kind === 'offset' && cursor.offset > 0), startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
      totalCount,
      totalCountExact,
      totalCountComputedAt,
    };
  }

  @Authorized('VIEWER')
  @Query(() => Machine, { description: 'One machine by id (null: no such machine).', nullable: true })
  machine(
    @Ctx() ctx: ApiContext,
    @Arg('id', () => ID, { description: 'The machine.' }) id: string,
    @Arg('includeRemoved', () => Boolean, { defaultValue: false, description: 'Also a machine removed from management (removedAt set): its history is kept.' }) includeRemoved: boolean,
  ) {
    return service(ctx).find(id, { includeRemoved });
  }

  @Authorized('VIEWER')
  @Query(() => MissingUpdateConnection, { description: 'Updates missing across the fleet, with how many machines miss each; critical first; as of computedAt.' })
  async missingUpdates(
    @Ctx() ctx: ApiContext,
    @Args(() => PageArgs) page: PageArgs,
    @Arg('filter', () => MissingUpdateFilter, { description: 'Which updates (default: all).', nullable: true }) filter?: MissingUpdateFilter,
  ) {
    const window = pageWindow(page);
    const { rows, totalCount, computedAt } = await service(ctx).missingUpdates(filter ?? {}, window);
    return { ...toConnection(rows, window.offset, totalCount), computedAt };
  }

  @Authorized('VIEWER')
  @Query(() => ComplianceSummary, { description: 'Machines per compliance state and readiness, pending updates per classification, as of computedAt.' })
  async complianceSummary(@Ctx() ctx: ApiContext): Promise<ComplianceSummary> {
    const summary = await service(ctx).summary();
    return {
      total: summary.total,
      compliant: summary.byCompliance.COMPLIANT,
      nonCompliant: summary.byCompliance.NON_COMPLIANT,
      notAssessed: summary.byCompliance.NOT_ASSESSED,
      ready: summary.byReadiness.READY,
      disconnected: summary.byReadiness.DISCONNECTED,
      notConfigured: summary.byReadiness.NOT_CONFIGURED,
      pendingByClassification: summary.pendingByClassification as ComplianceSummary['pendingByClassification'],
      overdueMachines: summary.overdueMachines,
      overdueUpdates: summary.overdueUpdates,
      computedAt: summary.computedAt,
    };
  }

  @Authorized('OPERATOR')
  @Mutation(() => [AssessRequestResult], { description: 'Asks the agents of these machines for a fresh assessment now; it reaches a connected agent within seconds.' })
  assessMachines(@Ctx() ctx: ApiContext, @Arg('machineIds', () => [ID], { description: 'The machines to assess.' }) machineIds: string[]) {
    return service(ctx).requestAssessments(machineIds);
  }

  @Authorized('OPERATOR')
  @Mutation(() => Machine, { description: 'Enables or disables update management for a machine (a disabled machine is NOT_CONFIGURED and takes part in no deployment).' })
  setMachineManagement(@Ctx() ctx: ApiContext, @Arg('machineId', () => ID, { description: 'The machine.' }) machineId: string, @Arg('enabled', () => Boolean, { description: 'true: assess and update it; false: leave it alone.' }) enabled: boolean) {
    return service(ctx).setManagement(machineId, enabled);
  }

  @Authorized('OPERATOR')
  @Mutation(() => Machine, { description: "Replaces a machine's tags (deployments can target machines by tag)." })
  setMachineTags(@Ctx() ctx: ApiContext, @Arg('machineId', () => ID, { description: 'The machine.' }) machineId: string, @Arg('tags', () => [String], { description: 'Its tags from now on (they replace the current ones).' }) tags: string[]) {
    return service(ctx).setTags(machineId, tags);
  }

  @Authorized('ADMIN')
  @Mutation(() => ID, { description: "Removes a machine from management and revokes its agent's credential. Its history is kept." })
  async removeMachine(@Ctx() ctx: ApiContext, @Arg('machineId', () => ID, { description: 'The machine to remove.' }) machineId: string) {
    return (await service(ctx).remove(machineId)).id;
  }

  @Authorized('VIEWER')
  @Subscription(() => Machine, {
    topics: 'machineChanged',
    // After a break in the server's event feed, a subscription to one machine gets it again (its
    // changes meanwhile may have been missed); one to every machine cannot be given them all.
    filter: ({ payload, args }: { payload: Events['machineChanged'][0]; args: { machineId?: string } }) =>
      'resync' in payload ? Boolean(args.machineId) : !args.machineId || payload.machineId === args.machineId,
    description:
      "A machine's compliance, readiness, assessment, facts or settings changed (all machines, or the one given). With machineId, the machine is also sent again after the server lost its connection to PostgreSQL for a while, since changes may have been missed; without, query `machines` again after such a break.",
  })
  async machineChanged(
    @Root() event: Events['machineChanged'][0],
    @Ctx() ctx: ApiContext,
    @Arg('machineId', () => ID, { description: 'One machine (default: every machine).', nullable: true }) machineId?: string,
  ): Promise<MachineRow> {
    const id = 'resync' in event ? machineId! : event.machineId;
    const machine = await service(ctx).find(id);
    if (!machine) throw notFound(`Machine ${id} was removed.`);
    return machine;
  }

  // ---- computed fields ----

  @FieldResolver(() => Compliance, { description: 'COMPLIANT, NON_COMPLIANT or NOT_ASSESSED: compliance with its baseline, from its latest assessment.' })
  compliance(@Root() machine: MachineRow, @Ctx() ctx: ApiContext) {
    return service(ctx).compliance(machine);
  }

  @FieldResolver(() => String, { description: 'Why it is compliant or not with its baseline, naming the missing approved updates and the overdue ones (reads its pending updates: ask it of one machine, not of a long list).' })
  complianceReason(@Root() machine: MachineRow, @Ctx() ctx: ApiContext) {
    return service(ctx).complianceReason(machine);
  }

  @FieldResolver(() => Baseline, { description: 'The patch baseline it is judged by (the built-in one when no baseline reaches it by tag).' })
  async baseline(@Root() machine: MachineRow, @Ctx() ctx: ApiContext) {
    const baseline = await service(ctx).baseline(machine);
    return { ...baseline, builtIn: baseline.id === null, priority: Number.isFinite(baseline.priority) ? baseline.priority : 0 };
  }

  @FieldResolver(() => Int, { description: 'Approved updates past their SLA due date now (one per update name).' })
  overdueUpdateCount(@Root() machine: MachineRow, @Ctx() ctx: ApiContext) {
    return service(ctx).overdueCount(machine);
  }

  @FieldResolver(() => Date, { nullable: true, description: 'The earliest SLA due date of its approved updates (null: none has one).' })
  nextDueAt(@Root() machine: MachineRow) {
    return machine.slaDueDates[0] ? new Date(machine.slaDueDates[0]) : null;
  }

  @FieldResolver(() => AgentReadiness, { description: 'Update agent readiness (see readinessDetail for since when and why).' })
  agentReadiness(@Root() machine: MachineRow, @Ctx() ctx: ApiContext) {
    return service(ctx).readiness(machine).state;
  }

  @FieldResolver(() => ReadinessDetail, { description: 'Why the agent is in its readiness state, and since when.' })
  readinessDetail(@Root() machine: MachineRow, @Ctx() ctx: ApiContext) {
    return service(ctx).readiness(machine);
  }

  @FieldResolver(() => Boolean, {
    description: 'Another machine has the same name (hostnames ignore case): tell them apart by id, OS and last seen before you pick one by name. Also said in warnings.',
  })
  async duplicateName(@Root() machine: MachineRow, @Ctx() ctx: ApiContext) {
    return (await service(ctx).machinesSharingName(machine, ctx)) > 0;
  }

  @FieldResolver(() => [String], {
    description:
      "Problems worth attention: the agent's (e.g. automatic updates installing outside maintenance windows), a name shared with other machines, and a clock far from the server's.",
  })
  async warnings(@Root() machine: MachineRow, @Ctx() ctx: ApiContext) {
    const others = await service(ctx).machinesSharingName(machine, ctx);
    const shared =
      others === 0 ? null : `${others} other machine${others === 1 ? ' is' : 's are'} also named ${machine.name}: tell them apart by id, OS and last seen before you pick one by name, or rename the host.`;
    const clock = clockWarning(machine.clockOffsetSeconds);
    return [...machine.warnings, ...(shared ? [shared] : []), ...(clock ? [clock] : [])];
  }

  @FieldResolver(() => Int, { description: 'Missing critical and security updates: what makes a machine NON_COMPLIANT.' })
  criticalAndSecurityCount(@Root() machine: MachineRow) {
    return machine.criticalCount + machine.securityCount;
  }

  @FieldResolver(() => PendingUpdateConnection, { description: 'Pending updates of the latest assessment, critical first, a page at a time (a machine may have thousands).' })
  async pendingUpdates(@Root() machine: MachineRow, @Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).pendingUpdates(machine, window);
    return toConnection(rows, window.offset, totalCount);
  }

  @FieldResolver(() => [RepositoryProblem], { description: 'Repositories the latest assessment could not read.' })
  repositoryProblems(@Root() machine: MachineRow, @Ctx() ctx: ApiContext) {
    return service(ctx).repositoryProblems(machine);
  }

  @FieldResolver(() => AssessmentError, { description: 'Why the last assessment attempt failed (null: it did not).', nullable: true })
  lastAssessmentError(@Root() machine: MachineRow) {
    const error = machine.lastAssessmentError;
    return error ? { ...error, at: new Date(error.at) } : null;
  }

  @FieldResolver(() => AssessmentConnection, { description: 'The assessment history, newest first.' })
  async assessments(@Root() machine: MachineRow, @Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).history(machine.id, window);
    return toConnection(rows, window.offset, totalCount);
  }
}
