import { ServiceUnavailable } from '../../availability.js';
import { CALL_DEADLINE_MS } from '../../temporal/connection.js';
import { deploymentsOutOfSync } from '../../db/deployments.js';
import type { ApiServices } from '../context.js';
import { DeploymentService } from './deployment.service.js';

/** How often each API process looks for deployments whose Temporal schedule has not followed their row. */
export const RECONCILE_INTERVAL_MS = 15_000;

/**
 * Changes younger than this are left to the mutation that is applying them: it has the Temporal
 * call's deadline to finish, and undoes its change when it fails.
 */
const SETTLED_MS = 2 * CALL_DEADLINE_MS;

/** Rows per pass: a pass after a long Temporal outage catches up in steps, not in one burst. */
const BATCH = 100;

/**
 * Makes Temporal follow the deployments it missed: a mutation whose schedule call failed undid its
 * change in PostgreSQL, but Temporal may have applied the call all the same (its answer lost at the
 * deadline); the row is the truth, and this applies it again (DeploymentService.syncSchedule is
 * idempotent). Runs in every API process, on a timer and as soon as Temporal answers again after an
 * outage; concurrent passes of several replicas apply the same row twice, which is harmless.
 */
export function startScheduleReconciler(services: ApiServices): { pass(): Promise<number>; stop(): void } {
  const deployments = new DeploymentService(services);
  let running: Promise<number> | undefined;
  let stopped = false;

  const pass = (): Promise<number> => {
    running ??= (async () => {
      if (stopped || services.database.availability.outage || services.temporal.availability.outage) return 0;
      let applied = 0;
      try {
        for (const row of await deploymentsOutOfSync(services.database.db, SETTLED_MS, BATCH)) {
          if (stopped) break;
          try {
            await deployments.syncSchedule(row);
            applied++;
          } catch (error) {
            if (error instanceof ServiceUnavailable) break;
            services.logger.warn({ err: error, deploymentId: row.id }, 'could not bring a deployment schedule in line with the deployment');
          }
        }
      } catch (error) {
        services.logger.warn({ err: error }, 'could not look for deployment schedules to bring in line');
      }
      if (applied > 0) services.logger.info({ applied }, 'deployment schedules brought in line with their deployments');
      return applied;
    })().finally(() => (running = undefined));
    return running;
  };

  const timer = setInterval(() => void pass(), RECONCILE_INTERVAL_MS);
  timer.unref();
  const stopFollowing = services.temporal.availability.onChange((outage) => {
    if (!outage) void pass();
  });
  return {
    pass,
    stop() {
      stopped = true;
      clearInterval(timer);
      stopFollowing();
    },
  };
}
