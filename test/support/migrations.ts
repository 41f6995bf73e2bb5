import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { migrationsFolder } from '../../src/db/migrate.js';
import { databaseUrl } from './env.js';

/** An empty database of the test's own (no migration applied), dropped by the returned function. */
export async function emptyDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `m_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const admin = postgres(databaseUrl(), { max: 1, onnotice: () => undefined });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(databaseUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

interface Journal {
  entries: Array<{ tag: string; when: number }>;
}

/**
 * Applies migrations/ up to and including the one whose name starts with `last` (`0003`), as an
 * older fleetpatch left the database: drizzle's migrator over a copy of the folder that ends there.
 * A later call, or migrateDatabase, applies the rest.
 */
export async function migrateUpTo(url: string, last: string): Promise<void> {
  const journal = JSON.parse(fs.readFileSync(path.join(migrationsFolder, 'meta/_journal.json'), 'utf8')) as Journal;
  const end = journal.entries.findIndex((e) => e.tag.startsWith(last));
  if (end < 0) throw new Error(`No migration named ${last}* in ${migrationsFolder}.`);
  const entries = journal.entries.slice(0, end + 1);
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-migrations-'));
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    fs.mkdirSync(path.join(folder, 'meta'));
    fs.writeFileSync(path.join(folder, 'meta/_journal.json'), JSON.stringify({ ...journal, entries }));
    for (const entry of entries) fs.copyFileSync(path.join(migrationsFolder, `${entry.tag}.sql`), path.join(folder, `${entry.tag}.sql`));
    await migrate(drizzle(sql), { migrationsFolder: folder });
  } finally {
    await sql.end({ timeout: 5 });
    fs.rmSync(folder, { recursive: true, force: true });
  }
}
