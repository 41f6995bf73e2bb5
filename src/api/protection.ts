import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { ApiLimits } from '../config.js';
import { addressKey, clientKey, RATE_LIMITED_MESSAGE, RateLimiter, rateLimit } from './rateLimit.js';

const GRAPHQL_RESPONSE_JSON = 'application/graphql-response+json';

/**
 * A GraphQL answer written before Apollo sees the request, in the media type Apollo would answer
 * in: application/graphql-response+json when the client prefers it (GraphQL over HTTP), JSON else.
 */
function graphqlAnswer(res: Response, body: unknown): void {
  if (res.req.accepts(['application/json', GRAPHQL_RESPONSE_JSON]) === GRAPHQL_RESPONSE_JSON) {
    res.type(`${GRAPHQL_RESPONSE_JSON}; charset=utf-8`).send(JSON.stringify(body));
  } else {
    res.json(body);
  }
}

/** GraphQL: per API token (per address without one), answered in GraphQL's own error shape. */
export function graphqlRateLimit(limits: ApiLimits): RequestHandler {
  const limiter = new RateLimiter(limits.apiRequestsPerMinute);
  return rateLimit(limiter, clientKey, (res, retryAfter) => {
    graphqlAnswer(res, { errors: [{ message: RATE_LIMITED_MESSAGE(retryAfter, 'FLEETPATCH_API_RATE_LIMIT'), extensions: { code: 'RATE_LIMITED', retryAfterSeconds: retryAfter } }] });
  });
}

/**
 * The agent endpoint: per machine credential; enrollment (no credential yet) per address, with a
 * limit of its own so that enrollment keys cannot be guessed at speed. Undefined when the request
 * may go on; otherwise how long to wait and the message to answer 429 with.
 */
export function agentRateLimit(limits: ApiLimits): (req: IncomingMessage, path: string) => { retryAfter: number; message: string } | undefined {
  const perMachine = new RateLimiter(limits.agentRequestsPerMinute);
  const enrollments = new RateLimiter(limits.enrollmentsPerMinute);
  return (req, path) => {
    const [limiter, key, setting] = path === '/enroll' || path === '/enroll/check' ? [enrollments, addressKey, 'FLEETPATCH_ENROLL_RATE_LIMIT'] : [perMachine, clientKey, 'FLEETPATCH_AGENT_RATE_LIMIT'];
    // Limit off (0): not even the key, whose hash every agent request would pay for.
    const retryAfter = limiter.perMinute <= 0 ? 0 : limiter.take(key(req));
    return retryAfter === 0 ? undefined : { retryAfter, message: RATE_LIMITED_MESSAGE(retryAfter, setting) };
  };
}

/**
 * A GraphQL body that is too large or not JSON never reaches Apollo: answer it in GraphQL's error
 * shape with a 4xx, instead of Express's HTML page.
 */
export function graphqlBodyErrors(error: unknown, _req: Request, res: Response, next: NextFunction): void {
  const httpError = error as { type?: string; status?: number; message?: string; limit?: number };
  if (res.headersSent) {
    next(error);
    return;
  }
  if (httpError.type === 'entity.too.large') {
    const limit = typeof httpError.limit === 'number' ? `${Math.round(httpError.limit / 1024)} KiB` : 'limit';
    graphqlAnswer(res.status(413), { errors: [{ message: `The request body is larger than the ${limit} allowed. Send smaller variables, or split the request.`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
    return;
  }
  if (typeof httpError.status === 'number' && httpError.status >= 400 && httpError.status < 500) {
    graphqlAnswer(res.status(httpError.status), { errors: [{ message: `The request body could not be read: ${httpError.message ?? 'bad request'}. Send JSON: {"query": "...", "variables": {...}}.`, extensions: { code: 'BAD_USER_INPUT' } }] });
    return;
  }
  next(error);
}
