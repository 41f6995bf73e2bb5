import { Arg, Authorized, Ctx, ID, Mutation, Resolver } from 'type-graphql';
import type { ApiContext } from '../context.js';
import { apiError } from '../errors.js';
import { ExportService } from './export.service.js';
import { ExportFormat, ExportKind, ExportLink } from './export.type.js';

@Resolver()
export class ExportResolver {
  // A mutation although it changes nothing: its answer is a credential, and mutations travel over POST only (never in a GET URL a proxy logs).
  @Authorized('VIEWER')
  @Mutation(() => ExportLink, { description: 'A signed link (valid a few minutes) that downloads an export as CSV or JSON, streamed: the computers view, missing updates, or a run\'s results.' })
  createExport(
    @Ctx() ctx: ApiContext,
    @Arg('kind', () => ExportKind, { description: 'What to export.' }) kind: ExportKind,
    @Arg('format', () => ExportFormat, { description: 'CSV or JSON.' }) format: ExportFormat,
    @Arg('runId', () => ID, { nullable: true, description: 'The run, for RUN_RESULTS.' }) runId?: string | null,
  ) {
    if (!ctx.principal) throw apiError('UNAUTHENTICATED', 'Sign in first.');
    return new ExportService(ctx.services).createLink(ctx.principal, { kind, format, runId }, ctx.origin);
  }
}
