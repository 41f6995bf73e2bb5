import fs from 'node:fs/promises';
import path from 'node:path';
import { replaceImportedFixes, type TrackerImportRow } from '../db/cves.js';
import type { Db } from '../db/client.js';
import { readDebianTracker, TrackerFormatError, type TrackerFix } from '../fleet/cves.js';
import { jsonFeedFormat, osvSource, OsvFormatError, OsvReader, readOsvDocument, type CveFeedFormat, type OsvReading } from '../fleet/osv.js';
import { looksLikeZip, ZipFormatError, zipEntries } from './zip.js';

/*
 * Importing CVE fixes of apt machines from a URL or a file on the server: the Debian security
 * tracker's JSON (https://security-tracker.debian.org/tracker/data/json, about 70 MB), or OSV records
 * (Ubuntu's and Debian's: one record, a JSON list of them, a zip of record files as osv.dev exports
 * them, or, from the CLI, a folder of record files such as Canonical's ubuntu-security-notices
 * repository's osv/). A JSON document is read whole and parsed at once: its JSON cannot be used
 * before it is complete, and a streaming parser would be a dependency for a file read once a day; a
 * zip's or a folder's records are parsed one at a time. The rows replace the previous import of the
 * same source in one transaction.
 */

export const TRACKER_SOURCE = 'DEBIAN';

/** The largest document taken: five times today's tracker. */
export const MAX_TRACKER_BYTES = 400 * 1024 * 1024;

/** One OSV record file at most (a record lists every affected version of every release: a few MB for the kernel's). */
export const MAX_OSV_RECORD_BYTES = 64 * 1024 * 1024;

/** A zip's or a folder's records together, unpacked: Ubuntu's whole feed is a few GB at most. */
export const MAX_OSV_TOTAL_BYTES = 8 * 1024 * 1024 * 1024;

/** How long a download may take: the tracker's 70 MB on a slow link. */
export const TRACKER_DOWNLOAD_TIMEOUT_MS = 5 * 60_000;

export type TrackerImportErrorCode = 'BAD_LOCATION' | 'UNREADABLE' | 'TOO_LARGE' | 'NOT_JSON' | 'BAD_FORMAT';

