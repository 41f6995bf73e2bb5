import { and, eq, isNull, or, sql } from 'drizzle-orm';
import type { AgentCommand, AgentCommandKind, InstallJob } from '../agent/protocol.js';
import type { Db } from './client.js';
import { agentCommands } from './schema.js';

/** A command handed to an agent that has not completed it after this long is handed out again (the agent may have crashed). */
const REDELIVER_AFTER = '5 minutes';

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

/** Built once per database: every long-poll runs it. */
const commandTakers = new WeakMap<Db, ReturnType<typeof prepareTakeCommands>>();
function prepareTakeCommands(db: Db) {
  return db
    .update(agentCommands)
    .set({ deliveredAt: sql`now()` })
    .where(
      and(
        eq(agentCommands.machineId, sql.placeholder('machineId')),
        isNull(agentCommands.completedAt),
        isNull(agentCommands.canceledAt),
        or(isNull(agentCommands.deliveredAt), sql`${agentCommands.deliveredAt} < now() - ${sql.raw(`'${REDELIVER_AFTER}'`)}::interval`),
      ),
    )
    .returning({ id: agentCommands.id, kind: agentCommands.kind, payload: agentCommands.payload })
    .prepare('take_agent_commands');
}

/** Hands out the machine's waiting commands, marking them delivered. */
export async function takeAgentCommands(db: Db, machineId: string): Promise<AgentCommand[]> {
  let take = commandTakers.get(db);
  if (!take) commandTakers.set(db, (take = prepareTakeCommands(db)));
  const rows = await take.execute({ machineId });
  return rows.map((r) => (r.kind === 'INSTALL' ? { id: r.id, kind: 'INSTALL', install: r.payload as InstallJob } : { id: r.id, kind: r.kind as AgentCommandKind }));
}
