import { GraphQLJSONObject } from 'graphql-scalars';
import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { DISCONNECTED_MINUTES, NON_COMPLIANT_DAYS } from '../../fleet/webhooks.js';
import { ConnectionType } from '../relay.js';

export enum WebhookEventType {
  RUN_STARTED = 'RUN_STARTED',
  RUN_ENDED = 'RUN_ENDED',
  RING_WAITING_FOR_APPROVAL = 'RING_WAITING_FOR_APPROVAL',
  RUN_HALTED = 'RUN_HALTED',
  MACHINE_RUN_FAILED = 'MACHINE_RUN_FAILED',
  MACHINE_DISCONNECTED = 'MACHINE_DISCONNECTED',
  MACHINE_NON_COMPLIANT = 'MACHINE_NON_COMPLIANT',
}
registerEnumType(WebhookEventType, {
  name: 'WebhookEventType',
  description: 'What a webhook announces (docs/webhooks.md shows each document).',
  valuesConfig: {
    RUN_STARTED: { description: 'A deployment run began.' },
    RUN_ENDED: { description: 'A deployment run ended; the document carries its status and error.' },
    RING_WAITING_FOR_APPROVAL: { description: "A ring's gate waits for an operator's approveRing." },
    RUN_HALTED: { description: 'A gate halted a run; the document carries the reason.' },
    MACHINE_RUN_FAILED: { description: 'A machine run ended FAILED or TIMED_OUT.' },
    MACHINE_DISCONNECTED: { description: "A machine has not checked in for longer than the subscription's disconnectedMinutes (once per disconnection)." },
    MACHINE_NON_COMPLIANT: { description: "A machine has been non-compliant for longer than the subscription's nonCompliantDays (once per streak)." },
  },
});

export enum WebhookDeliveryStatus {
  PENDING = 'PENDING',
  DELIVERED = 'DELIVERED',
  FAILED = 'FAILED',
}
registerEnumType(WebhookDeliveryStatus, {
  name: 'WebhookDeliveryStatus',
  description: 'Where a delivery stands.',
  valuesConfig: {
    PENDING: { description: 'Not delivered yet: due at nextAttemptAt.' },
    DELIVERED: { description: 'The receiver answered 2xx.' },
    FAILED: { description: 'Every attempt of the retry schedule failed; not tried again.' },
  },
});

@ObjectType({ description: 'A webhook subscription, without its secret (shown only at creation and rotation).' })
export class Webhook {
  @Field(() => ID, { description: "The subscription's id." })
  id!: string;

  @Field(() => String, { description: 'Where deliveries are POSTed.' })
  url!: string;

  @Field(() => String, { nullable: true, description: 'What it is for.' })
  description!: string | null;

  @Field(() => [WebhookEventType], { description: 'The events it receives.' })
  events!: WebhookEventType[];

  @Field(() => Int, { nullable: true, description: 'MACHINE_DISCONNECTED: minutes without a check-in (null: not subscribed).' })
  disconnectedMinutes!: number | null;

  @Field(() => Int, { nullable: true, description: 'MACHINE_NON_COMPLIANT: days non-compliant (null: not subscribed).' })
  nonCompliantDays!: number | null;

  @Field(() => Boolean, { description: 'false: nothing is sent; deliveries wait until it is enabled again.' })
  enabled!: boolean;

  @Field(() => Date, { description: 'When it was created.' })
  createdAt!: Date;

  @Field(() => Date, { description: 'When it was last changed.' })
  updatedAt!: Date;
}

@ObjectType({ description: 'A subscription just created (or its secret rotated), with its signing secret (shown this once).' })
export class WebhookWithSecret {
  @Field(() => Webhook, { description: 'The subscription as listings show it.' })
  webhook!: Webhook;

  @Field(() => String, { description: 'The HMAC-SHA256 key that signs every delivery (Fleetpatch-Signature). Shown this once; keep it in the receiver.' })
  secret!: string;
}

