import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { addressPolicy, parseNetworks } from '../../src/webhooks/addressPolicy.js';
import { sendWebhook } from '../../src/webhooks/send.js';

/**
 * One delivery attempt against real local HTTP servers that misbehave: whatever a receiver does,
 * the attempt ends within its timeout, reads a bounded part of the answer, follows no redirect and
 * connects only where the address policy allows.
 */
describe('a webhook delivery attempt', () => {
  const servers: http.Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => { s.closeAllConnections(); s.close(resolve); })));
  });

  async function serve(handler: http.RequestListener): Promise<string> {
    const server = http.createServer(handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  const loopback = addressPolicy(parseNetworks('127.0.0.1/32'));
  const send = (url: string, extra: Partial<Parameters<typeof sendWebhook>[0]> = {}) =>
    sendWebhook({ url, headers: { 'content-type': 'application/json' }, body: '{"id":"e1"}', timeoutMs: 2000, maxResponseBytes: 4096, policy: loopback, ...extra });

  it('posts the body with its headers and returns the status', async () => {
    let seen: { method?: string; type?: string; body: string } = { body: '' };
    const url = await serve((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen = { method: req.method, type: req.headers['content-type'], body };
        res.writeHead(204).end();
      });
    });
    expect(await send(`${url}/hook`)).toEqual({ statusCode: 204, body: '' });
    expect(seen).toEqual({ method: 'POST', type: 'application/json', body: '{"id":"e1"}' });
  });

  it('gives up on a receiver that never answers, at its timeout', async () => {
    const url = await serve(() => undefined);
    const started = Date.now();
    const result = await send(url, { timeoutMs: 300 });
    expect(result).toEqual({ statusCode: null, error: 'no answer within 300 ms' });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('gives up on a receiver that answers its headers and then trickles forever', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(500);
      res.write('x');
      // Never ends the answer.
    });
    const result = await send(url, { timeoutMs: 300, maxResponseBytes: 4096 });
    expect(result).toEqual({ statusCode: null, error: 'no answer within 300 ms' });
  });

  it('reads at most the limit of an endless answer, and does not wait for its end', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(500);
      const chunk = 'y'.repeat(64 * 1024);
      const pump = () => {
        while (res.write(chunk));
        res.once('drain', pump);
      };
      pump();
      res.on('error', () => undefined);
    });
    const result = await send(url, { timeoutMs: 5000, maxResponseBytes: 4096 });
    expect(result.statusCode).toBe(500);
    expect((result as { body: string }).body).toHaveLength(4096);
  });

  it('does not follow a redirect: the 3xx is the answer', async () => {
    let followed = 0;
    const target = await serve((_req, res) => {
      followed++;
      res.writeHead(200).end();
    });
    const url = await serve((_req, res) => res.writeHead(302, { location: `${target}/elsewhere` }).end());
    expect((await send(url)).statusCode).toBe(302);
    expect(followed).toBe(0);
  });

  it('connects only to allowed addresses: a private literal, and a name that resolves to one, are refused before any request', async () => {
    let requests = 0;
    const url = await serve((_req, res) => {
      requests++;
      res.writeHead(200).end();
    });
    const closed = addressPolicy([]);
    expect(await send(url, { policy: closed })).toEqual({ statusCode: null, error: expect.stringContaining('127.0.0.1 is not a public address') });
    expect(await send(url.replace('127.0.0.1', 'localhost'), { policy: closed })).toEqual({ statusCode: null, error: expect.stringMatching(/(127\.0\.0\.1|::1) is not a public address/) });
    expect(requests).toBe(0);
    expect(await send(url.replace('127.0.0.1', 'localhost'), { policy: addressPolicy(parseNetworks('127.0.0.1/32, ::1/128')) })).toMatchObject({ statusCode: 200 });
    expect(requests).toBe(1);
  });

  it('answers an error, not a throw, for a connection refused', async () => {
    const url = await serve(() => undefined);
    await new Promise((resolve) => { servers[0]!.close(resolve); servers.length = 0; });
    expect(await send(url)).toEqual({ statusCode: null, error: expect.stringMatching(/ECONNREFUSED/) });
  });
});
