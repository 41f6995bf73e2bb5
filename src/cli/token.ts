import os from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config.js';
import { recordAuditEvents } from '../db/audit.js';
import { connectDatabase } from '../db/client.js';
import { migrateDatabase } from '../db/migrate.js';
import { createApiToken, findApiToken, listApiTokens, revokeApiToken, type ApiTokenRow } from '../db/tokens.js';
import { isUuid } from '../fleet/ids.js';
import { isRole, parseTokenExpiry, ROLES, tokenNameProblem } from '../fleet/access.js';
import { requireSetting, setup } from './runtime.js';

const USAGE = `fleetpatch token: API tokens (needs DATABASE_URL)

  fleetpatch token create --role VIEWER|OPERATOR|ADMIN [--name NAME] [--expires 30d|12h|90m|DATE|never]
      Creates a token and prints its secret on stdout, this once (the server keeps only a hash).
      Default name: "created by <user> on <host>"; default expiry: never.
  fleetpatch token list [--json]
      Every token without its secret: id, name, role, state, expiry, last use.
  fleetpatch token revoke ID
      Revokes a token at once: every later request with it is UNAUTHENTICATED.`;

/** A usage mistake: printed with the usage, exit code 2. */
class TokenUsageError extends ConfigError {}

function state(token: ApiTokenRow, now: Date): string {
  if (token.revokedAt) return 'REVOKED';
  if (token.expiresAt && token.expiresAt <= now) return 'EXPIRED';
  return 'ACTIVE';
}

export async function tokenCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === 'help') {
    console.log(USAGE);
    return;
  }
  if (!['create', 'list', 'revoke'].includes(sub)) throw new TokenUsageError(`unknown token command "${sub}".\n\n${USAGE}`);
  const { config } = setup('token');
  const databaseUrl = requireSetting(config.databaseUrl, 'DATABASE_URL', `token ${sub}`);
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { role: { type: 'string' }, name: { type: 'string' }, expires: { type: 'string' }, json: { type: 'boolean', default: false } },
      allowPositionals: true,
      strict: true,
    }));
  } catch (error) {
    throw new TokenUsageError(`${(error as Error).message}\n\n${USAGE}`);
  }
  await migrateDatabase(databaseUrl);
  const database = connectDatabase(databaseUrl, { max: 1 });
  const actor = { actorKind: 'CLI' as const, actorName: `${os.userInfo().username}@${os.hostname()}`, sourceAddress: null };
  try {
    const now = new Date();
    if (sub === 'create') {
      const role = String(values.role ?? '');
      if (!isRole(role)) throw new TokenUsageError(`--role must be one of ${ROLES.join(', ')}${values.role ? `; got "${role}"` : ''}.`);
      const name = typeof values.name === 'string' ? values.name : `created by ${actor.actorName}`;
      const nameProblem = tokenNameProblem(name);
      if (nameProblem) throw new TokenUsageError(`--name: ${nameProblem}`);
      let expiresAt: Date | null = null;
      try {
        expiresAt = typeof values.expires === 'string' ? parseTokenExpiry(values.expires, now) : null;
      } catch (error) {
        throw new TokenUsageError(`--expires: ${(error as Error).message}`);
      }
      const created = await createApiToken(database.db, { name: name.trim(), role, expiresAt });
      await recordAuditEvents(database.db, [{ ...actor, action: 'createApiToken', targetId: created.id, details: { name: name.trim(), role, expiresAt: expiresAt?.toISOString() ?? null }, outcome: 'SUCCEEDED' }]);
      console.error(`Created ${role} token ${created.id} "${name.trim()}"${expiresAt ? `, expires ${expiresAt.toISOString()}` : ', never expires'}. The secret below is shown only now:`);
      console.log(created.secret);
      return;
    }
    if (sub === 'list') {
      const tokens = await listApiTokens(database.db);
      if (values.json) {
        console.log(JSON.stringify(tokens.map((t) => ({ ...t, state: state(t, now) })), null, 2));
        return;
      }
      if (tokens.length === 0) console.log('No API tokens. Create one with `fleetpatch token create --role ADMIN`.');
      for (const t of tokens) {
        console.log(
          [t.id, t.role.padEnd(8), state(t, now).padEnd(7), `expires ${t.expiresAt?.toISOString() ?? 'never'}`, `last used ${t.lastUsedAt?.toISOString() ?? 'never'}`, t.name].join('  '),
        );
      }
      return;
    }
    const id = positionals[0];
    if (!id) throw new TokenUsageError(`token revoke needs the token's id (see \`fleetpatch token list\`).`);
    const token = isUuid(id) ? await findApiToken(database.db, id) : undefined;
    if (!token) throw new ConfigError(`No API token with id ${id}. List them with \`fleetpatch token list\`.`);
    const revoked = (await revokeApiToken(database.db, id))!;
    await recordAuditEvents(database.db, [{ ...actor, action: 'revokeApiToken', targetId: id, details: { id }, outcome: 'SUCCEEDED' }]);
    console.log(`Revoked token ${id} "${revoked.name}" (${revoked.role}) at ${revoked.revokedAt!.toISOString()}.`);
  } finally {
    await database.close();
  }
}
