import { Arg, Args, Authorized, Ctx, FieldResolver, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { ApiContext } from '../context.js';
import { PageArgs, pageWindow, toConnection } from '../relay.js';
import { CveService, type CveAnswer } from './cve.service.js';
import { Cve, CveConnection, CveExposureConnection, CveFilter, CveTrackerImport } from './cve.type.js';

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
  @Query(() => CveTrackerImport, { nullable: true, description: 'The latest import of the Debian security tracker (null: never imported; apt machines then show no CVEs).' })
  async cveTrackerImport(@Ctx() ctx: ApiContext) {
    return (await service(ctx).lastImport()) ?? null;
  }

  @Authorized('ADMIN')
  @Mutation(() => CveTrackerImport, { description: "Imports the Debian security tracker's JSON from an http(s) URL, replacing the previous import (apt machines' CVEs come from it)." })
  importCveTracker(@Ctx() ctx: ApiContext, @Arg('url', () => String, { description: 'e.g. https://security-tracker.debian.org/tracker/data/json' }) url: string) {
    return service(ctx).importTracker(url);
  }

  @FieldResolver(() => CveExposureConnection, { description: 'The exposed machines, by name.' })
  async exposures(@Root() cve: CveAnswer, @Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const all = cve.exposures ?? (await service(ctx).exposures(cve.id));
    const slice = all.slice(window.offset, window.offset + window.limit);
    const machines = new Map((await service(ctx).machines(slice.map((e) => e.machineId))).map((m) => [m.id, m]));
    const rows = slice.filter((e) => machines.has(e.machineId)).map((e) => ({ ...e, machine: machines.get(e.machineId)! }));
    return toConnection(rows, window.offset, all.length);
  }
}
