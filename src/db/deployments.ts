import { and, desc, eq, isNotNull, isNull, lt, ne, sql } from 'drizzle-orm';
import type { Classification } from '../domain/vocabulary.js';
import type { UpdateSelection } from '../fleet/planning.js';
import type { Db } from './client.js';
import { deploymentRuns, deployments, type RunSettings } from './schema.js';

export type DeploymentRow = typeof deployments.$inferSelect;
export type DeploymentValues = Omit<typeof deployments.$inferInsert, 'id' | 'createdAt' | 'updatedAt' | 'deletedAt' | 'paused' | 'scheduleVersion' | 'scheduleSyncedVersion'>;

/** Every change that concerns the Temporal schedule: the schedule is out of step until it is applied (markScheduleSynced). */
const scheduleChanged = { scheduleVersion: sql`${deployments.scheduleVersion} + 1`, updatedAt: sql`now()` };

const live = isNull(deployments.deletedAt);

/** Postgres' unique_violation: the name is taken. */
const isUniqueViolation = (error: unknown) => (error as { cause?: { code?: string }; code?: string }).cause?.code === '23505' || (error as { code?: string }).code === '23505';

export async function insertDeployment(db: Db, values: DeploymentValues): Promise<DeploymentRow | 'NAME_TAKEN'> {
  try {
    // Version 1 against 0 applied: its schedule is to be created.
    const [row] = await db.insert(deployments).values({ ...values, scheduleVersion: 1 }).returning();
    return row!;
  } catch (error) {
    if (isUniqueViolation(error)) return 'NAME_TAKEN';
    throw error;
  }
}

export async function updateDeployment(db: Db, id: string, values: DeploymentValues): Promise<DeploymentRow | 'NAME_TAKEN' | undefined> {
  try {
    const [row] = await db.update(deployments).set({ ...values, ...scheduleChanged }).where(and(eq(deployments.id, id), live)).returning();
    return row;
  } catch (error) {
    if (isUniqueViolation(error)) return 'NAME_TAKEN';
    throw error;
  }
}

export async function setDeploymentPaused(db: Db, id: string, paused: boolean): Promise<DeploymentRow | undefined> {
  const [row] = await db.update(deployments).set({ paused, ...scheduleChanged }).where(and(eq(deployments.id, id), live)).returning();
  return row;
}

/** Deleted deployments keep their runs and results; their name is free again. */
export async function deleteDeployment(db: Db, id: string): Promise<DeploymentRow | undefined> {
  const [row] = await db.update(deployments).set({ deletedAt: sql`now()`, ...scheduleChanged }).where(and(eq(deployments.id, id), live)).returning();
  return row;
}

/** Undoes deleteDeployment (its schedule could not be deleted); 'NAME_TAKEN' when another deployment has taken the name since. */
export async function undeleteDeployment(db: Db, id: string): Promise<DeploymentRow | 'NAME_TAKEN' | undefined> {
  try {
    const [row] = await db.update(deployments).set({ deletedAt: null, ...scheduleChanged }).where(and(eq(deployments.id, id), isNotNull(deployments.deletedAt))).returning();
    return row;
  } catch (error) {
    if (isUniqueViolation(error)) return 'NAME_TAKEN';
    throw error;
  }
}

/** The schedule now is what version `version` of the row says: recorded unless the row changed again meanwhile. */
export async function markScheduleSynced(db: Db, id: string, version: number): Promise<void> {
  await db.update(deployments).set({ scheduleSyncedVersion: version }).where(and(eq(deployments.id, id), eq(deployments.scheduleVersion, version)));
}

/**
 * Deployments (deleted ones too) whose schedule has not followed a change made more than
 * `settledMs` ago: younger changes are still being applied by the mutation that made them.
 */
export function deploymentsOutOfSync(db: Db, settledMs: number, limit: number): Promise<DeploymentRow[]> {
  return db
    .select()
    .from(deployments)
    .where(and(ne(deployments.scheduleVersion, deployments.scheduleSyncedVersion), lt(deployments.updatedAt, sql`now() - make_interval(secs => ${settledMs / 1000})`)))
    .orderBy(deployments.updatedAt)
    .limit(limit);
}

export async function findDeployment(db: Db, id: string, options: { includeDeleted?: boolean } = {}): Promise<DeploymentRow | undefined> {
  const [row] = await db.select().from(deployments).where(options.includeDeleted ? eq(deployments.id, id) : and(eq(deployments.id, id), live));
  return row;
}

export async function listDeployments(db: Db, offset: number, limit: number): Promise<{ rows: DeploymentRow[]; totalCount: number }> {
  const [rows, [total]] = await Promise.all([
    db.select().from(deployments).where(live).orderBy(deployments.name).offset(offset).limit(limit),
    db.select({ n: sql<number>`count(*)::int` }).from(deployments).where(live),
  ]);
  return { rows, totalCount: total?.n ?? 0 };
}

export async function lastRunOf(db: Db, deploymentId: string) {
  const [row] = await db.select().from(deploymentRuns).where(eq(deploymentRuns.deploymentId, deploymentId)).orderBy(desc(deploymentRuns.createdAt)).limit(1);
  return row;
}

/** What a deployment (or the settings a run kept of it) selects, as the planner takes it. */
export function selectionOf(row: Pick<DeploymentRow, 'classifications' | 'includePatterns' | 'excludePatterns'> & { useBaseline?: boolean | null }): UpdateSelection {
  return { classifications: row.classifications as Classification[], includePatterns: row.includePatterns, excludePatterns: row.excludePatterns, useBaseline: row.useBaseline ?? false };
}

/** The settings a run keeps of its deployment when it begins (deployment_runs.settings). */
export function runSettingsOf(row: DeploymentRow): RunSettings {
  return {
    classifications: row.classifications,
    useBaseline: row.useBaseline,
    includePatterns: row.includePatterns,
    excludePatterns: row.excludePatterns,
    windowMinutes: row.windowMinutes,
    rebootSetting: row.rebootSetting,
    maxConcurrent: row.maxConcurrent ?? null,
    maxFailures: row.maxFailures ?? null,
  };
}

/** The live deployments that run on a schedule and are not paused: those that may still fix something unattended. */
export function scheduledDeployments(db: Db): Promise<DeploymentRow[]> {
  return db
    .select()
    .from(deployments)
    .where(and(isNull(deployments.deletedAt), eq(deployments.paused, false), isNotNull(deployments.schedule)));
}
