import type { Sql } from 'postgres';
import type { Db } from '../db/client.js';
import {
  WEBHOOK_CHANNEL,
  claimDueDeliveries,
  dispatchWebhookEvents,
  machinesNonCompliantSince,
  machinesSilentSince,
  nextDeliveryDue,
  pruneWebhookEvents,
  recordDeliveryAttempt,
  recordWebhookEvent,
  thresholdSubscriptions,
  type ClaimedDelivery,
} from '../db/webhooks.js';
import type { WebhookSettings } from '../config.js';
import { disconnectedCutoff, isDelivered, nextAttemptAt, nonCompliantCutoff, webhookDocument } from '../fleet/webhooks.js';
import type { Logger } from '../logger.js';
import { version } from '../version.js';
import { addressPolicy, type AddressPolicy } from './addressPolicy.js';
import { sendWebhook } from './send.js';
import { DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signatureHeader } from './signature.js';

/** The answer's first bytes, enough for the delivery log's error. */
const MAX_RESPONSE_BYTES = 4096;
/** Shown in the log of an attempt that failed with an answer. */
const MAX_ERROR_CHARS = 500;
/** The delivery log keeps a month: long enough to look back at an incident, short enough to stay small. */
const KEEP_DAYS = 30;
/**
 * A claimed delivery is someone's for its timeout and this much more (recording the outcome); past
 * it, a delivery whose loop died mid-attempt is sent again.
 */
const LEASE_MARGIN_SECONDS = 30;

/**
 * The durable delivery loop: a process (the worker) fans the outbox's events out to deliveries,
 * sends those that are due, at most `concurrency` at once, and records each attempt. Everything it
 * knows is in PostgreSQL, so a loop that is killed loses nothing: what it had claimed is taken
 * again when its lease runs out, and any number of loops share the work. Why a loop and not a
 * Temporal workflow per delivery: docs/webhooks.md.
 */
export class WebhookDeliverer {
  private readonly policy: AddressPolicy;
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;
  private wake: (() => void) | null = null;
  private running: Promise<void> | null = null;
  private unlisten: (() => Promise<void>) | null = null;
  private lastScan = 0;

  constructor(private readonly deps: { db: Db; sql: Sql; logger: Logger; settings: WebhookSettings; now?: () => Date }) {
    this.policy = addressPolicy(deps.settings.allowedNetworks);
  }

  async start(): Promise<void> {
    const listening = await this.deps.sql.listen(WEBHOOK_CHANNEL, () => this.wake?.()).catch((error: unknown) => {
      // Without LISTEN the poll still finds every event, only later.
      this.deps.logger.warn({ err: error }, 'webhooks: LISTEN failed; polling only');
      return null;
    });
    if (listening) this.unlisten = () => listening.unlisten();
    this.running = this.loop();
  }

