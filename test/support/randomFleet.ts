import type { Sql } from 'postgres';
import { storeAssessmentReports, type PreparedReport } from '../../src/db/assessmentIngest.js';
import { seededRandom } from '../../src/simulator/syntheticMachine.js';

/**
 * What the randomized comparisons of maintained figures with a full recompute share
 * (integration/fleetCounts, integration/fleetSummary): a seeded generator, so that a failure replays
 * with the same operations, and the rounds of concurrent operations they run.
 */
export function random(seed: number) {
  const next = seededRandom(seed);
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}

/** A group of reports stored as the API's group commit stores it: a report sent twice in one group counts once. */
export function storeReportGroup(sql: Sql, group: PreparedReport[]): Promise<unknown> {
  const seen = new Set<string>();
  return storeAssessmentReports(sql, group.filter((r) => r.kind !== 'RESULT' || (!seen.has(r.id) && seen.add(r.id))));
}

/**
 * `rounds` rounds of 40 batches of 6 operations at once, `afterRound` after each; answers how many
 * operations ran. Machines removed by one operation of a batch may be used by another: the database
 * tolerates it, the callers' bookkeeping need not.
 */
export async function concurrentRounds(rounds: number, operation: () => Promise<void>, afterRound: () => Promise<void>): Promise<number> {
  let operations = 0;
  for (let round = 0; round < rounds; round++) {
    for (let batch = 0; batch < 40; batch++) {
      const results = await Promise.allSettled(Array.from({ length: 6 }, operation));
      for (const r of results) if (r.status === 'rejected') throw r.reason;
      operations += results.length;
    }
    await afterRound();
  }
  return operations;
}
