/**
 * Applies this tree's pending migrations to a fleet bench/fleetGenerate.ts made, timed (issue 18,
 * goal 2: what migration 0043's fill of the CVE counts costs at that size). The measuring benches
 * migrate when they start too; this says how long it took.
 *
 * Run:  nice -n 19 npx tsx bench/migrateFleet.ts --dir /work/wt/data/fleet-1m
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { migrateDatabase } from '../src/db/migrate.js';
import { startEmbeddedPostgres } from '../src/devstack/embeddedPostgres.js';
import { createLogger } from '../src/logger.js';
import { freePort } from '../src/net.js';

const { values } = parseArgs({ options: { dir: { type: 'string' } } });
if (!values.dir) throw new Error('--dir is required: the folder of the generated fleet’s PostgreSQL');
const logger = createLogger({ level: 'warn', format: 'json', name: 'bench-migrate' });
const pg = await startEmbeddedPostgres({ dir: values.dir, port: await freePort(), database: 'fleetpatch_bench', logger });
try {
  const t = performance.now();
  const { applied } = await migrateDatabase(pg.url);
  console.log(`${applied} migration(s) applied in ${((performance.now() - t) / 1000).toFixed(1)} s`);
} finally {
  await pg.stop();
}
