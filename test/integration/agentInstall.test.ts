import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import { loadConfig } from '../../src/config.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, testLogger, tokenFor } from '../support/env.js';
import type { Database } from '../../src/db/client.js';
import { createEnrollmentKey, revokeEnrollmentKey } from '../../src/db/enrollmentKeys.js';
import { machineFacts } from '../../testkit/agentFacts.js';

/**
 * What the server offers machines before they are enrolled: the install scripts with its address
 * and packages in them, the files of `npm run package` by their manifests' names (with clear
 * answers when it was built without them), the enrollment key check the script makes before it
 * installs anything, the install commands GraphQL gives an admin, and the release key agents pin.
 */
const run = promisify(execFile);
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** A dist folder as `npm run package` leaves it, with small stand-ins for the files. */
function fakeDist(dir: string): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  const put = (sub: string, name: string, content: string) => {
    fs.mkdirSync(path.join(dir, sub), { recursive: true });
    files[name] = Buffer.from(content);
    fs.writeFileSync(path.join(dir, sub, name), content);
  };
  put('executables', 'fleetpatch-agent-linux-x64', 'x64 executable');
  put('executables', 'fleetpatch-agent-linux-arm64', 'arm64 executable');
  const executable = (platform: string, name: string) => ({ platform, name, sha256: sha256(files[name]!), size: files[name]!.length });
  fs.writeFileSync(path.join(dir, 'executables/manifest.json'), JSON.stringify({ version: '0.9.0', files: [executable('linux-x64', 'fleetpatch-agent-linux-x64'), executable('linux-arm64', 'fleetpatch-agent-linux-arm64')] }));
  put('packages', 'fleetpatch-agent_0.9.0_amd64.deb', 'a deb');
  put('packages', 'fleetpatch-agent-0.9.0-1.aarch64.rpm', 'an rpm');
  put('packages', 'fleetpatch-agent-0.9.0-x64.zip', 'a zip');
  const pkg = (name: string, format: string, arch: string, platform: string) => ({ name, format, arch, platform, sha256: sha256(files[name]!), size: files[name]!.length });
  fs.writeFileSync(
    path.join(dir, 'packages/manifest.json'),
    JSON.stringify({
      version: '0.9.0',
      files: [
        pkg('fleetpatch-agent_0.9.0_amd64.deb', 'deb', 'amd64', 'linux-x64'),
        pkg('fleetpatch-agent-0.9.0-1.aarch64.rpm', 'rpm', 'aarch64', 'linux-arm64'),
        pkg('fleetpatch-agent-0.9.0-x64.zip', 'zip', 'x64', 'windows-x64'),
        // Listed, but not there: never served.
        { name: 'fleetpatch-agent_0.9.0_arm64.deb', format: 'deb', arch: 'arm64', platform: 'linux-arm64', sha256: 'ab', size: 2 },
      ],
    }),
  );
  return files;
}

