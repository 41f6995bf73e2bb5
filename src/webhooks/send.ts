import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import type { AddressPolicy } from './addressPolicy.js';

export interface SendOptions {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** The whole attempt, from connecting to the answer's status, is abandoned after this. */
  timeoutMs: number;
  /** At most this much of the answer is read (for the delivery log's error); the rest is dropped. */
  maxResponseBytes: number;
  policy: AddressPolicy;
}

export type SendResult = { statusCode: number; body: string } | { statusCode: null; error: string };

/**
 * One POST of a delivery. Never follows redirects (a 3xx is an answer like any other), never
 * waits longer than the timeout, never reads more than maxResponseBytes of the answer, and
 * connects only to an address the policy allows: the check is in the socket's own DNS lookup, so
 * the address checked is the address used.
 */
export function sendWebhook(options: SendOptions): Promise<SendResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      resolve(result);
    };
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      resolve({ statusCode: null, error: 'the URL cannot be parsed' });
      return;
    }
    const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
      dns.lookup(hostname, { ...lookupOptions, all: true }, (error, addresses) => {
        if (error) return callback(error, '', 4);
        const list = addresses as dns.LookupAddress[];
        const refused = list.map((a) => options.policy.problem(a.address)).find((p) => p !== null);
        // Every address the name has must be allowed: the connection may use any of them.
        if (refused || list.length === 0) return callback(Object.assign(new Error(refused ?? `${hostname} has no address`), { code: 'EADDRNOTALLOWED' }), '', 4);
        if ((lookupOptions as { all?: boolean }).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
        return callback(null, list[0]!.address, list[0]!.family);
      });
    };
    // A literal address never goes through lookup: check it here.
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      const problem = options.policy.problem(host);
      if (problem) {
        resolve({ statusCode: null, error: problem });
        return;
      }
    }
    const transport = url.protocol === 'https:' ? https : http;
    const request = transport.request(url, {
      method: 'POST',
      headers: { ...options.headers, 'content-length': Buffer.byteLength(options.body) },
      lookup,
      agent: false,
    });
    const timer = setTimeout(() => finish({ statusCode: null, error: `no answer within ${options.timeoutMs} ms` }), options.timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => finish({ statusCode: null, error: error.message || error.code || 'request failed' }));
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => finish({ statusCode: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      response.on('data', (chunk: Buffer) => {
        const room = options.maxResponseBytes - size;
        if (room > 0) chunks.push(chunk.subarray(0, room));
        size += chunk.length;
        if (size >= options.maxResponseBytes) done();
      });
      response.on('end', done);
      response.on('error', done);
    });
    request.end(options.body);
  });
}
