import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { buildFixtureMachine, fleetStackEnv, SupervisedAgent, type FixtureMachine } from '../support/fleet.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

const installedVersion = (machine: FixtureMachine, name: string) =>
  execFileSync('dpkg-query', ['--admindir', path.join(machine.root, 'var/lib/dpkg'), '-W', '-f', '${Version}', name], { encoding: 'utf8' });

type StepView = { name: string; phase: string; status: string; exitCode: number | null; message: string | null };
type MachineRunView = { machineName: string; status: string; rebootOutcome: string | null; error: string | null; stepResults: StepView[]; updates: Array<{ name: string; status: string; reason: string | null }>; jobStream: { edges: Array<{ node: { stream: string; line: string } }> } };
type RunView = { status: string; error: string | null; rings: Array<{ status: string }>; machineRuns: { edges: Array<{ node: MachineRunView }> } };
const RUN = `status error rings { status } machineRuns(first: 10) { edges { node { machineName status rebootOutcome error stepResults { name phase status exitCode message }
  updates { name status reason } jobStream(first: 500) { edges { node { stream line } } } } } }`;

/**
 * Script steps end to end: the server and the worker as processes, the real Temporal dev server,
 * bundled agents on apt fixture machines that run the scripts as they would on a machine (their
 * output in the job stream), install for real and reboot (simulated by the supervisor). A PRE
 * script that fails skips its machine's installs; a POST health check that fails halts the run at
 * the ring's gate, and resuming goes on with the next ring.
 */
