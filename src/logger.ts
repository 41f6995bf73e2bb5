import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/**
 * Structured JSON logs for machines to read; the same records in a readable form in a terminal.
 * Secrets never go into a log record: tokens are logged by id, never by value.
 */
export function createLogger(options: { level: string; format: 'json' | 'pretty'; name?: string }): Logger {
  const base = { level: options.level, name: options.name ?? 'fleetpatch' };
  if (options.format === 'pretty') {
    return pino(base, pretty({ colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
  }
  return pino(base);
}
