import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCveFeed, readOsvFolder, readOsvZip, TrackerImportError } from '../../src/cves/trackerImport.js';
import { ZipFormatError, zipEntries } from '../../src/cves/zip.js';
import { fixOf, fixRelease, type CandidateMachine, type CandidateUpdate } from '../../src/fleet/cves.js';
import { cveOfOsvId, jsonFeedFormat, osvCveIds, osvFixedVersion, osvRelease, osvSeverity, readOsvDocument, type OsvReading } from '../../src/fleet/osv.js';

// OSV records as Ubuntu (UBUNTU-CVE-..., USN-...) and Debian (DEBIAN-CVE-...) publish them, read
// into the fixes the tracker's reader yields: the hand-written records in test/fixtures/cve/osv/,
// the same records zipped as osv.dev exports them (osv.zip, made with Info-ZIP's `zip -X -9`) and
// with ZIP64 records throughout (osv-zip64.zip: `zip -X -r -fz`, a folder entry included).

const fixture = (name: string) => new URL(`../fixtures/cve/${name}`, import.meta.url);
const FOLDER = fixture('osv').pathname;
const record = (file: string) => JSON.parse(fs.readFileSync(fixture(`osv/${file}`), 'utf8')) as Record<string, unknown>;
const lines = (reading: OsvReading) => reading.fixes.map((f) => `${f.cveId} ${f.package} ${f.release} ${f.fixedVersion} ${f.severity} ${f.origin}`).sort();

const EXPECTED = [
  'CVE-2025-0101 openssl ubuntu:20.04 1.1.1f-1ubuntu2.24 IMPORTANT OSV',
  'CVE-2025-0101 openssl ubuntu:22.04 3.0.2-0ubuntu1.18 IMPORTANT OSV',
  'CVE-2025-0101 openssl ubuntu:24.04 3.0.13-0ubuntu3.4 IMPORTANT OSV',
  'CVE-2025-0102 curl ubuntu:24.04 8.5.0-2ubuntu10.6 MODERATE OSV',
  'CVE-2025-0104 openssl ubuntu:22.04 3.0.2-0ubuntu1.18 null OSV',
  'CVE-2025-0104 openssl ubuntu:24.04 3.0.13-0ubuntu3.4 null OSV',
  'CVE-2025-0105 demo-tool bookworm 1.1-1 MODERATE OSV',
  'CVE-2025-0105 demo-tool trixie 1.1-1 null OSV',
];

