import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/** How a subscription socket ended: its close code and reason, and when. */
export interface SocketEnd {
  code: number;
  reason: string;
  at: number;
}

/**
 * A graphql-ws client with one subscription open, that tells when the server acknowledged the
 * connection and when (and how) the socket closed. `headers` go on the handshake (a browser's
 * Cookie and Origin).
 */
export async function openSubscription(url: string, options: { token?: string; headers?: Record<string, string> }): Promise<{ client: Client; closed: Promise<SocketEnd>; events: unknown[] }> {
  const headers = options.headers ?? {};
  class HandshakeWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols, { headers });
    }
  }
  let connected!: () => void;
  let refused!: (end: SocketEnd) => void;
  const acknowledged = new Promise<void>((resolve, reject) => {
    connected = resolve;
    refused = (end) => reject(new Error(`the socket was closed before it was acknowledged: ${end.code} ${end.reason}`));
  });
  let settle!: (end: SocketEnd) => void;
  const closed = new Promise<SocketEnd>((resolve) => (settle = resolve));
  let open = false;
  const client = createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: HandshakeWebSocket,
    connectionParams: options.token ? { authorization: `Bearer ${options.token}` } : {},
    lazy: false,
    // The close is what the tests look at: not printed as an error.
    onNonLazyError: () => undefined,
    retryAttempts: 0,
    on: {
      connected: () => {
        open = true;
        connected();
      },
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        const end = { code, reason, at: Date.now() };
        if (!open) refused(end);
        settle(end);
      },
    },
  });
  const events: unknown[] = [];
  client.subscribe({ query: 'subscription { machineChanged { id } }' }, { next: (value) => void events.push(value), error: () => undefined, complete: () => undefined });
  await acknowledged;
  return { client, closed, events };
}
