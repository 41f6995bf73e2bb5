import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor } from '../support/env.js';
import { fleetStackEnv } from '../support/fleet.js';
import { enrollMachine } from '../support/machines.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';
import { startWebhookReceiver } from '../support/webhookReceiver.js';

/** Debian's chromium (`.ci/run` installs it); CHROMIUM_PATH points elsewhere. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = new URL('../../test-artifacts/web-console/', import.meta.url).pathname;

/**
 * The console's webhooks page in a real headless Chromium against the server and the worker as
 * processes: an admin creates a webhook from the form (a bad URL is refused at its field), sees its
 * secret once, starts a run, and watches the delivery log show the retried delivery land at a
 * real receiver.
 */
describe('the webhooks page of the console', () => {
  let server: Spawned;
  let worker: Spawned;
  let base: string;
  let database: Database;
  let drop: () => Promise<void>;
  let admin: string;
  let browser: Browser;
  let page: Page;
  let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;

  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const ask = async <T,>(q: string, variables?: Record<string, unknown>): Promise<T> => {
    const response = await graphql<T>(`${base}/graphql`, q, { token: admin, variables });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!;
  };

  beforeAll(async () => {
    if (!fs.existsSync(CHROMIUM)) throw new Error(`No Chromium at ${CHROMIUM}: install the Debian package chromium (apt-get install chromium), or set CHROMIUM_PATH.`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    admin = await tokenFor(database, 'ADMIN');
    receiver = await startWebhookReceiver();
    const port = await freePort();
    const env = {
      ...fleetStackEnv({ databaseUrl: fresh.url, temporalAddress: temporalSettings().address, port, taskQueue: `webhooks-web-${randomUUID()}` }),
      FLEETPATCH_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/32',
      FLEETPATCH_WEBHOOK_RETRY_DELAYS: '1,1,1',
      FLEETPATCH_WEBHOOK_POLL_SECONDS: '0.5',
    };
    base = `http://127.0.0.1:${port}`;
    server = spawnFleetpatch(['server'], env);
    worker = spawnFleetpatch(['worker'], env);
    await Promise.all([
      server.waitFor(/"msg":"API listening"/),
      worker.waitFor(/"msg":"worker polling"/),
      (async () => {
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
      })(),
    ]);
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (worker) await stop(worker);
    if (server) await stop(server);
    await receiver?.close();
    await database?.close();
    await drop?.();
  });

  it('creates a webhook from the form, shows its secret once, and shows the retried delivery land', async () => {
    await page.goto(`${base}/`);
    await page.getByLabel('API token').fill(admin);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview', exact: true }).waitFor();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();
    await page.getByRole('heading', { name: 'Webhooks', exact: true }).waitFor();
    await page.getByText('No webhook yet.').waitFor();

    // A URL that is not http(s): refused, the message at the field, the field focused.
    await page.getByLabel('URL').fill('ftp://hooks.example.com/x');
    await page.getByRole('button', { name: 'Create webhook' }).click();
    await page.getByText('Fix the fields marked below.').waitFor();
    expect(await page.getByLabel('URL').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#webhook-url-error').textContent()).toMatch(/http:\/\/ or https:\/\//);
    expect(await page.evaluate('document.activeElement?.id')).toBe('webhook-url');
    await shot('webhooks-01-bad-url');

    receiver.answer('/console', [500]);
    await page.getByLabel('URL').fill(receiver.url('/console'));
    await page.getByLabel('Run started').check();
    await page.getByLabel('Description (optional)').fill('console test');
    await page.getByRole('button', { name: 'Create webhook' }).click();
    const secret = (await page.getByTestId('webhook-secret').textContent())!;
    expect(secret).toMatch(/^fpw_[A-Za-z0-9_-]{43}$/);
    receiver.secret('/console', secret);
    await page.getByRole('region', { name: 'Webhooks' }).getByText(receiver.url('/console')).waitFor();
    expect(await page.getByRole('region', { name: 'Webhooks' }).textContent()).toContain('Run started, Run ended');
    await shot('webhooks-02-created');

    // A run whose only machine was taken out of update management starts and ends at once: two
    // events, the first delivery answered 500 once.
    const key = await ask<{ createEnrollmentKey: { secret: string } }>('mutation { createEnrollmentKey(input: {description: "webhooks page"}) { secret } }');
    const { machineId } = await enrollMachine(base, key.createEnrollmentKey.secret, { facts: { hostname: 'console-hook-01' } });
    const deployment = await ask<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      input: { name: 'console hooks', osType: 'LINUX', machineIds: [machineId], classifications: ['SECURITY'], windowMinutes: 30, onDemandOnly: true },
    });
    await ask('mutation($id: ID!) { setMachineManagement(machineId: $id, enabled: false) { id } }', { id: machineId });
    await ask('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: deployment.createDeployment.id });

    await page.getByRole('button', { name: 'Deliveries' }).click();
    const log = page.getByRole('region', { name: 'Deliveries' });
    const rows = async () => (await log.locator('tbody tr').allInnerTexts()).map((row) => row.split('\t').map((cell) => cell.trim()));
    await expect.poll(async () => (await rows()).map((cells) => `${cells[0]} | ${cells[1]}`).sort(), { timeout: 60_000, interval: 500 }).toEqual(['Run ended | Delivered', 'Run started | Delivered']);
    // Whichever of the two reached the receiver first took its 500 and was delivered at its second attempt.
    expect((await rows()).map((cells) => cells[2]).sort()).toEqual(['1', '2']);
    expect(receiver.received.map((r) => r.status)).toEqual([500, 200, 200]);
    expect(receiver.received.map((r) => r.signatureProblem)).toEqual([null, null, null]);
    await shot('webhooks-03-delivery-log');

    // The secret was shown once: after a reload the page has it nowhere.
    await page.reload();
    await page.getByRole('region', { name: 'Webhooks' }).getByText(receiver.url('/console')).waitFor();
    expect(await page.content()).not.toContain(secret);
  }, 120_000);
});
