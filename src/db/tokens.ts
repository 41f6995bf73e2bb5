import { and, desc, eq, gt, isNull, or, sql } from 'drizzle-orm';
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

/** A token as listed: everything but its hash. */
export type ApiTokenRow = Omit<typeof apiTokens.$inferSelect, 'tokenHash'>;

const listed = {
  id: apiTokens.id,
  name: apiTokens.name,
  role: apiTokens.role,
  createdAt: apiTokens.createdAt,
  expiresAt: apiTokens.expiresAt,
  revokedAt: apiTokens.revokedAt,
  lastUsedAt: apiTokens.lastUsedAt,
};

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

export function listApiTokens(db: Db): Promise<ApiTokenRow[]> {
  return db.select(listed).from(apiTokens).orderBy(desc(apiTokens.createdAt), apiTokens.id);
}

/** A page of every token, newest first. */
export async function apiTokensPage(db: Db, page: { offset: number; limit: number }): Promise<{ rows: ApiTokenRow[]; totalCount: () => Promise<number> }> {
  return {
    rows: await db.select(listed).from(apiTokens).orderBy(desc(apiTokens.createdAt), apiTokens.id).offset(page.offset).limit(page.limit),
    totalCount: async () => (await db.select({ n: sql<number>`count(*)::int` }).from(apiTokens))[0]?.n ?? 0,
  };
}

export async function findApiToken(db: Db, id: string): Promise<ApiTokenRow | undefined> {
  const [row] = await db.select(listed).from(apiTokens).where(eq(apiTokens.id, id));
  return row;
}

/** Revokes a token; revoking it again keeps the first revocation time. */
export async function revokeApiToken(db: Db, id: string): Promise<ApiTokenRow | undefined> {
  const [row] = await db
    .update(apiTokens)
    .set({ revokedAt: sql`coalesce(${apiTokens.revokedAt}, now())` })
    .where(eq(apiTokens.id, id))
    .returning(listed);
  return row;
}

export interface TokenPrincipal {
  tokenId: string;
  /** The token's name, for the audit log. */
  name: string;
  role: Role;
  /** When the token expires; null or absent: never. */
  tokenExpiresAt?: Date | null;
}

/**
 * The principal of a live (not revoked, not expired) token, or null. Every GraphQL request asks
 * this, so it only reads: last_used_at is written at most once a minute per token (a write and its
 * commit on every request was most of a small query's time, and one hot row per token).
 */
export async function findActiveToken(db: Db, secret: string): Promise<TokenPrincipal | null> {
  const [row] = await db
    .select({
      id: apiTokens.id,
      name: apiTokens.name,
      role: apiTokens.role,
      expiresAt: apiTokens.expiresAt,
      recentlyUsed: sql<boolean>`coalesce(${apiTokens.lastUsedAt} > now() - interval '1 minute', false)`,
    })
    .from(apiTokens)
    .where(
      and(
        eq(apiTokens.tokenHash, hashSecret(secret)),
        isNull(apiTokens.revokedAt),
        or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, sql`now()`)),
      ),
    );
  if (!row) return null;
  if (!row.recentlyUsed) await db.update(apiTokens).set({ lastUsedAt: sql`now()` }).where(eq(apiTokens.id, row.id));
  return { tokenId: row.id, name: row.name, role: row.role, tokenExpiresAt: row.expiresAt };
}

/**
 * Why a token that findActiveToken refused is refused, when it is one of ours: revoked or expired,
 * with when. Null for a secret no token has. Only the refusal path asks this, so a valid request
 * pays nothing for it; the holder of a secret learns only what became of that secret.
 */
export async function tokenRefusal(db: Db, secret: string): Promise<{ reason: 'REVOKED' | 'EXPIRED'; at: Date } | null> {
  const [row] = await db.select({ revokedAt: apiTokens.revokedAt, expiresAt: apiTokens.expiresAt }).from(apiTokens).where(eq(apiTokens.tokenHash, hashSecret(secret)));
  if (!row) return null;
  if (row.revokedAt) return { reason: 'REVOKED', at: row.revokedAt };
  if (row.expiresAt) return { reason: 'EXPIRED', at: row.expiresAt };
  return null;
}

/** Revocation and expiry of these tokens, as stored now (a deleted token is absent). */
export function tokenStates(db: Db, ids: readonly string[]): Promise<Array<{ id: string; revokedAt: Date | null; expiresAt: Date | null }>> {
  if (ids.length === 0) return Promise.resolve([]);
  return db
    .select({ id: apiTokens.id, revokedAt: apiTokens.revokedAt, expiresAt: apiTokens.expiresAt })
    .from(apiTokens)
    .where(sql`${apiTokens.id} = any(${sql.param([...ids])}::uuid[])`);
}
