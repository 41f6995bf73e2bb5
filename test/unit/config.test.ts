import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

describe('configuration from the environment', () => {
  it('falls back to the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      databaseUrl: undefined,
      temporalAddress: undefined,
      temporalNamespace: 'default',
      port: 4000,
      dataDir: path.resolve('.fleetpatch'),
      devTemporalPort: 7233,
      devTemporalUiPort: 8233,
      historyRetentionDays: 400,
    });
  });

  it('reads every documented variable', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://db/fleet',
      TEMPORAL_ADDRESS: 'temporal:7233',
      TEMPORAL_NAMESPACE: 'fleet',
      PORT: '8080',
      FLEETPATCH_DATA_DIR: '/var/lib/fleetpatch',
      FLEETPATCH_TEMPORAL_PORT: '17233',
      LOG_FORMAT: 'json',
      FLEETPATCH_HISTORY_RETENTION_DAYS: '730',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgres://db/fleet',
      temporalAddress: 'temporal:7233',
      temporalNamespace: 'fleet',
      port: 8080,
      dataDir: '/var/lib/fleetpatch',
      devTemporalPort: 17233,
      devTemporalUiPort: 18233,
      logFormat: 'json',
      historyRetentionDays: 730,
    });
    // 0 keeps compliance snapshots for ever.
    expect(loadConfig({ FLEETPATCH_HISTORY_RETENTION_DAYS: '0' }).historyRetentionDays).toBe(0);
  });

  it('names the variable and the rule when a value is wrong', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(new ConfigError('PORT=eighty is not a port number (0-65535)'));
    expect(() => loadConfig({ PORT: '70000' })).toThrow(/PORT=70000 is not a port number/);
    expect(() => loadConfig({ LOG_FORMAT: 'xml' })).toThrow(/LOG_FORMAT=xml is not one of json, pretty/);
    expect(() => loadConfig({ FLEETPATCH_HISTORY_RETENTION_DAYS: '-1' })).toThrow(/FLEETPATCH_HISTORY_RETENTION_DAYS=-1 is not a whole number/);
  });
});
