import { migrateDatabase } from '../db/migrate.js';
import { createFleetWorker } from '../temporal/worker.js';
import { onShutdownSignal, requireSetting, setup } from './runtime.js';

export async function worker(): Promise<void> {
  const { config, logger } = setup('worker');
  const databaseUrl = requireSetting(config.databaseUrl, 'DATABASE_URL', 'worker');
  const address = requireSetting(config.temporalAddress, 'TEMPORAL_ADDRESS', 'worker');
  await migrateDatabase(databaseUrl);
  const fleetWorker = await createFleetWorker({
    databaseUrl,
    temporal: { address, namespace: config.temporalNamespace, taskQueue: config.taskQueue },
    logger,
    metricsAddress: config.workerMetricsAddress,
  });
  onShutdownSignal(logger, () => fleetWorker.shutdown());
  if (config.workerMetricsAddress) logger.info({ url: `http://${config.workerMetricsAddress}/metrics` }, 'worker metrics (Prometheus)');
  logger.info({ taskQueue: config.taskQueue, namespace: config.temporalNamespace }, 'worker polling');
  await fleetWorker.run();
}
