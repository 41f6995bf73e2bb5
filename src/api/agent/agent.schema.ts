import { z } from 'zod';
import type { AssessmentReport, CheckInRequest, EnrollRequest, JobEvents, JobResult, MachineFacts } from '../../agent/protocol.js';

/**
 * The agent endpoint's requests, validated before anything is stored. Limits are generous for
 * real machines (a fresh Debian install with a year of missed updates has a few thousand) and
 * bounded for hostile ones.
 */
const text = (max: number) => z.string().max(max);
const MAX_UPDATES = 20_000;

const facts = z.strictObject({
  hostname: text(255).min(1),
  osType: z.enum(['LINUX', 'WINDOWS']),
  osName: text(200).min(1),
  osVersion: text(100),
  kernel: text(200).nullable(),
  agentVersion: text(50).min(1),
  bootId: text(100).nullable(),
  packageManager: text(20).nullable(),
  environment: z.enum(['AZURE', 'AWS', 'GCP', 'ON_PREMISES']),
  warnings: z.array(text(1000)).max(20),
}) satisfies z.ZodType<MachineFacts>;

export const enrollRequest = z.strictObject({
  enrollmentKey: text(200).min(1),
  facts,
}) satisfies z.ZodType<EnrollRequest>;

export const checkInRequest = z.strictObject({ facts }) satisfies z.ZodType<CheckInRequest>;

const classification = z.enum(['CRITICAL', 'SECURITY', 'OTHER', 'UPDATE_ROLLUP', 'FEATURE_PACK', 'SERVICE_PACK', 'DEFINITION', 'TOOLS', 'UPDATES']);
const timestamp = z.iso.datetime({ offset: true });

const pendingUpdate = z.strictObject({
  name: text(300).min(1),
  installedVersion: text(200).nullable(),
  availableVersion: text(200).min(1),
  arch: text(50).nullable(),
  classification,
  severity: z.enum(['CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW']).nullable(),
  advisoryIds: z.array(text(200)).max(200),
  cveIds: z.array(text(50)).max(2000),
  rebootSuggested: z.boolean(),
  repository: text(500).nullable(),
});

export const assessmentReport = z
  .strictObject({
    id: z.uuid(),
    commandId: z.uuid().nullable(),
    trigger: z.enum(['STARTUP', 'SCHEDULE', 'PACKAGE_DATABASE_CHANGED', 'COMMAND']),
    backend: text(20).min(1),
    startedAt: timestamp,
    finishedAt: timestamp,
    result: z
      .strictObject({
        rebootPending: z.boolean(),
        updates: z.array(pendingUpdate).max(MAX_UPDATES),
        repositoryProblems: z.array(z.strictObject({ repository: text(500), message: text(2000) })).max(200),
      })
      .nullable(),
    error: z.strictObject({ code: text(50).min(1), message: text(4000), output: text(64_000).nullable() }).nullable(),
  })
  .refine((r) => (r.result === null) !== (r.error === null), { message: 'exactly one of result and error must be set', path: ['result'] })
  .refine((r) => Date.parse(r.startedAt) <= Date.parse(r.finishedAt), { message: 'startedAt must not be after finishedAt', path: ['startedAt'] }) satisfies z.ZodType<AssessmentReport>;

const jobUpdateState = z.strictObject({
  name: text(300).min(1),
  arch: text(50).nullable(),
  status: z.enum(['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'NOT_ATTEMPTED']),
  exitCode: z.number().int().nullable(),
  errorText: text(16_000).nullable(),
  reason: text(1000).nullable(),
  installedVersion: text(200).nullable(),
  startedAt: timestamp.nullable(),
  endedAt: timestamp.nullable(),
});

export const jobEvents = z.strictObject({
  seq: z.number().int().min(1),
  lines: z.array(z.strictObject({ at: timestamp, stream: z.enum(['stdout', 'stderr', 'agent']), text: text(4000) })).max(1000),
  updates: z.array(jobUpdateState).max(MAX_UPDATES),
}) satisfies z.ZodType<JobEvents>;

export const jobResult = z.strictObject({
  updates: z.array(jobUpdateState).max(MAX_UPDATES),
  rebootRequired: z.boolean(),
  rebooting: z.boolean(),
  bootId: text(100).nullable(),
  timedOut: z.boolean(),
  error: z.strictObject({ code: text(50), message: text(4000) }).nullable(),
}) satisfies z.ZodType<JobResult>;

/** "facts.hostname: Too big: expected string to have <=255 characters": the first problem, naming the field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`)
    .join('; ');
}
