import { fileURLToPath } from 'node:url';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';

/** migrations/ at the package root, from src/db (tests) and dist/db (built) alike. */
export const migrationsFolder = fileURLToPath(new URL('../../migrations', import.meta.url));

/** An arbitrary constant: the key of the advisory lock that lets one process at a time migrate. */
const MIGRATION_LOCK_KEY = 727_246_113;

/**
 * Applies every pending migration. Several processes may start at once (API replicas, workers):
 * a session-level advisory lock on one dedicated connection makes them take turns, and the ones
 * that come second find nothing left to apply.
 */
export async function migrateDatabase(url: string): Promise<{ applied: number }> {
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    const before = await countApplied(sql);
    await migrate(drizzle(sql), { migrationsFolder });
    const after = await countApplied(sql);
    await sql`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
    return { applied: after - before };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function countApplied(sql: postgres.Sql): Promise<number> {
  const [table] = await sql<{ name: string | null }[]>`select to_regclass('drizzle.__drizzle_migrations')::text as name`;
  if (!table?.name) return 0;
  const [row] = await sql<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
  return row?.n ?? 0;
}
