import { sql } from 'drizzle-orm';
import { pgEnum, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/** Who may do what: VIEWER reads, OPERATOR also runs assessments and deployments, ADMIN also manages access. */
export const roleEnum = pgEnum('role', ['VIEWER', 'OPERATOR', 'ADMIN']);

/** API tokens. Only a SHA-256 hash of the secret is kept; the secret is shown once, at creation. */
export const apiTokens = pgTable('api_tokens', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  role: roleEnum('role').notNull(),
  tokenHash: text('token_hash').notNull().unique(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  expiresAt: timestamp('expires_at', { withTimezone: true }),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
  lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
});

/**
 * Worker self-checks: a workflow that waits, then records which worker completed it.
 * They prove that the whole chain (API → Temporal → worker → Postgres → subscription) works.
 */
export const selfChecks = pgTable('self_checks', {
  id: uuid('id').primaryKey().defaultRandom(),
  requestedAt: timestamp('requested_at', { withTimezone: true }).notNull().default(sql`now()`),
  completedAt: timestamp('completed_at', { withTimezone: true }),
  workerIdentity: text('worker_identity'),
});
