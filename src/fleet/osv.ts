import type { Severity } from '../domain/vocabulary.js';
import { compareDebianVersions, cveIdProblem, DEBIAN_CODENAMES, highestSeverity, UBUNTU_VERSION, ubuntuReleaseKey, urgencySeverity, type TrackerFix } from './cves.js';

/*
 * OSV records (https://ossf.github.io/osv-schema/) of the distributions whose apt machines
 * fleetpatch matches: Ubuntu's (UBUNTU-CVE-..., USN-..., published by Canonical and osv.dev) and
 * Debian's (DEBIAN-CVE-..., DSA-..., DLA-...). Each affected source package of a release with a
 * `fixed` event becomes the same fix the Debian tracker's reader yields (cves.ts, TrackerFix), so
 * exposure is decided by one rule whichever file said it: installed < fixed <= available, in dpkg's
 * version order, for the machine's release.
 */

/** The distributions an OSV import stores fixes for, each under its own source (OSV:UBUNTU, OSV:DEBIAN). */
export type OsvDistribution = 'DEBIAN' | 'UBUNTU';

/** The stored source of a distribution's OSV fixes: an import replaces the sources it holds records of, and only those. */
export const osvSource = (distribution: OsvDistribution) => `OSV:${distribution}`;

export interface OsvFix extends TrackerFix {
  distribution: OsvDistribution;
}

export class OsvFormatError extends Error {
  override name = 'OsvFormatError';
}

/**
 * The distribution and release key of an OSV ecosystem: `Debian:12` is bookworm (the tracker's
 * codename, so both sources name a Debian release alike); `Ubuntu:22.04:LTS`, `Ubuntu:24.10` and
 * the ESM ecosystem `Ubuntu:Pro:22.04:LTS` are ubuntu:22.04 and so on. Null for the rest: other
 * ecosystems, Debian releases fleetpatch has no codename for, and Ubuntu's FIPS and real-time
 * kernel streams (Ubuntu:Pro:FIPS:20.04:LTS, Ubuntu:Pro:22.04:LTS:Realtime:Kernel), whose versions
 * are another build of the package that an os-release file does not tell apart.
 */
export function osvRelease(ecosystem: string): { distribution: OsvDistribution; release: string } | null {
  const parts = ecosystem.split(':');
  if (parts[0] === 'Debian') {
    const codename = parts.length === 2 ? DEBIAN_CODENAMES[parts[1]!] : undefined;
    return codename ? { distribution: 'DEBIAN', release: codename } : null;
  }
  if (parts[0] === 'Ubuntu') {
    const rest = parts[1] === 'Pro' ? parts.slice(2) : parts.slice(1);
    const [version, lts, ...more] = rest;
    if (version === undefined || !UBUNTU_VERSION.test(version) || (lts !== undefined && lts !== 'LTS') || more.length > 0) return null;
    return { distribution: 'UBUNTU', release: ubuntuReleaseKey(version) };
  }
  return null;
}

const DISTRIBUTION_CVE = /^(?:UBUNTU|DEBIAN)-(CVE-\d{4}-\d{4,7})$/;

/** The CVE an id names: CVE-2024-1234 itself, or a distribution's record of it (UBUNTU-CVE-2024-1234, DEBIAN-CVE-2024-1234). */
export function cveOfOsvId(id: unknown): string | null {
  if (typeof id !== 'string') return null;
  if (cveIdProblem(id) === null) return id;
  return DISTRIBUTION_CVE.exec(id)?.[1] ?? null;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);

/**
 * The CVEs a record is about. A CVE record (UBUNTU-CVE-..., DEBIAN-CVE-..., CVE-...) is its own,
 * with its aliases and `upstream`; a notice (USN-..., DSA-..., DLA-...) names the CVEs it fixes in
 * `upstream` (as UBUNTU-CVE-... ids in Ubuntu's files) or, in files written before OSV had
 * `upstream`, in `related`. A CVE record's `related` names notices and other records, not itself.
 */
export function osvCveIds(record: Record<string, unknown>): string[] {
  const own = cveOfOsvId(record.id);
  const named = [record.id, ...strings(record.aliases), ...strings(record.upstream), ...(own ? [] : strings(record.related))];
  return [...new Set(named.map(cveOfOsvId).filter((c): c is string => c !== null))];
}

const PRIORITY: Readonly<Record<string, Severity | null>> = { critical: 'CRITICAL', high: 'IMPORTANT', important: 'IMPORTANT', medium: 'MODERATE', moderate: 'MODERATE', low: 'LOW', negligible: null };

/**
 * A record's severity for one affected package: Ubuntu's priority (`severity: [{type: "Ubuntu",
 * score: "medium"}]`: critical, high as IMPORTANT, medium as MODERATE, low; negligible says
 * nothing), Debian's urgency (`ecosystem_specific.urgency`, read as the tracker's), or a word in
 * `database_specific.severity`. CVSS vectors are not scored: null when nothing else is given
 * (Ubuntu's notices carry no severity; its CVE records do).
 */
export function osvSeverity(record: Record<string, unknown>, affected: Record<string, unknown>): Severity | null {
  const found: Array<Severity | null> = [];
  for (const s of Array.isArray(record.severity) ? record.severity : []) {
    if (isObject(s) && s.type === 'Ubuntu' && typeof s.score === 'string') found.push(PRIORITY[s.score.toLowerCase()] ?? null);
  }
  if (isObject(affected.ecosystem_specific) && affected.ecosystem_specific.urgency !== undefined) found.push(urgencySeverity(affected.ecosystem_specific.urgency));
  for (const specific of [affected.database_specific, record.database_specific]) {
    if (isObject(specific) && typeof specific.severity === 'string') found.push(PRIORITY[specific.severity.toLowerCase()] ?? null);
  }
  return highestSeverity(found);
}

