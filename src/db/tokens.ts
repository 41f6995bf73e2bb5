import { and, eq, gt, isNull, or, sql } from 'drizzle-orm';
import type { Role } from '../fleet/access.js';
import type { Db } from './client.js';
import { apiTokens } from './schema.js';
import { hashSecret, newSecret } from './secrets.js';

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
  const secret = newSecret('fp_');
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
