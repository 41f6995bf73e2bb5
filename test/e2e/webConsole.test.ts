import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { buildFleet, fleetStackEnv, SupervisedAgent } from '../support/fleet.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/** Debian's chromium (`.ci/run` installs it); CHROMIUM_PATH points elsewhere. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Screenshots of every page, for a person to look at (git-ignored). */
const ARTIFACTS = new URL('../../test-artifacts/web-console/', import.meta.url).pathname;

/**
 * The web console in a real headless Chromium, against the real stack: the server and the worker
 * as processes, Temporal, and three agents on apt, dnf and zypper fixture machines that really
 * install. What an operator does: sign in, look at the fleet, create a deployment from the form,
 * watch its run move without reloading, and open the failed update's error.
 */
describe('the web console', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-web-'));
  let server: Spawned;
  let worker: Spawned;
  let base: string;
  let database: Database;
  let drop: () => Promise<void>;
  let operator: string;
  let browser: Browser;
  let page: Page;
  const agents: SupervisedAgent[] = [];
  /** Every Content-Security-Policy violation Chromium reports, on any page: there must be none. */
  const cspViolations: string[] = [];

  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const query = async <T,>(q: string, variables?: Record<string, unknown>): Promise<T> => {
    const response = await graphql<T>(`${base}/graphql`, q, { token: operator, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  };
  /** Table cells of a card that reach past its right edge, as "card: cell text". */
  const cellsOutsideTheirCard = () =>
    page.evaluate<string[]>(`[...document.querySelectorAll('.card')].flatMap((card) => {
      const edge = card.getBoundingClientRect().right;
      return [...card.querySelectorAll('th, td')].filter((cell) => cell.getBoundingClientRect().right > edge + 0.5).map((cell) => card.querySelector('h2')?.textContent + ': ' + cell.textContent);
    })`);

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`No Chromium at ${CHROMIUM}: install the Debian package chromium (apt-get install chromium), or set CHROMIUM_PATH.`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    operator = await tokenFor(database, 'ADMIN');
    const port = await freePort();
    const env = fleetStackEnv({ databaseUrl: fresh.url, temporalAddress: temporalSettings().address, port, taskQueue: `web-${randomUUID()}` });
    base = `http://127.0.0.1:${port}`;
    server = spawnFleetpatch(['server'], env);
    worker = spawnFleetpatch(['worker'], env);
    const [, fleet] = await Promise.all([
      Promise.all([server.waitFor(/"msg":"API listening"/), worker.waitFor(/"msg":"worker polling"/)]),
      buildFleet(work),
      (async () => {
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
      })(),
    ]);
    const key = await graphql<{ createEnrollmentKey: { secret: string } }>(`${base}/graphql`, 'mutation { createEnrollmentKey(input: {description: "web console"}) { secret } }', { token: operator });
    for (const machine of Object.values(fleet)) agents.push(new SupervisedAgent(machine, base, key.data!.createEnrollmentKey.secret).start());
    const assessed = async () => (await graphql<{ machines: { edges: Array<{ node: { lastAssessedAt: string | null } }> } }>(`${base}/graphql`, '{ machines { edges { node { lastAssessedAt } } } }', { token: operator })).data!.machines.edges;
    await waitUntil(assessed, (machines) => machines.filter((m) => m.node.lastAssessedAt).length === 3, 90_000, 'three assessed machines');
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    // Chromium logs each violation to the console; the page's own event says it in full.
    page.on('console', (message) => {
      if (/Content Security Policy|CSP violation/i.test(message.text())) cspViolations.push(message.text());
    });
    await page.addInitScript(
      "document.addEventListener('securitypolicyviolation', (e) => console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI + ' (' + e.sourceFile + ':' + e.lineNumber + ')'))",
    );
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(agents.map((a) => a.kill()));
    await stop(worker);
    await stop(server);
    await database.close();
    await drop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('is served at / beside the API: client routes get the app, the API keeps its paths', async () => {
    const index = await fetch(`${base}/deployments/new`, { headers: { accept: 'text/html' } });
    expect(index.status).toBe(200);
    expect(await index.text()).toContain('<div id="root">');
    expect(index.headers.get('content-security-policy')).toMatch(/script-src 'self'.*frame-ancestors 'none'/);
    expect(index.headers.get('x-powered-by')).toBeNull();
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) })).status).toBe(200);
    expect((await fetch(`${base}/agent/v1/no-such-thing`, { headers: { accept: 'text/html' } })).headers.get('content-type')).not.toMatch(/text\/html/);
    expect((await fetch(`${base}/assets/no-such-file.js`)).status).toBe(404);
  });

  it('signs in with an API token, refusing a wrong one, from the keyboard', async () => {
    await page.goto(`${base}/`);
    await page.getByLabel('API token').fill('not-a-token');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/unknown, revoked or expired/);
    await shot('01-sign-in');
    await page.getByLabel('API token').fill(operator);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview', exact: true }).waitFor();
    // Signed in with a session cookie that no script on the page can read; the token is kept nowhere.
    const [session] = (await page.context().cookies()).filter((c) => c.name === 'fleetpatch_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(session!.value).not.toBe(operator);
    expect(await page.evaluate('document.cookie')).not.toContain('fleetpatch_session');
    expect(await page.evaluate('JSON.stringify(localStorage) + JSON.stringify(sessionStorage)')).not.toMatch(/fp[ms]?_/);
    await page.getByText('Non-compliant: 3').waitFor();
    await page.getByRole('heading', { name: 'Pending updates by classification' }).waitFor();
    await shot('02-overview');
  });

  it("lays the overview out so that every column stays inside its card, at 1440 and 1280 px", async () => {
    for (const width of [1440, 1280]) {
      await page.setViewportSize({ width, height: 900 });
      await page.getByRole('heading', { name: 'Pending updates by classification' }).waitFor();
      await expect.poll(() => page.locator('table.bars tbody tr').count()).toBeGreaterThan(0);
      // The Machines column was cut off by its card at 1440 px.
      expect(await page.locator('table.bars thead th').allInnerTexts()).toEqual(['Classification', 'Updates', 'Machines']);
      expect(await cellsOutsideTheirCard()).toEqual([]);
      await shot(`02-overview-${width}`);
    }
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('shows the compliance trend and the overdue counts on the overview, filters the computers on overdue, and shows due dates', async () => {
    // Two earlier days as the daily schedule would have left them (a running server's clock cannot
    // be moved), then today's taken on demand.
    const day = (back: number) => new Date(Date.now() - back * 86_400_000).toISOString().slice(0, 10);
    for (const [back, compliant] of [[2, 0], [1, 1]] as const) {
      await database.sql`insert into compliance_snapshots (day, taken_at, trigger, compute_ms) values (${day(back)}, now() - ${`${back} days`}::interval, 'SCHEDULE', 1)`;
      await database.sql`insert into compliance_history (day, group_by, key, label, machines, compliant, non_compliant, not_assessed, overdue_machines, overdue_updates, pending_updates)
        values (${day(back)}, 'FLEET', '', 'Fleet', 3, ${compliant}, ${3 - compliant}, 0, 0, 0, 20)`;
    }
    // A baseline approving what the built-in one does, with SLA targets the fixture updates are past:
    // their first sighting moved 30 days back before it is saved (its verdicts are computed then).
    await database.sql`update update_first_seen set first_seen_at = first_seen_at - interval '30 days'`;
    const sla = (['CRITICAL', 'IMPORTANT', 'MODERATE', 'LOW'] as const).map((severity) => `{ severity: ${severity}, days: 7 }`).join(', ');
    const { createBaseline } = await query<{ createBaseline: { id: string } }>(
      `mutation { createBaseline(input: { name: "console sla", osType: LINUX, rules: [{ classifications: [CRITICAL, SECURITY], delayDays: 0 }], slaTargets: [${sla}] }) { id } }`,
    );
    await query('mutation { takeComplianceSnapshot { replaced } }');

    await page.reload();
    const trend = page.getByRole('img', { name: /^Compliant share of assessed machines/ });
    await expect.poll(() => trend.getAttribute('aria-label')).toBe(`Compliant share of assessed machines from ${day(29)} to ${day(0)}: 0% on ${day(2)}, 0% on ${day(0)} (3 daily snapshots).`);
    expect(await page.locator('circle.trend-point').count()).toBe(3);
    // rocky-01 and sles-01 carry severities (apt gives none, so debian-01 has no SLA clock).
    // The API counts them from the baseline's save on; the page is read again to show them.
    await waitUntil(() => query<{ complianceSummary: { overdueMachines: number } }>('{ complianceSummary { overdueMachines } }'), (s) => s.complianceSummary.overdueMachines === 2, 30_000, 'two overdue machines');
    await page.reload();
    const slaCard = page.getByRole('region', { name: 'SLA' });
    await expect.poll(() => slaCard.locator('dd').first().textContent()).toBe('2');
    await shot('02-overview-trend');

    await slaCard.getByRole('link', { name: 'Overdue machines' }).click();
    const rows = page.locator('table.computers tbody tr');
    await expect.poll(() => rows.allInnerTexts()).toEqual([expect.stringMatching(/rocky-01[\s\S]*Non-compliant \d+ overdue/), expect.stringMatching(/sles-01[\s\S]*Non-compliant \d+ overdue/)]);
    expect(await page.getByLabel('SLA').inputValue()).toBe('true');
    await page.getByLabel('SLA').selectOption('false');
    await expect.poll(() => rows.allInnerTexts()).toEqual([expect.stringContaining('debian-01')]);
    await shot('03-computers-overdue');

    await page.getByLabel('SLA').selectOption('true');
    await page.getByRole('link', { name: 'rocky-01', exact: true }).click();
    const tool = page.getByRole('region', { name: 'Pending updates' }).locator('tr', { hasText: 'demo-tool' });
    await expect.poll(() => tool.innerText()).toMatch(/Overdue/);
    // The clock and the due date, 7 days later (due at the start of the next day, UTC baseline). The
    // clock is the issue date the first report of demo-tool 1.1 in the fleet gave: rocky-01's and
    // sles-01's give one, debian-01's (apt) none, and whichever machine reported first decides.
    const [clock, due] = await tool.locator('time').evaluateAll((times) => times.map((t) => t.getAttribute('datetime')));
    type Listed = { name: string; pendingUpdates: { edges: Array<{ node: { name: string; firstSeenAt: string; clockFrom: string } }> } };
    const listed = await query<{ machines: { edges: Array<{ node: Listed }> } }>('{ machines { edges { node { name pendingUpdates(first: 50) { edges { node { name firstSeenAt clockFrom } } } } } } }');
    const rocky = listed.machines.edges.find((e) => e.node.name === 'rocky-01')!.node;
    const api = rocky.pendingUpdates.edges.find((e) => e.node.name === 'demo-tool')!.node;
    expect(Date.parse(clock!)).toBe(Date.parse(api.clockFrom));
    expect([Date.parse(api.firstSeenAt), Date.parse('2025-02-03T00:00:00.000Z')]).toContain(Date.parse(api.clockFrom));
    expect(await tool.innerText()).toContain(api.clockFrom === api.firstSeenAt ? 'first seen' : 'issued');
    const dayMs = 86_400_000;
    expect(Date.parse(due!)).toBe(Math.floor(Date.parse(clock!) / dayMs) * dayMs + 8 * dayMs);
    await shot('04-machine-due-dates');

    await query(`mutation { deleteBaseline(id: "${createBaseline.id}") }`);
  });

  it('shows the computers with the seed columns, filters by name, and opens a machine', async () => {
    await page.getByRole('link', { name: 'Computers', exact: true }).click();
    const rows = page.locator('table.computers tbody tr');
    await expect.poll(() => rows.count()).toBe(3);
    const headers = await page.locator('table.computers thead th').allTextContents();
    expect(headers.map((h) => h.replace(/[▲▼]/g, '').trim())).toEqual(['Name', 'Compliance', 'Environment', 'OS type', 'Critical and security', 'Other', 'Update agent readiness', 'Agent']);
    const debian = rows.filter({ hasText: 'debian-01' });
    expect(await debian.locator('td').allInnerTexts()).toEqual([expect.stringContaining('debian-01'), 'Non-compliant', 'AWS', 'Linux', '4', '3', 'Ready', expect.stringMatching(/^\d+\.\d+\.\d+/)]);
    await shot('03-computers');

    await page.getByLabel('Name contains').fill('rocky');
    await expect.poll(() => rows.count()).toBe(1);
    expect(await rows.first().textContent()).toContain('rocky-01');
    await page.getByLabel('Name contains').fill('');
    await expect.poll(() => rows.count()).toBe(3);

    await page.getByRole('link', { name: 'debian-01', exact: true }).click();
    await page.getByRole('heading', { name: 'debian-01' }).waitFor();
    const pending = page.getByRole('region', { name: 'Pending updates' });
    await expect.poll(() => pending.textContent()).toContain('demo-libssl');
    expect(await page.getByRole('region', { name: 'Assessment history' }).locator('tbody tr').count()).toBeGreaterThan(0);
    await shot('04-machine');
  });

  it('lists the updates missing across the fleet and which machines miss each', async () => {
    await page.getByRole('link', { name: 'Missing updates', exact: true }).click();
    const broken = page.locator('tr', { hasText: 'demo-broken' }).first();
    await broken.getByRole('button', { name: '3 machines' }).click();
    const list = page.locator('.machine-list');
    await expect.poll(() => list.locator('li').allInnerTexts()).toEqual([expect.stringContaining('debian-01'), expect.stringContaining('rocky-01'), expect.stringContaining('sles-01')]);
    await shot('05-missing-updates');
  });

  it('creates a deployment from the form, shows a broken rule at its field, and watches the run move live to its end', async () => {
    await page.getByRole('link', { name: 'Deployments', exact: true }).click();
    await page.getByRole('link', { name: 'New deployment' }).click();
    await page.getByLabel('Name', { exact: true }).fill('critical and security from the console');
    await page.getByLabel('Maintenance window (minutes)').fill('400');
    await page.getByRole('button', { name: 'Create deployment' }).click();
    // The API's rules, each shown at the field it names, which takes the focus. First: no machine picked.
    await expect.poll(() => page.locator('#f-machineIds-error').textContent()).toMatch(/needs targets/);
    // The focus moves in the next animation frame after the errors render.
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('f-machineIds');
    expect(await page.getByRole('region', { name: 'Machines to pick from' }).textContent()).toContain('Ready');
    for (const name of ['debian-01', 'rocky-01', 'sles-01']) await page.getByLabel(`Deploy to ${name}`).check();
    await page.getByRole('button', { name: 'Create deployment' }).click();
    const windowField = page.getByLabel('Maintenance window (minutes)');
    await expect.poll(() => windowField.getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#f-windowMinutes-error').textContent()).toMatch(/30|360/);
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('f-windowMinutes');
    expect(await page.locator('#f-machineIds-error').count()).toBe(0);
    await shot('06-deployment-form-error');

    await windowField.fill('60');
    await page.getByLabel('Also run it once now').check();
    await shot('07-deployment-form');
    await page.getByRole('button', { name: 'Create deployment' }).click();

    await page.waitForURL(/\/runs\//);
    // Proof that nothing reloads: this marker lives only as long as the document.
    await page.evaluate('window.stillTheSamePage = true');
    const overall = page.getByRole('progressbar', { name: 'Updates done across the run' });
    const seen: string[] = [];
    const status = page.locator('.run-status .badge');
    await expect
      .poll(
        async () => {
          const now = await status.textContent();
          seen.push(`${now} ${await overall.getAttribute('aria-valuenow')}/${await overall.getAttribute('aria-valuemax')}`);
          return now;
        },
        { timeout: 180_000, interval: 250 },
      )
      .toBe('Partially failed');
    expect(await page.evaluate('window.stillTheSamePage')).toBe(true);
    // The bar moved while the page watched: several values, from the run in progress to all done.
    const distinct = [...new Set(seen)];
    expect(distinct.length, distinct.join(' | ')).toBeGreaterThanOrEqual(3);
    expect(distinct.some((s) => s.startsWith('In progress'))).toBe(true);
    await expect.poll(() => overall.getAttribute('aria-valuenow')).toBe('12');
    expect(await overall.getAttribute('aria-valuemax')).toBe('12');
    for (const name of ['debian-01', 'rocky-01', 'sles-01']) {
      expect(await page.getByRole('progressbar', { name: `${name}: updates done` }).getAttribute('aria-valuenow')).toBe('4');
    }
    await shot('08-run');

    // The failed update's error, as the package manager wrote it.
    const debian = page.locator('section.machine-run[data-machine="debian-01"]');
    const failed = debian.locator('tr[data-update="demo-broken"]');
    expect(await failed.getAttribute('data-status')).toBe('FAILED');
    await failed.getByText('Error (exit code 100)').click();
    const errorText = failed.locator('pre.error-text');
    await errorText.waitFor();
    expect((await errorText.textContent())!.length).toBeGreaterThan(10);
    await debian.getByText(/^Job stream/).click();
    expect(await debian.getByLabel('Job stream of debian-01').textContent()).toContain('demo-libssl');
    expect(await page.getByLabel('All logs of the run').textContent()).toContain('demo-libssl');
    await failed.scrollIntoViewIfNeeded();
    await shot('09-run-failed-update');

    // The machine's page lists the run it took part in, with how it went for that machine.
    await debian.getByRole('link', { name: 'debian-01', exact: true }).click();
    const runs = page.getByRole('region', { name: 'Deployment runs' });
    await runs.waitFor();
    expect(await runs.locator('tbody tr').first().locator('td').allInnerTexts()).toEqual(['critical and security from the console', expect.any(String), 'Partially failed', 'Failed 3 of 4 updates succeeded, 1 failed']);
    await shot('10-machine-after-run');

    await page.getByRole('link', { name: 'Deployments', exact: true }).click();
    const row = page.locator('tr', { hasText: 'critical and security from the console' });
    await expect.poll(() => row.getByRole('link', { name: /Last run of .*: Partially failed/ }).count()).toBe(1);
    await shot('11-deployments');
  });

  it('says how each machine run went beside its status, each apt update by its own outcome, and why a half-configured package is still pending', async () => {
    const { deployments } = await query<{ deployments: { edges: Array<{ node: { name: string; lastRun: { id: string } | null } }> } }>('{ deployments { edges { node { name lastRun { id } } } } }');
    const runId = deployments.edges.find((e) => e.node.name === 'critical and security from the console')!.node.lastRun!.id;
    await page.goto(`${base}/runs/${runId}`);
    const debian = page.locator('section.machine-run[data-machine="debian-01"]');
    await expect.poll(() => debian.locator('.machine-run-head').innerText()).toMatch(/^debian-01\s+Failed\s+3 of 4 updates succeeded, 1 failed/);
    expect(await page.locator('.run-status').innerText()).toMatch(/Partially failed\s+9 of 12 updates succeeded, 3 failed/);
    await shot('14-run-counts');

    // On apt, demo-broken (first by name) failed in its maintainer script; the updates after it are theirs alone.
    const { deploymentRun } = await query<{ deploymentRun: { machineRuns: { edges: Array<{ node: { machineName: string; updates: Array<{ name: string; status: string; exitCode: number | null; errorText: string | null }> } }> } } }>(
      'query($id: ID!) { deploymentRun(id: $id) { machineRuns { edges { node { machineName updates { name status exitCode errorText } } } } } }',
      { id: runId },
    );
    const apt = deploymentRun.machineRuns.edges.map((e) => e.node).find((m) => m.machineName === 'debian-01')!.updates.filter((u) => u.status !== 'NOT_SELECTED');
    expect(apt.map((u) => [u.name, u.status, u.exitCode])).toEqual([
      ['demo-broken', 'FAILED', 100],
      ['demo-libssl', 'SUCCEEDED', 0],
      ['demo-tool', 'SUCCEEDED', 0],
      ['linux-image-demo', 'SUCCEEDED', 0],
    ]);
    expect(apt.filter((u) => u.status === 'SUCCEEDED').map((u) => u.errorText)).toEqual([null, null, null]);

    // The machine's page says why demo-broken is pending at the version it already has.
    await debian.getByRole('link', { name: 'debian-01', exact: true }).click();
    const broken = page.getByRole('region', { name: 'Pending updates' }).locator('tr', { hasText: 'demo-broken' });
    await expect.poll(() => broken.innerText(), { timeout: 30_000 }).toMatch(/Half-configured \(dpkg status iF\): demo-broken 1\.1-1 is unpacked but configuring it failed/);
    expect(await broken.locator('td').nth(4).innerText()).toBe('1.1-1');
    expect(await broken.locator('td').nth(3).innerText()).toBe('1.1-1');
    await shot('15-machine-half-configured');
  });

  it("keeps a removed machine's history reachable from the runs it took part in", async () => {
    const rocky = agents.find((a) => a.machine.backend === 'dnf')!;
    await rocky.kill();
    const { machines } = await query<{ machines: { edges: Array<{ node: { id: string; name: string } }> } }>('{ machines { edges { node { id name } } } }');
    const rockyId = machines.edges.find((e) => e.node.name === 'rocky-01')!.node.id;
    await query('mutation($id: ID!) { removeMachine(machineId: $id) }', { id: rockyId });
    await page.getByRole('link', { name: 'Deployments', exact: true }).click();
    await page.locator('tr', { hasText: 'critical and security from the console' }).getByRole('link', { name: /Last run of/ }).click();
    await page.locator('section.machine-run[data-machine="rocky-01"]').getByRole('link', { name: 'rocky-01', exact: true }).click();
    await page.getByRole('heading', { name: 'rocky-01' }).waitFor();
    expect(await page.getByRole('status').filter({ hasText: 'Removed from management' }).innerText()).toMatch(/^Removed from management on .*history stays/);
    expect(await page.getByRole('button', { name: 'Assess now' }).count()).toBe(0);
    expect(await page.getByRole('region', { name: 'Deployment runs' }).locator('tbody tr').first().innerText()).toContain('critical and security from the console');
    await shot('16-removed-machine');
  });

  it("warns on a machine whose clock is hours off the server's", async () => {
    const key = await query<{ createEnrollmentKey: { secret: string } }>('mutation { createEnrollmentKey(input: {description: "skewed clock"}) { secret } }');
    const agent = new AgentClient(base);
    const { machineId, credential } = await agent.enroll(key.createEnrollmentKey.secret, machineFacts({ hostname: 'skewed-01' }));
    agent.setCredential(credential);
    await agent.sendReport(assessmentReport([pendingUpdate({ name: 'skewed-tool', classification: 'OTHER' })]));
    // Then a check-in from an agent whose clock is 3 hours ahead: its Date header says so.
    const body = JSON.stringify({ facts: machineFacts({ hostname: 'skewed-01' }) });
    await new Promise<void>((resolve, reject) => {
      const request = http.request(`${base}/agent/v1/checkin`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}`, date: new Date(Date.now() + 3 * 3600_000).toUTCString() },
      });
      request.on('response', (response) => (response.statusCode === 200 ? resolve() : reject(new Error(`check-in answered ${response.statusCode}`))));
      request.on('error', reject);
      request.end(body);
    });
    await page.goto(`${base}/computers/${machineId}`);
    await page.getByRole('heading', { name: 'skewed-01' }).waitFor();
    expect(await page.locator('.notice', { hasText: 'clock' }).innerText()).toMatch(/^The machine's clock is about 3 hours ahead of the server's: .*maintenance windows run off/);
    await shot('17-skewed-clock');
  });

  it('creates a deployment that runs on demand only, saying under the schedule when a scheduled one would run next', async () => {
    await page.goto(`${base}/deployments/new`);
    await page.getByLabel('Name', { exact: true }).fill('others on demand');
    for (const name of ['debian-01', 'skewed-01']) await page.getByLabel(`Deploy to ${name}`).check();
    // The default: once, in 30 minutes; said before anything is saved, and beside "Also run it once now".
    const nextRun = page.locator('#next-run');
    await expect.poll(() => nextRun.innerText()).toMatch(/^Next scheduled run: .* \(in (30|31) minutes\)\. Once on /);
    expect(await page.locator('#run-now-help').innerText()).toMatch(/Its schedule runs as well/);
    await page.getByLabel('On demand only (no schedule)').check();
    await expect.poll(() => nextRun.innerText()).toBe('No scheduled run: it runs only when started with Run now.');
    expect(await page.getByLabel('Start', { exact: true }).count()).toBe(0);
    for (const c of ['Critical', 'Security']) await page.getByLabel(c, { exact: true }).uncheck();
    await page.getByLabel('Other', { exact: true }).check();

    // The preview: on apt any package may ask for a reboot, so IF_REQUIRED keeps the reserve and says
    // Maybe (skewed-01's one update); debian-01 still needs the reboot its kernel asked for: Yes.
    await page.getByRole('button', { name: 'Preview' }).click();
    const preview = page.getByRole('region', { name: 'Preview per machine' });
    const reboot = (name: string) => preview.locator('tr', { hasText: name }).locator('td').last().innerText();
    await expect.poll(() => reboot('skewed-01')).toBe('Maybe');
    expect(await reboot('debian-01')).toBe('Yes');
    expect(await page.locator('#preview-title + p').innerText()).toMatch(/^No scheduled run: on demand only\./);
    await shot('18-deployment-form-on-demand');

    await page.getByRole('button', { name: 'Create deployment' }).click();
    await page.getByRole('heading', { name: 'others on demand' }).waitFor();
    const settings = page.getByRole('region', { name: 'Settings' });
    expect(await settings.innerText()).toMatch(/Schedule\s+On demand only: it runs when started with Run now/);
    expect(await settings.innerText()).toMatch(/Next scheduled run\s+None: on demand only/);
    expect(await page.getByRole('button', { name: 'Pause schedule' }).count()).toBe(0);
    await shot('19-deployment-on-demand');
  });

  it('stays usable in a narrow window: the menu folds behind a button that works from the keyboard', async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    await page.goto(`${base}/computers`);
    await page.locator('table.computers tbody tr').first().waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).isVisible()).toBe(false);
    await page.getByRole('button', { name: 'Menu' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' }).waitFor({ state: 'visible' });
    // The page itself does not scroll sideways; the table scrolls in its own box.
    expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
    await shot('12-narrow-computers');
  });

  it('explains a disconnected agent in its readiness cell: why, and since when', async () => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await agents.find((a) => a.machine.backend === 'zypper')!.kill();
    const row = page.locator('table.computers tbody tr', { hasText: 'sles-01' });
    await expect
      .poll(async () => {
        await page.goto(`${base}/computers?readiness=DISCONNECTED`);
        await page.locator('p[role="status"]').waitFor();
        return row.count();
      }, { timeout: 30_000, interval: 1000 })
      .toBe(1);
    const cell = row.locator('.readiness');
    expect(await cell.locator('.badge').textContent()).toBe('Disconnected');
    expect(await cell.locator('.reason').textContent()).toMatch(/last heard .*ago/);
    await shot('13-disconnected-agent');
  });

  it('keeps an open overview current: a machine removed while it is shown leaves its counts without a reload', async () => {
    const nonCompliant = async () => (await query<{ complianceSummary: { nonCompliant: number } }>('{ complianceSummary { nonCompliant } }')).complianceSummary.nonCompliant;
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' }).click();
    const before = await nonCompliant();
    await page.getByText(`Non-compliant: ${before}`, { exact: true }).waitFor();
    // Not debian-01: the steps after this one sign in on its page.
    const { machines } = await query<{ machines: { edges: Array<{ node: { id: string; name: string } }> } }>('{ machines(filter: {compliance: [NON_COMPLIANT]}) { edges { node { id name } } } }');
    const removed = machines.edges.map((e) => e.node).find((m) => m.name !== 'debian-01');
    expect(removed).toBeDefined();
    await query('mutation($id: ID!) { removeMachine(machineId: $id) }', { id: removed!.id });
    // The page was read before the removal, and is not reloaded: it must read the fleet again by itself.
    await page.getByText(`Non-compliant: ${before - 1}`, { exact: true }).waitFor({ timeout: 45_000 });
  });

  it('signs out: the session ends on the server, and a reload stays signed out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API token').waitFor();
    const open = await database.sql`select count(*)::int as n from console_sessions where ended_at is null`;
    expect(open[0]!.n).toBe(0);
    await page.reload();
    await page.getByLabel('API token').waitFor();
  });

  /** Signs in with a new token of this role, and opens debian-01's page, which subscribes to its changes. */
  async function signInOnMachinePage(role: 'VIEWER' | 'OPERATOR'): Promise<string> {
    const token = await tokenFor(database, role);
    await page.goto(`${base}/computers`);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'debian-01', exact: true }).click();
    await page.getByRole('heading', { name: 'debian-01' }).waitFor();
    return token;
  }

  it('leads back to the sign-in page, without a click, when its token is revoked while open', async () => {
    await signInOnMachinePage('VIEWER');
    // The machine page holds a subscription: the server closes its socket, and the console notices.
    await database.sql`update api_tokens set revoked_at = now() where name = 'test VIEWER'`;
    await page.getByLabel('API token').waitFor({ timeout: 10_000 });
    await page.reload();
    await page.getByLabel('API token').waitFor();
  });

  it('leads back to the sign-in page when its session expires while open', async () => {
    await signInOnMachinePage('OPERATOR');
    await database.sql`update console_sessions set expires_at = now() + interval '1 second' where ended_at is null and expires_at > now()`;
    await page.getByLabel('API token').waitFor({ timeout: 10_000 });
    await page.reload();
    await page.getByLabel('API token').waitFor();
  });

  it('reported no Content-Security-Policy violation on any page', () => {
    expect(cspViolations).toEqual([]);
  });
});
