import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedDelivery {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** What the receiver answered. */
  status: number;
  /** The signature checked as a receiver would (null: genuine), with the secret the test gave for the path. */
  signatureProblem: string | null;
}

/**
 * A real HTTP server that receives webhooks: each path answers with the statuses the test queued
 * for it (then 200), and checks every delivery's signature on its own, the way docs/webhooks.md
 * tells a receiver to (not with fleetpatch's code): HMAC-SHA256 of "<t>.<raw body>" with the
 * secret, compared in constant time, the timestamp within five minutes.
 */
export async function startWebhookReceiver(): Promise<{
  url: (path: string) => string;
  received: ReceivedDelivery[];
  /** Statuses the path answers first, in order (then 200). */
  answer(path: string, statuses: number[]): void;
  /** The secret deliveries to this path are checked with. */
  secret(path: string, secret: string): void;
  close(): Promise<void>;
}> {
  const queued = new Map<string, number[]>();
  const secrets = new Map<string, string>();
  const received: ReceivedDelivery[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = request.url ?? '/';
      const status = queued.get(path)?.shift() ?? 200;
      received.push({ path, headers: request.headers, body, status, signatureProblem: check(secrets.get(path), request.headers['fleetpatch-signature'] as string | undefined, body) });
      response.writeHead(status, { 'content-type': 'text/plain' });
      response.end(status >= 300 ? `receiver says ${status}` : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    received,
    answer: (path, statuses) => queued.set(path, [...statuses]),
    secret: (path, secret) => secrets.set(path, secret),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function check(secret: string | undefined, header: string | undefined, body: string): string | null {
  if (!secret) return 'no secret given for this path';
  if (!header) return 'no Fleetpatch-Signature header';
  const fields = Object.fromEntries(header.split(',').map((part) => part.split('=', 2) as [string, string]));
  const t = Number(fields.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > 300) return 'timestamp missing or too old';
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const given = Buffer.from(fields.v1 ?? '', 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected) ? null : 'signature does not match';
}
