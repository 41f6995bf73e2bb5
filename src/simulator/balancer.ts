import net from 'node:net';

/** One API process behind the balancer. */
export interface Backend {
  address: string;
  /** Connections it was given, over the balancer's life. */
  connections: number;
  /** Connections to it open now. */
  open: number;
  /** Until when (epoch ms) new connections skip it: it refused one. */
  downUntil: number;
}

export interface TcpBalancer {
  /** host:port the agents and clients connect to. */
  address: string;
  backends: Backend[];
  close(): Promise<void>;
}

/** How long a backend that refused a connection is skipped, as a load balancer's failed health check would. */
const DOWN_MS = 2000;

/**
 * A TCP load balancer in front of several `fleetpatch server` processes, as an operator runs one
 * (a Kubernetes Service, HAProxy with `option redispatch`, nginx's stream `proxy_next_upstream`):
 * each new connection goes to the next backend in turn; a backend that refuses the connection (its
 * process is gone) is skipped for a while and the connection is tried on the next one, so a client
 * never sees a dead replica, only its own connections to it cut. WebSockets and long-polls pass
 * through as plain TCP. The simulator and benchmarks put it in front of API replicas to drive the
 * agents' failover the way a deployment does.
 */
export async function startTcpBalancer(targets: string[], { host = '127.0.0.1', port = 0 }: { host?: string; port?: number } = {}): Promise<TcpBalancer> {
  const backends: Backend[] = targets.map((address) => ({ address, connections: 0, open: 0, downUntil: 0 }));
  const sockets = new Set<net.Socket>();
  let next = 0;

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  };

  /** Connects to the first backend, from the next in turn, that accepts; undefined when none does. */
  const connect = async (): Promise<{ upstream: net.Socket; backend: Backend } | undefined> => {
    const now = Date.now();
    const order = backends.map((_, i) => backends[(next + i) % backends.length]!);
    next = (next + 1) % backends.length;
    // Backends thought down are tried last, not never: every one may have come back.
    const candidates = [...order.filter((b) => b.downUntil <= now), ...order.filter((b) => b.downUntil > now)];
    for (const backend of candidates) {
      const colon = backend.address.lastIndexOf(':');
      const upstream = net.connect(Number(backend.address.slice(colon + 1)), backend.address.slice(0, colon));
      const connected = await new Promise<boolean>((resolve) => {
        upstream.once('connect', () => resolve(true));
        upstream.once('error', () => resolve(false));
      });
      if (connected) {
        backend.downUntil = 0;
        return { upstream, backend };
      }
      upstream.destroy();
      backend.downUntil = Date.now() + DOWN_MS;
    }
    return undefined;
  };

  const server = net.createServer((client) => {
    track(client);
    client.on('error', () => client.destroy());
    // Nothing is read from the client until its backend is connected: the bytes wait in the socket.
    client.pause();
    void connect().then((picked) => {
      if (!picked || client.destroyed) {
        picked?.upstream.destroy();
        client.destroy();
        return;
      }
      const { upstream, backend } = picked;
      track(upstream);
      backend.connections += 1;
      backend.open += 1;
      upstream.on('error', () => upstream.destroy());
      upstream.once('close', () => {
        backend.open -= 1;
        client.destroy();
      });
      client.once('close', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
      client.resume();
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()));
  const bound = server.address() as net.AddressInfo;
  return {
    address: `${host}:${bound.port}`,
    backends,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
