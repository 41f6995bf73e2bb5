import { Arg, Args, Authorized, Ctx, FieldResolver, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { ApiContext } from '../context.js';
import { PageArgs, pageWindow, toConnection } from '../relay.js';
import { CveService, type CveAnswer } from './cve.service.js';
import { Cve, CveConnection, CveExposureConnection, CveFeedFormat, CveFilter, CveTrackerImport } from './cve.type.js';

const service = (ctx: ApiContext) => new CveService(ctx.services);

@Resolver(() => Cve)
export class CveResolver {
  @Authorized('VIEWER')
  @Query(() => Cve, { description: 'One CVE: the live machines that miss an update fixing it, since when, and whether a scheduled deployment would install the fix. machineCount 0 when none does.' })
  cve(@Ctx() ctx: ApiContext, @Arg('id', () => String, { description: 'The CVE id, e.g. CVE-2024-3094 (case does not matter).' }) id: string) {
    return service(ctx).cve(id);
  }

  @Authorized('VIEWER')
  @Query(() => CveConnection, { description: 'The CVEs some live machine misses a fix for: most severe first, then the most machines.' })
  async cves(
    @Ctx() ctx: ApiContext,
    @Args(() => PageArgs) page: PageArgs,
    @Arg('filter', () => CveFilter, { nullable: true, description: 'Which CVEs (default: all).' }) filter?: CveFilter,
  ) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).cves(filter ?? {}, window);
    return toConnection(rows, window.offset, totalCount);
  }

  @Authorized('VIEWER')
  @Query(() => CveTrackerImport, { nullable: true, description: 'The latest import of the Debian security tracker (null: never imported). cveImports lists every source, OSV records included.' })
  async cveTrackerImport(@Ctx() ctx: ApiContext) {
    return (await service(ctx).lastImport()) ?? null;
  }

  @Authorized('VIEWER')
  @Query(() => [CveTrackerImport], { description: 'The latest import of each source of CVE fixes ever imported (DEBIAN, OSV:DEBIAN, OSV:UBUNTU), by source.' })
  cveImports(@Ctx() ctx: ApiContext) {
    return service(ctx).imports();
  }

  @Authorized('ADMIN')
  @Mutation(() => CveTrackerImport, {
    description:
      "Imports CVE fixes of apt machines from an http(s) URL: the Debian security tracker's JSON, or OSV records of Ubuntu and Debian. It replaces the previous import of the same source (the tracker, or each distribution the OSV records hold).",
  })
  importCveTracker(
    @Ctx() ctx: ApiContext,
    @Arg('url', () => String, { description: 'e.g. https://security-tracker.debian.org/tracker/data/json, https://osv-vulnerabilities.storage.googleapis.com/Ubuntu/all.zip' }) url: string,
    @Arg('format', () => CveFeedFormat, { nullable: true, description: 'The document\'s format; default: read from the document (a zip, a list or an object with "id" and "affected" is OSV).' })
    format?: CveFeedFormat | null,
  ) {
    return service(ctx).importTracker(url, format ?? undefined);
  }

  @FieldResolver(() => CveExposureConnection, { description: 'The exposed machines, by name.' })
  async exposures(@Root() cve: CveAnswer, @Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows: slice, totalCount } = await service(ctx).exposurePage(cve, window);
    const machines = new Map((await service(ctx).machines(slice.map((e) => e.machineId))).map((m) => [m.id, m]));
    const rows = slice.filter((e) => machines.has(e.machineId)).map((e) => ({ ...e, machine: machines.get(e.machineId)! }));
    return toConnection(rows, window.offset, totalCount);
  }
}
