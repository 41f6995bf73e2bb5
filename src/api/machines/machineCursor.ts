import type { MachinePosition, MachineSort } from '../../fleet/machineOrder.js';
import { badUserInput } from '../errors.js';
import { decodeCursor } from '../offsetCursor.js';

/**
 * The computers page's cursors: a position in the order (src/fleet/machineOrder.ts), so a page after
 * a cursor is read from there through an index, at any depth. Inside (opaque to clients):
 * "m:" + JSON [field, direction, key, name, id], base64url. A cursor says which order it is a
 * position in: given with another orderBy it is refused (a position in one order means nothing in
 * another).
 *
 * Cursors handed out before (an offset, "o:<n>", src/api/offsetCursor.ts) are still read, as the offset
 * they were: clients hold them across an upgrade. The page they ask for carries position cursors.
 */
export type MachineCursor = { kind: 'start' } | { kind: 'offset'; offset: number } | { kind: 'position'; position: MachinePosition };

const PREFIX = 'm:';

export function encodeMachineCursor(sort: MachineSort, position: MachinePosition): string {
  const key = position.key === null ? null : position.key.toString();
  return Buffer.from(PREFIX + JSON.stringify([sort.field, sort.direction, key, position.name, position.id])).toString('base64url');
}

const refused = () => badUserInput('after', 'after is not a cursor this API handed out; pass an endCursor from a previous page.');

export function decodeMachineCursor(cursor: string | null | undefined, sort: MachineSort): MachineCursor {
  if (cursor === null || cursor === undefined) return { kind: 'start' };
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith(PREFIX)) return { kind: 'offset', offset: decodeCursor(cursor) };
  let parts: unknown;
  try {
    parts = JSON.parse(text.slice(PREFIX.length));
  } catch {
    throw refused();
  }
  if (!Array.isArray(parts) || parts.length !== 5) throw refused();
  const [field, direction, key, name, id] = parts as unknown[];
  if (typeof name !== 'string' || typeof id !== 'string' || !/^[0-9a-f-]{36}$/.test(id)) throw refused();
  if (key !== null && (typeof key !== 'string' || !/^-?\d{1,20}$/.test(key))) throw refused();
  if (field !== sort.field || direction !== sort.direction) {
    throw badUserInput('after', `after is a cursor of the order ${String(field)} ${String(direction)}, not of ${sort.field} ${sort.direction}: start again without after when the order changes.`);
  }
  return { kind: 'position', position: { key: key === null ? null : BigInt(key), name, id } };
}
