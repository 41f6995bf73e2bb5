import fs from 'node:fs';
import path from 'node:path';
import { startApiServer, type ApiServer } from '../api/server.js';
import { connectDatabase } from '../db/client.js';
import { migrateDatabase } from '../db/migrate.js';
import { ensureAdminToken } from '../devstack/adminToken.js';
import { startLocalAgent } from '../devstack/localAgent.js';
import { startEmbeddedPostgres } from '../devstack/embeddedPostgres.js';
import { supervise } from '../devstack/supervisor.js';
import { ensureTemporalCli } from '../devstack/temporalCli.js';
import { startTemporalDevServer } from '../devstack/temporalDevServer.js';
import { assertPortFree } from '../net.js';
import { createFleetWorker, type FleetWorker } from '../temporal/worker.js';
import { startTracing, stopTracing } from '../telemetry/tracing.js';
import { removeDevEnv, writeDevEnv } from './devEnv.js';
import { onShutdownSignal, setup } from './runtime.js';

/** Enough of a token to tell which one it is, too little to use it. */
export function tokenPrefix(token: string): string {
  return `${token.slice(0, 8)}…`;
}

/**
 * Everything on one machine, on the embedded default: what `npm start` runs. Parts that are
 * configured (DATABASE_URL, TEMPORAL_ADDRESS) are used as they are; the others are started here,
 * watched (one that dies is started again), and stopped on Ctrl-C or one SIGTERM, in order. A
 * second start reuses the data folder.
 */
