import { and, asc, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Ring, UpdateSetMember } from '../fleet/rollout.js';
import type { PlannedResult } from '../fleet/runPlanning.js';
import type { Db } from './client.js';
import { deploymentRunRings, deploymentRuns, machineRuns, type RingPlanning } from './schema.js';
import { insertUpdateResults, samePlanning } from './runs.js';
import { recordRunWebhookEvent } from './webhooks.js';

export type RunRingRow = typeof deploymentRunRings.$inferSelect;
export type RingStatus = 'PENDING' | 'RUNNING' | 'SOAKING' | 'WAITING_FOR_APPROVAL' | 'HALTED' | 'PROMOTED' | 'DONE' | 'SKIPPED' | 'REJECTED' | 'CANCELED';

/**
 * Records a ringed run's machines, each with its ring, and its rings, once: a retried activity
 * finds them there. No update is planned yet: each ring is planned when it starts (startRing).
 */
export async function beginRingedRun(db: Db, runId: string, rings: Array<{ definition: Ring; machines: Array<{ id: string; name: string }> }>): Promise<void> {
  await db.transaction(async (tx) => {
    const [run] = await tx.select().from(deploymentRuns).where(eq(deploymentRuns.id, runId)).for('update');
    if (run!.startedAt) return;
    await tx.update(deploymentRuns).set({ status: 'IN_PROGRESS', startedAt: sql`now()` }).where(eq(deploymentRuns.id, runId));
    await recordRunWebhookEvent(tx as unknown as Db, runId, (run) => ({ type: 'RUN_STARTED', run }));
    await tx.insert(deploymentRunRings).values(rings.map((ring, i) => ({ runId, ring: i + 1, name: ring.definition.name, definition: ring.definition, machineCount: ring.machines.length, status: 'PENDING' })));
    const rows = rings.flatMap((ring, i) => ring.machines.map((m) => ({ runId, machineId: m.id, machineName: m.name, ring: i + 1 })));
    for (let i = 0; i < rows.length; i += 5000) await tx.insert(machineRuns).values(rows.slice(i, i + 5000));
  });
}

export function ringsOfRun(db: Db, runId: string): Promise<RunRingRow[]> {
  return db.select().from(deploymentRunRings).where(eq(deploymentRunRings.runId, runId)).orderBy(asc(deploymentRunRings.ring));
}

export async function findRunRing(db: Db, runId: string, ring: number): Promise<RunRingRow | undefined> {
  const [row] = await db.select().from(deploymentRunRings).where(and(eq(deploymentRunRings.runId, runId), eq(deploymentRunRings.ring, ring)));
  return row;
}

export function machineRunsOfRing(db: Db, runId: string, ring: number) {
  return db.select().from(machineRuns).where(and(eq(machineRuns.runId, runId), eq(machineRuns.ring, ring))).orderBy(asc(machineRuns.machineName));
}

type RingPlan = { machineRunId: string; rebootReserveSeconds: number; results: PlannedResult[] };

/**
 * Starts a ring whose machines are then planned page by page: RUNNING from now, its window fixed
 * (the run's row follows the running ring's window), its planning position at the start; then
 * planRingPage until no machine of it is left, then endRingPlanning. Nothing when the ring has
 * started already (a retry): answers its window and whether this call started it.
 */
export async function beginRingPlanning(db: Db, runId: string, ring: number, windowEndsAt: Date): Promise<{ windowEndsAt: Date; started: boolean }> {
  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(deploymentRunRings).where(and(eq(deploymentRunRings.runId, runId), eq(deploymentRunRings.ring, ring))).for('update');
    if (!row) throw new Error(`run ${runId} has no ring ${ring}`);
    if (row.startedAt) return { windowEndsAt: row.windowEndsAt!, started: false };
    const planning: RingPlanning = { after: null, planned: 0, selected: [] };
    await tx.update(deploymentRunRings).set({ status: 'RUNNING', startedAt: sql`now()`, windowEndsAt, planning }).where(and(eq(deploymentRunRings.runId, runId), eq(deploymentRunRings.ring, ring)));
    await tx.update(deploymentRuns).set({ windowEndsAt }).where(eq(deploymentRuns.id, runId));
    return { windowEndsAt, started: true };
  });
}

/** A page of a ring's machine runs still to plan (all PENDING before it runs), after `after` in (machine name, id) order. */
export function ringMachineRunsPage(db: Db, runId: string, ring: number, after: { name: string; id: string } | null, limit: number) {
  return db
    .select({ machineRunId: machineRuns.id, machineId: machineRuns.machineId, machineName: machineRuns.machineName })
    .from(machineRuns)
    .where(and(eq(machineRuns.runId, runId), eq(machineRuns.ring, ring), eq(machineRuns.status, 'PENDING'), after ? sql`(${machineRuns.machineName}, ${machineRuns.id}) > (${after.name}, ${after.id}::uuid)` : undefined))
    .orderBy(asc(machineRuns.machineName), asc(machineRuns.id))
    .limit(limit);
}

/**
 * Plans one page of a ring's machines (their update results and reboot reserves) and moves the
 * ring's planning position from `from` to `to` (past the page's last machine run, planned or not,
 * with the updates selected so far), in one transaction. Conditional on the position still being
 * `from`: a page another attempt planned first is not planned twice. Answers the position now
 * (null: planning ended) and whether this page was written.
 */
