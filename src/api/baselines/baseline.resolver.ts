import { Arg, Authorized, Ctx, ID, Mutation, Query, Resolver } from 'type-graphql';
import type { BaselineRow } from '../../db/baselines.js';
import type { ApiContext } from '../context.js';
import { BaselineInput } from './baseline.input.js';
import { BaselineService } from './baseline.service.js';
import { Baseline } from './baseline.type.js';

const service = (ctx: ApiContext) => new BaselineService(ctx.services);

export const baselineObject = (row: BaselineRow): Baseline => ({ ...(row as unknown as Baseline), builtIn: false });

@Resolver(() => Baseline)
export class BaselineResolver {
  @Authorized('VIEWER')
  @Query(() => [Baseline], { description: 'Every patch baseline, by OS type and name (machines no baseline reaches have the built-in one).' })
  async baselines(@Ctx() ctx: ApiContext) {
    return (await service(ctx).list()).map(baselineObject);
  }

  @Authorized('VIEWER')
  @Query(() => Baseline, { nullable: true, description: 'One patch baseline (null: no such baseline).' })
  async baseline(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The baseline.' }) id: string) {
    const row = await service(ctx).find(id);
    return row && baselineObject(row);
  }

  @Authorized('OPERATOR')
  @Mutation(() => Baseline, { description: "Creates a patch baseline; the machines it reaches are judged by it from the moment it answers." })
  async createBaseline(@Ctx() ctx: ApiContext, @Arg('input', () => BaselineInput, { description: 'The baseline.' }) input: BaselineInput) {
    return baselineObject((await service(ctx).save(null, input))!);
  }

  @Authorized('OPERATOR')
  @Mutation(() => Baseline, { description: 'Replaces a patch baseline.' })
  async updateBaseline(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The baseline.' }) id: string, @Arg('input', () => BaselineInput, { description: 'Its new definition.' }) input: BaselineInput) {
    return baselineObject((await service(ctx).save(id, input))!);
  }

  @Authorized('OPERATOR')
  @Mutation(() => ID, { description: 'Deletes a patch baseline; its machines get the next baseline that reaches them, or the built-in one.' })
  async deleteBaseline(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The baseline.' }) id: string) {
    return (await service(ctx).save(id, null))!.id;
  }
}
