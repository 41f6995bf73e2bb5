import type { Request, Response } from 'express';
import { complianceHistoryRows, computerRows, missingUpdateRows, runResultRows, type ExportRow } from '../../db/exports.js';
import { CONTENT_TYPES, exportChunk, exportClosing, exportFileName, exportOpening, type ExportFormat, type ExportKind } from '../../exports/format.js';
import { verifyExportLink, type LinkRefusal } from '../../exports/links.js';
import type { ApiServices } from '../context.js';
import { dependencyAway, unavailableMessage, type ErrorCode } from '../errors.js';
import { exportLinkKey, grantStillHolds } from './export.service.js';

const REFUSALS: Record<LinkRefusal | 'ACCESS_ENDED', { status: number; code: ErrorCode; message: string }> = {
  UNKNOWN_FORMAT: { status: 400, code: 'BAD_USER_INPUT', message: 'Exports are .csv or .json files: ask createExport for a link.' },
  MALFORMED_LINK: { status: 400, code: 'BAD_USER_INPUT', message: 'The link parameter is missing or is not an export link: ask createExport for one.' },
  BAD_SIGNATURE: { status: 403, code: 'FORBIDDEN', message: 'The link was not signed by this server or was altered: ask createExport for a new one.' },
  LINK_EXPIRED: { status: 410, code: 'FORBIDDEN', message: 'The link has expired (links work for 5 minutes): ask createExport for a new one.' },
  ACCESS_ENDED: { status: 403, code: 'FORBIDDEN', message: 'The token or console session that asked for this link has been revoked or has ended.' },
};

/** Writes text, resolving when the client took it (or went away): a slow client holds the export back, not the server's memory. */
function writer(res: Response): { write(text: string): Promise<void>; gone(): boolean } {
  let closed = false;
  res.on('close', () => {
    closed = true;
  });
  return {
    gone: () => closed || res.destroyed,
    write: (text) =>
      res.write(text) || closed
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const done = () => {
              res.off('drain', done);
              res.off('close', done);
              resolve();
            };
            res.on('drain', done);
            res.on('close', done);
          }),
  };
}

/**
 * GET /exports/<file>?link=...: checks the link (format, signature, expiry, the asker's access),
 * then streams the rows batch by batch from a database cursor. Refusals are JSON with the API's
 * codes and a reason; the link itself is never logged.
 */
export function exportDownload(services: ApiServices) {
  return async (req: Request, res: Response): Promise<void> => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    const { database, logger } = services;
    const started = Date.now();
    let kind: ExportKind | undefined;
    let rows = 0;
    try {
      database.availability.check();
      const verdict = verifyExportLink(await exportLinkKey(database.db), req.query.link, String(req.params.fileName ?? ''), services.now());
      const refusal = !verdict.ok ? verdict.reason : (await grantStillHolds(database.db, verdict.grant, services.now())) ? null : 'ACCESS_ENDED';
      if (refusal || !verdict.ok) {
        const r = REFUSALS[refusal!];
        logger.info({ reason: refusal }, 'export link refused');
        res.status(r.status).json({ error: { code: r.code, reason: refusal, message: r.message } });
        return;
      }
      const { grant } = verdict;
      kind = grant.kind;
      const format: ExportFormat = grant.format;
      const source =
        grant.kind === 'COMPUTERS'
          ? computerRows(database, services.now(), services.fleet.thresholds)
          : grant.kind === 'MISSING_UPDATES'
            ? missingUpdateRows(database)
            : grant.kind === 'RUN_RESULTS'
              ? runResultRows(database, grant.runId!)
              : complianceHistoryRows(database, grant.history!);
      res.status(200);
      res.setHeader('Content-Type', CONTENT_TYPES[format]);
      res.setHeader('Content-Disposition', `attachment; filename="${exportFileName(grant.kind, format, services.now())}"`);
      const out = writer(res);
      await out.write(exportOpening(grant.kind, format));
      for await (const batch of source as AsyncIterable<ExportRow[]>) {
        if (out.gone()) break;
        await out.write(exportChunk(grant.kind, format, batch, rows === 0));
        rows += batch.length;
      }
      if (out.gone()) {
        logger.info({ kind, rows }, 'export abandoned by the client');
        return;
      }
      res.end(exportClosing(format));
      logger.info({ kind, format, rows, ms: Date.now() - started }, 'export downloaded');
    } catch (error) {
      const away = dependencyAway(error);
      if (!res.headersSent) {
        if (away) res.status(503).setHeader('Retry-After', '5').json({ error: { code: 'SERVICE_UNAVAILABLE', message: unavailableMessage(away, error) } });
        else {
          logger.error({ err: error, kind }, 'export failed');
          res.status(500).json({ error: { code: 'INTERNAL', message: 'Internal server error; the server logged the details.' } });
        }
        return;
      }
      // Half sent: cut the connection, so that the client sees a broken download rather than a short file.
      logger.warn({ err: away ? undefined : error, kind, rows }, 'export cut off');
      res.destroy();
    }
  };
}
