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

/** The API's HTTP server: HTTPS when a certificate and key are given, plain HTTP otherwise. */
export function createApiHttpServer(app: RequestListener, tls: TlsFiles | undefined): http.Server {
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
