import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { Logger } from '../logger.js';
import type { ErrorCode } from './errors.js';

/**
 * The last handlers of the API's Express app: whatever no route answered, and whatever a route
 * threw, is answered in JSON with a code of the API's vocabulary (the agent endpoint's shape,
 * `{"error": {"code", "message"}}`), never with Express's HTML page, a stack trace or a file path.
 */

/** A path or method no route serves. */
export const notFoundAsJson: RequestHandler = (req, res) => {
  res.status(404).json({ error: { code: 'NOT_FOUND' satisfies ErrorCode, message: `Nothing answers ${req.method} on this path: the API serves /graphql, /agent/v1, /healthz, /readyz and /metrics, and the console GET /.` } });
};

const CLIENT_ERRORS: Record<number, { code: ErrorCode; message: string }> = {
  400: { code: 'BAD_USER_INPUT', message: 'The request could not be read (a malformed path or body).' },
  404: { code: 'NOT_FOUND', message: 'Nothing answers on this path.' },
  413: { code: 'PAYLOAD_TOO_LARGE', message: 'The request body is too large.' },
};

/** An error a route threw or passed on: 4xx errors of the request keep their status, anything else is a logged 500. */
export function errorsAsJson(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    // Too late for an answer of our own: Express closes the connection.
    if (res.headersSent) return next(error);
    const status = (error as { status?: unknown } | null)?.status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      const known = CLIENT_ERRORS[status] ?? { code: 'BAD_USER_INPUT', message: 'The request was refused.' };
      res.status(status).json({ error: known });
      return;
    }
    logger.error({ err: error, method: req.method, path: req.path }, 'unexpected error answering a request');
    res.status(500).json({ error: { code: 'INTERNAL' satisfies ErrorCode, message: 'Internal server error; the server logged the details.' } });
  };
}
