import { desc, eq, sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { enrollmentKeys } from './schema.js';
import { hashSecret, newSecret } from './secrets.js';

export type EnrollmentKeyRow = typeof enrollmentKeys.$inferSelect;

export async function createEnrollmentKey(
  db: Db,
  input: { description: string; expiresAt: Date | null; maxUses: number | null; defaultTags: string[] },
): Promise<{ key: EnrollmentKeyRow; secret: string }> {
  const secret = newSecret('fpe_');
  const [key] = await db
    .insert(enrollmentKeys)
    .values({ ...input, secretHash: hashSecret(secret) })
    .returning();
  return { key: key!, secret };
}

/** A page of every key, newest first. */
export async function enrollmentKeysPage(db: Db, page: { offset: number; limit: number }): Promise<{ rows: EnrollmentKeyRow[]; totalCount: () => Promise<number> }> {
  return {
    rows: await db.select().from(enrollmentKeys).orderBy(desc(enrollmentKeys.createdAt), enrollmentKeys.id).offset(page.offset).limit(page.limit),
    totalCount: async () => (await db.select({ n: sql<number>`count(*)::int` }).from(enrollmentKeys))[0]?.n ?? 0,
  };
}

export async function findEnrollmentKey(db: Db, id: string): Promise<EnrollmentKeyRow | undefined> {
  const [row] = await db.select().from(enrollmentKeys).where(eq(enrollmentKeys.id, id));
  return row;
}

export async function findEnrollmentKeyBySecret(db: Db, secret: string): Promise<EnrollmentKeyRow | undefined> {
  const [key] = await db.select().from(enrollmentKeys).where(eq(enrollmentKeys.secretHash, hashSecret(secret)));
  return key;
}

/** Revokes a key; revoking it again keeps the first revocation time. */
export async function revokeEnrollmentKey(db: Db, id: string): Promise<EnrollmentKeyRow | undefined> {
  const [key] = await db
    .update(enrollmentKeys)
    .set({ revokedAt: sql`coalesce(${enrollmentKeys.revokedAt}, now())` })
    .where(eq(enrollmentKeys.id, id))
    .returning();
  return key;
}
