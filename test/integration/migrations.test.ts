import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { migrateDatabase } from '../../src/db/migrate.js';
import { databaseUrl } from '../support/env.js';

describe('migrations', () => {
  const name = `migrate_${Date.now()}`;
  const admin = postgres(databaseUrl(), { max: 1, onnotice: () => undefined });
  const url = (() => {
    const u = new URL(databaseUrl());
    u.pathname = `/${name}`;
    return u.toString();
  })();

  afterAll(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.end();
  });

  it('are applied once when several processes start together', async () => {
    await admin.unsafe(`create database ${name}`);
    const results = await Promise.all([migrateDatabase(url), migrateDatabase(url), migrateDatabase(url)]);
    const applied = results.map((r) => r.applied).sort();
    // One of them applies everything, the others wait for the lock and find nothing left.
    expect(applied[0]).toBe(0);
    expect(applied[1]).toBe(0);
    expect(applied[2]).toBeGreaterThan(0);
    const db = postgres(url, { max: 1 });
    const tables = await db`select tablename from pg_tables where schemaname = 'public' order by tablename`;
    await db.end();
    expect(tables.map((t) => t.tablename)).toEqual(expect.arrayContaining(['api_tokens', 'self_checks']));
    expect((await migrateDatabase(url)).applied).toBe(0);
  });
});
