import { inflateRawSync } from 'node:zlib';

/*
 * The entries of a zip archive held in memory, one at a time: enough of the format (PKWARE's
 * APPNOTE: the central directory, ZIP64 sizes and offsets, stored and deflated entries) to read
 * osv.dev's per-ecosystem exports (https://osv-vulnerabilities.storage.googleapis.com/Ubuntu/all.zip),
 * which hold one JSON file per record and, for Debian and Ubuntu, more than ZIP's 65,535 entries.
 * No dependency for one format read once a day; encryption and other methods are refused.
 */

export class ZipFormatError extends Error {
  override name = 'ZipFormatError';
}

export interface ZipLimits {
  /** The largest entry, unpacked. */
  maxEntryBytes: number;
  /** All entries together, unpacked: a small archive that unpacks to far more is refused as it goes. */
  maxTotalBytes: number;
}

/** Whether the bytes start as a zip archive does (a local file header, or the end record of an empty one). */
export const looksLikeZip = (bytes: Buffer) => bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX16 = 0xffff;
const MAX32 = 0xffffffff;

function u64(bytes: Buffer, at: number): number {
  const value = bytes.readBigUInt64LE(at);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipFormatError('a ZIP64 size or offset is out of range');
  return Number(value);
}

function need(bytes: Buffer, at: number, length: number, what: string): void {
  if (at < 0 || at + length > bytes.length) throw new ZipFormatError(`${what} lies outside the archive`);
}

/** Where the central directory is and how many entries it lists. */
function directory(bytes: Buffer): { offset: number; entries: number } {
  // The end record is the last 22 bytes, or earlier by a comment of at most 65,535 bytes.
  let end = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - MAX16); at--) {
    if (bytes.readUInt32LE(at) === EOCD) {
      end = at;
      break;
    }
  }
  if (end < 0) throw new ZipFormatError('no end of central directory record: not a zip archive, or a truncated one');
  let entries = bytes.readUInt16LE(end + 10);
  let offset = bytes.readUInt32LE(end + 16);
  if (entries === MAX16 || offset === MAX32) {
    const locator = end - 20;
    need(bytes, locator, 20, 'the ZIP64 locator');
    if (bytes.readUInt32LE(locator) !== ZIP64_LOCATOR) throw new ZipFormatError('the archive says ZIP64 but has no ZIP64 locator');
    const record = u64(bytes, locator + 8);
    need(bytes, record, 56, 'the ZIP64 end record');
    if (bytes.readUInt32LE(record) !== ZIP64_EOCD) throw new ZipFormatError('no ZIP64 end record where the locator points');
    entries = u64(bytes, record + 32);
    offset = u64(bytes, record + 48);
  }
  return { offset, entries };
}

/** The entries' names and contents, in the central directory's order; directories are skipped. */
export function* zipEntries(bytes: Buffer, limits: ZipLimits): Generator<{ name: string; data: Buffer }> {
  const { offset, entries } = directory(bytes);
  let at = offset;
  let total = 0;
  for (let i = 0; i < entries; i++) {
    need(bytes, at, 46, `central directory entry ${i}`);
    if (bytes.readUInt32LE(at) !== CENTRAL) throw new ZipFormatError(`central directory entry ${i} is not where the directory says`);
    const flags = bytes.readUInt16LE(at + 8);
    const method = bytes.readUInt16LE(at + 10);
    let compressed = bytes.readUInt32LE(at + 20);
    let size = bytes.readUInt32LE(at + 24);
    const nameLength = bytes.readUInt16LE(at + 28);
    const extraLength = bytes.readUInt16LE(at + 30);
    const commentLength = bytes.readUInt16LE(at + 32);
    let local = bytes.readUInt32LE(at + 42);
    need(bytes, at + 46, nameLength + extraLength, `central directory entry ${i}'s name`);
    const name = bytes.toString('utf8', at + 46, at + 46 + nameLength);
    // ZIP64: the values that did not fit are in the extra field 0x0001, in this order.
    let extra = at + 46 + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = bytes.readUInt16LE(extra);
      const length = bytes.readUInt16LE(extra + 2);
      if (id === 0x0001) {
        let field = extra + 4;
        const take = () => {
          if (field + 8 > extra + 4 + length) throw new ZipFormatError(`${name}: a ZIP64 field is short`);
          const value = u64(bytes, field);
          field += 8;
          return value;
        };
        if (size === MAX32) size = take();
        if (compressed === MAX32) compressed = take();
        if (local === MAX32) local = take();
      }
      extra += 4 + length;
    }
    at = extraEnd + commentLength;
    if (name.endsWith('/')) continue;
    if (flags & 1) throw new ZipFormatError(`${name} is encrypted`);
    if (method !== 0 && method !== 8) throw new ZipFormatError(`${name} is compressed by method ${method}; only stored and deflated entries are read`);
    if (size > limits.maxEntryBytes) throw new ZipFormatError(`${name} unpacks to more than ${limits.maxEntryBytes} bytes`);
    need(bytes, local, 30, `${name}'s local header`);
    if (bytes.readUInt32LE(local) !== LOCAL) throw new ZipFormatError(`${name}'s local header is not where the directory says`);
    const start = local + 30 + bytes.readUInt16LE(local + 26) + bytes.readUInt16LE(local + 28);
    need(bytes, start, compressed, `${name}'s data`);
    const packed = bytes.subarray(start, start + compressed);
    let data: Buffer;
    try {
      data = method === 0 ? packed : inflateRawSync(packed, { maxOutputLength: limits.maxEntryBytes });
    } catch (error) {
      throw new ZipFormatError(`${name} could not be unpacked: ${(error as Error).message}`);
    }
    total += data.length;
    if (total > limits.maxTotalBytes) throw new ZipFormatError(`the archive unpacks to more than ${limits.maxTotalBytes} bytes`);
    yield { name, data };
  }
}
