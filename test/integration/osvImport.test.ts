import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import { importCveFeed } from '../../src/cves/trackerImport.js';
import type { Database } from '../../src/db/client.js';
import { pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';
import { enrollMachine, enrollmentKey } from '../support/machines.js';

// CVE exposure of Ubuntu (and Debian) machines from OSV records, over GraphQL: machines enrolled
// and reporting their pending updates through the real agent endpoint, as Ubuntu 22.04 and 24.04
// agents and a Debian 12 one report them (binaries with their source packages), and the
// hand-written records of test/fixtures/cve/osv/ imported from that folder (as the CLI does), and
// over GraphQL as a JSON list, a zip and a single record served over http.

const FOLDER = new URL('../fixtures/cve/osv/', import.meta.url).pathname;
const ZIP = new URL('../fixtures/cve/osv.zip', import.meta.url).pathname;

interface Exposure {
  machine: { name: string };
  update: { name: string; installedVersion: string; availableVersion: string };
  source: string;
  severity: string | null;
}

describe('CVE exposure of Ubuntu and Debian machines from OSV records', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let admin: string;
  let viewer: string;
  let server: http.Server;
  let served: string;

  beforeAll(async () => {
    ({ api, database, close } = await startApiOnFreshDatabase());
    admin = await tokenFor(database, 'ADMIN');
    viewer = await tokenFor(database, 'VIEWER');
    const key = await enrollmentKey(database);
    const ubuntu = (hostname: string, version: string) => ({ hostname, osName: `Ubuntu ${version}.1 LTS`, osVersion: version, kernel: '6.8.0-51-generic' });
    const security = { classification: 'SECURITY' as const, arch: 'amd64' };
    await enrollMachine(api.url, key, {
      facts: ubuntu('ubuntu-2204', '22.04'),
      updates: [
        pendingUpdate({ name: 'libssl3', sourcePackage: 'openssl', installedVersion: '3.0.2-0ubuntu1.15', availableVersion: '3.0.2-0ubuntu1.18', repository: 'Ubuntu:22.04/jammy-security', ...security }),
        pendingUpdate({ name: 'curl', installedVersion: '7.81.0-1ubuntu1.16', availableVersion: '7.81.0-1ubuntu1.20', repository: 'Ubuntu:22.04/jammy-security', ...security }),
      ],
    });
    await enrollMachine(api.url, key, {
      facts: ubuntu('ubuntu-2204-patched', '22.04'),
      updates: [pendingUpdate({ name: 'libssl3', sourcePackage: 'openssl', installedVersion: '3.0.2-0ubuntu1.18', availableVersion: '3.0.2-0ubuntu1.19', repository: 'Ubuntu:22.04/jammy-updates', ...security })],
    });
    await enrollMachine(api.url, key, {
      facts: ubuntu('ubuntu-2404', '24.04'),
      updates: [
        pendingUpdate({ name: 'curl', installedVersion: '8.5.0-2ubuntu10.4', availableVersion: '8.5.0-2ubuntu10.6', repository: 'Ubuntu:24.04/noble-security', ...security }),
        pendingUpdate({ name: 'libssl3t64', sourcePackage: 'openssl', installedVersion: '3.0.13-0ubuntu3.4', availableVersion: '3.0.13-0ubuntu3.5', repository: 'Ubuntu:24.04/noble-updates', ...security }),
      ],
    });
    // A Debian 12 machine (the default facts): Debian's record reaches it, Ubuntu's openssl fixes do not.
    await enrollMachine(api.url, key, {
      facts: { hostname: 'debian-01' },
      updates: [
        pendingUpdate({ name: 'demo-tool', installedVersion: '1.0-1', availableVersion: '1.1-1', ...security }),
        pendingUpdate({ name: 'libssl3', sourcePackage: 'openssl', installedVersion: '3.0.15-1~deb12u1', availableVersion: '3.0.16-1~deb12u1', ...security }),
      ],
    });

    const files = fs.readdirSync(FOLDER).sort();
    const list = JSON.stringify(files.map((f) => JSON.parse(fs.readFileSync(path.join(FOLDER, f), 'utf8')) as unknown));
    const bodies: Record<string, Buffer> = {
      '/all.json': Buffer.from(list),
      '/all.zip': fs.readFileSync(ZIP),
      '/UBUNTU-CVE-2025-0102.json': fs.readFileSync(path.join(FOLDER, 'UBUNTU-CVE-2025-0102.json')),
      '/pypi.json': Buffer.from(JSON.stringify([{ id: 'PYSEC-2025-1', aliases: ['CVE-2025-0101'], affected: [{ package: { ecosystem: 'PyPI', name: 'demo' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.0' }] }] }] }])),
    };
    server = http.createServer((request, response) => {
      const body = bodies[request.url ?? ''];
      if (body) response.writeHead(200).end(body);
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    served = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  }, 120_000);

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await close?.();
  });

  const cve = async (id: string) => {
    const answer = await graphql<{ cve: { id: string; severity: string | null; machineCount: number; sources: string[]; description: string | null; exposures: { edges: Array<{ node: Exposure }> } } }>(
      api.url,
      `query($id: String!) { cve(id: $id) { id severity machineCount sources description exposures { edges { node {
         machine { name } update { name installedVersion availableVersion } source severity } } } } }`,
      { token: viewer, variables: { id } },
    );
    expect(answer.errors).toBeUndefined();
    return answer.data!.cve;
  };
  const exposed = async (id: string) => (await cve(id)).exposures.edges.map((e) => [e.node.machine.name, e.node.update.name, e.node.update.installedVersion, e.node.update.availableVersion, e.node.source, e.node.severity]);
  const importing = (url: string, format?: string) =>
    graphql<{ importCveTracker: { source: string; fixes: number; cves: number; location: string } }>(
      api.url,
      'mutation($url: String!, $format: CveFeedFormat) { importCveTracker(url: $url, format: $format) { source fixes cves location } }',
      { token: admin, variables: { url, format } },
    );
  const imports = async () =>
    (await graphql<{ cveImports: Array<{ source: string; fixes: number; cves: number }> }>(api.url, '{ cveImports { source fixes cves } }', { token: viewer })).data!.cveImports;

  it('shows no CVE on an Ubuntu machine before anything is imported', async () => {
    expect((await cve('CVE-2025-0101')).machineCount).toBe(0);
    expect(await imports()).toEqual([]);
  });

  it("finds the Ubuntu machines whose pending update reaches the record's fixed version for their release, once the folder of records is imported", async () => {
    const answer = await importCveFeed(database.db, FOLDER, { allowPath: true });
    expect(answer).toMatchObject({ source: 'OSV', location: FOLDER, fixes: 8, cves: 4 });
    expect(await imports()).toEqual([
      { source: 'OSV:DEBIAN', fixes: 2, cves: 1 },
      { source: 'OSV:UBUNTU', fixes: 6, cves: 3 },
    ]);

    // libssl3 is built from openssl: jammy's 1.15 -> 1.18 reaches the fix; the patched machine has it already.
    const openssl = await cve('CVE-2025-0101');
    expect(openssl).toMatchObject({ severity: 'IMPORTANT', machineCount: 1, sources: ['OSV'], description: expect.stringMatching(/^A hand-written fixture in the shape of Ubuntu's CVE records: an out-of-bounds read/) });
    expect(await exposed('CVE-2025-0101')).toEqual([['ubuntu-2204', 'libssl3', '3.0.2-0ubuntu1.15', '3.0.2-0ubuntu1.18', 'OSV', 'IMPORTANT']]);
    // Fixed only by the notice, which carries no severity; noble's curl is fixed, jammy's is still vulnerable (no update fixes it).
    expect(await exposed('CVE-2025-0104')).toEqual([['ubuntu-2204', 'libssl3', '3.0.2-0ubuntu1.15', '3.0.2-0ubuntu1.18', 'OSV', null]]);
    expect(await exposed('CVE-2025-0102')).toEqual([['ubuntu-2404', 'curl', '8.5.0-2ubuntu10.4', '8.5.0-2ubuntu10.6', 'OSV', 'MODERATE']]);
    // Debian's record reaches the Debian machine; a withdrawn record reaches nobody.
    expect(await exposed('CVE-2025-0105')).toEqual([['debian-01', 'demo-tool', '1.0-1', '1.1-1', 'OSV', 'MODERATE']]);
    expect((await cve('CVE-2025-0103')).machineCount).toBe(0);

    const list = await graphql<{ cves: { edges: Array<{ node: { id: string; severity: string | null; machineCount: number; sources: string[] } }> } }>(
      api.url,
      '{ cves(first: 50) { edges { node { id severity machineCount sources } } } }',
      { token: viewer },
    );
    expect(list.errors).toBeUndefined();
    expect(list.data!.cves.edges.map((e) => e.node)).toEqual([
      { id: 'CVE-2025-0101', severity: 'IMPORTANT', machineCount: 1, sources: ['OSV'] },
      { id: 'CVE-2025-0102', severity: 'MODERATE', machineCount: 1, sources: ['OSV'] },
      { id: 'CVE-2025-0105', severity: 'MODERATE', machineCount: 1, sources: ['OSV'] },
      { id: 'CVE-2025-0104', severity: null, machineCount: 1, sources: ['OSV'] },
    ]);
  });

  it('imports the same records over GraphQL as a JSON list and as a zip; a single record replaces its distribution only', async () => {
    expect((await importing(`${served}/all.json`)).data!.importCveTracker).toEqual({ source: 'OSV', fixes: 8, cves: 4, location: `${served}/all.json` });
    expect((await importing(`${served}/all.zip`, 'OSV')).data!.importCveTracker).toEqual({ source: 'OSV', fixes: 8, cves: 4, location: `${served}/all.zip` });
    expect((await cve('CVE-2025-0101')).machineCount).toBe(1);

    // An import is the whole of each distribution it holds records of: Ubuntu's fixes are now this
    // record's alone, Debian's stay as they were.
    expect((await importing(`${served}/UBUNTU-CVE-2025-0102.json`)).data!.importCveTracker).toMatchObject({ source: 'OSV', fixes: 1, cves: 1 });
    expect(await imports()).toEqual([
      { source: 'OSV:DEBIAN', fixes: 2, cves: 1 },
      { source: 'OSV:UBUNTU', fixes: 1, cves: 1 },
    ]);
    expect((await cve('CVE-2025-0101')).machineCount).toBe(0);
    expect((await cve('CVE-2025-0102')).machineCount).toBe(1);
    expect((await cve('CVE-2025-0105')).machineCount).toBe(1);
  });

  it('refuses records of no Debian or Ubuntu release, and an OSV document given as the tracker, replacing nothing', async () => {
    const pypi = await importing(`${served}/pypi.json`);
    expect(pypi.errors![0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'url', reason: 'BAD_FORMAT' } });
    expect(pypi.errors![0]!.message).toMatch(/names an affected package of a release fleetpatch matches/);
    const asTracker = await importing(`${served}/all.json`, 'DEBIAN_TRACKER');
    expect(asTracker.errors![0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', reason: 'BAD_FORMAT' } });
    expect(await imports()).toEqual([
      { source: 'OSV:DEBIAN', fixes: 2, cves: 1 },
      { source: 'OSV:UBUNTU', fixes: 1, cves: 1 },
    ]);
    expect((await cve('CVE-2025-0102')).machineCount).toBe(1);
  });
});
