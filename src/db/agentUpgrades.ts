import { and, asc, count, desc, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm';
import type { UpgradeArtifact, UpgradeCommand, UpgradeReport } from '../domain/types.js';
import { agentUpgradeStatus, type AgentUpgradeMachineStatus, type AgentUpgradeStatus, type UpgradeCandidate, type UpgradeTarget } from '../fleet/agentUpgrades.js';
import type { Limit } from '../fleet/planning.js';
import type { Db } from './client.js';
import { agentCommands, agentUpgradeMachines, agentUpgrades, machines } from './schema.js';

export type AgentUpgradeRow = typeof agentUpgrades.$inferSelect;
export type AgentUpgradeMachineRow = typeof agentUpgradeMachines.$inferSelect;
export type UpgradeTargets = AgentUpgradeRow['targets'];

/** The live machines an upgrade request names (every one, these ids, or those matching the filter). */
export async function upgradeCandidates(db: Db, targets: UpgradeTargets): Promise<UpgradeCandidate[]> {
  const where: SQL[] = [isNull(machines.removedAt)];
  if (!targets.allMachines) {
    if (targets.machineIds.length > 0) where.push(inArray(machines.id, targets.machineIds));
    if (targets.filter) {
      where.push(sql`${machines.tags} @> ${sql.param(targets.filter.tags)}::text[]`);
      if (targets.filter.nameContains) where.push(sql`${machines.name} ilike ${`%${targets.filter.nameContains.replace(/[\\%_]/g, (c) => `\\${c}`)}%`}`);
    }
  }
  return db.select({ id: machines.id, name: machines.name, osType: machines.osType, agentVersion: machines.agentVersion, lastSeenAt: machines.lastSeenAt }).from(machines).where(and(...where));
}

export interface NewAgentUpgrade {
  id: string;
  workflowId: string;
  toVersion: string;
  artifacts: UpgradeArtifact[];
  signedBy: string;
  rollbackAfterSeconds: number;
  maxConcurrent: Limit | null;
  maxFailures: Limit | null;
  targets: UpgradeTargets;
  requestedBy: string | null;
  machines: UpgradeTarget[];
}

/** The upgrade and one row per machine it covers, in one transaction. */
export async function createAgentUpgrade(db: Db, input: NewAgentUpgrade): Promise<AgentUpgradeRow> {
  const { id } = input;
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(agentUpgrades)
      .values({
        id,
        workflowId: input.workflowId,
        toVersion: input.toVersion,
        artifacts: input.artifacts,
        signedBy: input.signedBy,
        rollbackAfterSeconds: input.rollbackAfterSeconds,
        maxConcurrent: input.maxConcurrent,
        maxFailures: input.maxFailures,
        targets: input.targets,
        requestedBy: input.requestedBy,
        status: input.machines.some((m) => m.status === 'PENDING') ? 'IN_PROGRESS' : 'SUCCEEDED',
        endedAt: input.machines.some((m) => m.status === 'PENDING') ? null : sql`now()`,
      })
      .returning();
    const now = new Date();
    // PostgreSQL takes at most 65,535 parameters per statement: 9 per row.
    for (let i = 0; i < input.machines.length; i += 5000) {
      await tx.insert(agentUpgradeMachines).values(
        input.machines.slice(i, i + 5000).map((m, j) => ({
          upgradeId: id,
          machineId: m.machineId,
          machineName: m.machineName,
          orderIndex: i + j,
          fromVersion: m.fromVersion,
          status: m.status,
          code: m.code,
          message: m.message,
          endedAt: m.status === 'SKIPPED' ? now : null,
        })),
      );
    }
    return row!;
  });
}

export async function findAgentUpgrade(db: Db, id: string): Promise<AgentUpgradeRow | undefined> {
  const [row] = await db.select().from(agentUpgrades).where(eq(agentUpgrades.id, id));
  return row;
}

export async function listAgentUpgrades(db: Db, window: { offset: number; limit: number }): Promise<{ rows: AgentUpgradeRow[]; totalCount: number }> {
  const [rows, [total]] = await Promise.all([
    db.select().from(agentUpgrades).orderBy(desc(agentUpgrades.createdAt), desc(agentUpgrades.id)).offset(window.offset).limit(window.limit),
    db.select({ n: count() }).from(agentUpgrades),
  ]);
  return { rows, totalCount: total?.n ?? 0 };
}

