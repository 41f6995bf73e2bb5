import { pruneComplianceHistory, takeComplianceSnapshot } from '../db/complianceHistory.js';
import { DEFAULT_THRESHOLDS } from '../fleet/compliance.js';
import { DEFAULT_HISTORY_RETENTION_DAYS, PRUNE_BATCH_DAYS, retentionCutoff } from '../fleet/complianceHistory.js';
import type { ActivityDeps } from './index.js';

export function createComplianceHistoryActivities(deps: ActivityDeps) {
  return {
    /** The day's snapshot, once: a second worker, or a retry after a commit whose answer was lost, finds the day taken. */
    async takeScheduledComplianceSnapshot(): Promise<{ day: string; action: string }> {
      const outcome = await takeComplianceSnapshot(deps.db, { now: deps.now?.() ?? new Date(), thresholds: deps.thresholds ?? DEFAULT_THRESHOLDS, trigger: 'SCHEDULE' });
      return { day: outcome.day, action: outcome.action };
    },

    /**
     * Deletes the snapshots older than the worker's retention (FLEETPATCH_HISTORY_RETENTION_DAYS; 0
     * keeps them for ever), in batches of days. A retry deletes what is left.
     */
    async pruneComplianceHistory(): Promise<{ keptFrom: string | null; days: number; rows: number }> {
      const keptFrom = retentionCutoff(deps.now?.() ?? new Date(), deps.historyRetentionDays ?? DEFAULT_HISTORY_RETENTION_DAYS);
      if (keptFrom === null) return { keptFrom, days: 0, rows: 0 };
      return { keptFrom, ...(await pruneComplianceHistory(deps.db, keptFrom, PRUNE_BATCH_DAYS)) };
    },
  };
}
