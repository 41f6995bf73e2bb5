import { startApiServer, type ApiServer } from '../api/server.js';
import { migrateDatabase } from '../db/migrate.js';
import { startTracing, stopTracing } from '../telemetry/tracing.js';
import { onShutdownSignal, requireSetting, setup } from './runtime.js';

export async function server(): Promise<void> {
  const { config, logger } = setup('server');
  const databaseUrl = requireSetting(config.databaseUrl, 'DATABASE_URL', 'server');
  const address = requireSetting(config.temporalAddress, 'TEMPORAL_ADDRESS', 'server');
  // Registered before anything starts, so that a signal during start-up is handled too.
  const started: { api?: ApiServer } = {};
  onShutdownSignal(logger, async () => {
    await started.api?.close();
    await stopTracing();
  });
  await startTracing('fleetpatch-server', logger);
  await migrateDatabase(databaseUrl);
  started.api = await startApiServer({
    databaseUrl,
    temporal: { address, namespace: config.temporalNamespace, taskQueue: config.taskQueue },
    port: config.port,
    host: config.host,
    logger,
    sandbox: process.env.NODE_ENV !== 'production',
    fleet: config,
    limits: config.limits,
    tls: config.tls,
    agentDistribution: { distDir: config.agentDistDir, releaseKeyFile: config.releaseKeyFile, publicUrl: config.publicUrl },
  });
}
