import { and, desc, eq, sql, type SQL } from 'drizzle-orm';
import { redactSecrets } from '../redact.js';
import type { Db } from './client.js';
import { auditEvents } from './schema.js';

export type AuditEventRow = typeof auditEvents.$inferSelect;
export type ActorKind = 'TOKEN' | 'MACHINE' | 'ENROLLMENT_KEY' | 'ANONYMOUS' | 'CLI';

export interface AuditEntry {
  actorKind: ActorKind;
  actorId?: string | null;
  actorName?: string | null;
  actorRole?: string | null;
  action: string;
  targetId?: string | null;
  details?: Record<string, unknown>;
  outcome: string;
  sourceAddress?: string | null;
}

/** Writes entries as given, secrets redacted from their details. */
export async function recordAuditEvents(db: Db, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await db.insert(auditEvents).values(
    entries.map((e) => ({
      actorKind: e.actorKind,
      actorId: e.actorId ?? null,
      actorName: e.actorName ?? null,
      actorRole: e.actorRole ?? null,
      action: e.action,
      targetId: e.targetId ?? null,
      details: redactSecrets(e.details ?? {}) as Record<string, unknown>,
      outcome: e.outcome,
      sourceAddress: e.sourceAddress ?? null,
    })),
  );
}

export interface AuditFilter {
  action?: string | null;
  targetId?: string | null;
  actorId?: string | null;
}

/** Newest first. */
export async function listAuditEvents(db: Db, filter: AuditFilter, page: { offset: number; limit: number }): Promise<{ rows: AuditEventRow[]; totalCount: number }> {
  const conditions: SQL[] = [];
  if (filter.action) conditions.push(eq(auditEvents.action, filter.action));
  if (filter.targetId) conditions.push(eq(auditEvents.targetId, filter.targetId));
  if (filter.actorId) conditions.push(eq(auditEvents.actorId, filter.actorId));
  const where = conditions.length > 0 ? and(...conditions) : undefined;
  const rows = await db
    .select()
    .from(auditEvents)
    .where(where)
    .orderBy(desc(auditEvents.id))
    .offset(page.offset)
    .limit(page.limit);
  const [count] = await db.select({ n: sql<number>`count(*)::int` }).from(auditEvents).where(where);
  return { rows, totalCount: count!.n };
}

