import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultDisconnectedAfterMs, type FleetThresholds } from './fleet/compliance.js';
import { DEFAULT_HISTORY_RETENTION_DAYS } from './fleet/complianceHistory.js';
import { DEFAULT_RETRY_DELAYS_SECONDS } from './fleet/webhooks.js';
import { parseNetworks } from './webhooks/addressPolicy.js';

/**
 * Every setting fleetpatch reads from the environment, in one place.
 * docs/configuration.md lists the same names.
 */
export interface Config {
  /** PostgreSQL URL. Unset under `fleetpatch dev`: a private embedded PostgreSQL is started. */
  databaseUrl: string | undefined;
  /** Temporal frontend host:port. Unset under `fleetpatch dev`: a local Temporal dev server is started. */
  temporalAddress: string | undefined;
  temporalNamespace: string;
  /** Task queue shared by the worker and the clients that start workflows. */
  taskQueue: string;
  /** host:port where the worker serves the Temporal SDK's Prometheus metrics (/metrics); unset: not served. */
  workerMetricsAddress: string | undefined;
  /** HTTP port of the API (GraphQL, subscriptions, agent endpoint, health). */
  port: number;
  /** Interface the API listens on. */
  host: string;
  /** Where `fleetpatch dev` keeps its database, Temporal's SQLite file and the admin token. */
  dataDir: string;
  /** Ports of the processes `fleetpatch dev` starts itself. */
  devPostgresPort: number;
  devTemporalPort: number;
  devTemporalUiPort: number;
  /** Explicit path of the Temporal CLI binary (otherwise PATH, then the build cache). */
  temporalCliPath: string | undefined;
  logLevel: string;
  logFormat: 'json' | 'pretty';
  /** When a machine counts as NOT_ASSESSED or DISCONNECTED. */
  thresholds: FleetThresholds;
  /** Timings handed to every agent at check-in. */
  agentTimings: AgentTimings;
  /** How long a run waits for signs of life from a machine. */
  runTimings: RunTimings;
  /** What one client may ask of the API. */
  limits: ApiLimits;
  /** How old the fleet view's fleet-wide aggregates may be. */
  /** HTTPS for the API: PEM files of the certificate (chain) and its key. Unset: plain HTTP. */
  tls: { certFile: string; keyFile: string } | undefined;
  /**
   * The address machines reach the server at (https://fleetpatch.example.com), for the install
   * commands and scripts. Unset: taken from each request's Host header.
   */
  publicUrl: string | undefined;
  /** Where the agent executables and packages the server offers are (dist/executables, dist/packages under it). */
  agentDistDir: string;
  /** The release signing key (src/release/signingKey.ts): `<dataDir>/release-key.json` unless set. */
  releaseKeyFile: string;
  /** How the worker delivers webhooks (docs/webhooks.md). */
  webhooks: WebhookSettings;
  /** Days of compliance snapshots the daily snapshot workflow keeps, today included; 0 keeps them for ever. */
  historyRetentionDays: number;
}

export interface WebhookSettings {
  /** Networks (CIDR) webhooks may reach although they are not public (src/webhooks/addressPolicy.ts). */
  allowedNetworks: Array<{ address: string; prefix: number; family: 'ipv4' | 'ipv6' }>;
  /** Deliveries in flight at once, per worker process. */
  concurrency: number;
  /** One attempt's limit, from connecting to the answer. */
  timeoutMs: number;
  /** Seconds between attempts (src/fleet/webhooks.ts has the default schedule). */
  retryDelaysSeconds: readonly number[];
  /** How often the loop looks for due deliveries when no NOTIFY wakes it. */
  pollMs: number;
  /** How often machines are checked against the disconnected and non-compliant thresholds. */
  thresholdScanMs: number;
}

/** Per-client limits. A rate of 0 turns that limit off (a load test, a simulator of many agents). */
export interface ApiLimits {
  /** GraphQL requests per minute per API token (or per address without one). */
  apiRequestsPerMinute: number;
  /** Agent endpoint requests per minute per machine credential. */
  agentRequestsPerMinute: number;
  /** Enrollment attempts per minute per source address. */
  enrollmentsPerMinute: number;
  /** Deepest selection nesting a GraphQL operation may have. */
  graphqlMaxDepth: number;
  /** Highest estimated cost (fields times page sizes) a GraphQL operation may have. */
  graphqlMaxCost: number;
  /** Most fields under another name (aliases) in one GraphQL operation. */
  graphqlMaxAliases: number;
  /** Most tokens in a GraphQL document: past it the parser stops. */
  graphqlMaxTokens: number;
  /** Largest GraphQL answer over HTTP, in bytes. */
  graphqlMaxResponseBytes: number;
  /** Most subscriptions open on one WebSocket; 0: no limit. */
  subscriptionsPerSocket: number;
  /** Most subscription WebSockets open at once with one API token, per API process; 0: no limit. */
  socketsPerToken: number;
}

