import { ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import { scheduleIds } from '../../workflows/config.js';
import type { ApiServices } from '../context.js';
import { RECONCILE_INTERVAL_MS } from '../deployments/scheduleReconciler.js';

/**
 * When the daily snapshot is taken (UTC): a few minutes into the day, so that the day's row is the
 * fleet as that day began. Whoever wants figures later in the day takes one on demand.
 */
export const DAILY_SNAPSHOT_AT = { hour: 0, minute: 5 };

/**
 * Makes sure the Temporal schedule of the daily compliance snapshot (of this task queue) exists: every API process tries
 * once at start, then again on a timer and when Temporal answers again after an outage, until it
 * has found or created it. Several replicas creating it at once: one wins, the others find it
 * (ScheduleAlreadyRunning). The schedule is the product's, not an operator's: its timing is not
 * editable here, and deleting it by hand lasts until an API process starts again.
 */
export function startComplianceHistorySchedule(services: ApiServices): { ensure(): Promise<boolean>; stop(): void } {
  let done = false;
  let running: Promise<boolean> | undefined;
  const ensure = (): Promise<boolean> => {
    if (done) return Promise.resolve(true);
    running ??= (async () => {
      if (services.temporal.availability.outage) return false;
      try {
        await services.temporal.call(async () => {
          try {
            await services.temporal.client.schedule.create({
              scheduleId: scheduleIds.complianceHistory(services.temporal.settings.taskQueue),
              spec: { calendars: [{ ...DAILY_SNAPSHOT_AT, comment: 'daily compliance snapshot (UTC)' }] },
              action: { type: 'startWorkflow', workflowType: 'complianceSnapshotWorkflow', taskQueue: services.temporal.settings.taskQueue, workflowId: scheduleIds.complianceSnapshotPrefix(services.temporal.settings.taskQueue), args: [] },
              // Temporal away at 00:05: the day's snapshot is still taken when it is back, that day
              // (a later catch-up would take the next day's, which the next occurrence then skips).
              policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '23 hours' },
              state: { note: 'fleetpatch compliance history (docs/compliance-history.md)' },
            });
          } catch (error) {
            if (!(error instanceof ScheduleAlreadyRunning)) throw error;
          }
        });
        done = true;
      } catch (error) {
        services.logger.warn({ err: error }, 'could not make sure the daily compliance snapshot schedule exists; trying again');
      }
      return done;
    })().finally(() => (running = undefined));
    return running;
  };
  void ensure();
  const timer = setInterval(() => {
    if (done) clearInterval(timer);
    else void ensure();
  }, RECONCILE_INTERVAL_MS);
  timer.unref();
  const stopFollowing = services.temporal.availability.onChange((outage) => {
    if (!outage) void ensure();
  });
  return {
    ensure,
    stop() {
      clearInterval(timer);
      stopFollowing();
    },
  };
}
