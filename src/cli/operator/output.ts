import { createRequire } from 'node:module';
import type TableType from 'cli-table3';
import { OperatorError } from './errors.js';

export const OUTPUT_FORMATS = ['table', 'json', 'csv'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function outputFormat(value: string | undefined): OutputFormat {
  const format = (value ?? 'table').toLowerCase();
  if (!(OUTPUT_FORMATS as readonly string[]).includes(format)) throw new OperatorError(`--output must be one of ${OUTPUT_FORMATS.join(', ')}; got "${value}".`);
  return format as OutputFormat;
}

/**
 * One column of a listing: `path` is where its value is in a row (dots into nested objects,
 * `readinessDetail.state`) and is the column's name in CSV; `header` names it in a table.
 */
export interface Column {
  path: string;
  header?: string;
  /** Shown in the table (every column is in the CSV). */
  table?: boolean;
  /** How the table shows it; CSV always has the raw value. */
  format?: (value: unknown, row: Record<string, unknown>) => string;
}

/** The value at a dotted path. */
export function valueAt(row: unknown, path: string): unknown {
  let value: unknown = row;
  for (const key of path.split('.')) value = value === null || value === undefined ? undefined : (value as Record<string, unknown>)[key];
  return value;
}

/**
 * A value as one CSV cell: null is empty, a list of scalars is joined with "; " (tags, CVE ids), an
 * object (never expected: columns point at scalars) is its JSON.
 */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.map((v) => cellText(v)).join('; ');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** RFC 4180: a field holding a comma, a quote or a line break is quoted, its quotes doubled. */
export function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(rows: readonly unknown[], columns: readonly Column[]): string {
  const lines = [columns.map((c) => csvField(c.path)).join(',')];
  for (const row of rows) lines.push(columns.map((c) => csvField(cellText(valueAt(row, c.path)))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

// cli-table3 is CommonJS and only the table output needs it: loaded on first use, not at start.
const require = createRequire(import.meta.url);

/** A borderless table with a header line, like `kubectl get`: columns padded, nothing else. */
export function toTable(rows: readonly unknown[], columns: readonly Column[]): string {
  const Table = require('cli-table3') as typeof TableType;
  const shown = columns.filter((c) => c.table !== false);
  const blank = { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' };
  const table = new Table({ head: shown.map((c) => c.header ?? c.path), chars: blank, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 } });
  for (const row of rows) table.push(shown.map((c) => (c.format ? c.format(valueAt(row, c.path), row as Record<string, unknown>) : cellText(valueAt(row, c.path)))));
  return `${table.toString().replace(/[ \t]+$/gm, '')}\n`;
}

export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Prints a listing in the chosen format on stdout. */
export function printRows(format: OutputFormat, rows: readonly unknown[], columns: readonly Column[]): void {
  if (format === 'json') process.stdout.write(toJson(rows));
  else if (format === 'csv') process.stdout.write(toCsv(rows, columns));
  else if (rows.length > 0) process.stdout.write(toTable(rows, columns));
}

/** One record shown as `key: value` lines in a table, or as JSON. */
export function printRecord(format: OutputFormat, record: unknown, fields: ReadonlyArray<[label: string, value: unknown]>): void {
  if (format === 'json') {
    process.stdout.write(toJson(record));
    return;
  }
  const width = Math.max(...fields.map(([label]) => label.length));
  for (const [label, value] of fields) process.stdout.write(`${`${label}:`.padEnd(width + 2)}${cellText(value)}\n`);
}

/** Something said about the output (paging, counts): on stderr, so stdout stays the data alone. */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** "3 minutes ago" style age of a time, for tables. */
export function ago(iso: unknown, now = Date.now()): string {
  if (typeof iso !== 'string') return '-';
  const seconds = Math.round((now - Date.parse(iso)) / 1000);
  if (!Number.isFinite(seconds)) return '-';
  if (seconds < 0) return `in ${duration(-seconds)}`;
  return `${duration(seconds)} ago`;
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}
