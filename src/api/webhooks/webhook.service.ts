import {
  createWebhookSubscription,
  deleteWebhookSubscription,
  findWebhookSubscription,
  updateWebhookSubscription,
  webhookDeliveriesPage,
  webhookSubscriptionsPage,
  type DeliveryFilter,
  type WebhookSubscriptionRow,
} from '../../db/webhooks.js';
import { webhookDocument, webhookInputProblems, webhookThresholds, type WebhookEventType, type WebhookInput } from '../../fleet/webhooks.js';
import { newWebhookSecret } from '../../webhooks/signature.js';
import type { ApiServices } from '../context.js';
import { badUserInput, notFound } from '../errors.js';

const missing = (id: string) => notFound(`No webhook with id ${id}. List them with the webhooks query.`);

export class WebhookService {
  constructor(private readonly services: ApiServices) {}

  private get db() {
    return this.services.database.db;
  }

  private static check(input: WebhookInput, mode: 'create' | 'update'): void {
    const [problem] = webhookInputProblems(input, mode);
    if (problem) throw badUserInput(problem.field, problem.message);
  }

  async create(input: WebhookInput & { url: string; events: string[]; enabled?: boolean | null }): Promise<{ webhook: WebhookSubscriptionRow; secret: string }> {
    WebhookService.check(input, 'create');
    const events = input.events as WebhookEventType[];
    const secret = newWebhookSecret();
    const webhook = await createWebhookSubscription(this.db, {
      url: input.url.trim(),
      description: input.description?.trim() || null,
      events,
      ...webhookThresholds(events, input),
      secret,
      enabled: input.enabled ?? true,
    });
    return { webhook, secret };
  }

  async update(id: string, input: WebhookInput & { enabled?: boolean | null }): Promise<WebhookSubscriptionRow> {
    WebhookService.check(input, 'update');
    const current = await findWebhookSubscription(this.db, id);
    if (!current) throw missing(id);
    const events = (input.events ?? current.events) as WebhookEventType[];
    const thresholds = webhookThresholds(events, {
      disconnectedMinutes: input.disconnectedMinutes ?? current.disconnectedMinutes,
      nonCompliantDays: input.nonCompliantDays ?? current.nonCompliantDays,
    });
    const updated = await updateWebhookSubscription(this.db, id, {
      ...(input.url != null ? { url: input.url.trim() } : {}),
      ...(input.description !== undefined ? { description: input.description?.trim() || null } : {}),
      ...(input.enabled != null ? { enabled: input.enabled } : {}),
      events,
      ...thresholds,
    });
    if (!updated) throw missing(id);
    return updated;
  }

  async rotateSecret(id: string): Promise<{ webhook: WebhookSubscriptionRow; secret: string }> {
    const secret = newWebhookSecret();
    const webhook = await updateWebhookSubscription(this.db, id, { secret });
    if (!webhook) throw missing(id);
    return { webhook, secret };
  }

  async delete(id: string): Promise<WebhookSubscriptionRow> {
    const deleted = await deleteWebhookSubscription(this.db, id);
    if (!deleted) throw missing(id);
    return deleted;
  }

  async find(id: string): Promise<WebhookSubscriptionRow> {
    const found = await findWebhookSubscription(this.db, id);
    if (!found) throw missing(id);
    return found;
  }

  page(window: { offset: number; limit: number }) {
    return webhookSubscriptionsPage(this.db, window);
  }

  async deliveries(filter: DeliveryFilter, window: { offset: number; limit: number }) {
    const { rows, totalCount } = await webhookDeliveriesPage(this.db, filter, window);
    return {
      rows: rows.map((r) => ({
        id: r.id,
        webhookId: r.subscriptionId,
        eventId: r.eventId,
        eventType: r.eventType,
        status: r.status,
        attempts: r.attempts,
        lastAttemptAt: r.lastAttemptAt,
        lastStatusCode: r.lastStatusCode,
        lastError: r.lastError,
        nextAttemptAt: r.nextAttemptAt,
        createdAt: r.createdAt,
        deliveredAt: r.deliveredAt,
        document: webhookDocument(r.event) as unknown as Record<string, unknown>,
      })),
      totalCount,
    };
  }
}
