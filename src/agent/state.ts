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
