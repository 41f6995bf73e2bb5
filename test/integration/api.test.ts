import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import { connectTestDatabase, graphql, startTestApi, temporalSettings, tokenFor } from '../support/env.js';

describe('the GraphQL API over HTTP', () => {
  const database = connectTestDatabase();
  let api: ApiServer;
  let viewer: string;
  let operator: string;

  beforeAll(async () => {
    api = await startTestApi(temporalSettings());
    viewer = await tokenFor(database, 'VIEWER');
    operator = await tokenFor(database, 'OPERATOR');
  });

  afterAll(async () => {
    await api.close();
    await database.close();
  });

  it('answers { __typename } without a token', async () => {
    const response = await graphql(api.url, '{ __typename }');
    expect(response).toMatchObject({ status: 200, data: { __typename: 'Query' } });
  });

  it('asks for a token on a protected field, and refuses an unknown one', async () => {
    const anonymous = await graphql(api.url, '{ systemStatus { version } }');
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(anonymous.errors?.[0]?.message).toMatch(/Authorization: Bearer/);

    const unknown = await graphql(api.url, '{ __typename }', { token: 'fp_not-a-real-token' });
    expect(unknown.status).toBe(401);
    expect(unknown.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('reports the database and Temporal as up', async () => {
    const response = await graphql(api.url, '{ systemStatus { version database { state } temporal { state } } }', { token: viewer });
    expect(response.data).toEqual({ systemStatus: { version: '0.1.0', database: { state: 'UP' }, temporal: { state: 'UP' } } });
  });

  it('forbids a viewer from starting work, and says which role is needed', async () => {
    const response = await graphql(api.url, 'mutation { runSelfCheck { id } }', { token: viewer });
    expect(response.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(response.errors?.[0]?.message).toBe('This field needs the OPERATOR role; your token has VIEWER.');
  });

  it('answers bad input with BAD_USER_INPUT naming the field', async () => {
    const response = await graphql(api.url, 'mutation { runSelfCheck(waitSeconds: -5) { id } }', { token: operator });
    expect(response.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'waitSeconds' });
    expect(response.errors?.[0]?.message).toBe('waitSeconds must be between 0 and 3600; got -5.');
  });

  it('serves /healthz and /readyz', async () => {
    const base = api.url.replace('/graphql', '');
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', database: { state: 'UP' }, temporal: { state: 'UP' } });
  });
});
