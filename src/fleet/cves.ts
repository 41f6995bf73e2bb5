import type { CveSource } from '../domain/vocabulary.js';
import type { OsType } from './compliance.js';
import { MISSING_MACHINES_ROWS_BUDGET, missingMachinesRead } from './missingUpdates.js';
import { selectUpdates, type Classification, type Severity, type UpdateSelection } from './planning.js';
import { nextOccurrences, type DeploymentSchedule } from './schedule.js';

/*
 * CVE exposure, decided on plain data: which pending update fixes a CVE on which machine, since
 * when, and whether a scheduled deployment would install it. Two sources say that an update fixes
 * a CVE: the update's own advisories (dnf/yum updateinfo, zypper patches, WUA: the agent reports
 * their CVE ids), and, for apt, whose Packages metadata names no CVE, fixed versions of source
 * packages per release imported on the server: the Debian security tracker's (readDebianTracker)
 * or OSV records' (src/fleet/osv.ts, Ubuntu's and Debian's).
 */

export type { CveSource } from '../domain/vocabulary.js';

// ---------------------------------------------------------------------------------------------
// CVE ids

const CVE_ID = /^CVE-\d{4}-\d{4,7}$/;

/** A CVE id as MITRE writes it (CVE-2024-3094); null when it is one, else why not. */
export function cveIdProblem(id: string): string | null {
  return CVE_ID.test(id) ? null : `"${id.slice(0, 40)}" is no CVE id: expected CVE-YYYY-NNNN (four to seven digits), e.g. CVE-2024-3094.`;
}

/** Upper case, trimmed: "cve-2024-3094 " finds CVE-2024-3094. */
export const normaliseCveId = (id: string) => id.trim().toUpperCase();

// ---------------------------------------------------------------------------------------------
// Debian versions (dpkg's own comparison, lib/dpkg/version.c)

function order(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c >= '0' && c <= '9') return 0;
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) return c.charCodeAt(0);
  if (c === '~') return -1;
  return c.charCodeAt(0) + 256;
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';

function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = order(a[i]);
      const bc = order(b[j]);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

/**
 * The epoch is the digits before the first ':' without their leading zeros ('' for 0), compared as a
 * number of any length; an epoch that is not all digits (dpkg refuses one) counts as 0.
 */
function splitDebianVersion(version: string): { epoch: string; upstream: string; revision: string } {
  const colon = version.indexOf(':');
  const given = colon >= 0 ? version.slice(0, colon) : '';
  const epoch = /^[0-9]+$/.test(given) ? given.replace(/^0+/, '') : '';
  const rest = colon >= 0 ? version.slice(colon + 1) : version;
  const dash = rest.lastIndexOf('-');
  return dash >= 0 ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) } : { epoch, upstream: rest, revision: '' };
}

/**
 * Negative, zero or positive as `dpkg --compare-versions a lt|eq|gt b`. Its SQL twin is
 * dpkg_version_key (migration 0044), held to it by test/integration/dpkgVersionOrder.test.ts: a change
 * here is a change there.
 */
export function compareDebianVersions(a: string, b: string): number {
  const x = splitDebianVersion(a.trim());
  const y = splitDebianVersion(b.trim());
  if (x.epoch !== y.epoch) return x.epoch.length !== y.epoch.length ? x.epoch.length - y.epoch.length : x.epoch < y.epoch ? -1 : 1;
  return verrevcmp(x.upstream, y.upstream) || verrevcmp(x.revision, y.revision);
}

// ---------------------------------------------------------------------------------------------
// The Debian security tracker (https://security-tracker.debian.org/tracker/data/json)

/** Debian's releases by major version (os-release VERSION_ID): the tracker keys its data by codename. */
export const DEBIAN_CODENAMES: Readonly<Record<string, string>> = { '10': 'buster', '11': 'bullseye', '12': 'bookworm', '13': 'trixie', '14': 'forky' };

