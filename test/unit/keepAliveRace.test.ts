import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_IDLE_CONNECTION_MS, AgentClient, ServerUnreachable } from '../../src/agent/client.js';
import { createApiHttpServer } from '../../src/api/tls.js';

/**
 * A kept-alive connection closed by the server at the moment an agent sends its next request on it
 * (10,000 idle agents lost 1,541 requests this way): the API keeps idle connections open far longer
 * than agents reuse them, and an agent resends a request lost that way when sending it twice is
 * harmless.
 */
describe('kept-alive connections closed under a request', () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  async function listen(server: http.Server): Promise<number> {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  /**
   * A server that answers every request with `{}`, except that once `closeOnNextRequest` is set it
   * closes the connection of the next request that arrives, without a byte of answer: what a server
   * whose keep-alive timer fires as the request arrives does. `seen` lists each request with its
   * connection's number.
   */
  async function serveClosingOnce(options: { onFirstRequestOfAConnection?: boolean } = {}) {
    const state = { closeOnNextRequest: false, seen: [] as Array<{ connection: number; route: string; closed: boolean }> };
    let connections = 0;
    const numbers = new WeakMap<net.Socket, number>();
    const requestsOn = new Map<number, number>();
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const connection = numbers.get(req.socket)!;
        const count = (requestsOn.get(connection) ?? 0) + 1;
        requestsOn.set(connection, count);
        const eligible = options.onFirstRequestOfAConnection ? count === 1 : count > 1;
        const close = state.closeOnNextRequest && eligible;
        state.seen.push({ connection, route: `${req.method} ${req.url!.replace(/\?.*/, '')}`, closed: close });
        if (close) {
          state.closeOnNextRequest = false;
          req.socket.destroy();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    server.on('connection', (socket) => numbers.set(socket, ++connections));
    const port = await listen(server);
    return { url: `http://127.0.0.1:${port}`, state };
  }

  const resent: Array<[string, (client: AgentClient) => Promise<unknown>]> = [
    ['a check-in', (c) => c.checkIn({} as never)],
    ['a command poll', (c) => c.commands(0)],
    ['an assessment report (it carries its id)', (c) => c.sendReport({ id: '00000000-0000-4000-8000-000000000001' } as never)],
    ['job events (numbered)', (c) => c.sendJobEvents('00000000-0000-4000-8000-000000000002', { seq: 1, lines: [], updates: [] })],
    ['a job result (stored once)', (c) => c.sendJobResult('00000000-0000-4000-8000-000000000002', {} as never)],
  ];

  it.each(resent)('%s lost on a kept-alive connection the server closed is sent again on a new one', async (_name, call) => {
    const { url, state } = await serveClosingOnce();
    const client = new AgentClient(url, 'fpm_credential');
    await client.checkIn({} as never);
    state.closeOnNextRequest = true;
    await expect(call(client)).resolves.toEqual({});
    const [first, lost, again] = state.seen;
    expect(state.seen).toHaveLength(3);
    expect(lost).toMatchObject({ connection: first!.connection, closed: true });
    expect(again).toMatchObject({ route: lost!.route, closed: false });
    expect(again!.connection).not.toBe(first!.connection);
  });

  it('an enrollment is not sent twice: a second one would enroll the machine again', async () => {
    const { url, state } = await serveClosingOnce();
    const client = new AgentClient(url, 'fpm_credential');
    await client.checkIn({} as never);
    state.closeOnNextRequest = true;
    const enrolling = client.enroll('fpe_key', {} as never);
    await expect(enrolling).rejects.toBeInstanceOf(ServerUnreachable);
    await expect(enrolling).rejects.toThrow(/POST .*\/enroll: a kept-alive connection was closed under the request \(ECONNRESET\)/);
    expect(state.seen.map((s) => s.route)).toEqual(['POST /agent/v1/checkin', 'POST /agent/v1/enroll']);
  });

  it('a request whose own new connection breaks is not sent again at once (the server is away)', async () => {
    const { url, state } = await serveClosingOnce({ onFirstRequestOfAConnection: true });
    state.closeOnNextRequest = true;
    const checkIn = new AgentClient(url, 'fpm_credential').checkIn({} as never);
    await expect(checkIn).rejects.toBeInstanceOf(ServerUnreachable);
    await expect(checkIn).rejects.toThrow(/POST .*\/checkin: ECONNRESET/);
    expect(state.seen).toHaveLength(1);
  });

  it("the API keeps an idle connection open past the agent's idle window, even when the agent's timers run 2 s late", async () => {
    const port = await listen(createApiHttpServer((_req, res) => res.writeHead(200, { 'content-length': '2' }).end('{}'), undefined));
    // A raw connection: Node's own agent would close it at the server's Keep-Alive hint.
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    let lastAnswerAt = Date.now();
    let closedAfter: number | undefined;
    const answers = () => received.match(/HTTP\/1\.1 200 /g)?.length ?? 0;
    socket.on('data', (chunk) => {
      received += chunk.toString();
      lastAnswerAt = Date.now();
    });
    // 'end': the server's side closed (the socket's own 'close' waits for our next write).
    socket.on('end', () => (closedAfter = Date.now() - lastAnswerAt));
    const waitFor = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (answers() >= n) resolve();
          else if (closedAfter !== undefined) reject(new Error(`the server closed the connection ${closedAfter} ms after its last answer, before answering request ${n}`));
          else return;
          socket.off('data', check).off('end', check);
        };
        socket.on('data', check).on('end', check);
        check();
      });
    try {
      const request = 'GET /agent/v1/commands HTTP/1.1\r\nHost: fleetpatch\r\nConnection: keep-alive\r\n\r\n';
      socket.write(request);
      await waitFor(1);
      expect(received).toMatch(/^Keep-Alive: timeout=(\d+)/im);
      // The stretch an agent may leave a connection idle and then reuse it: its own window, plus
      // its timers running late on a busy host (Node's default 5 s server timeout closed it here).
      const idleMs = AGENT_IDLE_CONNECTION_MS + 2_000;
      await new Promise((resolve) => setTimeout(resolve, idleMs));
      expect(closedAfter, `the server closed an idle connection ${closedAfter} ms after its answer`).toBeUndefined();
      socket.write(request);
      await waitFor(2);
    } finally {
      socket.destroy();
    }
  });
});
