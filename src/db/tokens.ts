import { createHash, randomBytes } from 'node:crypto';
import { and, eq, gt, isNull, or, sql } from 'drizzle-orm';
import type { Role } from '../fleet/access.js';
import type { Db } from './client.js';
import { apiTokens } from './schema.js';

/** Secrets carry a recognisable prefix so that secret scanners and people can tell what they are. */
const TOKEN_PREFIX = 'fp_';

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export interface CreatedToken {
  id: string;
  role: Role;
  /** Shown once; only its hash is stored. */
  secret: string;
}

export async function createApiToken(
  db: Db,
  input: { name: string; role: Role; expiresAt?: Date | null },
): Promise<CreatedToken> {
  const secret = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const [row] = await db
    .insert(apiTokens)
    .values({ name: input.name, role: input.role, tokenHash: hashSecret(secret), expiresAt: input.expiresAt ?? null })
    .returning({ id: apiTokens.id });
  return { id: row!.id, role: input.role, secret };
}

export interface TokenPrincipal {
  tokenId: string;
  role: Role;
}

/** The principal of a live (not revoked, not expired) token, or null. */
export async function findActiveToken(db: Db, secret: string): Promise<TokenPrincipal | null> {
  const [row] = await db
    .update(apiTokens)
    .set({ lastUsedAt: sql`now()` })
    .where(
      and(
        eq(apiTokens.tokenHash, hashSecret(secret)),
        isNull(apiTokens.revokedAt),
        or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, sql`now()`)),
      ),
    )
    .returning({ id: apiTokens.id, role: apiTokens.role });
  return row ? { tokenId: row.id, role: row.role } : null;
}
