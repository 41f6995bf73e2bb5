import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { GraphQLError } from 'graphql';
import { recordAuditEvents, type AuditEntry } from '../db/audit.js';
import { createConsoleSession, endConsoleSession } from '../db/sessions.js';
import { findActiveToken } from '../db/tokens.js';
import { consoleSessionExpiry } from '../fleet/access.js';
import { authenticateRequest, bearerToken, fromOwnOrigin, principalExpiresAt, SESSION_COOKIE, sessionSecret, type Principal } from './auth.js';
import type { ApiServices } from './context.js';
import { dependencyAway, unavailableMessage, type ErrorCode } from './errors.js';
import { RETRY_AFTER_SECONDS } from '../availability.js';

/** Where the web console signs in and out. */
export const SESSION_PATH = '/session';

/**
 * The web console's sign-in: an API token exchanged for a session that the browser keeps in an
 * HttpOnly, SameSite=Strict cookie, so no script on the page ever holds a secret (the token used
 * to sit in localStorage, where any injected script could read it).
 *
 *   POST   /session  {"token": "fp_..."}  → 201, Set-Cookie; the session's role, name and expiry
 *   GET    /session                       → 200 the same, or 401 when there is no live session
 *   DELETE /session                       → 204, the session ended and the cookie cleared
 *
 * Cross-site requests cannot use the cookie: SameSite=Strict keeps it off them; POST and DELETE
 * need a JSON body or no body, which a cross-origin page cannot send without a CORS preflight
 * that this server never grants; and an Origin that is not this server's is refused. GraphQL over
 * HTTP keeps Apollo's CSRF prevention; the WebSocket checks the Origin (see authenticateRequest).
 * Answers are JSON; errors in GraphQL's shape with the API's codes.
 */
