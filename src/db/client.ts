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
    // Several hosts: postgres.js's own connections, which try them in turn.
    ...(singleHost(url) ? { socket: connectWithoutDelay } : {}),
  });
  return {
    db: drizzle(sql, { schema }),
    sql,
    close: () => sql.end({ timeout: 5 }),
  };
}

function singleHost(url: string): boolean {
  return !/^[^/]*\/\/[^/?#]*,/.test(url);
}

/**
 * A connection with Nagle's algorithm off (TCP_NODELAY), as libpq opens them; postgres.js leaves
 * it on. A COPY's closing message (5 bytes, written after its data) then waited for the server's
 * delayed acknowledgement: 40 ms per COPY on Linux (BENCHMARKS.md, "Ingest, third pass").
 */
function connectWithoutDelay(options: { host: string[]; port: number[]; path: string | false; connect_timeout: number }): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = options.path ? net.connect({ path: options.path }) : net.connect({ host: options.host[0], port: options.port[0]!, noDelay: true });
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error(`could not connect within ${options.connect_timeout} s`), { code: 'CONNECT_TIMEOUT' })), options.connect_timeout * 1000);
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
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
