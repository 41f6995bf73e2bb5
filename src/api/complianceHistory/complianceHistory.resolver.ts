import { Arg, Authorized, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import type { ApiContext } from '../context.js';
import { ComplianceHistoryService } from './complianceHistory.service.js';
import { ComplianceHistory, ComplianceHistoryGroupBy, ComplianceSnapshotResult } from './complianceHistory.type.js';

const service = (ctx: ApiContext) => new ComplianceHistoryService(ctx.services);

@Resolver(() => ComplianceHistory)
export class ComplianceHistoryResolver {
  @Authorized('VIEWER')
  @Query(() => ComplianceHistory, {
    description:
      "The fleet's compliance day by day, from the daily snapshots (docs/compliance-history.md). At most 367 days per query; refusals carry extensions.reason: BAD_DATE, FROM_AFTER_TO, RANGE_TOO_LONG.",
  })
  async complianceHistory(
    @Ctx() ctx: ApiContext,
    @Arg('from', () => String, { nullable: true, description: 'The first day (UTC), as YYYY-MM-DD; default 29 days before `to`.' }) from?: string | null,
    @Arg('to', () => String, { nullable: true, description: 'The last day (UTC), as YYYY-MM-DD; default today.' }) to?: string | null,
    @Arg('groupBy', () => ComplianceHistoryGroupBy, { nullable: true, description: 'How the series are split; default FLEET.' }) groupBy?: ComplianceHistoryGroupBy | null,
  ) {
    return service(ctx).history({ from, to, groupBy });
  }

  @Authorized('OPERATOR')
  @Mutation(() => ComplianceSnapshotResult, { description: "Takes today's compliance snapshot now, replacing today's if one was taken (one snapshot per day is kept)." })
  takeComplianceSnapshot(@Ctx() ctx: ApiContext) {
    return service(ctx).takeSnapshot();
  }
}