export interface RunTimings {
  /** An agent silent this long during an install is taken as gone. */
  installHeartbeatSeconds: number;
  /** A machine not back this long after its reboot fails its machine run. */
  rebootTimeoutSeconds: number;
  /** An agent busy with an install job when asked to upgrade is asked again this much later. */
  upgradeBusyRetrySeconds?: number;
  /** A batched run's machines ended per advance (unset: src/fleet/batchedRun.ts's default; tests make it tiny). */
  runBatchMachines?: number;
  /** A batched run's history events before it continues as new (unset: src/fleet/batchedRun.ts's default). */
  runHistoryEvents?: number;
  /** A batched run's machines planned per page (unset: src/fleet/batchedRun.ts's default; tests make it tiny). */
  runPlanMachines?: number;
  /** A run with steps: machines' child workflows per execution before it continues as new (FLEETPATCH_RUN_STEP_CHILDREN; default RUN_STEP_CHILDREN). */
  runStepChildren?: number;
  /** New runs with scripts run a child workflow per machine, as runs begun before their scripts were batched still do (FLEETPATCH_RUN_MACHINE_WORKFLOWS=1; tests of that path). */
  runMachineWorkflows?: boolean;
}

export interface AgentTimings {
  checkInSeconds: number;
  /** Full assessment cadence per OS (seed: every 3 hours on Linux, twice a day on Windows). */
  assessmentSeconds: { LINUX: number; WINDOWS: number };
  /** How often an agent looks for a changed package database (seed: every 15 minutes). */
  packageDatabaseCheckSeconds: number;
  longPollSeconds: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) {
    throw new ConfigError(`${name}=${raw} is not a port number (0-65535)`);
  }
  return value;
}

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new ConfigError(`${name}=${raw} is not a positive number`);
  return value;
}

function nonNegativeInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new ConfigError(`${name}=${raw} is not a whole number (0 or more)`);
  return value;
}

function tlsFiles(env: NodeJS.ProcessEnv): Config['tls'] {
  const certFile = nonEmpty(env.FLEETPATCH_TLS_CERT);
  const keyFile = nonEmpty(env.FLEETPATCH_TLS_KEY);
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) {
    throw new ConfigError(`HTTPS needs both FLEETPATCH_TLS_CERT and FLEETPATCH_TLS_KEY (PEM files); only ${certFile ? 'FLEETPATCH_TLS_CERT' : 'FLEETPATCH_TLS_KEY'} is set.`);
  }
  return { certFile: path.resolve(certFile), keyFile: path.resolve(keyFile) };
}

/** The repository's dist/ folder, wherever this module runs from (src/ under tests, dist/ once built). */
const DEFAULT_AGENT_DIST = fileURLToPath(new URL('../dist', import.meta.url));

function publicUrl(env: NodeJS.ProcessEnv): string | undefined {
  const raw = nonEmpty(env.FLEETPATCH_PUBLIC_URL);
  if (raw === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`FLEETPATCH_PUBLIC_URL=${raw} is not a URL; give the address machines reach the server at, e.g. https://fleetpatch.example.com`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username || url.password) {
    throw new ConfigError(`FLEETPATCH_PUBLIC_URL=${raw} must be a plain http:// or https:// address, e.g. https://fleetpatch.example.com`);
  }
  if (/[^A-Za-z0-9.:/_~%[\]-]/.test(url.href)) throw new ConfigError(`FLEETPATCH_PUBLIC_URL=${raw} holds characters the install commands cannot carry`);
  return url.href.replace(/\/+$/, '');
}

