import { fleetSummaryUpkeep, storedFleetThresholds, syncFleetSummaryThresholds, type GenerationSweepProgress } from '../../db/fleetSummary.js';
import { describeThresholds, sameThresholds } from '../../fleet/compliance.js';
import type { Logger } from '../../logger.js';
import type { ApiServices } from '../context.js';

/**
 * How often each API process moves forward the machines whose summary state the clock changed and
 * folds the appended deltas. Readers are exact without it (they add up what it has not done yet,
 * through an index range); it keeps that small. A machine that checks in never reaches its
 * silence instant (each check-in moves it); one assessed every 3 h reaches its staleness instant once
 * per assessment: at 1M machines about 90 a second, a few hundred rows a pass.
 */
export const FLEET_SUMMARY_UPKEEP_MS = 5_000;

/** At most one warning a minute that another API process stores other thresholds. */
const THRESHOLDS_WARNING_MS = 60_000;

/**
 * The maintained compliance summary's upkeep (src/db/fleetSummary.ts) on a timer, one pass at a
 * time per process. Several replicas sweeping at once skip each other's locked rows and fold
 * disjoint deltas, so running it everywhere is harmless. Its first pass stores this process's
 * thresholds (a change of configuration is re-evaluated from the start, not at the first read);
 * later ones warn when the stored thresholds are another's: two processes configured otherwise
 * each store their own at their reads, and every machine is re-evaluated each time.
 */
export function startFleetSummaryUpkeep(services: ApiServices): { pass(): Promise<void>; stop(): void } {
  let running: Promise<void> | undefined;
  let stopped = false;
  let synced = false;
  let warnedAt = -Infinity;
  const thresholds = services.fleet.thresholds;
  const checkThresholds = async () => {
    const db = services.database.db;
    if (!synced) {
      if (await syncFleetSummaryThresholds(db, thresholds)) {
        services.logger.info({ thresholds }, `the compliance thresholds changed to ${describeThresholds(thresholds)}: every machine's compliance is re-evaluated in the background`);
      }
      synced = true;
      return;
    }
    const stored = await storedFleetThresholds(db);
    if (sameThresholds(stored, thresholds) || Date.now() - warnedAt < THRESHOLDS_WARNING_MS) return;
    warnedAt = Date.now();
    services.logger.warn(
      { stored, thresholds },
      `another API process stores other compliance thresholds (${describeThresholds(stored)}; this process: ${describeThresholds(thresholds)}). ` +
        'Each process stores its own at its next read, and every machine is re-evaluated each time: set FLEETPATCH_LINUX_ASSESSMENT_MINUTES, ' +
        'FLEETPATCH_WINDOWS_ASSESSMENT_MINUTES and FLEETPATCH_DISCONNECTED_AFTER_SECONDS alike on every API process.',
    );
  };
  const pass = (): Promise<void> => {
    running ??= (async () => {
      if (stopped || services.database.availability.outage) return;
      try {
        await checkThresholds();
        await fleetSummaryUpkeep(services.database.db, services.now(), generationSweepLog(services.logger));
      } catch (error) {
        services.logger.warn({ err: error }, 'the compliance summary upkeep failed; readers stay exact, and add up more until it runs again');
      }
    })().finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => void pass(), FLEET_SUMMARY_UPKEEP_MS);
  timer.unref();
  return {
    pass,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}

/**
 * The progress of a re-evaluation after a change of thresholds (minutes at 1,000,000 machines), at
 * each tenth of the table read: the summary stays exact meanwhile, its reads are slower until it ends.
 */
function generationSweepLog(logger: Logger): (progress: GenerationSweepProgress) => void {
  let logged = -1;
  return ({ moved, pagesRead, pages }) => {
    const tenth = Math.floor((10 * pagesRead) / Math.max(pages, 1));
    if (tenth === logged) return;
    logged = tenth;
    logger.info({ moved, pagesRead, pages }, `re-evaluating the machines' compliance after a change of thresholds: ${tenth * 10} % of the table read, ${moved} machines so far`);
  };
}
