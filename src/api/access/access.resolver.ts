import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { ApiTokenRow } from '../../db/tokens.js';
import { isUuid } from '../../fleet/ids.js';
import type { ApiContext } from '../context.js';
import { notFound } from '../errors.js';
import { PageArgs, pageWindow, toConnection } from '../relay.js';
import { AccessService } from './access.service.js';
import { ApiToken, ApiTokenConnection, ApiTokenState, AuditEventConnection, AuditEventFilter, CreateApiTokenInput, CreatedApiToken } from './access.type.js';

const service = (ctx: ApiContext) => new AccessService(ctx.services);

@Resolver(() => ApiToken)
export class ApiTokenResolver {
  @Authorized('ADMIN')
  @Query(() => ApiTokenConnection, { description: 'Every API token, newest first, without secrets.' })
  async apiTokens(@Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).tokensPage({ offset: window.offset, limit: window.limit + 1 });
    return toConnection(rows, window.offset, totalCount, window.limit);
  }

  @Authorized('ADMIN')
  @Mutation(() => CreatedApiToken, { description: 'Creates an API token and returns its secret, this once.' })
  createApiToken(@Ctx() ctx: ApiContext, @Arg('input', () => CreateApiTokenInput, { description: 'The new token.' }) input: CreateApiTokenInput) {
    return service(ctx).createToken(input);
  }

  @Authorized('ADMIN')
  @Mutation(() => ApiToken, { description: 'Revokes an API token at once: every later request with it is UNAUTHENTICATED.' })
  revokeApiToken(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The token to revoke.' }) id: string) {
    if (!isUuid(id)) throw notFound(`No API token with id ${id}. List them with the apiTokens query.`);
    return service(ctx).revokeToken(id);
  }

  @FieldResolver(() => ApiTokenState, { description: 'Whether it is accepted now: ACTIVE, EXPIRED or REVOKED.' })
  state(@Root() token: ApiTokenRow, @Ctx() ctx: ApiContext) {
    return service(ctx).tokenState(token);
  }
}

@Resolver()
export class AuditResolver {
  @Authorized('ADMIN')
  @Query(() => AuditEventConnection, { description: 'The audit log, newest first: every mutation and every enrollment, kept when its target is deleted.' })
  async auditEvents(@Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs, @Arg('filter', () => AuditEventFilter, { description: 'Which events (default: all).', nullable: true }) filter?: AuditEventFilter | null) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).auditEvents(filter ?? {}, window);
    return toConnection(rows.map((r) => ({ ...r, id: String(r.id) })), window.offset, totalCount);
  }
}