/**
 * The version an affected package was fixed in: the lowest `fixed` event of its ECOSYSTEM ranges
 * (Ubuntu and Debian write one range, `introduced: 0` then `fixed`). None when no range has one: the
 * release is still vulnerable, or not triaged, and no update fixes it yet. A flaw reintroduced in a
 * later range is not told apart: the first fix is kept.
 */
export function osvFixedVersion(affected: Record<string, unknown>): string | null {
  let lowest: string | null = null;
  for (const range of Array.isArray(affected.ranges) ? affected.ranges : []) {
    if (!isObject(range) || (range.type !== undefined && range.type !== 'ECOSYSTEM')) continue;
    for (const event of Array.isArray(range.events) ? range.events : []) {
      const fixed = isObject(event) ? event.fixed : undefined;
      if (typeof fixed !== 'string' || fixed === '' || fixed === '0') continue;
      if (lowest === null || compareDebianVersions(fixed, lowest) < 0) lowest = fixed;
    }
  }
  return lowest;
}

/** What records were read: the fixes, the distributions they hold records for, and what was left out. */
export interface OsvReading {
  fixes: OsvFix[];
  /** Distributions with at least one affected package of a known release (an import replaces these). */
  distributions: OsvDistribution[];
  records: number;
  /** Records withdrawn by their publisher (`withdrawn` set): left out. */
  withdrawn: number;
}

/**
 * Reads OSV records one at a time (a zip or a folder of thousands is never held whole) and keeps
 * one fix per CVE, source package and release: when several records give one (a CVE record and
 * the notice that fixed it; the standard and the ESM ecosystem of a release), the lowest fixed
 * version, the highest severity, the CVE record's description.
 */
export class OsvReader {
  private readonly byKey = new Map<string, OsvFix>();
  private readonly distributions = new Set<OsvDistribution>();
  private records = 0;
  private withdrawn = 0;

  /** One record; `where` names it in a format error (a file name, an array index). */
  add(record: unknown, where: string): void {
    if (!isObject(record) || typeof record.id !== 'string') throw new OsvFormatError(`${where}: expected an OSV record, an object with a string "id"`);
    if (record.affected !== undefined && !Array.isArray(record.affected)) throw new OsvFormatError(`${where}: "affected" must be a list`);
    this.records++;
    if (record.withdrawn !== undefined && record.withdrawn !== null) {
      this.withdrawn++;
      return;
    }
    const cveIds = osvCveIds(record);
    const ownCve = cveOfOsvId(record.id);
    const text = typeof record.details === 'string' && record.details.trim() !== '' ? record.details : typeof record.summary === 'string' ? record.summary : null;
    // A notice's text is about all the CVEs it fixes: it describes none of them.
    const description = ownCve && text ? text.trim().slice(0, 2000) : null;
    for (const affected of (record.affected as unknown[] | undefined) ?? []) {
      if (!isObject(affected) || !isObject(affected.package)) continue;
      const { ecosystem, name } = affected.package;
      if (typeof ecosystem !== 'string' || typeof name !== 'string' || name === '') continue;
      const release = osvRelease(ecosystem);
      if (!release) continue;
      this.distributions.add(release.distribution);
      const fixedVersion = osvFixedVersion(affected);
      if (fixedVersion === null) continue;
      const severity = osvSeverity(record, affected);
      for (const cveId of cveIds) this.keep({ cveId, package: name, release: release.release, fixedVersion, severity, description, origin: 'OSV', distribution: release.distribution });
    }
  }

  private keep(fix: OsvFix): void {
    const key = `${fix.cveId}\0${fix.package}\0${fix.release}`;
    const known = this.byKey.get(key);
    if (!known) {
      this.byKey.set(key, fix);
      return;
    }
    if (compareDebianVersions(fix.fixedVersion, known.fixedVersion) < 0) known.fixedVersion = fix.fixedVersion;
    known.severity = highestSeverity([known.severity, fix.severity]);
    known.description ??= fix.description;
  }

  result(): OsvReading {
    return { fixes: [...this.byKey.values()], distributions: [...this.distributions].sort(), records: this.records, withdrawn: this.withdrawn };
  }
}

/** Reads a JSON document of OSV records: one record, or a list of them. */
export function readOsvDocument(document: unknown): OsvReading {
  const reader = new OsvReader();
  if (Array.isArray(document)) document.forEach((record, i) => reader.add(record, `record ${i}`));
  else reader.add(document, 'the record');
  return reader.result();
}

/** The formats of CVE data the server imports. */
export const CVE_FEED_FORMATS = ['DEBIAN_TRACKER', 'OSV'] as const;
export type CveFeedFormat = (typeof CVE_FEED_FORMATS)[number];

/**
 * Which format a parsed JSON document is in: a list, or an object with a string `id` and OSV's
 * `affected` list or `modified` time, is OSV; any other object is taken for the Debian tracker's
 * (its keys are source packages), whose reader says where it is not.
 */
export function jsonFeedFormat(document: unknown): CveFeedFormat {
  if (Array.isArray(document)) return 'OSV';
  if (isObject(document) && typeof document.id === 'string' && (Array.isArray(document.affected) || typeof document.modified === 'string')) return 'OSV';
  return 'DEBIAN_TRACKER';
}
