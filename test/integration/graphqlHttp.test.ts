import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { startApiOnFreshDatabase, tokenFor } from '../support/env.js';

const GRAPHQL_RESPONSE = 'application/graphql-response+json';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * GraphQL over HTTP as scripts and generic clients speak it, over real HTTP: the response media
 * type they ask for, queries over GET (never mutations, and not without the header that keeps a
 * cross-site page from sending them), and automatic persisted queries (a hash instead of the text).
 */
describe('GraphQL over HTTP conventions', () => {
  let api: ApiServer;
  let database: Database;
  let close: (() => Promise<void>) | undefined;
  let admin: string;

  // A database of its own: the test counts every API token, and another file's tokens may be made
  // meanwhile (files run side by side).
  beforeAll(async () => {
    ({ api, database, close } = await startApiOnFreshDatabase());
    admin = await tokenFor(database, 'ADMIN');
  });

  afterAll(async () => {
    await close?.();
  });

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}`, ...headers }, body: JSON.stringify(body) });
  const get = (params: Record<string, unknown>, headers: Record<string, string> = { 'apollo-require-preflight': 'true' }) => {
    const url = new URL(api.url);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, typeof value === 'string' ? value : JSON.stringify(value));
    return fetch(url, { headers: { authorization: `Bearer ${admin}`, ...headers } });
  };
  const tokenCount = async () => Number((await database.sql`select count(*)::int as n from api_tokens`)[0]!.n);

  it('answers application/graphql-response+json to a client that asks for it, application/json otherwise', async () => {
    const asked = await post({ query: '{ systemStatus { database { state } } }' }, { accept: `${GRAPHQL_RESPONSE}, application/json;q=0.9` });
    expect(asked.status).toBe(200);
    expect(asked.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
    expect(await asked.json()).toEqual({ data: { systemStatus: { database: { state: 'UP' } } } });

    // A document that does not validate: 400 in the new media type (the spec's rule), with the error.
    const invalid = await post({ query: '{ systemStatus { noSuchField } }' }, { accept: GRAPHQL_RESPONSE });
    expect(invalid.status).toBe(400);
    expect(invalid.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
    expect(await invalid.json()).toMatchObject({ errors: [{ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }] });

    for (const accept of [undefined, 'application/json', '*/*']) {
      const plain = await post({ query: '{ systemStatus { database { state } } }' }, accept ? { accept } : {});
      expect(plain.headers.get('content-type'), String(accept)).toMatch(/^application\/json/);
    }

    // Refused before Apollo (a body too large): the same media type as asked.
    const tooLarge = await post({ query: '{ systemStatus { database { state } } }', variables: { padding: 'x'.repeat(1_100_000) } }, { accept: GRAPHQL_RESPONSE });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.headers.get('content-type')).toMatch(/^application\/graphql-response\+json/);
    expect(await tooLarge.json()).toMatchObject({ errors: [{ extensions: { code: 'PAYLOAD_TOO_LARGE' } }] });
  });

  it('runs queries over GET, with variables, but never a mutation, and not without the header a cross-site page cannot send', async () => {
    const answer = await get({ query: 'query Tokens($n: Int!) { apiTokens(first: $n) { totalCount edges { node { id } } } }', variables: { n: 1 } });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ data: { apiTokens: { totalCount: expect.any(Number), edges: [{ node: { id: expect.any(String) } }] } } });

    const before = await tokenCount();
    const mutation = await get({ query: 'mutation { createApiToken(input: { name: "over GET", role: VIEWER }) { secret } }' });
    expect(mutation.status).toBe(405);
    expect(mutation.headers.get('allow')).toBe('POST');
    expect(await mutation.json()).toMatchObject({ errors: [{ message: expect.stringMatching(/GET requests only support query operations/) }] });
    expect(await tokenCount()).toBe(before);

    // A plain GET (what an <img> or a link on another site sends) is refused before it runs.
    const simple = await get({ query: '{ systemStatus { database { state } } }' }, {});
    expect(simple.status).toBe(400);
    expect(await simple.text()).toMatch(/CSRF/);
    // So is a POST a form on another site can send (not application/json, no such header).
    const form = await fetch(api.url, { method: 'POST', headers: { 'content-type': 'text/plain', authorization: `Bearer ${admin}` }, body: JSON.stringify({ query: 'mutation { createApiToken(input: { name: "by a form", role: ADMIN }) { secret } }' }) });
    expect(form.status).toBe(400);
    expect(await form.text()).toMatch(/CSRF/);
    expect(await tokenCount()).toBe(before);
  });

  it('runs a query sent as the hash of its text once the server has seen the text (automatic persisted queries), over POST and GET', async () => {
    const query = `query Persisted { systemStatus { database { state } } } # ${Math.random()}`;
    const persistedQuery = { version: 1, sha256Hash: sha256(query) };

    // Unknown hash: the client is told to send the text once.
    const unknown = await post({ extensions: { persistedQuery } });
    expect(await unknown.json()).toMatchObject({ errors: [{ extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } }] });

    // A text that does not match its hash is refused, and not stored under it.
    const wrong = await post({ query: '{ systemStatus { version } }', extensions: { persistedQuery } });
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toEqual({ errors: [{ message: 'provided sha does not match query', extensions: { code: 'BAD_REQUEST' } }] });

    const registered = await post({ query, extensions: { persistedQuery } });
    expect(await registered.json()).toEqual({ data: { systemStatus: { database: { state: 'UP' } } } });

    const byHash = await post({ extensions: { persistedQuery } });
    expect(await byHash.json()).toEqual({ data: { systemStatus: { database: { state: 'UP' } } } });
    const byHashOverGet = await get({ extensions: { persistedQuery } });
    expect(byHashOverGet.status).toBe(200);
    expect(await byHashOverGet.json()).toEqual({ data: { systemStatus: { database: { state: 'UP' } } } });

    // A hashed document is checked like any other: the token's role, the limits.
    const withoutToken = await fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ extensions: { persistedQuery } }) });
    expect(await withoutToken.json()).toMatchObject({ errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
  });
});
