import { drizzle } from 'drizzle-orm/postgres-js';
import type { Database, Db } from '../../src/db/client.js';
import * as schema from '../../src/db/schema.js';

type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };

/**
 * A drizzle client over `database` that records the statements it sends, and `rowsRead`: how many
 * rows of a relation (its table or its indexes: nodes naming it) the statements `run` sent read, by
 * their plans' actual figures (each statement run again under EXPLAIN ANALYZE), kept or filtered away.
 */
export function recordingDb(database: Database): { db: Db; rowsRead: (relation: string, run: (db: Db) => Promise<unknown>) => Promise<number> } {
  const sent: Array<{ query: string; params: unknown[] }> = [];
  const db = drizzle(database.sql, { schema, logger: { logQuery: (query, params) => sent.push({ query, params }) } });
  return {
    db,
    async rowsRead(relation, run) {
      sent.length = 0;
      await run(db);
      let read = 0;
      const walk = (node: PlanNode) => {
        if (node['Relation Name'] === relation) {
          const rows = Number(node['Actual Rows'] ?? 0) + Number(node['Rows Removed by Filter'] ?? 0) + Number(node['Rows Removed by Index Recheck'] ?? 0);
          read += rows * Number(node['Actual Loops'] ?? 1);
        }
        for (const child of node.Plans ?? []) walk(child);
      };
      for (const { query, params } of [...sent]) {
        const [row] = await database.sql.unsafe<Array<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>>(`explain (analyze, format json) ${query}`, params as never[]);
        walk(row!['QUERY PLAN'][0]!.Plan);
      }
      return read;
    },
  };
}
