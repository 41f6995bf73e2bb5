import { and, eq, inArray, isNull, or, sql } from 'drizzle-orm';
import type { AgentCommandKind } from '../domain/vocabulary.js';
import type { AgentCommand, InstallJob, UpgradeCommand } from '../domain/types.js';
import type { Db } from './client.js';
import { agentCommands } from './schema.js';

/**
 * A command handed to an agent that has not completed it after this long is handed out again. Only
 * a backstop: an agent that lost track of its commands says so (it started, or a poll failed) and
 * gets them again at once (`redeliver`); an agent holding a long job ignores the second offer.
 */
const REDELIVER_AFTER = '5 minutes';

/**
 * The condition on an agent_commands row (named `alias` in the statement) under which a poll hands
 * it out: not completed, not canceled, and not handed out yet or handed out longer ago than
 * REDELIVER_AFTER. The check-in statement asks it too, to know whether a poll would find anything.
 */
export function waitingCommandsSql(alias: string): string {
  return `${alias}.completed_at is null and ${alias}.canceled_at is null and (${alias}.delivered_at is null or ${alias}.delivered_at < now() - interval '${REDELIVER_AFTER}')`;
}

/** Queues a command unless the same kind is already waiting for that machine; returns the waiting one. */
export async function queueAgentCommand(db: Db, machineId: string, kind: AgentCommandKind): Promise<{ id: string; queued: boolean }> {
  return db.transaction(async (tx) => {
    // One queue per machine: serialise concurrent requests for it.
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${machineId}))`);
    const [waiting] = await tx
      .select({ id: agentCommands.id })
      .from(agentCommands)
      .where(and(eq(agentCommands.machineId, machineId), eq(agentCommands.kind, kind), isNull(agentCommands.completedAt)));
    if (waiting) return { id: waiting.id, queued: false };
    const [row] = await tx.insert(agentCommands).values({ machineId, kind }).returning({ id: agentCommands.id });
    return { id: row!.id, queued: true };
  });
}

/**
 * queueAgentCommand for many machines in one transaction (three statements whatever their number):
 * each machine's queue locked as queueAgentCommand locks it, in one order, then the command queued
 * where none of that kind waits. Answers each machine's command, in the order given.
 */
export async function queueAgentCommands(db: Db, machineIds: readonly string[], kind: AgentCommandKind): Promise<Array<{ id: string; machineId: string; queued: boolean }>> {
  const ids = [...new Set(machineIds)].sort();
  if (ids.length === 0) return [];
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(m.id)) from unnest(${`{${ids.join(',')}}`}::text[]) as m(id) order by m.id`);
    const waiting = await tx
      .select({ id: agentCommands.id, machineId: agentCommands.machineId })
      .from(agentCommands)
      .where(and(inArray(agentCommands.machineId, ids), eq(agentCommands.kind, kind), isNull(agentCommands.completedAt)));
    const found = new Map(waiting.map((w) => [w.machineId, { id: w.id, machineId: w.machineId, queued: false }]));
    const missing = ids.filter((id) => !found.has(id));
    if (missing.length > 0) {
      const inserted = await tx.insert(agentCommands).values(missing.map((machineId) => ({ machineId, kind }))).returning({ id: agentCommands.id, machineId: agentCommands.machineId });
      for (const row of inserted) found.set(row.machineId, { id: row.id, machineId: row.machineId, queued: true });
    }
    return machineIds.map((id) => found.get(id)!);
  });
}

/** Built once per database and kind of take: every long-poll runs one. */
const commandTakers = new WeakMap<Db, Record<'waiting' | 'open', ReturnType<typeof prepareTakeCommands>>>();
function prepareTakeCommands(db: Db, which: 'waiting' | 'open') {
  return db
    .update(agentCommands)
    .set({ deliveredAt: sql`now()` })
    .where(
      and(
        eq(agentCommands.machineId, sql.placeholder('machineId')),
        isNull(agentCommands.completedAt),
        isNull(agentCommands.canceledAt),
        which === 'open' ? undefined : or(isNull(agentCommands.deliveredAt), sql`${agentCommands.deliveredAt} < now() - ${sql.raw(`'${REDELIVER_AFTER}'`)}::interval`),
      ),
    )
    .returning({ id: agentCommands.id, kind: agentCommands.kind, payload: agentCommands.payload })
    .prepare(which === 'open' ? 'redeliver_agent_commands' : 'take_agent_commands');
}