export async function planRingPage(db: Db, input: { runId: string; ring: number; from: RingPlanning; to: RingPlanning; plans: readonly RingPlan[] }): Promise<{ planning: RingPlanning | null; written: boolean }> {
  return db.transaction(async (tx) => {
    const where = and(eq(deploymentRunRings.runId, input.runId), eq(deploymentRunRings.ring, input.ring));
    const [row] = await tx.select({ planning: deploymentRunRings.planning }).from(deploymentRunRings).where(where).for('update');
    const now = row?.planning ?? null;
    if (!now || !samePlanning(now, input.from)) return { planning: now, written: false };
    await insertRingPlans(tx as unknown as Db, input.runId, input.plans);
    await tx.update(deploymentRunRings).set({ planning: input.to }).where(where);
    return { planning: input.to, written: true };
  });
}

/**
 * Ends a ring's paged planning: its position cleared and, with `fixesUpdateSet` (the first ring
 * that starts), the run's update set fixed as the updates its pages selected. Answers whether this
 * call ended it (a retry after the end changes nothing) and the update set it fixed.
 */
export async function endRingPlanning(db: Db, runId: string, ring: number, fixesUpdateSet: boolean): Promise<{ ended: boolean; updateSet: UpdateSetMember[] | null }> {
  return db.transaction(async (tx) => {
    const where = and(eq(deploymentRunRings.runId, runId), eq(deploymentRunRings.ring, ring));
    const [row] = await tx.select({ planning: deploymentRunRings.planning }).from(deploymentRunRings).where(where).for('update');
    if (!row?.planning) return { ended: false, updateSet: null };
    const updateSet = fixesUpdateSet ? row.planning.selected : null;
    await tx.update(deploymentRunRings).set({ planning: null }).where(where);
    if (updateSet) await tx.update(deploymentRuns).set({ updateSet }).where(eq(deploymentRuns.id, runId));
    return { ended: true, updateSet };
  });
}

/** A page's planned update results and its machine runs' reboot reserves. */
async function insertRingPlans(tx: Db, runId: string, plans: readonly RingPlan[]): Promise<void> {
  await insertUpdateResults(tx, runId, plans);
  // A reserve takes one of a few values: one statement per value, not one per machine run.
  const byReserve = new Map<number, string[]>();
  for (const plan of plans) {
    const ids = byReserve.get(plan.rebootReserveSeconds) ?? [];
    ids.push(plan.machineRunId);
    byReserve.set(plan.rebootReserveSeconds, ids);
  }
  for (const [rebootReserveSeconds, ids] of byReserve) {
    for (let i = 0; i < ids.length; i += 5000) await tx.update(machineRuns).set({ rebootReserveSeconds }).where(inArray(machineRuns.id, ids.slice(i, i + 5000)));
  }
}

/** A ring's state; a ring now WAITING_FOR_APPROVAL records its webhook event in the same transaction. */
export async function setRingState(
  db: Db,
  runId: string,
  ring: number,
  patch: Partial<Pick<RunRingRow, 'failedCount' | 'soakEndsAt' | 'reason' | 'decidedBy'>> & { status?: RingStatus; ended?: boolean; decided?: boolean },
): Promise<RunRingRow | undefined> {
  const { ended, decided, ...values } = patch;
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(deploymentRunRings)
      .set({ ...values, ...(ended ? { endedAt: sql`coalesce(${deploymentRunRings.endedAt}, now())` } : {}), ...(decided ? { decidedAt: sql`now()` } : {}) })
      .where(and(eq(deploymentRunRings.runId, runId), eq(deploymentRunRings.ring, ring)))
      .returning();
    if (row && patch.status === 'WAITING_FOR_APPROVAL') {
      await recordRunWebhookEvent(tx as unknown as Db, runId, (run) => ({ type: 'RING_WAITING_FOR_APPROVAL', run, ring: { number: row.ring, name: row.name } }));
    }
    return row;
  });
}

/**
 * The run HALTED with its reason (and its webhook event, in the same transaction), or back
 * IN_PROGRESS; never a run that already ended. `ring`: the ring whose gate halted it.
 */
export async function setRunHalted(db: Db, runId: string, reason: string | null, ring: { number: number; name: string } | null = null): Promise<void> {
  await db.transaction(async (tx) => {
    const [row] = await tx
      .update(deploymentRuns)
      .set({ status: reason === null ? 'IN_PROGRESS' : 'HALTED', error: reason })
      .where(and(eq(deploymentRuns.id, runId), isNull(deploymentRuns.endedAt)))
      .returning({ id: deploymentRuns.id });
    if (row && reason !== null) await recordRunWebhookEvent(tx as unknown as Db, runId, (run) => ({ type: 'RUN_HALTED', run, ring, reason }));
  });
}

/**
 * The rings still open when the run ended: the one whose gate was rejected REJECTED with the
 * rejection (when there is one), every other one CANCELED.
 */
export async function closeOpenRings(db: Db, runId: string, rejection: string | null): Promise<void> {
  const open = and(eq(deploymentRunRings.runId, runId), inArray(deploymentRunRings.status, ['PENDING', 'RUNNING', 'SOAKING', 'WAITING_FOR_APPROVAL', 'HALTED']));
  if (rejection !== null) {
    await db.update(deploymentRunRings).set({ status: 'REJECTED', reason: rejection, decidedAt: sql`now()` }).where(and(open, inArray(deploymentRunRings.status, ['WAITING_FOR_APPROVAL', 'HALTED'])));
  }
  await db.update(deploymentRunRings).set({ status: 'CANCELED' }).where(open);
}

/** Machine runs of the run that never started (still PENDING, no job): the ones a cancel or rejection leaves. */
export async function pendingMachineRunIds(db: Db, runId: string): Promise<string[]> {
  const rows = await db.select({ id: machineRuns.id }).from(machineRuns).where(and(eq(machineRuns.runId, runId), eq(machineRuns.status, 'PENDING')));
  return rows.map((r) => r.id);
}
