/**
 * Learning how long a package takes to install on a machine: each update that succeeded is a
 * measurement, and the planner's expected seconds (expectedSeconds in planning.ts) use what was
 * learned. The database only stores the result (src/db/jobReports.ts, applyJobReports).
 *
 * Plain functions on plain data (see planning.ts).
 */

/** What is learned of one package on one machine: the moving average and how many measurements made it. */
export interface LearnedDuration {
  averageSeconds: number;
  samples: number;
}

/** How much the newest measurement counts in the average: recent installs count most, one outlier does not rule. */
export const NEWEST_MEASUREMENT_WEIGHT = 0.3;

/**
 * The seconds an update took to install, from the start and end its agent reported; null when it
 * is no measurement (it did not succeed, or a time is missing). A clock that went back counts 0.
 */
export function measuredSeconds(update: { status: string; startedAt: string | null; endedAt: string | null }): number | null {
  if (update.status !== 'SUCCEEDED' || !update.startedAt || !update.endedAt) return null;
  return Math.max(0, (Date.parse(update.endedAt) - Date.parse(update.startedAt)) / 1000);
}

/**
 * What is learned after one more measurement: an exponential moving average. The first
 * measurement is taken as it is (`previous` absent, or with no samples).
 */
export function learnDuration(previous: LearnedDuration | undefined, seconds: number): LearnedDuration {
  if (!previous || previous.samples === 0) return { averageSeconds: seconds, samples: 1 };
  return { averageSeconds: previous.averageSeconds * (1 - NEWEST_MEASUREMENT_WEIGHT) + seconds * NEWEST_MEASUREMENT_WEIGHT, samples: previous.samples + 1 };
}
