import { loadConfig, ConfigError, type Config } from '../config.js';
import { createLogger, type Logger } from '../logger.js';

export function setup(name: string): { config: Config; logger: Logger } {
  const config = loadConfig();
  return { config, logger: createLogger({ level: config.logLevel, format: config.logFormat, name }) };
}

export function requireSetting(value: string | undefined, name: string, command: string): string {
  if (!value) {
    throw new ConfigError(`fleetpatch ${command} needs ${name}. Set it in the environment, or run \`fleetpatch dev\` for the embedded default.`);
  }
  return value;
}

/**
 * Runs `stop` once on SIGINT or SIGTERM, then exits 0 (1 if stopping failed). Call it before
 * starting anything, so that a signal during start-up stops what has started so far. A second
 * signal while stopping gives up on order and exits 130 at once; the child processes that must
 * not outlive this one are killed by their exit hooks (src/devstack/processes.ts, killOnExit).
 */
export function onShutdownSignal(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now, killing what is left');
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
