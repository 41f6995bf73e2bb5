import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { createEnrollmentKey } from '../../src/db/enrollmentKeys.js';
import { createApiToken } from '../../src/db/tokens.js';
import { freePort } from '../../src/net.js';
import { startSimulatedFleet, type SimulatedFleet } from '../../src/simulator/fleet.js';
import type { FleetProfile } from '../../src/simulator/syntheticMachine.js';
import { createFleetWorker, type FleetWorker } from '../../src/temporal/worker.js';
import { connectTestDatabase, freshDatabase, startTestApi, temporalSettings, testLogger, tokenFor } from '../support/env.js';
import { OperatorShell, parseCsv, tcpRelay } from '../support/operatorCli.js';

/** Every update selected, none needing a reboot: each machine has 2 to 4 updates to install. */
const PROFILE: FleetProfile = { updatesPerMachine: 3, criticalShare: 0.3, securityShare: 0.4, rebootSuggestedShare: 0, installSeconds: 0.2, failureRate: 0, rebootSeconds: 1 };

/**
 * The operator CLI as a user runs it: `fleetpatch` processes against a real API (over HTTP and
 * graphql-ws), a real worker on the real Temporal dev server, and simulated agents on the real
 * agent protocol: machines whose installs succeed (`ok-*`), fail (`bad-*`) or take long (`slow-*`).
 */
