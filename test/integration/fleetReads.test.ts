import { PgDialect } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AssessmentReport } from '../../src/agent/protocol.js';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import { prepareReport } from '../../src/db/assessmentIngest.js';
import { connectDatabase, type Database } from '../../src/db/client.js';
import { cveCandidates, cveExposurePageSql, replaceImportedFixes } from '../../src/db/cves.js';
import { CveService } from '../../src/api/cves/cve.service.js';
import type { ApiServices } from '../../src/api/context.js';
import { highestSeverity, type TrackerFix } from '../../src/fleet/cves.js';
import { machinesMissing, removeMachine } from '../../src/db/machines.js';
import { missingMachinesRead } from '../../src/fleet/missingUpdates.js';
import { assessmentReport } from '../../testkit/agentFacts.js';
import { freshDatabase } from '../support/env.js';
import { random, storeReportGroup } from '../support/randomFleet.js';

// The reads of the fleet view that start from an update or a CVE instead of walking the fleet
// (docs/fleet-counts.md, "Reads that start from the update"), against the plain queries over every
// live machine they replace, on a fleet with history: older assessments list updates the latest
// ones no longer do, some machines are removed, some updates name their source package.

const NAMES = Array.from({ length: 12 }, (_, i) => `pkg-${i}`);
const CVES = ['CVE-2026-1', 'CVE-2026-2', 'CVE-2026-3'];

