import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ephemeralPortsStart, freePort } from '../../src/net.js';

describe('freePort', () => {
  // A port inside the ephemeral range can be taken by any outgoing connection between the check
  // and the bind: CI once saw a Temporal dev server fail on a Web UI port chosen that way.
  it('chooses ports below the range the kernel gives outgoing connections, each one free to listen on', async () => {
    const start = ephemeralPortsStart();
    const ports = await Promise.all(Array.from({ length: 40 }, () => freePort()));
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(start);
    }
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(ports[0], '127.0.0.1', resolve);
    });
    server.close();
  });
});
