import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServices } from '../../src/api/context.js';
import { startFleetSummaryUpkeep } from '../../src/api/machines/fleetSummaryUpkeep.js';
import { connectDatabase, type Database } from '../../src/db/client.js';
import { storedFleetThresholds, syncFleetSummaryThresholds } from '../../src/db/fleetSummary.js';
import { DEFAULT_THRESHOLDS, type FleetThresholds } from '../../src/fleet/compliance.js';
import { createLogger } from '../../src/logger.js';
import { freshDatabase } from '../support/env.js';

/** The API's upkeep of the compliance summary and the thresholds it was configured with. */
describe("the compliance summary's upkeep", () => {
  let database: Database;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectDatabase(fresh.url, { max: 4 });
  });

  afterAll(async () => {
    await database?.close();
    await drop?.();
  });

  it("stores this process's thresholds at its first pass, re-evaluates every machine, and warns once a minute while another process stores others", async () => {
    await database.sql`insert into machines (name, os_type, os_name, os_version, environment, last_seen_at) values ('a', 'LINUX', 'os', '1', 'AWS', now() - interval '5 minutes'), ('b', 'WINDOWS', 'os', '1', 'AWS', now())`;
    const lines: Array<{ level: number; msg: string }> = [];
    const logger = createLogger({ level: 'info', format: 'json', destination: new Writable({ write: (chunk, _e, done) => (lines.push(JSON.parse(String(chunk))), done()) }) as never });
    const configured: FleetThresholds = { ...DEFAULT_THRESHOLDS, disconnectedAfterMs: 60_000 };
    const upkeep = startFleetSummaryUpkeep({ database, logger, fleet: { thresholds: configured }, now: () => new Date() } as unknown as ApiServices);
    const lapsed = async () => (await database.sql<Array<{ n: number }>>`select count(*)::int as n from machines where summary_generation < (select generation from fleet_summary_settings)`)[0]!.n;
    const warnings = () => lines.filter((l) => l.level === 40).map((l) => l.msg);
    try {
      // The first pass: the configured thresholds stored, and every machine re-evaluated with them, before any read.
      await upkeep.pass();
      expect(await storedFleetThresholds(database.db)).toEqual(configured);
      expect(await lapsed()).toBe(0);
      expect(lines.map((l) => l.msg)).toContainEqual(expect.stringMatching(/^the compliance thresholds changed to Linux assessments 180 min, Windows 720 min, disconnected after 60 s/));
      const [a] = await database.sql<Array<{ state: string }>>`select summary_state as state from machines where name = 'a'`;
      expect(a!.state).toBe('NOT_ASSESSED:DISCONNECTED');
      await upkeep.pass();
      expect(warnings()).toEqual([]);

      // Another process configured with the defaults stores them at a read: this one says so, once a minute.
      await syncFleetSummaryThresholds(database.db, DEFAULT_THRESHOLDS);
      await upkeep.pass();
      await upkeep.pass();
      expect(warnings()).toEqual([expect.stringContaining('another API process stores other compliance thresholds (Linux assessments 180 min, Windows 720 min, disconnected after 270 s; this process: Linux assessments 180 min, Windows 720 min, disconnected after 60 s)')]);
      expect(warnings()[0]).toContain('FLEETPATCH_DISCONNECTED_AFTER_SECONDS');
      // It does not store its own again itself (its readers do): the upkeep takes no part in the back and forth.
      expect(await storedFleetThresholds(database.db)).toEqual(DEFAULT_THRESHOLDS);
    } finally {
      upkeep.stop();
    }
  });
});
