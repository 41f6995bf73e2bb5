import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareDebianVersions } from '../../src/fleet/cves.js';
import { connectDatabase, type Database } from '../../src/db/client.js';
import { freshDatabase } from '../support/env.js';
import { random } from '../support/randomFleet.js';

/*
 * dpkg's version order in SQL (migration 0044: dpkg_version_key, dpkg_version_cmp, dpkg_reaches_fix)
 * against compareDebianVersions, the comparison the API decided with until then: the same sign for
 * every pair, on the real PostgreSQL. Where the host has dpkg, valid versions are also held to
 * `dpkg --compare-versions` itself.
 */

const CORNERS = [
  '', '0', '00', '1', '01', '001', '1.0', '1.00', '1.0.0', '1.0-1', '1.0-01', '1.0-1.0', '1.0-0', '1.0-',
  '0:1.0', '1:1.0', '01:1.0', '2:0', '10:0', '9:9', ':1.0', 'a:1.0', '-1:1.0', '1e3:1.0', ' 5:1.0', '1:2:3', '1:2-3:4',
  '1.0~', '1.0~~', '1.0~~a', '1.0~a', '1.0~rc1', '1.0~rc1-1', '1.0~~rc1', '~', '~~', '~1', '1~', '1~~', '1~-1', '1-~', '1-~~',
  '1.0+', '1.0+deb12u1', '1.0+deb12u10', '1.0+b1', '1.0+~', '1.0a', '1.0A', '1.0Z', '1.0z', '1.0.', '1.0.a', '1.0-a', '1.0-A',
  '1.2-3-4', '1.2-3-4-5', 'a-b-c', '--', '-', '-1', '1-', '1--', '2.36-9+deb12u4', '2.36-9+deb12u10', '3.0.11-1~deb12u2',
  '1.0-1ubuntu1', '1.0-1ubuntu0.22.04.1', '1:2.3.4-5ubuntu6~22.04', 'abc', 'ABC', 'a', 'A', '+', '.', '..', '.a', 'a.',
  '123456789012345678901234567890', '123456789012345678901234567891', '0000000000000000000000000000001', '1' + '0'.repeat(300),
  '1' + '0'.repeat(299) + '1', '99999999999999999999:1', '99999999999999999998:1', '1.0\u00e9', '1.0\u00e8', '1.0\u4e2d', '1.0\u{1f600}',
  '1.0\uff5e', '1.0\u{10000}', ' 1.0 ', '\t1.0\n', '\u00a01.0\ufeff', '1.0 ', '1 .0', '1.0\u2028',
];

const ALPHABET = ['0', '0', '1', '2', '9', '9', '5', '.', '.', '+', '-', '-', '~', '~', ':', 'a', 'b', 'z', 'A', 'Z', 'u', 'd', 'e', 'b', '~', '0', '\u00e9', '\u{1f600}', ' ', '_', '!', '\uffff'];

/** A random string from characters versions are made of, and some they should not be. */
function randomVersion(rng: ReturnType<typeof random>): string {
  const length = rng.int(14);
  let v = '';
  for (let i = 0; i < length; i++) v += rng.next() < 0.05 ? '9'.repeat(1 + rng.int(40)) : rng.pick(ALPHABET);
  return v;
}

/** A version dpkg accepts: optional numeric epoch, an upstream starting with a digit, optional revision. */
function validVersion(rng: ReturnType<typeof random>): string {
  const chars = (pool: string, n: number) => Array.from({ length: n }, () => pool[rng.int(pool.length)]).join('');
  const epoch = rng.next() < 0.3 ? `${rng.int(3)}:` : '';
  const upstream = chars('0123456789', 1) + chars('0123456789.+~abAB', rng.int(8)) + (rng.next() < 0.2 ? `-${chars('0123456789~.', 1 + rng.int(3))}` : '');
  const revision = rng.next() < 0.6 || upstream.includes('-') ? `-${chars('0123456789.+~abu', 1 + rng.int(6))}` : '';
  return epoch + upstream + revision;
}

