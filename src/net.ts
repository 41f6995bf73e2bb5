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

/** A free TCP port on the loopback interface (tests). */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  return new Promise((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
