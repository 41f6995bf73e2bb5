import { migrateDatabase } from '../db/migrate.js';
import { createFleetWorker, type FleetWorker } from '../temporal/worker.js';
import { startTracing, stopTracing } from '../telemetry/tracing.js';
import { onShutdownSignal, requireSetting, setup } from './runtime.js';

export async function worker(): Promise<void> {
  const { config, logger } = setup('worker');
  const databaseUrl = requireSetting(config.databaseUrl, 'DATABASE_URL', 'worker');
  const address = requireSetting(config.temporalAddress, 'TEMPORAL_ADDRESS', 'worker');
  // Registered before anything starts, so that a signal during start-up is handled too.
  const started: { worker?: FleetWorker } = {};
  onShutdownSignal(logger, async () => {
    await started.worker?.shutdown();
    await stopTracing();
  });
  await startTracing('fleetpatch-worker', logger);
  await migrateDatabase(databaseUrl);
  const fleetWorker = await createFleetWorker({
    databaseUrl,
    temporal: { address, namespace: config.temporalNamespace, taskQueue: config.taskQueue },
    logger,
    metricsAddress: config.workerMetricsAddress,
    webhooks: config.webhooks,
    thresholds: config.thresholds,
    historyRetentionDays: config.historyRetentionDays,
  });
  started.worker = fleetWorker;
  if (config.workerMetricsAddress) logger.info({ url: `http://${config.workerMetricsAddress}/metrics` }, 'worker metrics (Prometheus)');
  logger.info({ taskQueue: config.taskQueue, namespace: config.temporalNamespace }, 'worker polling');
  await fleetWorker.run();
}
