import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { RETRY_AFTER_SECONDS, ServiceUnavailable, unavailableDependency, type Dependency } from '../availability.js';
import { isDatabaseUnavailable } from '../db/client.js';
import type { Logger } from '../logger.js';
import { isTemporalUnavailable } from '../temporal/connection.js';
import { tokenLimitMessage } from './limits.js';

/**
 * The API's one error vocabulary: every error a client sees carries one of these codes.
 * SERVICE_UNAVAILABLE: PostgreSQL or Temporal (`extensions.dependency`) is away; nothing is wrong
 * with the request, retry later (HTTP 503 with Retry-After when nothing of the answer could be served).
 * UNAVAILABLE: this server lacks what the request needs (e.g. it was built without the agent
 * packages); asking again does not help until whoever runs it adds it, and the message says what.
 */
export const ERROR_CODES = [
  'BAD_USER_INPUT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'PAYLOAD_TOO_LARGE',
  'RESPONSE_TOO_LARGE',
  'TOO_MANY_SUBSCRIPTIONS',
  'SERVICE_UNAVAILABLE',
  'UNAVAILABLE',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export function apiError(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { ...extensions, code } });
}

export const badUserInput = (field: string, message: string) => apiError('BAD_USER_INPUT', message, { field });
export const notFound = (message: string) => apiError('NOT_FOUND', message);

/** Which dependency an error says is away: ServiceUnavailable, or PostgreSQL's or Temporal's own errors for it. */
export function dependencyAway(error: unknown): Dependency | null {
  return unavailableDependency(error, [
    ['DATABASE', isDatabaseUnavailable],
    ['TEMPORAL', isTemporalUnavailable],
  ]);
}

/** What a client is told when a dependency is away. */
export function unavailableMessage(dependency: Dependency, error?: unknown): string {
  let current = error as { cause?: unknown; originalError?: unknown } | undefined;
  for (let i = 0; i < 8 && current && typeof current === 'object'; i++) {
    if (current instanceof ServiceUnavailable) return current.message;
    current = (current.originalError ?? current.cause) as typeof current;
  }
  return new ServiceUnavailable(dependency).message;
}

/** SERVICE_UNAVAILABLE for a whole request (HTTP 503, Retry-After): what the context function throws while a dependency is away. */
export function serviceUnavailable(dependency: Dependency, error?: unknown): GraphQLError {
  return new GraphQLError(unavailableMessage(dependency, error), {
    extensions: { code: 'SERVICE_UNAVAILABLE', dependency, http: { status: 503, headers: new Map([['retry-after', String(RETRY_AFTER_SECONDS)]]) } },
  });
}

/**
 * An operation that could serve nothing because a dependency is away (no data, SERVICE_UNAVAILABLE
 * among its errors) answers HTTP 503 with Retry-After, as the agent endpoint does; a partial
 * answer stays 200 with the error at its field.
 */
export const serviceUnavailablePlugin: ApolloServerPlugin = {
  async requestDidStart() {
    return {
      async willSendResponse({ response }) {
        if (response.body.kind !== 'single') return;
        const { data, errors } = response.body.singleResult;
        if (data == null && errors?.some((e) => e.extensions?.code === 'SERVICE_UNAVAILABLE')) {
          response.http.status = 503;
          response.http.headers.set('retry-after', String(RETRY_AFTER_SECONDS));
        }
      },
    };
  },
};

/** Errors raised by GraphQL itself about the request (syntax, validation): they speak for themselves. */
export const REQUEST_ERROR_CODES: ReadonlySet<string> = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_REQUEST', 'BAD_USER_INPUT', 'PERSISTED_QUERY_NOT_FOUND', 'OPERATION_RESOLUTION_FAILURE']);

/**
 * Input PostgreSQL refuses to read is the client's mistake, not ours (both found by the fuzz
 * test): an id that is not a UUID (22P02, invalid input syntax for type uuid) and a NUL byte in
 * any text (22021). The message a client gets for each, or null for any other error.
 */
function invalidInputMessage(error: unknown): string | null {
  let current = error as { originalError?: unknown; cause?: unknown; code?: unknown; message?: unknown } | undefined;
  for (let i = 0; i < 5 && current; i++) {
    const message = typeof current.message === 'string' ? current.message : '';
    if (current.code === '22P02' && message.includes('uuid')) {
      return 'An id in this request is not one this API hands out (ids are UUIDs, e.g. 3f0c2a9e-5b1d-4c7e-9a2f-0d8e6b4c1a7f); copy it from a query result.';
    }
    if (current.code === '22021') return 'A value in this request holds a NUL character (\\u0000), which cannot be stored; remove it.';
    current = (current.originalError ?? current.cause) as typeof current;
  }
  return null;
}

function isClientStatus(http: unknown): boolean {
  const status = (http as { status?: unknown } | undefined)?.status;
  return typeof status === 'number' && status >= 400 && status < 500;
}

/**
 * Apollo's formatError: our own codes and GraphQL's request errors pass through; anything else is
 * an unexpected failure, logged in full and shown to the client only as INTERNAL.
 */
export function formatError(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && ((ERROR_CODES as readonly string[]).includes(code) || REQUEST_ERROR_CODES.has(code))) {
      const { stacktrace: _stacktrace, ...extensions } = formatted.extensions ?? {};
      return { ...formatted, message: tokenLimitMessage(formatted.message) ?? formatted.message, extensions: code === 'BAD_USER_INPUT' ? { ...extensions } : extensions };
    }
    // Apollo's own refusals of a request that carry no code, only a 4xx (a persisted query whose
    // text does not match its hash, an unknown persisted query version): the client's mistake.
    if (error instanceof GraphQLError && !error.originalError && isClientStatus(error.extensions.http)) {
      return { message: formatted.message, extensions: { code: 'BAD_REQUEST' } };
    }
    const invalid = invalidInputMessage(error);
    if (invalid) return { message: invalid, path: formatted.path, locations: formatted.locations, extensions: { code: 'BAD_USER_INPUT' } };
    const away = dependencyAway(error);
    if (away) {
      logger.warn({ err: error, path: formatted.path, dependency: away }, 'a GraphQL operation met an unavailable dependency');
      return { message: unavailableMessage(away, error), path: formatted.path, locations: formatted.locations, extensions: { code: 'SERVICE_UNAVAILABLE', dependency: away } };
    }
    logger.error({ err: error, path: formatted.path }, 'unexpected error in a GraphQL operation');
    return { message: 'Internal server error', path: formatted.path, locations: formatted.locations, extensions: { code: 'INTERNAL' } };
  };
}
