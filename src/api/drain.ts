import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { ApolloServerPlugin } from '@apollo/server';

/** How long requests in flight (long-polls among them) and WebSockets get when the API stops, as Apollo's own drain plugin gives them. */
const DRAIN_GRACE_MS = 10_000;

/**
 * Apollo's drain plugin on Node's own connection tracking. `ApolloServerPluginDrainHttpServer`
 * (its Stopper) puts a listener and closures on every request and every connection of the HTTP
 * server, the agent endpoint's included: an idle agent's long-poll would hold them until it is
 * answered, several hundred bytes each, and every agent request would pay for them. Node tracks its HTTP
 * connections itself (`closeIdleConnections`, `closeAllConnections`); only the WebSockets, which
 * leave that tracking when they upgrade, are kept here (a console's few).
 *
 * Draining stops accepting, closes connections as they become idle, and after the grace period
 * cuts what is left.
 */
export function drainHttpServer(httpServer: http.Server, graceMs = DRAIN_GRACE_MS): ApolloServerPlugin {
  const upgraded = new Set<Duplex>();
  httpServer.on('upgrade', (_req: http.IncomingMessage, socket: Duplex) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
  });
  return {
    async serverWillStart() {
      return {
        async drainServer() {
          const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
          // A kept-alive connection whose request ends meanwhile is idle from then on.
          const idle = setInterval(() => httpServer.closeIdleConnections(), 100);
          const cut = setTimeout(() => {
            httpServer.closeAllConnections();
            for (const socket of upgraded) socket.destroy();
          }, graceMs);
          try {
            await closed;
          } finally {
            clearInterval(idle);
            clearTimeout(cut);
          }
        },
      };
    },
  };
}
