import { Arg, Args, Authorized, Ctx, ID, Mutation, Query, Resolver } from 'type-graphql';
import { isUuid } from '../../fleet/ids.js';
import type { ApiContext } from '../context.js';
import { notFound } from '../errors.js';
import { PageArgs, pageWindow, toConnection } from '../relay.js';
import { WebhookService } from './webhook.service.js';
import { CreateWebhookInput, UpdateWebhookInput, Webhook, WebhookConnection, WebhookDeliveryConnection, WebhookDeliveryStatus, WebhookWithSecret } from './webhook.type.js';

const service = (ctx: ApiContext) => new WebhookService(ctx.services);
const checkId = (id: string) => {
  if (!isUuid(id)) throw notFound(`No webhook with id ${id}. List them with the webhooks query.`);
};

@Resolver(() => Webhook)
export class WebhookResolver {
  @Authorized('ADMIN')
  @Query(() => WebhookConnection, { description: 'Every webhook subscription, newest first, without secrets.' })
  async webhooks(@Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).page({ offset: window.offset, limit: window.limit + 1 });
    return toConnection(rows, window.offset, totalCount, window.limit);
  }

  @Authorized('ADMIN')
  @Query(() => Webhook, { description: 'One webhook subscription, without its secret.' })
  webhook(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: "The subscription's id." }) id: string) {
    checkId(id);
    return service(ctx).find(id);
  }

  @Authorized('ADMIN')
  @Query(() => WebhookDeliveryConnection, { description: 'The delivery log, newest first: each event sent to each subscription, its attempts, last error and next attempt.' })
  async webhookDeliveries(
    @Ctx() ctx: ApiContext,
    @Args(() => PageArgs) page: PageArgs,
    @Arg('webhookId', () => ID, { nullable: true, description: "One subscription's deliveries (default: every subscription's)." }) webhookId?: string | null,
    @Arg('status', () => WebhookDeliveryStatus, { nullable: true, description: 'Only deliveries in this state.' }) status?: WebhookDeliveryStatus | null,
  ) {
    if (webhookId) checkId(webhookId);
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).deliveries({ subscriptionId: webhookId ?? null, status: status ?? null }, { offset: window.offset, limit: window.limit + 1 });
    return toConnection(rows, window.offset, totalCount, window.limit);
  }

  @Authorized('ADMIN')
  @Mutation(() => WebhookWithSecret, { description: 'Subscribes a URL to events; returns the signing secret, this once.' })
  createWebhook(@Ctx() ctx: ApiContext, @Arg('input', () => CreateWebhookInput, { description: 'The new subscription.' }) input: CreateWebhookInput) {
    return service(ctx).create(input);
  }

  @Authorized('ADMIN')
  @Mutation(() => Webhook, { description: 'Changes a subscription (URL, events, thresholds, enabled); its secret stays.' })
  updateWebhook(
    @Ctx() ctx: ApiContext,
    @Arg('id', () => ID, { description: 'The subscription to change.' }) id: string,
    @Arg('input', () => UpdateWebhookInput, { description: 'What changes.' }) input: UpdateWebhookInput,
  ) {
    checkId(id);
    return service(ctx).update(id, input);
  }

  @Authorized('ADMIN')
  @Mutation(() => WebhookWithSecret, { description: 'Replaces the signing secret at once and returns the new one, this once; deliveries from now on are signed with it.' })
  rotateWebhookSecret(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The subscription.' }) id: string) {
    checkId(id);
    return service(ctx).rotateSecret(id);
  }

  @Authorized('ADMIN')
  @Mutation(() => Webhook, { description: 'Deletes a subscription and its delivery log; nothing more is sent to it.' })
  deleteWebhook(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The subscription to delete.' }) id: string) {
    checkId(id);
    return service(ctx).delete(id);
  }
}
