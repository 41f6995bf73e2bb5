import { OperatorError } from './errors.js';
import {
  CliApiTokensDocument,
  CliCreateApiTokenDocument,
  CliCreateEnrollmentKeyDocument,
  CliEnrollmentKeysDocument,
  CliRevokeApiTokenDocument,
  CliRevokeEnrollmentKeyDocument,
  type CliApiTokensQuery,
  type CliEnrollmentKeysQuery,
  type Role,
} from './graphql.generated.js';
import { ago, note, outputFormat, printRecord, printRows, type Column } from './output.js';
import { connect, dateTime, isUuid, listOption, wholeNumber } from './options.js';

const ROLES: readonly Role[] = ['VIEWER', 'OPERATOR', 'ADMIN'];

/** `--expires`: `90d`, `12h`, `30m`, an ISO date-time, or `never`. */
export function expiryOption(value: string | undefined, now = Date.now()): string | null | undefined {
  if (value === undefined) return undefined;
  const text = value.trim().toLowerCase();
  if (text === 'never') return null;
  const relative = /^(\d+)\s*([dhm])$/.exec(text);
  if (relative) return new Date(now + Number(relative[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[relative[2] as 'd' | 'h' | 'm']).toISOString();
  const iso = dateTime('--expires', value);
  if (!iso) throw new OperatorError(`--expires must be 90d, 12h, 30m, an ISO date-time or never; got "${value}".`);
  return iso;
}

function idOf(what: string, ref: string): string {
  if (!isUuid(ref)) throw new OperatorError(`"${ref}" is not ${what} id (a UUID, as the list shows).`);
  return ref.toLowerCase();
}

export const TOKEN_COLUMNS: Column[] = [
  { path: 'name', header: 'NAME' },
  { path: 'role', header: 'ROLE' },
  { path: 'state', header: 'STATE' },
  { path: 'expiresAt', header: 'EXPIRES', format: (v) => (v ? String(v) : 'never') },
  { path: 'lastUsedAt', header: 'LAST USED', format: (v) => (v ? ago(v) : 'never') },
  { path: 'createdAt', table: false },
  { path: 'revokedAt', table: false },
  { path: 'id', header: 'ID' },
];

export async function tokensList(options: { output?: string }): Promise<void> {
  const format = outputFormat(options.output);
  const client = connect();
  const tokens: Array<CliApiTokensQuery['apiTokens']['edges'][number]['node']> = [];
  for (let after: string | null = null; ; ) {
    const { apiTokens }: CliApiTokensQuery = await client.request(CliApiTokensDocument, { after });
    tokens.push(...apiTokens.edges.map((e) => e.node));
    if (!apiTokens.pageInfo.hasNextPage || !apiTokens.pageInfo.endCursor) break;
    after = apiTokens.pageInfo.endCursor;
  }
  printRows(format, tokens, TOKEN_COLUMNS);
}

export async function tokensCreate(options: { name: string; role: string; expires?: string; output?: string }): Promise<void> {
  const format = outputFormat(options.output);
  const role = options.role.trim().toUpperCase() as Role;
  if (!ROLES.includes(role)) throw new OperatorError(`--role must be one of ${ROLES.join(', ')}; got "${options.role}".`);
  const { createApiToken } = await connect().request(CliCreateApiTokenDocument, { input: { name: options.name, role, expiresAt: expiryOption(options.expires) } });
  if (format === 'json') {
    printRecord('json', createApiToken, []);
    return;
  }
  // The secret alone on stdout, so `fleetpatch tokens create ... > file` keeps only it.
  process.stdout.write(`${createApiToken.secret}\n`);
  note(`Created ${createApiToken.token.role} token "${createApiToken.token.name}" (${createApiToken.token.id}), ${createApiToken.token.expiresAt ? `expiring ${createApiToken.token.expiresAt}` : 'never expiring'}. The secret above is shown this once.`);
}

export async function tokensRevoke(ref: string): Promise<void> {
  const { revokeApiToken } = await connect().request(CliRevokeApiTokenDocument, { id: idOf('a token', ref) });
  process.stdout.write(`Revoked token "${revokeApiToken.name}" (${revokeApiToken.id}) at ${revokeApiToken.revokedAt}: every later request with it is refused.\n`);
}

export const ENROLLMENT_KEY_COLUMNS: Column[] = [
  { path: 'description', header: 'DESCRIPTION' },
  { path: 'state', header: 'STATE' },
  { path: 'useCount', header: 'USED', format: (v, row) => `${String(v)}/${row.maxUses ?? '∞'}` },
  { path: 'maxUses', table: false },
  { path: 'defaultTags', header: 'TAGS', format: (v) => ((v as string[]).length > 0 ? (v as string[]).join(',') : '-') },
  { path: 'expiresAt', header: 'EXPIRES', format: (v) => (v ? String(v) : 'never') },
  { path: 'lastUsedAt', table: false },
  { path: 'createdAt', table: false },
  { path: 'revokedAt', table: false },
  { path: 'id', header: 'ID' },
];

export async function enrollmentKeysList(options: { output?: string }): Promise<void> {
  const format = outputFormat(options.output);
  const client = connect();
  const keys: Array<CliEnrollmentKeysQuery['enrollmentKeys']['edges'][number]['node']> = [];
  for (let after: string | null = null; ; ) {
    const { enrollmentKeys }: CliEnrollmentKeysQuery = await client.request(CliEnrollmentKeysDocument, { after });
    keys.push(...enrollmentKeys.edges.map((e) => e.node));
    if (!enrollmentKeys.pageInfo.hasNextPage || !enrollmentKeys.pageInfo.endCursor) break;
    after = enrollmentKeys.pageInfo.endCursor;
  }
  printRows(format, keys, ENROLLMENT_KEY_COLUMNS);
}

export async function enrollmentKeysCreate(options: { description: string; expires?: string; maxUses?: string; unlimited?: boolean; tag?: string[]; output?: string }): Promise<void> {
  const format = outputFormat(options.output);
  const expiresAt = expiryOption(options.expires);
  const { createEnrollmentKey } = await connect().request(CliCreateEnrollmentKeyDocument, {
    input: {
      description: options.description,
      defaultTags: listOption(options.tag),
      ...(expiresAt === null ? { neverExpires: true } : expiresAt !== undefined ? { expiresAt } : {}),
      ...(options.unlimited ? { unlimitedUses: true } : { maxUses: wholeNumber('--max-uses', options.maxUses, { min: 1, max: 1_000_000 }) }),
    },
  });
  if (format === 'json') {
    printRecord('json', createEnrollmentKey, []);
    return;
  }
  process.stdout.write(`${createEnrollmentKey.secret}\n`);
  const key = createEnrollmentKey.key;
  note(`Created enrollment key "${key.description}" (${key.id}): ${key.maxUses ?? 'any number of'} machines, ${key.expiresAt ? `until ${key.expiresAt}` : 'never expiring'}. The key above is shown this once; agents take it with --enroll-key-file or FLEETPATCH_ENROLL_KEY.`);
}

export async function enrollmentKeysRevoke(ref: string): Promise<void> {
  const { revokeEnrollmentKey } = await connect().request(CliRevokeEnrollmentKeyDocument, { id: idOf('an enrollment key', ref) });
  process.stdout.write(`Revoked enrollment key "${revokeEnrollmentKey.description}" (${revokeEnrollmentKey.id}); machines enrolled with it keep working.\n`);
}
