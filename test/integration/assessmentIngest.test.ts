import { randomUUID } from 'node:crypto';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ServerRefusal } from '../../src/agent/client.js';
import { AGENT_API_PREFIX, type AssessmentReport } from '../../src/agent/protocol.js';
import { AssessmentIngestQueue } from '../../src/api/agent/assessmentIngestQueue.js';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { prepareReport, storeAssessmentReports } from '../../src/db/assessmentIngest.js';
import { createFleetPubSub, type FleetPubSub } from '../../src/events/pubsub.js';
import { assessmentReport, pendingUpdate } from '../../testkit/agentFacts.js';
import { connectTestDatabase, freshDatabase, graphql, startApiOnFreshDatabase, tokenFor } from '../support/env.js';
import { enrollMachine, enrollMachines, enrollmentKey } from '../support/machines.js';
import { subscriptionLive } from '../support/signals.js';

/** A report whose classification mix depends on i: i critical, 2 security, i % 3 other, and on Windows-like machines (i % 4 == 0) one TOOLS update. */
function reportFor(i: number, overrides: Partial<AssessmentReport> = {}): AssessmentReport {
  const updates = [
    ...Array.from({ length: i % 5 }, (_, k) => pendingUpdate({ name: `crit-${k}`, classification: 'CRITICAL', severity: 'CRITICAL', cveIds: [`CVE-2026-${k}`] })),
    pendingUpdate({ name: 'sudo', classification: 'SECURITY', advisoryIds: ['DSA-1', 'DSA-2'] }),
    pendingUpdate({ name: 'openssl', classification: 'SECURITY', arch: 'amd64' }),
    ...Array.from({ length: i % 3 }, (_, k) => pendingUpdate({ name: `other-${k}`, classification: 'OTHER', installedVersion: null })),
    ...(i % 4 === 0 ? [pendingUpdate({ name: 'KB5000001', classification: 'TOOLS' })] : []),
  ];
  return assessmentReport(updates, overrides);
}

function expectedCounts(i: number) {
  const critical = i % 5;
  const tools = i % 4 === 0 ? 1 : 0;
  return { critical_count: critical, security_count: 2, other_count: (i % 3) + tools, tools_count: tools, rows: critical + 2 + (i % 3) + tools };
}

