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

export function listEnrollmentKeys(db: Db): Promise<EnrollmentKeyRow[]> {
  return db.select().from(enrollmentKeys).orderBy(desc(enrollmentKeys.createdAt));
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
