import { and, asc, eq, inArray, isNull, sql } from 'drizzle-orm';
import type { Ring, UpdateSetMember } from '../fleet/rollout.js';
import type { PlannedResult } from '../fleet/runPlanning.js';
import type { Db } from './client.js';
import { deploymentRunRings, deploymentRuns, machineRuns, updateResults } from './schema.js';
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

/**
 * Starts a ring once: its machines' plans (with their reboot reserves), its window (the run's window is the running ring's, which
 * the install jobs read), and on the first ring the run's frozen update set. A retry finds the ring
 * started and changes nothing; the answer is the ring's window either way.
 */
export async function startRing(
  db: Db,
  input: { runId: string; ring: number; windowEndsAt: Date; plans: Array<{ machineRunId: string; rebootReserveSeconds: number; results: PlannedResult[] }>; updateSet: UpdateSetMember[] | null },
): Promise<{ windowEndsAt: Date; started: boolean }> {
  return db.transaction(async (tx) => {
    const [row] = await tx.select().from(deploymentRunRings).where(and(eq(deploymentRunRings.runId, input.runId), eq(deploymentRunRings.ring, input.ring))).for('update');
    if (!row) throw new Error(`run ${input.runId} has no ring ${input.ring}`);
    if (row.startedAt) return { windowEndsAt: row.windowEndsAt!, started: false };
    const results = input.plans.flatMap((plan) =>
      plan.results.map((r) => ({
        machineRunId: plan.machineRunId,
        runId: input.runId,
        name: r.update.name,
        arch: r.update.arch ?? '',
        classification: r.update.classification,
        severity: r.update.severity,
        installedVersion: r.update.installedVersion,
        targetVersion: r.update.availableVersion,
        rebootSuggested: r.update.rebootSuggested,
        orderIndex: r.orderIndex,
        expectedSeconds: Math.round(r.expectedSeconds),
        status: r.status,
        predictedStatus: r.predictedStatus,
        reason: r.reason,
      })),
    );
    for (let i = 0; i < results.length; i += 3000) await tx.insert(updateResults).values(results.slice(i, i + 3000));
    // A reserve takes one of a few values: one statement per value, not one per machine run.
    const byReserve = new Map<number, string[]>();
    for (const plan of input.plans) {
      const ids = byReserve.get(plan.rebootReserveSeconds) ?? [];
      ids.push(plan.machineRunId);
      byReserve.set(plan.rebootReserveSeconds, ids);
    }
    for (const [rebootReserveSeconds, ids] of byReserve) {
      for (let i = 0; i < ids.length; i += 5000) await tx.update(machineRuns).set({ rebootReserveSeconds }).where(inArray(machineRuns.id, ids.slice(i, i + 5000)));
    }
    await tx
      .update(deploymentRunRings)
      .set({ status: 'RUNNING', startedAt: sql`now()`, windowEndsAt: input.windowEndsAt })
      .where(and(eq(deploymentRunRings.runId, input.runId), eq(deploymentRunRings.ring, input.ring)));
    await tx
      .update(deploymentRuns)
      .set({ windowEndsAt: input.windowEndsAt, ...(input.updateSet ? { updateSet: input.updateSet } : {}) })
      .where(eq(deploymentRuns.id, input.runId));
    return { windowEndsAt: input.windowEndsAt, started: true };
  });
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
