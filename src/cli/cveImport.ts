import { ConfigError } from '../config.js';
import { connectDatabase } from '../db/client.js';
import { migrateDatabase } from '../db/migrate.js';
import { importCveFeed, TrackerImportError } from '../cves/trackerImport.js';
import { requireSetting, setup } from './runtime.js';

/**
 * `fleetpatch cve-import LOCATION [--format debian-tracker|osv]`: the Debian tracker or OSV records
 * from a URL, a file or a folder on this host, into DATABASE_URL's database.
 */
export async function cveImportCommand(location: string, options: { format?: 'debian-tracker' | 'osv' } = {}): Promise<void> {
  const { config } = setup('cve-import');
  const databaseUrl = requireSetting(config.databaseUrl, 'DATABASE_URL', 'cve-import');
  await migrateDatabase(databaseUrl);
  const database = connectDatabase(databaseUrl, { max: 1 });
  try {
    const format = options.format === 'osv' ? 'OSV' : options.format === 'debian-tracker' ? 'DEBIAN_TRACKER' : undefined;
    const imported = await importCveFeed(database.db, location, { allowPath: true, ...(format ? { format } : {}) });
    for (const i of imported.imports) process.stdout.write(`imported ${i.fixes} fixes of ${i.cves} CVEs (${i.source}) from ${i.location}\n`);
  } catch (error) {
    if (error instanceof TrackerImportError) throw new ConfigError(`cve-import: ${error.message} (${error.code})`);
    throw error;
  } finally {
    await database.close();
  }
}
