import fs from 'node:fs';
import path from 'node:path';
import type { Db } from '../db/client.js';
import { createApiToken, findActiveToken } from '../db/tokens.js';

/**
 * The admin token of a dev installation, kept in `<data dir>/admin-token` (mode 0600). Reused while
 * it is still valid in the database, so a second start prints the same token.
 */
export async function ensureAdminToken(db: Db, dataDir: string): Promise<{ token: string; file: string; created: boolean }> {
  const file = path.join(dataDir, 'admin-token');
  if (fs.existsSync(file)) {
    const token = fs.readFileSync(file, 'utf8').trim();
    if (await findActiveToken(db, token)) return { token, file, created: false };
  }
  const { secret } = await createApiToken(db, { name: 'dev admin (fleetpatch dev)', role: 'ADMIN' });
  fs.mkdirSync(dataDir, { recursive: true });
  fs.writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return { token: secret, file, created: true };
}
