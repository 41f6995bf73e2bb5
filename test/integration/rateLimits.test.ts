import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { machineFacts } from '../../testkit/agentFacts.js';
import { connectTestDatabase, freshDatabase, graphql, startTestApi, temporalSettings, tokenFor } from '../support/env.js';
import { enrollMachine } from '../support/machines.js';

describe('rate limits per token, per agent and per enrolling address', () => {
  let api: ApiServer;
  let database: Database;
  let drop: () => Promise<void>;
  let base: string;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    // 6 a minute: bursts of 10, then one each ten seconds (slow enough that no test run refills one).
    api = await startTestApi(temporalSettings(), {
      databaseUrl: fresh.url,
      env: { FLEETPATCH_API_RATE_LIMIT: '6', FLEETPATCH_AGENT_RATE_LIMIT: '6', FLEETPATCH_ENROLL_RATE_LIMIT: '6' },
    });
    base = api.url.replace('/graphql', '');
  });

  afterAll(async () => {
    await api.close();
    await database.close();
    await drop();
  });

  it('answers 429 RATE_LIMITED with Retry-After to a token over its rate, while another token goes on', async () => {
    const busy = await tokenFor(database, 'VIEWER');
    const calm = await tokenFor(database, 'VIEWER');
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 12; i++) {
      const response = await fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${busy}` }, body: '{"query":"{ machines { totalCount } }"}' });
      statuses.push(response.status);
      if (response.status === 429) limited = response;
      else await response.text();
    }
    expect(statuses.slice(0, 10).every((s) => s === 200)).toBe(true);
    expect(statuses.slice(10)).toEqual([429, 429]);
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const body = (await limited!.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(body.errors[0]).toMatchObject({ extensions: { code: 'RATE_LIMITED' }, message: expect.stringMatching(/retry in \d+ s.*FLEETPATCH_API_RATE_LIMIT/) });

    const other = await graphql(api.url, '{ machines { totalCount } }', { token: calm });
    expect(other.status).toBe(200);
  });

  it('limits each machine credential on its own, and enrollment attempts per address', async () => {
    const admin = await tokenFor(database, 'ADMIN');
    const key = await graphql<{ createEnrollmentKey: { secret: string } }>(api.url, 'mutation { createEnrollmentKey(input: {description: "rate"}) { secret } }', { token: admin });
    const secret = key.data!.createEnrollmentKey.secret;
    const first = await enrollMachine(base, secret);
    const second = await enrollMachine(base, secret);
    const checkIn = (credential: string) =>
      fetch(`${base}/agent/v1/checkin`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` }, body: JSON.stringify({ facts: machineFacts() }) });
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await checkIn(first.credential)).status);
    expect(statuses.filter((s) => s === 429).length).toBe(2);
    const limited = await checkIn(first.credential);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await limited.json()).toMatchObject({ error: { code: 'RATE_LIMITED', message: expect.stringMatching(/FLEETPATCH_AGENT_RATE_LIMIT/) } });
    expect((await checkIn(second.credential)).status).toBe(200);

    // Guessing enrollment keys from one address: after the burst (2 used above), refused without a lookup.
    const guesses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${base}/agent/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enrollmentKey: `fpe_guess${i}`, facts: machineFacts() }) });
      guesses.push(response.status);
    }
    expect(guesses.slice(0, 8).every((s) => s === 403)).toBe(true);
    expect(guesses.slice(8)).toEqual([429, 429]);
  });
});
