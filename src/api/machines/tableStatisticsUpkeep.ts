import type { Database } from '../../db/client.js';
import { analyzeIfGrown, DEFAULT_ANALYZE_RULE, type AnalyzeDecision, type AnalyzedTable, type AnalyzeRule } from '../../db/tableStatistics.js';
import type { Logger } from '../../logger.js';

/** How long after an enrollment this process looks at whether `machines` needs an ANALYZE (once per delay while enrollments come). */
export const TABLE_STATISTICS_DELAY_MS = 5_000;

export interface TableStatistics {
  /** Rows were added to `table` here (a machine enrolled): look at its statistics soon, in the background. */
  noteGrowth(table: AnalyzedTable): void;
}

/**
 * Keeps the statistics of the tables the agents' statements depend on (ANALYZED_TABLES) current
 * while a fleet enrolls, instead of leaving it to autovacuum's next pass: some seconds after an
 * enrollment (never in the agent's request) this process asks analyzeIfGrown, which runs ANALYZE
 * when the table has grown by half (500 rows at least) since PostgreSQL last counted it, in one API
 * process at a time (an advisory lock) and not within 10 s of the last. A fleet at rest enrolls
 * nothing, so this costs it no statement.
 */
export function startTableStatistics(
  { database, logger }: { database: Database; logger: Logger },
  {
    delayMs = TABLE_STATISTICS_DELAY_MS,
    rule = DEFAULT_ANALYZE_RULE,
    analyze = analyzeIfGrown,
  }: { delayMs?: number; rule?: AnalyzeRule; /** The look and the ANALYZE (a stand-in in unit tests). */ analyze?: typeof analyzeIfGrown } = {},
): TableStatistics & { pass(): Promise<AnalyzeDecision[]>; stop(): Promise<void> } {
  const grown = new Set<AnalyzedTable>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<AnalyzeDecision[]> | undefined;
  let stopped = false;

  const schedule = () => {
    if (stopped || timer || running || grown.size === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      void pass();
    }, delayMs);
    timer.unref();
  };

  const pass = (): Promise<AnalyzeDecision[]> => {
    running ??= (async () => {
      const decisions: AnalyzeDecision[] = [];
      if (stopped || database.availability.outage) return decisions;
      const tables = [...grown];
      grown.clear();
      for (const table of tables) {
        try {
          const decision = await analyze(database.sql, table, rule);
          decisions.push(decision);
          if (decision.analyzed) logger.info({ table, liveRows: decision.liveRows, knownRows: decision.knownRows }, 'analyzed a table grown since PostgreSQL last counted it');
        } catch (error) {
          // Looked at again after the next enrollment; autovacuum gets there meanwhile anyway.
          logger.warn({ err: error, table }, 'could not bring the table statistics up to date');
        }
      }
      return decisions;
    })().finally(() => {
      running = undefined;
      schedule();
    });
    return running;
  };

  return {
    noteGrowth(table) {
      grown.add(table);
      schedule();
    },
    pass,
    /** No pass after this; waits for the one under way (before the database is closed under it). */
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await running;
    },
  };
}