/** The tracker's release name for a Debian machine; null for anything else (an Ubuntu machine's is ubuntuRelease). */
export function debianRelease(machine: { osName: string; osVersion: string; packageManager: string | null }): string | null {
  if (machine.packageManager !== 'apt' || !/debian/i.test(machine.osName)) return null;
  return DEBIAN_CODENAMES[machine.osVersion.split('.')[0] ?? ''] ?? null;
}

/** An Ubuntu release as os-release's VERSION_ID writes it (22.04, 24.10). */
export const UBUNTU_VERSION = /^\d{2}\.\d{2}$/;

/** How fixes name an Ubuntu release: `ubuntu:22.04` (OSV's ecosystems Ubuntu:22.04:LTS and Ubuntu:Pro:22.04:LTS). */
export const ubuntuReleaseKey = (version: string) => `ubuntu:${version}`;

/** The release key of an Ubuntu machine (its os-release VERSION_ID); null for anything else. */
export function ubuntuRelease(machine: { osName: string; osVersion: string; packageManager: string | null }): string | null {
  if (machine.packageManager !== 'apt' || !/ubuntu/i.test(machine.osName) || !UBUNTU_VERSION.test(machine.osVersion)) return null;
  return ubuntuReleaseKey(machine.osVersion);
}

/**
 * The release whose imported fixes apply to an apt machine: a Debian codename (bookworm), or an
 * Ubuntu key (ubuntu:22.04); null for other machines. src/db/cves.ts computes the same in SQL.
 */
export function fixRelease(machine: { osName: string; osVersion: string; packageManager: string | null }): string | null {
  return debianRelease(machine) ?? ubuntuRelease(machine);
}

/** One source package fixed for one CVE in one release. */
export interface TrackerFix {
  cveId: string;
  /** The source package (the tracker knows no binary packages). */
  package: string;
  /** A Debian codename (bookworm) or an Ubuntu key (ubuntu:22.04): fixRelease. */
  release: string;
  fixedVersion: string;
  severity: Severity | null;
  description: string | null;
  /** Whose word it is: DEBIAN_TRACKER when not said (the tracker's reader does not say). */
  origin?: CveSource;
}

/** Imported fixes are stored per source (DEBIAN for the tracker, OSV:<DISTRIBUTION> for OSV records): whose word each source is. */
export const originOfStoredSource = (source: string): CveSource => (source.startsWith('OSV') ? 'OSV' : 'DEBIAN_TRACKER');

export class TrackerFormatError extends Error {
  override name = 'TrackerFormatError';
}