/** Machines per status, every status present. */
export async function agentUpgradeCounts(db: Db, upgradeId: string): Promise<Record<AgentUpgradeMachineStatus, number>> {
  const rows = await db.select({ status: agentUpgradeMachines.status, n: count() }).from(agentUpgradeMachines).where(eq(agentUpgradeMachines.upgradeId, upgradeId)).groupBy(agentUpgradeMachines.status);
  const counts: Record<AgentUpgradeMachineStatus, number> = { PENDING: 0, IN_PROGRESS: 0, SUCCEEDED: 0, FAILED: 0, ROLLED_BACK: 0, TIMED_OUT: 0, SKIPPED: 0, NOT_STARTED: 0, CANCELED: 0 };
  for (const r of rows) counts[r.status] = r.n;
  return counts;
}

export async function agentUpgradeMachinesOf(
  db: Db,
  upgradeId: string,
  query: { status?: AgentUpgradeMachineStatus[]; offset: number; limit: number },
): Promise<{ rows: AgentUpgradeMachineRow[]; totalCount: number }> {
  const where = and(eq(agentUpgradeMachines.upgradeId, upgradeId), query.status?.length ? inArray(agentUpgradeMachines.status, query.status) : undefined);
  const [rows, [total]] = await Promise.all([
    db.select().from(agentUpgradeMachines).where(where).orderBy(asc(agentUpgradeMachines.orderIndex)).offset(query.offset).limit(query.limit),
    db.select({ n: count() }).from(agentUpgradeMachines).where(where),
  ]);
  return { rows, totalCount: total?.n ?? 0 };
}

/** The machines still to upgrade, in order, and how many have failed so far (a workflow that continued as new starts from here). */
export async function upgradeProgress(db: Db, upgradeId: string): Promise<{ pending: string[]; failed: number; total: number }> {
  const rows = await db
    .select({ machineId: agentUpgradeMachines.machineId, status: agentUpgradeMachines.status })
    .from(agentUpgradeMachines)
    .where(eq(agentUpgradeMachines.upgradeId, upgradeId))
    .orderBy(asc(agentUpgradeMachines.orderIndex));
  return {
    pending: rows.filter((r) => r.status === 'PENDING' || r.status === 'IN_PROGRESS').map((r) => r.machineId),
    failed: rows.filter((r) => r.status === 'FAILED' || r.status === 'ROLLED_BACK' || r.status === 'TIMED_OUT').length,
    total: rows.filter((r) => r.status !== 'SKIPPED').length,
  };
}

/**
 * The machine's UPGRADE command for the activity that waits for it: the one of the current attempt
 * (a retried activity attaches its task token to it, or gets the result that arrived meanwhile), or
 * a new one when there is none or the last ended BUSY. The machine is then IN_PROGRESS.
 */
