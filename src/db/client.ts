import net from 'node:net';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres, { type Sql } from 'postgres';
import * as schema from './schema.js';

export type Db = PostgresJsDatabase<typeof schema>;

export interface Database {
  db: Db;
  /** The raw postgres.js client: LISTEN/NOTIFY and health checks. */
  sql: Sql;
  close(): Promise<void>;
}

export function connectDatabase(url: string, options: { max?: number } = {}): Database {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => undefined,
    // Identify our connections in pg_stat_activity.
    connection: { application_name: 'fleetpatch' },
    backoff: reconnectDelaySeconds,
    // Several hosts: postgres.js's own connections, which try them in turn.
    ...(singleHost(url) ? { socket: connectWithoutDelay } : {}),
  });
  return {
    db: drizzle(sql, { schema }),
    sql,
    close: () => sql.end({ timeout: 5 }),
  };
}

/**
 * How long a connection waits before its next attempt after a failed one (the pool counts failures
 * since the last success). postgres.js's own delay grows to 20 s, and queries wait for it: after a
 * restart of PostgreSQL, requests and the LISTEN stayed away for up to 20 s more. Capped at 1 s: an
 * attempt at a stopped server costs a refused TCP connect.
 */
export function reconnectDelaySeconds(failures: number): number {
  return (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** failures, 1);
}

function singleHost(url: string): boolean {
  return !/^[^/]*\/\/[^/?#]*,/.test(url);
}

/**
 * A connection with Nagle's algorithm off (TCP_NODELAY), as libpq opens them; postgres.js leaves
 * it on. A COPY's closing message (5 bytes, written after its data) then waited for the server's
 * delayed acknowledgement: 40 ms per COPY on Linux (BENCHMARKS.md, "Ingest, third pass").
 *
 * The socket is handed over while it is still connecting, as postgres.js's own is: postgres.js
 * listens for its `error` and `close` and recycles the connection when the attempt fails. A factory
 * that waits for `connect` and rejects instead leaves postgres.js a connection that never closes:
 * each refused attempt (PostgreSQL restarting) took one slot of the pool for good, and once all
 * were taken every query and the LISTEN waited forever. Writes made before `connect` are buffered
 * by the socket; postgres.js's connect_timeout covers a connect that never completes.
 */
function connectWithoutDelay(options: { host: string[]; port: number[]; path: string | false }): net.Socket {
  return options.path ? net.connect({ path: options.path }) : net.connect({ host: options.host[0], port: options.port[0]!, noDelay: true });
}

/** `SELECT 1` with a deadline: used by /readyz. */
export async function pingDatabase(sql: Sql, timeoutMs = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      sql`select 1`,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
