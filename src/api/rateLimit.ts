import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { bearerToken, sessionSecret } from './auth.js';

/**
 * In-process token buckets: each key may burst a few seconds' worth of requests, then goes at the
 * steady rate. Per process, so N API replicas allow N times the rate: enough to stop one client
 * from drowning the server, which is what they are for.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;
  readonly burst: number;
  private lastPrune: number;

  constructor(
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {
    this.perMs = perMinute / 60_000;
    // Ten seconds' worth: a client that was quiet may catch up, a flood is cut within seconds.
    this.burst = Math.max(10, Math.ceil(perMinute / 6));
    this.lastPrune = now();
  }

  /** 0 when the request may go on; otherwise the whole seconds until it may. */
  take(key: string): number {
    if (this.perMinute <= 0) return 0;
    const now = this.now();
    this.prune(now);
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.perMs);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000));
  }

  /** Forgets buckets that have refilled: they hold nothing a new bucket would not. Keeps memory bounded under random keys. */
  private prune(now: number): void {
    if (now - this.lastPrune < 10_000 && this.buckets.size < 50_000) return;
    this.lastPrune = now;
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.at) * this.perMs >= this.burst) this.buckets.delete(key);
    }
  }
}

/** The key of a request: its bearer secret's or console session's hash (never the secret itself), or its address. */
export function clientKey(req: IncomingMessage): string {
  const secret = bearerToken(req.headers.authorization) ?? sessionSecret(req.headers.cookie);
  return secret ? `s:${createHash('sha256').update(secret).digest('hex')}` : addressKey(req);
}

/** The key of the address a request came from (the API trusts no proxy header). */
export function addressKey(req: IncomingMessage): string {
  return `a:${req.socket.remoteAddress ?? 'unknown'}`;
}

export const RATE_LIMITED_MESSAGE = (retryAfter: number, setting: string) =>
  `Too many requests from this client; retry in ${retryAfter} s. (The limit is the server's ${setting}.)`;

/** Express middleware: a request over the limit gets 429, Retry-After, and the body `respond` writes. */
export function rateLimit(limiter: RateLimiter, keyOf: (req: Request) => string, respond: (res: Response, retryAfter: number) => void): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    // Limit off (0): not even the key, whose hash every agent request would pay for.
    if (limiter.perMinute <= 0) {
      next();
      return;
    }
    const retryAfter = limiter.take(keyOf(req));
    if (retryAfter === 0) {
      next();
      return;
    }
    res.status(429).setHeader('Retry-After', String(retryAfter));
    respond(res, retryAfter);
  };
}