describe('OSV ecosystems, ids, severities and fixed versions', () => {
  it('maps Ubuntu and Debian ecosystems to the release keys machines are matched by, and leaves the rest out', () => {
    const table: Array<[string, string | null]> = [
      ['Ubuntu:22.04:LTS', 'UBUNTU ubuntu:22.04'],
      ['Ubuntu:24.10', 'UBUNTU ubuntu:24.10'],
      ['Ubuntu:Pro:18.04:LTS', 'UBUNTU ubuntu:18.04'],
      ['Ubuntu:Pro:FIPS-updates:22.04:LTS', null],
      ['Ubuntu:Pro:FIPS:20.04:LTS', null],
      ['Ubuntu:Pro:22.04:LTS:Realtime:Kernel', null],
      ['Ubuntu', null],
      ['Debian:12', 'DEBIAN bookworm'],
      ['Debian:11', 'DEBIAN bullseye'],
      ['Debian:9', null],
      ['Debian', null],
      ['PyPI', null],
      ['Alpine:v3.19', null],
    ];
    expect(table.map(([ecosystem]) => {
      const r = osvRelease(ecosystem);
      return r && `${r.distribution} ${r.release}`;
    })).toEqual(table.map(([, expected]) => expected));
  });

  it("matches a machine's release as its os-release says it, for Debian and Ubuntu apt machines only", () => {
    const machine = (osName: string, osVersion: string, packageManager = 'apt') => fixRelease({ osName, osVersion, packageManager });
    expect([
      machine('Ubuntu 22.04.5 LTS', '22.04'),
      machine('Ubuntu 24.10', '24.10'),
      machine('Debian GNU/Linux 12 (bookworm)', '12'),
      machine('Ubuntu 22.04.5 LTS', '22.04.5'),
      machine('Linux Mint 21.3', '21.3'),
      machine('Ubuntu 22.04.5 LTS', '22.04', 'dnf'),
    ]).toEqual(['ubuntu:22.04', 'ubuntu:24.10', 'bookworm', null, null, null]);
  });

  it("reads the CVEs a record is about: its own, its aliases and upstream, and a notice's related ids in files older than upstream", () => {
    expect(osvCveIds(record('UBUNTU-CVE-2025-0101.json'))).toEqual(['CVE-2025-0101']);
    expect(osvCveIds(record('USN-7001-1.json'))).toEqual(['CVE-2025-0101', 'CVE-2025-0104']);
    expect(osvCveIds({ id: 'USN-6000-1', related: ['CVE-2023-0001', 'UBUNTU-CVE-2023-0002', 'LP-123'] })).toEqual(['CVE-2023-0001', 'CVE-2023-0002']);
    expect(osvCveIds({ id: 'DSA-5514-1', upstream: ['CVE-2023-4911', 'DEBIAN-CVE-2023-4911'] })).toEqual(['CVE-2023-4911']);
    // A CVE record's related ids are other records (notices, the same flaw elsewhere), not this one.
    expect(osvCveIds({ id: 'UBUNTU-CVE-2024-1000', related: ['CVE-2024-2000', 'USN-1-1'] })).toEqual(['CVE-2024-1000']);
    expect(osvCveIds({ id: 'GHSA-xxxx-yyyy-zzzz', aliases: ['CVE-2024-3094', 'PYSEC-2024-1'] })).toEqual(['CVE-2024-3094']);
    expect(['CVE-2024-3094', 'UBUNTU-CVE-2024-3094', 'DEBIAN-CVE-2024-3094', 'ALPINE-CVE-2024-3094', 'USN-1-1', 42].map(cveOfOsvId)).toEqual([
      'CVE-2024-3094',
      'CVE-2024-3094',
      'CVE-2024-3094',
      null,
      null,
      null,
    ]);
  });

  it("rates by Ubuntu's priority, Debian's urgency or a severity word, never by a CVSS vector alone", () => {
    const ubuntu = (score: string) => osvSeverity({ severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }, { type: 'Ubuntu', score }] }, {});
    expect(['critical', 'high', 'medium', 'low', 'negligible', 'untriaged'].map(ubuntu)).toEqual(['CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW', null, null]);
    expect(osvSeverity({}, { ecosystem_specific: { urgency: 'high' } })).toBe('IMPORTANT');
    expect(osvSeverity({}, { ecosystem_specific: { urgency: 'not yet assigned' } })).toBeNull();
    expect(osvSeverity({ database_specific: { severity: 'MODERATE' } }, {})).toBe('MODERATE');
    expect(osvSeverity({ severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }] }, {})).toBeNull();
  });

  it('takes the lowest fixed event of the ECOSYSTEM ranges, and none when no range has one', () => {
    const events = (...e: object[]) => ({ ranges: [{ type: 'ECOSYSTEM', events: e }] });
    expect(osvFixedVersion(events({ introduced: '0' }, { fixed: '1.2-1ubuntu0.1' }))).toBe('1.2-1ubuntu0.1');
    expect(osvFixedVersion(events({ introduced: '0' }, { fixed: '2.0-1' }, { introduced: '0' }, { fixed: '1:1.0-1' }, { fixed: '1.5-1' }))).toBe('1.5-1');
    expect(osvFixedVersion(events({ introduced: '0' }))).toBeNull();
    expect(osvFixedVersion(events({ introduced: '0' }, { last_affected: '1.0-1' }))).toBeNull();
    expect(osvFixedVersion({ ranges: [{ type: 'GIT', events: [{ introduced: '0' }, { fixed: 'abc123' }] }] })).toBeNull();
    expect(osvFixedVersion({})).toBeNull();
  });
});

