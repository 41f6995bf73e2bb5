import { Args, Ctx, FieldResolver, Resolver, Root } from 'type-graphql';
import type { MissingUpdate as MissingUpdateRow } from '../../fleet/missingUpdates.js';
import type { ApiContext } from '../context.js';
import { PageArgs, pageWindow, toConnection } from '../relay.js';
import { MachineService } from './machine.service.js';
import { MachineConnection, MissingUpdate } from './machine.type.js';

/** Which machines miss an update of the fleet-wide list (the console's missing updates page). */
@Resolver(() => MissingUpdate)
export class MissingUpdateResolver {
  @FieldResolver(() => MachineConnection, { description: 'The machines missing it (their latest assessment lists it), by name.' })
  async machines(@Root() update: MissingUpdateRow, @Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await new MachineService(ctx.services).machinesMissing(update, window);
    // The machines missing an update are counted from missing_update_counts: exact.
    return { ...toConnection(rows, window.offset, totalCount), totalCountExact: true };
  }
}
