import { sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { runLogs } from './schema.js';

/** A line of a run's job stream; `at` defaults to now. */
export interface NewRunLog {
  runId: string;
  machineRunId: string | null;
  stream: string;
  line: string;
  at?: Date;
}

/**
 * Stores lines of job streams in one statement, numbered in the order given, and answers their ids
 * in that order. One jsonb parameter whatever their number: a multi-row insert costs the query
 * builder about 25 µs a line (a thousand agents' reports a second spend a CPU share on it) and
 * PostgreSQL takes 65,535 parameters at most.
 */
export async function insertRunLogs(db: Db, lines: readonly NewRunLog[]): Promise<Array<{ id: number; machineRunId: string | null }>> {
  if (lines.length === 0) return [];
  const rows = lines.map((l) => ({ run_id: l.runId, machine_run_id: l.machineRunId, at: l.at?.toISOString() ?? null, stream: l.stream, line: l.line }));
  const inserted = await db.execute<{ id: string | number; machine_run_id: string | null }>(sql`
    insert into ${runLogs} (run_id, machine_run_id, at, stream, line)
    select (e->>'run_id')::uuid, (e->>'machine_run_id')::uuid, coalesce((e->>'at')::timestamptz, now()), e->>'stream', e->>'line'
    from jsonb_array_elements(${JSON.stringify(rows)}::jsonb) with ordinality as l(e, n)
    order by l.n
    returning id, machine_run_id`);
  return [...inserted].map((r) => ({ id: Number(r.id), machineRunId: r.machine_run_id }));
}
