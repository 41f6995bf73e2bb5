import type { Events, FleetPubSub } from '../events/pubsub.js';
import { accessEnded, type SessionState, type TokenState } from '../fleet/access.js';
import { principalExpiresAt, type Principal } from './auth.js';

/**
 * The close code of a subscription socket whose token or session may no longer be used: graphql-ws's
 * Forbidden, the code a connection refused at the start gets too. The reason says why.
 */
export const ACCESS_ENDED_CLOSE_CODE = 4403;

/**
 * How often every open socket's token and session are read again, whatever was announced: the
 * bound on what a lost notification (a LISTEN connection that dropped) can cost.
 */
export const ACCESS_RECHECK_MS = 60_000;

/** setTimeout's longest delay (about 24.8 days); a later expiry is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** How tokens and sessions stand now, in the database. */
export interface AccessLookup {
  tokens(ids: string[]): Promise<Array<{ id: string } & TokenState>>;
  sessions(ids: string[]): Promise<Array<{ id: string } & SessionState>>;
}

interface OpenSocket {
  principal: Principal;
  close: (reason: string) => void;
  timer?: NodeJS.Timeout;
}

/**
 * The subscription sockets of this API process and who they act for. A socket authenticates once,
 * when it opens, and may live for days: this closes it when its token or console session stops
 * being valid.
 *  - Revoked or re-dated tokens, ended sessions: PostgreSQL announces every such change by a
 *    trigger (`apiTokenChanged`, `consoleSessionChanged`, through LISTEN/NOTIFY, whichever process
 *    or person wrote it); each replica reads the state of the sockets concerned and closes those
 *    that may not go on. Milliseconds after the commit.
 *  - Expiry: a timer per socket, at the earlier of its token's and its session's expiry.
 *  - Lost notifications: everything is read again when the LISTEN is back, and every
 *    ACCESS_RECHECK_MS anyway.
 */
export class SocketAccess {
  private readonly sockets = new Set<OpenSocket>();
  /** Token and session changes announced so far: see `open`'s `seenChanges`. */
  private changes = 0;
  private readonly interval: NodeJS.Timeout;
  private readonly now: () => Date;

  constructor(
    private readonly lookup: AccessLookup,
    private readonly options: { recheckMs?: number; now?: () => Date; onError?: (error: unknown) => void } = {},
  ) {
    this.now = options.now ?? (() => new Date());
    this.interval = setInterval(() => void this.recheck([...this.sockets]), options.recheckMs ?? ACCESS_RECHECK_MS);
    this.interval.unref();
  }

  /** A mark to take before authenticating a socket, for `open`. */
  get seenChanges(): number {
    return this.changes;
  }

  /**
   * A socket that authenticated as `principal`; `close(reason)` ends it once its access ends.
   * `seenChanges`, taken before the token was read: a change announced while it was being read
   * (which this socket was not there to hear) has it read again at once. Returns what to call when
   * the socket closes for any other reason.
   */
  open(principal: Principal, close: (reason: string) => void, seenChanges: number): () => void {
    const socket: OpenSocket = { principal: { ...principal }, close };
    this.sockets.add(socket);
    this.arm(socket);
    if (this.changes !== seenChanges) void this.recheck([socket]);
    return () => this.forget(socket);
  }

  get size(): number {
    return this.sockets.size;
  }

  /** Follows the announcements of every process: token and session changes, and a LISTEN re-established. */
  follow(pubsub: FleetPubSub): () => void {
    return pubsub.observe({
      delivered: (topic, detail) => {
        if (topic === 'apiTokenChanged' || topic === 'consoleSessionChanged') this.changes++;
        if (topic === 'apiTokenChanged') {
          const { tokenId } = detail as Events['apiTokenChanged'][0];
          void this.recheck([...this.sockets].filter((s) => s.principal.tokenId === tokenId));
        } else if (topic === 'consoleSessionChanged') {
          const { sessionId } = detail as Events['consoleSessionChanged'][0];
          void this.recheck([...this.sockets].filter((s) => s.principal.sessionId === sessionId));
        }
      },
      listening: () => {
        this.changes++;
        void this.recheck([...this.sockets]);
      },
    });
  }

  /** Reads the tokens and sessions of these sockets again; closes those that may not go on, and re-arms the others' expiry. */
  async recheck(sockets: OpenSocket[]): Promise<void> {
    if (sockets.length === 0) return;
    const tokenIds = [...new Set(sockets.map((s) => s.principal.tokenId))];
    const sessionIds = [...new Set(sockets.flatMap((s) => (s.principal.sessionId ? [s.principal.sessionId] : [])))];
    let tokens: Map<string, TokenState>;
    let sessions: Map<string, SessionState>;
    try {
      const [tokenRows, sessionRows] = await Promise.all([this.lookup.tokens(tokenIds), this.lookup.sessions(sessionIds)]);
      tokens = new Map(tokenRows.map((t) => [t.id, t]));
      sessions = new Map(sessionRows.map((s) => [s.id, s]));
    } catch (error) {
      // The database is away: the next announcement or the next round reads again; expiry timers still run.
      this.options.onError?.(error);
      return;
    }
    const now = this.now();
    for (const socket of sockets) {
      if (!this.sockets.has(socket)) continue;
      const { tokenId, sessionId } = socket.principal;
      const token = tokens.get(tokenId);
      const session = sessionId ? sessions.get(sessionId) : null;
      const ended = accessEnded(token, session, now);
      if (ended) {
        this.end(socket, ended);
        continue;
      }
      socket.principal.tokenExpiresAt = token!.expiresAt;
      if (session) socket.principal.sessionExpiresAt = session.expiresAt;
      this.arm(socket);
    }
  }

  /** Stops the timers (the server is closing: its sockets are closed by it). */
  close(): void {
    clearInterval(this.interval);
    for (const socket of this.sockets) clearTimeout(socket.timer);
    this.sockets.clear();
  }

  /** Closes the socket at its expiry (now, if that has passed). */
  private arm(socket: OpenSocket): void {
    clearTimeout(socket.timer);
    const expiresAt = principalExpiresAt(socket.principal);
    if (!expiresAt) return;
    const delay = expiresAt.getTime() - this.now().getTime();
    if (delay <= 0) {
      const { tokenExpiresAt, sessionId, sessionExpiresAt } = socket.principal;
      const session = sessionId && sessionExpiresAt ? { endedAt: null, expiresAt: sessionExpiresAt } : null;
      this.end(socket, accessEnded({ revokedAt: null, expiresAt: tokenExpiresAt ?? null }, session, this.now()) ?? 'The API token expired.');
      return;
    }
    socket.timer = setTimeout(() => this.arm(socket), Math.min(delay, MAX_TIMER_MS));
    socket.timer.unref();
  }

  private end(socket: OpenSocket, reason: string): void {
    this.forget(socket);
    socket.close(reason);
  }

  private forget(socket: OpenSocket): void {
    clearTimeout(socket.timer);
    this.sockets.delete(socket);
  }
}
