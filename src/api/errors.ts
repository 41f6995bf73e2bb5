import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Logger } from '../logger.js';

/** The API's one error vocabulary: every error a client sees carries one of these codes. */
export const ERROR_CODES = ['BAD_USER_INPUT', 'UNAUTHENTICATED', 'FORBIDDEN', 'NOT_FOUND', 'CONFLICT', 'RATE_LIMITED', 'PAYLOAD_TOO_LARGE', 'INTERNAL'] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export function apiError(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { ...extensions, code } });
}

export const badUserInput = (field: string, message: string) => apiError('BAD_USER_INPUT', message, { field });
export const notFound = (message: string) => apiError('NOT_FOUND', message);

/** Errors raised by GraphQL itself about the request (syntax, validation): they speak for themselves. */
const REQUEST_ERROR_CODES = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'BAD_REQUEST', 'BAD_USER_INPUT', 'PERSISTED_QUERY_NOT_FOUND', 'OPERATION_RESOLUTION_FAILURE']);

/**
 * Apollo's formatError: our own codes and GraphQL's request errors pass through; anything else is
 * an unexpected failure, logged in full and shown to the client only as INTERNAL.
 */
export function formatError(logger: Logger) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && ((ERROR_CODES as readonly string[]).includes(code) || REQUEST_ERROR_CODES.has(code))) {
      const { stacktrace: _stacktrace, ...extensions } = formatted.extensions ?? {};
      return { ...formatted, extensions: code === 'BAD_USER_INPUT' ? { ...extensions } : extensions };
    }
    logger.error({ err: error, path: formatted.path }, 'unexpected error in a GraphQL operation');
    return { message: 'Internal server error', path: formatted.path, locations: formatted.locations, extensions: { code: 'INTERNAL' } };
  };
}
