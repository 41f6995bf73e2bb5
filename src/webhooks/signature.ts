import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * How a delivery is signed, the way Stripe signs its webhooks: HMAC-SHA256 with the subscription's
 * secret over `<timestamp>.<body>`, sent as `Fleetpatch-Signature: t=<unix seconds>,v1=<hex>`.
 * The timestamp inside the signed text lets a receiver refuse a replayed delivery (one older than
 * its tolerance, five minutes by default). docs/webhooks.md shows a receiver's check.
 */
export const SIGNATURE_HEADER = 'fleetpatch-signature';
export const EVENT_HEADER = 'fleetpatch-event';
export const DELIVERY_HEADER = 'fleetpatch-delivery';
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** A subscription's secret: 256 random bits, prefixed so that people and secret scanners know it (and redact.ts masks it). */
export function newWebhookSecret(): string {
  return `fpw_${randomBytes(32).toString('base64url')}`;
}

export function signatureOf(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

export function signatureHeader(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${signatureOf(secret, timestamp, body)}`;
}

/**
 * What a receiver does with a delivery: parse the header, recompute the HMAC over the raw body,
 * compare in constant time, and refuse a timestamp outside the tolerance. Null: genuine; else why not.
 */
export function verifySignature(secret: string, header: string | undefined, body: string, nowSeconds: number, toleranceSeconds = DEFAULT_TOLERANCE_SECONDS): string | null {
  if (!header) return 'no signature header';
  const parts = new Map<string, string[]>();
  for (const item of header.split(',')) {
    const at = item.indexOf('=');
    if (at <= 0) continue;
    const key = item.slice(0, at).trim();
    parts.set(key, [...(parts.get(key) ?? []), item.slice(at + 1).trim()]);
  }
  const timestamp = Number(parts.get('t')?.[0]);
  if (!Number.isInteger(timestamp)) return 'no timestamp in the signature header';
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return 'timestamp outside the tolerance';
  const expected = Buffer.from(signatureOf(secret, timestamp, body), 'hex');
  const matches = (parts.get('v1') ?? []).some((candidate) => {
    const given = Buffer.from(candidate, 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return matches ? null : 'signature does not match';
}