describe('reads that start from the update', () => {
  let database: Database;
  let drop: () => Promise<void>;
  const updates = new Set<string>();

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectDatabase(fresh.url, { max: 4 });
    const rng = random(31);
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      // Names that sort apart from insertion order; Debian 12 on apt, the release the tracker's fixes below name.
      const [row] = await database.sql<Array<{ id: string }>>`insert into machines (name, os_type, os_name, os_version, environment, package_manager)
        values (${`m-${(i * 17) % 40}`}, 'LINUX', 'Debian GNU/Linux 12 (bookworm)', '12', 'AWS', 'apt') returning id`;
      ids.push(row!.id);
    }
    let clock = Date.parse('2026-12-01T00:00:00Z');
    const update = (): PendingUpdate => {
      const name = rng.pick(NAMES);
      const n = Number(name.slice(4));
      return {
        name,
        sourcePackage: n % 3 === 0 ? `src-${n % 2}` : undefined,
        installedVersion: '1.0',
        availableVersion: `1.${1 + rng.int(2)}`,
        arch: rng.pick(['amd64', 'i386']),
        classification: n % 4 === 0 ? 'SECURITY' : rng.next() < 0.9 ? 'OTHER' : 'CRITICAL',
        severity: null,
        advisoryIds: [],
        cveIds: rng.next() < 0.4 ? [rng.pick(CVES)] : [],
        rebootSuggested: false,
        repository: null,
      };
    };
    // Four reports a machine, some of them spooled (older than the latest): the history holds rows the latest assessments do not.
    for (let round = 0; round < 4; round++) {
      const group = ids.map((id) => {
        clock += 1000;
        const finishedAt = new Date(rng.next() < 0.15 ? clock - 3_600_000 : clock).toISOString();
        const report: AssessmentReport = assessmentReport(Array.from({ length: rng.int(6) }, update), { startedAt: finishedAt, finishedAt });
        return prepareReport(id, report, { receivedAtMs: Date.parse(finishedAt), agentSentAtMs: null });
      });
      await storeReportGroup(database.sql, group);
    }
    for (const id of ids.slice(0, 5)) await removeMachine(database.db, id);
    // Imported as an import does (the machines' maintained exposures follow).
    const fix = (cveId: string, pkg: string, release: string, fixedVersion: string, severity: TrackerFix['severity']): TrackerFix => ({ cveId, package: pkg, release, fixedVersion, severity, description: null });
    await replaceImportedFixes(database.db, 'test', [
      { source: 'DEBIAN', fixes: [fix('CVE-2026-9', 'src-1', 'bookworm', '1.1', 'IMPORTANT'), fix('CVE-2026-9', 'pkg-5', 'bookworm', '1.2', 'IMPORTANT'), fix('CVE-2026-9', 'pkg-7', 'bullseye', '1.1', 'IMPORTANT')] },
    ]);
    await database.sql`analyze machines`;
    for (const r of await database.sql<Array<{ name: string; classification: string }>>`select distinct name, classification::text from pending_updates`) updates.add(`${r.name}\u0000${r.classification}`);
  }, 120_000);

  afterAll(async () => {
    await database?.close();
    await drop?.();
  });

  /** The live machines whose latest assessment lists the update, by name and id: the plain query over every live machine. */
  const missingRecomputed = async (name: string, classification: string) =>
    (
      await database.sql<Array<{ id: string }>>`select m.id from machines m where m.removed_at is null
        and exists (select 1 from pending_updates p where p.assessment_id = m.latest_assessment_id and p.name = ${name} and p.classification::text = ${classification})
        order by m.name, m.id`
    ).map((r) => r.id);

  it('lists the machines missing each update page by page, as a query over every live machine does, whichever way it reads them', async () => {
    const reads = new Set<string>();
    let checked = 0;
    for (const key of updates) {
      const [name, classification] = key.split('\u0000') as [string, string];
      const expected = await missingRecomputed(name, classification);
      for (const limit of [1, 3, 50]) {
        reads.add(missingMachinesRead(expected.length, 40, limit + 1));
        const seen: string[] = [];
        for (let offset = 0; offset < expected.length + limit; offset += limit) {
          const page = await machinesMissing(database.db, { name, classification }, offset, limit);
          expect(page.totalCount).toBe(expected.length);
          seen.push(...page.rows.map((r) => r.id));
        }
        expect(seen, `${name} ${classification}, pages of ${limit}`).toEqual(expected);
      }
      if (expected.length > 0) checked++;
    }
    // Both reads ran, on updates some live machine misses (not only on empty lists).
    expect(reads).toEqual(new Set(['BY_UPDATE', 'BY_NAME']));
    expect(checked).toBeGreaterThan(8);
  });

  /** One CVE's candidate rows as the join of every live machine's latest pending updates found them. */
  const candidatesRecomputed = async (cveId: string) =>
    database.sql<Array<{ machine_id: string; name: string; available_version: string }>>`
      select m.id as machine_id, pu.name, pu.available_version
      from machines m join pending_updates pu on pu.assessment_id = m.latest_assessment_id
      where m.removed_at is null and (pu.cve_ids @> array[${cveId}]::text[] or exists (
        select 1 from cve_tracker_fixes t where t.cve_id = ${cveId} and t.package = coalesce(pu.source_package, pu.name) and t.release = 'bookworm'))`;

  const rowSet = (rows: Array<{ machine_id: string; name: string; available_version: string }>) => [...new Set(rows.map((r) => `${r.machine_id} ${r.name} ${r.available_version}`))].sort();

  it("finds one CVE's candidate updates from the updates that may fix it, as the join over every live machine does: by advisory, by package and by source package", async () => {
    for (const cveId of [...CVES, 'CVE-2026-9', 'CVE-2026-404']) {
      const expected = rowSet(await candidatesRecomputed(cveId));
      const { current } = await cveCandidates(database.db, cveId);
      const found = rowSet(current.map((c) => ({ machine_id: c.machine.id, name: c.update.name, available_version: c.update.availableVersion })));
      expect(found, cveId).toEqual(expected);
      if (cveId !== 'CVE-2026-404') expect(expected.length, `${cveId} has candidates`).toBeGreaterThan(0);
    }
    // The tracker's fix reached rows through their source package and through their own name.
    const tracked = (await cveCandidates(database.db, 'CVE-2026-9')).current.filter((c) => c.update.cveIds.length === 0);
    expect(new Set(tracked.map((c) => (c.update.sourcePackage ? 'source' : 'name')))).toEqual(new Set(['source', 'name']));
  });

  it('counts and pages a CVE with imported fixes as every exposed machine computed in TypeScript does, over history and removed machines, both reads', async () => {
    // A second source for the same package and release (the first by source decides a row's fix), and a fix for a CVE advisories also name.
    const fix = (cveId: string, pkg: string, fixedVersion: string, severity: TrackerFix['severity']): TrackerFix => ({ cveId, package: pkg, release: 'bookworm', fixedVersion, severity, description: null });
    await replaceImportedFixes(database.db, 'test', [{ source: 'OSV:DEBIAN', fixes: [fix('CVE-2026-9', 'src-1', '1.2', 'LOW'), fix('CVE-2026-1', 'src-0', '1.2', 'CRITICAL')] }]);
    const service = new CveService({ database, now: () => new Date('2026-12-03T00:00:00Z') } as unknown as ApiServices);
    for (const cveId of ['CVE-2026-9', 'CVE-2026-1']) {
      const all = await service.exposures(cveId);
      const answer = await service.answer(cveId);
      expect(answer.figures?.imported).toBe(true);
      expect({ machineCount: answer.machineCount, severity: answer.severity, sources: answer.sources }, cveId).toEqual({
        machineCount: all.length,
        severity: highestSeverity(all.map((e) => e.severity)),
        sources: [...new Set(all.map((e) => e.source))].sort(),
      });
      expect(all.length, `${cveId} has exposed machines`).toBeGreaterThan(3);
      for (const forced of ['BY_NAME', 'EVERY_MACHINE', undefined] as const) {
        for (const limit of [1, 3, 50]) {
          const seen: typeof all = [];
          for (let offset = 0; offset <= all.length; offset += limit) {
            const { rows, totalCount } = await service.exposurePage(answer, { offset, limit }, forced);
            expect(totalCount).toBe(all.length);
            seen.push(...rows);
          }
          expect(seen, `${cveId} ${forced} pages of ${limit}`).toEqual(all);
        }
      }
    }
  });
  it("walks a CVE's page by name, one probe per machine, even where the planner would rather hash every pending row", async () => {
    // With nested loops made dear, a semi join (a hash or merge over every pending row: 72 s at 1M
    // machines) is what the planner takes when it may; the probe's LATERAL ... LIMIT 1 leaves it none.
    const nodes = (plan: Record<string, unknown>): Array<Record<string, unknown>> => [plan, ...((plan.Plans as Array<Record<string, unknown>> | undefined) ?? []).flatMap(nodes)];
    for (const imported of [true, false]) {
      const statement = new PgDialect().sqlToQuery(cveExposurePageSql('CVE-2026-9', 0, 50, imported));
      const plan = await database.sql.begin(async (tx) => {
        await tx`set local enable_nestloop = off`;
        const [row] = await tx.unsafe<Array<{ 'QUERY PLAN': Array<{ Plan: Record<string, unknown> }> }>>(`explain (format json) ${statement.sql}`, statement.params as never[]);
        return row!['QUERY PLAN'][0]!.Plan;
      });
      const types = nodes(plan).map((n) => `${n['Node Type']} ${n['Relation Name'] ?? ''}`.trim());
      expect(types.filter((t) => /Hash|Merge/.test(t)), `imported ${imported}: ${types.join(', ')}`).toEqual([]);
      expect(types, `imported ${imported}`).toContain('Nested Loop');
      // Each probe reads one machine's rows along an index (an index or bitmap scan, the planner's pick
      // by table size); a sequential scan would be the whole table again.
      expect(types.filter((t) => t.endsWith('pending_updates') && !/^(Index|Index Only|Bitmap Heap) Scan/.test(t)), types.join(', ')).toEqual([]);
    }
  });
});
