import path from 'node:path';
import { detectBackend } from '../agent/backends/index.js';
import { createAgentLog } from '../agent/log.js';
import { Agent } from '../agent/runner.js';
import { loadIdentity } from '../agent/state.js';
import type { Db } from '../db/client.js';
import { createEnrollmentKey } from '../db/enrollmentKeys.js';
import type { Logger } from '../logger.js';

export interface LocalAgent {
  stop(): Promise<void>;
}

/**
 * The agent for the machine `fleetpatch dev` runs on, so that a newcomer's first query shows a
 * real machine with its real pending updates. Assess-only: it refuses install jobs. Enrolled once
 * with a single-use key; its identity lives in `<data dir>/agent` and is reused on the next start.
 */
export async function startLocalAgent(options: { db: Db; dataDir: string; serverUrl: string; logger: Logger }): Promise<LocalAgent | undefined> {
  const { logger } = options;
  if (!detectBackend('/')) {
    logger.warn('no supported package manager on this machine (apt, dnf, yum, zypper): not starting a local agent');
    return undefined;
  }
  const stateDir = path.join(options.dataDir, 'agent');
  let enrollKey: string | undefined;
  if (!loadIdentity(stateDir)) {
    enrollKey = (await createEnrollmentKey(options.db, { description: 'fleetpatch dev: this machine', expiresAt: null, maxUses: 1, defaultTags: ['dev'] })).secret;
  }
  const controller = new AbortController();
  const agentLog = createAgentLog('info');
  const running = Agent.start(
    {
      server: options.serverUrl,
      enrollKey,
      stateDir,
      root: '/',
      assessOnly: true,
      bootIdFile: '/proc/sys/kernel/random/boot_id',
      // Assess-only: it never installs, so it never reboots.
      rebootCommand: 'false',
      env: process.env,
      log: (level, msg, fields) => (level === 'debug' ? undefined : agentLog(level, `local agent: ${msg}`, fields)),
    },
    controller.signal,
  ).catch((error: unknown) => logger.error({ err: error }, 'the local agent stopped'));
  return {
    async stop() {
      controller.abort();
      await running;
    },
  };
}