describe('reading OSV records', () => {
  it("keeps one fix per CVE, source package and release: fixed ones only, withdrawn records and FIPS streams left out, a notice's fix merged with its CVE record's", async () => {
    const reading = await readOsvFolder(FOLDER);
    expect(lines(reading)).toEqual(EXPECTED);
    expect(reading).toMatchObject({ distributions: ['DEBIAN', 'UBUNTU'], records: 5, withdrawn: 1 });
    // A CVE record's text describes it; a notice's describes several CVEs, none in particular.
    const byCve = new Map(reading.fixes.map((f) => [f.cveId, f.description]));
    expect(byCve.get('CVE-2025-0101')).toMatch(/^A hand-written fixture in the shape of Ubuntu's CVE records: an out-of-bounds read/);
    expect(byCve.get('CVE-2025-0104')).toBeNull();
  });

  it('reads the same from a JSON list of the records, from one record, and from a zip (ZIP64 too)', async () => {
    const files = fs.readdirSync(FOLDER).sort();
    const list = files.map(record);
    expect(lines(readOsvDocument(list))).toEqual(EXPECTED);
    expect(lines(readOsvDocument(record('UBUNTU-CVE-2025-0102.json')))).toEqual(['CVE-2025-0102 curl ubuntu:24.04 8.5.0-2ubuntu10.6 MODERATE OSV']);
    expect(lines(readOsvZip(fs.readFileSync(fixture('osv.zip'))))).toEqual(EXPECTED);
    expect(lines(readOsvZip(fs.readFileSync(fixture('osv-zip64.zip'))))).toEqual(EXPECTED);
    const parsed = parseCveFeed(Buffer.from(JSON.stringify(list)));
    expect(parsed.format === 'OSV' && lines(parsed.reading)).toEqual(EXPECTED);
  });

  it("tells OSV from the Debian tracker's JSON by its shape", () => {
    const tracker = JSON.parse(fs.readFileSync(fixture('debian-tracker.json'), 'utf8')) as unknown;
    expect([tracker, record('USN-7001-1.json'), [], [record('USN-7001-1.json')], { id: 'x', modified: '2025-01-01T00:00:00Z' }, { openssl: {} }].map(jsonFeedFormat)).toEqual([
      'DEBIAN_TRACKER',
      'OSV',
      'OSV',
      'OSV',
      'OSV',
      'DEBIAN_TRACKER',
    ]);
    expect(parseCveFeed(fs.readFileSync(fixture('debian-tracker.json'))).format).toBe('DEBIAN_TRACKER');
  });

  it('refuses what is not OSV with BAD_FORMAT, saying where and never what the bytes were', () => {
    const refusal = (bytes: Buffer, format?: 'DEBIAN_TRACKER' | 'OSV'): [string, string] | null => {
      try {
        parseCveFeed(bytes, format);
        return null;
      } catch (error) {
        if (error instanceof TrackerImportError) return [error.code, error.message];
        throw error;
      }
    };
    expect(refusal(Buffer.from('[{"id": "USN-1-1"}, "secret-token-1234"]'))).toEqual(['BAD_FORMAT', 'not OSV records: record 1: expected an OSV record, an object with a string "id"']);
    expect(refusal(Buffer.from('{"id": "USN-1-1", "affected": {"secret": 1}}'), 'OSV')).toEqual(['BAD_FORMAT', 'not OSV records: the record: "affected" must be a list']);
    expect(refusal(fs.readFileSync(fixture('osv.zip')), 'DEBIAN_TRACKER')).toEqual(['BAD_FORMAT', "a zip archive is not the Debian security tracker's JSON"]);
    const truncated = fs.readFileSync(fixture('osv.zip')).subarray(0, 2000);
    expect(refusal(truncated)).toEqual(['BAD_FORMAT', 'not OSV records: no end of central directory record: not a zip archive, or a truncated one']);
    expect(refusal(Buffer.from('<html>root:x:0:0</html>'))?.[0]).toBe('NOT_JSON');
  });

  it('stops a zip that unpacks to more than it may, per entry and in all', () => {
    const zip = fs.readFileSync(fixture('osv.zip'));
    expect(() => [...zipEntries(zip, { maxEntryBytes: 1000, maxTotalBytes: 1e9 })]).toThrow(ZipFormatError);
    expect(() => [...zipEntries(zip, { maxEntryBytes: 1e6, maxTotalBytes: 5000 })]).toThrow('the archive unpacks to more than 5000 bytes');
    expect([...zipEntries(zip, { maxEntryBytes: 1e6, maxTotalBytes: 1e9 })].map((e) => e.name)).toEqual(fs.readdirSync(FOLDER).sort());
  });
});

describe('which update fixes a CVE on an Ubuntu machine', () => {
  const fixes = readOsvDocument(fs.readdirSync(FOLDER).sort().map(record)).fixes;
  const jammy: CandidateMachine = { id: 'm-jammy', name: 'ubuntu-2204', osType: 'LINUX', osName: 'Ubuntu 22.04.5 LTS', osVersion: '22.04', packageManager: 'apt', tags: [], managementEnabled: true };
  const noble: CandidateMachine = { ...jammy, id: 'm-noble', name: 'ubuntu-2404', osName: 'Ubuntu 24.04.1 LTS', osVersion: '24.04' };
  const bookworm: CandidateMachine = { ...jammy, id: 'm-deb', name: 'debian-01', osName: 'Debian GNU/Linux 12 (bookworm)', osVersion: '12' };
  const libssl3 = (installedVersion: string, availableVersion: string): CandidateUpdate => ({
    name: 'libssl3',
    sourcePackage: 'openssl',
    installedVersion,
    availableVersion,
    classification: 'SECURITY',
    severity: null,
    cveIds: [],
  });

  it("is the binary built from the record's source package, for the machine's release, when the update reaches the fixed version", () => {
    expect(fixOf('CVE-2025-0101', jammy, libssl3('3.0.2-0ubuntu1.15', '3.0.2-0ubuntu1.18'), fixes)).toEqual({ source: 'OSV', severity: 'IMPORTANT' });
    expect(fixOf('CVE-2025-0104', jammy, libssl3('3.0.2-0ubuntu1.15', '3.0.2-0ubuntu1.18'), fixes)).toEqual({ source: 'OSV', severity: null });
    // Installed at the fix already; a FIPS fix (3.0.2-0ubuntu1.12+Fips1) read as jammy's would have said so for 1.15.
    expect(fixOf('CVE-2025-0101', jammy, libssl3('3.0.2-0ubuntu1.18', '3.0.2-0ubuntu1.19'), fixes)).toBeNull();
    // jammy's version numbers on noble: noble's fix (3.0.13-...) is not reached.
    expect(fixOf('CVE-2025-0101', noble, libssl3('3.0.2-0ubuntu1.15', '3.0.2-0ubuntu1.18'), fixes)).toBeNull();
    // Withdrawn; vulnerable without a fix on jammy (curl); Ubuntu's records on a Debian machine.
    expect(fixOf('CVE-2025-0103', jammy, libssl3('3.0.2-0ubuntu1.15', '3.0.2-0ubuntu1.18'), fixes)).toBeNull();
    const curl = { name: 'curl', installedVersion: '7.81.0-1ubuntu1.16', availableVersion: '7.81.0-1ubuntu1.20', classification: 'SECURITY' as const, severity: null, cveIds: [] };
    expect(fixOf('CVE-2025-0102', jammy, curl, fixes)).toBeNull();
    expect(fixOf('CVE-2025-0102', noble, { ...curl, installedVersion: '8.5.0-2ubuntu10.4', availableVersion: '8.5.0-2ubuntu10.6' }, fixes)).toEqual({ source: 'OSV', severity: 'MODERATE' });
    expect(fixOf('CVE-2025-0101', bookworm, libssl3('3.0.2-0ubuntu1.15', '3.0.2-0ubuntu1.18'), fixes)).toBeNull();
    expect(fixOf('CVE-2025-0105', bookworm, { ...curl, name: 'demo-tool', installedVersion: '1.0-1', availableVersion: '1.1-1' }, fixes)).toEqual({ source: 'OSV', severity: 'MODERATE' });
  });
});