export async function dev(): Promise<void> {
  const started = Date.now();
  const { config, logger } = setup('dev');
  const host = process.env.HOST ?? '127.0.0.1';
  const say = (line: string) => process.stderr.write(`${line}\n`);
  fs.mkdirSync(config.dataDir, { recursive: true });
  say(`fleetpatch dev: data in ${config.dataDir}`);

  const stops: Array<() => Promise<void>> = [];
  const watchers: Array<{ stop(): void }> = [];
  let stopping: Promise<void> | undefined;
  const stopAll = () =>
    (stopping ??= (async () => {
      for (const watcher of watchers) watcher.stop();
      for (const stop of stops.reverse()) await stop().catch((error: unknown) => logger.warn({ err: error }, 'error while stopping'));
    })());
  // Before anything starts: a signal during start-up stops what has started so far. A second
  // signal leaves the rest to the exit hooks of the child processes, which kill them.
  onShutdownSignal(logger, stopAll);
  const giveUp = (reason: string) => {
    if (stopping) return;
    say(`fleetpatch dev: ${reason}: stopping everything.`);
    void stopAll().finally(() => process.exit(1));
  };

  try {
    // Check our own port first: failing after starting two servers would waste a newcomer's minute.
    await assertPortFree(config.port, host, 'GraphQL API', 'PORT');

    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      say(`Starting PostgreSQL (embedded) on 127.0.0.1:${config.devPostgresPort}...`);
      const pg = await startEmbeddedPostgres({ dir: path.join(config.dataDir, 'postgres'), port: config.devPostgresPort, database: 'fleetpatch', logger, say });
      stops.push(pg.stop);
      watchers.push(supervise(pg, { name: 'PostgreSQL', say, logger, giveUp }));
      databaseUrl = pg.url;
    }

    let temporalAddress = config.temporalAddress;
    let temporalUi: string | undefined;
    if (!temporalAddress) {
      const cliPath = await ensureTemporalCli(say);
      say(`Starting Temporal (dev server, ${cliPath}) on 127.0.0.1:${config.devTemporalPort}...`);
      const temporal = await startTemporalDevServer({
        cliPath,
        ip: '127.0.0.1',
        port: config.devTemporalPort,
        uiPort: config.devTemporalUiPort,
        headless: false,
        namespace: config.temporalNamespace,
        dbFile: path.join(config.dataDir, 'temporal.sqlite'),
        logger,
      });
      stops.push(temporal.stop);
      watchers.push(supervise(temporal, { name: 'the Temporal dev server', say, logger, giveUp }));
      temporalAddress = temporal.address;
      temporalUi = temporal.uiUrl;
    }

    say('Applying database migrations...');
    const { applied } = await migrateDatabase(databaseUrl);
    if (applied > 0) say(`  applied ${applied} migration(s)`);

    const temporalSettings = { address: temporalAddress, namespace: config.temporalNamespace, taskQueue: config.taskQueue };
    // FLEETPATCH_DEV_WORKER=false: no worker here, so that a `fleetpatch worker` run against this
    // stack (under a debugger, say) is the only one that takes its tasks.
    const withWorker = process.env.FLEETPATCH_DEV_WORKER !== 'false';
    // Pushed first, so stopped last: the spans of everything else stopping still go out.
    if (await startTracing('fleetpatch', logger)) stops.push(stopTracing);
    say(withWorker ? 'Starting the worker and the API...' : 'Starting the API (no worker: FLEETPATCH_DEV_WORKER=false)...');
    if (withWorker) {
      const worker: FleetWorker = await createFleetWorker({
        databaseUrl,
        temporal: temporalSettings,
        logger,
        webhooks: config.webhooks,
        thresholds: config.thresholds,
        historyRetentionDays: config.historyRetentionDays,
      });
      const workerDone = worker.run();
      stops.push(() => worker.shutdown());
      workerDone.catch((error: unknown) => logger.error({ err: error }, 'worker stopped with an error'));
    }

    const api: ApiServer = await startApiServer({
      databaseUrl,
      temporal: temporalSettings,
      port: config.port,
      host,
      logger,
      sandbox: true,
      fleet: config,
      limits: config.limits,
      agentDistribution: { distDir: config.agentDistDir, releaseKeyFile: config.releaseKeyFile, publicUrl: config.publicUrl },
    });
    stops.push(() => api.close());

    const database = connectDatabase(databaseUrl, { max: 2 });
    stops.push(() => database.close());
    const admin = await ensureAdminToken(database.db, config.dataDir);
    // FLEETPATCH_DEV_AGENT=false leaves this machine out (tests that do not want the host's apt run).
    const agent = process.env.FLEETPATCH_DEV_AGENT === 'false' ? undefined : await startLocalAgent({ db: database.db, dataDir: config.dataDir, serverUrl: api.url.replace('/graphql', ''), logger });
    if (agent) stops.push(() => agent.stop());

    const envFile = writeDevEnv({ pid: process.pid, dataDir: config.dataDir, databaseUrl, temporalAddress, namespace: config.temporalNamespace, taskQueue: config.taskQueue, apiUrl: api.url, worker: withWorker });
    stops.push(async () => removeDevEnv(config.dataDir, process.pid));

    say('');
    say(`fleetpatch is ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    say(`  Console:      ${api.url.replace(/\/graphql$/, '/')}   (sign in with the admin token)`);
    say(`  GraphQL:      ${api.url}   (subscriptions: ${api.url.replace(/^http/, 'ws')})`);
    if (temporalUi) say(`  Temporal UI:  ${temporalUi}`);
    say(`  Admin token:  ${tokenPrefix(admin.token)}  (${admin.created ? 'new; ' : ''}the whole token is in ${admin.file}; send it as "Authorization: Bearer <token>")`);
    say(`  PostgreSQL:   ${databaseUrl.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:…@')}`);
    say(`  Temporal:     ${temporalAddress} (namespace ${config.temporalNamespace}, task queue ${config.taskQueue})`);
    say(`  Your own server or worker against this stack: eval "$(fleetpatch dev --print-env)" (also in ${envFile}).`);
    say(
      withWorker
        ? '                This process runs a worker on that task queue too: start it with FLEETPATCH_DEV_WORKER=false to have only yours.'
        : '                This process runs no worker: start `fleetpatch worker` with those variables, or no workflow moves.',
    );
    if (agent) say('  This machine: its agent (assess-only) is enrolling and assessing; query `machines` in a few seconds.');
    say('Press Ctrl-C to stop.');
  } catch (error) {
    await stopAll();
    throw error;
  }
}
