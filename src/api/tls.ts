import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { RequestListener } from 'node:http';
import { ConfigError } from '../config.js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

function readPem(file: string, setting: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new ConfigError(`${setting}=${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}). Point it at a PEM file.`);
  }
}

/**
 * How long the API keeps an idle kept-alive connection open. The client must be the side that
 * closes an idle connection: when the server does, a request the client sends on it at that moment
 * is lost (a reset, or a close before any answer). Node's default of 5 s left agents, which close
 * theirs after 4 s (`AGENT_IDLE_CONNECTION_MS`), one second, less what their timers ran late: a
 * simulator of 10,000 agents on a busy host lost 1,541 requests that way. 65 s is also longer than
 * the idle timeout of the proxies and load balancers usually put in front (nginx's upstream
 * keep-alive and cloud load balancers: 60 s), which reuse connections the same way. Idle
 * connections are not subject to `headersTimeout` (it runs from a request's first byte), so it
 * needs no change.
 */
export const API_KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** The API's HTTP server: HTTPS when a certificate and key are given, plain HTTP otherwise. */
export function createApiHttpServer(app: RequestListener, tls: TlsFiles | undefined): http.Server {
  const server = createServer(app, tls);
  server.keepAliveTimeout = API_KEEP_ALIVE_TIMEOUT_MS;
  return server;
}

function createServer(app: RequestListener, tls: TlsFiles | undefined): http.Server {
  if (!tls) return http.createServer(app);
  const cert = readPem(tls.certFile, 'FLEETPATCH_TLS_CERT');
  const key = readPem(tls.keyFile, 'FLEETPATCH_TLS_KEY');
  try {
    // https.Server is an http.Server for everything the API does with it (listen, upgrade, close).
    return https.createServer({ cert, key, minVersion: 'TLSv1.2' }, app) as unknown as http.Server;
  } catch (error) {
    throw new ConfigError(`FLEETPATCH_TLS_CERT / FLEETPATCH_TLS_KEY do not make a usable certificate and key: ${(error as Error).message}`);
  }
}
