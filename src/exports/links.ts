import { createHmac, timingSafeEqual } from 'node:crypto';
import { HISTORY_GROUP_BYS, type HistoryQuery } from '../fleet/complianceHistory.js';
import { EXPORT_FORMATS, EXPORT_KINDS, type ExportFormat, type ExportKind } from './format.js';

/*
 * Signed download links for exports: what to export and for whom, until when, signed with
 * HMAC-SHA256 under a key the API replicas share (server_secrets). The link is the credential for
 * the few minutes it lives, so it travels in the query string (never in a path that is logged) and
 * is checked in a fixed order, each failure with its own reason.
 */

/** How long a link works: long enough to click, short enough that a leaked one is soon worthless. */
export const EXPORT_LINK_SECONDS = 5 * 60;

export interface ExportGrant {
  kind: ExportKind;
  format: ExportFormat;
  /** RUN_RESULTS: the run. */
  runId: string | null;
  /** COMPLIANCE_HISTORY: the days and grouping, as checked (defaults filled in) when the link was made. */
  history: HistoryQuery | null;
  /** The token that asked, and the console session when it was one: the download checks they still hold. */
  tokenId: string;
  sessionId: string | null;
  /** Seconds since the epoch. */
  expiresAt: number;
}

export type LinkRefusal =
  /** The file name's extension is no format we write. */
  | 'UNKNOWN_FORMAT'
  /** No link, or not the shape of one. */
  | 'MALFORMED_LINK'
  /** The signature does not match: forged or altered (a format changed in the file name too). */
  | 'BAD_SIGNATURE'
  /** Signed, but past its expiry. */
  | 'LINK_EXPIRED';

const CONTEXT = 'fleetpatch export link v1\n';

const sign = (key: Buffer, payload: string) => createHmac('sha256', key).update(CONTEXT).update(payload).digest('base64url');

/** The history query a link carries ([from, to, groupBy]), or null. */
function historyOf(value: unknown): HistoryQuery | null {
  if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => typeof v === 'string')) return null;
  const [from, to, groupBy] = value as [string, string, string];
  return (HISTORY_GROUP_BYS as readonly string[]).includes(groupBy) ? { from, to, groupBy: groupBy as HistoryQuery['groupBy'] } : null;
}

/** The link's value: base64url(JSON of the grant) "." base64url(HMAC). */
export function signExportLink(key: Buffer, grant: ExportGrant): string {
  const payload = Buffer.from(JSON.stringify({ k: grant.kind, f: grant.format, r: grant.runId, h: grant.history ? [grant.history.from, grant.history.to, grant.history.groupBy] : null, t: grant.tokenId, s: grant.sessionId, e: grant.expiresAt })).toString('base64url');
  return `${payload}.${sign(key, payload)}`;
}

/**
 * The grant a link carries, or why it is refused: the file name's format first (UNKNOWN_FORMAT),
 * then the link's shape, its signature (which also covers the format), then its expiry.
 */
export function verifyExportLink(key: Buffer, link: unknown, fileName: string, now: Date): { ok: true; grant: ExportGrant } | { ok: false; reason: LinkRefusal } {
  const extension = /\.([A-Za-z0-9]+)$/.exec(fileName)?.[1]?.toUpperCase() ?? '';
  if (!(EXPORT_FORMATS as readonly string[]).includes(extension)) return { ok: false, reason: 'UNKNOWN_FORMAT' };
  if (typeof link !== 'string' || link.length > 2000 || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/.test(link)) return { ok: false, reason: 'MALFORMED_LINK' };
  const [payload, signature] = link.split('.') as [string, string];
  const expected = Buffer.from(sign(key, payload));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'BAD_SIGNATURE' };
  let fields: Record<string, unknown>;
  try {
    fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return { ok: false, reason: 'MALFORMED_LINK' };
  }
  const grant: ExportGrant = {
    kind: fields.k as ExportKind,
    format: fields.f as ExportFormat,
    runId: typeof fields.r === 'string' ? fields.r : null,
    history: historyOf(fields.h),
    tokenId: String(fields.t),
    sessionId: typeof fields.s === 'string' ? fields.s : null,
    expiresAt: Number(fields.e),
  };
  if (!EXPORT_KINDS.includes(grant.kind) || grant.format !== extension || (grant.kind === 'COMPLIANCE_HISTORY' && !grant.history)) return { ok: false, reason: 'BAD_SIGNATURE' };
  if (!(now.getTime() / 1000 < grant.expiresAt)) return { ok: false, reason: 'LINK_EXPIRED' };
  return { ok: true, grant };
}