  /** Stops taking deliveries and waits for those in flight (each ends within its timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    await Promise.allSettled([...this.inFlight]);
    await this.unlisten?.().catch(() => undefined);
  }

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  private async loop(): Promise<void> {
    const { settings, logger } = this.deps;
    while (!this.stopped) {
      let delay = settings.pollMs;
      try {
        if (Date.now() - this.lastScan >= settings.thresholdScanMs) {
          this.lastScan = Date.now();
          await this.scanThresholds();
          await pruneWebhookEvents(this.deps.db, KEEP_DAYS, 1000);
        }
        while ((await dispatchWebhookEvents(this.deps.db, 500)) > 0 && !this.stopped);
        const room = settings.concurrency - this.inFlight.size;
        const claimed = await claimDueDeliveries(this.deps.db, room, Math.ceil(settings.timeoutMs / 1000) + LEASE_MARGIN_SECONDS);
        for (const delivery of claimed) this.track(this.deliver(delivery));
        if (claimed.length === room && room > 0) delay = 0; // more may be due
        else {
          const due = await nextDeliveryDue(this.deps.db);
          if (due) delay = Math.min(delay, Math.max(0, due.getTime() - Date.now()));
        }
      } catch (error) {
        logger.warn({ err: error }, 'webhooks: the delivery loop failed a round; trying again');
      }
      if (this.stopped) break;
      // A slot freeing up, a NOTIFY, or the poll ends the wait.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, this.inFlight.size >= settings.concurrency ? settings.pollMs : delay);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      });
      this.wake = null;
    }
  }

  private track(promise: Promise<void>): void {
    this.inFlight.add(promise);
    void promise.finally(() => {
      this.inFlight.delete(promise);
      this.wake?.();
    });
  }

  private async deliver(delivery: ClaimedDelivery): Promise<void> {
    const { settings, logger } = this.deps;
    const body = JSON.stringify(webhookDocument(delivery.event));
    const timestamp = Math.floor(this.now().getTime() / 1000);
    const result = await sendWebhook({
      url: delivery.url,
      body,
      headers: {
        'content-type': 'application/json',
        'user-agent': `fleetpatch-webhooks/${version}`,
        [EVENT_HEADER]: delivery.event.type,
        [DELIVERY_HEADER]: delivery.id,
        [SIGNATURE_HEADER]: signatureHeader(delivery.secret, timestamp, body),
      },
      timeoutMs: settings.timeoutMs,
      maxResponseBytes: MAX_RESPONSE_BYTES,
      policy: this.policy,
    });
    try {
      if (result.statusCode !== null && isDelivered(result.statusCode)) {
        await recordDeliveryAttempt(this.deps.db, delivery.id, { delivered: true, statusCode: result.statusCode });
        return;
      }
      const error = result.statusCode === null ? result.error : `HTTP ${result.statusCode}${result.body ? `: ${result.body.slice(0, MAX_ERROR_CHARS)}` : ''}`;
      const retryAt = nextAttemptAt(delivery.attempts, this.now(), settings.retryDelaysSeconds, Math.random());
      await recordDeliveryAttempt(this.deps.db, delivery.id, { delivered: false, statusCode: result.statusCode, error, retryAt });
      // The receiver's origin only (some receivers carry a token in the URL's path), never the secret or the headers.
      logger.info({ deliveryId: delivery.id, eventType: delivery.event.type, receiver: originOf(delivery.url), attempts: delivery.attempts, error, retryAt }, retryAt ? 'webhook delivery failed; will retry' : 'webhook delivery failed for good');
    } catch (error) {
      // The attempt is not recorded: its lease runs out and it is tried again.
      logger.warn({ err: error, deliveryId: delivery.id }, 'webhooks: could not record an attempt');
    }
  }

  /** Records MACHINE_DISCONNECTED and MACHINE_NON_COMPLIANT events for each subscription's thresholds, once per episode. */
  private async scanThresholds(): Promise<void> {
    const { db } = this.deps;
    const now = this.now();
    for (const subscription of await thresholdSubscriptions(db)) {
      if (subscription.disconnectedMinutes !== null) {
        const minutes = subscription.disconnectedMinutes;
        for (const m of await machinesSilentSince(db, disconnectedCutoff(now, minutes), 1000)) {
          await recordWebhookEvent(db, { type: 'MACHINE_DISCONNECTED', machine: { id: m.id, name: m.name, lastSeenAt: m.lastSeenAt.toISOString() }, thresholdMinutes: minutes }, subscription.id);
        }
      }
      if (subscription.nonCompliantDays !== null) {
        const days = subscription.nonCompliantDays;
        for (const m of await machinesNonCompliantSince(db, nonCompliantCutoff(now, days), 1000)) {
          await recordWebhookEvent(db, { type: 'MACHINE_NON_COMPLIANT', machine: { id: m.id, name: m.name, nonCompliantSince: m.since.toISOString() }, thresholdDays: days }, subscription.id);
        }
      }
    }
  }
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(not a URL)';
  }
}
