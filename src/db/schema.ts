import { sql } from 'drizzle-orm';
import { boolean, index, integer, jsonb, pgEnum, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

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

export const osTypeEnum = pgEnum('os_type', ['LINUX', 'WINDOWS']);
export const environmentEnum = pgEnum('environment', ['AZURE', 'AWS', 'GCP', 'ON_PREMISES']);
export const classificationEnum = pgEnum('classification', [
  'CRITICAL',
  'SECURITY',
  'OTHER',
  'UPDATE_ROLLUP',
  'FEATURE_PACK',
  'SERVICE_PACK',
  'DEFINITION',
  'TOOLS',
  'UPDATES',
]);
export const severityEnum = pgEnum('severity', ['CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW']);

/** Enrollment keys: what a new agent presents once to register its machine. Only a hash is kept. */
export const enrollmentKeys = pgTable('enrollment_keys', {
  id: uuid('id').primaryKey().defaultRandom(),
  description: text('description').notNull(),
  secretHash: text('secret_hash').notNull().unique(),
  /** Tags every machine enrolled with this key starts with. */
  defaultTags: text('default_tags').array().notNull().default(sql`'{}'::text[]`),
  maxUses: integer('max_uses'),
  useCount: integer('use_count').notNull().default(0),
  expiresAt: timestamp('expires_at', { withTimezone: true }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  revokedAt: timestamp('revoked_at', { withTimezone: true }),
});

/** Managed machines. The counts of the latest assessment are kept here so the fleet view can sort and filter on them. */
export const machines = pgTable(
  'machines',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    name: text('name').notNull(),
    osType: osTypeEnum('os_type').notNull(),
    osName: text('os_name').notNull(),
    osVersion: text('os_version').notNull(),
    kernel: text('kernel'),
    environment: environmentEnum('environment').notNull(),
    tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
    agentVersion: text('agent_version'),
    bootId: text('boot_id'),
    packageManager: text('package_manager'),
    /** Problems the agent sees on the machine, e.g. unattended-upgrades installing behind the deployments' back. */
    warnings: text('warnings').array().notNull().default(sql`'{}'::text[]`),
    managementEnabled: boolean('management_enabled').notNull().default(true),
    /** Hash of the machine's own credential; null once the machine is removed. */
    credentialHash: text('credential_hash').unique(),
    enrollmentKeyId: uuid('enrollment_key_id').references(() => enrollmentKeys.id, { onDelete: 'set null' }),
    enrolledAt: timestamp('enrolled_at', { withTimezone: true }).notNull().defaultNow(),
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
    lastAssessedAt: timestamp('last_assessed_at', { withTimezone: true }),
    latestAssessmentId: uuid('latest_assessment_id'),
    rebootPending: boolean('reboot_pending').notNull().default(false),
    criticalCount: integer('critical_count').notNull().default(0),
    securityCount: integer('security_count').notNull().default(0),
    otherCount: integer('other_count').notNull().default(0),
    /** The last assessment's failure, if the last attempt failed (kept beside the last good one). */
    lastAssessmentError: jsonb('last_assessment_error').$type<{ code: string; message: string; at: string } | null>(),
    removedAt: timestamp('removed_at', { withTimezone: true }),
  },
  (t) => [index('machines_name_idx').on(t.name), index('machines_last_seen_idx').on(t.lastSeenAt)],
);

/** Every assessment a machine reported: the history. Its id is the agent's report id, so a resent report is stored once. */
export const assessments = pgTable(
  'assessments',
  {
    id: uuid('id').primaryKey(),
    machineId: uuid('machine_id')
      .notNull()
      .references(() => machines.id, { onDelete: 'cascade' }),
    trigger: text('trigger').notNull(),
    backend: text('backend').notNull(),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull(),
    finishedAt: timestamp('finished_at', { withTimezone: true }).notNull(),
    receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
    rebootPending: boolean('reboot_pending').notNull(),
    criticalCount: integer('critical_count').notNull(),
    securityCount: integer('security_count').notNull(),
    otherCount: integer('other_count').notNull(),
    repositoryProblems: jsonb('repository_problems').$type<Array<{ repository: string; message: string }>>().notNull().default(sql`'[]'::jsonb`),
  },
  (t) => [index('assessments_machine_idx').on(t.machineId, t.finishedAt)],
);

/** The pending updates of each assessment. */
export const pendingUpdates = pgTable(
  'pending_updates',
  {
    assessmentId: uuid('assessment_id')
      .notNull()
      .references(() => assessments.id, { onDelete: 'cascade' }),
    machineId: uuid('machine_id').notNull(),
    name: text('name').notNull(),
    arch: text('arch').notNull().default(''),
    installedVersion: text('installed_version'),
    availableVersion: text('available_version').notNull(),
    classification: classificationEnum('classification').notNull(),
    severity: severityEnum('severity'),
    advisoryIds: text('advisory_ids').array().notNull().default(sql`'{}'::text[]`),
    cveIds: text('cve_ids').array().notNull().default(sql`'{}'::text[]`),
    rebootSuggested: boolean('reboot_suggested').notNull().default(false),
    repository: text('repository'),
  },
  (t) => [primaryKey({ columns: [t.assessmentId, t.name, t.arch] })],
);

/** Commands waiting for an agent (an on-demand assessment). Agents long-poll for them. */
export const agentCommands = pgTable(
  'agent_commands',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    machineId: uuid('machine_id')
      .notNull()
      .references(() => machines.id, { onDelete: 'cascade' }),
    kind: text('kind').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
    completedAt: timestamp('completed_at', { withTimezone: true }),
  },
  (t) => [index('agent_commands_pending_idx').on(t.machineId, t.completedAt)],
);
