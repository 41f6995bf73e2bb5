import { takeComplianceSnapshot } from '../db/complianceHistory.js';
import { DEFAULT_THRESHOLDS } from '../fleet/compliance.js';
import type { ActivityDeps } from './index.js';

export function createComplianceHistoryActivities(deps: ActivityDeps) {
  return {
    /** The day's snapshot, once: a second worker, or a retry after a commit whose answer was lost, finds the day taken. */
    async takeScheduledComplianceSnapshot(): Promise<{ day: string; action: string }> {
      const outcome = await takeComplianceSnapshot(deps.db, { now: deps.now?.() ?? new Date(), thresholds: deps.thresholds ?? DEFAULT_THRESHOLDS, trigger: 'SCHEDULE' });
      return { day: outcome.day, action: outcome.action };
    },
  };
}