describe('pre and post scripts on real agents', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-steps-'));
  let server: Spawned;
  let worker: Spawned;
  let url: string;
  let database: Database;
  let drop: () => Promise<void>;
  let operator: string;
  const agents: SupervisedAgent[] = [];

  async function query<T>(q: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await graphql<T>(url, q, { token: operator, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  }

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    operator = await tokenFor(database, 'ADMIN');
    const port = await freePort();
    const env = fleetStackEnv({ databaseUrl: fresh.url, temporalAddress: temporalSettings().address, port, taskQueue: `steps-${randomUUID()}` });
    url = `http://127.0.0.1:${port}/graphql`;
    server = spawnFleetpatch(['server'], env);
    worker = spawnFleetpatch(['worker'], env);
    await Promise.all([server.waitFor(/"msg":"API listening"/), worker.waitFor(/"msg":"worker polling"/)]);
  }, 240_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.kill()));
    await stop(worker);
    await stop(server);
    await database.close();
    await drop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('a failing PRE script skips its machine\'s installs; a failing POST health check halts the run, which resumes', async () => {
    const { createEnrollmentKey } = await query<{ createEnrollmentKey: { secret: string } }>('mutation { createEnrollmentKey(input: {description: "steps"}) { secret } }');
    const [canary, other] = await Promise.all([buildFixtureMachine(path.join(work, 'a'), 'apt', '-canary'), buildFixtureMachine(path.join(work, 'b'), 'apt', '-other')]);
    // What the scripts look at: the canary is unhealthy after its installs, the other may not be patched now.
    fs.writeFileSync(path.join(canary.root, 'etc/unhealthy'), 'the app did not come back\n');
    fs.writeFileSync(path.join(other.root, 'etc/no-patching'), 'change freeze\n');
    for (const machine of [canary, other]) agents.push(new SupervisedAgent(machine, url.replace('/graphql', ''), createEnrollmentKey.secret).start());
    type Listed = { machines: { edges: Array<{ node: { id: string; name: string; lastAssessedAt: string | null } }> } };
    const listed = await waitUntil(
      async () => (await query<Listed>('{ machines(first: 50) { edges { node { id name lastAssessedAt } } } }')).machines.edges.map((e) => e.node).filter((m) => m.lastAssessedAt),
      (ms) => ms.length === 2,
      120_000,
      'both machines assessed',
    );
    const id = (m: FixtureMachine) => listed.find((x) => x.name === m.name)!.id;
    const before = { canary: installedVersion(canary, 'demo-libssl'), other: installedVersion(other, 'demo-libssl') };

    const input = {
      name: 'scripts around the installs',
      osType: 'LINUX',
      machineIds: [id(canary), id(other)],
      classifications: ['CRITICAL', 'SECURITY'],
      excludePatterns: ['demo-broken'],
      windowMinutes: 60,
      rebootSetting: 'IF_REQUIRED',
      onDemandOnly: true,
      steps: [
        { name: 'drain', phase: 'PRE', script: { inline: 'echo "draining $FLEETPATCH_STEP_NAME on $(id -un)"\nif [ -e "$FLEETPATCH_ROOT/etc/no-patching" ]; then echo "change freeze" >&2; exit 3; fi\n', timeoutSeconds: 60 } },
        { name: 'health', phase: 'POST', onFailure: 'HALT_RUN', script: { inline: 'echo "checking health"\ntest ! -e "$FLEETPATCH_ROOT/etc/unhealthy"\n', interpreter: 'bash', timeoutSeconds: 60 } },
      ],
      rings: [{ name: 'canary', machineIds: [id(canary)], gate: { maxFailures: { value: 1, unit: 'COUNT' } } }, { name: 'rest', percent: 100 }],
    };
    const { createDeployment } = await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input });
    const runId = (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id })).runDeploymentNow.id;
    const read = async () => (await query<{ deploymentRun: RunView }>(`query($id: ID!) { deploymentRun(id: $id) { ${RUN} } }`, { id: runId })).deploymentRun;
    const machineRun = (v: RunView, m: FixtureMachine) => v.machineRuns.edges.map((e) => e.node).find((n) => n.machineName === m.name)!;

    const halted = await waitUntil(read, (v) => !['SCHEDULED', 'IN_PROGRESS'].includes(v.status), 180_000, 'the run to halt');
    expect(halted.status).toBe('HALTED');
    expect(halted.error).toMatch(/^canary: Post-step "health" failed: exited with code 1/);
    const first = machineRun(halted, canary);
    expect(first.stepResults.map((s) => [s.name, s.phase, s.status, s.exitCode])).toEqual([
      ['drain', 'PRE', 'SUCCEEDED', 0],
      ['health', 'POST', 'FAILED', 1],
    ]);
    // Installed for real between the two scripts; the script's own output is in the job stream.
    expect(first.updates.find((u) => u.name === 'demo-libssl')!.status).toBe('SUCCEEDED');
    expect(installedVersion(canary, 'demo-libssl')).not.toBe(before.canary);
    const stream = first.jobStream.edges.map((e) => e.node);
    expect(stream).toContainEqual({ stream: 'stdout', line: `draining drain on ${os.userInfo().username}` });
    expect(stream).toContainEqual({ stream: 'stdout', line: 'checking health' });
    expect(first.status).toBe('FAILED');
    // The POST script ran once the machine was back from its reboot.
    expect(first.rebootOutcome).toBe('REBOOTED');
    const lines = stream.map((l) => l.line);
    expect(lines.indexOf('checking health')).toBeGreaterThan(lines.findIndex((l) => l.endsWith('rebooting; waiting for the agent to come back.')));
    expect(machineRun(halted, other).status).toBe('PENDING');

    await query('mutation($id: ID!) { resumeDeploymentRun(id: $id) { id } }', { id: runId });
    const done = await waitUntil(read, (v) => !['IN_PROGRESS', 'HALTED'].includes(v.status), 180_000, 'the run to end after the resume');
    expect(done.rings.map((r) => r.status)).toEqual(['PROMOTED', 'DONE']);
    const second = machineRun(done, other);
    expect(second.stepResults.map((s) => [s.name, s.status, s.exitCode])).toEqual([
      ['drain', 'FAILED', 3],
      ['health', 'SUCCEEDED', 0],
    ]);
    const selected = second.updates.filter((u) => u.status !== 'NOT_SELECTED');
    expect(selected.map((u) => u.name)).toContain('demo-libssl');
    expect(new Set(selected.map((u) => `${u.status}: ${u.reason}`))).toEqual(new Set(['NOT_ATTEMPTED: Not attempted: Pre-step "drain" failed: exited with code 3.']));
    expect(second.jobStream.edges.map((e) => e.node)).toContainEqual({ stream: 'stderr', line: 'change freeze' });
    expect(installedVersion(other, 'demo-libssl')).toBe(before.other);
    expect(done.status).toBe('PARTIALLY_FAILED');
    // A batched run: the POST script went out as a job of its own from the run's advance, no machine ran in a workflow of its own.
    expect(await startedChildren(runId)).toBe(false);
  }, 420_000);

  it("PRE scripts only: a batched run (no workflow per machine) hands the agents jobs that carry them; a failed one skips its machine's installs, the other installs and reboots", async () => {
    const { createEnrollmentKey } = await query<{ createEnrollmentKey: { secret: string } }>('mutation { createEnrollmentKey(input: {description: "pre scripts"}) { secret } }');
    const [open, frozen] = await Promise.all([buildFixtureMachine(path.join(work, 'c'), 'apt', '-open'), buildFixtureMachine(path.join(work, 'd'), 'apt', '-frozen')]);
    fs.writeFileSync(path.join(frozen.root, 'etc/no-patching'), 'change freeze\n');
    for (const machine of [open, frozen]) agents.push(new SupervisedAgent(machine, url.replace('/graphql', ''), createEnrollmentKey.secret).start());
    type Listed = { machines: { edges: Array<{ node: { id: string; name: string; lastAssessedAt: string | null } }> } };
    const listed = await waitUntil(
      async () => (await query<Listed>('{ machines(first: 50) { edges { node { id name lastAssessedAt } } } }')).machines.edges.map((e) => e.node).filter((m) => m.lastAssessedAt),
      (ms) => [open, frozen].every((f) => ms.some((m) => m.name === f.name)),
      120_000,
      'both machines assessed',
    );
    const id = (m: FixtureMachine) => listed.find((x) => x.name === m.name)!.id;
    const before = { open: installedVersion(open, 'demo-libssl'), frozen: installedVersion(frozen, 'demo-libssl') };
    const input = {
      name: 'pre scripts only',
      osType: 'LINUX',
      machineIds: [id(open), id(frozen)],
      classifications: ['CRITICAL', 'SECURITY'],
      excludePatterns: ['demo-broken'],
      windowMinutes: 60,
      rebootSetting: 'IF_REQUIRED',
      onDemandOnly: true,
      steps: [{ name: 'drain', phase: 'PRE', script: { inline: 'echo "draining on $(id -un)"\nif [ -e "$FLEETPATCH_ROOT/etc/no-patching" ]; then echo "change freeze" >&2; exit 3; fi\n', timeoutSeconds: 60 } }],
    };
    const { createDeployment } = await query<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { input });
    const runId = (await query<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id })).runDeploymentNow.id;
    const read = async () => (await query<{ deploymentRun: RunView }>(`query($id: ID!) { deploymentRun(id: $id) { ${RUN} } }`, { id: runId })).deploymentRun;
    const machineRun = (v: RunView, m: FixtureMachine) => v.machineRuns.edges.map((e) => e.node).find((n) => n.machineName === m.name)!;
    const done = await waitUntil(read, (v) => !['SCHEDULED', 'IN_PROGRESS'].includes(v.status), 180_000, 'the run to end');

    const installed = machineRun(done, open);
    expect([installed.status, installed.rebootOutcome, installed.stepResults.map((s) => [s.name, s.phase, s.status, s.exitCode])]).toEqual(['SUCCEEDED', 'REBOOTED', [['drain', 'PRE', 'SUCCEEDED', 0]]]);
    expect(installed.updates.find((u) => u.name === 'demo-libssl')!.status).toBe('SUCCEEDED');
    expect(installedVersion(open, 'demo-libssl')).not.toBe(before.open);
    const lines = installed.jobStream.edges.map((e) => e.node);
    expect(lines).toContainEqual({ stream: 'stdout', line: `draining on ${os.userInfo().username}` });
    // The script ran inside the install job, before its updates; its result line once.
    expect(lines.filter((l) => l.line.endsWith('pre-step "drain" (script) SUCCEEDED: exit code 0.'))).toHaveLength(1);

    const skipped = machineRun(done, frozen);
    expect([skipped.status, skipped.error, skipped.stepResults.map((s) => [s.name, s.status, s.exitCode])]).toEqual([skipped.status, 'Not attempted: Pre-step "drain" failed: exited with code 3.', [['drain', 'FAILED', 3]]]);
    expect(skipped.status).not.toBe('FAILED');
    const selected = skipped.updates.filter((u) => u.status !== 'NOT_SELECTED');
    expect(new Set(selected.map((u) => `${u.status}: ${u.reason}`))).toEqual(new Set(['NOT_ATTEMPTED: Not attempted: Pre-step "drain" failed: exited with code 3.']));
    expect(skipped.jobStream.edges.map((e) => e.node)).toContainEqual({ stream: 'stderr', line: 'change freeze' });
    expect(installedVersion(frozen, 'demo-libssl')).toBe(before.frozen);

    // The run's advance did it all: no machine run has a workflow of its own.
    const [{ n }] = await database.sql<[{ n: number }]>`select count(*)::int as n from run_logs l join machine_runs m on m.id = l.machine_run_id where m.run_id = ${runId} and l.line like '%post-step script(s) sent%'`;
    expect(n).toBe(0);
    expect(await startedChildren(runId)).toBe(false);
  }, 420_000);

  /** Whether the run's workflow started a child workflow (a machine run of its own). */
  async function startedChildren(runId: string): Promise<boolean> {
    const connection = await Connection.connect({ address: temporalSettings().address });
    try {
      const client = new Client({ connection, namespace: 'default' });
      const [row] = await database.sql<[{ workflow_id: string }]>`select workflow_id from deployment_runs where id = ${runId}`;
      const history = await client.workflow.getHandle(row!.workflow_id).fetchHistory();
      return history.events?.some((e) => e.startChildWorkflowExecutionInitiatedEventAttributes) ?? false;
    } finally {
      await connection.close();
    }
  }
});