describe("dpkg's version order in SQL", () => {
  let database: Database;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectDatabase(fresh.url, { max: 2 });
  });

  afterAll(async () => {
    await database?.close();
    await drop?.();
  });

  /** The SQL's sign for each pair, and whether the keys are equal exactly when dpkg_version_cmp says 0. */
  async function sqlSigns(pairs: ReadonlyArray<readonly [string, string]>): Promise<number[]> {
    const rows = await database.sql<Array<{ cmp: number; keys_equal: boolean }>>`
      select dpkg_version_cmp(p.a, p.b) as cmp, dpkg_version_key(p.a) = dpkg_version_key(p.b) as keys_equal
      from unnest(${pairs.map(([a]) => a)}::text[], ${pairs.map(([, b]) => b)}::text[]) with ordinality as p(a, b, n) order by p.n`;
    for (const r of rows) expect(r.keys_equal).toBe(r.cmp === 0);
    return rows.map((r) => r.cmp);
  }

  it('orders every pair of the corner cases as compareDebianVersions does, both ways', async () => {
    const pairs = CORNERS.flatMap((a) => CORNERS.map((b) => [a, b] as const));
    const expected = pairs.map(([a, b]) => Math.sign(compareDebianVersions(a, b)));
    const got = await sqlSigns(pairs);
    const wrong = pairs.filter((_, i) => got[i] !== expected[i]).map(([a, b], i) => ({ a, b, sql: got[i], ts: expected[i] }));
    expect(wrong).toEqual([]);
    expect(got.filter((s) => s === 0).length).toBeGreaterThan(CORNERS.length); // some distinct strings are equal versions
  });

  it('orders thousands of random pairs as compareDebianVersions does, both ways', async () => {
    const rng = random(44);
    const pairs: Array<readonly [string, string]> = [];
    for (let i = 0; i < 6000; i++) {
      const a = randomVersion(rng);
      // Half the pairs share a prefix, where the order is decided deep in the strings.
      // (Cut by code point: a lone UTF-16 surrogate cannot be stored in a text column.)
      const b = rng.next() < 0.5 ? [...a].slice(0, rng.int(a.length + 1)).join('') + randomVersion(rng) : randomVersion(rng);
      pairs.push([a, b], [b, a]);
    }
    const expected = pairs.map(([a, b]) => Math.sign(compareDebianVersions(a, b)));
    const got = await sqlSigns(pairs);
    expect(pairs.filter((_, i) => got[i] !== expected[i]).slice(0, 10)).toEqual([]);
    // Not all decided at the first character: each sign is well represented.
    for (const sign of [-1, 0, 1]) expect(got.filter((s) => s === sign).length).toBeGreaterThan(100);
  });

  it('sorts versions as compareDebianVersions sorts them (an index on the key would give that order)', async () => {
    const rng = random(45);
    const versions = [...CORNERS, ...Array.from({ length: 2000 }, () => (rng.next() < 0.5 ? validVersion(rng) : randomVersion(rng)))];
    const rows = await database.sql<Array<{ v: string }>>`select v from unnest(${versions}::text[]) as t(v) order by dpkg_version_key(v), v collate "C"`;
    const sorted = rows.map((r) => r.v);
    for (let i = 1; i < sorted.length; i++) expect(compareDebianVersions(sorted[i - 1]!, sorted[i]!), `${sorted[i - 1]} then ${sorted[i]}`).toBeLessThanOrEqual(0);
  });

  it('decides whether an update reaches a fix as reachesFix does (dpkg_reaches_fix)', async () => {
    const rng = random(46);
    const triples = Array.from({ length: 3000 }, () => [rng.next() < 0.05 ? null : validVersion(rng), validVersion(rng), validVersion(rng)] as const);
    const rows = await database.sql<Array<{ reaches: boolean }>>`
      select dpkg_reaches_fix(t.i, t.f, t.a) as reaches
      from unnest(${triples.map(([i]) => i)}::text[], ${triples.map(([, f]) => f)}::text[], ${triples.map(([, , a]) => a)}::text[]) with ordinality as t(i, f, a, n) order by t.n`;
    const expected = triples.map(([i, f, a]) => i !== null && compareDebianVersions(i, f) < 0 && compareDebianVersions(f, a) <= 0);
    expect(rows.map((r) => r.reaches)).toEqual(expected);
    expect(expected.filter(Boolean).length).toBeGreaterThan(100);
  });

  it.skipIf(!fs.existsSync('/usr/bin/dpkg'))('agrees with dpkg --compare-versions on valid versions', async () => {
    const rng = random(47);
    const pairs = Array.from({ length: 300 }, () => [validVersion(rng), validVersion(rng)] as const);
    const dpkg = pairs.map(([a, b]) => {
      const is = (op: string) => {
        try {
          execFileSync('/usr/bin/dpkg', ['--compare-versions', a, op, b], { stdio: 'ignore' });
          return true;
        } catch {
          return false;
        }
      };
      return is('lt') ? -1 : is('eq') ? 0 : 1;
    });
    expect(await sqlSigns(pairs)).toEqual(dpkg);
    expect(pairs.map(([a, b]) => Math.sign(compareDebianVersions(a, b)))).toEqual(dpkg);
  });
});
