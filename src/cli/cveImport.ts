import { ConfigError } from '../config.js';
import { connectDatabase } from '../db/client.js';
import { migrateDatabase } from '../db/migrate.js';
import { importDebianTracker, TrackerImportError } from '../cves/trackerImport.js';
import { requireSetting, setup } from './runtime.js';

/** `fleetpatch cve-import LOCATION`: the tracker from a URL or a file on this host, into DATABASE_URL's database. */
export async function cveImportCommand(location: string): Promise<void> {
  const { config } = setup('cve-import');
  const databaseUrl = requireSetting(config.databaseUrl, 'DATABASE_URL', 'cve-import');
  await migrateDatabase(databaseUrl);
  const database = connectDatabase(databaseUrl, { max: 1 });
  try {
    const imported = await importDebianTracker(database.db, location, { allowPath: true });
    process.stdout.write(`imported ${imported.fixes} fixes of ${imported.cves} CVEs from ${imported.location}\n`);
  } catch (error) {
    if (error instanceof TrackerImportError) throw new ConfigError(`cve-import: ${error.message} (${error.code})`);
    throw error;
  } finally {
    await database.close();
  }
}
