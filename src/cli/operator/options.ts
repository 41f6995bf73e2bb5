import { ApiClient } from './client.js';
import { loadCredentials } from './credentials.js';
import { OperatorError } from './errors.js';

/** The API of the saved login (or FLEETPATCH_SERVER / FLEETPATCH_TOKEN). */
export function connect(): ApiClient {
  return new ApiClient(loadCredentials());
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (value: string) => UUID.test(value);

/** An enum value as typed: any case, `-` for `_` (`non-compliant` is NON_COMPLIANT). */
export function enumValue<T extends string>(option: string, value: string, allowed: readonly T[]): T {
  const normalised = value.trim().toUpperCase().replace(/-/g, '_');
  if (!(allowed as readonly string[]).includes(normalised)) throw new OperatorError(`${option} must be one of ${allowed.join(', ')}; got "${value}".`);
  return normalised as T;
}

/** A comma-separated list of enum values (`--compliance non_compliant,not_assessed`). */
export function enumList<T extends string>(option: string, value: string | undefined, allowed: readonly T[]): T[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(',').filter((v) => v.trim() !== '');
  if (items.length === 0) throw new OperatorError(`${option} needs at least one of ${allowed.join(', ')}.`);
  return [...new Set(items.map((v) => enumValue(option, v, allowed)))];
}

export function wholeNumber(option: string, value: string | undefined, range: { min: number; max: number }): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim())) throw new OperatorError(`${option} must be a whole number; got "${value}".`);
  const n = Number(value);
  if (n < range.min || n > range.max) throw new OperatorError(`${option} must be from ${range.min} to ${range.max}; got ${n}.`);
  return n;
}

/** Values of an option given several times or comma-separated (`--tag a --tag b,c`). */
export function listOption(values: string[] | string | undefined): string[] | undefined {
  if (values === undefined) return undefined;
  return (Array.isArray(values) ? values : [values]).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '');
}

/** commander's collector for repeatable options. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** An ISO date-time option, refused when it is not one. */
export function dateTime(option: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new OperatorError(`${option} must be an ISO 8601 date-time such as 2026-07-01T02:00:00+02:00; got "${value}".`);
  return new Date(ms).toISOString();
}

/** Page size of list commands: the API's default and bound. */
export const PAGE = { default: 50, max: 500 } as const;

/** Every page of a connection, or one page, as the options say. */
export async function pages<TNode>(
  fetchPage: (first: number, after: string | undefined) => Promise<{ totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; nodes: TNode[] }>,
  options: { limit?: string; after?: string; all?: boolean },
): Promise<{ nodes: TNode[]; totalCount: number; nextCursor: string | null }> {
  const first = wholeNumber('--limit', options.limit, { min: 1, max: PAGE.max }) ?? PAGE.default;
  const nodes: TNode[] = [];
  let after = options.after;
  for (;;) {
    const page = await fetchPage(options.all ? PAGE.max : first, after);
    nodes.push(...page.nodes);
    const next = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    if (!options.all || !next) return { nodes, totalCount: page.totalCount, nextCursor: next };
    after = next;
  }
}
