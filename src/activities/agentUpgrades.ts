import { CompleteAsyncError, Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { UpgradeArtifact, UpgradeCommand, UpgradeReport } from '../domain/types.js';
import { ensureUpgradeCommand, finishAgentUpgrade, findAgentUpgrade, setUpgradeMachineOutcome, upgradeProgress } from '../db/agentUpgrades.js';
import type { Db } from '../db/client.js';
import type { FleetPubSub } from '../events/pubsub.js';
import { BUSY_MAX_ATTEMPTS, BUSY_RETRY_SECONDS, upgradeConcurrency, upgradeFailureThreshold, type AgentUpgradeMachineStatus, type AgentUpgradeStatus } from '../fleet/agentUpgrades.js';

export interface BegunAgentUpgrade {
  /** Machines still to upgrade, in order. */
  pending: string[];
  /** Machines that failed before this workflow run (an upgrade that continued as new). */
  failed: number;
  concurrency: number;
  /** null: no limit. */
  failureThreshold: number | null;
  rollbackAfterSeconds: number;
  busyRetrySeconds: number;
  busyMaxAttempts: number;
}

export function createAgentUpgradeActivities({ db, pubsub }: { db: Db; pubsub: FleetPubSub }) {
  const progress = (upgradeId: string, machineId: string | null) => pubsub.publish('agentUpgradeProgress', upgradeId, { machineId });
  return {
    /** The upgrade's machines still to do and its limits, from PostgreSQL (the workflow keeps no results of its own). */
    async beginAgentUpgrade(input: { upgradeId: string }): Promise<BegunAgentUpgrade> {
      const upgrade = await findAgentUpgrade(db, input.upgradeId);
      if (!upgrade) throw ApplicationFailure.nonRetryable(`Agent upgrade ${input.upgradeId} does not exist.`, 'NOT_FOUND');
      const { pending, failed, total } = await upgradeProgress(db, input.upgradeId);
      const threshold = upgradeFailureThreshold(upgrade.maxFailures, total);
      return {
        pending,
        failed,
        concurrency: upgradeConcurrency(upgrade.maxConcurrent, total),
        failureThreshold: Number.isFinite(threshold) ? threshold : null,
        rollbackAfterSeconds: upgrade.rollbackAfterSeconds,
        busyRetrySeconds: BUSY_RETRY_SECONDS,
        busyMaxAttempts: BUSY_MAX_ATTEMPTS,
      };
    },

    /**
     * Hands the machine's agent its UPGRADE command and returns without completing: the API
     * completes this activity with the agent's report. A retry attaches to the same command (or
     * returns the report that arrived meanwhile); after a BUSY report, a new command is made.
     */
    async dispatchAgentUpgrade(input: { upgradeId: string; machineId: string }): Promise<UpgradeReport> {
      const upgrade = await findAgentUpgrade(db, input.upgradeId);
      if (!upgrade) throw ApplicationFailure.nonRetryable(`Agent upgrade ${input.upgradeId} does not exist.`, 'NOT_FOUND');
      const command: UpgradeCommand = { version: upgrade.toVersion, rollbackAfterSeconds: upgrade.rollbackAfterSeconds, artifacts: upgrade.artifacts as UpgradeArtifact[] };
      const { taskToken: token, attempt } = Context.current().info;
      const taskToken = Buffer.from(token).toString('base64');
      const ensured = await ensureUpgradeCommand(db, { upgradeId: input.upgradeId, machineId: input.machineId, taskToken, command, reoffer: attempt > 1 });
      if (!ensured) throw ApplicationFailure.nonRetryable(`Machine ${input.machineId} is not part of agent upgrade ${input.upgradeId}.`, 'NOT_FOUND');
      if (ensured.result) return ensured.result;
      if (ensured.created || attempt > 1) {
        pubsub.publish('agentCommandQueued', input.machineId, { commandId: ensured.commandId });
        progress(input.upgradeId, input.machineId);
      }
      throw new CompleteAsyncError();
    },

    /** An outcome the server decides: TIMED_OUT (no report in time), SKIPPED (busy every time it was asked). */
    async recordAgentUpgradeOutcome(input: { upgradeId: string; machineId: string; status: AgentUpgradeMachineStatus; code: string; message: string }): Promise<void> {
      await setUpgradeMachineOutcome(db, input.upgradeId, input.machineId, { status: input.status, code: input.code, message: input.message });
      progress(input.upgradeId, input.machineId);
    },

    async finishAgentUpgrade(input: { upgradeId: string; canceled: boolean; notStarted: string[]; notStartedReason: string | null }): Promise<AgentUpgradeStatus> {
      const status = await finishAgentUpgrade(db, input.upgradeId, input);
      progress(input.upgradeId, null);
      return status;
    },
  };
}