function webhookSettings(env: NodeJS.ProcessEnv): WebhookSettings {
  let allowedNetworks: WebhookSettings['allowedNetworks'];
  try {
    allowedNetworks = parseNetworks(env.FLEETPATCH_WEBHOOK_ALLOWED_NETWORKS ?? '');
  } catch (error) {
    throw new ConfigError(`FLEETPATCH_WEBHOOK_ALLOWED_NETWORKS: ${(error as Error).message}`);
  }
  const delays = nonEmpty(env.FLEETPATCH_WEBHOOK_RETRY_DELAYS);
  const retryDelaysSeconds = delays === undefined ? DEFAULT_RETRY_DELAYS_SECONDS : delays.split(',').map((d) => Number(d.trim()));
  if (retryDelaysSeconds.some((d) => !Number.isFinite(d) || d < 0)) {
    throw new ConfigError(`FLEETPATCH_WEBHOOK_RETRY_DELAYS=${delays} is not a list of seconds (e.g. 10,30,60)`);
  }
  return {
    allowedNetworks,
    // Eight slow receivers at their timeout still leave the worker's own work alone.
    concurrency: Math.max(1, Math.floor(positive(env, 'FLEETPATCH_WEBHOOK_CONCURRENCY', 8))),
    // Receivers are asked to answer at once and work later; ten seconds is what GitHub allows.
    timeoutMs: positive(env, 'FLEETPATCH_WEBHOOK_TIMEOUT_SECONDS', 10) * 1000,
    retryDelaysSeconds,
    // NOTIFY wakes the loop for new events; the poll covers retries and a lost NOTIFY.
    pollMs: positive(env, 'FLEETPATCH_WEBHOOK_POLL_SECONDS', 5) * 1000,
    thresholdScanMs: positive(env, 'FLEETPATCH_WEBHOOK_SCAN_SECONDS', 60) * 1000,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const logFormat = env.LOG_FORMAT ?? (env.NODE_ENV === 'production' ? 'json' : undefined);
  if (logFormat !== undefined && logFormat !== 'json' && logFormat !== 'pretty') {
    throw new ConfigError(`LOG_FORMAT=${logFormat} is not one of json, pretty`);
  }
  const temporalPort = port(env, 'FLEETPATCH_TEMPORAL_PORT', 7233);
  const linuxMinutes = positive(env, 'FLEETPATCH_LINUX_ASSESSMENT_MINUTES', 180);
  const windowsMinutes = positive(env, 'FLEETPATCH_WINDOWS_ASSESSMENT_MINUTES', 720);
  const checkInSeconds = positive(env, 'FLEETPATCH_CHECKIN_SECONDS', 60);
  const dataDir = path.resolve(nonEmpty(env.FLEETPATCH_DATA_DIR) ?? '.fleetpatch');
  return {
    databaseUrl: nonEmpty(env.DATABASE_URL),
    temporalAddress: nonEmpty(env.TEMPORAL_ADDRESS),
    temporalNamespace: nonEmpty(env.TEMPORAL_NAMESPACE) ?? 'default',
    taskQueue: nonEmpty(env.FLEETPATCH_TASK_QUEUE) ?? 'fleetpatch',
    workerMetricsAddress: nonEmpty(env.FLEETPATCH_WORKER_METRICS_ADDRESS),
    port: port(env, 'PORT', 4000),
    host: nonEmpty(env.HOST) ?? '0.0.0.0',
    dataDir,
    devPostgresPort: port(env, 'FLEETPATCH_POSTGRES_PORT', 54329),
    devTemporalPort: temporalPort,
    devTemporalUiPort: port(env, 'FLEETPATCH_TEMPORAL_UI_PORT', temporalPort + 1000),
    temporalCliPath: nonEmpty(env.TEMPORAL_CLI_PATH),
    logLevel: nonEmpty(env.LOG_LEVEL) ?? 'info',
    logFormat: logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json'),
    thresholds: {
      // The seed's "expected timeframe" is the assessment cadence itself.
      assessmentMaxAgeMs: { LINUX: linuxMinutes * 60_000, WINDOWS: windowsMinutes * 60_000 },
      // Three missed check-ins, counted from the oldest a live agent's stored last-seen time gets.
      disconnectedAfterMs: positive(env, 'FLEETPATCH_DISCONNECTED_AFTER_SECONDS', defaultDisconnectedAfterMs(checkInSeconds) / 1000) * 1000,
    },
    agentTimings: {
      checkInSeconds,
      assessmentSeconds: { LINUX: linuxMinutes * 60, WINDOWS: windowsMinutes * 60 },
      packageDatabaseCheckSeconds: positive(env, 'FLEETPATCH_PACKAGE_DB_CHECK_SECONDS', 900),
      longPollSeconds: positive(env, 'FLEETPATCH_LONG_POLL_SECONDS', 25),
    },
    runTimings: {
      // Agents send progress at least every 15 s while a job runs: eight missed beats.
      installHeartbeatSeconds: positive(env, 'FLEETPATCH_INSTALL_HEARTBEAT_SECONDS', 120),
      // Servers with many disks or slow firmware take minutes to boot.
      rebootTimeoutSeconds: positive(env, 'FLEETPATCH_REBOOT_TIMEOUT_SECONDS', 900),
      // Install jobs take minutes: asking every minute finds the gap between two soon enough.
      upgradeBusyRetrySeconds: positive(env, 'FLEETPATCH_UPGRADE_BUSY_RETRY_SECONDS', 60),
      // Tunables for tests and benchmarks: only what is set goes into a run's input, so a run takes
      // the code's defaults otherwise (schedules keep the input they were created with).
      ...(env.FLEETPATCH_RUN_BATCH_MACHINES ? { runBatchMachines: positive(env, 'FLEETPATCH_RUN_BATCH_MACHINES', 1) } : {}),
      ...(env.FLEETPATCH_RUN_HISTORY_EVENTS ? { runHistoryEvents: positive(env, 'FLEETPATCH_RUN_HISTORY_EVENTS', 1) } : {}),
      ...(env.FLEETPATCH_RUN_PLAN_MACHINES ? { runPlanMachines: positive(env, 'FLEETPATCH_RUN_PLAN_MACHINES', 1) } : {}),
      ...(env.FLEETPATCH_RUN_STEP_CHILDREN ? { runStepChildren: positive(env, 'FLEETPATCH_RUN_STEP_CHILDREN', 1) } : {}),
      ...(env.FLEETPATCH_RUN_MACHINE_WORKFLOWS === '1' ? { runMachineWorkflows: true } : {}),
    },
    limits: {
      // Twenty a second: above a console's or a script's polling (tests poll every 50 ms), well below a flood.
      apiRequestsPerMinute: nonNegativeInteger(env, 'FLEETPATCH_API_RATE_LIMIT', 1200),
      // An agent sends about two a second while it streams a job's output, far fewer otherwise.
      agentRequestsPerMinute: nonNegativeInteger(env, 'FLEETPATCH_AGENT_RATE_LIMIT', 600),
      // A rollout behind one NAT enrolls many machines from one address: generous, but bounded
      // so that enrollment keys cannot be guessed at speed.
      enrollmentsPerMinute: nonNegativeInteger(env, 'FLEETPATCH_ENROLL_RATE_LIMIT', 300),
      graphqlMaxDepth: positive(env, 'FLEETPATCH_GRAPHQL_MAX_DEPTH', 12),
      graphqlMaxCost: positive(env, 'FLEETPATCH_GRAPHQL_MAX_COST', 50_000),
      // Nothing the console sends uses one; a script may look up a few dozen machines at once.
      graphqlMaxAliases: positive(env, 'FLEETPATCH_GRAPHQL_MAX_ALIASES', 100),
      // The console's largest document has about 150, a full introspection query about 180, a
      // deployment or assessMachines naming its 1,000 machines inline about 1,100. Validation takes
      // time in proportion (BENCHMARKS.md, "GraphQL validation"), in the event loop.
      graphqlMaxTokens: positive(env, 'FLEETPATCH_GRAPHQL_MAX_TOKENS', 5000),
      graphqlMaxResponseBytes: positive(env, 'FLEETPATCH_GRAPHQL_MAX_RESPONSE_MB', 32) * 1024 * 1024,
      // The console holds two or three at once; each one is a fan-out of every matching event.
      subscriptionsPerSocket: nonNegativeInteger(env, 'FLEETPATCH_SUBSCRIPTIONS_PER_SOCKET', 50),
      // A console tab is one socket.
      socketsPerToken: nonNegativeInteger(env, 'FLEETPATCH_SOCKETS_PER_TOKEN', 20),
    },
    tls: tlsFiles(env),
    publicUrl: publicUrl(env),
    agentDistDir: path.resolve(nonEmpty(env.FLEETPATCH_AGENT_DIST_DIR) ?? DEFAULT_AGENT_DIST),
    releaseKeyFile: path.resolve(nonEmpty(env.FLEETPATCH_RELEASE_KEY_FILE) ?? path.join(dataDir, 'release-key.json')),
    webhooks: webhookSettings(env),
    historyRetentionDays: nonNegativeInteger(env, 'FLEETPATCH_HISTORY_RETENTION_DAYS', DEFAULT_HISTORY_RETENTION_DAYS),
  };
}

/** Where control-plane steps find their secrets: FLEETPATCH_STEP_SECRET_<NAME>=value. */
export const STEP_SECRET_PREFIX = 'FLEETPATCH_STEP_SECRET_';

/**
 * The server-side secrets of control-plane steps, by name. The API reads only their names (to
 * refuse a step that names one the server does not have); the worker reads the values when it
 * makes a call. Set the same variables on both.
 */
export function stepSecrets(env: NodeJS.ProcessEnv = process.env): Map<string, string> {
  const secrets = new Map<string, string>();
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith(STEP_SECRET_PREFIX) && key.length > STEP_SECRET_PREFIX.length && value !== undefined && value !== '') secrets.set(key.slice(STEP_SECRET_PREFIX.length), value);
  }
  return secrets;
}

export function stepSecretNames(env: NodeJS.ProcessEnv = process.env): Set<string> {
  return new Set(stepSecrets(env).keys());
}
