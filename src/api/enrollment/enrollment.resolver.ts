import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { EnrollmentKeyRow } from '../../db/enrollmentKeys.js';
import type { ApiContext } from '../context.js';
import { EnrollmentService } from './enrollment.service.js';
import { PageArgs, pageWindow, toConnection } from '../relay.js';
import { CreatedEnrollmentKey, CreateEnrollmentKeyInput, EnrollmentKey, EnrollmentKeyConnection, EnrollmentKeyState } from './enrollment.type.js';

const service = (ctx: ApiContext) => new EnrollmentService(ctx.services);

@Resolver(() => EnrollmentKey)
export class EnrollmentResolver {
  @Authorized('ADMIN')
  @Query(() => EnrollmentKeyConnection, { description: 'Every enrollment key, newest first (without secrets).' })
  async enrollmentKeys(@Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).page({ offset: window.offset, limit: window.limit + 1 });
    return toConnection(rows, window.offset, totalCount, window.limit);
  }

  @Authorized('ADMIN')
  @Mutation(() => CreatedEnrollmentKey, { description: 'Creates an enrollment key and returns its secret, this once.' })
  createEnrollmentKey(@Ctx() ctx: ApiContext, @Arg('input', () => CreateEnrollmentKeyInput, { description: 'The new key.' }) input: CreateEnrollmentKeyInput) {
    return service(ctx).create(input);
  }

  @Authorized('ADMIN')
  @Mutation(() => EnrollmentKey, { description: 'Revokes an enrollment key: agents presenting it are refused. Enrolled machines keep working.' })
  revokeEnrollmentKey(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The key to revoke.' }) id: string) {
    return service(ctx).revoke(id);
  }

  @FieldResolver(() => EnrollmentKeyState, { description: 'Whether it enrolls machines now.' })
  state(@Root() key: EnrollmentKeyRow, @Ctx() ctx: ApiContext) {
    return service(ctx).state(key);
  }
}
