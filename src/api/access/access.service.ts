import { listAuditEvents, type AuditEventRow } from '../../db/audit.js';
import { apiTokensPage, createApiToken, findApiToken, revokeApiToken, type ApiTokenRow } from '../../db/tokens.js';
import { tokenExpiryProblem, tokenNameProblem, type Role } from '../../fleet/access.js';
import type { ApiServices } from '../context.js';
import { badUserInput, notFound } from '../errors.js';
import type { AuditEventFilter } from './access.type.js';

export class AccessService {
  constructor(private readonly services: ApiServices) {}

  private get db() {
    return this.services.database.db;
  }

  async createToken(input: { name: string; role: Role; expiresAt?: Date | null }): Promise<{ token: ApiTokenRow; secret: string }> {
    const nameProblem = tokenNameProblem(input.name);
    if (nameProblem) throw badUserInput('name', `name: ${nameProblem}`);
    if (input.expiresAt) {
      const problem = tokenExpiryProblem(input.expiresAt, this.services.now());
      if (problem) throw badUserInput('expiresAt', `expiresAt: ${problem}`);
    }
    const created = await createApiToken(this.db, { name: input.name.trim(), role: input.role, expiresAt: input.expiresAt ?? null });
    return { token: (await findApiToken(this.db, created.id))!, secret: created.secret };
  }

  tokensPage(page: { offset: number; limit: number }) {
    return apiTokensPage(this.db, page);
  }

  async revokeToken(id: string): Promise<ApiTokenRow> {
    const token = await revokeApiToken(this.db, id);
    if (!token) throw notFound(`No API token with id ${id}. List them with the apiTokens query.`);
    return token;
  }

  tokenState(token: ApiTokenRow): 'ACTIVE' | 'REVOKED' | 'EXPIRED' {
    if (token.revokedAt) return 'REVOKED';
    if (token.expiresAt && token.expiresAt <= this.services.now()) return 'EXPIRED';
    return 'ACTIVE';
  }

  auditEvents(filter: AuditEventFilter, page: { offset: number; limit: number }): Promise<{ rows: AuditEventRow[]; totalCount: number }> {
    return listAuditEvents(this.db, filter, page);
  }
}