export async function ensureUpgradeCommand(
  db: Db,
  input: { upgradeId: string; machineId: string; taskToken: string; command: UpgradeCommand; reoffer: boolean },
): Promise<{ commandId: string; result: UpgradeReport | null; created: boolean } | undefined> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .select()
      .from(agentUpgradeMachines)
      .where(and(eq(agentUpgradeMachines.upgradeId, input.upgradeId), eq(agentUpgradeMachines.machineId, input.machineId)))
      .for('update');
    if (!row) return undefined;
    if (row.commandId && row.status === 'IN_PROGRESS') {
      const [command] = await tx
        .update(agentCommands)
        // A retried activity offers the command again: the answer that carried it may have been lost
        // with an API process; the agent knows a command it already has by its id.
        .set({ taskToken: input.taskToken, ...(input.reoffer ? { deliveredAt: sql`case when ${agentCommands.result} is null then null else ${agentCommands.deliveredAt} end` } : {}) })
        .where(eq(agentCommands.id, row.commandId))
        .returning({ id: agentCommands.id, result: agentCommands.result });
      if (command) return { commandId: command.id, result: (command.result as UpgradeReport | null) ?? null, created: false };
    }
    if (row.commandId && row.status !== 'PENDING' && row.status !== 'IN_PROGRESS') {
      // Ended while no activity waited for it (a retry after the report): its outcome, not a second command.
      const [command] = await tx.select({ result: agentCommands.result }).from(agentCommands).where(eq(agentCommands.id, row.commandId));
      const stored = (command?.result as UpgradeReport | null) ?? null;
      return {
        commandId: row.commandId,
        result: stored ?? { status: 'FAILED', code: row.code ?? row.status, message: row.message ?? row.status, fromVersion: row.fromVersion ?? '', toVersion: input.command.version },
        created: false,
      };
    }
    const [command] = await tx
      .insert(agentCommands)
      .values({ machineId: input.machineId, kind: 'UPGRADE', payload: input.command, taskToken: input.taskToken })
      .returning({ id: agentCommands.id });
    await tx
      .update(agentUpgradeMachines)
      .set({ status: 'IN_PROGRESS', commandId: command!.id, attempts: sql`${agentUpgradeMachines.attempts} + 1`, startedAt: sql`coalesce(${agentUpgradeMachines.startedAt}, now())`, endedAt: null })
      .where(and(eq(agentUpgradeMachines.upgradeId, input.upgradeId), eq(agentUpgradeMachines.machineId, input.machineId)));
    return { commandId: command!.id, result: null, created: true };
  });
}

const REPORTED_STATUS: Record<UpgradeReport['status'], AgentUpgradeMachineStatus> = { SUCCEEDED: 'SUCCEEDED', FAILED: 'FAILED', ROLLED_BACK: 'ROLLED_BACK', BUSY: 'PENDING' };

/**
 * An agent's report on its UPGRADE command, stored once (a resent report changes nothing): the
 * command completes, and the machine's row takes the outcome (BUSY puts it back to PENDING, to be
 * asked again). Returns the activity's task token to complete, or undefined when the command is not
 * this machine's, or was withdrawn.
 */
export async function applyUpgradeReport(db: Db, machineId: string, commandId: string, report: UpgradeReport): Promise<{ taskToken: string | null; upgradeId: string | null; first: boolean } | 'UNKNOWN' | 'WITHDRAWN'> {
  return db.transaction(async (tx) => {
    const [command] = await tx
      .select({ result: agentCommands.result, taskToken: agentCommands.taskToken, canceledAt: agentCommands.canceledAt })
      .from(agentCommands)
      .where(and(eq(agentCommands.id, commandId), eq(agentCommands.machineId, machineId), eq(agentCommands.kind, 'UPGRADE')))
      .for('update');
    if (!command) return 'UNKNOWN';
    if (command.canceledAt) return 'WITHDRAWN';
    const [row] = await tx.select({ upgradeId: agentUpgradeMachines.upgradeId }).from(agentUpgradeMachines).where(eq(agentUpgradeMachines.commandId, commandId));
    if (command.result) return { taskToken: command.taskToken, upgradeId: row?.upgradeId ?? null, first: false };
    await tx.update(agentCommands).set({ result: report, completedAt: sql`now()` }).where(eq(agentCommands.id, commandId));
    if (row) {
      const status = REPORTED_STATUS[report.status];
      await tx
        .update(agentUpgradeMachines)
        .set({ status, code: report.code, message: report.message, endedAt: status === 'PENDING' ? null : sql`now()` })
        .where(eq(agentUpgradeMachines.commandId, commandId));
    }
    return { taskToken: command.taskToken, upgradeId: row?.upgradeId ?? null, first: true };
  });
}

/** An outcome the server decides (TIMED_OUT, SKIPPED after BUSY answers): the command is withdrawn, so a late report changes nothing. */
export async function setUpgradeMachineOutcome(db: Db, upgradeId: string, machineId: string, outcome: { status: AgentUpgradeMachineStatus; code: string; message: string }): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx
      .update(agentUpgradeMachines)
      .set({ ...outcome, endedAt: sql`now()` })
      .where(and(eq(agentUpgradeMachines.upgradeId, upgradeId), eq(agentUpgradeMachines.machineId, machineId), inArray(agentUpgradeMachines.status, ['PENDING', 'IN_PROGRESS'])))
      .returning({ commandId: agentUpgradeMachines.commandId });
    if (row?.commandId) await tx.update(agentCommands).set({ canceledAt: sql`coalesce(${agentCommands.canceledAt}, now())` }).where(and(eq(agentCommands.id, row.commandId), isNull(agentCommands.result)));
  });
}

