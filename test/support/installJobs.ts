import { randomUUID } from 'node:crypto';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import type { InstallJob } from '../../src/agent/protocol.js';
import type { Database } from '../../src/db/client.js';
import { insertDeployment } from '../../src/db/deployments.js';
import { beginRun, ensureRun, handOverInstallJob } from '../../src/db/runs.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';

/** The machine an install job is for, and what the job asks of it. */
export interface InstallJobSpec {
  machineId: string;
  machineName: string;
  /** The deployment's name (unique per database); a random one when absent. */
  deployment?: string;
  /** Installed in this order; openssl (SECURITY) when absent. */
  updates?: PendingUpdate[];
  rebootSetting?: InstallJob['rebootSetting'];
}

/** The install job handed over, as its agent receives it. */
export interface HandedOverJob {
  jobId: string;
  machineRunId: string;
  job: InstallJob;
}

/**
 * An install job for one machine, through the steps a deployment run takes minus Temporal (no task
 * token): the deployment, its run, the machine's run with its updates, the job handed over. For tests
 * whose subject is what the agent endpoint does with a job, not how a run hands it out.
 */
export async function handOverTestInstallJob(database: Database, spec: InstallJobSpec): Promise<HandedOverJob> {
  const updates = spec.updates ?? [pendingUpdate({ name: 'openssl', classification: 'SECURITY' })];
  const rebootSetting = spec.rebootSetting ?? 'NEVER';
  const deployment = await insertDeployment(database.db, {
    name: spec.deployment ?? `install job ${randomUUID()}`,
    osType: 'LINUX',
    machineIds: [spec.machineId],
    classifications: ['SECURITY'],
    schedule: { startAt: new Date().toISOString(), timeZone: 'UTC', recurrence: null },
    windowMinutes: 60,
    rebootSetting,
  });
  if (deployment === 'NAME_TAKEN') throw new Error(`a deployment named ${spec.deployment} exists already`);
  const { run } = await ensureRun(database.db, { deploymentId: deployment.id, workflowId: `deployment-run:${randomUUID()}`, trigger: 'MANUAL' });
  const deadline = new Date(Date.now() + 3_600_000);
  const {
    machines: [machineRun],
  } = await beginRun(database.db, run.id, deadline, [
    {
      machineId: spec.machineId,
      machineName: spec.machineName,
      rebootReserveSeconds: 0,
      results: updates.map((update, orderIndex) => ({ update, orderIndex, expectedSeconds: 30, status: 'PENDING', predictedStatus: 'SUCCEEDED', reason: null })) as never,
    },
  ]);
  const machineRunId = machineRun!.machineRunId;
  const job: InstallJob = {
    runId: run.id,
    machineRunId,
    deadline: deadline.toISOString(),
    graceSeconds: 60,
    rebootSetting,
    rebootReserveSeconds: 0,
    updates: updates.map((update) => ({ ...update, expectedSeconds: 30 })),
  };
  const { id } = await handOverInstallJob(database.db, { machineId: spec.machineId, machineRunId, job, taskToken: '' });
  return { jobId: id, machineRunId, job };
}
