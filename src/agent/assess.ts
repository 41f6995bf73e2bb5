import { randomUUID } from 'node:crypto';
import { BackendError, type BackendContext, type PackageBackend } from './backends/types.js';
import type { AssessmentReport, AssessmentTrigger } from './protocol.js';

/**
 * Runs one assessment and turns any outcome into a report: a backend failure (lock held,
 * output it cannot parse, a crash) becomes an error report with the text, never an agent crash.
 */
export async function runAssessment(
  backend: PackageBackend,
  ctx: BackendContext,
  trigger: AssessmentTrigger,
  commandId: string | null = null,
): Promise<AssessmentReport> {
  const startedAt = new Date().toISOString();
  const base = { id: randomUUID(), commandId, trigger, backend: backend.name, startedAt };
  try {
    const result = await backend.assess(ctx);
    return { ...base, finishedAt: new Date().toISOString(), result, error: null };
  } catch (error) {
    const code = error instanceof BackendError ? error.code : 'AGENT_ERROR';
    const output = error instanceof BackendError ? (error.details.output ?? null) : null;
    const message = error instanceof Error ? error.message : String(error);
    return { ...base, finishedAt: new Date().toISOString(), result: null, error: { code, message, output: output?.slice(0, 60_000) ?? null } };
  }
}
