import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** What an enrolled agent keeps: the server it belongs to, its machine id and its own credential. */
export interface AgentIdentity {
  server: string;
  machineId: string;
  credential: string;
}

const IDENTITY_FILE = 'identity.json';

export function ensureStateDir(stateDir: string): void {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(stateDir, 0o700);
}

export function loadIdentity(stateDir: string): AgentIdentity | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(stateDir, IDENTITY_FILE), 'utf8')) as AgentIdentity;
  } catch {
    return undefined;
  }
}

/** Written with mode 0600 (and atomically: a crash mid-write never leaves half a credential). */
export function saveIdentity(stateDir: string, identity: AgentIdentity): void {
  const file = path.join(stateDir, IDENTITY_FILE);
  const partial = `${file}.partial`;
  fs.writeFileSync(partial, JSON.stringify(identity, null, 2), { mode: 0o600 });
  fs.renameSync(partial, file);
}

const ENROLLMENT_REQUEST_FILE = 'enrollment-request-id';

/**
 * The id of this machine's enrollment, made before its first attempt and kept in the state dir
 * until the identity is saved: every retry sends it, also after a restart mid-enrollment, so that
 * a request whose answer was lost (a timeout, a dropped connection, a crash) does not enroll the
 * machine a second time: the server answers for the machine it enrolled with it.
 */
export function enrollmentRequestId(stateDir: string): string {
  const file = path.join(stateDir, ENROLLMENT_REQUEST_FILE);
  try {
    const kept = fs.readFileSync(file, 'utf8').trim();
    if (/^[A-Za-z0-9_-]{16,64}$/.test(kept)) return kept;
  } catch {
    // None yet: made below.
  }
  const id = randomUUID();
  const partial = `${file}.partial`;
  fs.writeFileSync(partial, `${id}\n`, { mode: 0o600 });
  fs.renameSync(partial, file);
  return id;
}

/** The machine is enrolled (its identity saved): a later enrollment, from an empty identity, is another one. */
export function forgetEnrollmentRequestId(stateDir: string): void {
  fs.rmSync(path.join(stateDir, ENROLLMENT_REQUEST_FILE), { force: true });
}
