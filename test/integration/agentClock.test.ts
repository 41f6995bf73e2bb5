import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AssessmentReport } from '../../src/agent/protocol.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';
import { enrollMachine, enrollmentKey } from '../support/machines.js';

const HOUR = 3600_000;

interface MachineView {
  compliance: string;
  criticalAndSecurityCount: number;
  lastAssessedAt: string | null;
  clockOffsetSeconds: number | null;
  warnings: string[];
  assessments: { edges: Array<{ node: { id: string; finishedAt: string; assessedAt: string } }> };
}

/**
 * An agent's clock cannot freeze its machine (issue 20, item 9): reports are placed on the server's
 * clock, the agent's times stay as information, and a clock far off is a machine warning. Requests
 * go out by hand here, with the Date header an agent with that clock would send (or none, as the
 * probe that found the problem sent).
 */
describe("an agent's clock", () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let admin: string;
  let base: string;
  let enrollKey: string;

  beforeAll(async () => {
    ({ api, database, base, close } = await startApiOnFreshDatabase());
    admin = await tokenFor(database, 'ADMIN');
    enrollKey = await enrollmentKey(database, 'clocks');
  });

  afterAll(() => close());

  const enroll = () => enrollMachine(base, enrollKey);

  /** One agent request with the given Date header (or none). */
  function send(credential: string, path: string, body: unknown, date: Date | null): Promise<number> {
    const json = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const request = http.request(`${base}/agent/v1${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}`, 'content-length': Buffer.byteLength(json), ...(date ? { date: date.toUTCString() } : {}) },
      });
      request.on('response', (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      });
      request.on('error', reject);
      request.end(json);
    });
  }

  const reportAt = (finishedAt: Date, critical: number): AssessmentReport =>
    assessmentReport(
      Array.from({ length: critical }, (_, i) => pendingUpdate({ name: `crit-${i}`, classification: 'CRITICAL', severity: 'CRITICAL' })),
      { startedAt: new Date(finishedAt.getTime() - 1000).toISOString(), finishedAt: finishedAt.toISOString() },
    );

  async function machine(id: string): Promise<MachineView> {
    const response = await graphql<{ machine: MachineView }>(
      api.url,
      'query($id: ID!) { machine(id: $id) { compliance criticalAndSecurityCount lastAssessedAt clockOffsetSeconds warnings assessments(first: 10) { edges { node { id finishedAt assessedAt } } } } }',
      { token: admin, variables: { id } },
    );
    expect(response.errors).toBeUndefined();
    return response.data!.machine;
  }

  it('a report "finished in 2099" does not freeze the machine: the honest reports after it become its state, and the clock is a warning until the agent shows it right', async () => {
    const { machineId, credential, agent } = await enroll();
    const future = reportAt(new Date('2099-01-01T00:00:00Z'), 2);
    // As the probe sent it: no Date header.
    expect(await send(credential, '/assessments', future, null)).toBe(201);
    let view = await machine(machineId);
    expect(view).toMatchObject({ compliance: 'NON_COMPLIANT', criticalAndSecurityCount: 2 });
    expect(Date.parse(view.lastAssessedAt!)).toBeLessThanOrEqual(Date.now());
    expect(view.clockOffsetSeconds).toBeGreaterThan(70 * 365 * 86_400);
    expect(view.warnings).toEqual([expect.stringMatching(/^The machine's clock is about 7\d years ahead of the server's/)]);

    // The next honest report, and the one after it, each become the machine's state.
    const honest = reportAt(new Date(), 0);
    expect(await agent.sendReport(honest)).toEqual({ stored: true });
    view = await machine(machineId);
    expect(view).toMatchObject({ compliance: 'COMPLIANT', criticalAndSecurityCount: 0 });
    const later = reportAt(new Date(), 1);
    expect(await agent.sendReport(later)).toEqual({ stored: true });
    view = await machine(machineId);
    expect(view).toMatchObject({ compliance: 'NON_COMPLIANT', criticalAndSecurityCount: 1 });
    // The history is in the server's order; the agent's times are kept as they were sent.
    expect(view.assessments.edges.map((e) => e.node.id)).toEqual([later.id, honest.id, future.id]);
    expect(view.assessments.edges[2]!.node.finishedAt).toBe('2099-01-01T00:00:00.000Z');

    // The agent's check-in carries its clock, which is right: the warning goes.
    await agent.checkIn(machineFacts());
    view = await machine(machineId);
    expect(Math.abs(view.clockOffsetSeconds!)).toBeLessThan(5);
    expect(view.warnings).toEqual([]);
  });

  it('an agent whose clock is 5 hours behind: its fresh reports count as fresh, and its check-ins say how far behind', async () => {
    const { machineId, credential } = await enroll();
    const agentNow = () => new Date(Date.now() - 5 * HOUR);
    expect(await send(credential, '/checkin', { facts: machineFacts() }, agentNow())).toBe(200);
    expect(await send(credential, '/assessments', reportAt(agentNow(), 1), agentNow())).toBe(201);
    const view = await machine(machineId);
    // By its own times the report is 5 hours old, past the 3 hours after which a machine is NOT_ASSESSED.
    expect(view).toMatchObject({ compliance: 'NON_COMPLIANT', criticalAndSecurityCount: 1 });
    expect(Date.now() - Date.parse(view.lastAssessedAt!)).toBeLessThan(60_000);
    expect(view.clockOffsetSeconds).toBeLessThan(-5 * 3600 + 60);
    expect(view.warnings).toEqual([expect.stringMatching(/^The machine's clock is about 5 hours behind the server's/)]);
  });

  it('a report that waited in the spool of an agent a day ahead counts as old as it is: it stays history behind a fresher one', async () => {
    const { machineId, credential } = await enroll();
    const agentNow = () => new Date(Date.now() + 24 * HOUR);
    const fresh = reportAt(agentNow(), 0);
    expect(await send(credential, '/assessments', fresh, agentNow())).toBe(201);
    const spooled = reportAt(new Date(agentNow().getTime() - 4 * HOUR), 3);
    expect(await send(credential, '/assessments', spooled, agentNow())).toBe(201);
    const view = await machine(machineId);
    expect(view).toMatchObject({ compliance: 'COMPLIANT', criticalAndSecurityCount: 0 });
    const [first, second] = view.assessments.edges.map((e) => e.node);
    expect([first!.id, second!.id]).toEqual([fresh.id, spooled.id]);
    // 4 hours before its arrival on the server's clock, though the agent wrote tomorrow's date.
    expect(Date.parse(first!.assessedAt) - Date.parse(second!.assessedAt)).toBeGreaterThan(4 * HOUR - 5000);
    expect(Date.parse(second!.assessedAt)).toBeLessThan(Date.now() - 4 * HOUR + 60_000);
  });
});