/** Why an import failed, with a code and a message that never quotes the document (a path may name any file). */
export class TrackerImportError extends Error {
  override name = 'TrackerImportError';
  constructor(
    readonly code: TrackerImportErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The URL without user and password, to store and show. */
export function displayLocation(location: string): string {
  try {
    const url = new URL(location);
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return location;
  }
}

/** An http(s) URL, refused otherwise with BAD_LOCATION. */
export function trackerUrl(location: string): URL {
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw new TrackerImportError('BAD_LOCATION', `"${location.slice(0, 200)}" is no URL: give an http or https URL of the tracker's JSON.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TrackerImportError('BAD_LOCATION', `only http and https URLs are read; got ${url.protocol}`);
  return url;
}

async function download(url: URL): Promise<Buffer> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(TRACKER_DOWNLOAD_TIMEOUT_MS), redirect: 'follow' });
  } catch (error) {
    throw new TrackerImportError('UNREADABLE', `${displayLocation(url.toString())} could not be read: ${(error as Error).message}`);
  }
  if (!response.ok || !response.body) throw new TrackerImportError('UNREADABLE', `${displayLocation(url.toString())} answered HTTP ${response.status}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > MAX_TRACKER_BYTES) throw new TrackerImportError('TOO_LARGE', `${displayLocation(url.toString())} is larger than ${MAX_TRACKER_BYTES / 1024 / 1024} MB`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

async function readFile(file: string): Promise<Buffer> {
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new TrackerImportError('UNREADABLE', `${file} is not a file`);
    if (stat.size > MAX_TRACKER_BYTES) throw new TrackerImportError('TOO_LARGE', `${file} is larger than ${MAX_TRACKER_BYTES / 1024 / 1024} MB`);
    return await fs.readFile(file);
  } catch (error) {
    if (error instanceof TrackerImportError) throw error;
    throw new TrackerImportError('UNREADABLE', `${file} could not be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new TrackerImportError('NOT_JSON', `${what} is not JSON${position ? ` (at byte ${position})` : ''}`);
  }
}

function readTracker(document: unknown): TrackerFix[] {
  try {
    return readDebianTracker(document);
  } catch (error) {
    if (error instanceof TrackerFormatError) throw new TrackerImportError('BAD_FORMAT', `not the Debian security tracker's JSON: ${error.message}`);
    throw error;
  }
}

function readOsv<T>(read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof OsvFormatError || error instanceof ZipFormatError) throw new TrackerImportError('BAD_FORMAT', `not OSV records: ${error.message}`);
    throw error;
  }
}

/** What a document held, by format. */
export type ParsedCveFeed = { format: 'DEBIAN_TRACKER'; fixes: TrackerFix[] } | { format: 'OSV'; reading: OsvReading };

/**
 * Parses a document: a zip archive of OSV records, or JSON in the format asked for (by default the
 * one it looks like: jsonFeedFormat). NOT_JSON or BAD_FORMAT say where, never what the bytes were.
 */
export function parseCveFeed(bytes: Buffer, format?: CveFeedFormat): ParsedCveFeed {
  if (looksLikeZip(bytes)) {
    if (format === 'DEBIAN_TRACKER') throw new TrackerImportError('BAD_FORMAT', "a zip archive is not the Debian security tracker's JSON");
    return { format: 'OSV', reading: readOsv(() => readOsvZip(bytes)) };
  }
  const document = parseJson(bytes, 'the document');
  const detected = format ?? jsonFeedFormat(document);
  return detected === 'OSV' ? { format: 'OSV', reading: readOsv(() => readOsvDocument(document)) } : { format: 'DEBIAN_TRACKER', fixes: readTracker(document) };
}

/** The `.json` entries of a zip, each one record (osv.dev's exports) or a list of them. */
export function readOsvZip(bytes: Buffer): OsvReading {
  const reader = new OsvReader();
  for (const entry of zipEntries(bytes, { maxEntryBytes: MAX_OSV_RECORD_BYTES, maxTotalBytes: MAX_OSV_TOTAL_BYTES })) {
    if (entry.name.toLowerCase().endsWith('.json')) addRecords(reader, parseJson(entry.data, entry.name), entry.name);
  }
  return reader.result();
}

function addRecords(reader: OsvReader, document: unknown, where: string): void {
  if (Array.isArray(document)) document.forEach((record, i) => reader.add(record, `${where} record ${i}`));
  else reader.add(document, where);
}

/** Every `.json` file under a folder (and its subfolders, in name order), each one record or a list of them. */
export async function readOsvFolder(folder: string): Promise<OsvReading> {
  const reader = new OsvReader();
  let total = 0;
  const walk = async (dir: string): Promise<void> => {
    const entries = (await fs.readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(file);
      else if (entry.isFile() && entry.name.toLowerCase().endsWith('.json')) {
        const { size } = await fs.stat(file);
        if (size > MAX_OSV_RECORD_BYTES) throw new TrackerImportError('TOO_LARGE', `${file} is larger than ${MAX_OSV_RECORD_BYTES / 1024 / 1024} MB`);
        total += size;
        if (total > MAX_OSV_TOTAL_BYTES) throw new TrackerImportError('TOO_LARGE', `the .json files under ${folder} add up to more than ${MAX_OSV_TOTAL_BYTES / 1024 ** 3} GB`);
        const relative = path.relative(folder, file);
        const bytes = await fs.readFile(file);
        readOsv(() => addRecords(reader, parseJson(bytes, relative), relative));
      }
    }
  };
  try {
    await walk(folder);
  } catch (error) {
    if (error instanceof TrackerImportError) throw error;
    throw new TrackerImportError('UNREADABLE', `${folder} could not be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return reader.result();
}

/** The answer to an import: the tracker's row, or for OSV records the sum over the distributions they held (`source` OSV). */
export interface CveImportAnswer {
  source: string;
  location: string;
  importedAt: Date;
  fixes: number;
  cves: number;
  /** The stored imports it made, one per source (DEBIAN; OSV:UBUNTU, OSV:DEBIAN). */
  imports: TrackerImportRow[];
}

/**
 * Reads CVE fixes from an http(s) URL, or from a file or a folder (OSV records) when `location` is
 * no URL and `allowPath` (the CLI on the server; the API takes URLs only), and replaces the stored
 * fixes of the sources it holds: the tracker's, or each distribution's OSV records. An OSV import
 * that names no Debian or Ubuntu release is refused (BAD_FORMAT) and replaces nothing.
 */
export async function importCveFeed(db: Db, location: string, options: { allowPath: boolean; format?: CveFeedFormat }): Promise<CveImportAnswer> {
  const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(location);
  if (!isUrl && !options.allowPath) throw new TrackerImportError('BAD_LOCATION', 'give an http or https URL (a file on the server is imported with `fleetpatch cve-import PATH` there).');
  const shown = isUrl ? displayLocation(location) : location;
  const folder = !isUrl && (await fs.stat(location).catch(() => null))?.isDirectory();
  if (folder && options.format === 'DEBIAN_TRACKER') throw new TrackerImportError('BAD_FORMAT', "a folder is not the Debian security tracker's JSON: give the file");
  const parsed: ParsedCveFeed = folder
    ? { format: 'OSV', reading: await readOsvFolder(location) }
    : parseCveFeed(isUrl ? await download(trackerUrl(location)) : await readFile(location), options.format);
  if (parsed.format === 'DEBIAN_TRACKER') {
    const row = await replaceImportedFixes(db, shown, [{ source: TRACKER_SOURCE, fixes: parsed.fixes }]);
    return { ...row[0]!, imports: row };
  }
  const { reading } = parsed;
  if (reading.distributions.length === 0) {
    throw new TrackerImportError('BAD_FORMAT', `not OSV records of Debian or Ubuntu: none of the ${reading.records} record(s) names an affected package of a release fleetpatch matches (ecosystems Debian:10 to Debian:14, Ubuntu:YY.MM[:LTS], Ubuntu:Pro:YY.MM:LTS)`);
  }
  const imports = await replaceImportedFixes(
    db,
    shown,
    reading.distributions.map((d) => ({ source: osvSource(d), fixes: reading.fixes.filter((f) => f.distribution === d) })),
  );
  return {
    source: 'OSV',
    location: shown,
    importedAt: imports[0]!.importedAt,
    fixes: imports.reduce((n, i) => n + i.fixes, 0),
    cves: new Set(reading.fixes.map((f) => f.cveId)).size,
    imports,
  };
}

/** The Debian security tracker's JSON only, as importCveFeed reads it. */
export function importDebianTracker(db: Db, location: string, options: { allowPath: boolean }): Promise<CveImportAnswer> {
  return importCveFeed(db, location, { ...options, format: 'DEBIAN_TRACKER' });
}
