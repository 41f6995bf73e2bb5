import { migrateDatabase } from '../db/migrate.js';
import { requireSetting, setup } from './runtime.js';

export async function migrateCommand(): Promise<void> {
  const { config, logger } = setup('migrate');
  const { applied } = await migrateDatabase(requireSetting(config.databaseUrl, 'DATABASE_URL', 'migrate'));
  logger.info({ applied }, applied === 0 ? 'database is up to date' : `applied ${applied} migration(s)`);
}