describe('the agent install endpoint', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-agent-install-'));
  let drop: () => Promise<void>;
  let database: Database;
  let withDist: ApiServer;
  let withoutDist: ApiServer;
  let files: Record<string, Buffer>;
  let admin: string;
  const base = (api: ApiServer) => api.url.replace('/graphql', '');

  beforeAll(async () => {
    files = fakeDist(path.join(work, 'dist'));
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    admin = await tokenFor(database, 'ADMIN');
    const config = loadConfig({});
    const start = (agentDistribution: { distDir?: string; releaseKeyFile?: string; publicUrl?: string }) =>
      startApiServer({ databaseUrl: fresh.url, temporal: temporalSettings(), port: 0, host: '127.0.0.1', logger: testLogger, sandbox: false, fleet: config, limits: config.limits, agentDistribution });
    withDist = await start({ distDir: path.join(work, 'dist'), releaseKeyFile: path.join(work, 'keys/release-key.json') });
    withoutDist = await start({ distDir: path.join(work, 'no-dist'), publicUrl: 'https://fleetpatch.example.com' });
  });

  afterAll(async () => {
    await withDist?.close();
    await withoutDist?.close();
    await database?.close();
    await drop?.();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('serves install.sh with its own address and its Linux packages and their sums filled in, a script sh can parse', async () => {
    const response = await fetch(`${base(withDist)}/agent/install.sh`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/x-shellscript; charset=utf-8');
    const script = await response.text();
    expect(script).toContain(`FP_DEFAULT_SERVER='${base(withDist)}'`);
    expect(script).toContain("FP_VERSION='0.9.0'");
    expect(script).toContain(`FP_PACKAGES='fleetpatch-agent_0.9.0_amd64.deb deb amd64 ${sha256(files['fleetpatch-agent_0.9.0_amd64.deb']!)}\nfleetpatch-agent-0.9.0-1.aarch64.rpm rpm aarch64 ${sha256(files['fleetpatch-agent-0.9.0-1.aarch64.rpm']!)}'`);
    expect(script).toContain("FP_PROBLEM=''");
    // Its last line runs it: a download cut short runs nothing.
    expect(script.trimEnd().split('\n').at(-1)).toBe('main "$@"');
    const file = path.join(work, 'install.sh');
    fs.writeFileSync(file, script);
    await run('sh', ['-n', file]);
    await run('dash', ['-n', file]);
  });

  it('serves install.ps1 with the Windows zip and its sum', async () => {
    const script = await (await fetch(`${base(withDist)}/agent/install.ps1`)).text();
    expect(script).toContain(`$FpZip = 'fleetpatch-agent-0.9.0-x64.zip'`);
    expect(script).toContain(`$FpZipSha256 = '${sha256(files['fleetpatch-agent-0.9.0-x64.zip']!)}'`);
    expect(script).toContain(`$FpDefaultServer = '${base(withDist)}'`);
  });

  it('serves the files its manifests name, with their size and sum, and a listing; nothing else under dist', async () => {
    const deb = await fetch(`${base(withDist)}/agent/download/fleetpatch-agent_0.9.0_amd64.deb`);
    expect(deb.status).toBe(200);
    expect(deb.headers.get('content-length')).toBe(String(files['fleetpatch-agent_0.9.0_amd64.deb']!.length));
    expect(deb.headers.get('x-checksum-sha256')).toBe(sha256(files['fleetpatch-agent_0.9.0_amd64.deb']!));
    expect(Buffer.from(await deb.arrayBuffer())).toEqual(files['fleetpatch-agent_0.9.0_amd64.deb']);
    const head = await fetch(`${base(withDist)}/agent/download/fleetpatch-agent-linux-x64`, { method: 'HEAD' });
    expect({ status: head.status, length: head.headers.get('content-length') }).toEqual({ status: 200, length: String(files['fleetpatch-agent-linux-x64']!.length) });

    const sums = await (await fetch(`${base(withDist)}/agent/download/SHA256SUMS`)).text();
    expect(sums.trim().split('\n')).toHaveLength(5);
    expect(sums).toContain(`${sha256(files['fleetpatch-agent-linux-arm64']!)}  fleetpatch-agent-linux-arm64\n`);

    const index = (await (await fetch(`${base(withDist)}/agent/download/`)).json()) as { version: string; executables: Array<{ name: string; path: string }>; packages: Array<{ name: string }> };
    expect(index.version).toBe('0.9.0');
    expect(index.executables.map((e) => e.path)).toEqual(['/agent/download/fleetpatch-agent-linux-x64', '/agent/download/fleetpatch-agent-linux-arm64']);
    // The manifest's fourth package is not on disk: not offered.
    expect(index.packages.map((p) => p.name)).toEqual(['fleetpatch-agent_0.9.0_amd64.deb', 'fleetpatch-agent-0.9.0-1.aarch64.rpm', 'fleetpatch-agent-0.9.0-x64.zip']);

    for (const name of ['manifest.json', '..%2F..%2Fpackage.json', 'fleetpatch-agent_0.9.0_arm64.deb.partial']) {
      const refused = await fetch(`${base(withDist)}/agent/download/${name}`);
      expect(refused.status, name).toBe(404);
      expect(((await refused.json()) as { error: { code: string; message: string } }).error.message).toMatch(/^No such agent file: .*\. This server offers: fleetpatch-agent-linux-x64, /);
    }
    const post = await fetch(`${base(withDist)}/agent/download/fleetpatch-agent-linux-x64`, { method: 'POST' });
    expect(post.status).toBe(405);
  });

  it('says what it lacks when it was built without the packages: 503 for the files, an install script that fails in one line', async () => {
    const missing = await fetch(`${base(withoutDist)}/agent/download/fleetpatch-agent_0.9.0_amd64.deb`);
    expect(missing.status).toBe(503);
    expect(await missing.json()).toEqual({
      error: { code: 'UNAVAILABLE', message: `This server was built without the agent packages (${path.join(work, 'no-dist', 'packages')} is missing): run \`npm run package\` where it is built, then restart it.` },
    });
    expect((await fetch(`${base(withoutDist)}/agent/download/fleetpatch-agent-linux-x64`)).status).toBe(503);

    const script = await (await fetch(`${base(withoutDist)}/agent/install.sh`)).text();
    // FLEETPATCH_PUBLIC_URL, not the address the request came to.
    expect(script).toContain("FP_DEFAULT_SERVER='https://fleetpatch.example.com'");
    const file = path.join(work, 'install-nothing.sh');
    fs.writeFileSync(file, script);
    const ran = await run('sh', [file]).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    expect(ran).toEqual({
      code: 1,
      stderr: `fleetpatch install: the server at https://fleetpatch.example.com has no agent packages to install: This server was built without the agent packages (${path.join(work, 'no-dist', 'packages')} is missing): run "npm run package" where it is built, then restart it.\n`,
    });
  });

  it('answers whether an enrollment key would enroll a machine, without using it', async () => {
    const check = (key: string) => fetch(`${base(withDist)}/agent/v1/enroll/check`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enrollmentKey: key }) });
    const { key, secret } = await createEnrollmentKey(database.db, { description: 'check', expiresAt: null, maxUses: 1, defaultTags: [] });
    const ok = await check(secret);
    expect({ status: ok.status, body: await ok.json() }).toEqual({ status: 200, body: { usable: true } });
    expect((await check(secret)).status).toBe(200); // still unused
    const unknown = await check('fpe_unknown');
    expect({ status: unknown.status, body: await unknown.json() }).toEqual({ status: 403, body: { error: { code: 'FORBIDDEN', message: 'This enrollment key is not known to the server. Ask an admin for a valid key.' } } });
    await revokeEnrollmentKey(database.db, key.id);
    expect(((await (await check(secret)).json()) as { error: { message: string } }).error.message).toMatch(/^This enrollment key was revoked on /);
    expect((await check('')).status).toBe(400);
  });

  it('gives an admin the install command of a new key for Linux and Windows, with the address the server is reached at', async () => {
    const created = await graphql<{ createEnrollmentKey: { secret: string; installCommands: { serverUrl: string; linux: string; windows: string } } }>(
      withDist.url,
      'mutation { createEnrollmentKey(input: {description: "one line"}) { secret installCommands { serverUrl linux windows } } }',
      { token: admin },
    );
    const { secret, installCommands } = created.data!.createEnrollmentKey;
    expect(installCommands).toEqual({
      serverUrl: base(withDist),
      linux: `curl -fsSL ${base(withDist)}/agent/install.sh | sudo FLEETPATCH_ENROLL_KEY=${secret} sh`,
      windows: `$env:FLEETPATCH_ENROLL_KEY='${secret}'; irm ${base(withDist)}/agent/install.ps1 | iex`,
    });
    const elsewhere = await graphql<{ createEnrollmentKey: { installCommands: { serverUrl: string } } }>(withoutDist.url, 'mutation { createEnrollmentKey(input: {description: "public"}) { installCommands { serverUrl } } }', { token: admin });
    expect(elsewhere.data!.createEnrollmentKey.installCommands.serverUrl).toBe('https://fleetpatch.example.com');
  });

  it('hands its release key to agents at enrollment and check-in, and tells viewers what it ships', async () => {
    const { secret } = await createEnrollmentKey(database.db, { description: 'pin', expiresAt: null, maxUses: 1, defaultTags: [] });
    const enrolled = (await (
      await fetch(`${base(withDist)}/agent/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enrollmentKey: secret, facts: machineFacts({ hostname: 'pinning-01' }) }) })
    ).json()) as { credential: string; releaseKey: { publicKey: string; fingerprint: string; endorsements: unknown[] } };
    const { releaseKey } = await graphql<{ agentRelease: { releaseKeyFingerprint: string } }>(withDist.url, '{ agentRelease { releaseKeyFingerprint } }', { token: admin }).then((r) => ({ releaseKey: r.data!.agentRelease.releaseKeyFingerprint }));
    expect(enrolled.releaseKey).toMatchObject({ fingerprint: releaseKey, endorsements: [] });
    const checkIn = (await (
      await fetch(`${base(withDist)}/agent/v1/checkin`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${enrolled.credential}` }, body: JSON.stringify({ facts: machineFacts({ hostname: 'pinning-01' }) }) })
    ).json()) as { releaseKey: { fingerprint: string } };
    expect(checkIn.releaseKey.fingerprint).toBe(releaseKey);

    const release = await graphql<{ agentRelease: { version: string; executables: Array<{ platform: string }>; problems: string[] }; agentVersions: { shippedVersion: string; versions: Array<{ version: string; machines: number; outdated: boolean }> } }>(
      withDist.url,
      '{ agentRelease { version executables { platform } problems } agentVersions { shippedVersion versions { version machines outdated } } }',
      { token: admin },
    );
    expect(release.data!.agentRelease).toEqual({ version: '0.9.0', executables: [{ platform: 'linux-x64' }, { platform: 'linux-arm64' }], problems: [] });
    expect(release.data!.agentVersions.shippedVersion).toBe('0.9.0');
    expect(release.data!.agentVersions.versions).toContainEqual({ version: '0.1.0', machines: 1, outdated: true });
    const none = await graphql<{ agentRelease: { version: string | null; problems: string[] } }>(withoutDist.url, '{ agentRelease { version problems } }', { token: admin });
    expect(none.data!.agentRelease.version).toBeNull();
    expect(none.data!.agentRelease.problems).toContain('This server has no release signing key (FLEETPATCH_RELEASE_KEY_FILE): agents pin none at enrollment and cannot be upgraded.');
  });
});
