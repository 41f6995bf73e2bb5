import { detectBackend } from './backends/index.js';
import { AgentClient, ServerRefusal, ServerUnreachable } from './client.js';
import { AgentRefused } from './errors.js';
import { gatherFacts } from './facts.js';
import type { AgentLog } from './log.js';
import { sleep } from './sleep.js';
import { enrollmentRequestId, ensureStateDir, forgetEnrollmentRequestId, loadIdentity, saveIdentity } from './state.js';
import { pinReleaseKeyAtEnrollment } from './upgrade.js';

export interface EnrollOnceOptions {
  server: string;
  enrollKey: string | undefined;
  stateDir: string;
  root: string;
  bootIdFile: string;
  env: NodeJS.ProcessEnv;
  agentVersion: string;
  log: AgentLog;
  ca?: Buffer;
  /** Attempts while the server cannot be reached, a second apart and doubling (about 15 s with 4). */
  attempts?: number;
}

/**
 * `fleetpatch-agent enroll`: enrolls this machine once and keeps its identity in the state dir, as
 * `run` does at its first start, then stops. The install script enrolls with it, so that a refused
 * key or an unreachable server is known (and the package taken away again) before any service
 * starts. A machine already enrolled answers with its stored id and asks the server nothing.
 */
export async function enrollOnce(options: EnrollOnceOptions): Promise<{ machineId: string; already: boolean }> {
  ensureStateDir(options.stateDir);
  const existing = loadIdentity(options.stateDir);
  if (existing) return { machineId: existing.machineId, already: true };
  if (!options.enrollKey) {
    throw new AgentRefused(`This agent is not enrolled yet (no identity in ${options.stateDir}): give it an enrollment key with --enroll-key-file FILE or the environment variable FLEETPATCH_ENROLL_KEY.`);
  }
  const backend = detectBackend(options.root, options.env);
  const facts = gatherFacts({ root: options.root, agentVersion: options.agentVersion, packageManager: backend?.name ?? null, bootIdFile: options.bootIdFile });
  const client = new AgentClient(options.server, null, options.ca);
  const attempts = options.attempts ?? 4;
  const requestId = enrollmentRequestId(options.stateDir);
  for (let attempt = 1; ; attempt++) {
    try {
      const enrolled = await client.enroll(options.enrollKey, facts, requestId);
      saveIdentity(options.stateDir, { server: options.server, machineId: enrolled.machineId, credential: enrolled.credential });
      forgetEnrollmentRequestId(options.stateDir);
      pinReleaseKeyAtEnrollment(options.stateDir, enrolled.releaseKey, options.log);
      return { machineId: enrolled.machineId, already: false };
    } catch (error) {
      if (error instanceof ServerRefusal) throw new AgentRefused(`The server refused the enrollment (${error.status} ${error.code}): ${error.message}`);
      if (!(error instanceof ServerUnreachable)) throw error;
      if (attempt >= attempts) throw new AgentRefused(`Cannot reach the fleetpatch server at ${options.server}: ${error.message}`);
      await sleep(1000 * 2 ** (attempt - 1));
    }
  }
}
