import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { DefaultLogger, NativeConnection, Runtime, Worker, makeTelemetryFilterString } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { connectDatabase } from '../db/client.js';
import { createFleetPubSub } from '../events/pubsub.js';
import type { WebhookSettings } from '../config.js';
import type { FleetThresholds } from '../fleet/compliance.js';
import type { Logger } from '../logger.js';
import { activeTracing } from '../telemetry/tracing.js';
import { WebhookDeliverer } from '../webhooks/deliverer.js';
import type { TemporalSettings } from './connection.js';
import { cachedWorkflowBundle } from './workflowBundle.js';

/** src/workflows/index.ts under tests, dist/workflows/index.js once built: the worker bundles it. */
export const workflowsPath = fileURLToPath(
  new URL(`../workflows/index${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
);

export interface FleetWorker {
  worker: Worker;
  /** Resolves when the worker has stopped (after shutdown() or a fatal error). */
  run(): Promise<void>;
  shutdown(): Promise<void>;
}

let runtimeInstalled = false;

/**
 * Routes the SDK's own logs through our logger, once per process, and serves the SDK's metrics
 * (workflow and activity task latencies, slots, sticky cache, polls) in Prometheus text at
 * `http://<metricsAddress>/metrics` when an address is given.
 */
function installRuntime(logger: Logger, metricsAddress: string | undefined): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const levels = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;
  Runtime.install({
    logger: new DefaultLogger('INFO', ({ level, message, meta }) => logger[levels[level]](meta ?? {}, message)),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} },
      ...(metricsAddress ? { metrics: { prometheus: { bindAddress: metricsAddress, countersTotalSuffix: true, useSecondsForDurations: true } } } : {}),
    },
    // Our commands own SIGINT/SIGTERM and stop the worker in order; the SDK's own handlers would
    // shut it down underneath us and re-raise the signal.
    shutdownSignals: [],
  });
}

/**
 * With traces on: spans for every workflow (exported through a sink, as workflow code cannot do
 * I/O), activity and child workflow, joined to the trace that started the workflow. Loaded only
 * then: off, the workflow bundle has no interceptor and the process no SDK.
 */
async function tracingPlugins() {
  const sdk = activeTracing();
  if (!sdk) return [];
  const { OpenTelemetryPlugin } = await import('@temporalio/interceptors-opentelemetry/lib/plugin.js');
  return [new OpenTelemetryPlugin({ resource: sdk.resource, spanProcessor: sdk.processor })];
}

export async function createFleetWorker(options: {
  databaseUrl: string;
  temporal: TemporalSettings;
  logger: Logger;
  identity?: string;
  /** host:port for the SDK's Prometheus metrics; the first worker of the process decides. */
  metricsAddress?: string;
  /** Runs the webhook delivery loop beside the worker (src/webhooks/deliverer.ts); absent: no webhooks are sent by this process. */
  webhooks?: WebhookSettings;
  /** The activities' clock for baseline approvals (tests move it); default the system's. */
  now?: () => Date;
  /** The fleet's thresholds (compliance snapshots judge NOT_ASSESSED by them); default the built-in ones. */
  thresholds?: FleetThresholds;
  /** Days of compliance snapshots the daily workflow keeps (0: for ever); default the built-in 400. */
  historyRetentionDays?: number;
}): Promise<FleetWorker> {
  const { logger } = options;
  installRuntime(logger, options.metricsAddress);
  const database = connectDatabase(options.databaseUrl);
  const pubsub = await createFleetPubSub(database.sql, (error) => logger.warn({ err: error }, 'event delivery failed'));
  const identity = options.identity ?? `${process.pid}@${os.hostname()}`;
  const connection = await NativeConnection.connect({ address: options.temporal.address });
  const plugins = await tracingPlugins();
  const worker = await Worker.create({
    plugins,
    connection,
    namespace: options.temporal.namespace,
    taskQueue: options.temporal.taskQueue,
    identity,
    // With traces on, the plugin adds its interceptors to the bundle it makes at start; without,
    // the bundle made once for this code (cachedWorkflowBundle).
    ...(plugins.length > 0 ? { workflowsPath } : { workflowBundle: await cachedWorkflowBundle(workflowsPath) }),
    activities: createActivities({
      db: database.db,
      pubsub,
      workerIdentity: identity,
      ...(options.now ? { now: options.now } : {}),
      ...(options.thresholds ? { thresholds: options.thresholds } : {}),
      ...(options.historyRetentionDays !== undefined ? { historyRetentionDays: options.historyRetentionDays } : {}),
    }),
    // A cancel reaches an activity only in the answer to its heartbeat: a batched run's advance
    // (heartbeat timeout 10 s, so heartbeats sent every 8 s by default) would go on starting and
    // ending machines for seconds after its run was canceled.
    maxHeartbeatThrottleInterval: '1 second',
  });
  const deliverer = options.webhooks ? new WebhookDeliverer({ db: database.db, sql: database.sql, logger, settings: options.webhooks }) : null;
  let running: Promise<void> | undefined;
  // A stop asked for before the Temporal worker runs (a signal while the delivery loop starts): the
  // SDK's shutdown() only stops a RUNNING worker, and one never run keeps its connection from
  // closing, so run() starts it and stops it at once.
  let stopRequested = false;
  const closeAll = async () => {
    await deliverer?.stop();
    await connection.close();
    await database.close();
  };
  return {
    worker,
    run() {
      running ??= (async () => {
        await deliverer?.start();
        const ran = worker.run();
        if (stopRequested && worker.getState() === 'RUNNING') worker.shutdown();
        await ran;
      })().finally(closeAll);
      return running;
    },
    async shutdown() {
      stopRequested = true;
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}