/** The tracker's urgency as a severity: it has no "critical"; "unimportant" and "not yet assigned" say nothing. */
export function urgencySeverity(urgency: unknown): Severity | null {
  switch (typeof urgency === 'string' ? urgency.replace(/\*+$/, '').trim().toLowerCase() : '') {
    case 'high':
      return 'IMPORTANT';
    case 'medium':
      return 'MODERATE';
    case 'low':
      return 'LOW';
    default:
      return null;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The fixes a tracker document lists: `{package: {CVE-id: {description, releases: {codename:
 * {status, fixed_version, urgency}}}}}`. Only `resolved` entries with a real fixed version count:
 * fixed_version "0" means the release never shipped the flaw, and `open` ones have no fix to
 * install. Ids that are not CVEs (the tracker's TEMP-... entries) are left out. Throws
 * TrackerFormatError, saying where, for a document of another shape.
 */
export function readDebianTracker(document: unknown): TrackerFix[] {
  if (!isObject(document)) throw new TrackerFormatError('the tracker document must be a JSON object of source packages');
  const fixes: TrackerFix[] = [];
  for (const [pkg, cves] of Object.entries(document)) {
    if (!isObject(cves)) throw new TrackerFormatError(`package "${pkg.slice(0, 100)}": expected an object of CVE ids`);
    for (const [cveId, entry] of Object.entries(cves)) {
      if (!CVE_ID.test(cveId)) continue;
      if (!isObject(entry) || !isObject(entry.releases)) throw new TrackerFormatError(`${pkg.slice(0, 100)} ${cveId}: expected an object with "releases"`);
      const description = typeof entry.description === 'string' ? entry.description.slice(0, 2000) : null;
      for (const [release, state] of Object.entries(entry.releases)) {
        if (!isObject(state)) throw new TrackerFormatError(`${pkg.slice(0, 100)} ${cveId} ${release.slice(0, 40)}: expected an object`);
        const fixed = state.fixed_version;
        if (state.status !== 'resolved' || typeof fixed !== 'string' || fixed === '0' || fixed === '') continue;
        fixes.push({ cveId, package: pkg, release, fixedVersion: fixed, severity: urgencySeverity(state.urgency), description });
      }
    }
  }
  return fixes;
}

// ---------------------------------------------------------------------------------------------
// Exposure

export interface CandidateMachine {
  id: string;
  name: string;
  osType: OsType;
  osName: string;
  osVersion: string;
  packageManager: string | null;
  tags: string[];
  managementEnabled: boolean;
}

export interface CandidateUpdate {
  name: string;
  /** Its source package where the agent reported one that differs from `name` (apt); null otherwise. */
  sourcePackage?: string | null;
  installedVersion: string | null;
  availableVersion: string;
  classification: Classification;
  severity: Severity | null;
  cveIds: string[];
}

/**
 * The package name a tracker entry names for this update: its source package where the agent said
 * (binary `libssl3` from source `openssl`), else its own name (a binary named as its source, and
 * updates reported before agents sent sources). src/db/cves.ts matches the same in SQL.
 */
export const trackerPackage = (update: Pick<CandidateUpdate, 'name' | 'sourcePackage'>): string => update.sourcePackage ?? update.name;

/**
 * Whether installing this pending update fixes the CVE on that machine, and on whose word: its
 * advisories name the CVE, or (apt on Debian and Ubuntu) an imported fix (the tracker's, OSV's)
 * says the release fixed it in a version the machine has not installed yet and the update reaches.
 */
export function fixOf(cveId: string, machine: CandidateMachine, update: CandidateUpdate, tracker: readonly TrackerFix[]): { source: CveSource; severity: Severity | null } | null {
  if (update.cveIds.includes(cveId)) return { source: 'ADVISORY', severity: update.severity };
  const release = fixRelease(machine);
  if (release === null || update.installedVersion === null) return null;
  const fix = tracker.find(
    (t) =>
      t.cveId === cveId &&
      t.package === trackerPackage(update) &&
      t.release === release &&
      compareDebianVersions(update.installedVersion!, t.fixedVersion) < 0 &&
      compareDebianVersions(t.fixedVersion, update.availableVersion) <= 0,
  );
  return fix ? { source: fix.origin ?? 'DEBIAN_TRACKER', severity: fix.severity } : null;
}

const SEVERITY_RANK: Record<Severity, number> = { CRITICAL: 4, IMPORTANT: 3, MODERATE: 2, LOW: 1 };

/** The highest of the severities given (null when none is). */
export function highestSeverity(severities: ReadonlyArray<Severity | null>): Severity | null {
  let best: Severity | null = null;
  for (const s of severities) if (s !== null && (best === null || SEVERITY_RANK[s] > SEVERITY_RANK[best])) best = s;
  return best;
}

export interface ScheduleCandidate {
  id: string;
  name: string;
  osType: OsType;
  machineIds: string[];
  targetFilter: { tags: string[]; nameContains: string | null } | null;
  selection: UpdateSelection;
  schedule: DeploymentSchedule | null;
  paused: boolean;
}

export interface ScheduledFix {
  deploymentId: string;
  deploymentName: string;
  nextRunAt: Date;
}

/** A deployment's targets as resolveTargets (src/db/machines.ts) reads them, for one machine. */
export function deploymentTargets(deployment: Pick<ScheduleCandidate, 'osType' | 'machineIds' | 'targetFilter'>, machine: CandidateMachine): boolean {
  if (!machine.managementEnabled || machine.osType !== deployment.osType) return false;
  if (deployment.machineIds.includes(machine.id)) return true;
  const filter = deployment.targetFilter;
  if (!filter) return false;
  return filter.tags.every((t) => machine.tags.includes(t)) && (!filter.nameContains || machine.name.toLowerCase().includes(filter.nameContains.toLowerCase()));
}

/**
 * The soonest scheduled run of a deployment that would install this update on this machine: not
 * paused, with a run still to come, targeting the machine, selecting the update (classification
 * or include pattern, and no exclude pattern). Null when none would: the exposure stays until
 * someone acts. A run's window may still end before the update's turn; that is not foreseen here.
 */
export function scheduledFix(machine: CandidateMachine, update: CandidateUpdate, deployments: readonly ScheduleCandidate[], now: Date): ScheduledFix | null {
  let best: ScheduledFix | null = null;
  for (const d of deployments) {
    if (d.paused || d.schedule === null || !deploymentTargets(d, machine)) continue;
    const pending = { ...update, arch: null, advisoryIds: [], rebootSuggested: false, repository: null };
    if (selectUpdates([pending], d.selection).selected.length === 0) continue;
    const [next] = nextOccurrences(d.schedule, now, 1);
    if (!next) continue;
    if (!best || next < best.nextRunAt) best = { deploymentId: d.id, deploymentName: d.name, nextRunAt: next };
  }
  return best;
}

/** One machine that misses an update fixing the CVE. */
export interface CveExposure {
  machineId: string;
  update: CandidateUpdate;
  source: CveSource;
  severity: Severity | null;
  /** The first assessment of the machine that listed an update fixing it. */
  exposedSince: Date;
  scheduledFix: ScheduledFix | null;
}

const severityRank = (s: Severity | null) => (s ? SEVERITY_RANK[s] : 0);

/** Orders a machine's equally severe fixing updates, so that the one shown does not depend on the order its rows were read in (a page's read, or every machine's). */
const fixKey = (source: CveSource, u: CandidateUpdate) => [source, u.name, u.classification, u.availableVersion, u.installedVersion ?? '', u.sourcePackage ?? '', u.cveIds.join(','), u.severity ?? ''].join('\u0000');

/**
 * Every machine exposed to the CVE, one entry per machine (its most severe fixing update when
 * several fix it, the first by source, name and versions among equals), ordered by name. `history` is what the machine's assessments listed, oldest
 * first or not: the earliest that fixes the CVE dates the exposure (the current one at the latest).
 */
export function cveExposures(input: {
  cveId: string;
  current: ReadonlyArray<{ machine: CandidateMachine; update: CandidateUpdate; assessedAt: Date }>;
  history: ReadonlyArray<{ machineId: string; update: CandidateUpdate; assessedAt: Date }>;
  candidates: readonly CandidateMachine[];
  tracker: readonly TrackerFix[];
  deployments: readonly ScheduleCandidate[];
  now: Date;
}): CveExposure[] {
  const machineById = new Map(input.candidates.map((m) => [m.id, m]));
  const byMachine = new Map<string, { machine: CandidateMachine; update: CandidateUpdate; source: CveSource; severity: Severity | null; assessedAt: Date }>();
  for (const row of input.current) {
    const fix = fixOf(input.cveId, row.machine, row.update, input.tracker);
    if (!fix) continue;
    const seen = byMachine.get(row.machine.id);
    if (!seen || severityRank(fix.severity) > severityRank(seen.severity) || (severityRank(fix.severity) === severityRank(seen.severity) && fixKey(fix.source, row.update) < fixKey(seen.source, seen.update))) {
      byMachine.set(row.machine.id, { machine: row.machine, update: row.update, ...fix, assessedAt: row.assessedAt });
    }
  }
  const since = new Map<string, Date>();
  for (const row of input.history) {
    const machine = machineById.get(row.machineId);
    if (!machine || !byMachine.has(row.machineId) || !fixOf(input.cveId, machine, row.update, input.tracker)) continue;
    const known = since.get(row.machineId);
    if (!known || row.assessedAt < known) since.set(row.machineId, row.assessedAt);
  }
  return [...byMachine.values()]
    .sort((a, b) => (a.machine.name < b.machine.name ? -1 : a.machine.name > b.machine.name ? 1 : a.machine.id < b.machine.id ? -1 : 1))
    .map((e) => {
      const first = since.get(e.machine.id);
      return {
        machineId: e.machine.id,
        update: e.update,
        source: e.source,
        severity: e.severity,
        exposedSince: first && first < e.assessedAt ? first : e.assessedAt,
        scheduledFix: scheduledFix(e.machine, e.update, input.deployments, input.now),
      };
    });
}

/**
 * How one CVE's exposed machines are read for a page (src/api/cves, src/db/cves.ts):
 * - EVERY_MACHINE: every exposed machine computed from the rows of the updates that may fix it
 *   (cveCandidates), then the page cut: costs about what the exposed machines (and the stored
 *   assessments that listed those updates) are, whatever the fleet's size;
 * - BY_NAME: the live machines walked in name order, each one's latest assessment probed for an
 *   update whose advisories name the CVE, until the page is full: about `wanted × fleet / exposed`
 *   probes, then only the page's machines are computed. Its count is the maintained one
 *   (cve_exposure_counts).
 * The same rule whether or not a fix is imported for the CVE (the walk's probe decides an imported
 * fix in SQL, dpkg_reaches_fix): as the machines missing one update (missingMachinesRead),
 * EVERY_MACHINE while exposed² ≤ wanted × fleet, and while the stored rows of the updates that may
 * fix it (every assessment's, when counted) stay within the same budget.
 */
export type CveExposureRead = 'EVERY_MACHINE' | 'BY_NAME';

export function cveExposureRead(input: { exposed: number; fleet: number; wanted: number; storedRows?: number }): CveExposureRead {
  if (missingMachinesRead(input.exposed, Math.max(input.fleet, input.exposed), input.wanted) === 'BY_NAME') return 'BY_NAME';
  return input.storedRows !== undefined && input.storedRows > MISSING_MACHINES_ROWS_BUDGET ? 'BY_NAME' : 'EVERY_MACHINE';
}

/**
 * The live machines an imported fix (and no advisory of the same row) exposes, grouped by what
 * `cveExposures` would choose for each: `rank` and `origin` of its most severe such fix (the first
 * origin by name among equals), and `advisoryRank` of its most severe update whose advisories name
 * the CVE, null when none does (src/db/cves.ts, importedExposureGroups). Ranks: severityRank.
 */
export interface ImportedExposureGroup {
  rank: number;
  origin: CveSource;
  advisoryRank: number | null;
  machines: number;
}

/**
 * One CVE's count, severity and sources as every exposed machine computed by cveExposures would give
 * them, from the advisories' maintained figures (cve_exposure_counts: `exposed`, the highest
 * `severity` of the updates naming it) and the machines imported fixes expose, grouped: a machine
 * exposed both ways counts once (under the advisories); it shows its most severe fixing update, an
 * advisory's among equally severe ones (ADVISORY sorts first), so its source is ADVISORY unless an
 * imported fix is more severe than every update naming the CVE on it.
 */
export function importedCveFigures(
  advisory: { exposed: number; severity: Severity | null },
  groups: readonly ImportedExposureGroup[],
): { machineCount: number; severity: Severity | null; sources: CveSource[] } {
  const sources = new Set<CveSource>();
  let alsoAdvisory = 0;
  let importedOnly = 0;
  let rank = advisory.exposed > 0 ? severityRank(advisory.severity) : 0;
  for (const g of groups) {
    if (g.machines <= 0) continue;
    rank = Math.max(rank, g.rank);
    if (g.advisoryRank === null) importedOnly += g.machines;
    else alsoAdvisory += g.machines;
    sources.add(g.advisoryRank !== null && g.advisoryRank >= g.rank ? 'ADVISORY' : g.origin);
  }
  // Machines the advisories count that no imported fix reaches show an advisory's update.
  if (advisory.exposed > alsoAdvisory) sources.add('ADVISORY');
  const machineCount = advisory.exposed + importedOnly;
  const severity = (Object.keys(SEVERITY_RANK) as Severity[]).find((s) => SEVERITY_RANK[s] === rank) ?? null;
  return { machineCount, severity: machineCount > 0 ? severity : null, sources: [...sources].sort() };
}

// ---------------------------------------------------------------------------------------------
// The fleet's CVEs

/** A CVE some live machine misses a fix for. */
export interface CveSummary {
  id: string;
  severity: Severity | null;
  machineCount: number;
  sources: CveSource[];
}

export interface CveListFilter {
  /** Only these severities (a CVE without one matches none). */
  severities?: Severity[];
  /** Case-insensitive part of the id ("2024-" for that year's). */
  idContains?: string;
}

/** A pending update of an apt machine whose package an imported fix lists for the machine's release. */
export interface TrackerCandidate {
  machineId: string;
  installedVersion: string | null;
  availableVersion: string;
  cveId: string;
  fixedVersion: string;
  severity: Severity | null;
  origin?: CveSource;
}

/** Whether the update reaches the fix: installed below the fixed version, available at or above it (dpkg's order). */
export const reachesFix = (t: Pick<TrackerCandidate, 'installedVersion' | 'availableVersion' | 'fixedVersion'>): boolean =>
  t.installedVersion !== null && compareDebianVersions(t.installedVersion, t.fixedVersion) < 0 && compareDebianVersions(t.fixedVersion, t.availableVersion) <= 0;

/**
 * What the imported fixes add to one CVE of the list: `importedOnly` live machines a fix exposes that
 * the advisories do not count, the highest `severity` of every fix reached on any machine, and the
 * `sources` (origins) of those fixes. An entry is there when some live machine reaches a fix.
 */
export interface ImportedCveListFigure {
  cveId: string;
  importedOnly: number;
  severity: Severity | null;
  sources: CveSource[];
}

const severityOfRank = (rank: number): Severity | null => (Object.keys(SEVERITY_RANK) as Severity[]).find((s) => SEVERITY_RANK[s] === rank) ?? null;

/**
 * The imported fixes' part of the CVE list from every (machine, pending update, fix) an apt machine's
 * latest assessment holds (the full recompute's form): the fixes reached, and the machines reaching
 * one that the CVE's advisory count does not already hold (`advisoryCounted`).
 */
export function importedCveList(tracker: ReadonlyArray<TrackerCandidate & { advisoryCounted: boolean }>): ImportedCveListFigure[] {
  const byId = new Map<string, { machines: Set<string>; severity: Severity | null; sources: Set<CveSource> }>();
  for (const t of tracker) {
    if (!reachesFix(t)) continue;
    let e = byId.get(t.cveId);
    if (!e) byId.set(t.cveId, (e = { machines: new Set(), severity: null, sources: new Set() }));
    if (!t.advisoryCounted) e.machines.add(t.machineId);
    e.severity = highestSeverity([e.severity, t.severity]);
    e.sources.add(t.origin ?? 'DEBIAN_TRACKER');
  }
  return [...byId.entries()].map(([cveId, e]) => ({ cveId, importedOnly: e.machines.size, severity: e.severity, sources: [...e.sources].sort() }));
}

/**
 * The same from the maintained counts (src/db/cves.ts, cveListFigures): `reach` the machines per CVE
 * and (rank, origin) of a fix they reach (cve_fix_reach_counts), `groups` the machines per CVE by
 * what `cve(id)` shows, `advisoryRank` null for a machine no advisory of its updates exposes
 * (cve_fix_exposure_counts). Rows counting no machine are left out.
 */
export function importedCveListFromCounts(
  reach: ReadonlyArray<{ cveId: string; rank: number; origin: CveSource; machines: number }>,
  groups: ReadonlyArray<{ cveId: string; advisoryRank: number | null; machines: number }>,
): ImportedCveListFigure[] {
  const byId = new Map<string, { importedOnly: number; rank: number; sources: Set<CveSource> }>();
  for (const r of reach) {
    if (r.machines <= 0) continue;
    let e = byId.get(r.cveId);
    if (!e) byId.set(r.cveId, (e = { importedOnly: 0, rank: 0, sources: new Set() }));
    e.rank = Math.max(e.rank, r.rank);
    e.sources.add(r.origin);
  }
  for (const g of groups) {
    const e = byId.get(g.cveId);
    if (e && g.machines > 0 && g.advisoryRank === null) e.importedOnly += g.machines;
  }
  return [...byId.entries()].map(([cveId, e]) => ({ cveId, importedOnly: e.importedOnly, severity: severityOfRank(e.rank), sources: [...e.sources].sort() }));
}

/**
 * The fleet's CVEs from counts: per CVE its advisories' machines counted (each live machine once,
 * as cve_exposure_counts keeps them) with their highest severity, and what the imported fixes (tracker,
 * OSV) add (ImportedCveListFigure: a machine the advisories count is not counted twice). Most severe
 * first, then the CVE most machines are exposed to, then by id.
 */
export function countedCveSummaries(
  advisory: ReadonlyArray<{ cveId: string; machineCount: number; severity: Severity | null }>,
  imported: readonly ImportedCveListFigure[],
  filter: CveListFilter = {},
): CveSummary[] {
  const byId = new Map<string, { counted: number; severity: Severity | null; sources: Set<CveSource> }>();
  const entry = (id: string) => {
    let e = byId.get(id);
    if (!e) byId.set(id, (e = { counted: 0, severity: null, sources: new Set() }));
    return e;
  };
  for (const a of advisory) {
    const e = entry(a.cveId);
    e.counted += a.machineCount;
    e.severity = highestSeverity([e.severity, a.severity]);
    e.sources.add('ADVISORY');
  }
  for (const t of imported) {
    const e = entry(t.cveId);
    e.counted += t.importedOnly;
    e.severity = highestSeverity([e.severity, t.severity]);
    for (const source of t.sources) e.sources.add(source);
  }
  const needle = filter.idContains?.trim().toLowerCase();
  return [...byId.entries()]
    .filter(([id, e]) => (!needle || id.toLowerCase().includes(needle)) && (!filter.severities?.length || (e.severity !== null && filter.severities.includes(e.severity))))
    .map(([id, e]) => ({ id, severity: e.severity, machineCount: e.counted, sources: [...e.sources].sort() }))
    .sort((a, b) => (b.severity ? SEVERITY_RANK[b.severity] : 0) - (a.severity ? SEVERITY_RANK[a.severity] : 0) || b.machineCount - a.machineCount || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * The fleet's CVEs from every machine that misses a fix (the full recompute's form): the
 * advisories' CVE ids with the machines missing an update that names them, and the imported fixes
 * an apt machine's pending update reaches; a machine counts once per CVE whichever way it is
 * exposed. The same answer as countedCveSummaries over the same rows.
 */
export function cveSummaries(
  advisory: ReadonlyArray<{ cveId: string; machineIds: readonly string[]; severity: Severity | null }>,
  tracker: readonly TrackerCandidate[],
  filter: CveListFilter = {},
): CveSummary[] {
  const byId = new Map<string, { machines: Set<string>; severity: Severity | null }>();
  for (const a of advisory) {
    const e = byId.get(a.cveId) ?? { machines: new Set<string>(), severity: null };
    for (const m of a.machineIds) e.machines.add(m);
    e.severity = highestSeverity([e.severity, a.severity]);
    byId.set(a.cveId, e);
  }
  return countedCveSummaries(
    [...byId.entries()].map(([cveId, e]) => ({ cveId, machineCount: e.machines.size, severity: e.severity })),
    importedCveList(tracker.map((t) => ({ ...t, advisoryCounted: byId.get(t.cveId)?.machines.has(t.machineId) ?? false }))),
    filter,
  );
}
