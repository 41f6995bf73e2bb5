import { Arg, Authorized, Ctx, ID, Mutation, Resolver } from 'type-graphql';
import type { ApiContext } from '../context.js';
import { apiError } from '../errors.js';
import { ComplianceHistoryGroupBy } from '../complianceHistory/complianceHistory.type.js';
import { ExportService } from './export.service.js';
import { ExportFormat, ExportKind, ExportLink } from './export.type.js';

@Resolver()
export class ExportResolver {
  // A mutation although it changes nothing: its answer is a credential, and mutations travel over POST only (never in a GET URL a proxy logs).
  @Authorized('VIEWER')
  @Mutation(() => ExportLink, { description: 'A signed link (valid a few minutes) that downloads an export as CSV or JSON, streamed: the computers view, missing updates, a run\'s results, or the compliance history (refusals of from, to and groupBy as complianceHistory\'s).' })
  createExport(
    @Ctx() ctx: ApiContext,
    @Arg('kind', () => ExportKind, { description: 'What to export.' }) kind: ExportKind,
    @Arg('format', () => ExportFormat, { description: 'CSV or JSON.' }) format: ExportFormat,
    @Arg('runId', () => ID, { nullable: true, description: 'The run, for RUN_RESULTS.' }) runId?: string | null,
    @Arg('from', () => String, { nullable: true, description: 'COMPLIANCE_HISTORY: the first day (UTC), as YYYY-MM-DD; default 29 days before `to`.' }) from?: string | null,
    @Arg('to', () => String, { nullable: true, description: 'COMPLIANCE_HISTORY: the last day (UTC), as YYYY-MM-DD; default today.' }) to?: string | null,
    @Arg('groupBy', () => ComplianceHistoryGroupBy, { nullable: true, description: 'COMPLIANCE_HISTORY: how the rows are grouped; default FLEET.' }) groupBy?: ComplianceHistoryGroupBy | null,
  ) {
    if (!ctx.principal) throw apiError('UNAUTHENTICATED', 'Sign in first.');
    return new ExportService(ctx.services).createLink(ctx.principal, { kind, format, runId, from, to, groupBy }, ctx.origin);
  }
}
