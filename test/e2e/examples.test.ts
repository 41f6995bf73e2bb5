import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { transform } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { createEnrollmentKey } from '../../src/db/enrollmentKeys.js';
import { cacheDir } from '../../src/devstack/temporalCli.js';
import { startSimulatedFleet, type SimulatedFleet } from '../../src/simulator/fleet.js';
import type { FleetProfile } from '../../src/simulator/syntheticMachine.js';
import { createFleetWorker, type FleetWorker } from '../../src/temporal/worker.js';
import { connectTestDatabase, freshDatabase, startTestApi, temporalSettings, testLogger, tokenFor } from '../support/env.js';
import { FLEETPATCH_BIN } from '../support/processes.js';
import { OperatorShell } from '../support/operatorCli.js';

/** Every update selected, none needing a reboot; `bad-*` machines fail every install. */
const PROFILE: FleetProfile = { updatesPerMachine: 3, criticalShare: 0.5, securityShare: 0.5, rebootSuggestedShare: 0, installSeconds: 0.2, failureRate: 0, rebootSeconds: 1 };

/** Debian's python3 (not one of a version manager's), and the gql client the example names. */
const DEBIAN_PYTHON = '/usr/bin/python3';
const GQL = 'gql[requests,websockets]==4.4.0';
const GQL_DIR = path.join(cacheDir(), 'examples', 'python-gql-4.4.0');

/** Why the Python example cannot run here, or null. Skipped for that reason outside CI only: CI installs Debian's python3 and pip. */
function pythonUnavailable(): string | null {
  if (!fs.existsSync(DEBIAN_PYTHON)) return `no ${DEBIAN_PYTHON} (Debian's python3)`;
  if (fs.existsSync(path.join(GQL_DIR, 'gql'))) return null;
  if (spawnSync(DEBIAN_PYTHON, ['-m', 'pip', '--version']).status !== 0) return `${DEBIAN_PYTHON} has no pip to install ${GQL} with (python3-pip)`;
  return null;
}
const pythonReason = pythonUnavailable();
if (pythonReason && !process.env.CI) console.warn(`examples test: the Python example is skipped: ${pythonReason}`);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * examples/ run as a user would run them, against a real API (HTTP and graphql-ws), a real worker
 * on the real Temporal dev server, and simulated agents on the real agent protocol.
 */
