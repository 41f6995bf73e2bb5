import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient, ServerUnreachable } from '../../src/agent/client.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { machineFacts } from '../../testkit/agentFacts.js';
import { connectTestDatabase, freshDatabase, startTestApi, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { AGENT_BUNDLE } from '../support/fleet.js';

/** A private CA and a server certificate for 127.0.0.1 it signed, plus an unrelated CA: made by openssl now. */
function makeCertificates(dir: string) {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  for (const ca of ['ca', 'other-ca']) {
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=fleetpatch test ${ca}`);
  }
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  return { ca: path.join(dir, 'ca.pem'), otherCa: path.join(dir, 'other-ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
}

describe('HTTPS: the server serves a certificate, the agent verifies it against a CA file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-tls-'));
  let files: ReturnType<typeof makeCertificates>;
  let api: ApiServer;
  let database: Database;
  let drop: () => Promise<void>;
  let enrollKey: string;

  beforeAll(async () => {
    files = makeCertificates(dir);
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    api = await startTestApi(temporalSettings(), { databaseUrl: fresh.url, tls: { certFile: files.cert, keyFile: files.key } });
    const admin = await tokenFor(database, 'ADMIN');
    const created = await new Promise<string>((resolve, reject) => {
      const request = https.request(api.url, { method: 'POST', ca: fs.readFileSync(files.ca), headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(body));
      });
      request.on('error', reject);
      request.end(JSON.stringify({ query: 'mutation { createEnrollmentKey(input: {description: "tls"}) { secret } }' }));
    });
    enrollKey = (JSON.parse(created) as { data: { createEnrollmentKey: { secret: string } } }).data.createEnrollmentKey.secret;
  });

  afterAll(async () => {
    await api?.close();
    await database?.close();
    await drop?.();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('announces an https URL and serves GraphQL there', () => {
    expect(api.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/graphql$/);
  });

  it('lets an agent holding the CA enroll, and turns away one trusting another CA or only the system store', async () => {
    const machines = async () => Number((await database.sql`select count(*)::int as n from machines`)[0]!.n);
    const before = await machines();
    const enrolled = await new AgentClient(api.url, null, fs.readFileSync(files.ca)).enroll(enrollKey, machineFacts({ hostname: 'tls-01' }));
    expect(enrolled.credential).toMatch(/^fpm_/);

    const wrongCa = new AgentClient(api.url, null, fs.readFileSync(files.otherCa)).enroll(enrollKey, machineFacts());
    await expect(wrongCa).rejects.toBeInstanceOf(ServerUnreachable);
    await expect(wrongCa).rejects.toThrow(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|self.signed|unable to verify/i);
    await expect(new AgentClient(api.url).enroll(enrollKey, machineFacts())).rejects.toBeInstanceOf(ServerUnreachable);

    expect(await machines()).toBe(before + 1);
  });

  it('runs the bundled agent with --ca-file against the HTTPS server until its machine checks in', async () => {
    const stateDir = path.join(dir, 'agent-state');
    const bootIdFile = path.join(dir, 'boot_id');
    fs.writeFileSync(bootIdFile, `${crypto.randomUUID()}\n`);
    const child = spawn(process.execPath, [AGENT_BUNDLE, 'run', '--server', api.url, '--ca-file', files.ca, '--enroll-key', enrollKey, '--state-dir', stateDir, '--assess-only', '--boot-id-file', bootIdFile], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let output = '';
    child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    try {
      const machines = await waitUntil(
        () => database.sql`select name, last_seen_at from machines where id <> all(select id from machines where name = 'tls-01')`,
        (rows) => rows.length === 1,
        30_000,
        `the agent to enroll over HTTPS; agent output:\n${output}`,
      );
      expect(machines[0]!.last_seen_at).not.toBeNull();
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('refuses --ca-file with a plain http URL or a file that holds no certificate', () => {
    const run = (args: string[]) => {
      try {
        execFileSync(process.execPath, [AGENT_BUNDLE, 'run', ...args], { stdio: 'pipe' });
        return '';
      } catch (error) {
        return String((error as { stderr: Buffer }).stderr);
      }
    };
    expect(run(['--server', 'http://127.0.0.1:1', '--ca-file', files.ca])).toMatch(/--ca-file needs an https:\/\/ --server URL/);
    expect(run(['--server', api.url, '--ca-file', files.key])).toMatch(/holds no PEM certificate/);
  });
});
