/**
 * The imported fixes' exposures, maintained (migration 0048, docs/fleet-counts.md), on a fleet
 * bench/fleetGenerate.ts made (issue 18, goal 2): what an import costs, and what `cve(id)` and the
 * CVE list read against the recomputes they replaced, side by side in one run.
 *
 * 1. An import (source DEBIAN, bookworm) of one fix for each of --packages packages of the generated
 *    catalog, spread over it (each listed by about a quarter of the machines, a fix every machine
 *    listing it reaches: fixed at the available version), through replaceImportedFixes: the import's
 *    transaction and the recompute of every machine listing a changed package (refreshFixExposures),
 *    timed together, with the machines recomputed.
 * 2. Reads, one warm-up then --reads timed, p50 / p95 / max:
 *    - `cve(id)` of one of those CVEs: cveFiguresWithImports (its count and the maintained groups of
 *      cve_fix_exposure_counts) against the read it replaced, cveFigures and importedExposureGroups
 *      (the stored rows of the fixed package, every assessment's) in one snapshot;
 *    - the CVE list: cveListFigures (maintained counts, one row per CVE and kind) against the read it
 *      replaced, the advisories' maintained figures with every pending row the fixes reach
 *      (trackerCandidates) and which of those machines the advisories already count.
 *    Each pair's answers must be equal: the bench fails when they differ.
 * 3. The fixes are removed by an import of none (timed too: the same recompute, taking the rows back),
 *    unless --keep.
 *
 * Run:  npx tsx bench/fixExposures.ts --dir /work/wt/data/fleet-1m [--packages 20] [--reads 20] [--keep]
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { advisoryExposedPairs, cveFigures, cveFiguresWithImports, cveListFigures, importedExposureGroups, maintainedAdvisoryCves, replaceImportedFixes, trackerCandidates } from '../src/db/cves.js';
import type { Db } from '../src/db/client.js';
import * as schema from '../src/db/schema.js';
import { countedCveSummaries, importedCveList, reachesFix, type TrackerFix } from '../src/fleet/cves.js';
import type { Severity } from '../src/domain/vocabulary.js';
import { startFleetDatabase } from './fleetGenerate.js';

const say = (line: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${line}`);

/** The generated catalog (bench/fleetGenerate.ts): 200 packages pkg-000…pkg-199, installed 1.<idx>.0, available 1.<idx>.1. */
const CATALOG = 200;
const SEVERITIES: Severity[] = ['LOW', 'MODERATE', 'IMPORTANT', 'CRITICAL'];

function fixesFor(packages: number): TrackerFix[] {
  return Array.from({ length: packages }, (_, j) => {
    const idx = Math.floor((j * CATALOG) / packages);
    return { cveId: `CVE-2027-${20000 + idx}`, package: `pkg-${String(idx).padStart(3, '0')}`, release: 'bookworm', fixedVersion: `1.${idx}.1`, severity: SEVERITIES[j % 4]!, description: null };
  });
}

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const t = performance.now();
  const result = await run();
  return { ms: performance.now() - t, result };
}

async function series<T>(reads: number, run: () => Promise<T>): Promise<{ ms: number[]; result: T }> {
  let { result } = await timed(run);
  const ms: number[] = [];
  for (let i = 0; i < reads; i++) {
    const r = await timed(run);
    ms.push(r.ms);
    result = r.result;
  }
  return { ms: ms.sort((a, b) => a - b), result };
}

const at = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
const figures = (ms: number[]) => `${at(ms, 0.5).toFixed(1)} / ${at(ms, 0.95).toFixed(1)} / ${ms[ms.length - 1]!.toFixed(1)}`;

