import { badUserInput } from './errors.js';

/**
 * Offset cursors: opaque to clients; inside they are positions in the ordered result ("o:<offset>"),
 * which stays simple while sorting on computed columns. Apart from src/api/relay.ts (which carries
 * the GraphQL types) so that the computers page's cursors (src/api/machines/machineCursor.ts) read
 * the old ones without the schema's decorators.
 */
export const encodeCursor = (offset: number) => Buffer.from(`o:${offset}`).toString('base64url');

/** The offset a page after this cursor starts at (0: no cursor). */
export function decodeCursor(cursor: string | null | undefined): number {
  if (cursor === null || cursor === undefined) return 0;
  const match = /^o:(\d{1,9})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw badUserInput('after', 'after is not a cursor this API handed out; pass an endCursor from a previous page.');
  return Number(match[1]) + 1;
}
