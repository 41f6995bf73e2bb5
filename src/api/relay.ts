import { ArgsType, type ClassType, Field, Int, ObjectType } from 'type-graphql';
import { badUserInput } from './errors.js';
import { decodeCursor, encodeCursor } from './offsetCursor.js';

import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './pageSize.js';

export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE };

@ObjectType({ description: 'Where a page stands in its list (Relay cursor connections).' })
export class PageInfo {
  @Field(() => Boolean, { description: 'More items follow: ask again with after: endCursor.' })
  hasNextPage!: boolean;

  @Field(() => Boolean, { description: 'Items come before this page.' })
  hasPreviousPage!: boolean;

  @Field(() => String, { nullable: true, description: "The first item's cursor (null: an empty page)." })
  startCursor!: string | null;

  @Field(() => String, { nullable: true, description: "The last item's cursor: pass it as after for the next page (null: an empty page)." })
  endCursor!: string | null;
}

export { decodeCursor };

/**
 * A plain list read a slice at a time: `first` items from `offset`. For lists that are usually short
 * (a machine run's updates) but may be long, where a connection's cursor would change the type:
 * the cost model (limits.ts) counts them by `first`, so aliases cannot make them read everything.
 */
@ArgsType()
export class ListArgs {
  @Field(() => Int, { nullable: true, defaultValue: DEFAULT_PAGE_SIZE, description: `How many items to return (default ${DEFAULT_PAGE_SIZE}, at most ${MAX_PAGE_SIZE}).` })
  first?: number | null;

  @Field(() => Int, { nullable: true, defaultValue: 0, description: 'How many items to skip: pass the number already read to read the next ones.' })
  offset?: number | null;
}

export function listWindow(args: ListArgs): { offset: number; limit: number } {
  const offset = args.offset ?? 0;
  if (!Number.isInteger(offset) || offset < 0) throw badUserInput('offset', `offset must be 0 or more; got ${offset}.`);
  return { offset, limit: pageSize(args, { default: DEFAULT_PAGE_SIZE, max: MAX_PAGE_SIZE }) };
}

/** The slice of an already read list that `first` and `offset` ask for. */
export function listSlice<T>(items: readonly T[], args: ListArgs): T[] {
  const { offset, limit } = listWindow(args);
  return items.slice(offset, offset + limit);
}

@ArgsType()
export class PageArgs {
  @Field(() => Int, { nullable: true, description: `Page size (default ${DEFAULT_PAGE_SIZE}, at most ${MAX_PAGE_SIZE}).` })
  first?: number | null;

  @Field(() => String, { nullable: true, description: 'The endCursor of the previous page.' })
  after?: string | null;
}

export function pageWindow(args: PageArgs, size: { default: number; max: number } = { default: DEFAULT_PAGE_SIZE, max: MAX_PAGE_SIZE }): { offset: number; limit: number } {
  return { offset: decodeCursor(args.after), limit: pageSize(args, size) };
}

function pageSize(args: PageArgs, size: { default: number; max: number }): number {
  const first = args.first ?? size.default;
  if (!Number.isInteger(first) || first < 0 || first > size.max) {
    throw badUserInput('first', `first must be between 0 and ${size.max}; got ${first}.`);
  }
  return first;
}

export interface Connection<T> {
  edges: Array<{ cursor: string; node: T }>;
  pageInfo: PageInfo;
  totalCount: number | Promise<number>;
}

/** A connection whose totalCount, when given as a function, is counted only if a client selects it (a getter: GraphQL reads the field from the object). */
function connection<T>(edges: Connection<T>['edges'], pageInfo: PageInfo, totalCount: number | (() => Promise<number>)): Connection<T> {
  const result = { edges, pageInfo } as Connection<T>;
  Object.defineProperty(result, 'totalCount', { enumerable: true, get: typeof totalCount === 'function' ? totalCount : () => totalCount });
  return result;
}

/**
 * An offset page. With `totalCount` a function (counted only when asked for), whether a next page
 * exists is known from one row more than the page: pass `limit + 1` rows and the limit.
 */
export function toConnection<T>(rows: T[], offset: number, totalCount: number | (() => Promise<number>), limit?: number): Connection<T> {
  const hasNextPage = typeof totalCount === 'number' ? offset + rows.length < totalCount : limit !== undefined && rows.length > limit;
  const page = limit !== undefined ? rows.slice(0, limit) : rows;
  const edges = page.map((node, i) => ({ cursor: encodeCursor(offset + i), node }));
  return connection(
    edges,
    {
      hasNextPage,
      hasPreviousPage: offset > 0,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
    totalCount,
  );
}

/**
 * Keyset cursors, for lists that grow at their end while being read (a run's log): a position in
 * ids ("k:<id>") stays right when rows are added, where an offset would too, but reads without
 * counting past what was read.
 */
const encodeKeyCursor = (id: number) => Buffer.from(`k:${id}`).toString('base64url');

/** The id after which a keyset page starts (0: from the first). */
export function keysetWindow(args: PageArgs, size: { default: number; max: number }): { afterId: number; limit: number } {
  let afterId = 0;
  if (args.after !== null && args.after !== undefined) {
    const match = /^k:(\d{1,15})$/.exec(Buffer.from(args.after, 'base64url').toString('utf8'));
    if (!match) throw badUserInput('after', 'after is not a cursor this API handed out; pass an endCursor from a previous page.');
    afterId = Number(match[1]);
  }
  return { afterId, limit: pageSize(args, size) };
}

/** A keyset page from `limit + 1` rows read after `afterId`. */
export function toKeysetConnection<T extends { id: number }>(rows: T[], window: { afterId: number; limit: number }, totalCount: () => Promise<number>): Connection<T> {
  const page = rows.slice(0, window.limit);
  const edges = page.map((node) => ({ cursor: encodeKeyCursor(node.id), node }));
  return connection(
    edges,
    {
      hasNextPage: rows.length > window.limit,
      hasPreviousPage: window.afterId > 0,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? (window.afterId > 0 ? encodeKeyCursor(window.afterId) : null),
    },
    totalCount,
  );
}

/** A Relay connection type (`<Name>Connection` with `<Name>Edge`) for a node type; `what` names its items in the descriptions ("machine runs"). */
export function ConnectionType<T extends object>(name: string, node: ClassType<T>, what = `${name} items`) {
  @ObjectType(`${name}Edge`, { description: `One of the ${what} of a page, with its cursor.` })
  class Edge {
    @Field(() => String, { description: 'Where this item stands: pass it as after to continue after it.' })
    cursor!: string;

    @Field(() => node, { description: 'The item.' })
    node!: T;
  }

  @ObjectType(`${name}Connection`, { description: `A page of ${what} (Relay cursor connection).` })
  class ConnectionClass {
    @Field(() => [Edge], { description: 'The items of this page, in order.' })
    edges!: Edge[];

    @Field(() => PageInfo, { description: 'Whether more pages follow, and the cursors to ask for them.' })
    pageInfo!: PageInfo;

    @Field(() => Int, { description: 'How many items match, across all pages.' })
    totalCount!: number;
  }
  return ConnectionClass;
}
