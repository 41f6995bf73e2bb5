import { patched, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

const { takeScheduledComplianceSnapshot } = proxyActivities<Activities>({
  // One aggregate over the machines in one transaction: seconds at 100k machines (bench/complianceHistory.ts),
  // with room for a loaded database. Retried with Temporal's default backoff: a retry of a snapshot
  // that committed finds its day taken and does nothing.
  startToCloseTimeout: '15 minutes',
});

const { pruneComplianceHistory } = proxyActivities<Activities>({
  // Batches of days, each a short delete: seconds even for years of backlog. A retry deletes what is left.
  startToCloseTimeout: '15 minutes',
});

/**
 * The patch that added retention: runs started by workers from before it (recorded in
 * test/history_files/complianceSnapshot.json) completed after the snapshot and replay without it.
 */
export const RETENTION_PATCH = 'compliance-history-retention';

/**
 * Started once a day by the compliance history schedule: today's snapshot, unless today has one;
 * then the snapshots older than the worker's retention are deleted.
 */
export async function complianceSnapshotWorkflow(): Promise<{ day: string; action: string }> {
  const taken = await takeScheduledComplianceSnapshot();
  if (patched(RETENTION_PATCH)) await pruneComplianceHistory();
  return taken;
}
