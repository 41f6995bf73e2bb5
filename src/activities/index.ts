import { ApplicationFailure } from '@temporalio/common';
import type { Db } from '../db/client.js';
import { completeSelfCheck } from '../db/selfChecks.js';
import type { FleetPubSub } from '../events/pubsub.js';
import type { FleetThresholds } from '../fleet/compliance.js';

import { createAgentUpgradeActivities } from './agentUpgrades.js';
import { createBatchedRunActivities } from './batchedRuns.js';
import { createComplianceHistoryActivities } from './complianceHistory.js';
import { createDeploymentActivities } from './deployments.js';
import { createStepCalls } from './steps.js';

export interface ActivityDeps {
  db: Db;
  pubsub: FleetPubSub;
  /** The worker's identity, recorded with what it completes. */
  workerIdentity: string;
  /** The clock baselines' approvals are judged by when runs are planned; default the system's. */
  now?: () => Date;
  /** When an assessment is too old to judge by, for the compliance snapshots; default the built-in thresholds. */
  thresholds?: FleetThresholds;
  /** Days of compliance snapshots kept (0: for ever); default DEFAULT_HISTORY_RETENTION_DAYS. */
  historyRetentionDays?: number;
}

/** The I/O steps workflows call. Dependencies come in here, so tests can hand in their own. */
export function createActivities(deps: ActivityDeps) {
  const deployments = createDeploymentActivities(deps);
  return {
    ...deployments,
    ...createBatchedRunActivities(deps, deployments.finishMachineRun, { skipSteps: deployments.skipSteps, runPageStepCalls: createStepCalls(deps).runPageStepCalls }),
    ...createAgentUpgradeActivities(deps),
    ...createComplianceHistoryActivities(deps),
    async completeSelfCheck(selfCheckId: string): Promise<{ workerIdentity: string }> {
      const row = await completeSelfCheck(deps.db, selfCheckId, deps.workerIdentity);
      if (!row) throw ApplicationFailure.nonRetryable(`self-check ${selfCheckId} does not exist`, 'NOT_FOUND');
      deps.pubsub.publish('selfCheckCompleted', { selfCheckId });
      return { workerIdentity: row.workerIdentity ?? deps.workerIdentity };
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type DeploymentActivities = ReturnType<typeof createDeploymentActivities>;
export type BatchedRunActivities = ReturnType<typeof createBatchedRunActivities>;
export type AgentUpgradeActivities = ReturnType<typeof createAgentUpgradeActivities>;
