import type { AgentTimings, RunTimings } from '../config.js';
import type { Database } from '../db/client.js';
import type { FleetThresholds } from '../fleet/compliance.js';
import type { FleetPubSub } from '../events/pubsub.js';
import type { Logger } from '../logger.js';
import type { TemporalClient } from '../temporal/connection.js';
import type { Principal } from './auth.js';
import type { AgentDistribution } from './agentInstall/distribution.js';
import type { TableStatistics } from './machines/tableStatisticsUpkeep.js';

/** What every resolver receives: who is asking, and the services it may call. */
export interface ApiContext {
  principal: Principal | null;
  services: ApiServices;
  /** The client's address as the server saw it (for the audit log). */
  sourceAddress?: string | null;
  /** The address the client reached this server at (scheme and Host), for install commands. */
  origin?: string;
}

export interface ApiServices {
  database: Database;
  temporal: TemporalClient;
  pubsub: FleetPubSub;
  logger: Logger;
  fleet: FleetSettings;
  /** The clock every verdict (compliance, readiness, key expiry) is computed against. */
  now: () => Date;
  /** The agent release, release key and public address this API offers; absent: none (nothing to install or upgrade to). */
  agentDistribution?: AgentDistribution;
  /** Told when a request grew a table the agents' statements depend on (src/api/machines/tableStatisticsUpkeep.ts); absent: nothing is told. */
  statistics?: TableStatistics;
}

export interface FleetSettings {
  thresholds: FleetThresholds;
  agentTimings: AgentTimings;
  runTimings: RunTimings;
}