describe('assessment reports stored in groups', () => {
  let api: ApiServer;
  let database: Database;
  let close: () => Promise<void>;
  let admin: string;
  let base: string;
  let enrollKey: string;

  beforeAll(async () => {
    ({ api, database, base, close } = await startApiOnFreshDatabase());
    admin = await tokenFor(database, 'ADMIN');
    enrollKey = await enrollmentKey(database, 'ingest');
  });

  afterAll(() => close());


  it('stores many reports sent at once by many machines, each answered after it is in the database, with its counts and its event', async () => {
    const machines = await enrollMachines(base, enrollKey, 40);
    const client = createClient({ url: api.url.replace('http', 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${admin}` }, retryAttempts: 0 });
    const announced = new Map<string, { compliance: string; criticalAndSecurityCount: number; otherCount: number }>();
    let live = false;
    const allAnnounced = new Promise<void>((resolve, reject) => {
      client.subscribe<{ machineChanged: { id: string; compliance: string; criticalAndSecurityCount: number; otherCount: number } }>(
        { query: 'subscription { machineChanged { id compliance criticalAndSecurityCount otherCount } }' },
        {
          next: (message) => {
            live = true;
            const m = message.data?.machineChanged;
            if (!m || m.compliance === 'NOT_ASSESSED') return;
            announced.set(m.id, m);
            if (machines.every((x) => announced.has(x.machineId))) resolve();
          },
          error: reject,
          complete: () => undefined,
        },
      );
    });
    // A report sent before the server listens for this subscription would be missed.
    const pubsub = await createFleetPubSub(database.sql);
    await subscriptionLive(() => pubsub.publish('machineChanged', { machineId: machines[0]!.machineId }), () => live);

    const reports = machines.map((_, i) => reportFor(i));
    // Each answer is checked against the database the moment it arrives: an agent that got it may delete its spool.
    const checked = await Promise.all(
      machines.map(async ({ agent, machineId }, i) => {
        const answer = await agent.sendReport(reports[i]!);
        const [row] = await database.sql`select count(*)::int as n from pending_updates where assessment_id = ${reports[i]!.id}`;
        return { answer, rows: row!.n as number, machineId };
      }),
    );
    for (const [i, c] of checked.entries()) {
      expect(c.answer).toEqual({ stored: true });
      expect(c.rows).toBe(expectedCounts(i).rows);
    }

    const stored = await database.sql`
      select m.id, m.latest_assessment_id, m.critical_count, m.security_count, m.other_count, m.tools_count, a.critical_count as a_critical
      from machines m join assessments a on a.id = m.latest_assessment_id
      where m.id = any(${machines.map((m) => m.machineId)}::uuid[])`;
    expect(stored).toHaveLength(40);
    const byId = new Map(stored.map((r) => [r.id as string, r]));
    machines.forEach(({ machineId }, i) => {
      const { rows: _rows, ...counts } = expectedCounts(i);
      expect(byId.get(machineId)).toMatchObject({ latest_assessment_id: reports[i]!.id, a_critical: counts.critical_count, ...counts });
    });

    await allAnnounced;
    machines.forEach(({ machineId }, i) => {
      const c = expectedCounts(i);
      expect(announced.get(machineId)).toEqual({ id: machineId, compliance: 'NON_COMPLIANT', criticalAndSecurityCount: c.critical_count + 2, otherCount: c.other_count });
    });
    await client.dispose();

    // The fleet summary sums the machines' own counts: it agrees with the rows.
    const summary = await graphql<{ complianceSummary: { pendingByClassification: Array<{ classification: string; updateCount: number; machineCount: number }> } }>(
      api.url,
      '{ complianceSummary { pendingByClassification { classification updateCount machineCount } } }',
      { token: admin },
    );
    const [byClass] = await database.sql`
      select count(*) filter (where classification = 'TOOLS')::int as tools, count(*) filter (where classification = 'CRITICAL')::int as critical
      from pending_updates p join machines m on m.latest_assessment_id = p.assessment_id where m.removed_at is null`;
    const tools = summary.data!.complianceSummary.pendingByClassification.find((c) => c.classification === 'TOOLS');
    expect(tools?.updateCount).toBe(byClass!.tools);
  });

  it('stores a report sent twice at the same moment once: one answer stored, the other not', async () => {
    const { agent, machineId } = await enrollMachine(base, enrollKey);
    const report = reportFor(3);
    const answers = await Promise.all([agent.sendReport(report), agent.sendReport(report), agent.sendReport(report)]);
    expect(answers.filter((a) => a.stored)).toHaveLength(1);
    expect(answers.filter((a) => !a.stored)).toHaveLength(2);
    const [row] = await database.sql`select count(*)::int as n from assessments where machine_id = ${machineId}`;
    expect(row!.n).toBe(1);
    const [rows] = await database.sql`select count(*)::int as n from pending_updates where assessment_id = ${report.id}`;
    expect(rows!.n).toBe(expectedCounts(3).rows);
  });

  it('refuses a report of a removed machine and stores nothing of it', async () => {
    const { agent, machineId } = await enrollMachine(base, enrollKey);
    await graphql(api.url, 'mutation($id: ID!) { removeMachine(machineId: $id) }', { token: admin, variables: { id: machineId } });
    await expect(agent.sendReport(reportFor(1))).rejects.toBeInstanceOf(ServerRefusal);
    const [row] = await database.sql`select count(*)::int as n from assessments where machine_id = ${machineId}`;
    expect(row!.n).toBe(0);
  });

  it('answers a report with a NUL character 400 and stores the reports sent with it', async () => {
    const machines = await enrollMachines(base, enrollKey, 3);
    const bad = reportFor(1, {});
    bad.result!.updates[0]!.name = 'lib\u0000evil';
    const [good1, good2] = [reportFor(2), reportFor(4)];
    // Sent as it is (the agent itself writes a NUL as U+FFFD, below): JSON carries it as \u0000.
    const sentRaw = async (report: AssessmentReport) => {
      const response = await fetch(`${base}${AGENT_API_PREFIX}/assessments`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${machines[1]!.credential}`, date: new Date().toUTCString() },
        body: JSON.stringify(report),
      });
      return { status: response.status, body: (await response.json()) as { error?: { message: string } } };
    };
    const [first, raw, second] = await Promise.all([machines[0]!.agent.sendReport(good1), sentRaw(bad), machines[2]!.agent.sendReport(good2)]);
    expect(first).toEqual({ stored: true });
    expect(second).toEqual({ stored: true });
    expect(raw.status).toBe(400);
    expect(raw.body.error?.message).toContain('NUL');
    const ids = (await database.sql`select id::text from assessments where id = any(${[good1.id, bad.id, good2.id]}::uuid[])`).map((r) => r.id as string);
    expect(ids.sort()).toEqual([good1.id, good2.id].sort());

    // The agent sends the same report with U+FFFD in place of the NUL, and it is stored.
    expect(await machines[1]!.agent.sendReport(bad)).toEqual({ stored: true });
    const [stored] = await database.sql`select name from pending_updates where assessment_id = ${bad.id} order by name limit 1`;
    expect(stored!.name).toBe('lib\uFFFDevil');
  });
});

