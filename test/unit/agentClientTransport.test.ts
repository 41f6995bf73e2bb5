import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient, ServerRefusal, ServerUnreachable } from '../../src/agent/client.js';

/** The agent's HTTP transport against a local server that misbehaves on purpose. */
describe('agent client transport', () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  async function serve(handler: http.RequestListener): Promise<{ url: string; sockets: Set<unknown> }> {
    const server = http.createServer(handler);
    const sockets = new Set<unknown>();
    server.on('connection', (socket) => sockets.add(socket));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets };
  }

  it('sends JSON with the credential and reuses one connection for requests in a row', async () => {
    const seen: Array<{ method?: string; url?: string; authorization?: string; body: string }> = [];
    const { url, sockets } = await serve((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({ method: req.method, url: req.url, authorization: req.headers.authorization, body });
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ stored: true }));
      });
    });
    const client = new AgentClient(url, 'fpm_secret');
    const report = { id: '00000000-0000-4000-8000-000000000001' } as never;
    for (let i = 0; i < 3; i++) expect(await client.sendReport(report)).toEqual({ stored: true });
    expect(seen).toHaveLength(3);
    expect(seen[0]).toEqual({ method: 'POST', url: '/agent/v1/assessments', authorization: 'Bearer fpm_secret', body: JSON.stringify(report) });
    expect(sockets.size).toBe(1);
  });

  it('says the server is unreachable, and why, when nothing listens', async () => {
    const { url } = await serve(() => undefined);
    await new Promise((resolve) => servers.pop()!.close(resolve));
    const failure = new AgentClient(url, 'c').checkIn({} as never);
    await expect(failure).rejects.toBeInstanceOf(ServerUnreachable);
    await expect(failure).rejects.toThrow(/POST .*\/agent\/v1\/checkin: ECONNREFUSED/);
  });

  it('stops a request at once when its caller aborts (an agent stopping mid-poll)', async () => {
    const controller = new AbortController();
    // Takes the request and never answers: the agent stops while the server holds its poll.
    const { url } = await serve(() => controller.abort(new Error('stopping')));
    const started = Date.now();
    const poll = new AgentClient(url, 'c').commands(25, controller.signal);
    await expect(poll).rejects.toMatchObject({ name: 'AbortError' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('tells an answer cut off midway from a refusal, and a 5xx from a 4xx', async () => {
    const { url } = await serve((req, res) => {
      if (req.url!.endsWith('/checkin')) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        // Cut off once the first half has left.
        res.write('{"managementEnabled":', () => res.destroy());
      } else if (req.url!.endsWith('/assessments')) {
        res.writeHead(503).end();
      } else {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'UNAUTHENTICATED', message: 'Enroll again.' } }));
      }
    });
    const client = new AgentClient(url, 'c');
    await expect(client.checkIn({} as never)).rejects.toThrow(/the answer was cut off/);
    await expect(client.sendReport({} as never)).rejects.toBeInstanceOf(ServerUnreachable);
    const refusal = client.commands(0);
    await expect(refusal).rejects.toBeInstanceOf(ServerRefusal);
    await expect(refusal).rejects.toMatchObject({ status: 401, code: 'UNAUTHENTICATED', message: 'Enroll again.' });
  });
});
