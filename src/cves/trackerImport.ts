import fs from 'node:fs/promises';
import { replaceTrackerFixes, type TrackerImportRow } from '../db/cves.js';
import type { Db } from '../db/client.js';
import { readDebianTracker, TrackerFormatError } from '../fleet/cves.js';

/*
 * Importing the Debian security tracker's JSON (https://security-tracker.debian.org/tracker/data/json,
 * about 70 MB) from a URL or a file on the server. The document is read whole and parsed at once:
 * its JSON cannot be used before it is complete, and a streaming parser would be a dependency for
 * a file read once a day. The rows it yields replace the previous import in one transaction.
 */

export const TRACKER_SOURCE = 'DEBIAN';

/** The largest document taken: five times today's tracker. */
export const MAX_TRACKER_BYTES = 400 * 1024 * 1024;

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

/** Parses the tracker document; NOT_JSON or BAD_FORMAT say where, never what the bytes were. */
export function parseTrackerDocument(bytes: Buffer): ReturnType<typeof readDebianTracker> {
  let document: unknown;
  try {
    document = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new TrackerImportError('NOT_JSON', `the document is not JSON${position ? ` (at byte ${position})` : ''}`);
  }
  try {
    return readDebianTracker(document);
  } catch (error) {
    if (error instanceof TrackerFormatError) throw new TrackerImportError('BAD_FORMAT', `not the Debian security tracker's JSON: ${error.message}`);
    throw error;
  }
}

/**
 * Reads the tracker from an http(s) URL, or from a file when `location` is no URL and `allowPath`
 * (the CLI on the server; the API takes URLs only), and replaces the stored fixes with it.
 */
export async function importDebianTracker(db: Db, location: string, options: { allowPath: boolean }): Promise<TrackerImportRow> {
  const isUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(location);
  if (!isUrl && !options.allowPath) throw new TrackerImportError('BAD_LOCATION', 'give an http or https URL (a file on the server is imported with `fleetpatch cve-import PATH` there).');
  const bytes = isUrl ? await download(trackerUrl(location)) : await readFile(location);
  const fixes = parseTrackerDocument(bytes);
  return replaceTrackerFixes(db, TRACKER_SOURCE, isUrl ? displayLocation(location) : location, fixes);
}
