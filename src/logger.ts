import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { REDACTED, redactSecrets } from './redact.js';

export type { Logger };

/**
 * Where a secret could sit in a log record: headers, connection params, request bodies, errors.
 * pino replaces them before the record is written. Values that merely look like our secrets
 * (fp_, fpe_, fpm_) are caught as well, wherever they sit, by the serializers below.
 */
export const REDACTED_PATHS = [
  'authorization',
  'token',
  'secret',
  'credential',
  'enrollmentKey',
  'password',
  '*.authorization',
  '*.Authorization',
  '*.token',
  '*.secret',
  '*.credential',
  '*.enrollmentKey',
  '*.password',
  '*.headers.authorization',
  '*.headers.cookie',
  '*.*.authorization',
  '*.*.secret',
  '*.*.credential',
  '*.*.enrollmentKey',
];

/**
 * Structured JSON logs for machines to read; the same records in a readable form in a terminal.
 * Secrets never go into a log record: tokens are logged by id, never by value.
 */
export function createLogger(options: { level: string; format: 'json' | 'pretty'; name?: string; destination?: DestinationStream }): Logger {
  const base = {
    level: options.level,
    name: options.name ?? 'fleetpatch',
    redact: { paths: REDACTED_PATHS, censor: REDACTED },
    // Secrets that reach a message or an error text (a driver echoing a query, say) are masked too.
    hooks: {
      logMethod(this: Logger, args: Parameters<Logger['info']>, method: Logger['info']) {
        method.apply(this, args.map((a) => redactSecrets(a)) as Parameters<Logger['info']>);
      },
    },
    serializers: { err: (error: unknown) => redactSecrets(pino.stdSerializers.err(error as Error)) },
  };
  if (options.format === 'pretty') {
    return pino(base, pretty({ colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
  }
  return options.destination ? pino(base, options.destination) : pino(base);
}
