import fs from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { migrateDatabase, migrationsFolder } from '../../src/db/migrate.js';
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
    await admin.unsafe(`drop database if exists ${name}_steps with (force)`);
    await admin.end();
  });

  /** Applies the migration files whose names start with these numbers, in order, statement by statement. */
  async function apply(db: postgres.Sql, numbers: string[]): Promise<void> {
    for (const file of fs.readdirSync(migrationsFolder).filter((f) => f.endsWith('.sql') && numbers.includes(f.slice(0, 4))).sort()) {
      for (const statement of fs.readFileSync(path.join(migrationsFolder, file), 'utf8').split('--> statement-breakpoint')) await db.unsafe(statement);
    }
  }

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

  it('0009 puts stored reports on the server clock and frees a machine frozen by a report "finished in 2099"', async () => {
    await admin.unsafe(`create database ${name}_steps`);
    const u = new URL(url);
    u.pathname = `/${name}_steps`;
    const db = postgres(u.toString(), { max: 1, onnotice: () => undefined });
    try {
      await apply(db, ['0000', '0001', '0002', '0003', '0004', '0005', '0006', '0007', '0008']);
      const [machine] = await db`insert into machines (name, os_type, os_name, os_version, environment) values ('frozen', 'WINDOWS', 'Windows Server 2022', '10.0', 'ON_PREMISES') returning id`;
      const id = machine!.id as string;
      const future = '00000000-0000-4000-8000-000000000001';
      const honest = '00000000-0000-4000-8000-000000000002';
      await db`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, received_at, reboot_pending, critical_count, security_count, other_count)
        values (${future}, ${id}, 'SCHEDULE', 'windows', '2099-01-01T00:00:00Z', '2099-01-01T00:00:00Z', '2026-11-25T10:00:00Z', false, 2, 0, 0),
               (${honest}, ${id}, 'SCHEDULE', 'windows', '2026-11-25T11:00:00Z', '2026-11-25T11:00:00Z', '2026-11-25T11:00:01Z', true, 0, 1, 2)`;
      await db`insert into pending_updates (assessment_id, machine_id, name, available_version, classification)
        values (${honest}, ${id}, 'KB1', '1', 'SECURITY'), (${honest}, ${id}, 'KB2', '1', 'TOOLS'), (${honest}, ${id}, 'KB3', '1', 'DEFINITION')`;
      await db`update machines set latest_assessment_id = ${future}, last_assessed_at = '2099-01-01T00:00:00Z', critical_count = 2 where id = ${id}`;

      await apply(db, ['0009']);

      const assessed = await db`select id::text, assessed_at from assessments order by id`;
      expect(assessed.map((a) => [a.id, (a.assessed_at as Date).toISOString()])).toEqual([
        [future, '2026-11-25T10:00:00.000Z'],
        [honest, '2026-11-25T11:00:00.000Z'],
      ]);
      const [after] = await db`select latest_assessment_id::text as latest, last_assessed_at, reboot_pending, critical_count, security_count, other_count, tools_count, definition_count, clock_offset_seconds from machines where id = ${id}`;
      expect({ ...after, last_assessed_at: (after!.last_assessed_at as Date).toISOString() }).toEqual({
        latest: honest,
        last_assessed_at: '2026-11-25T11:00:00.000Z',
        reboot_pending: true,
        critical_count: 0,
        security_count: 1,
        other_count: 2,
        tools_count: 1,
        definition_count: 1,
        clock_offset_seconds: null,
      });
    } finally {
      await db.end();
    }
  });
});