export function consoleSessionRoutes(services: ApiServices, options: { secureCookie: boolean; rateLimit: RequestHandler }): express.Router {
  const db = services.database.db;
  const router = express.Router();
  const audit = (entry: AuditEntry) =>
    recordAuditEvents(db, [entry]).catch((error: unknown) => services.logger.error({ err: error, action: entry.action }, 'could not write the audit log'));

  // Secure when the browser speaks HTTPS: to this server, or to a proxy in front that says so.
  const cookie = (req: Request, value: string, maxAgeSeconds: number) => {
    const secure = options.secureCookie || req.headers['x-forwarded-proto'] === 'https';
    return [`${SESSION_COOKIE}=${value}`, 'Path=/', `Max-Age=${maxAgeSeconds}`, 'HttpOnly', 'SameSite=Strict', ...(secure ? ['Secure'] : [])].join('; ');
  };

  router.use(options.rateLimit);
  router.use((req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    if (req.method !== 'GET' && req.method !== 'HEAD' && !fromOwnOrigin(req.headers, false)) {
      fail(res, 403, 'FORBIDDEN', `Console sessions are made and ended only from the console's own address; this request came from ${req.headers.origin}.`);
      return;
    }
    next();
  });

  // JSON only: a form or a text/plain body is what another site's page can send without a preflight.
  const jsonOnly: RequestHandler = (req, res, next) => {
    if (req.is('application/json')) return next();
    fail(res, 415, 'BAD_USER_INPUT', 'Send the token as JSON: {"token": "fp_..."} with Content-Type: application/json.');
  };

  router.post('/', jsonOnly, express.json({ limit: '4kb' }), async (req, res) => {
    const body = req.body as { token?: unknown } | undefined;
    const given = typeof body?.token === 'string' ? body.token.trim() : '';
    // The token as pasted, or a whole "Bearer ..." header value.
    const token = bearerToken(given) ?? given;
    if (!token) {
      fail(res, 400, 'BAD_USER_INPUT', 'Send the API token to sign in with: {"token": "fp_..."}.', 'token');
      return;
    }
    const sourceAddress = req.ip ?? null;
    const principal = await findActiveToken(db, token);
    if (!principal) {
      await audit({ actorKind: 'ANONYMOUS', action: 'consoleSignIn', outcome: 'UNAUTHENTICATED', sourceAddress });
      fail(res, 401, 'UNAUTHENTICATED', 'This token is unknown, revoked or expired. Check it, or ask an administrator for a new one.', 'token');
      return;
    }
    const session = await createConsoleSession(db, { tokenId: principal.tokenId, expiresAt: consoleSessionExpiry(principal.tokenExpiresAt ?? null, services.now()), sourceAddress });
    await audit({ actorKind: 'TOKEN', actorId: principal.tokenId, actorName: principal.name, actorRole: principal.role, action: 'consoleSignIn', targetId: session.id, outcome: 'SUCCEEDED', sourceAddress });
    const maxAge = Math.max(1, Math.floor((session.expiresAt.getTime() - Date.now()) / 1000));
    res.setHeader('Set-Cookie', cookie(req, session.secret, maxAge));
    res.status(201).json({ session: describe({ ...principal, sessionId: session.id, sessionExpiresAt: session.expiresAt }) });
  });

  router.get('/', async (req, res) => {
    const principal = await sessionOf(req, res);
    if (principal) res.json({ session: describe(principal) });
  });

  router.delete('/', async (req, res) => {
    const secret = sessionSecret(req.headers.cookie);
    const ended = secret ? await endConsoleSession(db, secret) : undefined;
    if (ended) await audit({ actorKind: 'TOKEN', actorId: ended.tokenId, action: 'consoleSignOut', targetId: ended.id, outcome: 'SUCCEEDED', sourceAddress: req.ip ?? null });
    res.setHeader('Set-Cookie', cookie(req, '', 0));
    res.status(204).end();
  });

  router.use((_req, res) => fail(res, 405, 'BAD_USER_INPUT', 'The console session answers POST (sign in), GET (who is signed in) and DELETE (sign out).'));
  // A body that is not JSON, or too large: the API's error shape, not Express's HTML page.
  router.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    const status = (error as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      fail(res, status, status === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_USER_INPUT', 'The request body could not be read: send {"token": "fp_..."} as JSON.');
      return;
    }
    const away = dependencyAway(error);
    if (away) {
      res.setHeader('retry-after', String(RETRY_AFTER_SECONDS));
      fail(res, 503, 'SERVICE_UNAVAILABLE', unavailableMessage(away, error));
      return;
    }
    services.logger.error({ err: error }, 'console session request failed');
    fail(res, 500, 'INTERNAL', 'Internal server error');
  });

  /** The live session of a request, or undefined after answering 401 (with the cookie cleared) or 403. */
  async function sessionOf(req: Request, res: Response): Promise<Principal | undefined> {
    try {
      const principal = sessionSecret(req.headers.cookie) ? await authenticateRequest(db, req.headers, { authorization: '', originRequired: false }) : null;
      if (principal) return principal;
      fail(res, 401, 'UNAUTHENTICATED', 'Not signed in: sign in with an API token.');
    } catch (error) {
      if (!(error instanceof GraphQLError)) throw error;
      const code = error.extensions.code as ErrorCode;
      if (code === 'UNAUTHENTICATED') res.setHeader('Set-Cookie', cookie(req, '', 0));
      fail(res, code === 'FORBIDDEN' ? 403 : 401, code, error.message);
    }
    return undefined;
  }

  return router;
}

/** What the console shows of its session: who, with which role, until when. */
function describe(principal: Principal): { role: string; name: string; expiresAt: string | null } {
  return { role: principal.role, name: principal.name, expiresAt: principalExpiresAt(principal)?.toISOString() ?? null };
}

function fail(res: Response, status: number, code: ErrorCode, message: string, field?: string): void {
  res.status(status).json({ errors: [{ message, extensions: { code, ...(field ? { field } : {}) } }] });
}
