import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/net.js';
import { graphql } from '../support/env.js';
import { spawnFleetpatch, stop } from '../support/processes.js';

/** Every process below `pid`, so the test can check none is left behind. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // The process ended while we looked.
    }
  }
  const below = (parent: number): number[] =>
    [...parents].filter(([, ppid]) => ppid === parent).flatMap(([child]) => [child, ...below(child)]);
  return below(pid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('fleetpatch dev (what npm start runs)', () => {
  // Not under /root: the embedded PostgreSQL runs as the postgres user.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-dev-'));
  fs.chmodSync(dataDir, 0o755);

  afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

  async function devEnv() {
    const temporalPort = await freePort();
    return {
      DATABASE_URL: '',
      TEMPORAL_ADDRESS: '',
      FLEETPATCH_DATA_DIR: dataDir,
      PORT: String(await freePort()),
      FLEETPATCH_POSTGRES_PORT: String(await freePort()),
      FLEETPATCH_TEMPORAL_PORT: String(temporalPort),
      FLEETPATCH_TEMPORAL_UI_PORT: String(await freePort()),
    };
  }

  it('starts every part, answers GraphQL, prints and writes an admin token, and stops them all on SIGINT', async () => {
    const env = await devEnv();
    const dev = spawnFleetpatch(['dev'], env);
    await dev.waitFor(/Press Ctrl-C to stop/, 120_000);
    const url = `http://127.0.0.1:${env.PORT}/graphql`;
    expect(dev.output()).toContain(`GraphQL:      ${url}`);
    // The web console, at the URL the banner gives.
    const consoleUrl = `http://127.0.0.1:${env.PORT}/`;
    expect(dev.output()).toContain(`Console:      ${consoleUrl}`);
    expect(await (await fetch(consoleUrl)).text()).toContain('<div id="root">');
    expect(dev.output()).toContain(`Temporal UI:  http://127.0.0.1:${env.FLEETPATCH_TEMPORAL_UI_PORT}`);
    const printed = dev.output().match(/Admin token:\s+(fp_\S+)/)?.[1];
    const written = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
    expect(printed).toBe(written);
    expect(fs.statSync(path.join(dataDir, 'admin-token')).mode & 0o777).toBe(0o600);

    expect(await graphql(url, '{ __typename }')).toMatchObject({ data: { __typename: 'Query' } });
    // The worker runs: a self-check started through the API completes.
    const started = await graphql<{ runSelfCheck: { id: string } }>(url, 'mutation { runSelfCheck { id } }', { token: written });
    const id = started.data!.runSelfCheck.id;
    await expect.poll(async () => (await graphql<{ systemStatus: { lastSelfCheck: { id: string } | null } }>(url, '{ systemStatus { lastSelfCheck { id } } }', { token: written })).data?.systemStatus.lastSelfCheck?.id, { timeout: 30_000 }).toBe(id);

    // This machine is enrolled by its own assess-only agent and reports (an assessment or its error).
    type Local = { machines: { totalCount: number; edges: Array<{ node: { id: string; packageManager: string; agentReadiness: string; lastAssessedAt: string | null; lastAssessmentError: { code: string } | null } }> } };
    const local = async () => (await graphql<Local>(url, '{ machines { totalCount edges { node { id packageManager agentReadiness lastAssessedAt lastAssessmentError { code } } } } }', { token: written })).data!.machines;
    await expect.poll(async () => {
      const node = (await local()).edges[0]?.node;
      return Boolean(node && (node.lastAssessedAt || node.lastAssessmentError));
    }, { timeout: 90_000, interval: 500 }).toBe(true);
    const thisMachine = (await local()).edges[0]!.node;
    expect(thisMachine).toMatchObject({ packageManager: 'apt', agentReadiness: 'READY' });

    const children = descendants(dev.child.pid!);
    expect(children.length).toBeGreaterThanOrEqual(2); // PostgreSQL and Temporal at least
    expect(await stop(dev, 'SIGINT')).toEqual({ code: 0, signal: null });
    await expect.poll(() => children.filter(alive), { timeout: 15_000 }).toEqual([]);

    // A second start reuses the data folder: same database, same admin token.
    const again = spawnFleetpatch(['dev'], await devEnv());
    await again.waitFor(/Press Ctrl-C to stop/, 120_000);
    expect(again.output().match(/Admin token:\s+(fp_\S+)/)?.[1]).toBe(written);
    // The local agent kept its identity: still one machine, the same one.
    const second = `http://127.0.0.1:${again.output().match(/GraphQL:\s+http:\/\/127\.0\.0\.1:(\d+)/)![1]}/graphql`;
    const machines = (await graphql<Local>(second, '{ machines { totalCount edges { node { id packageManager agentReadiness lastAssessedAt lastAssessmentError { code } } } } }', { token: written })).data!.machines;
    expect(machines.totalCount).toBe(1);
    expect(machines.edges[0]!.node.id).toBe(thisMachine.id);
    expect(await stop(again, 'SIGINT')).toEqual({ code: 0, signal: null });
    // Two full starts and a host assessment: 81 s measured on 2 busy cores, past the 60 s default.
  }, 240_000);

  it('names the port when it is already taken', async () => {
    const env = await devEnv();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(Number(env.PORT), '127.0.0.1', resolve));
    try {
      const dev = spawnFleetpatch(['dev'], env);
      expect((await dev.exited).code).toBe(1);
      expect(dev.output()).toContain(`Port ${env.PORT} (GraphQL API) is already in use. Stop what is listening there, or choose another port with PORT=<port>.`);
    } finally {
      blocker.close();
    }
  });
});
