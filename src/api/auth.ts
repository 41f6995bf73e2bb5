import type { IncomingHttpHeaders } from 'node:http';
import type { AuthChecker } from 'type-graphql';
import { findActiveSession } from '../db/sessions.js';
import { findActiveToken, tokenRefusal, type TokenPrincipal } from '../db/tokens.js';
import { roleAllows, weakestRole, type Role } from '../fleet/access.js';
import type { Db } from '../db/client.js';
import type { ApiContext } from './context.js';
import { apiError } from './errors.js';

/** Who is asking: a token, presented itself or through a console session made from it. */
export type Principal = TokenPrincipal & { sessionId?: string; sessionExpiresAt?: Date };

/** When a principal stops being valid by itself: the earlier of its token's and its session's expiry; null: never. */
export function principalExpiresAt(principal: Principal): Date | null {
  const times = [principal.tokenExpiresAt, principal.sessionExpiresAt].filter((t): t is Date => t instanceof Date);
  return times.length === 0 ? null : new Date(Math.min(...times.map((t) => t.getTime())));
}

/** The cookie the web console's session travels in (HttpOnly: scripts on the page never read it). */
export const SESSION_COOKIE = 'fleetpatch_session';

/** The console session's secret in a Cookie header, if there is one. */
export function sessionSecret(cookieHeader: unknown): string | undefined {
  if (typeof cookieHeader !== 'string') return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) {
      const value = part.slice(eq + 1).trim();
      return value === '' ? undefined : value;
    }
  }
  return undefined;
}

/**
 * Whether a browser request comes from a page of this server: its Origin names the host it was
 * sent to (as the client saw it: a proxy in front keeps Host or sets X-Forwarded-Host). Without
 * an Origin, `required` decides: browsers always send one on a WebSocket handshake and on POST,
 * while tools such as curl send none.
 */
export function fromOwnOrigin(headers: IncomingHttpHeaders, required: boolean): boolean {
  const origin = headers.origin;
  if (origin === undefined || origin === '') return !required;
  const forwarded = headers['x-forwarded-host'];
  const host = (typeof forwarded === 'string' && forwarded !== '' ? forwarded.split(',')[0]!.trim() : headers.host) ?? '';
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}

/**
 * The principal of a request: its bearer token, or else its console session cookie. A session is
 * accepted only from the console's own origin: SameSite=Strict keeps the cookie off other sites'
 * requests, and this keeps it off a sibling site's WebSocket too (a handshake has no CORS).
 * `originRequired`: refuse a session without an Origin (WebSocket handshakes).
 */
export async function authenticateRequest(db: Db, headers: IncomingHttpHeaders, options: { authorization?: unknown; originRequired: boolean }): Promise<Principal | null> {
  const authorization = options.authorization ?? headers.authorization;
  if (authorization !== undefined && authorization !== null && authorization !== '') return authenticate(db, authorization);
  const secret = sessionSecret(headers.cookie);
  if (!secret) return null;
  if (!fromOwnOrigin(headers, options.originRequired)) {
    throw apiError('FORBIDDEN', `A console session is accepted only from the console's own address; this request came from ${headers.origin ?? 'no origin'}.`);
  }
  const principal = await findActiveSession(db, secret);
  if (!principal) throw apiError('UNAUTHENTICATED', 'The console session has ended (signed out, expired, or its token was revoked). Sign in again.');
  return principal;
}

/** The bearer token of an `Authorization: Bearer <token>` header (or graphql-ws connection param). */
export function bearerToken(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * No token: anonymous (only fields without a role answer). A token that is unknown, revoked or
 * expired is refused outright rather than treated as anonymous, so a client learns at once, and
 * learns which of the three it is.
 */
export async function authenticate(db: Db, authorization: unknown): Promise<Principal | null> {
  if (authorization === undefined || authorization === null || authorization === '') return null;
  const token = bearerToken(authorization);
  if (!token) throw apiError('UNAUTHENTICATED', 'The Authorization header must be "Bearer <token>".');
  const principal = await findActiveToken(db, token);
  if (principal) return principal;
  // Said plainly, so a script or the CLI can tell its user to get a new token rather than check
  // what they typed.
  const refusal = await tokenRefusal(db, token);
  if (refusal?.reason === 'EXPIRED') throw apiError('UNAUTHENTICATED', `The API token expired at ${refusal.at.toISOString()}. Ask an admin for a new one.`, { reason: 'TOKEN_EXPIRED' });
  if (refusal?.reason === 'REVOKED') throw apiError('UNAUTHENTICATED', `The API token was revoked at ${refusal.at.toISOString()}. Ask an admin for a new one.`, { reason: 'TOKEN_REVOKED' });
  throw apiError('UNAUTHENTICATED', 'The API token is unknown, revoked or expired. Ask an admin for a new one.');
}

/** type-graphql's guard for `@Authorized('ROLE')`: the field needs at least that role. */
export const authChecker: AuthChecker<ApiContext, Role> = ({ context }, roles) => {
  const required = roles.length === 0 ? 'VIEWER' : weakestRole(roles);
  if (!context.principal) {
    throw apiError('UNAUTHENTICATED', 'This field needs an API token: send "Authorization: Bearer <token>".');
  }
  if (!roleAllows(context.principal.role, required)) {
    throw apiError('FORBIDDEN', `This field needs the ${required} role; your token has ${context.principal.role}.`);
  }
  return true;
};
