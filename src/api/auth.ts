import type { AuthChecker } from 'type-graphql';
import { findActiveToken, type TokenPrincipal } from '../db/tokens.js';
import { roleAllows, weakestRole, type Role } from '../fleet/access.js';
import type { Db } from '../db/client.js';
import type { ApiContext } from './context.js';
import { apiError } from './errors.js';

export type Principal = TokenPrincipal;

/** The bearer token of an `Authorization: Bearer <token>` header (or graphql-ws connection param). */
export function bearerToken(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * No token: anonymous (only fields without a role answer). A token that is unknown, revoked or
 * expired is refused outright rather than treated as anonymous, so a client learns at once.
 */
export async function authenticate(db: Db, authorization: unknown): Promise<Principal | null> {
  if (authorization === undefined || authorization === null || authorization === '') return null;
  const token = bearerToken(authorization);
  if (!token) throw apiError('UNAUTHENTICATED', 'The Authorization header must be "Bearer <token>".');
  const principal = await findActiveToken(db, token);
  if (!principal) throw apiError('UNAUTHENTICATED', 'The API token is unknown, revoked or expired. Ask an admin for a new one.');
  return principal;
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
