import type { WebSocket } from 'ws';
import type { ApiLimits } from '../config.js';
import type { Principal } from './auth.js';
import { apiError } from './errors.js';

/**
 * Caps on subscriptions, per API process: subscriptions open on one socket, and sockets open with
 * one API token. Every event is resolved once per matching subscription, so without them one
 * VIEWER socket holding 10,000 `machineChanged` subscriptions made one assessment take 54 s to fan
 * out while every other client waited.
 *
 * Each has its own answer: a subscription past the socket's cap gets a GraphQL error with
 * `TOO_MANY_SUBSCRIPTIONS` (the socket and its other subscriptions stay); a socket past the
 * token's cap is closed with `TOO_MANY_SOCKETS_CLOSE_CODE` before it is acknowledged.
 */

/**
 * Ours (WebSocket codes 4000-4999 belong to applications): graphql-ws uses 4000 + the HTTP status
 * for its own closes, and its 4429 already means "too many initialisation requests".
 */
export const TOO_MANY_SOCKETS_CLOSE_CODE = 4029;

/** What the caps keep on each socket, in graphql-ws's `extra` (the server's extra type includes it). */
export type SubscriptionLimitsExtra = {
  /** Set once the socket holds a place among its token's sockets. */
  socketsKey?: string;
};

/** The part of graphql-ws's context the caps read. */
interface SocketContext {
  readonly subscriptions: Readonly<Record<string, unknown>>;
  extra: SubscriptionLimitsExtra & { socket: Pick<WebSocket, 'close'> };
}

export interface SubscriptionLimits {
  /**
   * onConnect, once the token is known: true when the socket may open; otherwise the socket is
   * already being closed with TOO_MANY_SOCKETS_CLOSE_CODE and onConnect must refuse it.
   */
  admitSocket(ctx: SocketContext, principal: Principal): boolean;
  /** onSubscribe: the error to answer when the socket already holds its share, else null. */
  refuseSubscription(ctx: SocketContext): ReturnType<typeof apiError> | null;
  /** onClose: frees the socket's place. */
  release(ctx: SocketContext): void;
}

export function subscriptionLimits(limits: Pick<ApiLimits, 'subscriptionsPerSocket' | 'socketsPerToken'>): SubscriptionLimits {
  const socketsByToken = new Map<string, number>();
  return {
    admitSocket(ctx, principal) {
      const key = principal.tokenId;
      const open = socketsByToken.get(key) ?? 0;
      if (limits.socketsPerToken > 0 && open >= limits.socketsPerToken) {
        // A close reason holds at most 123 bytes: the setting's name says the rest.
        ctx.extra.socket.close(TOO_MANY_SOCKETS_CLOSE_CODE, `Too many sockets for this token (FLEETPATCH_SOCKETS_PER_TOKEN=${limits.socketsPerToken})`);
        return false;
      }
      socketsByToken.set(key, open + 1);
      ctx.extra.socketsKey = key;
      return true;
    },
    refuseSubscription(ctx) {
      if (limits.subscriptionsPerSocket <= 0) return null;
      // graphql-ws has already entered the new subscription's id when it asks onSubscribe.
      const open = Object.keys(ctx.subscriptions).length;
      if (open <= limits.subscriptionsPerSocket) return null;
      return apiError(
        'TOO_MANY_SUBSCRIPTIONS',
        `This socket already holds ${open - 1} subscriptions; at most ${limits.subscriptionsPerSocket} are allowed per socket (FLEETPATCH_SUBSCRIPTIONS_PER_SOCKET). Complete one you no longer need first.`,
      );
    },
    release(ctx) {
      const key = ctx.extra.socketsKey;
      if (key === undefined) return;
      ctx.extra.socketsKey = undefined;
      const open = (socketsByToken.get(key) ?? 1) - 1;
      if (open > 0) socketsByToken.set(key, open);
      else socketsByToken.delete(key);
    },
  };
}
