import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { buildFleet, fleetStackEnv, SupervisedAgent } from '../support/fleet.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/** Debian's chromium (`.ci/run` installs it); CHROMIUM_PATH points elsewhere. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Screenshots of every page, for a person to look at (git-ignored). */
const ARTIFACTS = new URL('../../test-artifacts/web-console-rings/', import.meta.url).pathname;

/**
 * Rollouts in rings in the web console, in a real headless Chromium against the real stack (server
 * and worker processes, Temporal, agents on apt, dnf and zypper fixture machines that really
 * install): an OPERATOR defines rings and gates in the deployment form, then, on the run page, sees
 * each ring and the gate that holds the run and why, approves, resumes, rejects and cancels; a
 * VIEWER sees the same gate without the buttons. Every machine has demo-broken, which fails: the
 * canary's gate tolerates one failure, the second ring's none, so the run halts there.
 */
describe('rings in the web console', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-web-rings-'));
  let server: Spawned;
  let worker: Spawned;
  let base: string;
  let database: Database;
  let drop: () => Promise<void>;
  let operator: string;
  let viewer: string;
  let browser: Browser;
  let page: Page;
  let viewerContext: BrowserContext;
  let viewerPage: Page;
  const agents: SupervisedAgent[] = [];
  const cspViolations: string[] = [];
  let deploymentUrl = '';

  const shot = (p: Page, name: string) => p.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const ringRow = (p: Page, ring: number) => p.getByRole('region', { name: 'Rings of the run' }).locator(`tr[data-ring="${ring}"]`);
  const ringStatuses = (p: Page) => p.getByRole('region', { name: 'Rings of the run' }).locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-status')));
  const runStatus = (p: Page) => p.locator('.run-status .badge').textContent();

  async function signIn(p: Page, token: string): Promise<void> {
    await p.goto(`${base}/`);
    await p.getByLabel('API token').fill(token);
    await p.keyboard.press('Enter');
    await p.getByRole('heading', { name: 'Overview', exact: true }).waitFor();
  }

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`No Chromium at ${CHROMIUM}: install the Debian package chromium (apt-get install chromium), or set CHROMIUM_PATH.`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    operator = await tokenFor(database, 'OPERATOR');
    viewer = await tokenFor(database, 'VIEWER');
    const admin = await tokenFor(database, 'ADMIN');
    const port = await freePort();
    const env = fleetStackEnv({ databaseUrl: fresh.url, temporalAddress: temporalSettings().address, port, taskQueue: `web-rings-${randomUUID()}` });
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
    const key = await graphql<{ createEnrollmentKey: { secret: string } }>(`${base}/graphql`, 'mutation { createEnrollmentKey(input: {description: "web rings"}) { secret } }', { token: admin });
    for (const machine of Object.values(fleet)) agents.push(new SupervisedAgent(machine, base, key.data!.createEnrollmentKey.secret).start());
    const assessed = async () => (await graphql<{ machines: { edges: Array<{ node: { lastAssessedAt: string | null } }> } }>(`${base}/graphql`, '{ machines { edges { node { lastAssessedAt } } } }', { token: operator })).data!.machines.edges;
    await waitUntil(assessed, (machines) => machines.filter((m) => m.node.lastAssessedAt).length === 3, 90_000, 'three assessed machines');
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    viewerContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    viewerPage = await viewerContext.newPage();
    for (const p of [page, viewerPage]) {
      // A step that cannot happen fails with the locator it waited for, well within the test's own time.
      p.setDefaultTimeout(30_000);
      p.on('console', (message) => {
        if (/Content Security Policy|CSP violation/i.test(message.text())) cspViolations.push(message.text());
      });
    }
    await signIn(page, operator);
    await signIn(viewerPage, viewer);
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(agents.map((a) => a.kill()));
    if (worker) await stop(worker);
    if (server) await stop(server);
    await database?.close();
    await drop?.();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('defines rings and gates in the deployment form: a broken rule is shown at its ring field, the preview says each machine’s ring', async () => {
    await page.getByRole('link', { name: 'Deployments', exact: true }).click();
    await page.getByRole('link', { name: 'New deployment' }).click();
    await page.getByLabel('Name', { exact: true }).fill('rings from the console');
    for (const name of ['debian-01', 'rocky-01', 'sles-01']) await page.getByLabel(`Deploy to ${name}`).check();
    await page.getByLabel('Reboot', { exact: true }).selectOption('NEVER');
    expect(await page.locator('#rings-help').innerText()).toMatch(/^No rings: every target is updated at once/);

    // Three rings; the first as 100 % at first, which only the last ring may take.
    for (let i = 0; i < 3; i++) await page.getByRole('button', { name: 'Add ring' }).click();
    await page.getByLabel('Ring 1 name').fill('canary');
    await page.getByLabel('Ring 1 percent of the targets left').fill('100');
    await page.getByLabel('Ring 2 percent of the targets left').fill('50');
    await page.getByLabel('Ring 3 percent of the targets left').fill('100');
    await page.getByRole('button', { name: 'Create deployment' }).click();
    await page.locator('#form-problems').waitFor();
    await shot(page, '01-form-ring-error');
    await expect.poll(() => page.locator('[id="f-rings[0]-percent-error"]').textContent()).toMatch(/only the last ring may take 100/);
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('f-rings[0]-percent');

    // The canary: debian-01 alone; one failure allowed, a short soak, then an operator's approval.
    await page.locator('li.ring[data-ring="1"]').getByLabel('Chosen machines').check();
    await page.getByLabel('Ring 1: debian-01').check();
    await page.getByLabel('Ring 1 gate: max failed machines').fill('1');
    await page.getByLabel('Ring 1 gate: soak').fill('2');
    await page.getByLabel('Unit of ring 1 soak').selectOption('SECONDS');
    await page.getByLabel('Ring 1 gate: an operator approves before the next ring').check();
    // Ring 2: the Rocky machine by a filter; none may fail. Ring 3: the rest.
    await page.getByLabel('Ring 2 name').fill('early');
    await page.locator('li.ring[data-ring="2"]').getByLabel('A filter').check();
    await page.getByLabel('Ring 2 name contains').fill('rocky');
    await page.getByLabel('Ring 3 name').fill('everyone else');
    // The last ring has no soak nor approval to give.
    expect(await page.getByLabel('Ring 3 gate: soak').count()).toBe(0);

    await page.getByRole('button', { name: 'Preview' }).click();
    const preview = page.getByRole('region', { name: 'Preview per machine' });
    const ringOf = (name: string) => preview.locator('tr', { hasText: name }).locator('td').nth(1).innerText();
    await expect.poll(() => ringOf('debian-01')).toBe('1');
    expect([await ringOf('rocky-01'), await ringOf('sles-01')]).toEqual(['2', '3']);
    await shot(page, '02-form-rings');

    await page.getByLabel('Also run it once now').check();
    await page.getByRole('button', { name: 'Create deployment' }).click();
    await page.waitForURL(/\/runs\//);
  }, 120_000);

  it('shows the rings and the gate that waits, approves from the run page, resumes the halted run, and shows the frozen update set', async () => {
    const runUrl = page.url();
    // The canary: its machine fails demo-broken (one failure allowed), soaks, then waits for an approval.
    const gate = page.getByRole('region', { name: /waits for approval/ });
    await gate.waitFor({ timeout: 120_000 });
    expect(await page.getByRole('heading', { name: 'Ring 1 (canary) waits for approval' }).count()).toBe(1);
    expect(await gate.locator('.gate-why').innerText()).toMatch(/^Waiting for an operator’s approval: 1 machine finished, 1 failed, within its gate \(at most 1 may fail · soak 2 s · an operator’s approval\); Ring 2 \(early\) starts once approved\.$/);
    expect(await ringStatuses(page)).toEqual(['WAITING_FOR_APPROVAL', 'PENDING', 'PENDING']);
    expect(await ringRow(page, 1).locator('td').first().innerText()).toBe('Machines: debian-01');
    expect(await ringRow(page, 2).locator('td').first().innerText()).toBe('Filter: name contains “rocky”');
    const updateSet = page.getByRole('region', { name: 'Approved update set' });
    expect(await updateSet.locator('tbody tr').allInnerTexts()).toEqual(['demo-broken\t1.1-1', 'demo-libssl\t1.1-1', 'demo-tool\t1.1-1', 'linux-image-demo\t5.1-1']);
    await shot(page, '03-run-waiting-for-approval');

    // A VIEWER sees the same gate and why, but no button to act on it.
    await viewerPage.goto(runUrl);
    const viewerGate = viewerPage.getByRole('region', { name: /waits for approval/ });
    await viewerGate.waitFor();
    expect(await viewerGate.innerText()).toMatch(/An OPERATOR or ADMIN can approve or reject this ring; your role may only look\./);
    expect(await viewerPage.getByRole('button', { name: /Approve|Reject|Cancel run/ }).count()).toBe(0);
    await shot(viewerPage, '04-run-waiting-viewer');

    await page.getByRole('button', { name: 'Approve Ring 1 (canary)' }).click();
    // Ring 2 has no failure to spare: the Rocky machine's demo-broken halts the run.
    const halted = page.getByRole('region', { name: 'Run halted at Ring 2 (early)' });
    await halted.waitFor({ timeout: 120_000 });
    // The gate and the run's badge come from two live reads: the badge may follow a moment later.
    await expect.poll(() => runStatus(page), { timeout: 15_000 }).toBe('Halted');
    expect(await halted.locator('.gate-why').innerText()).toBe('Halted: early: 1 of 1 machine(s) failed; its gate allows none may fail. Resume the run to go on, or cancel it.');
    expect(await ringStatuses(page)).toEqual(['PROMOTED', 'HALTED', 'PENDING']);
    expect(await ringRow(page, 1).locator('td').last().innerText()).toMatch(/^Promoted by test OPERATOR/);
    // The watching VIEWER's page moved too, without a reload.
    await viewerPage.getByRole('region', { name: 'Run halted at Ring 2 (early)' }).waitFor();
    expect(await viewerPage.getByRole('button', { name: /Resume|Cancel run/ }).count()).toBe(0);
    await shot(page, '05-run-halted');

    await halted.getByRole('button', { name: 'Resume run' }).click();
    await expect.poll(() => runStatus(page), { timeout: 120_000 }).toBe('Partially failed');
    expect(await ringStatuses(page)).toEqual(['PROMOTED', 'PROMOTED', 'DONE']);
    expect(await page.getByRole('region', { name: /waits for approval|Run halted/ }).count()).toBe(0);
    // Each machine run says its ring.
    for (const [name, ring] of [['debian-01', 1], ['rocky-01', 2], ['sles-01', 3]] as const) {
      expect(await page.locator(`section.machine-run[data-machine="${name}"] .machine-run-head`).innerText()).toContain(`Ring ${ring}`);
    }
    await shot(page, '06-run-ended');

    // The deployment's page lists its rings and gates.
    await page.getByRole('link', { name: 'rings from the console' }).first().click();
    await page.getByRole('heading', { name: 'Rings (3)' }).waitFor();
    deploymentUrl = page.url();
    expect(await page.locator('ol.deployment-rings li').allInnerTexts()).toEqual([
      'canary: 1 chosen machine. Gate: at most 1 may fail · soak 2 s · an operator’s approval.',
      'early: Filter: name contains “rocky”. Gate: none may fail.',
      'everyone else: 100 % of the targets left. Gate: Last ring: nothing after it.',
    ]);
  }, 360_000);

  it('rejects a waiting ring with a reason: the run ends canceled with it', async () => {
    await page.goto(deploymentUrl);
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.waitForURL(/\/runs\//);
    const gate = page.getByRole('region', { name: 'Ring 1 (canary) waits for approval' });
    await gate.waitFor({ timeout: 120_000 });
    await gate.getByRole('button', { name: 'Reject…' }).click();
    // A reason is required: the API's refusal is shown, and nothing changes.
    await gate.getByRole('button', { name: 'Reject Ring 1 (canary)' }).click();
    await expect.poll(() => gate.getByRole('alert').innerText()).toMatch(/reason/);
    await gate.getByLabel(/Why reject Ring 1 \(canary\)\?/).fill('latency doubled on the canary');
    await gate.getByRole('button', { name: 'Reject Ring 1 (canary)' }).click();
    await expect.poll(() => runStatus(page), { timeout: 60_000 }).toBe('Canceled');
    expect(await page.locator('.run-head .alert').innerText()).toBe('canary was rejected by test OPERATOR: latency doubled on the canary');
    expect(await ringStatuses(page)).toEqual(['REJECTED', 'CANCELED', 'CANCELED']);
    await shot(page, '07-run-rejected');
  }, 240_000);

  it('cancels a halted run from its gate', async () => {
    await page.goto(deploymentUrl);
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.waitForURL(/\/runs\//);
    await page.getByRole('button', { name: 'Approve Ring 1 (canary)' }).click({ timeout: 120_000 });
    const halted = page.getByRole('region', { name: 'Run halted at Ring 2 (early)' });
    await halted.waitFor({ timeout: 120_000 });
    // One Cancel button, at the gate.
    expect(await page.getByRole('button', { name: 'Cancel run' }).count()).toBe(1);
    await halted.getByRole('button', { name: 'Cancel run' }).click();
    await expect.poll(() => runStatus(page), { timeout: 60_000 }).toBe('Canceled');
    expect(await ringStatuses(page)).toEqual(['PROMOTED', 'CANCELED', 'CANCELED']);
    await shot(page, '08-run-halted-canceled');
  }, 240_000);

  it('reported no Content-Security-Policy violation on any page', () => {
    expect(cspViolations).toEqual([]);
  });
});
