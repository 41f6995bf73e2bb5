import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { expect, inject } from 'vitest';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import { connectDatabase, type Database } from '../../src/db/client.js';
import { createApiToken } from '../../src/db/tokens.js';
import type { Role } from '../../src/fleet/access.js';
import { loadConfig } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/logger.js';
import type { TlsFiles } from '../../src/api/tls.js';
import { connectTemporal, type TemporalClient, type TemporalSettings } from '../../src/temporal/connection.js';
import { createFleetWorker, type FleetWorker } from '../../src/temporal/worker.js';
import { enrollmentKey } from './machines.js';

export const testLogger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', format: 'json', name: 'test' });

export function databaseUrl(): string {
  return inject('databaseUrl');
}

/** Temporal settings with a task queue of the test's own, so tests never pick up each other's work. */
export function temporalSettings(taskQueue = `test-${randomUUID()}`): TemporalSettings {
  return { address: inject('temporalAddress'), namespace: 'default', taskQueue };
}

export function connectTestDatabase(url = databaseUrl()): Database {
  return connectDatabase(url, { max: 4 });
}

export async function tokenFor(db: Database, role: Role): Promise<string> {
  return (await createApiToken(db.db, { name: `test ${role}`, role })).secret;
}

export function startTestApi(
  temporal: TemporalSettings,
  options: { databaseUrl?: string; env?: NodeJS.ProcessEnv; logger?: Logger; tls?: TlsFiles; now?: () => Date; agentDistribution?: { distDir?: string; releaseKeyFile?: string } } = {},
): Promise<ApiServer> {
  const config = loadConfig(options.env ?? {});
  return startApiServer({
    databaseUrl: options.databaseUrl ?? databaseUrl(),
    temporal,
    port: 0,
    host: '127.0.0.1',
    logger: options.logger ?? testLogger,
    sandbox: false,
    fleet: config,
    limits: config.limits,
    tls: options.tls,
    ...(options.agentDistribution ? { agentDistribution: options.agentDistribution } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
}

/**
 * A database of the test file's own, migrated (a copy of the global setup's migrated template;
 * empty with `migrate: false`), for tests that count the whole fleet. Dropped by the returned
 * function.
 */
export async function freshDatabase({ migrate = true }: { migrate?: boolean } = {}): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `t_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const admin = postgres(databaseUrl(), { max: 1, onnotice: () => undefined });
  await admin.unsafe(migrate ? `create database ${name} template ${inject('templateDatabase')}` : `create database ${name}`);
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

/** A real API on a database of the test file's own: its URL without `/graphql`, and one close for all of it. */
export async function startApiOnFreshDatabase(env?: NodeJS.ProcessEnv): Promise<{ api: ApiServer; database: Database; base: string; close: () => Promise<void> }> {
  const fresh = await freshDatabase();
  const database = connectTestDatabase(fresh.url);
  const api = await startTestApi(temporalSettings(), { databaseUrl: fresh.url, ...(env ? { env } : {}) });
  return {
    api,
    database,
    base: api.url.replace('/graphql', ''),
    close: async () => {
      await api.close();
      await database.close();
      await fresh.drop();
    },
  };
}

/**
 * The agent endpoint's tests' API: startApiOnFreshDatabase (with `env`, its settings) with an admin token, the endpoint's base
 * URL, and enrollment keys made and read back as an admin does it, over GraphQL.
 */
export async function startApiWithAdmin(env?: NodeJS.ProcessEnv): Promise<{
  api: ApiServer;
  database: Database;
  /** The API's URL without `/graphql`: where agents enroll. */
  base: string;
  admin: string;
  close: () => Promise<void>;
  /** Creates an enrollment key: its id and its secret (shown once). */
  createKey: (input: Record<string, unknown>) => Promise<{ id: string; secret: string }>;
  /** A key's state and use count, as the admins' list shows them. */
  keyState: (id: string) => Promise<{ state: string; useCount: number }>;
}> {
  const { api, database, base, close } = await startApiOnFreshDatabase(env);
  const admin = await tokenFor(database, 'ADMIN');
  return {
    api,
    database,
    base,
    admin,
    close,
    async createKey(input) {
      const response = await graphql<{ createEnrollmentKey: { key: { id: string }; secret: string } }>(
        api.url,
        'mutation($input: CreateEnrollmentKeyInput!) { createEnrollmentKey(input: $input) { key { id } secret } }',
        { token: admin, variables: { input } },
      );
      expect(response.errors).toBeUndefined();
      return { id: response.data!.createEnrollmentKey.key.id, secret: response.data!.createEnrollmentKey.secret };
    },
    async keyState(id) {
      const keys = await graphql<{ enrollmentKeys: { edges: Array<{ node: { id: string; state: string; useCount: number } }> } }>(api.url, '{ enrollmentKeys(first: 500) { edges { node { id state useCount } } } }', { token: admin });
      const key = keys.data!.enrollmentKeys.edges.find((edge) => edge.node.id === id)?.node;
      expect(key, `enrollment key ${id}`).toBeDefined();
      return { state: key!.state, useCount: key!.useCount };
    },
  };
}

/** What startRunStack starts besides the defaults. */
export interface RunStackOptions {
  /** The API's settings (FLEETPATCH_*), as its environment would give them. */
  env?: NodeJS.ProcessEnv;
  /** The worker's identity (activities record it); default pid@host. */
  workerIdentity?: string;
  /** The clock of the API and of the worker's activities; default the system's. */
  now?: () => Date;
  /** The logger of each process ('api', 'worker'); default testLogger. */
  logger?: (process: 'api' | 'worker') => Logger;
  agentDistribution?: { distDir?: string; releaseKeyFile?: string };
  /** The worker's other settings: metrics, webhooks, retention. */
  worker?: Pick<Parameters<typeof createFleetWorker>[0], 'metricsAddress' | 'webhooks' | 'thresholds' | 'historyRetentionDays'>;
}

/** A fleet worker on a database of the test file's own, and a Temporal client on its task queue. */
export interface WorkerStack {
  /** The task queue is the file's own. */
  settings: TemporalSettings;
  database: Database;
  /** The running worker (replaced by restartWorker). */
  worker: FleetWorker;
  temporal: TemporalClient;
  /** A new API token of `role` (named "test <role>"). */
  token: (role: Role) => Promise<string>;
  /** A new enrollment key, straight in the database (no limits, no default tags). */
  enrollmentKey: (description?: string) => Promise<string>;
  /** Stops the worker and starts another on the same task queue, as a deploy would. */
  restartWorker: (identity: string) => Promise<void>;
  /** Stops all of it, the worker before what it uses, and drops the database. */
  close: () => Promise<void>;
}

/** A WorkerStack with the API in front of it. */
export interface RunStack extends WorkerStack {
  api: ApiServer;
  /** The API's URL without `/graphql`: where agents enroll. */
  base: string;
}

/**
 * What a deployment runs on, for the tests of runs: a fresh database, the API (`api: false`: none),
 * a fleet worker running on a task queue of the file's own, and a Temporal client.
 */
export function startRunStack(options: RunStackOptions & { api: false }): Promise<WorkerStack>;
export function startRunStack(options?: RunStackOptions & { api?: true }): Promise<RunStack>;
export async function startRunStack(options: RunStackOptions & { api?: boolean } = {}): Promise<WorkerStack | RunStack> {
  const settings = temporalSettings();
  const logger = options.logger ?? (() => testLogger);
  // What is started, undone in reverse: the worker stops before the API and the database it uses.
  const undo: Array<() => Promise<unknown>> = [];
  const close = async () => {
    for (const step of undo.splice(0).reverse()) await step();
  };
  const startWorker = async (databaseUrl: string, identity: string | undefined) => {
    const worker = await createFleetWorker({
      ...options.worker,
      databaseUrl,
      temporal: settings,
      logger: logger('worker'),
      ...(identity ? { identity } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
    return { worker, running: worker.run() };
  };
  try {
    const fresh = await freshDatabase();
    undo.push(fresh.drop);
    const database = connectTestDatabase(fresh.url);
    undo.push(() => database.close());
    const api =
      options.api === false
        ? undefined
        : await startTestApi(settings, {
            databaseUrl: fresh.url,
            logger: logger('api'),
            ...(options.env ? { env: options.env } : {}),
            ...(options.now ? { now: options.now } : {}),
            ...(options.agentDistribution ? { agentDistribution: options.agentDistribution } : {}),
          });
    if (api) undo.push(() => api.close());
    let started = await startWorker(fresh.url, options.workerIdentity);
    undo.push(async () => {
      await started.worker.shutdown();
      await started.running;
    });
    const temporal = await connectTemporal(settings);
    undo.push(() => temporal.close());
    const stack: WorkerStack = {
      settings,
      database,
      worker: started.worker,
      temporal,
      token: (role) => tokenFor(database, role),
      enrollmentKey: (description) => enrollmentKey(database, description),
      async restartWorker(identity) {
        await started.worker.shutdown();
        await started.running;
        started = await startWorker(fresh.url, identity);
        stack.worker = started.worker;
      },
      close,
    };
    return api ? Object.assign(stack, { api, base: api.url.replace('/graphql', '') }) : stack;
  } catch (error) {
    await close();
    throw error;
  }
}

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: Array<{ message: string; path?: string[]; extensions?: { code?: string; field?: string } }>;
}

/** A GraphQL request over real HTTP, as a client would send it. */
export async function graphql<T = Record<string, unknown>>(
  url: string,
  query: string,
  options: { token?: string; variables?: Record<string, unknown> } = {},
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) },
    body: JSON.stringify({ query, variables: options.variables }),
  });
  const body = (await response.json()) as Omit<GraphQLResponse<T>, 'status'>;
  return { status: response.status, ...body };
}

/** Polls `probe` until `done` holds for its value (for hooks, where expect.poll is not allowed). */
export async function waitUntil<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
