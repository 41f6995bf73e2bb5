import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { insertDeployment } from '../../src/db/deployments.js';
import { serverSecret } from '../../src/db/serverSecrets.js';
import { createApiToken, revokeApiToken } from '../../src/db/tokens.js';
import { EXPORT_COLUMNS } from '../../src/exports/format.js';
import { signExportLink } from '../../src/exports/links.js';
import { createLogger } from '../../src/logger.js';
import { connectTestDatabase, freshDatabase, graphql, startTestApi, temporalSettings, tokenFor } from '../support/env.js';

// Exports over real HTTP from a real API on a fleet of 10,000 machines written straight into
// PostgreSQL (30 pending updates each: 300,000 missing-update rows).

const MACHINES = 10_000;

// A full collection on demand, to measure what is held rather than what is not collected yet.
v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const UPDATES_PER_MACHINE = 30;

describe('exports', () => {
  let api: ApiServer;
  let database: Database;
  let drop: () => Promise<void>;
  let viewer: string;
  const logLines: string[] = [];

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    const logger = createLogger({ level: 'info', format: 'json', destination: new Writable({ write: (chunk, _e, done) => (logLines.push(String(chunk)), done()) }) as never });
    api = await startTestApi(temporalSettings(), { databaseUrl: fresh.url, logger });
    viewer = await tokenFor(database, 'VIEWER');
    await database.sql.unsafe(`
      insert into machines (id, name, os_type, os_name, os_version, environment, tags, package_manager, credential_hash, last_seen_at, last_assessed_at, critical_count, security_count, other_count)
      select ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, 'host-' || lpad(i::text, 5, '0'), 'LINUX', 'Debian GNU/Linux 12 (bookworm)', '12', 'ON_PREMISES',
             array['fleet', 'rack-' || (i % 40)], 'apt', 'h' || i, now(), now(), i % 3, 1, ${UPDATES_PER_MACHINE - 2}
      from generate_series(1, ${MACHINES}) i;
      insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
      select gen_random_uuid(), id, 'SCHEDULE', 'apt', now(), now(), now(), false, 0, 1, 0 from machines;
      update machines m set latest_assessment_id = a.id from assessments a where a.machine_id = m.id;
      insert into pending_updates (assessment_id, machine_id, name, arch, installed_version, available_version, classification, severity, advisory_ids, cve_ids, reboot_suggested, repository)
      select m.latest_assessment_id, m.id, 'package-' || lpad(u::text, 3, '0'), 'amd64', '1.0-1', '1.0-2+deb12u' || u,
             (case when u = 1 then 'SECURITY' else 'OTHER' end)::classification, null, array['DSA-' || u || '-1'], array['CVE-2026-' || lpad(u::text, 4, '0')], false, 'Debian:12/stable'
      from machines m cross join generate_series(1, ${UPDATES_PER_MACHINE}) u;`);
  }, 120_000);

  afterAll(async () => {
    await api.close();
    await database.close();
    await drop();
  });

  async function link(kind: string, format: string, token = viewer, runId?: string) {
    const answer = await graphql<{ createExport: { url: string; expiresAt: string; fileName: string } }>(
      api.url,
      'mutation($kind: ExportKind!, $format: ExportFormat!, $runId: ID) { createExport(kind: $kind, format: $format, runId: $runId) { url expiresAt fileName } }',
      { token, variables: { kind, format, runId } },
    );
    return answer;
  }

  /**
   * Downloads a URL, counting lines as they arrive, and what the API process (this one) holds
   * meanwhile: the heap after a full collection every 2 MB received, so that garbage the
   * collector has not reached yet is not counted as held.
   */
  async function download(url: string): Promise<{ status: number; headers: Headers; lines: number; bytes: number; text: string | null; heapGrowth: number }> {
    gc();
    const baseline = process.memoryUsage().heapUsed;
    let peak = baseline;
    let nextSample = 2_000_000;
    {
      const response = await fetch(url);
      let lines = 0;
      let bytes = 0;
      const keep: string[] = [];
      const decoder = new TextDecoder();
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        bytes += chunk.byteLength;
        const text = decoder.decode(chunk, { stream: true });
        for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
        if (bytes < 5_000_000) keep.push(text);
        if (bytes >= nextSample) {
          nextSample += 2_000_000;
          gc();
          peak = Math.max(peak, process.memoryUsage().heapUsed);
        }
      }
      return { status: response.status, headers: response.headers, lines, bytes, text: bytes < 5_000_000 ? keep.join('') : null, heapGrowth: peak - baseline };
    }
  }

  it('exports the computers view of 10,000 machines as CSV and as JSON from a signed link', async () => {
    const created = await link('COMPUTERS', 'CSV');
    expect(created.errors).toBeUndefined();
    const { url, expiresAt, fileName } = created.data!.createExport;
    expect(url).toMatch(new RegExp(`^${api.url.replace('/graphql', '')}/exports/computers-\\d{4}-\\d{2}-\\d{2}\\.csv\\?link=`));
    expect(fileName).toMatch(/^computers-\d{4}-\d{2}-\d{2}\.csv$/);
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(4 * 60_000);
    const csv = await download(url);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(csv.headers.get('content-disposition')).toBe(`attachment; filename="${fileName}"`);
    expect(csv.headers.get('cache-control')).toBe('no-store');
    expect(csv.lines).toBe(MACHINES + 1);
    const rows = csv.text!.split('\r\n');
    expect(rows[0]).toBe(EXPORT_COLUMNS.COMPUTERS.join(','));
    expect(rows[1]).toMatch(/^00000000-0000-4000-8000-000000000001,host-00001,LINUX,Debian GNU\/Linux 12 \(bookworm\),12,ON_PREMISES,fleet; rack-1,NON_COMPLIANT,READY,1,1,28,false,,\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z,/);

    const json = await download((await link('COMPUTERS', 'JSON')).data!.createExport.url);
    expect(json.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const parsed = JSON.parse(json.text!) as Array<Record<string, unknown>>;
    expect(parsed).toHaveLength(MACHINES);
    expect(Object.keys(parsed[0]!)).toEqual(EXPORT_COLUMNS.COMPUTERS);
    expect(parsed[9_999]).toMatchObject({ name: 'host-10000', tags: ['fleet', 'rack-0'], compliance: 'NON_COMPLIANT', criticalCount: 1, lastSeenAt: expect.stringMatching(/Z$/) });
  });

  it("streams 300,000 missing updates of 10,000 machines without holding them: the API's heap grows far less than the rows", async () => {
    const { url } = (await link('MISSING_UPDATES', 'CSV')).data!.createExport;
    const result = await download(url);
    expect(result.status).toBe(200);
    expect(result.lines).toBe(MACHINES * UPDATES_PER_MACHINE + 1);
    // Held whole, 300,000 rows are about 45 MB of CSV text and well over 100 MB of row objects in
    // this process (it runs the API); streamed, a batch of 500 rows and the socket's buffer.
    expect(result.bytes).toBeGreaterThan(40_000_000);
    expect(result.heapGrowth).toBeLessThan(20_000_000);
  }, 120_000);

  it("exports a run's results, and refuses a run that does not exist or is not named", async () => {
    const deployment = await insertDeployment(database.db, {
      name: `export ${randomUUID()}`,
      osType: 'LINUX',
      machineIds: [],
      targetFilter: null,
      classifications: ['SECURITY'],
      includePatterns: [],
      excludePatterns: [],
      schedule: null,
      windowMinutes: 60,
      rebootSetting: 'IF_REQUIRED',
      maxConcurrent: null,
      maxFailures: null,
      rings: null,
    });
    if (deployment === 'NAME_TAKEN') throw new Error('name taken');
    const runId = randomUUID();
    await database.sql`insert into deployment_runs (id, deployment_id, workflow_id, trigger, status) values (${runId}, ${deployment.id}, ${`deployment-run:${runId}`}, 'MANUAL', 'PARTIALLY_FAILED')`;
    const [machineRun] = await database.sql`insert into machine_runs (run_id, machine_id, machine_name, status) values (${runId}, '00000000-0000-4000-8000-000000000001', 'host-00001', 'FAILED') returning id`;
    await database.sql`insert into update_results (machine_run_id, run_id, name, arch, classification, installed_version, target_version, order_index, expected_seconds, status, predicted_status, exit_code, error_text)
      values (${machineRun!.id}, ${runId}, 'package-001', 'amd64', 'SECURITY', '1.0-1', '1.0-2+deb12u1', 0, 30, 'FAILED', 'SUCCEEDED', 100, ${'dpkg: error processing package package-001 (--configure):\n installed post-installation script returned error exit status 1'}),
             (${machineRun!.id}, ${runId}, '=cmd|calc', 'amd64', 'OTHER', '1.0-1', '1.1', 1, 30, 'NOT_SELECTED', 'NOT_SELECTED', null, null)`;
    const { url } = (await link('RUN_RESULTS', 'CSV', viewer, runId)).data!.createExport;
    const result = await download(url);
    const lines = result.text!.split('\r\n');
    expect(lines[0]).toBe(EXPORT_COLUMNS.RUN_RESULTS.join(','));
    expect(lines[1]).toBe(
      `${runId},00000000-0000-4000-8000-000000000001,host-00001,FAILED,package-001,amd64,SECURITY,,1.0-1,1.0-2+deb12u1,FAILED,,100,"dpkg: error processing package package-001 (--configure):\n installed post-installation script returned error exit status 1",,`,
    );
    // A name a spreadsheet would run as a formula is written as text.
    expect(lines[2]).toContain(",'=cmd|calc,");
    expect((await link('RUN_RESULTS', 'CSV')).errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'runId' });
    expect((await link('RUN_RESULTS', 'CSV', viewer, randomUUID())).errors![0]!.extensions!.code).toBe('NOT_FOUND');
    expect((await link('COMPUTERS', 'CSV', viewer, runId)).errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'runId' });
  });

  /** complianceHistory's answer, and createExport's, for the same arguments. */
  const HISTORY_QUERY = `query($from: String, $to: String, $groupBy: ComplianceHistoryGroupBy) { complianceHistory(from: $from, to: $to, groupBy: $groupBy) {
    from to groupBy snapshots { day takenAt }
    series { key label points { day machines compliant nonCompliant notAssessed compliantShare overdueMachines overdueUpdates pendingUpdates } } } }`;
  type History = { from: string; to: string; groupBy: string; snapshots: Array<{ day: string; takenAt: string }>; series: Array<{ key: string; label: string; points: Array<Record<string, unknown> & { day: string }> }> };
  const historyOf = (variables: Record<string, unknown>) => graphql<{ complianceHistory: History }>(api.url, HISTORY_QUERY, { token: viewer, variables });
  const historyLink = (format: string, variables: Record<string, unknown>) =>
    graphql<{ createExport: { url: string; fileName: string } }>(
      api.url,
      'mutation($format: ExportFormat!, $from: String, $to: String, $groupBy: ComplianceHistoryGroupBy) { createExport(kind: COMPLIANCE_HISTORY, format: $format, from: $from, to: $to, groupBy: $groupBy) { url fileName } }',
      { token: viewer, variables: { format, ...variables } },
    );

  it("exports the compliance history as CSV and JSON: the rows complianceHistory answers over the same days, and its refusals", async () => {
    // Three days with a snapshot and a day without (10-03); a baseline renamed on 10-02 (every row
    // carries its current name, as the query's series does), a group with none assessed (no share).
    const days = { '2026-10-01': '2026-10-01T00:05:00.123Z', '2026-10-02': '2026-10-02T00:05:01.000Z', '2026-10-04': '2026-10-04T09:30:00.000Z' };
    for (const [day, takenAt] of Object.entries(days)) {
      await database.sql`insert into compliance_snapshots (day, taken_at, trigger, compute_ms) values (${day}, ${takenAt}, 'SCHEDULE', 5)`;
      const rows: Array<[string, string, string, number, number, number, number, number, number, number]> = [
        ['FLEET', '', 'Fleet', 30, 20, 7, 3, 2, 4, 90],
        ['BASELINE', '11111111-1111-4111-8111-111111111111', day === '2026-10-01' ? 'Servers' : 'Production servers', 12, 8, 4, 0, 1, 2, 40],
        ['BASELINE', '22222222-2222-4222-8222-222222222222', 'Desktops', 15, 12, 3, 0, 1, 2, 50],
        ['BASELINE', '', 'Built-in', 3, 0, 0, 3, 0, 0, 0],
      ];
      for (const [groupBy, key, label, machines, compliant, nonCompliant, notAssessed, overdueMachines, overdueUpdates, pendingUpdates] of rows) {
        await database.sql`insert into compliance_history (day, group_by, key, label, machines, compliant, non_compliant, not_assessed, overdue_machines, overdue_updates, pending_updates)
          values (${day}, ${groupBy}, ${key}, ${label}, ${machines}, ${compliant}, ${nonCompliant}, ${notAssessed}, ${overdueMachines}, ${overdueUpdates}, ${pendingUpdates})`;
      }
    }
    const columns = EXPORT_COLUMNS.COMPLIANCE_HISTORY;
    for (const groupBy of ['BASELINE', 'FLEET'] as const) {
      const range = { from: '2026-09-30', to: '2026-10-04', groupBy };
      const answer = await historyOf(range);
      expect(answer.errors).toBeUndefined();
      const { series, snapshots } = answer.data!.complianceHistory;
      const takenAt = new Map(snapshots.map((s) => [s.day, s.takenAt]));
      // The query's series flattened, one row per group and day, in the export's column order.
      const expected = series.flatMap((s) => s.points.map((p) => Object.fromEntries(columns.map((c) => [c, c === 'groupBy' ? groupBy : c === 'key' || c === 'label' ? s[c] : c === 'takenAt' ? takenAt.get(p.day) : p[c]]))));
      expect(expected).toHaveLength(groupBy === 'BASELINE' ? 9 : 3);

      const csvLink = await historyLink('CSV', range);
      expect(csvLink.errors).toBeUndefined();
      expect(csvLink.data!.createExport.fileName).toMatch(/^compliance-history-\d{4}-\d{2}-\d{2}\.csv$/);
      const csv = await download(csvLink.data!.createExport.url);
      expect(csv.status).toBe(200);
      expect(csv.headers.get('content-type')).toBe('text/csv; charset=utf-8');
      const lines = csv.text!.split('\r\n');
      expect(lines[0]).toBe(columns.join(','));
      expect(lines.slice(1)).toEqual([...expected.map((row) => columns.map((c) => (row[c] === null ? '' : String(row[c]))).join(',')), '']);

      const json = await download((await historyLink('JSON', range)).data!.createExport.url);
      expect(json.headers.get('content-type')).toBe('application/json; charset=utf-8');
      const parsed = JSON.parse(json.text!) as Array<Record<string, unknown>>;
      expect(parsed).toEqual(expected);
      for (const row of parsed) expect(Object.keys(row)).toEqual([...columns]);
    }
    // What a reader sees, spelled out: the renamed baseline under its current name on its first day too, no share where none was assessed.
    const baselineCsv = (await download((await historyLink('CSV', { from: '2026-10-01', to: '2026-10-04', groupBy: 'BASELINE' })).data!.createExport.url)).text!.split('\r\n');
    expect(baselineCsv.slice(1, 4)).toEqual([
      'BASELINE,,Built-in,2026-10-01,2026-10-01T00:05:00.123Z,3,0,0,3,,0,0,0',
      'BASELINE,,Built-in,2026-10-02,2026-10-02T00:05:01.000Z,3,0,0,3,,0,0,0',
      'BASELINE,,Built-in,2026-10-04,2026-10-04T09:30:00.000Z,3,0,0,3,,0,0,0',
    ]);
    expect(baselineCsv[7]).toBe('BASELINE,11111111-1111-4111-8111-111111111111,Production servers,2026-10-01,2026-10-01T00:05:00.123Z,12,8,4,0,0.6666666666666666,1,2,40');

    // Refused as complianceHistory refuses the same arguments: same field, reason and message.
    for (const bad of [{ from: '2025-01-01', to: '2026-10-04' }, { from: '2026-10-05', to: '2026-10-04' }, { from: '2026-02-30' }, { to: '04/10/2026' }]) {
      const refused = await historyLink('CSV', bad);
      const queried = (await historyOf(bad)).errors![0]!;
      expect(refused.data).toBeNull();
      expect(refused.errors![0]!.extensions).toEqual({ ...queried.extensions, code: 'BAD_USER_INPUT' });
      expect(queried.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: expect.any(String) });
      expect(refused.errors![0]!.message).toBe(queried.message);
    }
    expect((await historyLink('CSV', { from: '2025-01-01', to: '2026-10-04' })).errors![0]!.extensions).toMatchObject({ field: 'to', reason: 'RANGE_TOO_LONG' });
    expect((await historyLink('CSV', { groupBy: 'RACK' })).errors![0]!.message).toContain('ComplianceHistoryGroupBy');
    // The days and grouping are the history's alone.
    const computers = await graphql(api.url, 'mutation { createExport(kind: COMPUTERS, format: CSV, from: "2026-10-01") { url } }', { token: viewer });
    expect(computers.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'from' });
  });

  it('refuses an unknown format, a forged or altered link, an expired one and one whose token was revoked, each with its reason, and never logs a link', async () => {
    const { url } = (await link('COMPUTERS', 'CSV')).data!.createExport;
    const refusal = async (u: string) => {
      const response = await fetch(u);
      const body = (await response.json()) as { error: { code: string; reason: string } };
      return [response.status, body.error.code, body.error.reason];
    };
    const signature = url.slice(-43);
    const forged = `${url.slice(0, -43)}${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
    const key = await serverSecret(database.db, 'export-links');
    const [token] = await database.sql`select id from api_tokens where role = 'VIEWER' limit 1`;
    const expired = signExportLink(key, { kind: 'COMPUTERS', format: 'CSV', runId: null, history: null, tokenId: token!.id as string, sessionId: null, expiresAt: Math.floor(Date.now() / 1000) - 1 });
    const base = api.url.replace('/graphql', '');
    expect(await refusal(url.replace('.csv?', '.xlsx?'))).toEqual([400, 'BAD_USER_INPUT', 'UNKNOWN_FORMAT']);
    expect(await refusal(`${base}/exports/computers.csv`)).toEqual([400, 'BAD_USER_INPUT', 'MALFORMED_LINK']);
    expect(await refusal(forged)).toEqual([403, 'FORBIDDEN', 'BAD_SIGNATURE']);
    expect(await refusal(url.replace('.csv?', '.json?'))).toEqual([403, 'FORBIDDEN', 'BAD_SIGNATURE']);
    expect(await refusal(`${base}/exports/computers.csv?link=${expired}`)).toEqual([410, 'FORBIDDEN', 'LINK_EXPIRED']);

    const created = await createApiToken(database.db, { name: 'soon revoked', role: 'VIEWER', expiresAt: null });
    const revokedUrl = (await link('COMPUTERS', 'JSON', created.secret)).data!.createExport.url;
    await revokeApiToken(database.db, created.id);
    expect(await refusal(revokedUrl)).toEqual([403, 'FORBIDDEN', 'ACCESS_ENDED']);

    const logged = logLines.join('');
    expect(logged).toContain('export link refused');
    expect(logged).toContain('export downloaded');
    for (const u of [url, forged, revokedUrl]) expect(logged).not.toContain(new URL(u).searchParams.get('link')!);
  });
});
