import fs from 'node:fs';
import net from 'node:net';
import type { Server } from 'node:http';

export class PortInUseError extends Error {
  override name = 'PortInUseError';
  constructor(
    readonly port: number,
    readonly purpose: string,
    readonly setting: string,
  ) {
    super(`Port ${port} (${purpose}) is already in use. Stop what is listening there, or choose another port with ${setting}=<port>.`);
  }
}

/** Starts an HTTP server, turning EADDRINUSE into an error that names the port and the setting. */
export function listen(server: Server, port: number, host: string, purpose: string, setting: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(port, purpose, setting) : error);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

/** Fails with PortInUseError if something already listens on the port (checked before starting a child process). */
export async function assertPortFree(port: number, host: string, purpose: string, setting: string): Promise<void> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(port, purpose, setting) : error),
    );
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

/** Resolves once a TCP connection to host:port succeeds, polling until the deadline. */
export async function waitForPort(port: number, host: string, timeoutMs: number, isAlive: () => boolean = () => true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, host);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (!isAlive()) throw new Error(`the process that should listen on ${host}:${port} has exited`);
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Whether something could listen on host:port right now. */
function canListen(port: number, host: string): Promise<boolean> {
  const probe = net.createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}

/** The lowest port the kernel hands to outgoing connections and to listen(0). */
export function ephemeralPortsStart(): number {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > FREE_PORTS_FROM ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const FREE_PORTS_FROM = 10_000;

/**
 * A free TCP port on the loopback interface (tests, benches), chosen below the ephemeral range:
 * a port from listen(0) lies inside it, where any outgoing connection made before the caller's
 * server binds it (seconds later, for a Temporal dev server) may take it as its local port, and
 * that server then fails with "address already in use".
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const end = ephemeralPortsStart();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = FREE_PORTS_FROM + Math.floor(Math.random() * (end - FREE_PORTS_FROM));
    if (await canListen(port, host)) return port;
  }
  throw new Error(`no free port between ${FREE_PORTS_FROM} and ${end - 1} on ${host} after 100 tries`);
}
