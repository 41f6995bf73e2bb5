import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { enrollOnce } from '../../src/agent/enrollment.js';
import { AgentRefused } from '../../src/agent/errors.js';
import type { EnrollRequest } from '../../src/agent/protocol.js';
import { loadIdentity } from '../../src/agent/state.js';

/**
 * A server that reads each enrollment and, while `drop` says so, closes the connection instead of
 * answering: what the agent sees of a server that enrolled the machine and whose answer was lost.
 */
async function enrollmentServer(drop: (attempt: number) => boolean) {
  const requests: EnrollRequest[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      requests.push(JSON.parse(body) as EnrollRequest);
      if (drop(requests.length)) return void req.socket.destroy();
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ machineId: 'm-1', credential: 'fpm_second', settings: { checkInIntervalSeconds: 60, assessmentIntervalSeconds: 10_800, packageDatabaseCheckSeconds: 900, longPollSeconds: 25 }, releaseKey: null }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, close: () => server.close() };
}

describe('the agent enrolling again after a lost answer', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => cleanups.splice(0).forEach((cleanup) => cleanup()));

  function machine() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-enroll-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.mkdirSync(path.join(dir, 'root', 'etc'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'root', 'etc', 'os-release'), 'ID=debian\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n');
    return { root: path.join(dir, 'root'), stateDir: path.join(dir, 'state'), bootIdFile: path.join(dir, 'boot-id') };
  }

  const log = () => {};

  it('sends the same enrollment request id in its retry, and forgets it once enrolled', async () => {
    const server = await enrollmentServer((attempt) => attempt === 1);
    cleanups.push(server.close);
    const dirs = machine();
    const enrolled = await enrollOnce({ server: server.url, enrollKey: 'fpe_key', ...dirs, env: {}, agentVersion: '0.1.0', log, attempts: 2 });
    expect(enrolled).toEqual({ machineId: 'm-1', already: false });
    expect(server.requests).toHaveLength(2);
    expect(server.requests[0]!.enrollmentRequestId).toMatch(/^[A-Za-z0-9_-]{16,64}$/);
    expect(server.requests[1]!.enrollmentRequestId).toBe(server.requests[0]!.enrollmentRequestId);
    expect(loadIdentity(dirs.stateDir)).toMatchObject({ machineId: 'm-1', credential: 'fpm_second' });
    expect(fs.readdirSync(dirs.stateDir)).not.toContain('enrollment-request-id');
  });

  it('keeps the id across a restart mid-enrollment (the state dir holds it), and a new enrollment gets a new one', async () => {
    const server = await enrollmentServer((attempt) => attempt === 1);
    cleanups.push(server.close);
    const dirs = machine();
    const options = { server: server.url, enrollKey: 'fpe_key', ...dirs, env: {}, agentVersion: '0.1.0', log, attempts: 1 };
    await expect(enrollOnce(options)).rejects.toBeInstanceOf(AgentRefused);
    await enrollOnce(options);
    expect(server.requests[1]!.enrollmentRequestId).toBe(server.requests[0]!.enrollmentRequestId);

    const other = machine();
    await enrollOnce({ ...options, ...other });
    expect(server.requests[2]!.enrollmentRequestId).not.toBe(server.requests[0]!.enrollmentRequestId);
  });
});
