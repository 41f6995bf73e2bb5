import { SEVERITIES } from '../domain/vocabulary.js';
import type { OsType } from './compliance.js';

/** An update missing on machines of one OS type (what the snapshot holds). */
export interface MissingUpdateGroup {
  osType: OsType;
  name: string;
  classification: string;
  machineCount: number;
  severity: string | null;
  availableVersions: string[];
  advisoryIds: string[];
  cveIds: string[];
  rebootSuggested: boolean;
}

/** An update missing somewhere in the fleet, as the missing updates page lists it. */
export type MissingUpdate = Omit<MissingUpdateGroup, 'osType'>;

export interface MissingUpdateQuery {
  classification?: string[];
  osType?: OsType;
  /** Case-insensitive part of the name. */
  nameContains?: string;
  offset: number;
  limit: number;
}

const SEVERITY_ORDER: readonly string[] = SEVERITIES;
const classificationRank = (c: string) => (c === 'CRITICAL' ? 0 : c === 'SECURITY' ? 1 : 2);
const union = (a: string[], b: string[]) => [...new Set([...a, ...b])].sort();

function highestSeverity(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return SEVERITY_ORDER.indexOf(a) <= SEVERITY_ORDER.indexOf(b) ? a : b;
}

/**
 * One page of the fleet's missing updates: the groups that match the filter, one row per update
 * (name and classification) over both OS types, critical first, then security, then the rest; within
 * each, the update most machines miss first, then by name.
 */
export function missingUpdatesPage(groups: readonly MissingUpdateGroup[], query: MissingUpdateQuery): { rows: MissingUpdate[]; totalCount: number } {
  const needle = query.nameContains?.toLowerCase();
  const byUpdate = new Map<string, MissingUpdate>();
  for (const g of groups) {
    if (query.osType && g.osType !== query.osType) continue;
    if (query.classification?.length && !query.classification.includes(g.classification)) continue;
    if (needle && !g.name.toLowerCase().includes(needle)) continue;
    const key = `${g.classification}\u0000${g.name}`;
    const seen = byUpdate.get(key);
    const { osType: _osType, ...update } = g;
    byUpdate.set(
      key,
      seen
        ? {
            ...seen,
            machineCount: seen.machineCount + g.machineCount,
            severity: highestSeverity(seen.severity, g.severity),
            availableVersions: union(seen.availableVersions, g.availableVersions),
            advisoryIds: union(seen.advisoryIds, g.advisoryIds),
            cveIds: union(seen.cveIds, g.cveIds),
            rebootSuggested: seen.rebootSuggested || g.rebootSuggested,
          }
        : update,
    );
  }
  const ordered = [...byUpdate.values()].sort(
    (a, b) =>
      classificationRank(a.classification) - classificationRank(b.classification) ||
      b.machineCount - a.machineCount ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) ||
      (a.classification < b.classification ? -1 : a.classification > b.classification ? 1 : 0),
  );
  return { rows: ordered.slice(query.offset, query.offset + query.limit), totalCount: ordered.length };
}

/**
 * How the machines missing one update are read (src/db/machines.ts, machinesMissing), from how
 * many live machines miss it (the maintained count) and how many machines a page needs (offset,
 * limit and one more):
 * - BY_UPDATE: the update's stored rows through their index, kept where they belong to a live
 *   machine's latest assessment, then sorted by name: costs about what `missing` is (times the
 *   stored assessments that listed it), whatever the fleet's size;
 * - BY_NAME: the live machines walked in name order, each probed for the update by primary key,
 *   until the page is full: costs about `wanted × fleet / missing` probes.
 * BY_UPDATE while the first is the smaller (missing² ≤ wanted × fleet: at 1,000,000 machines and
 * a page of 51, updates fewer than about 7,000 machines miss). The stored rows include every
 * older assessment's, so BY_UPDATE is also given a budget of rows (`ROWS_BUDGET`): past it the
 * read goes BY_NAME (an update once missing fleet-wide and now on few machines).
 */
export type MissingMachinesRead = 'BY_UPDATE' | 'BY_NAME';

export function missingMachinesRead(missing: number, fleet: number, wanted: number): MissingMachinesRead {
  return missing * missing <= wanted * fleet ? 'BY_UPDATE' : 'BY_NAME';
}

/** The most stored rows of one update a BY_UPDATE read goes through before it gives way to BY_NAME. */
export const MISSING_MACHINES_ROWS_BUDGET = 100_000;
