import os from 'node:os';
import { ConfigError } from '../config.js';
import { recordAuditEvents } from '../db/audit.js';
import { connectDatabase, type Database } from '../db/client.js';
import { migrateDatabase } from '../db/migrate.js';
import { createApiToken, findApiToken, listApiTokens, revokeApiToken, type ApiTokenRow } from '../db/tokens.js';
import { isUuid } from '../fleet/ids.js';
import { isRole, parseTokenExpiry, ROLES, tokenNameProblem } from '../fleet/access.js';
import { requireSetting, setup } from './runtime.js';

/** A usage mistake in a token command's values. */
class TokenUsageError extends ConfigError {}

function state(token: ApiTokenRow, now: Date): string {
  if (token.revokedAt) return 'REVOKED';
  if (token.expiresAt && token.expiresAt <= now) return 'EXPIRED';
  return 'ACTIVE';
}

const actor = () => ({ actorKind: 'CLI' as const, actorName: `${os.userInfo().username}@${os.hostname()}`, sourceAddress: null });

/** Runs `work` on the migrated database of DATABASE_URL. */
async function withDatabase<T>(command: string, work: (db: Database['db']) => Promise<T>): Promise<T> {
  const { config } = setup('token');
  const databaseUrl = requireSetting(config.databaseUrl, 'DATABASE_URL', `token ${command}`);
  await migrateDatabase(databaseUrl);
  const database = connectDatabase(databaseUrl, { max: 1 });
  try {
    return await work(database.db);
  } finally {
    await database.close();
  }
}

export async function tokenCreate(options: { role: string; name?: string; expires: string }): Promise<void> {
  const now = new Date();
  const by = actor();
  const role = options.role;
  if (!isRole(role)) throw new TokenUsageError(`--role must be one of ${ROLES.join(', ')}; got "${role}".`);
  const name = options.name ?? `created by ${by.actorName}`;
  const nameProblem = tokenNameProblem(name);
  if (nameProblem) throw new TokenUsageError(`--name: ${nameProblem}`);
  let expiresAt: Date | null;
  try {
    expiresAt = parseTokenExpiry(options.expires, now);
  } catch (error) {
    throw new TokenUsageError(`--expires: ${(error as Error).message}`);
  }
  await withDatabase('create', async (db) => {
    const created = await createApiToken(db, { name: name.trim(), role, expiresAt });
    await recordAuditEvents(db, [{ ...by, action: 'createApiToken', targetId: created.id, details: { name: name.trim(), role, expiresAt: expiresAt?.toISOString() ?? null }, outcome: 'SUCCEEDED' }]);
    console.error(`Created ${role} token ${created.id} "${name.trim()}"${expiresAt ? `, expires ${expiresAt.toISOString()}` : ', never expires'}. The secret below is shown only now:`);
    console.log(created.secret);
  });
}

export async function tokenList(options: { json?: boolean }): Promise<void> {
  await withDatabase('list', async (db) => {
    const now = new Date();
    const tokens = await listApiTokens(db);
    if (options.json) {
      console.log(JSON.stringify(tokens.map((t) => ({ ...t, state: state(t, now) })), null, 2));
      return;
    }
    if (tokens.length === 0) console.log('No API tokens. Create one with `fleetpatch token create --role ADMIN`.');
    for (const t of tokens) {
      console.log([t.id, t.role.padEnd(8), state(t, now).padEnd(7), `expires ${t.expiresAt?.toISOString() ?? 'never'}`, `last used ${t.lastUsedAt?.toISOString() ?? 'never'}`, t.name].join('  '));
    }
  });
}

export async function tokenRevoke(id: string): Promise<void> {
  await withDatabase('revoke', async (db) => {
    const token = isUuid(id) ? await findApiToken(db, id) : undefined;
    if (!token) throw new ConfigError(`No API token with id ${id}. List them with \`fleetpatch token list\`.`);
    const revoked = (await revokeApiToken(db, id))!;
    await recordAuditEvents(db, [{ ...actor(), action: 'revokeApiToken', targetId: id, details: { id }, outcome: 'SUCCEEDED' }]);
    console.log(`Revoked token ${id} "${revoked.name}" (${revoked.role}) at ${revoked.revokedAt!.toISOString()}.`);
  });
}
