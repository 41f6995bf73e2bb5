import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { findTemporalCli } from '../../src/devstack/temporalCli.js';
import { assertPortFree, freePort } from '../../src/net.js';
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

/** The dev stack's direct child that runs `program` (PostgreSQL's postmaster, the Temporal CLI). */
function childRunning(pid: number, program: string): number {
  const found = descendants(pid).find((child) => {
    try {
      const stat = fs.readFileSync(`/proc/${child}/stat`, 'utf8');
      return stat.includes(`(${program})`) && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
    } catch {
      return false;
    }
  });
  if (!found) throw new Error(`no ${program} below ${pid}`);
  return found;
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
      // As a user runs it: under NODE_ENV=test (what vitest sets) Apollo did not hook signals, and
      // the double signal that left PostgreSQL and Temporal behind did not show.
      NODE_ENV: undefined,
      DATABASE_URL: '',
      TEMPORAL_ADDRESS: '',
      FLEETPATCH_DATA_DIR: dataDir,
      PORT: String(await freePort()),
      FLEETPATCH_POSTGRES_PORT: String(await freePort()),
      FLEETPATCH_TEMPORAL_PORT: String(temporalPort),
      FLEETPATCH_TEMPORAL_UI_PORT: String(await freePort()),
    };
  }

  it('starts every part, answers GraphQL, writes an admin token and shows only its start, and stops them all on one signal to its pid', async () => {
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
    // The banner names the token's file and shows only its start: the banner ends up in logs.
    const written = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
    expect(dev.output()).toContain(`Admin token:  ${written.slice(0, 8)}…  (new; the whole token is in ${path.join(dataDir, 'admin-token')};`);
    expect(dev.output()).not.toContain(written);
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

    // One SIGINT to its pid alone (not to its process group, as a terminal's Ctrl-C does).
    const children = descendants(dev.child.pid!);
    expect(children.length).toBeGreaterThanOrEqual(2); // PostgreSQL and Temporal at least
    expect(await stop(dev, 'SIGINT')).toEqual({ code: 0, signal: null });
    expect(dev.output()).not.toContain('second signal');
    await expect.poll(() => children.filter(alive), { timeout: 15_000 }).toEqual([]);

    // A second start reuses the data folder: same database, same admin token.
    const again = spawnFleetpatch(['dev'], await devEnv());
    await again.waitFor(/Press Ctrl-C to stop/, 120_000);
    expect(again.output()).toContain(`Admin token:  ${written.slice(0, 8)}…  (the whole token is in`);
    // The local agent kept its identity: still one machine, the same one.
    const second = `http://127.0.0.1:${again.output().match(/GraphQL:\s+http:\/\/127\.0\.0\.1:(\d+)/)![1]}/graphql`;
    const machines = (await graphql<Local>(second, '{ machines { totalCount edges { node { id packageManager agentReadiness lastAssessedAt lastAssessmentError { code } } } } }', { token: written })).data!.machines;
    expect(machines.totalCount).toBe(1);
    expect(machines.edges[0]!.node.id).toBe(thisMachine.id);
    // One SIGTERM to its pid alone, as systemd, Docker and supervisors stop a service.
    const againChildren = descendants(again.child.pid!);
    expect(await stop(again, 'SIGTERM')).toEqual({ code: 0, signal: null });
    expect(again.output()).not.toContain('second signal');
    await expect.poll(() => againChildren.filter(alive), { timeout: 15_000 }).toEqual([]);
    // Two full starts and a host assessment: 81 s measured on 2 busy cores, past the 60 s default.
  }, 240_000);

  it('says when its PostgreSQL or Temporal dies and starts it again, stops everything when one cannot come back, and prints the variables that reach them', async () => {
    const own = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-dev-restart-'));
    fs.chmodSync(own, 0o755);
    // A Temporal CLI this test can take away, so that a restart fails.
    const cli = path.join(own, 'temporal');
    fs.symlinkSync(findTemporalCli()!, cli);
    const env = { ...(await devEnv()), FLEETPATCH_DATA_DIR: path.join(own, 'data'), FLEETPATCH_DEV_AGENT: 'false', FLEETPATCH_DEV_WORKER: 'false', TEMPORAL_CLI_PATH: cli };
    const dev = spawnFleetpatch(['dev'], env);
    const others: Array<ReturnType<typeof spawnFleetpatch>> = [];
    try {
      await dev.waitFor(/Press Ctrl-C to stop/, 120_000);
      const url = `http://127.0.0.1:${env.PORT}/graphql`;
      const token = fs.readFileSync(path.join(env.FLEETPATCH_DATA_DIR, 'admin-token'), 'utf8').trim();
      expect(dev.output()).toContain('eval "$(fleetpatch dev --print-env)"');

      // --print-env: the exact variables, which a worker and a server of one's own then use.
      const printEnv = spawnFleetpatch(['dev', '--print-env'], { FLEETPATCH_DATA_DIR: env.FLEETPATCH_DATA_DIR });
      expect((await printEnv.exited).code).toBe(0);
      const vars = Object.fromEntries([...printEnv.output().matchAll(/^export (\w+)='([^']*)'$/gm)].map((m) => [m[1]!, m[2]!]));
      expect(Object.keys(vars)).toEqual(['DATABASE_URL', 'TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'FLEETPATCH_TASK_QUEUE']);
      expect(vars.TEMPORAL_ADDRESS).toBe(`127.0.0.1:${env.FLEETPATCH_TEMPORAL_PORT}`);
      expect(printEnv.output()).toContain('It runs no worker (FLEETPATCH_DEV_WORKER=false)');
      expect(fs.statSync(path.join(env.FLEETPATCH_DATA_DIR, 'dev.env')).mode & 0o777).toBe(0o600);
      const worker = spawnFleetpatch(['worker'], { ...vars, NODE_ENV: undefined });
      others.push(worker);
      await worker.waitFor(/"msg":"worker polling"/);
      const started = await graphql<{ runSelfCheck: { id: string } }>(url, 'mutation { runSelfCheck { id } }', { token });
      type Status = { systemStatus: { database: { state: string }; temporal: { state: string }; lastSelfCheck: { id: string; workerIdentity: string | null } | null } };
      const status = async (at: string) => (await graphql<Status>(at, '{ systemStatus { database { state } temporal { state } lastSelfCheck { id workerIdentity } } }', { token })).data!.systemStatus;
      // Completed by that worker: the dev stack runs none of its own.
      await expect.poll(async () => (await status(url)).lastSelfCheck, { timeout: 30_000 }).toEqual({ id: started.data!.runSelfCheck.id, workerIdentity: expect.stringMatching(new RegExp(`^${worker.child.pid}@`)) });
      const serverPort = await freePort();
      const server = spawnFleetpatch(['server'], { ...vars, PORT: String(serverPort), HOST: '127.0.0.1', NODE_ENV: undefined });
      others.push(server);
      await server.waitFor(/"msg":"API listening"/);
      expect(await status(`http://127.0.0.1:${serverPort}/graphql`)).toMatchObject({ database: { state: 'UP' }, temporal: { state: 'UP' } });
      for (const other of others) expect(await stop(other)).toEqual({ code: 0, signal: null });

      // PostgreSQL's postmaster killed: said, started again, and it answers on the same URL.
      const postmaster = childRunning(dev.child.pid!, 'postgres');
      process.kill(postmaster, 'SIGKILL');
      await dev.waitFor(new RegExp(`PostgreSQL \\(pid ${postmaster}\\) died \\(killed by SIGKILL\\); restarting it`));
      const pgBack = Number((await dev.waitFor(/PostgreSQL is back \(pid (\d+)\)/))[1]);
      expect(pgBack).toBe(childRunning(dev.child.pid!, 'postgres'));
      const sql = postgres(vars.DATABASE_URL!, { max: 1, onnotice: () => undefined });
      expect(await sql`select count(*)::int as n from api_tokens`).toEqual([{ n: expect.any(Number) }]);
      await sql.end();

      // The Temporal dev server killed: the same, and its workflows are kept (SQLite file).
      const temporal = childRunning(dev.child.pid!, 'temporal');
      process.kill(temporal, 'SIGKILL');
      await dev.waitFor(new RegExp(`the Temporal dev server \\(pid ${temporal}\\) died \\(killed by SIGKILL\\); restarting it`));
      await dev.waitFor(/the Temporal dev server is back \(pid \d+\)/);
      const connection = await Connection.connect({ address: vars.TEMPORAL_ADDRESS! });
      await connection.workflowService.describeNamespace({ namespace: 'default' });
      await connection.close();

      // One that cannot be started again (its program is gone) stops the whole stack, children included.
      fs.rmSync(cli);
      const children = descendants(dev.child.pid!);
      process.kill(childRunning(dev.child.pid!, 'temporal'), 'SIGKILL');
      expect(await dev.exited).toEqual({ code: 1, signal: null });
      expect(dev.output()).toMatch(/fleetpatch dev: the Temporal dev server could not be restarted \(4 attempts; the last: .*\): stopping everything\./);
      await expect.poll(() => children.filter(alive), { timeout: 15_000 }).toEqual([]);
      await assertPortFree(Number(env.FLEETPATCH_POSTGRES_PORT), '127.0.0.1', 'embedded PostgreSQL', 'FLEETPATCH_POSTGRES_PORT');
      expect(fs.existsSync(path.join(env.FLEETPATCH_DATA_DIR, 'dev.env'))).toBe(false);
    } finally {
      for (const spawned of [...others, dev]) await stop(spawned);
      fs.rmSync(own, { recursive: true, force: true });
    }
  }, 240_000);

  it('a second signal while stopping exits at once and still leaves no process behind', async () => {
    const own = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-dev-twice-'));
    fs.chmodSync(own, 0o755);
    const dev = spawnFleetpatch(['dev'], { ...(await devEnv()), FLEETPATCH_DATA_DIR: own, FLEETPATCH_DEV_AGENT: 'false' });
    try {
      await dev.waitFor(/Press Ctrl-C to stop/, 120_000);
      const children = descendants(dev.child.pid!);
      dev.child.kill('SIGINT');
      await dev.waitFor(/"msg":"stopping"/);
      dev.child.kill('SIGINT');
      expect(await dev.exited).toEqual({ code: 130, signal: null });
      await expect.poll(() => children.filter(alive), { timeout: 15_000 }).toEqual([]);
    } finally {
      await stop(dev);
      fs.rmSync(own, { recursive: true, force: true });
    }
  }, 180_000);

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
