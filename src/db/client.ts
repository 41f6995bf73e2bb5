import net from 'node:net';
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres, { type Sql } from 'postgres';
import { DependencyGate, unavailableDependency } from '../availability.js';
import * as schema from './schema.js';

export type Db = PostgresJsDatabase<typeof schema>;

export interface Database {
  db: Db;
  /** The raw postgres.js client: LISTEN/NOTIFY and health checks. */
  sql: Sql;
  /**
   * Whether PostgreSQL answers, as this process last saw it: a connection attempt that fails opens
   * an outage, a probe closes it (see DependencyGate). Requests check it to fail at once.
   */
  availability: DependencyGate;
  close(): Promise<void>;
}

export function connectDatabase(url: string, options: { max?: number } = {}): Database {
  const availability = new DependencyGate('DATABASE', () => pingDatabase(sql, 2000));
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => undefined,
    // Identify our connections in pg_stat_activity.
    connection: { application_name: 'fleetpatch' },
    backoff: reconnectDelaySeconds,
    // A PostgreSQL that cannot be reached (packets dropped rather than refused) costs the request
    // that meets it this long, not postgres.js's 30 s; later requests are refused at once by
    // `availability` until it answers again.
    connect_timeout: 10,
    // Several hosts: postgres.js's own connections, which try them in turn.
    ...(singleHost(url) ? { socket: (o: SocketOptions) => connectWithoutDelay(o, (error) => availability.failed(error)) } : {}),
  });
  return {
    db: drizzle(sql, { schema }),
    sql,
    availability,
    close: () => {
      availability.close();
      return sql.end({ timeout: 5 });
    },
  };
}

/**
 * Errors that say PostgreSQL is away or cannot take us now, not that a statement is wrong: the
 * connection could not be made or broke (postgres.js's and the socket's codes), the server is
 * shutting down or starting up (57P01-57P03), refuses more connections (53300), or another
 * connection exception (class 08). Requests that meet one answer SERVICE_UNAVAILABLE.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return UNAVAILABLE_CODES.has(code) || code.startsWith('08') || code.startsWith('57P');
}

/**
 * Runs `attempt` again while it fails because PostgreSQL is away (isDatabaseUnavailable, anywhere
 * in the error's cause chain); any other failure is thrown at once. `pause` waits between two tries:
 * a second by default; an activity passes one that heartbeats and sleeps as the activity, so that it
 * is seen alive and its cancellation ends the wait. With `attempts`, the failure of the last try is
 * thrown.
 */
export async function whileDatabaseAway<T>(attempt: () => Promise<T>, options: { attempts?: number; pause?: (error: unknown) => Promise<void> } = {}): Promise<T> {
  const attempts = options.attempts ?? Infinity;
  const pause = options.pause ?? (() => new Promise<void>((resolve) => setTimeout(resolve, 1000)));
  for (let tried = 1; ; tried++) {
    try {
      return await attempt();
    } catch (error) {
      if (tried >= attempts || unavailableDependency(error, [['DATABASE', isDatabaseUnavailable]]) !== 'DATABASE') throw error;
      await pause(error);
    }
  }
}

const UNAVAILABLE_CODES = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
  'CONNECT_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '53300',
]);

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
interface SocketOptions {
  host: string[];
  port: number[];
  path: string | false;
}

function connectWithoutDelay(options: SocketOptions, failed: (error: Error) => void): net.Socket {
  const socket = options.path ? net.connect({ path: options.path }) : net.connect({ host: options.host[0]!, port: options.port[0]!, noDelay: true });
  // postgres.js reads `host` off its own sockets for TLS's server name (sslmode=verify-full).
  if (!options.path) Object.assign(socket, { host: options.host[0], port: options.port[0] });
  // An attempt that never connects (refused, unreachable, or closed by postgres.js's connect_timeout) says PostgreSQL is away.
  let connected = false;
  let error: Error | undefined;
  const onError = (e: Error) => (error = e);
  socket.once('error', onError);
  socket.once('connect', () => {
    connected = true;
    socket.off('error', onError);
  });
  socket.once('close', () => {
    if (!connected) failed(error ?? Object.assign(new Error('could not connect in time'), { code: 'CONNECT_TIMEOUT' }));
  });
  return socket;
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
