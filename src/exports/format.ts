/*
 * What an export looks like: its kinds, formats and columns, and one row as CSV or JSON text.
 * Plain functions; the streaming is src/api/exports/download.ts, the rows src/db/exports.ts.
 */

export const EXPORT_KINDS = ['COMPUTERS', 'MISSING_UPDATES', 'RUN_RESULTS', 'COMPLIANCE_HISTORY'] as const;
export type ExportKind = (typeof EXPORT_KINDS)[number];

export const EXPORT_FORMATS = ['CSV', 'JSON'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** The columns of each kind, in order: the CSV header and the keys of each JSON object. */
export const EXPORT_COLUMNS: Readonly<Record<ExportKind, readonly string[]>> = {
  COMPUTERS: ['id', 'name', 'osType', 'osName', 'osVersion', 'environment', 'tags', 'compliance', 'agentReadiness', 'criticalCount', 'securityCount', 'otherCount', 'rebootPending', 'agentVersion', 'lastSeenAt', 'lastAssessedAt'],
  MISSING_UPDATES: ['machineId', 'machineName', 'osType', 'name', 'arch', 'installedVersion', 'availableVersion', 'classification', 'severity', 'advisoryIds', 'cveIds', 'advisoryIssuedAt', 'rebootSuggested', 'repository'],
  RUN_RESULTS: ['runId', 'machineId', 'machineName', 'machineRunStatus', 'name', 'arch', 'classification', 'severity', 'installedVersion', 'targetVersion', 'status', 'reason', 'exitCode', 'errorText', 'startedAt', 'endedAt'],
  // One row per group and day, as complianceHistory's series flattened: a series' rows together, oldest day first.
  COMPLIANCE_HISTORY: ['groupBy', 'key', 'label', 'day', 'takenAt', 'machines', 'compliant', 'nonCompliant', 'notAssessed', 'compliantShare', 'overdueMachines', 'overdueUpdates', 'pendingUpdates'],
};

/** The file's name as the browser saves it: computers-2026-12-02.csv. */
export function exportFileName(kind: ExportKind, format: ExportFormat, at: Date): string {
  return `${kind.toLowerCase().replace(/_/g, '-')}-${at.toISOString().slice(0, 10)}.${format.toLowerCase()}`;
}


export const CONTENT_TYPES: Readonly<Record<ExportFormat, string>> = { CSV: 'text/csv; charset=utf-8', JSON: 'application/json; charset=utf-8' };

/**
 * One CSV cell (RFC 4180): quoted when it holds a comma, quote or line break; a list joined with
 * "; "; null empty. A text starting with = + - @ or a tab gets a leading apostrophe, so that a
 * spreadsheet shows it instead of running it as a formula (a hostname or package name is input
 * from the machines).
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  let text = Array.isArray(value) ? value.join('; ') : value instanceof Date ? value.toISOString() : String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvHeader(kind: ExportKind): string {
  return `${EXPORT_COLUMNS[kind].join(',')}\r\n`;
}

export function csvRow(kind: ExportKind, row: Readonly<Record<string, unknown>>): string {
  return `${EXPORT_COLUMNS[kind].map((c) => csvCell(row[c])).join(',')}\r\n`;
}

/** One row as a JSON object with the kind's keys in order (absent ones null). */
export function jsonRow(kind: ExportKind, row: Readonly<Record<string, unknown>>): string {
  const ordered: Record<string, unknown> = {};
  for (const c of EXPORT_COLUMNS[kind]) ordered[c] = row[c] ?? null;
  return JSON.stringify(ordered);
}

/** The text of a batch of rows; `first` says whether the batch opens the document (JSON needs its commas right). */
export function exportChunk(kind: ExportKind, format: ExportFormat, rows: ReadonlyArray<Readonly<Record<string, unknown>>>, first: boolean): string {
  if (format === 'CSV') return rows.map((r) => csvRow(kind, r)).join('');
  return rows.map((r, i) => `${first && i === 0 ? '' : ',\n'}${jsonRow(kind, r)}`).join('');
}

export function exportOpening(kind: ExportKind, format: ExportFormat): string {
  return format === 'CSV' ? csvHeader(kind) : '[\n';
}

export function exportClosing(format: ExportFormat): string {
  return format === 'CSV' ? '' : '\n]\n';
}
