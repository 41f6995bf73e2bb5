import { desc, eq, isNotNull, sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { selfChecks } from './schema.js';

export type SelfCheckRow = typeof selfChecks.$inferSelect;

export async function createSelfCheck(db: Db): Promise<SelfCheckRow> {
  const [row] = await db.insert(selfChecks).values({}).returning();
  return row!;
}

/** Takes back a self-check whose workflow could not be started. */
export async function deleteSelfCheck(db: Db, id: string): Promise<void> {
  await db.delete(selfChecks).where(eq(selfChecks.id, id));
}

/** Idempotent: a retried activity finds the check already completed and keeps the first answer. */
export async function completeSelfCheck(db: Db, id: string, workerIdentity: string): Promise<SelfCheckRow | undefined> {
  await db
    .update(selfChecks)
    .set({ completedAt: sql`coalesce(${selfChecks.completedAt}, now())`, workerIdentity: sql`coalesce(${selfChecks.workerIdentity}, ${workerIdentity})` })
    .where(eq(selfChecks.id, id));
  return findSelfCheck(db, id);
}

export async function findSelfCheck(db: Db, id: string): Promise<SelfCheckRow | undefined> {
  const [row] = await db.select().from(selfChecks).where(eq(selfChecks.id, id));
  return row;
}

export async function lastCompletedSelfCheck(db: Db): Promise<SelfCheckRow | undefined> {
  const [row] = await db
    .select()
    .from(selfChecks)
    .where(isNotNull(selfChecks.completedAt))
    .orderBy(desc(selfChecks.completedAt))
    .limit(1);
  return row;
}