/** The CVE list as it was read before 0048: every pending row an imported fix reaches, and which of those machines the advisories already count. */
async function cveListRecomputed(db: Db) {
  return db.transaction(
    async (tx) => {
      const advisory = await maintainedAdvisoryCves(tx);
      const reached = (await trackerCandidates(tx)).filter(reachesFix);
      const counted = await advisoryExposedPairs(tx, [...new Map(reached.map((t) => [`${t.machineId} ${t.cveId}`, t])).values()]);
      return countedCveSummaries(advisory, importedCveList(reached.map((t) => ({ ...t, advisoryCounted: counted.has(`${t.machineId} ${t.cveId}`) }))));
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

/** `cve(id)`'s figures as they were read before 0048: the imported groups counted from the stored rows of the fixed package. */
async function cveRecomputed(db: Db, cveId: string) {
  return db.transaction(
    async (tx) => {
      const f = await cveFigures(tx, cveId);
      return { ...f, groups: f.imported ? await importedExposureGroups(tx, cveId, f.exposed > 0) : [] };
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

const canonical = (groups: ReadonlyArray<{ rank: number; origin: string; advisoryRank: number | null; machines: number }>) =>
  groups.map((g) => `${g.rank} ${g.origin} ${g.advisoryRank} ${g.machines}`).sort();

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, packages: { type: 'string', default: '20' }, reads: { type: 'string', default: '20' }, keep: { type: 'boolean', default: false } } });
  if (!values.dir) throw new Error('--dir is required: the folder of a fleet made by bench/fleetGenerate.ts');
  const packages = Number(values.packages);
  const reads = Number(values.reads);
  if (!Number.isInteger(packages) || packages < 1 || packages > CATALOG) throw new Error(`--packages is 1 to ${CATALOG}`);
  const pg = await startFleetDatabase(values.dir);
  const sql = postgres(pg.url, { max: 4, onnotice: () => undefined });
  const db: Db = drizzle(sql, { schema });
  try {
    const [fleet] = await sql<Array<{ machines: number; rows: number }>>`
      select (select count(*)::int from machines where removed_at is null) as machines, (select reltuples::bigint::int from pg_class where relname = 'pending_updates') as rows`;
    say(`fleet: ${fleet!.machines} live machines, about ${fleet!.rows} pending update rows`);
    const fixes = fixesFor(packages);
    const imported = await timed(async () => {
      await replaceImportedFixes(db, 'bench/fixExposures.ts', [{ source: 'DEBIAN', fixes }]);
      return sql<Array<{ machines: number; rows: number }>>`select count(distinct machine_id)::int as machines, count(*)::int as rows from cve_fix_exposures`;
    });
    say(`import of ${packages} fixes and its recompute: ${(imported.ms / 1000).toFixed(1)} s (${imported.result[0]!.machines} machines exposed, ${imported.result[0]!.rows} exposure rows)`);

    const cveId = fixes[Math.floor(packages / 2)]!.cveId;
    const maintainedCve = await series(reads, () => cveFiguresWithImports(db, cveId));
    const recomputedCve = await series(reads, () => cveRecomputed(db, cveId));
    const { groups: mg, ...mf } = maintainedCve.result;
    const { groups: rg, ...rf } = recomputedCve.result;
    if (JSON.stringify(mf) !== JSON.stringify(rf) || JSON.stringify(canonical(mg)) !== JSON.stringify(canonical(rg))) {
      throw new Error(`cve(${cveId}) differs: maintained ${JSON.stringify(maintainedCve.result)}, recomputed ${JSON.stringify(recomputedCve.result)}`);
    }
    const exposed = mg.reduce((sum, g) => sum + g.machines, 0);
    const maintainedList = await series(reads, async () => {
      const { advisory, imported: fixed } = await cveListFigures(db);
      return countedCveSummaries(advisory, fixed);
    });
    const recomputedList = await series(Math.min(reads, 5), () => cveListRecomputed(db));
    if (JSON.stringify(maintainedList.result) !== JSON.stringify(recomputedList.result)) throw new Error('the CVE list differs between the maintained counts and the recompute');

    say(`\n| read (${fleet!.machines} machines, ${packages} fixes) | maintained p50 / p95 / max ms | recompute p50 / p95 / max ms | reads |`);
    say('|---|---|---|---|');
    say(`| cve(${cveId}) (${exposed} machines by its fix) | ${figures(maintainedCve.ms)} | ${figures(recomputedCve.ms)} | ${reads} / ${reads} |`);
    say(`| the CVE list (${maintainedList.result.length} CVEs) | ${figures(maintainedList.ms)} | ${figures(recomputedList.ms)} | ${reads} / ${Math.min(reads, 5)} |`);

    if (!values.keep) {
      const removed = await timed(() => replaceImportedFixes(db, 'bench/fixExposures.ts', [{ source: 'DEBIAN', fixes: [] }]));
      const [left] = await sql<Array<{ rows: number }>>`select count(*)::int as rows from cve_fix_exposures`;
      say(`import of none (the fixes removed) and its recompute: ${(removed.ms / 1000).toFixed(1)} s, ${left!.rows} exposure rows left`);
    }
    return 0;
  } finally {
    await sql.end();
    await pg.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
