import { Arg, Authorized, Ctx, Int, Mutation, Query, Resolver, Root, Subscription } from 'type-graphql';
import type { Events } from '../../events/pubsub.js';
import type { ApiContext } from '../context.js';
import { badUserInput, notFound } from '../errors.js';
import { SystemService } from './system.service.js';
import { ComponentState, SelfCheck, SystemStatus } from './system.type.js';

/** The longest a self-check may wait: it exists to prove timers survive a worker restart, not to park work. */
const MAX_SELF_CHECK_WAIT_SECONDS = 3600;

@Resolver()
export class SystemResolver {
  @Authorized('VIEWER')
  @Query(() => SystemStatus, { description: 'Whether the database and Temporal answer, and the last worker self-check.' })
  async systemStatus(@Ctx() { services }: ApiContext): Promise<SystemStatus> {
    const status = await new SystemService(services).status();
    return {
      ...status,
      database: { state: ComponentState[status.database.state], error: status.database.error },
      temporal: { state: ComponentState[status.temporal.state], error: status.temporal.error },
    };
  }

  @Authorized('OPERATOR')
  @Mutation(() => SelfCheck, { description: 'Starts a worker self-check; `selfCheckCompleted` announces its end.' })
  async runSelfCheck(
    @Ctx() { services }: ApiContext,
    @Arg('waitSeconds', () => Int, { defaultValue: 0, description: `Seconds on a durable timer first (0 to ${MAX_SELF_CHECK_WAIT_SECONDS}).` })
    waitSeconds: number,
  ): Promise<SelfCheck> {
    if (waitSeconds < 0 || waitSeconds > MAX_SELF_CHECK_WAIT_SECONDS) {
      throw badUserInput('waitSeconds', `waitSeconds must be between 0 and ${MAX_SELF_CHECK_WAIT_SECONDS}; got ${waitSeconds}.`);
    }
    return new SystemService(services).startSelfCheck(waitSeconds);
  }

  @Authorized('VIEWER')
  @Subscription(() => SelfCheck, { topics: 'selfCheckCompleted', description: 'A worker completed a self-check.' })
  async selfCheckCompleted(
    @Root() event: Events['selfCheckCompleted'][0],
    @Ctx() { services }: ApiContext,
  ): Promise<SelfCheck> {
    const row = await new SystemService(services).findSelfCheck(event.selfCheckId);
    if (!row) throw notFound(`self-check ${event.selfCheckId} no longer exists`);
    return row;
  }
}
