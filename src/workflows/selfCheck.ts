import { proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

const { completeSelfCheck } = proxyActivities<Activities>({
  // A database write: seconds at most. Retried with Temporal's default backoff on transient errors.
  startToCloseTimeout: '30 seconds',
});

export interface SelfCheckInput {
  selfCheckId: string;
  /** How long the check waits on a durable timer before completing (0 for none). */
  waitSeconds: number;
}

/**
 * Proves the chain end to end: a durable timer (which survives a worker being killed) and then an
 * activity that writes to Postgres and publishes an event to subscribers.
 */
export async function selfCheckWorkflow(input: SelfCheckInput): Promise<{ workerIdentity: string }> {
  if (input.waitSeconds > 0) await sleep(input.waitSeconds * 1000);
  return completeSelfCheck(input.selfCheckId);
}