describe('a group of reports in the database', () => {
  let database: Database;
  let drop: () => Promise<void>;
  let machineIds: string[];

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    machineIds = (
      await database.sql`
        insert into machines (name, os_type, os_name, os_version, environment)
        select 'group-' || i, 'LINUX', 'Debian GNU/Linux', '12', 'ON_PREMISES' from generate_series(1, 6) as i
        returning id::text`
    ).map((r) => r.id as string);
  });

  afterAll(async () => {
    await database.close();
    await drop();
  });

  const queue = () => new AssessmentIngestQueue((group) => storeAssessmentReports(database.sql, group));

  it('fails only the report the database refuses; the others of its group are stored', async () => {
    const ingest = queue();
    const gone = randomUUID(); // a machine deleted meanwhile: its assessment violates the foreign key
    const reports = [reportFor(1), reportFor(2), reportFor(3)];
    // Submitted in the same turn: one group.
    const outcomes = await Promise.allSettled([
      ingest.submit(prepareReport(machineIds[0]!, reports[0]!)),
      ingest.submit(prepareReport(gone, reports[1]!)),
      ingest.submit(prepareReport(machineIds[1]!, reports[2]!)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const stored = (await database.sql`select id::text from assessments where id = any(${reports.map((r) => r.id)}::uuid[])`).map((r) => r.id as string);
    expect(stored.sort()).toEqual([reports[0]!.id, reports[2]!.id].sort());
    const [latest] = await database.sql`select latest_assessment_id::text as id, critical_count from machines where id = ${machineIds[1]!}`;
    expect(latest).toEqual({ id: reports[2]!.id, critical_count: 3 });
  });

  it('stores a report id twice in one group once, and keeps the newest report of a machine current whatever the order', async () => {
    const ingest = queue();
    const at = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();
    const newest = reportFor(4, { startedAt: at(2), finishedAt: at(1) });
    const older = reportFor(2, { startedAt: at(20), finishedAt: at(10) });
    const outcomes = await Promise.all([
      ingest.submit(prepareReport(machineIds[2]!, newest)),
      ingest.submit(prepareReport(machineIds[2]!, older)),
      ingest.submit(prepareReport(machineIds[2]!, newest)),
    ]);
    expect(outcomes).toEqual([{ stored: true }, { stored: true }, { stored: false }]);
    const [machine] = await database.sql`select latest_assessment_id::text as id, critical_count, last_assessed_at from machines where id = ${machineIds[2]!}`;
    expect(machine).toMatchObject({ id: newest.id, critical_count: 4 });
    expect(new Date(machine!.last_assessed_at as string).toISOString()).toBe(newest.finishedAt);
    // Resent later, alone: already stored.
    expect(await ingest.submit(prepareReport(machineIds[2]!, older))).toEqual({ stored: false });
  });

  it('records a failed assessment beside the last good one, and marks the commands reports answer as completed', async () => {
    const ingest = queue();
    const [command] = await database.sql`insert into agent_commands (machine_id, kind) values (${machineIds[3]!}, 'ASSESS') returning id::text`;
    const good = reportFor(1, { commandId: command!.id as string });
    await ingest.submit(prepareReport(machineIds[3]!, good));
    const failed = assessmentReport([], { result: null, error: { code: 'APT_LOCKED', message: 'dpkg is locked', output: null } });
    const outcomes = await Promise.all([ingest.submit(prepareReport(machineIds[3]!, failed)), ingest.submit(prepareReport(machineIds[4]!, reportFor(2)))]);
    expect(outcomes).toEqual([{ stored: true }, { stored: true }]);
    const [machine] = await database.sql`select latest_assessment_id::text as id, last_assessment_error from machines where id = ${machineIds[3]!}`;
    expect(machine).toEqual({ id: good.id, last_assessment_error: { code: 'APT_LOCKED', message: 'dpkg is locked', at: new Date(failed.finishedAt).toISOString() } });
    const [answered] = await database.sql`select completed_at from agent_commands where id = ${command!.id as string}`;
    expect(answered!.completed_at).not.toBeNull();
  });

  it('stores every character of a text field as sent, however COPY would read it', async () => {
    const ingest = queue();
    const awkward = ['tab\there', 'line\nbreak\r\nend', 'back\\slash \\N \\.', 'quote " brace { } comma , space ', 'NULL', 'é ünïcode ✓ 𝄞', 'lone \ud800 surrogate'];
    const updates = [
      pendingUpdate({ name: awkward[0]!, arch: null, installedVersion: null, availableVersion: awkward[1]!, severity: 'IMPORTANT', repository: null, advisoryIds: awkward, cveIds: ['', 'x'] }),
      pendingUpdate({ name: awkward[2]!, arch: awkward[3]!, installedVersion: awkward[4]!, availableVersion: awkward[5]!, repository: awkward[6]!, rebootSuggested: true }),
      // The same name and arch twice: stored once, as first listed.
      pendingUpdate({ name: 'twice', arch: 'amd64', availableVersion: '1' }),
      pendingUpdate({ name: 'twice', arch: 'amd64', availableVersion: '2' }),
    ];
    const report = assessmentReport(updates);
    expect(await ingest.submit(prepareReport(machineIds[5]!, report))).toEqual({ stored: true });
    const rows = await database.sql`
      select name, arch, installed_version, available_version, severity, advisory_ids, cve_ids, reboot_suggested, repository
      from pending_updates where assessment_id = ${report.id} order by name`;
    const replaced = (text: string) => text.replace('\ud800', '\ufffd');
    expect(rows).toEqual(
      [
        { name: awkward[2], arch: awkward[3], installed_version: awkward[4], available_version: awkward[5], severity: null, advisory_ids: [], cve_ids: [], reboot_suggested: true, repository: replaced(awkward[6]!) },
        { name: awkward[0], arch: '', installed_version: null, available_version: awkward[1], severity: 'IMPORTANT', advisory_ids: awkward.map(replaced), cve_ids: ['', 'x'], reboot_suggested: false, repository: null },
        { name: 'twice', arch: 'amd64', installed_version: '1.0-1', available_version: '1', severity: null, advisory_ids: [], cve_ids: [], reboot_suggested: false, repository: 'Debian:12/stable' },
      ].sort((a, b) => (a.name! < b.name! ? -1 : 1)),
    );
  });

  it('stores two updates whose names differ only in a lone surrogate as one, the first listed (both are the same name once stored)', async () => {
    const ingest = queue();
    const report = assessmentReport([
      pendingUpdate({ name: 'lib\ud800x', arch: 'amd64', availableVersion: '1' }),
      pendingUpdate({ name: 'lib\udc00x', arch: 'amd64', availableVersion: '2' }),
      pendingUpdate({ name: 'lib\ufffdx', arch: 'amd64', availableVersion: '3' }),
      pendingUpdate({ name: 'lib\ud800x', arch: 'i386\udfff', availableVersion: '4' }),
      pendingUpdate({ name: 'lib\udc00x', arch: 'i386\ud800', availableVersion: '5' }),
    ]);
    expect(await ingest.submit(prepareReport(machineIds[1]!, report))).toEqual({ stored: true });
    const rows = await database.sql`select name, arch, available_version from pending_updates where assessment_id = ${report.id} order by arch`;
    expect(rows).toEqual([
      { name: 'lib\ufffdx', arch: 'amd64', available_version: '1' },
      { name: 'lib\ufffdx', arch: 'i386\ufffd', available_version: '4' },
    ]);
  });

  it('fails a report whose pending updates PostgreSQL refuses, stores the rest of its group, and goes on storing', async () => {
    // A rule of this test's database only: no PostgreSQL rule refuses the rows of a report the endpoint accepts.
    await database.sql`alter table pending_updates add constraint refuses_a_name check (name <> 'refused-by-copy')`;
    try {
      const ingest = queue();
      const refused = assessmentReport([pendingUpdate({ name: 'refused-by-copy' })]);
      const [good, bad] = await Promise.allSettled([ingest.submit(prepareReport(machineIds[0]!, reportFor(1))), ingest.submit(prepareReport(machineIds[1]!, refused))]);
      expect(good).toEqual({ status: 'fulfilled', value: { stored: true } });
      expect(bad).toMatchObject({ status: 'rejected', reason: { message: expect.stringContaining('refused the pending updates') } });
      expect(await database.sql`select id from assessments where id = ${refused.id}`).toHaveLength(0);
      // The queue and the connections it used still store reports.
      expect(await Promise.all(Array.from({ length: 4 }, (_, i) => ingest.submit(prepareReport(machineIds[i]!, reportFor(i)))))).toEqual(Array.from({ length: 4 }, () => ({ stored: true })));
    } finally {
      await database.sql`alter table pending_updates drop constraint refuses_a_name`;
    }
  });

  it('records the first sighting of an update in each database, however many this process has seen elsewhere', async () => {
    const report = () => assessmentReport([pendingUpdate({ name: 'first-sighting', availableVersion: '7.1', classification: 'SECURITY', severity: 'LOW' })]);
    expect(await storeAssessmentReports(database.sql, [prepareReport(machineIds[0]!, report())])).toEqual([{ stored: true }]);
    // Seen again here: nothing more to record.
    expect(await storeAssessmentReports(database.sql, [prepareReport(machineIds[1]!, report())])).toEqual([{ stored: true }]);
    const other = await freshDatabase();
    const elsewhere = connectTestDatabase(other.url);
    try {
      const [machine] = await elsewhere.sql`insert into machines (name, os_type, os_name, os_version, environment) values ('elsewhere', 'LINUX', 'Debian GNU/Linux', '12', 'ON_PREMISES') returning id::text`;
      expect(await storeAssessmentReports(elsewhere.sql, [prepareReport(machine!.id as string, report())])).toEqual([{ stored: true }]);
      for (const sql of [database.sql, elsewhere.sql]) {
        expect(await sql`select classification, severity from update_first_seen where name = 'first-sighting' and version = '7.1'`).toEqual([{ classification: 'SECURITY', severity: 'LOW' }]);
      }
    } finally {
      await elsewhere.close();
      await other.drop();
    }
  });

  it('keeps pending updates tied to an assessment without a foreign key: refuses strays, deletes them with it', async () => {
    const stray = `insert into pending_updates (assessment_id, machine_id, name, available_version, classification) values ('${randomUUID()}', '${machineIds[0]!}', 'stray', '1', 'OTHER')`;
    await expect(database.sql.unsafe(stray)).rejects.toMatchObject({ code: '23503' });
    const report = reportFor(4);
    const ingest = queue();
    await ingest.submit(prepareReport(machineIds[4]!, report));
    await expect(database.sql`update pending_updates set assessment_id = ${randomUUID()} where assessment_id = ${report.id}`).rejects.toMatchObject({ code: '23503' });
    // Deleting the machine deletes its assessments (a foreign key) and their pending updates (a trigger).
    await database.sql`delete from machines where id = ${machineIds[4]!}`;
    const [left] = await database.sql`select count(*)::int as n from pending_updates where assessment_id = ${report.id}`;
    expect(left!.n).toBe(0);
    const [others] = await database.sql`select count(*)::int as n from pending_updates`;
    expect(others!.n).toBeGreaterThan(0);
  });
});

describe('events published together', () => {
  it('reach the subscribers of another process each as if published alone, in order, however many', async () => {
    const fresh = await freshDatabase();
    const [publisher, subscriber] = [connectTestDatabase(fresh.url), connectTestDatabase(fresh.url)];
    try {
      const [from, to] = [await createFleetPubSub(publisher.sql), await createFleetPubSub(subscriber.sql)];
      const machineIds = Array.from({ length: 300 }, () => randomUUID()); // about 20 KB of events: several NOTIFYs
      const received: string[] = [];
      const progress: unknown[] = [];
      const changes = to.subscribe('machineChanged')[Symbol.asyncIterator]();
      const runEvents = to.subscribe('deploymentRunProgress', 'run-1')[Symbol.asyncIterator]();
      const allChanges = (async () => {
        while (received.length < machineIds.length) received.push(((await changes.next()).value as { machineId: string }).machineId);
      })();
      const oneProgress = runEvents.next().then((r) => progress.push(r.value));
      const event = { kind: 'RUN' as const, machineRunId: null, updateNames: [], lineIds: null };
      const events: Array<Parameters<FleetPubSub['publish']>> = [...machineIds.map((machineId): Parameters<FleetPubSub['publish']> => ['machineChanged', { machineId }]), ['deploymentRunProgress', 'run-1', event]];
      // Both pubsubs listen once created, and both subscriptions from their first next(): nothing to wait for.
      from.publishMany(events);
      await Promise.all([allChanges, oneProgress]);
      expect(received).toEqual(machineIds);
      expect(progress).toEqual([event]);
      await changes.return?.();
      await runEvents.return?.();
    } finally {
      await publisher.close();
      await subscriber.close();
      await fresh.drop();
    }
  });
});
