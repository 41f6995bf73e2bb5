import fs from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAssessment } from '../../src/agent/assess.js';
import { parseScriptOutput, assessmentOf } from '../../src/agent/backends/windows.js';
import { assessDocument } from '../../src/agent/backends/windowsDocument.js';
import type { PackageBackend } from '../../src/agent/backends/types.js';
import { AgentClient } from '../../src/agent/client.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { machineFacts } from '../../testkit/agentFacts.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';
import { enrollMachine } from '../support/machines.js';

// A Windows Server machine through the real agent endpoint, GraphQL and Postgres, with the
// assessments its agent makes from recorded documents of windows.ps1 (no Windows machine here).

const FIXTURES = new URL('../fixtures/windows/', import.meta.url).pathname;

/** The Windows backend's parsing on a recorded document, as the agent runs it. */
function recordedBackend(file: string): PackageBackend {
  return {
    name: 'windows',
    assess: async () => assessmentOf(parseScriptOutput(assessDocument, fs.readFileSync(`${FIXTURES}${file}`, 'utf8'))),
    installUpdate: () => Promise.reject(new Error('not in this test')),
    databaseFingerprint: async () => 'never',
  };
}

describe('a Windows machine', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let admin: string;
  let base: string;
  let key: string;

  beforeAll(async () => {
    ({ api, database, close } = await startApiOnFreshDatabase());
    admin = await tokenFor(database, 'ADMIN');
    base = api.url.replace('/graphql', '');
    const created = await graphql<{ createEnrollmentKey: { secret: string } }>(api.url, 'mutation { createEnrollmentKey(input: { description: "windows", maxUses: 1 }) { secret } }', { token: admin });
    expect(created.errors).toBeUndefined();
    key = created.data!.createEnrollmentKey.secret;
  });

  afterAll(async () => {
    await close();
  });

  it('is refused at enrollment when it runs a client edition, without using up the key', async () => {
    const agent = new AgentClient(base);
    await expect(agent.enroll(key, machineFacts({ osType: 'WINDOWS', osName: 'Windows 11 Pro', packageManager: 'windows' }))).rejects.toMatchObject({
      status: 403,
      code: 'FORBIDDEN',
      message: 'Windows 11 Pro is a Windows client edition, and fleetpatch manages Windows Server only: client operating systems are not supported. Enroll a Windows Server machine instead.',
    });
    expect(Number((await database.sql`select count(*)::int as n from machines`)[0]!.n)).toBe(0);
  });

  it('enrolls as a server, is assessed twice a day, and shows its Windows classifications and pending reboot', async () => {
    const enrolled = await enrollMachine(base, key, { facts: { hostname: `win-${randomUUID().slice(0, 6)}`, osType: 'WINDOWS' } });
    const { agent } = enrolled;
    // The seed: a full scan twice a day, and every 15 minutes a look at the last install time.
    expect(enrolled.settings).toMatchObject({ assessmentIntervalSeconds: 43_200, packageDatabaseCheckSeconds: 900 });

    const report = await runAssessment(recordedBackend('assess-wsus.json'), { root: '/', env: {}, workDir: '/nonexistent' }, 'STARTUP');
    expect(report.error).toBeNull();
    expect(await agent.sendReport(report)).toEqual({ stored: true });

    const answer = await graphql<{ machine: Record<string, unknown> & { pendingUpdates: { edges: Array<{ node: { name: string; classification: string } }> } } }>(
      api.url,
      `query($id: ID!) { machine(id: $id) { osType compliance criticalCount securityCount otherCount rebootPending pendingUpdates { edges { node { name classification } } } } }`,
      { token: admin, variables: { id: enrolled.machineId } },
    );
    expect(answer.errors).toBeUndefined();
    const machine = answer.data!.machine;
    expect(machine).toMatchObject({ osType: 'WINDOWS', compliance: 'NON_COMPLIANT', criticalCount: 1, securityCount: 3, otherCount: 7, rebootPending: true });
    const pending = machine.pendingUpdates.edges.map((e) => e.node);
    expect(new Set(pending.map((u) => u.classification))).toEqual(
      new Set(['CRITICAL', 'SECURITY', 'UPDATE_ROLLUP', 'FEATURE_PACK', 'SERVICE_PACK', 'DEFINITION', 'TOOLS', 'UPDATES']),
    );
    expect(pending[0]).toEqual({ name: 'KB5032198', classification: 'CRITICAL' });

    // A WSUS server it cannot reach: the machine says so, and keeps its last list.
    const failed = await runAssessment(recordedBackend('assess-wsus-unreachable.json'), { root: '/', env: {}, workDir: '/nonexistent' }, 'SCHEDULE');
    await agent.sendReport(failed);
    const after = await graphql<{ machine: { lastAssessmentError: { message: string } | null; pendingUpdates: { totalCount: number } } }>(
      api.url,
      `query($id: ID!) { machine(id: $id) { lastAssessmentError { message } pendingUpdates { totalCount } } }`,
      { token: admin, variables: { id: enrolled.machineId } },
    );
    expect(after.data!.machine.lastAssessmentError!.message).toContain('Windows Update could not search WSUS http://wsus.corp.example:8530');
    expect(after.data!.machine.pendingUpdates.totalCount).toBe(11);
  });
});
