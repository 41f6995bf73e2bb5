import { and, desc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { eventKey, subscriptionsFor, type RunRef, type SubscriptionView, type WebhookEventData, type WebhookEventType } from '../fleet/webhooks.js';
import type { Db } from './client.js';
import { deploymentRuns, deployments, webhookDeliveries, webhookEvents, webhookSubscriptions } from './schema.js';

/** NOTIFY channel that wakes the delivery loops when an event is recorded (sent at commit). */
export const WEBHOOK_CHANNEL = 'fleetpatch_webhooks';

/** A subscription as the API shows it: everything but its secret. */
export type WebhookSubscriptionRow = Omit<typeof webhookSubscriptions.$inferSelect, 'secret'>;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;

const listed = {
  id: webhookSubscriptions.id,
  url: webhookSubscriptions.url,
  description: webhookSubscriptions.description,
  events: webhookSubscriptions.events,
  disconnectedMinutes: webhookSubscriptions.disconnectedMinutes,
  nonCompliantDays: webhookSubscriptions.nonCompliantDays,
  enabled: webhookSubscriptions.enabled,
  createdAt: webhookSubscriptions.createdAt,
  updatedAt: webhookSubscriptions.updatedAt,
};

// ---------------------------------------------------------------------------------------------
// The outbox: called inside the transaction of the change that causes the event
// ---------------------------------------------------------------------------------------------

/**
 * Records an event in the outbox, once per cause (a second call with the same cause records
 * nothing), and wakes the delivery loops when the transaction commits. Call it inside the
 * transaction of the change: the event then exists exactly when the change does.
 */
export async function recordWebhookEvent(db: Db, data: WebhookEventData, subscriptionId: string | null = null): Promise<void> {
  const inserted = await db
    .insert(webhookEvents)
    .values({ type: data.type, eventKey: eventKey(data, subscriptionId ?? undefined), data, subscriptionId })
    .onConflictDoNothing({ target: webhookEvents.eventKey })
    .returning({ id: webhookEvents.id });
  if (inserted.length > 0) await db.execute(sql`select pg_notify(${WEBHOOK_CHANNEL}, '')`);
}

/** The run as events name it: its id, its deployment's id and name. */
export async function webhookRunRef(db: Db, runId: string): Promise<RunRef | undefined> {
  const [row] = await db
    .select({ id: deploymentRuns.id, deploymentId: deploymentRuns.deploymentId, deploymentName: deployments.name })
    .from(deploymentRuns)
    .innerJoin(deployments, eq(deployments.id, deploymentRuns.deploymentId))
    .where(eq(deploymentRuns.id, runId));
  return row;
}

/** Records the event `make(run)` builds for a run, in the caller's transaction; nothing when the run is gone. */
export async function recordRunWebhookEvent(db: Db, runId: string, make: (run: RunRef) => WebhookEventData): Promise<void> {
  const run = await webhookRunRef(db, runId);
  if (run) await recordWebhookEvent(db, make(run));
}

// ---------------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------------

export async function createWebhookSubscription(
  db: Db,
  input: { url: string; description: string | null; events: WebhookEventType[]; disconnectedMinutes: number | null; nonCompliantDays: number | null; secret: string; enabled: boolean },
): Promise<WebhookSubscriptionRow> {
  const [row] = await db.insert(webhookSubscriptions).values(input).returning(listed);
  return row!;
}

export async function findWebhookSubscription(db: Db, id: string): Promise<WebhookSubscriptionRow | undefined> {
  const [row] = await db.select(listed).from(webhookSubscriptions).where(eq(webhookSubscriptions.id, id));
  return row;
}

export async function updateWebhookSubscription(
  db: Db,
  id: string,
  patch: Partial<{ url: string; description: string | null; events: WebhookEventType[]; disconnectedMinutes: number | null; nonCompliantDays: number | null; secret: string; enabled: boolean }>,
): Promise<WebhookSubscriptionRow | undefined> {
  const [row] = await db
    .update(webhookSubscriptions)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(eq(webhookSubscriptions.id, id))
    .returning(listed);
  return row;
}

/** Deletes a subscription with its delivery log. */
export async function deleteWebhookSubscription(db: Db, id: string): Promise<WebhookSubscriptionRow | undefined> {
  const [row] = await db.delete(webhookSubscriptions).where(eq(webhookSubscriptions.id, id)).returning(listed);
  return row;
}

/** A page of subscriptions, newest first. */
export async function webhookSubscriptionsPage(db: Db, page: { offset: number; limit: number }): Promise<{ rows: WebhookSubscriptionRow[]; totalCount: () => Promise<number> }> {
  return {
    rows: await db.select(listed).from(webhookSubscriptions).orderBy(desc(webhookSubscriptions.createdAt), webhookSubscriptions.id).offset(page.offset).limit(page.limit),
    totalCount: async () => (await db.select({ n: sql<number>`count(*)::int` }).from(webhookSubscriptions))[0]?.n ?? 0,
  };
}

// ---------------------------------------------------------------------------------------------
// The delivery log
// ---------------------------------------------------------------------------------------------

export interface DeliveryFilter {
  subscriptionId?: string | null;
  status?: 'PENDING' | 'DELIVERED' | 'FAILED' | null;
}

/** A page of deliveries, newest first, with the event each one carries. */
export async function webhookDeliveriesPage(db: Db, filter: DeliveryFilter, page: { offset: number; limit: number }) {
  const conditions: SQL[] = [];
  if (filter.subscriptionId) conditions.push(eq(webhookDeliveries.subscriptionId, filter.subscriptionId));
  if (filter.status) conditions.push(eq(webhookDeliveries.status, filter.status));
  const where = conditions.length > 0 ? and(...conditions) : undefined;
  const rows = await db
    .select({ delivery: webhookDeliveries, event: { id: webhookEvents.id, type: webhookEvents.type, data: webhookEvents.data, occurredAt: webhookEvents.occurredAt } })
    .from(webhookDeliveries)
    .innerJoin(webhookEvents, eq(webhookEvents.id, webhookDeliveries.eventId))
    .where(where)
    .orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
    .offset(page.offset)
    .limit(page.limit);
  return {
    rows: rows.map((r) => ({ ...r.delivery, event: { ...r.event, data: r.event.data as WebhookEventData } })),
    totalCount: async () => (await db.select({ n: sql<number>`count(*)::int` }).from(webhookDeliveries).where(where))[0]?.n ?? 0,
  };
}

// ---------------------------------------------------------------------------------------------
// What the delivery loop reads and writes
// ---------------------------------------------------------------------------------------------

/**
 * Fans recorded events out to the subscriptions that want them (subscriptionsFor), as PENDING
 * deliveries due now, and marks the events dispatched, in one transaction: a loop that dies
 * halfway leaves the events for the next one, and a delivery is made once per event and
 * subscription. Several loops share the work (SKIP LOCKED). Answers how many events it took.
 */
export async function dispatchWebhookEvents(db: Db, limit: number): Promise<number> {
  return db.transaction(async (tx) => {
    const events = await tx
      .select({ id: webhookEvents.id, type: webhookEvents.type, subscriptionId: webhookEvents.subscriptionId })
      .from(webhookEvents)
      .where(sql`${webhookEvents.dispatchedAt} is null`)
      .orderBy(webhookEvents.occurredAt)
      .limit(limit)
      .for('update', { skipLocked: true });
    if (events.length === 0) return 0;
    const subscriptions: SubscriptionView[] = (await tx.select({ id: webhookSubscriptions.id, events: webhookSubscriptions.events, enabled: webhookSubscriptions.enabled }).from(webhookSubscriptions)).map((s) => ({
      ...s,
      events: s.events as WebhookEventType[],
    }));
    const rows = events.flatMap((e) => subscriptionsFor({ type: e.type as WebhookEventType, subscriptionId: e.subscriptionId }, subscriptions).map((subscriptionId) => ({ subscriptionId, eventId: e.id, eventType: e.type, nextAttemptAt: sql`now()` })));
    for (let i = 0; i < rows.length; i += 2000) await tx.insert(webhookDeliveries).values(rows.slice(i, i + 2000) as never).onConflictDoNothing();
    await tx.update(webhookEvents).set({ dispatchedAt: sql`now()` }).where(inArray(webhookEvents.id, events.map((e) => e.id)));
    return events.length;
  });
}

export interface ClaimedDelivery {
  id: string;
  attempts: number;
  url: string;
  secret: string;
  event: { id: string; type: WebhookEventType; data: WebhookEventData; occurredAt: Date };
}

/**
 * Takes up to `limit` deliveries that are due, for `leaseSeconds`: the attempt is counted now, so
 * one that a dying loop never finished is still counted, and tried again once the lease runs out.
 * Only enabled subscriptions' deliveries are taken.
 */
export async function claimDueDeliveries(db: Db, limit: number, leaseSeconds: number): Promise<ClaimedDelivery[]> {
  if (limit <= 0) return [];
  const rows = await db.execute<{ id: string; attempts: number; url: string; secret: string; event_id: string; type: string; data: WebhookEventData; occurred_at: string | Date }>(sql`
    with due as (
      select d.id from ${webhookDeliveries} d
      join ${webhookSubscriptions} s on s.id = d.subscription_id and s.enabled
      where d.status = 'PENDING' and d.next_attempt_at <= now() and (d.lease_until is null or d.lease_until < now())
      order by d.next_attempt_at
      limit ${limit}
      for update of d skip locked
    ), claimed as (
      update ${webhookDeliveries} d set attempts = d.attempts + 1, lease_until = now() + make_interval(secs => ${leaseSeconds}), last_attempt_at = now()
      from due where d.id = due.id
      returning d.id, d.attempts, d.subscription_id, d.event_id
    )
    select c.id, c.attempts, s.url, s.secret, e.id as event_id, e.type, e.data, e.occurred_at
    from claimed c join ${webhookSubscriptions} s on s.id = c.subscription_id join ${webhookEvents} e on e.id = c.event_id`);
  return [...rows].map((r) => ({
    id: r.id,
    attempts: Number(r.attempts),
    url: r.url,
    secret: r.secret,
    event: { id: r.event_id, type: r.type as WebhookEventType, data: r.data, occurredAt: new Date(r.occurred_at) },
  }));
}

/** How an attempt ended: delivered, to be tried again at `retryAt`, or failed for good (`retryAt` null). */
export async function recordDeliveryAttempt(
  db: Db,
  id: string,
  outcome: { delivered: true; statusCode: number } | { delivered: false; statusCode: number | null; error: string; retryAt: Date | null },
): Promise<void> {
  if (outcome.delivered) {
    await db
      .update(webhookDeliveries)
      .set({
        status: 'DELIVERED',
        lastStatusCode: outcome.statusCode,
        lastError: null,
        leaseUntil: null,
        nextAttemptAt: null,
        deliveredAt: sql`now()`,
        latencyMs: sql`(extract(epoch from now() - (select occurred_at from ${webhookEvents} where id = ${webhookDeliveries.eventId})) * 1000)::int`,
      })
      .where(eq(webhookDeliveries.id, id));
    return;
  }
  await db
    .update(webhookDeliveries)
    .set({ status: outcome.retryAt ? 'PENDING' : 'FAILED', lastStatusCode: outcome.statusCode, lastError: outcome.error, leaseUntil: null, nextAttemptAt: outcome.retryAt })
    .where(eq(webhookDeliveries.id, id));
}

/** When the next PENDING delivery is due (null: none), so a loop sleeps until then. */
export async function nextDeliveryDue(db: Db): Promise<Date | null> {
  const [row] = await db.select({ at: sql<string | null>`min(${webhookDeliveries.nextAttemptAt})` }).from(webhookDeliveries).where(eq(webhookDeliveries.status, 'PENDING'));
  return row?.at ? new Date(row.at) : null;
}

// ---------------------------------------------------------------------------------------------
// Threshold events (machines disconnected or non-compliant for too long)
// ---------------------------------------------------------------------------------------------

/** Enabled subscriptions with a threshold event, and their thresholds. */
export async function thresholdSubscriptions(db: Db): Promise<Array<{ id: string; disconnectedMinutes: number | null; nonCompliantDays: number | null }>> {
  return db
    .select({ id: webhookSubscriptions.id, disconnectedMinutes: webhookSubscriptions.disconnectedMinutes, nonCompliantDays: webhookSubscriptions.nonCompliantDays })
    .from(webhookSubscriptions)
    .where(and(eq(webhookSubscriptions.enabled, true), sql`(${webhookSubscriptions.disconnectedMinutes} is not null or ${webhookSubscriptions.nonCompliantDays} is not null)`));
}

/** Managed machines last seen before `cutoff` (at most `limit`). */
export async function machinesSilentSince(db: Db, cutoff: Date, limit: number): Promise<Array<{ id: string; name: string; lastSeenAt: Date }>> {
  const rows = await db.execute<{ id: string; name: string; last_seen_at: string | Date }>(sql`
    select id, name, last_seen_at from machines
    where removed_at is null and management_enabled and last_seen_at is not null and last_seen_at < ${cutoff.toISOString()}::timestamptz
    order by last_seen_at limit ${limit}`);
  return [...rows].map((r) => ({ id: r.id, name: r.name, lastSeenAt: new Date(r.last_seen_at) }));
}

/**
 * Managed machines whose latest assessment has critical or security updates, with when that
 * streak began: the first assessment after the last one without any (the first assessment ever
 * when there is none). Only those whose streak began before `cutoff`.
 */
export async function machinesNonCompliantSince(db: Db, cutoff: Date, limit: number): Promise<Array<{ id: string; name: string; since: Date }>> {
  const rows = await db.execute<{ id: string; name: string; since: string | Date }>(sql`
    select m.id, m.name, streak.since from machines m
    cross join lateral (
      select min(a.assessed_at) as since from assessments a
      where a.machine_id = m.id and a.assessed_at > coalesce(
        (select max(c.assessed_at) from assessments c where c.machine_id = m.id and c.critical_count + c.security_count = 0), '-infinity'::timestamptz)
    ) streak
    where m.removed_at is null and m.management_enabled and m.critical_count + m.security_count > 0
      and streak.since is not null and streak.since < ${cutoff.toISOString()}::timestamptz
    order by streak.since limit ${limit}`);
  return [...rows].map((r) => ({ id: r.id, name: r.name, since: new Date(r.since) }));
}

/**
 * Forgets events older than `days` (their deliveries with them), unless a delivery of theirs is
 * still PENDING; at most `limit` per call, so a large backlog is trimmed a slice at a time.
 */
export async function pruneWebhookEvents(db: Db, days: number, limit: number): Promise<number> {
  const rows = await db.execute(sql`
    delete from ${webhookEvents} where id in (
      select e.id from ${webhookEvents} e
      where e.occurred_at < now() - make_interval(days => ${days}) and e.dispatched_at is not null
        and not exists (select 1 from ${webhookDeliveries} d where d.event_id = e.id and d.status = 'PENDING')
      limit ${limit})
    returning id`);
  return [...rows].length;
}
