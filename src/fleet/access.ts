/** Roles, lowest to highest: each one may do everything the ones before it may. */
export const ROLES = ['VIEWER', 'OPERATOR', 'ADMIN'] as const;
export type Role = (typeof ROLES)[number];

export function roleAllows(held: Role, required: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(required);
}

/** The lowest of several required roles: a field marked with several roles opens to the weakest. */
export function weakestRole(required: readonly Role[]): Role {
  return required.reduce<Role>((low, r) => (ROLES.indexOf(r) < ROLES.indexOf(low) ? r : low), 'ADMIN');
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/** The longest a token may live: one that must outlast this is a sign of a token not rotated. */
export const MAX_TOKEN_LIFETIME_DAYS = 3650;

/**
 * When a token expires, from what a person types: `30d`, `12h`, `90m`, an ISO date or time, or
 * `never`. Returns null for never; throws a message naming the accepted forms otherwise.
 */
export function parseTokenExpiry(text: string, now: Date): Date | null {
  const value = text.trim();
  if (value === 'never') return null;
  const relative = /^(\d{1,6})([mhd])$/.exec(value);
  let at: Date;
  if (relative) {
    const unitMs = { m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 'm' | 'h' | 'd'];
    at = new Date(now.getTime() + Number(relative[1]) * unitMs);
  } else if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) && !Number.isNaN(Date.parse(value))) {
    at = new Date(value);
  } else {
    throw new Error(`"${text}" is not an expiry: use 30d, 12h, 90m, an ISO date such as 2027-01-31, or never.`);
  }
  const problem = tokenExpiryProblem(at, now);
  if (problem) throw new Error(problem);
  return at;
}

/** Why a token may not expire at `at`, or null when it may. */
export function tokenExpiryProblem(at: Date, now: Date): string | null {
  if (at.getTime() <= now.getTime()) return `the expiry must be in the future; got ${at.toISOString()}.`;
  if (at.getTime() - now.getTime() > MAX_TOKEN_LIFETIME_DAYS * 86_400_000) return `a token may live at most ${MAX_TOKEN_LIFETIME_DAYS} days; got ${at.toISOString()}.`;
  return null;
}

/** Why a token name is refused, or null. Names identify tokens in listings and the audit log. */
export function tokenNameProblem(name: string): string | null {
  const trimmed = name.trim();
  if (trimmed.length < 1 || trimmed.length > 200) return 'the name must be 1 to 200 characters.';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) return 'the name may not contain control characters.';
  return null;
}

/**
 * A console session lasts a working day, and never beyond its token: the browser keeps it in a
 * cookie, and a cookie left in a shared browser should not outlive the day it was made.
 */
export const CONSOLE_SESSION_HOURS = 12;

/** When a console session made now for a token expiring at `tokenExpiresAt` ends. */
export function consoleSessionExpiry(tokenExpiresAt: Date | null, now: Date): Date {
  const ends = new Date(now.getTime() + CONSOLE_SESSION_HOURS * 3_600_000);
  return tokenExpiresAt && tokenExpiresAt < ends ? tokenExpiresAt : ends;
}

/** A token as stored now (undefined: it no longer exists). */
export interface TokenState {
  revokedAt: Date | null;
  expiresAt: Date | null;
}

/** A console session as stored now (undefined: it no longer exists). */
export interface SessionState {
  endedAt: Date | null;
  expiresAt: Date;
}

/**
 * Why a connection authenticated earlier (a subscription socket) may no longer act for its token or
 * console session, in words for the client; null while it may. `session` is null for a connection
 * that presented the token itself.
 */
export function accessEnded(token: TokenState | undefined, session: SessionState | undefined | null, now: Date): string | null {
  if (!token) return 'The API token no longer exists.';
  if (token.revokedAt) return 'The API token was revoked.';
  if (token.expiresAt && token.expiresAt <= now) return 'The API token expired.';
  if (session === null) return null;
  if (!session) return 'The console session no longer exists.';
  if (session.endedAt) return 'The console session ended: signed out.';
  if (session.expiresAt <= now) return 'The console session expired.';
  return null;
}