/**
 * Hands out the machine's waiting commands, marking them delivered. With `redeliver` (an agent that
 * started, or whose last poll failed, and may have lost what it was given), every command it has
 * not completed, delivered before or not.
 */
export async function takeAgentCommands(db: Db, machineId: string, redeliver = false): Promise<AgentCommand[]> {
  let takers = commandTakers.get(db);
  if (!takers) commandTakers.set(db, (takers = { waiting: prepareTakeCommands(db, 'waiting'), open: prepareTakeCommands(db, 'open') }));
  const rows = await takers[redeliver ? 'open' : 'waiting'].execute({ machineId });
  return rows.map(commandOf);
}

/**
 * takeAgentCommands (without redeliver) for many machines in one statement: each machine's waiting
 * commands, marked delivered. Answers each machine's commands, in the order given (a machine given
 * twice gets its commands the first time).
 */
export async function takeWaitingCommandsOf(db: Db, machineIds: readonly string[]): Promise<AgentCommand[][]> {
  if (machineIds.length === 0) return [];
  const rows = await db
    .update(agentCommands)
    .set({ deliveredAt: sql`now()` })
    .where(
      and(
        sql`${agentCommands.machineId} = any(${`{${[...new Set(machineIds)].join(',')}}`}::uuid[])`,
        isNull(agentCommands.completedAt),
        isNull(agentCommands.canceledAt),
        or(isNull(agentCommands.deliveredAt), sql`${agentCommands.deliveredAt} < now() - ${sql.raw(`'${REDELIVER_AFTER}'`)}::interval`),
      ),
    )
    .returning({ machineId: agentCommands.machineId, id: agentCommands.id, kind: agentCommands.kind, payload: agentCommands.payload });
  const byMachine = new Map<string, AgentCommand[]>();
  for (const row of rows) byMachine.set(row.machineId, [...(byMachine.get(row.machineId) ?? []), commandOf(row)]);
  return machineIds.map((id) => {
    const commands = byMachine.get(id) ?? [];
    byMachine.delete(id);
    return commands;
  });
}

function commandOf(r: { id: string; kind: string; payload: unknown }): AgentCommand {
  return r.kind === 'INSTALL'
    ? { id: r.id, kind: 'INSTALL', install: r.payload as InstallJob }
    : r.kind === 'UPGRADE'
      ? { id: r.id, kind: 'UPGRADE', upgrade: r.payload as UpgradeCommand }
      : { id: r.id, kind: r.kind as AgentCommandKind };
}

/**
 * Install jobs of many machine runs in one statement (the bulk hand-over at a run's start), once
 * per machine run: a retry creates nothing twice. No task token yet: the machine run's workflow
 * attaches its own when it starts. Returns the jobs, created now (`created`) or before.
 */
export async function insertInstallJobs(
  db: Db,
  jobs: ReadonlyArray<{ machineId: string; machineRunId: string; job: InstallJob }>,
  traceparent: string | null = null,
): Promise<Array<{ id: string; machineId: string; machineRunId: string; created: boolean }>> {
  if (jobs.length === 0) return [];
  const rows: Array<{ id: string; machineId: string; machineRunId: string; created: boolean }> = [];
  // PostgreSQL takes at most 65,535 parameters per statement: 5 per row.
  for (let i = 0; i < jobs.length; i += 5000) {
    const chunk = jobs.slice(i, i + 5000);
    const created = await db
      .insert(agentCommands)
      .values(chunk.map((j) => ({ machineId: j.machineId, kind: 'INSTALL', machineRunId: j.machineRunId, payload: j.job, traceparent })))
      .onConflictDoNothing({ target: agentCommands.machineRunId })
      .returning({ id: agentCommands.id });
    const isNew = new Set(created.map((c) => c.id));
    const found = await db
      .select({ id: agentCommands.id, machineId: agentCommands.machineId, machineRunId: agentCommands.machineRunId })
      .from(agentCommands)
      .where(inArray(agentCommands.machineRunId, chunk.map((j) => j.machineRunId)));
    rows.push(...found.map((r) => ({ ...r, machineRunId: r.machineRunId!, created: isNew.has(r.id) })));
  }
  return rows;
}
