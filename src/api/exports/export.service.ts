import { serverSecret } from '../../db/serverSecrets.js';
import { findRun } from '../../db/runs.js';
import { sessionStates } from '../../db/sessions.js';
import { tokenStates } from '../../db/tokens.js';
import type { Db } from '../../db/client.js';
import { isUuid } from '../../fleet/ids.js';
import { exportFileName, type ExportFormat, type ExportKind } from '../../exports/format.js';
import { EXPORT_LINK_SECONDS, signExportLink, type ExportGrant } from '../../exports/links.js';
import type { HistoryQuery, HistoryQueryInput } from '../../fleet/complianceHistory.js';
import type { Principal } from '../auth.js';
import { checkedHistoryQuery } from '../complianceHistory/complianceHistory.service.js';
import type { ApiServices } from '../context.js';
import { apiError, badUserInput, notFound } from '../errors.js';

export const EXPORT_PATH = '/exports';
const KEY_NAME = 'export-links';

const keys = new WeakMap<Db, Promise<Buffer>>();

/** The shared link key, read once per process (made on first use by whichever replica is first). */
export function exportLinkKey(db: Db): Promise<Buffer> {
  let key = keys.get(db);
  if (!key) {
    key = serverSecret(db, KEY_NAME);
    keys.set(db, key);
    key.catch(() => keys.delete(db));
  }
  return key;
}

/** Whether the token (and console session) a link was made for still hold: revoked or ended, the link dies with them. */
export async function grantStillHolds(db: Db, grant: ExportGrant, now: Date): Promise<boolean> {
  const [token] = await tokenStates(db, [grant.tokenId]);
  if (!token || token.revokedAt || (token.expiresAt && token.expiresAt <= now)) return false;
  if (grant.sessionId) {
    const [session] = await sessionStates(db, [grant.sessionId]);
    if (!session || session.endedAt || session.expiresAt <= now) return false;
  }
  return true;
}

export class ExportService {
  constructor(private readonly services: ApiServices) {}

  /**
   * A link to download `kind` as `format`, for the principal asking; RUN_RESULTS needs its run;
   * COMPLIANCE_HISTORY takes complianceHistory's from, to and groupBy, checked as the query checks
   * them, with its defaults filled in now (the link downloads the days it was made for).
   */
  async createLink(principal: Principal, input: { kind: ExportKind; format: ExportFormat; runId?: string | null } & HistoryQueryInput, origin: string | undefined) {
    const db = this.services.database.db;
    let runId: string | null = null;
    if (input.kind === 'RUN_RESULTS') {
      if (!input.runId) throw badUserInput('runId', 'RUN_RESULTS exports one run: give its runId.');
      if (!isUuid(input.runId) || !(await findRun(db, input.runId))) throw notFound(`No deployment run with id ${input.runId}.`);
      runId = input.runId;
    } else if (input.runId) {
      throw badUserInput('runId', `runId is only for RUN_RESULTS, not ${input.kind}.`);
    }
    const now = this.services.now();
    let history: HistoryQuery | null = null;
    if (input.kind === 'COMPLIANCE_HISTORY') history = checkedHistoryQuery({ from: input.from, to: input.to, groupBy: input.groupBy }, now);
    else {
      for (const field of ['from', 'to', 'groupBy'] as const) if (input[field] != null) throw badUserInput(field, `${field} is only for COMPLIANCE_HISTORY, not ${input.kind}.`);
    }
    if (!principal.tokenId) throw apiError('FORBIDDEN', 'Exports are for API tokens and console sessions.');
    const expiresAt = Math.floor(now.getTime() / 1000) + EXPORT_LINK_SECONDS;
    const link = signExportLink(await exportLinkKey(db), { kind: input.kind, format: input.format, runId, history, tokenId: principal.tokenId, sessionId: principal.sessionId ?? null, expiresAt });
    const fileName = exportFileName(input.kind, input.format, now);
    return { url: `${origin ?? ''}${EXPORT_PATH}/${fileName}?link=${link}`, expiresAt: new Date(expiresAt * 1000), fileName };
  }
}