describe('fleetpatch operator commands', () => {
  const settings = temporalSettings();
  let database: Database;
  let drop: () => Promise<void>;
  let databaseUrl: string;
  let api: ApiServer;
  let worker: FleetWorker;
  let running: Promise<void>;
  const fleets: SimulatedFleet[] = [];
  let admin: string;
  let viewer: string;
  let shell: OperatorShell;
  /** The shell's environment for the admin token. */
  let asAdmin: NodeJS.ProcessEnv;
  const machineIds: Record<string, string> = {};

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    databaseUrl = fresh.url;
    database = connectTestDatabase(fresh.url);
    api = await startTestApi(settings, { databaseUrl: fresh.url });
    worker = await createFleetWorker({ databaseUrl: fresh.url, temporal: settings, logger: testLogger, identity: 'operator-cli-worker' });
    running = worker.run();
    admin = await tokenFor(database, 'ADMIN');
    viewer = await tokenFor(database, 'VIEWER');
    shell = new OperatorShell();
    asAdmin = { FLEETPATCH_SERVER: api.url.replace('/graphql', ''), FLEETPATCH_TOKEN: admin };
    const join = async (prefix: string, machines: number, profile: FleetProfile, tags: string[]) => {
      const { secret } = await createEnrollmentKey(database.db, { description: prefix, expiresAt: null, maxUses: null, defaultTags: tags });
      const fleet = await startSimulatedFleet({ server: api.url, enrollKey: secret, machines, profile, prefix, rampConcurrency: machines, seed: 3 });
      fleets.push(fleet);
      for (const agent of fleet.agents) machineIds[agent.hostname] = agent.machineId!;
    };
    await join('ok', 3, PROFILE, ['ring-0']);
    await join('bad', 2, { ...PROFILE, failureRate: 1 }, ['ring-bad']);
    await join('slow', 1, { ...PROFILE, installSeconds: 60 }, ['ring-slow']);
  });

  afterAll(async () => {
    await Promise.all(fleets.map((f) => f.stop()));
    await worker?.shutdown();
    await running;
    await api?.close();
    await database?.close();
    await drop?.();
    shell?.remove();
  });

  describe('login and tokens', () => {
    it('without a server or token says how to log in (exit 1)', async () => {
      const result = await shell.run(['machines', 'list']);
      expect(result).toEqual({
        code: 1,
        stdout: '',
        stderr: 'fleetpatch: Not logged in to a fleetpatch server: log in with `fleetpatch login --server URL` (it reads an API token on stdin), or set FLEETPATCH_SERVER and FLEETPATCH_TOKEN.\n',
      });
      expect((await shell.run(['deployments', 'list'], { env: { FLEETPATCH_TOKEN: admin } })).stderr).toMatch(/^fleetpatch: No server: FLEETPATCH_TOKEN is set but FLEETPATCH_SERVER is not/);
    });

    it('login checks the token read from stdin and keeps it in a 0600 file the other commands use', async () => {
      const refused = await shell.run(['login', '--server', api.url], { input: 'fp_not-a-token\n' });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^fleetpatch: UNAUTHENTICATED: The API token is unknown, revoked or expired\./);
      expect(fs.existsSync(path.join(shell.home, '.config/fleetpatch/credentials.json'))).toBe(false);

      const login = await shell.run(['login', '--server', api.url.replace('/graphql', '')], { input: `${admin}\n` });
      expect(login.stderr).toBe('');
      expect(login.stdout).toMatch(/^Logged in to http:\/\/127\.0\.0\.1:\d+\/graphql \(fleetpatch \S+\); the token is kept in .*credentials\.json \(mode 0600\)\.\n$/);
      const file = path.join(shell.home, '.config/fleetpatch/credentials.json');
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
      expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toMatchObject({ server: api.url, token: admin });

      const listed = await shell.run(['machines', 'list', '-o', 'json']);
      expect(listed.code).toBe(0);
      expect((JSON.parse(listed.stdout) as unknown[]).length).toBe(6);
      // FLEETPATCH_TOKEN wins over the saved login: a viewer may not list tokens, and the API's code says why.
      const forbidden = await shell.run(['tokens', 'list'], { env: { FLEETPATCH_TOKEN: viewer } });
      expect(forbidden).toMatchObject({ code: 1, stdout: '' });
      expect(forbidden.stderr).toBe('fleetpatch: FORBIDDEN: This field needs the ADMIN role; your token has VIEWER.\n');

      expect((await shell.run(['logout'])).stdout).toMatch(/^Logged out: .*credentials\.json removed\.\n$/);
      expect((await shell.run(['machines', 'list'])).stderr).toMatch(/Not logged in/);
    });

    it('an expired token says that it expired, and when', async () => {
      const expiresAt = new Date(Date.now() - 3_600_000);
      const { secret } = await createApiToken(database.db, { name: 'expired', role: 'VIEWER', expiresAt });
      const result = await shell.run(['machines', 'list'], { env: { ...asAdmin, FLEETPATCH_TOKEN: secret } });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `fleetpatch: UNAUTHENTICATED: The API token expired at ${expiresAt.toISOString()}. Ask an admin for a new one. Log in again: fleetpatch login --server ${api.url.replace('/graphql', '')} (or set FLEETPATCH_TOKEN).\n`,
      );
    });

    it('a server that does not answer is named, with what to check', async () => {
      const port = await freePort();
      const result = await shell.run(['machines', 'list'], { env: { FLEETPATCH_SERVER: `127.0.0.1:${port}`, FLEETPATCH_TOKEN: admin } });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`fleetpatch: Cannot reach the fleetpatch API at http://127.0.0.1:${port}/graphql (ECONNREFUSED). Is the server running, and is this its address? (FLEETPATCH_SERVER or \`fleetpatch login --server URL\`)\n`);
    });

    it('tokens and enrollment keys: created (the secret alone on stdout), listed, revoked', async () => {
      const created = await shell.run(['tokens', 'create', '--name', 'ci pipeline', '--role', 'operator', '--expires', '90d'], { env: asAdmin });
      expect(created.code).toBe(0);
      expect(created.stdout).toMatch(/^fp_[A-Za-z0-9_-]{43}\n$/);
      expect(created.stderr).toMatch(/^Created OPERATOR token "ci pipeline" \([0-9a-f-]{36}\), expiring 20\d\d-/);
      const tokens = JSON.parse((await shell.run(['tokens', 'list', '-o', 'json'], { env: asAdmin })).stdout) as Array<{ id: string; name: string; state: string }>;
      const ci = tokens.find((t) => t.name === 'ci pipeline')!;
      expect(ci.state).toBe('ACTIVE');
      expect((await shell.run(['tokens', 'revoke', ci.id], { env: asAdmin })).stdout).toMatch(/^Revoked token "ci pipeline"/);
      const revoked = await shell.run(['machines', 'list'], { env: { ...asAdmin, FLEETPATCH_TOKEN: created.stdout.trim() } });
      expect(revoked.stderr).toMatch(/^fleetpatch: UNAUTHENTICATED: The API token was revoked at /);

      const key = await shell.run(['enrollment-keys', 'create', '--description', 'lab', '--max-uses', '3', '--tag', 'lab'], { env: asAdmin });
      expect(key.stdout).toMatch(/^fpe_\S+\n$/);
      const csv = parseCsv((await shell.run(['enrollment-keys', 'list', '-o', 'csv'], { env: asAdmin })).stdout);
      expect(csv[0]).toEqual(['description', 'state', 'useCount', 'maxUses', 'defaultTags', 'expiresAt', 'lastUsedAt', 'createdAt', 'revokedAt', 'id']);
      const lab = csv.find((row) => row[0] === 'lab')!;
      expect(lab.slice(1, 5)).toEqual(['ACTIVE', '0', '3', 'lab']);
      expect((await shell.run(['enrollment-keys', 'revoke', lab[9]!], { env: asAdmin })).stdout).toMatch(/^Revoked enrollment key "lab"/);
    });
  });

  describe('machines and updates', () => {
    it('machines list: a table, JSON, and CSV with its documented columns; filters and pages', async () => {
      const table = await shell.run(['machines', 'list', '--sort', 'name'], { env: asAdmin });
      expect(table.code).toBe(0);
      const lines = table.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^NAME\s+COMPLIANCE\s+ENVIRONMENT\s+OS\s+CRITICAL\+SECURITY\s+OTHER\s+READINESS\s+TAGS\s+LAST SEEN\s+ID$/);
      expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['bad-00001', 'bad-00002', 'ok-00001', 'ok-00002', 'ok-00003', 'slow-00001']);
      expect(table.stderr).toBe('6 machines\n');

      const csv = parseCsv((await shell.run(['machines', 'list', '--tag', 'ring-0', '-o', 'csv'], { env: asAdmin })).stdout);
      const header = csv[0]!;
      expect(header).toEqual([
        'name', 'compliance', 'environment', 'osType', 'osName', 'osVersion', 'criticalAndSecurityCount', 'otherCount', 'agentReadiness',
        'readinessDetail.reason', 'readinessDetail.since', 'tags', 'lastSeenAt', 'lastAssessedAt', 'duplicateName', 'id',
      ]);
      // docs/cli.md documents the same columns.
      expect(fs.readFileSync('docs/cli.md', 'utf8')).toContain(header.join(','));
      expect(csv.slice(1).map((r) => r[0]).sort()).toEqual(['ok-00001', 'ok-00002', 'ok-00003']);
      expect(csv.slice(1).every((r) => r[header.indexOf('tags')] === 'ring-0' && r[header.indexOf('osName')] === 'Debian GNU/Linux 12 (bookworm)')).toBe(true);

      const first = await shell.run(['machines', 'list', '--sort', 'name', '--limit', '2', '-o', 'json'], { env: asAdmin });
      expect((JSON.parse(first.stdout) as Array<{ name: string }>).map((m) => m.name)).toEqual(['bad-00001', 'bad-00002']);
      const cursor = /^More: --after (\S+)\n$/.exec(first.stderr)![1]!;
      const second = await shell.run(['machines', 'list', '--sort', 'name', '--limit', '2', '--after', cursor, '-o', 'json'], { env: asAdmin });
      expect((JSON.parse(second.stdout) as Array<{ name: string }>).map((m) => m.name)).toEqual(['ok-00001', 'ok-00002']);
      const all = JSON.parse((await shell.run(['machines', 'list', '--limit', '2', '--all', '-o', 'json', '--name', 'OK-'], { env: asAdmin })).stdout) as unknown[];
      expect(all).toHaveLength(3);

      const bad = await shell.run(['machines', 'list', '--compliance', 'sometimes'], { env: asAdmin });
      expect(bad).toEqual({ code: 1, stdout: '', stderr: 'fleetpatch: --compliance must be one of NON_COMPLIANT, NOT_ASSESSED, COMPLIANT; got "sometimes".\n' });
      const format = await shell.run(['machines', 'list', '-o', 'xml'], { env: asAdmin });
      expect(format.code).toBe(2);
      expect(format.stderr).toMatch(/^fleetpatch machines list: option '-o, --output <format>' argument 'xml' is invalid/);
    });

    it('machines show by name: facts and pending updates; CSV flattens it to a row per update with its machine', async () => {
      const shown = await shell.run(['machines', 'show', 'OK-00001'], { env: asAdmin });
      expect(shown.code).toBe(0);
      expect(shown.stdout).toMatch(/^Name: +ok-00001\nId: +[0-9a-f-]{36}\nCompliance: +NON_COMPLIANT\n/);
      expect(shown.stdout).toMatch(/\nUPDATE +ARCH +CLASSIFICATION +SEVERITY +INSTALLED +AVAILABLE +REBOOT\n/);
      const csv = parseCsv((await shell.run(['machines', 'show', machineIds['ok-00001']!, '-o', 'csv'], { env: asAdmin })).stdout);
      expect(csv[0]).toEqual(['machine.id', 'machine.name', 'machine.compliance', 'name', 'arch', 'classification', 'severity', 'installedVersion', 'availableVersion', 'rebootSuggested', 'repository', 'advisoryIds', 'cveIds']);
      expect(csv.length).toBeGreaterThan(2);
      expect(csv.slice(1).every((r) => r[0] === machineIds['ok-00001'] && r[1] === 'ok-00001')).toBe(true);
      const missing = await shell.run(['machines', 'show', 'no-such-machine'], { env: asAdmin });
      expect(missing).toMatchObject({ code: 1, stderr: 'fleetpatch: NOT_FOUND: No machine named "no-such-machine" (see `fleetpatch machines list --name no-such-machine`).\n' });
    });

    it('machines assess asks the agents; updates missing lists the fleet’s missing updates', async () => {
      const assess = await shell.run(['machines', 'assess', 'ok-00001', machineIds['ok-00002']!, '-o', 'json'], { env: asAdmin });
      expect(assess.code).toBe(0);
      expect(JSON.parse(assess.stdout)).toEqual([
        expect.objectContaining({ machineId: machineIds['ok-00001'], requested: true }),
        expect.objectContaining({ machineId: machineIds['ok-00002'], requested: true }),
      ]);
      const missing = parseCsv((await shell.run(['updates', 'missing', '-o', 'csv', '--all'], { env: asAdmin })).stdout);
      expect(missing[0]).toEqual(['name', 'classification', 'severity', 'machineCount', 'availableVersions', 'rebootSuggested', 'advisoryIds', 'cveIds']);
      expect(missing.length).toBeGreaterThan(1);
    });
  });
  describe('deployments and runs', () => {
    const runIdOf = (stderr: string) => /Started run ([0-9a-f-]{36})/.exec(stderr)![1]!;

    it('deployments create, show, update, pause and resume; a broken rule answers its code and field', async () => {
      const created = await shell.run(['deployments', 'create', 'ring-0', '--os', 'linux', '--classifications', 'critical,security,other', '--tag', 'ring-0', '--window', '60'], { env: asAdmin });
      expect(created.stderr).toBe('');
      expect(created.stdout).toMatch(/^Created deployment ring-0 \([0-9a-f-]{36}\); next run 20\d\d-/);
      const refused = await shell.run(['deployments', 'create', 'ring-x', '--os', 'linux', '--classifications', 'critical', '--tag', 'ring-0', '--window', '10'], { env: asAdmin });
      expect(refused).toEqual({
        code: 1,
        stdout: '',
        stderr: 'fleetpatch: BAD_USER_INPUT (field windowMinutes): windowMinutes must be a whole number of minutes from 30 to 360 (the seed allows 30 to 360 minutes); got 10\n',
      });
      const taken = await shell.run(['deployments', 'create', 'ring-0', '--os', 'linux', '--classifications', 'critical', '--tag', 'ring-0'], { env: asAdmin });
      expect(taken.stderr).toBe('fleetpatch: CONFLICT (field name): a deployment named "ring-0" already exists; deployment names are unique\n');

      const updated = await shell.run(['deployments', 'update', 'ring-0', '--window', '90', '--max-concurrent', '50%'], { env: asAdmin });
      expect(updated.stdout).toMatch(/^Updated deployment ring-0 /);
      const shown = JSON.parse((await shell.run(['deployments', 'show', 'ring-0', '-o', 'json'], { env: asAdmin })).stdout) as Record<string, unknown>;
      expect(shown).toMatchObject({ name: 'ring-0', windowMinutes: 90, maxConcurrent: { value: 50, unit: 'PERCENT' }, classifications: ['CRITICAL', 'SECURITY', 'OTHER'], targetFilter: { tags: ['ring-0'] }, paused: false });
      expect((await shell.run(['deployments', 'pause', 'ring-0'], { env: asAdmin })).stdout).toMatch(/^Paused deployment ring-0/);
      expect(JSON.parse((await shell.run(['deployments', 'show', shown.id as string, '-o', 'json'], { env: asAdmin })).stdout)).toMatchObject({ paused: true, nextRunAt: null });
      expect((await shell.run(['deployments', 'resume', 'ring-0'], { env: asAdmin })).stdout).toMatch(/^Resumed deployment ring-0/);
      const listed = parseCsv((await shell.run(['deployments', 'list', '-o', 'csv'], { env: asAdmin })).stdout);
      expect(listed[1]![0]).toBe('ring-0');
    });

    it('deployments run --watch follows the run in lines and exits 0 when it SUCCEEDED', async () => {
      const watched = await shell.run(['deployments', 'run', 'ring-0', '--watch', '--logs'], { env: asAdmin });
      expect(watched.code).toBe(0);
      const runId = runIdOf(watched.stderr);
      expect(watched.stdout).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d run ${runId} of ring-0: `));
      for (const name of ['ok-00001', 'ok-00002', 'ok-00003']) {
        expect(watched.stdout).toMatch(new RegExp(`\\d\\d:\\d\\d:\\d\\d ${name}: SUCCEEDED \\(\\d/\\d updates: \\d succeeded; reboot NOT_NEEDED\\)`));
        expect(watched.stdout).toMatch(new RegExp(`\\d\\d:\\d\\d:\\d\\d ${name}: sim-pkg-\\d+ SUCCEEDED\\n`));
      }
      // --logs: the job stream, each line once.
      expect(watched.stdout).toMatch(/ ok-00001 \[stdout\] Setting up sim-pkg-\d+ /);
      expect(watched.stdout).toMatch(new RegExp(`\\nRun ${runId} of ring-0: SUCCEEDED \\(\\d+ succeeded\\)\\n  ok-00001: SUCCEEDED, reboot NOT_NEEDED\\n`));

      const again = await shell.run(['runs', 'watch', runId], { env: asAdmin });
      expect(again.code).toBe(0);
      const csv = parseCsv((await shell.run(['runs', 'show', runId, '-o', 'csv'], { env: asAdmin })).stdout);
      expect(csv[0]).toEqual([
        'run.id', 'run.status', 'run.deployment.name', 'machineRun.machineName', 'machineRun.machineId', 'machineRun.status', 'machineRun.rebootOutcome', 'machineRun.error',
        'name', 'arch', 'classification', 'status', 'installedVersion', 'targetVersion', 'exitCode', 'errorText', 'reason',
      ]);
      expect(fs.readFileSync('docs/cli.md', 'utf8')).toContain(csv[0]!.join(','));
      expect(csv.slice(1).every((r) => r[0] === runId && r[1] === 'SUCCEEDED' && r[2] === 'ring-0' && r[11] === 'SUCCEEDED')).toBe(true);
      expect(new Set(csv.slice(1).map((r) => r[3]))).toEqual(new Set(['ok-00001', 'ok-00002', 'ok-00003']));
      const runs = JSON.parse((await shell.run(['runs', 'list', 'ring-0', '-o', 'json'], { env: asAdmin })).stdout) as Array<{ id: string; status: string }>;
      expect(runs[0]).toMatchObject({ id: runId, status: 'SUCCEEDED' });
    });

    it('exits 3 on PARTIALLY_FAILED and 4 on FAILED, naming each failed update and its error', async () => {
      await shell.run(['deployments', 'create', 'mixed', '--os', 'LINUX', '--classifications', 'CRITICAL,SECURITY,OTHER', '--machine', 'ok-00001', '--machine', 'bad-00001'], { env: asAdmin });
      const mixed = await shell.run(['deployments', 'run', 'mixed', '--watch'], { env: asAdmin });
      expect(mixed.code).toBe(3);
      expect(mixed.stdout).toMatch(/bad-00001: sim-pkg-\d+ FAILED \(exit code 100: E: Sub-process \/usr\/bin\/dpkg returned an error code \(1\) while configuring sim-pkg-\d+ \(simulated failure\)\)/);
      expect(mixed.stdout).toMatch(/\nRun [0-9a-f-]{36} of mixed: PARTIALLY_FAILED \(\d+ succeeded, \d+ failed\)\n/);
      expect(mixed.stdout).toMatch(/\n {4}sim-pkg-\d+ FAILED, exit code 100: E: Sub-process/);

      await shell.run(['deployments', 'create', 'broken', '--os', 'LINUX', '--classifications', 'CRITICAL,SECURITY,OTHER', '--tag', 'ring-bad'], { env: asAdmin });
      const broken = await shell.run(['deployments', 'run', 'broken', '--watch'], { env: asAdmin });
      expect(broken.code).toBe(4);
      expect(broken.stdout).toMatch(/\nRun [0-9a-f-]{36} of broken: FAILED /);
    });

    it('exits 5 when the run is canceled while it is watched (runs cancel from another shell)', async () => {
      await shell.run(['deployments', 'create', 'slow', '--os', 'LINUX', '--classifications', 'CRITICAL,SECURITY,OTHER', '--tag', 'ring-slow'], { env: asAdmin });
      const watch = shell.start(['deployments', 'run', 'slow', '--watch'], { env: asAdmin });
      const [, runId] = await watch.waitFor(/Started run ([0-9a-f-]{36})/);
      await watch.waitFor(/slow-00001: IN_PROGRESS/);
      const cancel = await shell.run(['runs', 'cancel', runId!], { env: asAdmin });
      expect(cancel.stdout).toMatch(/^Canceling run /);
      expect((await watch.exited).code).toBe(5);
      expect(watch.output()).toMatch(/\nRun [0-9a-f-]{36} of slow: CANCELED/);
    });

    it('a watch whose socket is dropped mid-run resumes after the last event it received and shows every event once', async () => {
      // A machine of its own whose updates take a second and a half each; the watch reaches the API through a relay the test cuts.
      const { secret } = await createEnrollmentKey(database.db, { description: 'drop', expiresAt: null, maxUses: null, defaultTags: ['ring-drop'] });
      const fleet = await startSimulatedFleet({ server: api.url, enrollKey: secret, machines: 1, profile: { ...PROFILE, installSeconds: 1.5 }, prefix: 'drop', rampConcurrency: 1, seed: 3 });
      fleets.push(fleet);
      await shell.run(['deployments', 'create', 'drop', '--os', 'LINUX', '--classifications', 'CRITICAL,SECURITY,OTHER', '--tag', 'ring-drop'], { env: asAdmin });
      const relay = await tcpRelay(`127.0.0.1:${api.port}`);
      try {
        const watch = shell.start(['deployments', 'run', 'drop', '--watch', '--logs'], { env: { ...asAdmin, FLEETPATCH_SERVER: `http://${relay.address}` } });
        const [, runId] = await watch.waitFor(/Started run ([0-9a-f-]{36})/);
        // An update's end is shown from the subscription only: the watch has read the run and follows it live.
        await watch.waitFor(/drop-00001: \S+ SUCCEEDED\n/);
        // The socket drops; the run goes on, and ends, while the watch cannot reach the API.
        relay.cut();
        const connectionsBefore = relay.connections;
        for (const deadline = Date.now() + 60_000; ; ) {
          const [run] = await database.sql<Array<{ status: string }>>`select status from deployment_runs where id = ${runId!}`;
          if (run?.status === 'SUCCEEDED') break;
          if (Date.now() > deadline) throw new Error(`the run did not succeed while the watch was cut off (${run?.status})`);
          await new Promise((r) => setTimeout(r, 200));
        }
        await relay.resume();
        expect((await watch.exited).code).toBe(0);
        expect(relay.connections).toBeGreaterThan(connectionsBefore);
        const output = watch.output();
        // Each update's end once, those that ended while the socket was down included.
        const updates = await database.sql<Array<{ name: string }>>`select u.name from update_results u join machine_runs m on m.id = u.machine_run_id where m.run_id = ${runId!} and u.status = 'SUCCEEDED'`;
        expect(updates.length).toBeGreaterThanOrEqual(2);
        for (const { name } of updates) expect(output.split('\n').filter((l) => l.endsWith(`drop-00001: ${name} SUCCEEDED`))).toHaveLength(1);
        // Every line of the run's log once, in order.
        const lines = await database.sql<Array<{ line: string }>>`select line from run_logs where run_id = ${runId!} order by id`;
        const printed = output.split('\n').filter((l) => /^\d\d:\d\d:\d\d \S+ \[\w+\] /.test(l)).map((l) => l.replace(/^\d\d:\d\d:\d\d \S+ \[\w+\] /, ''));
        expect(printed).toEqual(lines.map((l) => l.line));
        // The machine's status changes once each, and the run's end.
        expect(output.split('\n').filter((l) => /^\d\d:\d\d:\d\d drop-00001: SUCCEEDED \(/.test(l))).toHaveLength(1);
        expect(output).toMatch(new RegExp(`\\nRun ${runId} of drop: SUCCEEDED`));
      } finally {
        relay.close();
      }
    });

    it('runs watch --next waits for a run that has not begun yet, then follows it', async () => {
      const waiting = shell.start(['runs', 'watch', '--next', 'ring-0'], { env: asAdmin });
      await waiting.waitFor(/Waiting for the next run of ring-0/);
      const started = await shell.run(['deployments', 'run', 'ring-0'], { env: asAdmin });
      const runId = started.stdout.trim();
      expect(runId).toMatch(/^[0-9a-f-]{36}$/);
      expect((await waiting.exited).code).toBe(0);
      expect(waiting.output()).toContain(`Run ${runId} began.`);
      expect(waiting.output()).toMatch(new RegExp(`Run ${runId} of ring-0: SUCCEEDED`));
    });

    it('draws a bar per machine and one for the run in a terminal', async () => {
      // script(1) gives the command a pseudo-terminal, as an operator's shell would.
      const command = `${process.execPath} ${path.resolve('bin/fleetpatch.js')} deployments run ring-0 --watch`;
      const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawnScript(command, shell.env({ ...asAdmin, COLUMNS: '120' }));
        let out = '';
        child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
        child.on('close', (code) => resolve({ code, out }));
      });
      expect(result.code).toBe(0);
      // Without the terminal's control sequences (ESC [ ... letter).
      const screen = result.out.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g'), '');
      expect(screen).toMatch(/run +[█░]+ \d+\/\d+ SUCCEEDED/);
      for (const name of ['ok-00001', 'ok-00002', 'ok-00003']) expect(screen).toMatch(new RegExp(`${name} +[█░]+ \\d+/\\d+ SUCCEEDED`));
    });
  });

  describe('deployments as code', () => {
    const FILE = `# the rings
deployments:
  - name: ring-a
    osType: LINUX
    classifications: [CRITICAL, SECURITY]
    targetFilter: {tags: [ring-0]}
    schedule:
      startAt: 2031-01-07T03:00:00+01:00
      timeZone: Europe/Paris
      recurrence: {frequency: WEEKLY, weekDays: [TUESDAY]}
    windowMinutes: 120
    maxFailures: {value: 10, unit: PERCENT}
  - name: ring-b
    osType: LINUX
    classifications: [security, CRITICAL]
    machineIds: [MACHINE]
    excludePatterns: ["sim-pkg-1*"]
    paused: true
`;

    it('apply creates and updates by name, diff says what would change, and a second apply changes nothing', async () => {
      const file = shell.file('rings.yaml', FILE.replace('MACHINE', machineIds['ok-00002']!).replace('[security, CRITICAL]', '[SECURITY, CRITICAL]'));
      const before = await shell.run(['diff', '-f', file], { env: asAdmin });
      expect(before).toEqual({ code: 6, stdout: '+ ring-a: would be created\n+ ring-b: would be created\n2 of 2 deployments would change.\n', stderr: '' });
      const applied = await shell.run(['apply', '-f', file], { env: asAdmin });
      expect(applied.code).toBe(0);
      expect(applied.stdout).toMatch(/^\+ ring-a: created \([0-9a-f-]{36}\)\n\+ ring-b: created \([0-9a-f-]{36}\), paused\n2 deployments changed, 0 unchanged\.\n$/);
      const ringB = JSON.parse((await shell.run(['deployments', 'show', 'ring-b', '-o', 'json'], { env: asAdmin })).stdout) as { paused: boolean; classifications: string[]; excludePatterns: string[] };
      expect(ringB).toMatchObject({ paused: true, classifications: ['CRITICAL', 'SECURITY'], excludePatterns: ['sim-pkg-1*'] });

      expect(await shell.run(['apply', '-f', file], { env: asAdmin })).toEqual({ code: 0, stdout: `= ring-a: unchanged\n= ring-b: unchanged\nNo changes: 2 deployments already match ${file}.\n`, stderr: '' });
      expect(await shell.run(['diff', '-f', file], { env: asAdmin })).toMatchObject({ code: 0, stdout: '= ring-a: unchanged\n= ring-b: unchanged\nNo differences: 2 deployments match the file.\n' });

      const changed = shell.file('rings2.yaml', fs.readFileSync(file, 'utf8').replace('windowMinutes: 120', 'windowMinutes: 90').replace('paused: true', 'paused: false'));
      const diff = await shell.run(['diff', '-f', changed], { env: asAdmin });
      expect(diff).toEqual({ code: 6, stdout: '~ ring-a:\n    windowMinutes: 120 -> 90\n~ ring-b:\n    paused: true -> false\n2 of 2 deployments would change.\n', stderr: '' });
      expect((await shell.run(['apply', '-f', changed], { env: asAdmin })).stdout).toBe('~ ring-a: updated (windowMinutes)\n~ ring-b: updated (paused)\n2 deployments changed, 0 unchanged.\n');
    });

    it('a deployment whose start has passed can still be changed: its stored start is kept', async () => {
      // The first run of ring-a began last month: its stored start is in the past.
      await database.sql`update deployments set schedule = jsonb_set(schedule, '{startAt}', to_jsonb('2026-01-06T02:00:00.000Z'::text)) where name = 'ring-a'`;
      const exported = JSON.parse((await shell.run(['export', 'deployments', '-o', 'json'], { env: asAdmin })).stdout) as { deployments: Array<{ name: string; windowMinutes: number }> };
      const ringA = exported.deployments.find((d) => d.name === 'ring-a')!;
      const file = shell.file('exported.json', JSON.stringify({ deployments: [{ ...ringA, windowMinutes: 150 }] }));
      const applied = await shell.run(['apply', '-f', file], { env: asAdmin });
      expect(applied.stderr).toBe('');
      expect(applied.stdout).toBe('~ ring-a: updated (windowMinutes)\n1 deployment changed, 0 unchanged.\n');
      const stored = JSON.parse((await shell.run(['deployments', 'show', 'ring-a', '-o', 'json'], { env: asAdmin })).stdout) as { windowMinutes: number; schedule: { startAt: string } };
      expect(stored).toMatchObject({ windowMinutes: 150, schedule: { startAt: '2026-01-06T02:00:00.000Z' } });
    });

    it('export writes every deployment in the format apply takes back unchanged (YAML and JSON)', async () => {
      const yaml = await shell.run(['export', 'deployments'], { env: asAdmin });
      expect(yaml.stdout).toMatch(/^# fleetpatch deployments exported from http:\/\/127\.0\.0\.1:\d+\/graphql at /);
      const names = [...yaml.stdout.matchAll(/^ {2}- name: (.+)$/gm)].map((m) => m[1]);
      expect(names).toEqual([...names].sort((a, b) => a!.localeCompare(b!)));
      expect(names).toEqual(expect.arrayContaining(['ring-0', 'ring-a', 'ring-b', 'mixed', 'broken', 'slow']));
      const file = shell.file('all.yaml', yaml.stdout);
      expect((await shell.run(['apply', '-f', file], { env: asAdmin })).stdout).toMatch(/\nNo changes: \d+ deployments already match /);
      const json = await shell.run(['export', 'deployments', '-o', 'json'], { env: asAdmin });
      const fromJson = await shell.run(['apply', '-f', '-'], { env: asAdmin, input: json.stdout });
      expect(fromJson.stdout).toMatch(/\nNo changes: \d+ deployments already match -\.\n$/);
      expect((JSON.parse(json.stdout) as { deployments: Array<Record<string, unknown>> }).deployments.find((d) => d.name === 'ring-a')).toEqual({
        name: 'ring-a',
        osType: 'LINUX',
        machineIds: [],
        targetFilter: { tags: ['ring-0'], nameContains: null },
        classifications: ['CRITICAL', 'SECURITY'],
        includePatterns: [],
        excludePatterns: [],
        onDemandOnly: false,
        schedule: { startAt: '2026-01-06T02:00:00.000Z', timeZone: 'Europe/Paris', recurrence: { frequency: 'WEEKLY', every: 1, weekDays: ['TUESDAY'] }, endAt: null },
        windowMinutes: 150,
        rebootSetting: 'IF_REQUIRED',
        maxConcurrent: null,
        maxFailures: { value: 10, unit: 'PERCENT' },
        paused: false,
      });
    });

    it('a deployment run on demand only round-trips: created from a file, exported without a schedule, applied back unchanged; a schedule shows in diff', async () => {
      const file = shell.file('on-demand.yaml', `deployments:
  - name: ring-od
    osType: LINUX
    classifications: [CRITICAL]
    targetFilter: {tags: [ring-0]}
    onDemandOnly: true
`);
      expect((await shell.run(['apply', '-f', file], { env: asAdmin })).stdout).toMatch(/^\+ ring-od: created \([0-9a-f-]{36}\)\n1 deployment changed, 0 unchanged\.\n$/);
      const exported = JSON.parse((await shell.run(['export', 'deployments', '-o', 'json'], { env: asAdmin })).stdout) as { deployments: Array<Record<string, unknown>> };
      expect(exported.deployments.find((d) => d.name === 'ring-od')).toMatchObject({ onDemandOnly: true, schedule: null, paused: false });
      const yaml = (await shell.run(['export', 'deployments'], { env: asAdmin })).stdout;
      expect((await shell.run(['apply', '-f', shell.file('all-od.yaml', yaml)], { env: asAdmin })).stdout).toMatch(/\n= ring-od: unchanged\n(.*\n)*No changes: \d+ deployments already match /);
      const listed = await shell.run(['deployments', 'show', 'ring-od'], { env: asAdmin });
      expect(listed.stdout).toMatch(/\nSchedule: +none: on demand only \(deployments run\)\n/);

      const scheduled = shell.file('scheduled.yaml', fs.readFileSync(file, 'utf8').replace('onDemandOnly: true', 'schedule: {startAt: 2031-01-07T03:00:00Z, recurrence: {frequency: DAILY}}'));
      const diff = await shell.run(['diff', '-f', scheduled], { env: asAdmin });
      expect(diff.code).toBe(6);
      expect(diff.stdout).toMatch(/^~ ring-od:\n {4}onDemandOnly: true -> false\n {4}schedule\.startAt: none -> 2031-01-07T03:00:00\.000Z\n/);
      expect((await shell.run(['apply', '-f', scheduled], { env: asAdmin })).code).toBe(0);
      const shown = await shell.run(['deployments', 'show', 'ring-od', '-o', 'json'], { env: asAdmin });
      expect(shown).toMatchObject({ code: 0, stderr: '' });
      expect(JSON.parse(shown.stdout)).toMatchObject({ onDemandOnly: false, schedule: { startAt: '2031-01-07T03:00:00.000Z' } });
      // and back with the flag of `deployments update`
      expect((await shell.run(['deployments', 'update', 'ring-od', '--on-demand'], { env: asAdmin })).code).toBe(0);
      expect((await shell.run(['apply', '-f', file], { env: asAdmin })).stdout).toMatch(/^= ring-od: unchanged\n/);
    });

    it('export and diff read only what the database holds: they answer while Temporal is away from the API', async () => {
      // An API of its own whose road to Temporal is cut: what needs Temporal (a deployment's next
      // run) says so; deployments as code does not ask for it.
      // A scheduled deployment, whose next run only Temporal knows.
      await shell.run(['deployments', 'create', 'while-away', '--os', 'LINUX', '--classifications', 'CRITICAL', '--tag', 'ring-0', '--start', '2031-01-07T03:00:00Z', '--frequency', 'DAILY'], { env: asAdmin });
      const relay = await tcpRelay(settings.address);
      const away = await startTestApi({ ...settings, address: relay.address }, { databaseUrl });
      try {
        relay.cut();
        const env = { FLEETPATCH_SERVER: away.url.replace('/graphql', ''), FLEETPATCH_TOKEN: admin };
        const listed = await shell.run(['deployments', 'list'], { env });
        expect(listed.stderr).toMatch(/^fleetpatch: SERVICE_UNAVAILABLE: Temporal is unavailable/);
        const exported = await shell.run(['export', 'deployments'], { env });
        expect(exported).toMatchObject({ code: 0, stderr: '' });
        const diff = await shell.run(['diff', '-f', shell.file('while-away.yaml', exported.stdout)], { env });
        expect(diff.stdout).toMatch(/\nNo differences: \d+ deployments match the file\.\n$/);
        expect(diff.code).toBe(0);
      } finally {
        await away.close();
        relay.close();
      }
    });

    it('names the file, line, path and rule of every problem, and changes nothing', async () => {
      const before = (await shell.run(['export', 'deployments', '-o', 'json'], { env: asAdmin })).stdout;
      const file = shell.file(
        'broken.yaml',
        `deployments:
  - name: ring-a
    osType: LINUX
    classifications: [CRITICAL]
    targetFilter: {tags: [ring-0]}
    windowMinute: 90
  - name: ring-c
    osType: LINUX
    classifications: [CRITICAL, KB]
    targetFilter: {tags: [ring-0]}
    windowMinutes: ninety
  - name: ring-d
    osType: LINUX
    classifications: [CRITICAL]
    targetFilter: {tags: [ring-0]}
    schedule: {timeZone: Europe/Pariss}
  - name: ring-e
    osType: WINDOWS
    classifications: [CRITICAL]
    targetFilter: {tags: [ring-0]}
  - name: ring-a
    osType: LINUX
    classifications: [CRITICAL]
    machineIds: [00000000-0000-4000-8000-000000000000]
`,
      );
      const result = await shell.run(['apply', '-f', file], { env: asAdmin });
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(
        [
          'fleetpatch: Deployment files have 6 problems; nothing was changed:',
          `  ${file}:6:19: deployments[0].windowMinute: Field "windowMinute" is not defined by type "DeploymentInput". Did you mean "windowMinutes"?`,
          `  ${file}:9:33: deployments[1].classifications[1]: Value "KB" does not exist in "Classification" enum.`,
          `  ${file}:11:20: deployments[1].windowMinutes: Int cannot represent non-integer value: "ninety"`,
          `  ${file}:21:11: deployments[4].name: "ring-a" is also defined at ${file}:2:11; deployment names are unique`,
          `  ${file}:16:26: deployments[2].schedule.timeZone: schedule.timeZone "Europe/Pariss" is not a known IANA time zone; use a name such as Europe/Paris, America/New_York or UTC`,
          `  ${file}:17:5: deployments[3].machineIds: the deployment's targets match no machine: no live WINDOWS machine under update management is in machineIds or matches targetFilter (the server's check)`,
          '',
        ].join('\n'),
      );
      expect((await shell.run(['export', 'deployments', '-o', 'json'], { env: asAdmin })).stdout).toBe(before);
      const syntax = await shell.run(['diff', '-f', shell.file('syntax.yaml', 'deployments: [\n  {name: x\n')], { env: asAdmin });
      expect(syntax.code).toBe(1);
      expect(syntax.stderr).toMatch(/^fleetpatch: A deployment file has a problem; nothing was changed:\n {2}\S+syntax\.yaml:\d+:\d+: /);
    });
  });

  describe('shell completion', () => {
    const complete = async (words: string[]) => {
      const script = (await shell.run(['completion', 'bash'])).stdout;
      const file = shell.file('completion.bash', script);
      const cword = words.length - 1;
      const line = `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${cword}; _fleetpatch; printf '%s\\n' "\${COMPREPLY[@]}"`;
      return execFileSync('bash', ['-c', line], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    };

    it('bash completes commands, subcommands, options and their values from the command line’s definition', async () => {
      expect(await complete(['fleetpatch', 'dep'])).toEqual(['deployments']);
      expect(await complete(['fleetpatch', 'deployments', ''])).toEqual(['list', 'show', 'create', 'update', 'delete', 'pause', 'resume', 'run']);
      expect(await complete(['fleetpatch', 'deployments', 'run', 'ring-0', '--w'])).toEqual(['--watch']);
      expect(await complete(['fleetpatch', 'machines', 'list', '--compliance', 'N'])).toEqual(['NON_COMPLIANT', 'NOT_ASSESSED']);
      expect(await complete(['fleetpatch', 'machines', 'list', '-o', ''])).toEqual(['table', 'json', 'csv']);
      expect(await complete(['fleetpatch', 'enrollment-keys', 'c'])).toEqual(['create']);
    });
  });
});

/** A command in a pseudo-terminal (util-linux script), its output on stdout. */
function spawnScript(command: string, env: NodeJS.ProcessEnv) {
  return spawn('script', ['-qec', command, '/dev/null'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
}