@ObjectType({ description: 'One event sent (or to be sent) to one subscription: the delivery log.' })
export class WebhookDelivery {
  @Field(() => ID, { description: "The delivery's id, sent as Fleetpatch-Delivery (the same on every attempt)." })
  id!: string;

  @Field(() => ID, { description: 'The subscription.' })
  webhookId!: string;

  @Field(() => ID, { description: "The event's id, the document's id (the same for every subscription)." })
  eventId!: string;

  @Field(() => WebhookEventType, { description: 'What it announces.' })
  eventType!: WebhookEventType;

  @Field(() => WebhookDeliveryStatus, { description: 'PENDING, DELIVERED or FAILED.' })
  status!: WebhookDeliveryStatus;

  @Field(() => Int, { description: 'Attempts made so far.' })
  attempts!: number;

  @Field(() => Date, { nullable: true, description: 'When the last attempt began.' })
  lastAttemptAt!: Date | null;

  @Field(() => Int, { nullable: true, description: "The receiver's HTTP status at the last attempt (null: no answer)." })
  lastStatusCode!: number | null;

  @Field(() => String, { nullable: true, description: "Why the last attempt failed: the receiver's status and the start of its answer, a timeout, a refused address." })
  lastError!: string | null;

  @Field(() => Date, { nullable: true, description: 'PENDING: when it is tried next.' })
  nextAttemptAt!: Date | null;

  @Field(() => Date, { description: 'When the event was fanned out to this subscription.' })
  createdAt!: Date;

  @Field(() => Date, { nullable: true, description: 'When the receiver answered 2xx.' })
  deliveredAt!: Date | null;

  @Field(() => GraphQLJSONObject, { description: 'The JSON document sent (without headers or signature).' })
  document!: Record<string, unknown>;
}

export const WebhookConnection = ConnectionType('Webhook', Webhook, 'webhook subscriptions');
export const WebhookDeliveryConnection = ConnectionType('WebhookDelivery', WebhookDelivery, 'webhook deliveries');

@InputType({ description: 'A new webhook subscription. Bad values answer BAD_USER_INPUT with the field.' })
export class CreateWebhookInput {
  @Field(() => String, { description: 'An absolute http:// or https:// URL, without user name, password or fragment.' })
  url!: string;

  // A list of strings, not of the enum: an unknown name is answered with its field, not a GraphQL validation error.
  @Field(() => [String], { description: 'At least one WebhookEventType.' })
  events!: string[];

  @Field(() => String, { nullable: true, description: 'What it is for (at most 200 characters).' })
  description?: string | null;

  @Field(() => Int, { nullable: true, description: `MACHINE_DISCONNECTED after this many minutes (${DISCONNECTED_MINUTES.min} to ${DISCONNECTED_MINUTES.max}; default ${DISCONNECTED_MINUTES.default}).` })
  disconnectedMinutes?: number | null;

  @Field(() => Int, { nullable: true, description: `MACHINE_NON_COMPLIANT after this many days (${NON_COMPLIANT_DAYS.min} to ${NON_COMPLIANT_DAYS.max}; default ${NON_COMPLIANT_DAYS.default}).` })
  nonCompliantDays?: number | null;

  @Field(() => Boolean, { nullable: true, description: 'Default true.' })
  enabled?: boolean | null;
}

@InputType({ description: 'Changes to a webhook subscription: fields left out stay as they are.' })
export class UpdateWebhookInput {
  @Field(() => String, { nullable: true, description: 'A new URL.' })
  url?: string | null;

  @Field(() => [String], { nullable: true, description: 'The new list of events (replaces the old one).' })
  events?: string[] | null;

  @Field(() => String, { nullable: true, description: 'A new description.' })
  description?: string | null;

  @Field(() => Int, { nullable: true, description: 'A new MACHINE_DISCONNECTED threshold in minutes.' })
  disconnectedMinutes?: number | null;

  @Field(() => Int, { nullable: true, description: 'A new MACHINE_NON_COMPLIANT threshold in days.' })
  nonCompliantDays?: number | null;

  @Field(() => Boolean, { nullable: true, description: 'false pauses deliveries; true resumes them.' })
  enabled?: boolean | null;
}
