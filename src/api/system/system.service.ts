import { ServiceUnavailable, type DependencyGate } from '../../availability.js';
import { pingDatabase } from '../../db/client.js';
import { createSelfCheck, deleteSelfCheck, findSelfCheck, lastCompletedSelfCheck, type SelfCheckRow } from '../../db/selfChecks.js';
import { pingTemporal } from '../../temporal/connection.js';
import { workflowIds } from '../../workflows/config.js';
import type { SelfCheckInput } from '../../workflows/selfCheck.js';
import type { ApiServices } from '../context.js';
import { dependencyAway } from '../errors.js';
import { version } from '../../version.js';

export interface ComponentHealth {
  state: 'UP' | 'DOWN';
  error: string | null;
}

/**
 * UP when the dependency answers the check; DOWN with the reason otherwise. While an outage is
 * known (see DependencyGate), the answer comes at once and says since when and why; a failed check
 * that says the dependency is away opens the outage.
 */
async function probe(gate: DependencyGate, name: string, check: () => Promise<unknown>): Promise<ComponentHealth> {
  const known = gate.outage;
  if (known) return { state: 'DOWN', error: `${name} unavailable since ${known.since.toISOString()}: ${known.reason}` };
  try {
    await check();
    return { state: 'UP', error: null };
  } catch (error) {
    if (dependencyAway(error)) gate.failed(error);
    return { state: 'DOWN', error: `${name}: ${error instanceof Error ? error.message : String(error)}` };
  }
}

export class SystemService {
  constructor(private readonly services: ApiServices) {}

  async health(): Promise<{ database: ComponentHealth; temporal: ComponentHealth }> {
    const [database, temporal] = await Promise.all([
      probe(this.services.database.availability, 'PostgreSQL', () => pingDatabase(this.services.database.sql)),
      probe(this.services.temporal.availability, 'Temporal', () => pingTemporal(this.services.temporal)),
    ]);
    return { database, temporal };
  }

  async status() {
    const health = await this.health();
    return { version, ...health, lastSelfCheck: (await lastCompletedSelfCheck(this.services.database.db)) ?? null };
  }

  /** Records a self-check and starts its workflow (the id is the workflow's business id); when the workflow cannot be started, the record is taken back. */
  async startSelfCheck(waitSeconds: number): Promise<SelfCheckRow> {
    const row = await createSelfCheck(this.services.database.db);
    const { temporal } = this.services;
    const input: SelfCheckInput = { selfCheckId: row.id, waitSeconds };
    try {
      await temporal.call(() => temporal.client.workflow.start('selfCheckWorkflow', { taskQueue: temporal.settings.taskQueue, workflowId: workflowIds.selfCheck(row.id), args: [input] }));
    } catch (error) {
      await deleteSelfCheck(this.services.database.db, row.id).catch(() => undefined);
      throw error instanceof ServiceUnavailable ? new ServiceUnavailable('TEMPORAL', 'Temporal is unavailable: no self-check was started. Try again in a few seconds.', { cause: error }) : error;
    }
    return row;
  }

  findSelfCheck(id: string) {
    return findSelfCheck(this.services.database.db, id);
  }
}