/**
 * Ends the upgrade: machines not started become NOT_STARTED (or CANCELED), with the reason; one
 * still waiting for its agent when canceled is CANCELED and its command withdrawn. The status comes
 * from src/fleet. Idempotent.
 */
export async function finishAgentUpgrade(db: Db, upgradeId: string, input: { canceled: boolean; notStarted: string[]; notStartedReason: string | null }): Promise<AgentUpgradeStatus> {
  return db.transaction(async (tx) => {
    const ended = sql`now()`;
    if (input.notStarted.length > 0) {
      await tx
        .update(agentUpgradeMachines)
        .set({ status: input.canceled ? 'CANCELED' : 'NOT_STARTED', message: input.notStartedReason, code: input.canceled ? 'CANCELED' : 'NOT_STARTED', endedAt: ended })
        .where(and(eq(agentUpgradeMachines.upgradeId, upgradeId), inArray(agentUpgradeMachines.machineId, input.notStarted), inArray(agentUpgradeMachines.status, ['PENDING', 'IN_PROGRESS'])));
    }
    if (input.canceled) {
      const running = await tx
        .update(agentUpgradeMachines)
        .set({ status: 'CANCELED', code: 'CANCELED', message: 'The upgrade was canceled while this machine was being upgraded; its agent may still finish the upgrade it had begun.', endedAt: ended })
        .where(and(eq(agentUpgradeMachines.upgradeId, upgradeId), inArray(agentUpgradeMachines.status, ['PENDING', 'IN_PROGRESS'])))
        .returning({ commandId: agentUpgradeMachines.commandId });
      const commands = running.map((r) => r.commandId).filter((id): id is string => id !== null);
      if (commands.length > 0) await tx.update(agentCommands).set({ canceledAt: sql`coalesce(${agentCommands.canceledAt}, now())` }).where(and(inArray(agentCommands.id, commands), isNull(agentCommands.result)));
    }
    const statuses = await tx.select({ status: agentUpgradeMachines.status }).from(agentUpgradeMachines).where(eq(agentUpgradeMachines.upgradeId, upgradeId));
    const status = agentUpgradeStatus(statuses.map((s) => s.status), input.canceled);
    await tx.update(agentUpgrades).set({ status, endedAt: sql`coalesce(${agentUpgrades.endedAt}, now())` }).where(eq(agentUpgrades.id, upgradeId));
    return status;
  });
}

/**
 * Live machines per agent version (null: never reported one), from the counts the triggers on
 * machines maintain (migration "maintained_agent_versions", docs/fleet-counts.md): the folded
 * counts plus the deltas not folded yet, one snapshot. Reads no machine. A version no live machine
 * runs any more is left out.
 */
export async function agentVersionRows(db: Db): Promise<Array<{ version: string | null; machines: number }>> {
  const rows = await db.execute<{ key: string; n: number }>(sql`
    select key, sum(n)::float8 as n from (
      select key, n from fleet_summary_counts where key = 'agent_version' or key like 'agent\_version:%'
      union all select key, n from fleet_summary_deltas where key = 'agent_version' or key like 'agent\_version:%'
    ) t group by key having sum(n) <> 0`);
  return rows.map((r) => ({ version: r.key === 'agent_version' ? null : r.key.slice('agent_version:'.length), machines: Number(r.n) }));
}

/** The same counted over every live machine: what the maintained counts are checked against. */
export async function agentVersionRowsRecomputed(db: Db): Promise<Array<{ version: string | null; machines: number }>> {
  return db.select({ version: machines.agentVersion, machines: count() }).from(machines).where(isNull(machines.removedAt)).groupBy(machines.agentVersion);
}
