/**
 * Webhook notifications: which events exist, what a subscription may ask for, which subscriptions
 * an event goes to, when a failed delivery is tried again, and the JSON document a receiver gets.
 * Plain functions on plain data; the outbox (src/db/webhooks.ts) and the delivery loop
 * (src/webhooks/deliverer.ts) only do the I/O.
 */

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

export const WEBHOOK_EVENT_TYPES = [
  'RUN_STARTED',
  'RUN_ENDED',
  'RING_WAITING_FOR_APPROVAL',
  'RUN_HALTED',
  'MACHINE_RUN_FAILED',
  'MACHINE_DISCONNECTED',
  'MACHINE_NON_COMPLIANT',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Events whose subscription carries a threshold of its own: the scan makes one event per subscription. */
export const THRESHOLD_EVENTS: ReadonlySet<WebhookEventType> = new Set(['MACHINE_DISCONNECTED', 'MACHINE_NON_COMPLIANT']);

/** A machine run that ended in one of these is a MACHINE_RUN_FAILED event. */
export const FAILED_MACHINE_RUN_STATUSES: ReadonlySet<string> = new Set(['FAILED', 'TIMED_OUT']);

export function isMachineRunFailure(status: string): boolean {
  return FAILED_MACHINE_RUN_STATUSES.has(status);
}

/** What an event says, by type (ids, names and statuses: a receiver asks the API for more). */
export type WebhookEventData =
  | { type: 'RUN_STARTED'; run: RunRef }
  | { type: 'RUN_ENDED'; run: RunRef & { status: string; error: string | null } }
  | { type: 'RING_WAITING_FOR_APPROVAL'; run: RunRef; ring: { number: number; name: string } }
  | { type: 'RUN_HALTED'; run: RunRef; ring: { number: number; name: string } | null; reason: string }
  | { type: 'MACHINE_RUN_FAILED'; run: RunRef; machineRun: { id: string; machineId: string; machineName: string; status: string; error: string | null } }
  | { type: 'MACHINE_DISCONNECTED'; machine: MachineRef & { lastSeenAt: string | null }; thresholdMinutes: number }
  | { type: 'MACHINE_NON_COMPLIANT'; machine: MachineRef & { nonCompliantSince: string }; thresholdDays: number };

export interface RunRef {
  id: string;
  deploymentId: string;
  deploymentName: string;
}

export interface MachineRef {
  id: string;
  name: string;
}

/**
 * The key that makes an event once: an activity retried after its transaction committed, or a scan
 * that sees the same disconnection again, records nothing new. Threshold events are per
 * subscription and per episode (the last check-in, the start of the non-compliant streak).
 */
export function eventKey(event: WebhookEventData, subscriptionId?: string): string {
  switch (event.type) {
    case 'RUN_STARTED':
    case 'RUN_ENDED':
      return `${event.type}:${event.run.id}`;
    case 'RING_WAITING_FOR_APPROVAL':
      return `${event.type}:${event.run.id}:${event.ring.number}`;
    case 'RUN_HALTED':
      return `${event.type}:${event.run.id}:${event.ring?.number ?? 0}`;
    case 'MACHINE_RUN_FAILED':
      return `${event.type}:${event.machineRun.id}`;
    case 'MACHINE_DISCONNECTED':
      return `${event.type}:${subscriptionId}:${event.machine.id}:${event.machine.lastSeenAt ?? 'never'}`;
    case 'MACHINE_NON_COMPLIANT':
      return `${event.type}:${subscriptionId}:${event.machine.id}:${event.machine.nonCompliantSince}`;
  }
}

/** The JSON document a receiver gets: the same bytes on every attempt (the signature covers them). */
export interface WebhookDocument {
  /** The event's id: the same for every subscription and attempt (deduplicate on it). */
  id: string;
  type: WebhookEventType;
  occurredAt: string;
  data: Omit<WebhookEventData, 'type'>;
}

export function webhookDocument(event: { id: string; occurredAt: Date; data: WebhookEventData }): WebhookDocument {
  const { type, ...data } = event.data;
  return { id: event.id, type, occurredAt: event.occurredAt.toISOString(), data };
}

// ---------------------------------------------------------------------------------------------
// Which subscriptions get an event
// ---------------------------------------------------------------------------------------------

export interface SubscriptionView {
  id: string;
  events: readonly WebhookEventType[];
  enabled: boolean;
}

/**
 * The subscriptions an event goes to: enabled ones that asked for its type. A threshold event was
 * made for one subscription (its own threshold) and goes to that one only.
 */
export function subscriptionsFor(event: { type: WebhookEventType; subscriptionId: string | null }, subscriptions: readonly SubscriptionView[]): string[] {
  return subscriptions
    .filter((s) => s.enabled && s.events.includes(event.type) && (event.subscriptionId === null || event.subscriptionId === s.id))
    .map((s) => s.id);
}

/**
 * A machine is MACHINE_DISCONNECTED for a subscription when its last check-in is older than the
 * subscription's minutes (never seen: not this event, it is NOT_CONFIGURED); the scan asks for
 * machines last seen before this instant.
 */
export function disconnectedCutoff(now: Date, thresholdMinutes: number): Date {
  return new Date(now.getTime() - thresholdMinutes * 60_000);
}

/** A machine is MACHINE_NON_COMPLIANT for a subscription when its non-compliant streak began before this instant. */
export function nonCompliantCutoff(now: Date, thresholdDays: number): Date {
  return new Date(now.getTime() - thresholdDays * 86_400_000);
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

/**
 * Seconds to wait after the n-th failed attempt (1-based). Fast at first (a receiver restarting),
 * then hours apart: 15 attempts over about 30 hours, so a receiver that is down for a whole day
 * still gets every event. After the last one the delivery is FAILED for good (it stays in the log).
 */
export const DEFAULT_RETRY_DELAYS_SECONDS: readonly number[] = [10, 30, 60, 120, 300, 600, 1200, 2400, 3600, 7200, 14_400, 21_600, 28_800, 28_800];

/**
 * When to try again after `attempts` failed attempts, or null when the schedule is used up.
 * `random` (0 to 1) spreads retries by up to ±10 %, so that deliveries that failed together (a
 * receiver's outage) do not all come back in the same second.
 */
export function nextAttemptAt(attempts: number, failedAt: Date, delays: readonly number[] = DEFAULT_RETRY_DELAYS_SECONDS, random = 0.5): Date | null {
  const delay = delays[attempts - 1];
  if (delay === undefined) return null;
  const jitter = 1 + (Math.min(Math.max(random, 0), 1) - 0.5) * 0.2;
  return new Date(failedAt.getTime() + Math.round(delay * jitter * 1000));
}

/** How long the schedule keeps trying, in seconds (without jitter). */
export function retryHorizonSeconds(delays: readonly number[] = DEFAULT_RETRY_DELAYS_SECONDS): number {
  return delays.reduce((sum, d) => sum + d, 0);
}

/** A status code the receiver answered: 2xx is delivered; anything else (redirects too: they are not followed) is tried again. */
export function isDelivered(statusCode: number): boolean {
  return statusCode >= 200 && statusCode < 300;
}

// ---------------------------------------------------------------------------------------------
// Input rules
// ---------------------------------------------------------------------------------------------

export const MAX_URL_LENGTH = 2048;
export const DISCONNECTED_MINUTES = { min: 5, max: 43_200, default: 30 } as const; // 5 minutes to 30 days
export const NON_COMPLIANT_DAYS = { min: 1, max: 365, default: 7 } as const;
export const MAX_DESCRIPTION_LENGTH = 200;

export interface WebhookInput {
  url?: string | null;
  events?: readonly string[] | null;
  description?: string | null;
  disconnectedMinutes?: number | null;
  nonCompliantDays?: number | null;
}

export interface InputProblem {
  field: string;
  message: string;
}

/**
 * The URL's problem, or null. Only http and https; no user name or password in it (the URL is shown
 * in GraphQL, a secret must not be); no fragment (it never reaches the receiver).
 */
export function webhookUrlProblem(raw: string): string | null {
  if (raw.length > MAX_URL_LENGTH) return `url must be at most ${MAX_URL_LENGTH} characters.`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `url is not a URL: ${JSON.stringify(raw.slice(0, 100))}. Give an absolute http:// or https:// URL.`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `url must be http:// or https://, not ${url.protocol}//.`;
  if (url.username || url.password) return 'url must not carry a user name or password: they would be shown to every admin; use the signature to authenticate fleetpatch.';
  if (url.hash) return 'url must not have a fragment (#...): it is never sent.';
  if (!url.hostname) return 'url has no host.';
  return null;
}

/**
 * Every problem of a subscription's input (for an update, fields left out are kept and not
 * checked). Events: at least one, each known, none twice.
 */
export function webhookInputProblems(input: WebhookInput, mode: 'create' | 'update'): InputProblem[] {
  const problems: InputProblem[] = [];
  if (input.url !== undefined && input.url !== null) {
    const problem = webhookUrlProblem(input.url.trim());
    if (problem) problems.push({ field: 'url', message: problem });
  } else if (mode === 'create' || input.url === null) {
    problems.push({ field: 'url', message: 'url is required: the http:// or https:// address to post events to.' });
  }
  if (input.events !== undefined && input.events !== null) {
    const unknown = input.events.filter((e) => !(WEBHOOK_EVENT_TYPES as readonly string[]).includes(e));
    if (input.events.length === 0) problems.push({ field: 'events', message: `events must name at least one event: ${WEBHOOK_EVENT_TYPES.join(', ')}.` });
    else if (unknown.length > 0) problems.push({ field: 'events', message: `Unknown event(s): ${unknown.join(', ')}. Known: ${WEBHOOK_EVENT_TYPES.join(', ')}.` });
    else if (new Set(input.events).size !== input.events.length) problems.push({ field: 'events', message: 'events names an event twice.' });
  } else if (mode === 'create' || input.events === null) {
    problems.push({ field: 'events', message: `events is required: at least one of ${WEBHOOK_EVENT_TYPES.join(', ')}.` });
  }
  if (input.description !== undefined && input.description !== null && input.description.length > MAX_DESCRIPTION_LENGTH) {
    problems.push({ field: 'description', message: `description must be at most ${MAX_DESCRIPTION_LENGTH} characters.` });
  }
  const range = (field: string, value: number | null | undefined, limits: { min: number; max: number }, unit: string) => {
    if (value === undefined || value === null) return;
    if (!Number.isInteger(value) || value < limits.min || value > limits.max) {
      problems.push({ field, message: `${field} must be a whole number of ${unit} from ${limits.min} to ${limits.max}; got ${value}.` });
    }
  };
  range('disconnectedMinutes', input.disconnectedMinutes, DISCONNECTED_MINUTES, 'minutes');
  range('nonCompliantDays', input.nonCompliantDays, NON_COMPLIANT_DAYS, 'days');
  return problems;
}

/** The thresholds a subscription keeps: the given one, else the default when its event is asked for, else none. */
export function webhookThresholds(events: readonly string[], given: { disconnectedMinutes?: number | null; nonCompliantDays?: number | null }): { disconnectedMinutes: number | null; nonCompliantDays: number | null } {
  return {
    disconnectedMinutes: events.includes('MACHINE_DISCONNECTED') ? (given.disconnectedMinutes ?? DISCONNECTED_MINUTES.default) : null,
    nonCompliantDays: events.includes('MACHINE_NON_COMPLIANT') ? (given.nonCompliantDays ?? NON_COMPLIANT_DAYS.default) : null,
  };
}
