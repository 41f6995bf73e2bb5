/**
 * The computers page's order, and a position in it (what a keyset cursor holds): the sort key, then
 * the name, then the id, so every machine has one place and a tie on the key is broken the same way
 * on every page. A page after a position reads from there through an index, whatever its depth,
 * where an offset reads and drops every machine before it (BENCHMARKS.md: a deep page at 1M
 * machines, 1.4 s by offset).
 *
 * The database sorts the same way (src/db/machines.ts, listMachines: the SQL twin of `isAfter`);
 * names compare in the database's collation, so this module never orders names itself: a position
 * is always taken from a row the database returned.
 *
 * Plain functions on plain data.
 */
import { COMPLIANCE_WORST_FIRST } from '../domain/vocabulary.js';
import type { Compliance } from './compliance.js';

export type MachineSortField = 'NAME' | 'COMPLIANCE' | 'CRITICAL_AND_SECURITY_COUNT' | 'OTHER_COUNT' | 'LAST_SEEN' | 'LAST_ASSESSED';
export type SortDirection = 'ASC' | 'DESC';

export interface MachineSort {
  field: MachineSortField;
  direction: SortDirection;
}

/**
 * Where a machine stands in an order: its sort key (null for NAME, which has none beyond the name;
 * null also for a time never recorded), its name and id. Keys are integers: a count, a compliance
 * rank, or a time in microseconds since the epoch (PostgreSQL keeps microseconds: a time rounded to
 * milliseconds would put the cursor's own machine after the cursor).
 */
export interface MachinePosition {
  key: bigint | null;
  name: string;
  id: string;
}

/**
 * The rank of a compliance state in an ascending COMPLIANCE sort: the machines that need attention
 * first (NON_COMPLIANT, then NOT_ASSESSED, then COMPLIANT). Descending reverses it.
 */
export function complianceRank(state: Compliance): number {
  return COMPLIANCE_WORST_FIRST.indexOf(state);
}

/** The compliance states in the order a sort in this direction lists them. */
export function complianceOrder(direction: SortDirection): Compliance[] {
  return direction === 'ASC' ? [...COMPLIANCE_WORST_FIRST] : [...COMPLIANCE_WORST_FIRST].reverse();
}

/** Whether the field's key may be absent (a machine never seen, never assessed). */
export function sortKeyNullable(field: MachineSortField): boolean {
  return field === 'LAST_SEEN' || field === 'LAST_ASSESSED';
}

/**
 * Where a machine with this key comes relative to a position's key in the sort: below zero before,
 * zero tied (the name and id decide), above zero after. A missing key sorts last ascending and
 * first descending (PostgreSQL's default for NULL).
 */
export function compareKeys(direction: SortDirection, key: bigint | null, position: bigint | null): number {
  if (key === position) return 0;
  if (key === null) return direction === 'ASC' ? 1 : -1;
  if (position === null) return direction === 'ASC' ? -1 : 1;
  const ascending = key < position ? -1 : 1;
  return direction === 'ASC' ? ascending : -ascending;
}

/**
 * Whether a machine comes after a position in the order. `nameOrder` compares two names as the
 * database does (its collation); the id breaks a tie on the name (uuids compare as their text).
 */
export function isAfter(direction: SortDirection, machine: MachinePosition, position: MachinePosition, nameOrder: (a: string, b: string) => number): boolean {
  const byKey = compareKeys(direction, machine.key, position.key);
  if (byKey !== 0) return byKey > 0;
  const byName = nameOrder(machine.name, position.name);
  if (byName !== 0) return byName > 0;
  return machine.id > position.id;
}