describe('examples/', () => {
  const settings = temporalSettings();
  let database: Database;
  let drop: () => Promise<void>;
  let api: ApiServer;
  let worker: FleetWorker;
  let running: Promise<void>;
  const fleets: SimulatedFleet[] = [];
  let env: NodeJS.ProcessEnv;
  const shell = new OperatorShell();

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    api = await startTestApi(settings, { databaseUrl: fresh.url });
    worker = await createFleetWorker({ databaseUrl: fresh.url, temporal: settings, logger: testLogger, identity: 'examples-worker' });
    running = worker.run();
    const token = await tokenFor(database, 'OPERATOR');
    const { FLEETPATCH_SERVER: _s, FLEETPATCH_TOKEN: _t, ...inherited } = process.env;
    env = { ...inherited, FLEETPATCH_SERVER: api.url.replace('/graphql', ''), FLEETPATCH_TOKEN: token };
    const join = async (prefix: string, profile: FleetProfile, tag: string) => {
      const { secret } = await createEnrollmentKey(database.db, { description: prefix, expiresAt: null, maxUses: null, defaultTags: [tag] });
      fleets.push(await startSimulatedFleet({ server: api.url, enrollKey: secret, machines: 2, profile, prefix, rampConcurrency: 2, seed: 5 }));
    };
    await join('ts', PROFILE, 'ring-ts');
    await join('gh', PROFILE, 'ring-0');
    await join('gl', PROFILE, 'ring-1');
    await join('bad', { ...PROFILE, failureRate: 1 }, 'ring-bad');
    // The rings the CI jobs patch, created as an operator would.
    const admin = { ...env, FLEETPATCH_TOKEN: await tokenFor(database, 'ADMIN') };
    for (const ring of ['ring-0', 'ring-1', 'ring-bad']) {
      const created = await shell.run(['deployments', 'create', ring, '--os', 'LINUX', '--classifications', 'CRITICAL,SECURITY', '--tag', ring, '--on-demand'], { env: admin });
      expect(created.stderr).toBe('');
    }
  });

  afterAll(async () => {
    await Promise.all(fleets.map((f) => f.stop()));
    await worker?.shutdown();
    await running;
    await api?.close();
    await database?.close();
    await drop?.();
    shell.remove();
  });

  it('typescript/run-deployment.ts creates a deployment, runs it and follows it with graphql-ws: exit 0 on SUCCEEDED, 1 otherwise', async () => {
    // Compiled as tsx would (types stripped), next to the project's node_modules so that graphql-ws and ws resolve.
    const source = fs.readFileSync('examples/typescript/run-deployment.ts', 'utf8');
    const { code } = await transform(source, { loader: 'ts', format: 'esm', target: 'node20' });
    const script = path.resolve('node_modules/.cache/fleetpatch-examples/run-deployment.mjs');
    fs.mkdirSync(path.dirname(script), { recursive: true });
    fs.writeFileSync(script, code);

    const ok = await run(process.execPath, [script, 'ts-ring', 'ring-ts'], env);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toMatch(/^created deployment ts-ring \([0-9a-f-]{36}\)\nstarted run ([0-9a-f-]{36})\n/);
    expect(ok.stdout).toMatch(/\nrun [0-9a-f-]{36}: SUCCEEDED \((\d+) of \1 updates succeeded, 0 failed\)\n$/);
    expect(ok.code).toBe(0);

    const bad = await run(process.execPath, [script, 'ts-bad', 'ring-bad'], env);
    expect(bad.stdout).toMatch(/\nrun [0-9a-f-]{36}: FAILED \(0 of \d+ updates succeeded, \d+ failed\)\n$/);
    expect(bad.code).toBe(1);
    const taken = await run(process.execPath, [script, 'ts-ring', 'ring-ts'], env);
    expect(taken).toMatchObject({ code: 1, stderr: 'run-deployment: CONFLICT (field name): a deployment named "ts-ring" already exists; deployment names are unique\n' });
  });

  it.skipIf(pythonReason !== null && !process.env.CI)('python/assess_and_wait.py (gql, Debian’s python3): a query, a mutation, and the machineChanged subscription that brings the new assessment', async () => {
    if (pythonReason) throw new Error(`The Python example cannot run: ${pythonReason}`);
    if (!fs.existsSync(path.join(GQL_DIR, 'gql'))) {
      const staging = `${GQL_DIR}.partial-${process.pid}`;
      const pip = await run(DEBIAN_PYTHON, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-warn-script-location', '--target', staging, GQL], process.env);
      expect(pip.stderr.replace(/^WARNING: Running pip as the 'root' user[^\n]*\n?/m, '')).toBe('');
      fs.renameSync(staging, GQL_DIR);
    }
    const result = await run(DEBIAN_PYTHON, ['examples/python/assess_and_wait.py', 'bad-00001'], { ...env, PYTHONPATH: GQL_DIR, PYTHONDONTWRITEBYTECODE: '1' });
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^\d+ non-compliant machines\n {2}bad-00001: Debian GNU\/Linux 12 \(bookworm\), \d+ critical and security updates missing\n {2}bad-00002: /);
    expect(result.stdout).toMatch(/\nassessment of bad-00001 requested\nmachineChanged: bad-00001 assessed at \S+: NON_COMPLIANT, \d+ critical and security updates missing\n$/);
    expect(result.code).toBe(0);
  });

  describe('ci/: the job runs `fleetpatch deployments run RING --watch` and gates on it', () => {
    /** The job's variables and script lines, as the CI system would hand them to its shell. */
    const jobs = {
      'GitHub Actions': () => {
        const job = (parseYaml(fs.readFileSync('examples/ci/github-actions.yml', 'utf8')) as { jobs: { patch: { env: Record<string, string>; steps: Array<{ run: string }> } } }).jobs.patch;
        return { variables: job.env, script: job.steps.map((s) => s.run).join('\n') };
      },
      'GitLab CI': () => {
        const job = (parseYaml(fs.readFileSync('examples/ci/gitlab-ci.yml', 'utf8')) as { 'patch-ring-0': { variables: Record<string, string>; script: string[] } })['patch-ring-0'];
        return { variables: job.variables, script: job.script.join('\n') };
      },
    };
    const runJob = (name: keyof typeof jobs, deployment?: string) => {
      const { variables, script } = jobs[name]();
      // The image's /app is this repository; the server and the token are the CI system's secrets.
      const jobEnv = { ...env, ...variables, FLEETPATCH: `${process.execPath} ${FLEETPATCH_BIN}`, FLEETPATCH_SERVER: env.FLEETPATCH_SERVER, FLEETPATCH_TOKEN: env.FLEETPATCH_TOKEN, ...(deployment ? { DEPLOYMENT: deployment } : {}) };
      expect(variables.FLEETPATCH).toBe('node /app/bin/fleetpatch.js');
      return run('bash', ['-eo', 'pipefail', '-c', script], jobEnv, shell.home);
    };

    it('GitHub Actions: ring-0 patched, the job passes', async () => {
      const result = await runJob('GitHub Actions');
      expect(result.stdout).toMatch(/\nRun [0-9a-f-]{36} of ring-0: SUCCEEDED \(\d+ succeeded\)\n/);
      expect(result.code).toBe(0);
    });

    it('GitLab CI: ring-1 patched, the job passes; a ring whose updates fail fails the job (exit 4)', async () => {
      const result = await runJob('GitLab CI', 'ring-1');
      expect(result.stdout).toMatch(/\nRun [0-9a-f-]{36} of ring-1: SUCCEEDED \(\d+ succeeded\)\n/);
      expect(result.code).toBe(0);
      const failed = await runJob('GitLab CI', 'ring-bad');
      expect(failed.stdout).toMatch(/\nRun [0-9a-f-]{36} of ring-bad: FAILED /);
      expect(failed.code).toBe(4);
    });
  });
});
