import { randomUUID } from 'node:crypto';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import type { ApiServices } from '../../src/api/context.js';
import { loadConfig } from '../../src/config.js';
import { storeAssessmentReport } from '../../src/db/assessmentIngest.js';
import type { Database } from '../../src/db/client.js';
import { createFleetPubSub } from '../../src/events/pubsub.js';
import { assessmentReport } from '../../testkit/agentFacts.js';
import { connectTestDatabase, freshDatabase, testLogger } from './env.js';

/**
 * The API's services on a database of the test's own and on a clock the test moves (never by
 * sleeping), with machines and their assessment reports stored at that clock through the real
 * ingest path the agent endpoint uses: what the baseline and compliance history tests build on.
 */
export interface ClockedServices {
  database: Database;
  services: ApiServices;
  /** A machine seen now, by the clock; Debian 12 unless `os` says otherwise. */
  insertMachine(name: string, tags: string[], os?: { name: string; version: string }): Promise<string>;
  /** A report assessed now, by the clock, listing `updates`. */
  assess(machineId: string, updates: PendingUpdate[]): Promise<void>;
  close(): Promise<void>;
}

export async function startClockedServices(now: () => Date): Promise<ClockedServices> {
  const fresh = await freshDatabase();
  const database = connectTestDatabase(fresh.url);
  const pubsub = await createFleetPubSub(database.sql);
  const services = { database, pubsub, logger: testLogger, fleet: loadConfig({}), now } as unknown as ApiServices;
  return {
    database,
    services,
    async insertMachine(name, tags, os = { name: 'Debian GNU/Linux', version: '12' }) {
      const id = randomUUID();
      await database.sql`insert into machines (id, name, os_type, os_name, os_version, environment, tags, last_seen_at)
        values (${id}, ${name}, 'LINUX', ${os.name}, ${os.version}, 'ON_PREMISES', ${tags}, ${now().toISOString()}::timestamptz)`;
      return id;
    },
    async assess(machineId, updates) {
      const clock = now();
      const report = assessmentReport(updates, { startedAt: new Date(clock.getTime() - 1000).toISOString(), finishedAt: clock.toISOString() });
      await storeAssessmentReport(database.sql, machineId, report, { receivedAtMs: clock.getTime(), agentSentAtMs: clock.getTime() });
    },
    async close() {
      await database.close();
      await fresh.drop();
    },
  };
}
