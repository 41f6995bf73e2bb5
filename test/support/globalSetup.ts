import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { migrateDatabase } from '../../src/db/migrate.js';
import { startEmbeddedPostgres } from '../../src/devstack/embeddedPostgres.js';
import { ensureTemporalCli } from '../../src/devstack/temporalCli.js';
import { startTemporalDevServer } from '../../src/devstack/temporalDevServer.js';
import { createLogger } from '../../src/logger.js';
import { freePort } from '../../src/net.js';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    temporalAddress: string;
    /** A migrated database that freshDatabase copies (CREATE DATABASE ... TEMPLATE); nothing connects to it. */
    templateDatabase: string;
  }
}

interface Services {
  databaseUrl: string;
  temporalAddress: string;
  templateDatabase: string;
  stop: () => Promise<void>;
}

interface SharedServices {
  started?: Promise<Services>;
  users: number;
}

// The integration and e2e projects each run this setup: they share one set of services through the
// main process's global object (each project loads this module on its own).
const SHARED = Symbol.for('fleetpatch.test.services');

/**
 * One PostgreSQL and one Temporal dev server for the whole run, real ones: TEST_DATABASE_URL and
 * TEST_TEMPORAL_ADDRESS point at running ones, otherwise both are started here (Temporal from the
 * CLI that `fleetpatch temporal-cli` finds or builds). Only the projects that need them run it
 * (vitest.config.ts), so the unit tests start neither.
 */
export default async function setup(project: TestProject) {
  const holder = ((globalThis as { [SHARED]?: SharedServices })[SHARED] ??= { users: 0 });
  holder.users += 1;
  holder.started ??= startServices();
  const services = await holder.started;
  project.provide('databaseUrl', services.databaseUrl);
  project.provide('temporalAddress', services.temporalAddress);
  project.provide('templateDatabase', services.templateDatabase);
  return async () => {
    holder.users -= 1;
    if (holder.users > 0) return;
    holder.started = undefined;
    await services.stop();
  };
}

async function startServices(): Promise<Services> {
  const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'warn', format: 'json', name: 'test-setup' });
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s();
  };
  try {
    let databaseUrl = process.env.TEST_DATABASE_URL;
    if (!databaseUrl) {
      // Not under /root: PostgreSQL runs as the postgres user and must reach its folder.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-test-pg-'));
      fs.chmodSync(dir, 0o755);
      const pg = await startEmbeddedPostgres({ dir, port: await freePort(), database: 'fleetpatch_test', logger });
      stops.push(async () => {
        await pg.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      });
      databaseUrl = pg.url;
    }
    await migrateDatabase(databaseUrl);
    // The database each test file's freshDatabase copies (CREATE DATABASE ... TEMPLATE): migrated
    // once here, instead of every migration again on a new empty database for each of them.
    const templateDatabase = `fleetpatch_template_${randomBytes(6).toString('hex')}`;
    const admin = postgres(databaseUrl, { max: 1, onnotice: () => undefined });
    await admin.unsafe(`create database ${templateDatabase}`);
    stops.push(async () => {
      await admin.unsafe(`drop database if exists ${templateDatabase} with (force)`);
      await admin.end();
    });
    const templateUrl = new URL(databaseUrl);
    templateUrl.pathname = `/${templateDatabase}`;
    await migrateDatabase(templateUrl.toString());

    let temporalAddress = process.env.TEST_TEMPORAL_ADDRESS;
    if (!temporalAddress) {
      const cliPath = await ensureTemporalCli((line) => console.error(line));
      const temporal = await startTemporalDevServer({
        cliPath,
        ip: '127.0.0.1',
        port: await freePort(),
        uiPort: 0,
        headless: true,
        namespace: 'default',
        logger,
      });
      stops.push(temporal.stop);
      temporalAddress = temporal.address;
    }
    return { databaseUrl, temporalAddress, templateDatabase, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
