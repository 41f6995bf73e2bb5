import { Arg, Authorized, Ctx, ID, Query, Resolver } from 'type-graphql';
import type { ApiContext } from '../context.js';
import { NodeService } from './node.service.js';
import { Node } from './node.type.js';

@Resolver()
export class NodeResolver {
  @Authorized('VIEWER')
  @Query(() => Node, { nullable: true, description: 'The object with this global id (any type that implements Node), or null when there is none. API tokens and enrollment keys need the ADMIN role.' })
  node(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'An id from any query result.' }) id: string) {
    return new NodeService(ctx.services).find(id, ctx.principal!);
  }
}
