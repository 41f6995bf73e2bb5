import { sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { apiTokens, deploymentRuns, deployments, enrollmentKeys, machineRuns, machines, selfChecks } from './schema.js';

/** The GraphQL types whose ids `node(id:)` finds, each with the table of its rows. */
export const NODE_TABLES = {
  Machine: machines,
  Deployment: deployments,
  DeploymentRun: deploymentRuns,
  MachineRun: machineRuns,
  ApiToken: apiTokens,
  EnrollmentKey: enrollmentKeys,
  SelfCheck: selfChecks,
} as const;

export type NodeType = keyof typeof NODE_TABLES;

/**
 * Which type an id belongs to: one statement, a primary key lookup per table. Every one of these
 * tables takes its ids from gen_random_uuid() (122 random bits), so an id names one row of one
 * table; if two ever matched, the order above decides.
 */
export async function nodeTypeOf(db: Db, id: string): Promise<NodeType | undefined> {
  const lookups = Object.entries(NODE_TABLES).map(([type, table], rank) => sql`select ${type}::text as type, ${rank}::int as rank from ${table} where ${table.id} = ${id}::uuid`);
  const rows = await db.execute<{ type: NodeType }>(sql`select type from (${sql.join(lookups, sql` union all `)}) found order by rank limit 1`);
  return [...rows][0]?.type;
}
