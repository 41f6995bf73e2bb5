import { and, eq, gt, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { apiTokens, consoleSessions } from './schema.js';
import { hashSecret, newSecret } from './secrets.js';
import type { TokenPrincipal } from './tokens.js';

/** The principal of a live console session: its token's, and the session itself. */
export interface SessionPrincipal extends TokenPrincipal {
  sessionId: string;
  sessionExpiresAt: Date;
}

/**
 * Starts a console session for a token; the secret goes into the browser's cookie, this once.
 * Sessions that ended more than a day ago are deleted on the way: one row per sign-in would
 * otherwise pile up for good.
 */
export async function createConsoleSession(
  db: Db,
  input: { tokenId: string; expiresAt: Date; sourceAddress: string | null },
): Promise<{ id: string; secret: string; expiresAt: Date }> {
  const secret = newSecret('fps_');
  await db
    .delete(consoleSessions)
    .where(or(lt(consoleSessions.expiresAt, sql`now() - interval '1 day'`), lt(consoleSessions.endedAt, sql`now() - interval '1 day'`)));
  const [row] = await db
    .insert(consoleSessions)
    .values({ secretHash: hashSecret(secret), tokenId: input.tokenId, expiresAt: input.expiresAt, sourceAddress: input.sourceAddress })
    .returning({ id: consoleSessions.id, expiresAt: consoleSessions.expiresAt });
  return { id: row!.id, secret, expiresAt: row!.expiresAt };
}

/** The principal of a session that is live (not ended, not expired) and whose token is live too; null otherwise. */
export async function findActiveSession(db: Db, secret: string): Promise<SessionPrincipal | null> {
  const [row] = await db
    .select({
      sessionId: consoleSessions.id,
      sessionExpiresAt: consoleSessions.expiresAt,
      tokenId: apiTokens.id,
      name: apiTokens.name,
      role: apiTokens.role,
      tokenExpiresAt: apiTokens.expiresAt,
      recentlyUsed: sql<boolean>`coalesce(${apiTokens.lastUsedAt} > now() - interval '1 minute', false)`,
    })
    .from(consoleSessions)
    .innerJoin(apiTokens, eq(apiTokens.id, consoleSessions.tokenId))
    .where(
      and(
        eq(consoleSessions.secretHash, hashSecret(secret)),
        isNull(consoleSessions.endedAt),
        gt(consoleSessions.expiresAt, sql`now()`),
        isNull(apiTokens.revokedAt),
        or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, sql`now()`)),
      ),
    );
  if (!row) return null;
  const { recentlyUsed, ...principal } = row;
  // The token's last use counts the console's too, written at most once a minute (as findActiveToken does).
  if (!recentlyUsed) await db.update(apiTokens).set({ lastUsedAt: sql`now()` }).where(eq(apiTokens.id, row.tokenId));
  return principal;
}

/** Ends (signs out) the session with this secret; the ended session, or undefined when there is none. */
export async function endConsoleSession(db: Db, secret: string): Promise<{ id: string; tokenId: string } | undefined> {
  const [row] = await db
    .update(consoleSessions)
    .set({ endedAt: sql`coalesce(${consoleSessions.endedAt}, now())` })
    .where(eq(consoleSessions.secretHash, hashSecret(secret)))
    .returning({ id: consoleSessions.id, tokenId: consoleSessions.tokenId });
  return row;
}

/** End and expiry of these sessions, as stored now (a deleted session is absent). */
export function sessionStates(db: Db, ids: readonly string[]): Promise<Array<{ id: string; endedAt: Date | null; expiresAt: Date }>> {
  if (ids.length === 0) return Promise.resolve([]);
  return db
    .select({ id: consoleSessions.id, endedAt: consoleSessions.endedAt, expiresAt: consoleSessions.expiresAt })
    .from(consoleSessions)
    .where(sql`${consoleSessions.id} = any(${sql.param([...ids])}::uuid[])`);
}
