import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor, waitUntil } from '../support/env.js';
import { buildFixtureMachine, fleetStackEnv, SupervisedAgent } from '../support/fleet.js';
import { enrollmentKey, enrollMachine } from '../support/machines.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/** Debian's chromium (`.ci/run` installs it); CHROMIUM_PATH points elsewhere. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Screenshots of every page, for a person to look at (git-ignored). */
const ARTIFACTS = new URL('../../test-artifacts/web-console-steps/', import.meta.url).pathname;

/**
 * Pre and post steps in the deployment form, in a real headless Chromium against the real server
 * process: an OPERATOR adds a PRE script and a POST call (one header a literal, one the name of a
 * server-side secret), sees the API's refusal of a URL at that step's URL control, fixes it, and
 * the deployment stores the steps as entered. The steps' runs are tested in
 * test/e2e/deploymentSteps.test.ts; here the form is the subject, and the run page showing how
 * each step went on an apt fixture machine with a real agent.
 */
describe('steps in the web console', () => {
  let server: Spawned;
  let worker: Spawned;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-web-steps-'));
  const agents: SupervisedAgent[] = [];
  let base: string;
  let database: Database;
  let drop: () => Promise<void>;
  let operator: string;
  let browser: Browser;
  let page: Page;
  let machineName = '';
  const cspViolations: string[] = [];

  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`No Chromium at ${CHROMIUM}: install the Debian package chromium (apt-get install chromium), or set CHROMIUM_PATH.`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    operator = await tokenFor(database, 'OPERATOR');
    const port = await freePort();
    const env = { ...fleetStackEnv({ databaseUrl: fresh.url, temporalAddress: temporalSettings().address, port, taskQueue: `web-steps-${randomUUID()}` }), FLEETPATCH_STEP_SECRET_CMDB_TOKEN: 'never-shown-0f3c' };
    base = `http://127.0.0.1:${port}`;
    server = spawnFleetpatch(['server'], env);
    worker = spawnFleetpatch(['worker'], env);
    [, , browser] = await Promise.all([server.waitFor(/"msg":"API listening"/), worker.waitFor(/"msg":"worker polling"/), chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] })]);
    machineName = (await enrollMachine(base, await enrollmentKey(database))).name;
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(30_000);
    page.on('console', (message) => {
      if (/Content Security Policy|CSP violation/i.test(message.text())) cspViolations.push(message.text());
    });
    await page.goto(`${base}/`);
    await page.getByLabel('API token').fill(operator);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview', exact: true }).waitFor();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await Promise.all(agents.map((a) => a.kill()));
    if (worker) await stop(worker);
    if (server) await stop(server);
    await database?.close();
    await drop?.();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('creates a deployment with a PRE script and a POST call; a refused URL is shown and focused at its step', async () => {
    await page.getByRole('link', { name: 'Deployments', exact: true }).click();
    await page.getByRole('link', { name: 'New deployment' }).click();
    await page.getByLabel('Name', { exact: true }).fill('steps from the console');
    await page.getByLabel(`Deploy to ${machineName}`).check();
    await page.getByLabel('On demand only (no schedule)').check();
    expect(await page.locator('#steps-help').innerText()).toMatch(/^No steps\./);

    await page.getByRole('button', { name: 'Add step' }).click();
    await page.getByRole('button', { name: 'Add step' }).click();
    // Step 1: a PRE script; its failure defaults to skipping the installs.
    await page.getByLabel('Step 1 name').fill('drain');
    expect(await page.getByLabel('Step 1 on failure').locator('option:checked').innerText()).toBe('Default: skip the installs on the machine');
    await page.getByLabel('Step 1 script text').fill('systemctl stop app\n');
    await page.getByLabel('Step 1 interpreter').fill('bash');
    await page.getByLabel('Step 1 script timeout (seconds)').fill('120');
    // Step 2: a POST call; the default shown follows the phase.
    await page.getByLabel('Step 2 name').fill('tell the cmdb');
    await page.getByLabel('Step 2 phase').selectOption('POST');
    expect(await page.getByLabel('Step 2 on failure').locator('option:checked').innerText()).toBe('Default: fail the machine');
    // A POST step cannot skip installs that already happened: the choice is not offered.
    expect(await page.getByLabel('Step 2 on failure').locator('option[value="SKIP_INSTALLS"]').count()).toBe(0);
    await page.getByLabel('Step 2 on failure').selectOption('CONTINUE');
    await page.locator('li.step[data-step="2"]').getByLabel('An HTTP call from the server').check();
    await page.getByLabel('Step 2 method').selectOption('PUT');
    await page.getByLabel('Step 2 URL').fill('ftp://cmdb.example/hook');
    await page.getByRole('button', { name: 'Add header to step 2' }).click();
    await page.getByLabel('Step 2 header 1 name').fill('X-Team');
    await page.getByLabel('Step 2 header 1 value').fill('ops');
    await page.getByRole('button', { name: 'Add header to step 2' }).click();
    await page.getByLabel('Step 2 header 2 name').fill('Authorization');
    await page.getByLabel('Step 2 header 2 from').selectOption('secret');
    await page.getByLabel('Step 2 header 2 secret name').fill('CMDB_TOKEN');
    await page.getByLabel('Step 2 JSON body (optional)').fill('{"change": "CHG-1"}');
    await page.getByLabel('Step 2 expected statuses').fill('200, 204');
    await page.getByLabel('Step 2 retries').fill('2');

    await page.getByRole('button', { name: 'Create deployment' }).click();
    await page.locator('#form-problems').waitFor();
    await expect.poll(() => page.locator('[id="f-steps[1]-http-url-error"]').textContent()).toBe('steps[1].http.url must be an http or https URL; got "ftp://cmdb.example/hook"');
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('f-steps[1]-http-url');
    await shot('01-form-step-error');

    // Reordering keeps each step's controls: down and back up.
    await page.getByRole('button', { name: 'Move step 1 down' }).click();
    expect(await page.getByLabel('Step 1 name').inputValue()).toBe('tell the cmdb');
    await page.getByRole('button', { name: 'Move step 2 up' }).click();
    expect(await page.getByLabel('Step 1 name').inputValue()).toBe('drain');

    await page.getByLabel('Step 2 URL').fill('https://cmdb.example/hook');
    await page.getByRole('button', { name: 'Create deployment' }).click();
    await page.waitForURL(/\/deployments\/[0-9a-f-]{36}$/);
    // The deployment's page lists them; a header from a secret by the secret's name.
    await page.getByRole('heading', { name: 'Steps (2)' }).waitFor();
    expect(await page.locator('ol.deployment-steps li').allInnerTexts()).toEqual([
      'drain: PRE, runs its script with bash (timeout 120 s); on failure: skip the installs on the machine.',
      'tell the cmdb: POST, calls PUT https://cmdb.example/hook (timeout 30 s, 2 retries; Authorization from secret CMDB_TOKEN); on failure: record it and go on.',
    ]);
    await shot('02-deployment-created');
    const id = page.url().split('/').pop()!;

    const stored = await graphql<{ deployment: { steps: unknown } }>(
      `${base}/graphql`,
      'query($id: ID!) { deployment(id: $id) { steps { name phase onFailure script { inline path interpreter timeoutSeconds } http { method url headers { name value secret } body expectedStatus timeoutSeconds retries } } } }',
      { token: operator, variables: { id } },
    );
    expect(stored.errors).toBeUndefined();
    expect(stored.data!.deployment.steps).toEqual([
      { name: 'drain', phase: 'PRE', onFailure: 'SKIP_INSTALLS', script: { inline: 'systemctl stop app\n', path: null, interpreter: 'bash', timeoutSeconds: 120 }, http: null },
      {
        name: 'tell the cmdb',
        phase: 'POST',
        onFailure: 'CONTINUE',
        script: null,
        http: {
          method: 'PUT',
          url: 'https://cmdb.example/hook',
          headers: [{ name: 'X-Team', value: 'ops', secret: null }, { name: 'Authorization', value: null, secret: 'CMDB_TOKEN' }],
          body: { change: 'CHG-1' },
          expectedStatus: [200, 204],
          timeoutSeconds: 30,
          retries: 2,
        },
      },
    ]);
    // The secret's value went nowhere near the console.
    expect(JSON.stringify(stored.data)).not.toContain('never-shown');
  }, 120_000);

  it('says a body that is not JSON at its control, without asking the API', async () => {
    await page.getByRole('link', { name: 'Deployments', exact: true }).click();
    await page.getByRole('link', { name: 'New deployment' }).click();
    await page.getByRole('button', { name: 'Add step' }).click();
    await page.locator('li.step[data-step="1"]').getByLabel('An HTTP call from the server').check();
    await page.getByLabel('Step 1 JSON body (optional)').fill('{oops');
    await page.getByRole('button', { name: 'Create deployment' }).click();
    await expect.poll(() => page.locator('[id="f-steps[0]-http-body-error"]').textContent()).toMatch(/^The body is not JSON/);
    await expect.poll(() => page.evaluate('document.activeElement?.id')).toBe('f-steps[0]-http-body');
  });

  it("shows on the run page how each step went on each machine: times, exit code or HTTP status, the failure's message", async () => {
    const machine = await buildFixtureMachine(work, 'apt', '-steps');
    const key = await enrollmentKey(database, 'web steps');
    agents.push(new SupervisedAgent(machine, base, key).start());
    type Listed = { machines: { edges: Array<{ node: { id: string; name: string; lastAssessedAt: string | null } }> } };
    const assessed = await waitUntil(
      async () => (await graphql<Listed>(`${base}/graphql`, '{ machines(first: 50) { edges { node { id name lastAssessedAt } } } }', { token: operator })).data!.machines.edges.map((e) => e.node),
      (ms) => ms.some((m) => m.name === machine.name && m.lastAssessedAt),
      120_000,
      'the fixture machine assessed',
    );
    const input = {
      name: 'steps on the run page',
      osType: 'LINUX',
      machineIds: [assessed.find((m) => m.name === machine.name)!.id],
      classifications: ['CRITICAL', 'SECURITY'],
      excludePatterns: ['demo-broken'],
      windowMinutes: 60,
      rebootSetting: 'NEVER',
      onDemandOnly: true,
      steps: [
        { name: 'drain', phase: 'PRE', script: { inline: 'echo drained\n', timeoutSeconds: 60 } },
        { name: 'health', phase: 'POST', http: { method: 'GET', url: `${base}/healthz`, expectedStatus: [200] } },
        { name: 'tell nobody', phase: 'POST', onFailure: 'CONTINUE', http: { method: 'POST', url: `${base}/no-such-hook`, retries: 1, timeoutSeconds: 5 } },
      ],
    };
    const created = await graphql<{ createDeployment: { id: string } }>(`${base}/graphql`, 'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', { token: operator, variables: { input } });
    expect(created.errors).toBeUndefined();
    await page.goto(`${base}/deployments/${created.data!.createDeployment.id}`);
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.waitForURL(/\/runs\//);

    const steps = page.getByRole('region', { name: `Steps on ${machine.name}` });
    const rows = steps.locator('tbody tr');
    // The page reads a machine's step results again when its machine run ends.
    await expect.poll(() => rows.evaluateAll((trs) => trs.map((r) => `${r.getAttribute('data-step')} ${r.getAttribute('data-status')}`)), { timeout: 120_000 }).toEqual(['drain SUCCEEDED', 'health SUCCEEDED', 'tell nobody FAILED']);
    const cells = async (name: string) => (await steps.locator(`tr[data-step="${name}"] td`).allInnerTexts()).map((t) => t.trim());
    const drain = await cells('drain');
    expect(drain.slice(0, 4)).toEqual(['drain', 'PRE', 'Script on the machine', 'Succeeded']);
    expect(drain[4]).not.toBe('—');
    expect(drain[6]).toBe('exit code 0');
    expect((await cells('health'))[6]).toBe('HTTP 200');
    const failed = await cells('tell nobody');
    expect(failed.slice(0, 4)).toEqual(['tell nobody', 'POST', 'Call from the server', 'Failed then continue']);
    expect(failed[6]).toMatch(/^HTTP 404 · 2 attempts\n\S/);
    await shot('03-run-step-results');
  }, 240_000);

  it('reported no Content-Security-Policy violation on any page', () => {
    expect(cspViolations).toEqual([]);
  });
});
