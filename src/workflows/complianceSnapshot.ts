import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

const { takeScheduledComplianceSnapshot } = proxyActivities<Activities>({
  // One aggregate over the machines in one transaction: seconds at 100k machines (bench/complianceHistory.ts),
  // with room for a loaded database. Retried with Temporal's default backoff: a retry of a snapshot
  // that committed finds its day taken and does nothing.
  startToCloseTimeout: '15 minutes',
});

/** Started once a day by the compliance history schedule: today's snapshot, unless today has one. */
export async function complianceSnapshotWorkflow(): Promise<{ day: string; action: string }> {
  return takeScheduledComplianceSnapshot();
}
