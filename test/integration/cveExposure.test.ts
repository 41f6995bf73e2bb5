import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAssessment } from '../../src/agent/assess.js';
import { detectBackend } from '../../src/agent/backends/index.js';
import { AgentClient } from '../../src/agent/client.js';
import { gatherFacts } from '../../src/agent/facts.js';
import type { ApiServer } from '../../src/api/server.js';
import { importDebianTracker, type TrackerImportError } from '../../src/cves/trackerImport.js';
import type { Database } from '../../src/db/client.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';
import { buildFleet, type Backend } from '../support/fleet.js';
import { enrollmentKey } from '../support/machines.js';

// CVE exposure over GraphQL on the three real fixture machines: dnf's updateinfo and zypper's
// patches name CVEs themselves (as the real package managers read them); the apt machine's come
// from the Debian security tracker file the tests ship (test/fixtures/cve/debian-tracker.json).

const TRACKER = new URL('../fixtures/cve/debian-tracker.json', import.meta.url).pathname;

interface Exposure {
  machine: { name: string };
  update: { name: string; installedVersion: string; availableVersion: string };
  source: string;
  severity: string | null;
  exposedSince: string;
  scheduledFix: { deploymentName: string; nextRunAt: string } | null;
}

describe('CVE exposure on the fixture machines', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let admin: string;
  let viewer: string;
  let work: string;
  const ids: Partial<Record<Backend, string>> = {};

  beforeAll(async () => {
    ({ api, database, close } = await startApiOnFreshDatabase());
    admin = await tokenFor(database, 'ADMIN');
    viewer = await tokenFor(database, 'VIEWER');
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'fp-cve-'));
    const fleet = await buildFleet(work);
    const key = await enrollmentKey(database);
    const base = api.url.replace('/graphql', '');
    for (const machine of Object.values(fleet)) {
      const backend = detectBackend(machine.root, machine.env)!;
      const agent = new AgentClient(base);
      const enrolled = await agent.enroll(key, gatherFacts({ root: machine.root, agentVersion: 'test', packageManager: backend.name, bootIdFile: machine.bootIdFile }));
      agent.setCredential(enrolled.credential);
      const workDir = path.join(work, `${machine.backend}-work`);
      fs.mkdirSync(workDir, { recursive: true });
      const report = await runAssessment(backend, { root: machine.root, env: machine.env, workDir }, 'STARTUP');
      expect(report.error).toBeNull();
      expect(await agent.sendReport(report)).toEqual({ stored: true });
      ids[machine.backend] = enrolled.machineId;
    }
  }, 180_000);

  afterAll(async () => {
    await close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const cve = (id: string, token = viewer) =>
    graphql<{ cve: { id: string; severity: string | null; machineCount: number; sources: string[]; description: string | null; exposures: { totalCount: number; edges: Array<{ node: Exposure }> } } }>(
      api.url,
      `query($id: String!) { cve(id: $id) { id severity machineCount sources description exposures { totalCount edges { node {
         machine { name } update { name installedVersion availableVersion } source severity exposedSince scheduledFix { deploymentName nextRunAt } } } } } }`,
      { token, variables: { id } },
    );

  it("finds the machines whose dnf and zypper advisories name the CVE, with the advisory's severity, before any tracker is imported", async () => {
    const answer = await cve('cve-2025-0001');
    expect(answer.errors).toBeUndefined();
    const found = answer.data!.cve;
    expect(found).toMatchObject({ id: 'CVE-2025-0001', severity: 'CRITICAL', machineCount: 2, sources: ['ADVISORY'], description: null });
    expect(found.exposures.edges.map((e) => [e.node.machine.name, e.node.update.name, e.node.update.availableVersion, e.node.source, e.node.severity, e.node.scheduledFix])).toEqual([
      ['rocky-01', 'demo-libssl', '1.1-1', 'ADVISORY', 'CRITICAL', null],
      ['sles-01', 'demo-libssl', '1.1-1', 'ADVISORY', 'CRITICAL', null],
    ]);
    for (const e of found.exposures.edges) expect(Date.parse(e.node.exposedSince)).toBeLessThanOrEqual(Date.now());
    const none = await cve('CVE-1999-0001');
    expect(none.data!.cve).toMatchObject({ machineCount: 0, exposures: { totalCount: 0, edges: [] } });
  });

  it('adds the apt machine once the tracker file is imported, by version, and lists the fleet CVEs most severe first', async () => {
    const imported = await importDebianTracker(database.db, TRACKER, { allowPath: true });
    expect(imported).toMatchObject({ source: 'DEBIAN', location: TRACKER, fixes: 7, cves: 6 });
    const status = await graphql<{ cveTrackerImport: { fixes: number; cves: number; location: string } }>(api.url, '{ cveTrackerImport { fixes cves location } }', { token: viewer });
    expect(status.data!.cveTrackerImport).toEqual({ fixes: 7, cves: 6, location: TRACKER });

    const found = (await cve('CVE-2025-0001')).data!.cve;
    expect(found).toMatchObject({ machineCount: 3, sources: ['ADVISORY', 'DEBIAN_TRACKER'], description: "demo-libssl: a buffer overflow in the fixture's TLS record parser" });
    expect(found.exposures.edges.map((e) => [e.node.machine.name, e.node.update.installedVersion, e.node.source, e.node.severity])).toEqual([
      ['debian-01', '1.0-1', 'DEBIAN_TRACKER', 'IMPORTANT'],
      ['rocky-01', '1.0-1', 'ADVISORY', 'CRITICAL'],
      ['sles-01', '1.0-1', 'ADVISORY', 'CRITICAL'],
    ]);
    // Fixed below the installed version, or only in a version no repository offers yet: nobody is exposed through an update.
    expect((await cve('CVE-2024-9999')).data!.cve.machineCount).toBe(0);
    expect((await cve('CVE-2025-0200')).data!.cve.machineCount).toBe(0);

    const list = await graphql<{ cves: { totalCount: number; edges: Array<{ node: { id: string; severity: string | null; machineCount: number; sources: string[] } }> } }>(
      api.url,
      '{ cves(first: 50) { totalCount edges { node { id severity machineCount sources } } } }',
      { token: viewer },
    );
    expect(list.errors).toBeUndefined();
    expect(list.data!.cves.edges.map((e) => e.node)).toEqual([
      { id: 'CVE-2025-0001', severity: 'CRITICAL', machineCount: 3, sources: ['ADVISORY', 'DEBIAN_TRACKER'] },
      { id: 'CVE-2025-0011', severity: 'CRITICAL', machineCount: 3, sources: ['ADVISORY', 'DEBIAN_TRACKER'] },
      { id: 'CVE-2025-0002', severity: 'IMPORTANT', machineCount: 3, sources: ['ADVISORY', 'DEBIAN_TRACKER'] },
      // The kernel: the advisories name it on dnf and zypper; on the apt machine the tracker names its
      // source package "linux", which the agent reports for the binary linux-image-demo.
      { id: 'CVE-2025-0004', severity: 'MODERATE', machineCount: 3, sources: ['ADVISORY', 'DEBIAN_TRACKER'] },
      { id: 'CVE-2025-0005', severity: 'LOW', machineCount: 2, sources: ['ADVISORY'] },
    ]);
    const kernel = (await cve('CVE-2025-0004')).data!.cve;
    expect(kernel.exposures.edges.filter((e) => e.node.source === 'DEBIAN_TRACKER').map((e) => [e.node.machine.name, e.node.update.name, e.node.update.installedVersion, e.node.update.availableVersion, e.node.severity])).toEqual([
      ['debian-01', 'linux-image-demo', '5.0-1', '5.1-1', 'MODERATE'],
    ]);
    const important = await graphql<{ cves: { edges: Array<{ node: { id: string } }> } }>(api.url, '{ cves(filter: { severities: [IMPORTANT], idContains: "0002" }) { edges { node { id } } } }', { token: viewer });
    expect(important.data!.cves.edges.map((e) => e.node.id)).toEqual(['CVE-2025-0002']);
  });

  it('says which exposed machine a scheduled deployment would fix, and when', async () => {
    const startAt = new Date(Date.now() + 3 * 86_400_000);
    startAt.setUTCSeconds(0, 0);
    const created = await graphql<{ createDeployment: { id: string } }>(
      api.url,
      'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }',
      { token: admin, variables: { input: { name: 'rocky security', osType: 'LINUX', machineIds: [ids.dnf], classifications: ['CRITICAL', 'SECURITY'], windowMinutes: 60, schedule: { startAt: startAt.toISOString(), timeZone: 'UTC' } } } },
    );
    expect(created.errors).toBeUndefined();
    // Targets the Debian machine too, but keeps demo-libssl out: it would not fix the CVE there.
    const excluding = await graphql<{ createDeployment: { id: string } }>(
      api.url,
      'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }',
      { token: admin, variables: { input: { name: 'debian without libssl', osType: 'LINUX', machineIds: [ids.apt], classifications: ['SECURITY'], excludePatterns: ['demo-libssl'], windowMinutes: 60, schedule: { startAt: startAt.toISOString(), timeZone: 'UTC' } } } },
    );
    expect(excluding.errors).toBeUndefined();
    const found = (await cve('CVE-2025-0001')).data!.cve;
    expect(found.exposures.edges.map((e) => [e.node.machine.name, e.node.scheduledFix])).toEqual([
      ['debian-01', null],
      ['rocky-01', { deploymentName: 'rocky security', nextRunAt: startAt.toISOString() }],
      ['sles-01', null],
    ]);
  });

  it('imports the tracker over GraphQL from an http URL (ADMIN only) and refuses what is no tracker, with a code', async () => {
    const served = fs.readFileSync(TRACKER);
    const server = http.createServer((request, response) => {
      if (request.url === '/json') response.writeHead(200, { 'content-type': 'application/json' }).end(served);
      else if (request.url === '/html') response.writeHead(200, { 'content-type': 'text/html' }).end('<html>root:x:0:0</html>');
      else if (request.url === '/array') response.writeHead(200).end('[]');
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const importing = (u: string, token = admin) =>
        graphql<{ importCveTracker: { fixes: number; location: string } }>(api.url, 'mutation($url: String!) { importCveTracker(url: $url) { fixes location } }', { token, variables: { url: u } });
      expect((await importing(`${url}/json`)).data!.importCveTracker).toEqual({ fixes: 7, location: `${url}/json` });
      expect((await importing(`${url}/json`, viewer)).errors![0]!.extensions!.code).toBe('FORBIDDEN');
      const reasons = await Promise.all([`${url}/html`, `${url}/array`, `${url}/missing`, TRACKER, 'file:///etc/passwd'].map(async (u) => {
        const error = (await importing(u)).errors![0]!;
        return [error.extensions!.code, (error.extensions as { reason?: string }).reason, error.message.includes('root:x')];
      }));
      expect(reasons).toEqual([
        ['BAD_USER_INPUT', 'NOT_JSON', false],
        ['BAD_USER_INPUT', 'BAD_FORMAT', false],
        ['BAD_USER_INPUT', 'UNREADABLE', false],
        // A path on the server is the CLI's (fleetpatch cve-import), never the API's.
        ['BAD_USER_INPUT', 'BAD_LOCATION', false],
        ['BAD_USER_INPUT', 'BAD_LOCATION', false],
      ]);
      // A failed import left the previous one in place.
      expect((await cve('CVE-2025-0001')).data!.cve.machineCount).toBe(3);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    await expect(importDebianTracker(database.db, path.join(work, 'missing.json'), { allowPath: true })).rejects.toMatchObject({ code: 'UNREADABLE' } satisfies Partial<TrackerImportError>);
  });

  it('refuses a malformed CVE id with BAD_USER_INPUT on the id', async () => {
    const answer = await cve("CVE-2025-0001' or 1=1");
    expect(answer.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'id' });
  });
});
