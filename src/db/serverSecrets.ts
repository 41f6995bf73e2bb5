import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Db } from './client.js';
import { serverSecrets } from './schema.js';

/** The shared secret of this name, made on first use; replicas racing to make it all read the one that won. */
export async function serverSecret(db: Db, name: string): Promise<Buffer> {
  await db.insert(serverSecrets).values({ name, secret: randomBytes(32).toString('base64') }).onConflictDoNothing();
  const [row] = await db.select({ secret: serverSecrets.secret }).from(serverSecrets).where(eq(serverSecrets.name, name));
  return Buffer.from(row!.secret, 'base64');
}
