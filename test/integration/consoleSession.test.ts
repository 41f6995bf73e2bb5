import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiServer } from '../../src/api/server.js';
import type { Database } from '../../src/db/client.js';
import { createApiToken } from '../../src/db/tokens.js';
import { connectTestDatabase, freshDatabase, startTestApi, temporalSettings } from '../support/env.js';
import { stillDelivers } from '../support/signals.js';
import { openSubscription } from '../support/subscriptions.js';

/**
 * The web console's session, as a browser uses it: a token exchanged for an HttpOnly,
 * SameSite=Strict cookie, the cookie on GraphQL requests and on the subscription socket, and the
 * ways a session ends (sign-out, expiry, its token revoked), on two API replicas.
 */
describe('console sessions', () => {
  let first: ApiServer;
  let second: ApiServer;
  let database: Database;
  let drop: () => Promise<void>;
  const clients: Client[] = [];

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    const temporal = temporalSettings();
    [first, second] = await Promise.all([startTestApi(temporal, { databaseUrl: fresh.url }), startTestApi(temporal, { databaseUrl: fresh.url })]);
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await first.close();
    await second.close();
    await database.close();
    await drop();
  });

  const base = (api: ApiServer) => api.url.replace('/graphql', '');
  /** What a browser on the console's page sends: its own origin. */
  const ownOrigin = (api: ApiServer) => ({ origin: base(api) });

  async function signIn(api: ApiServer, token: string, headers: Record<string, string> = ownOrigin(api)) {
    const response = await fetch(`${base(api)}/session`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ token }) });
    const body = (await response.json()) as { session?: { role: string; name: string; expiresAt: string | null }; errors?: Array<{ message: string; extensions: { code: string; field?: string } }> };
    const setCookie = response.headers.get('set-cookie');
    return { status: response.status, body, setCookie, cookie: setCookie?.split(';')[0] ?? '' };
  }

  async function query(api: ApiServer, cookie: string, text: string, headers: Record<string, string> = ownOrigin(api)) {
    const response = await fetch(api.url, { method: 'POST', headers: { 'content-type': 'application/json', cookie, ...headers }, body: JSON.stringify({ query: text }) });
    return { status: response.status, ...((await response.json()) as { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions: { code: string } }> }) };
  }

  const socket = async (api: ApiServer, cookie: string, headers: Record<string, string> = ownOrigin(api)) => {
    const opened = await openSubscription(api.url, { headers: { cookie, ...headers } });
    clients.push(opened.client);
    return opened;
  };

  const token = async (role: 'VIEWER' | 'OPERATOR' | 'ADMIN', expiresAt?: Date) => createApiToken(database.db, { name: `console ${role}`, role, expiresAt });

  it('serves the console with a strict CSP, no framing, nosniff and no referrer, and no answer says what it is built with', async () => {
    const page = await fetch(`${base(first)}/computers`, { headers: { accept: 'text/html' } });
    const csp = page.headers.get('content-security-policy')!;
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'"]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');

    const answers = await Promise.all([
      fetch(`${base(first)}/`, { headers: { accept: 'text/html' } }),
      fetch(`${base(first)}/assets/no-such-file.js`),
      fetch(first.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query": "{ __typename }"}' }),
      fetch(first.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query": ' }),
      fetch(`${first.url}?query=%7B__typename%7D`, { headers: { 'apollo-require-preflight': 'true' } }),
      fetch(`${base(first)}/healthz`),
      fetch(`${base(first)}/readyz`),
      fetch(`${base(first)}/metrics`),
      fetch(`${base(first)}/session`),
      fetch(`${base(first)}/session`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' }),
      fetch(`${base(first)}/no/such/path`, { method: 'POST' }),
      fetch(`${base(first)}/agent/v1/checkin`, { method: 'POST' }),
    ]);
    expect(answers.map((a) => a.headers.get('x-powered-by'))).toEqual(answers.map(() => null));
  });

  it('signs in with a token into an HttpOnly, SameSite=Strict cookie, refusing a wrong token, a body that is not JSON and another origin', async () => {
    const viewer = await token('VIEWER');
    const wrong = await signIn(first, `fp_${'x'.repeat(43)}`);
    expect(wrong).toMatchObject({ status: 401, setCookie: null, body: { errors: [{ message: expect.stringMatching(/unknown, revoked or expired/), extensions: { code: 'UNAUTHENTICATED', field: 'token' } }] } });
    const [refusal] = await database.sql`select actor_kind, outcome from audit_events where action = 'consoleSignIn' order by id desc limit 1`;
    expect(refusal).toEqual({ actor_kind: 'ANONYMOUS', outcome: 'UNAUTHENTICATED' });

    const form = await fetch(`${base(first)}/session`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...ownOrigin(first) }, body: `token=${viewer.secret}` });
    expect(form.status).toBe(415);
    expect(form.headers.get('set-cookie')).toBeNull();
    const elsewhere = await signIn(first, viewer.secret, { origin: 'https://evil.example' });
    expect(elsewhere).toMatchObject({ status: 403, setCookie: null, body: { errors: [{ extensions: { code: 'FORBIDDEN' } }] } });

    const signed = await signIn(first, viewer.secret);
    expect(signed.status).toBe(201);
    expect(signed.body.session).toMatchObject({ role: 'VIEWER', name: 'console VIEWER' });
    const attributes = signed.setCookie!.split(';').map((a) => a.trim());
    expect(attributes[0]).toMatch(/^fleetpatch_session=fps_[A-Za-z0-9_-]{43}$/);
    expect(attributes).toEqual(expect.arrayContaining(['HttpOnly', 'SameSite=Strict', 'Path=/']));
    const maxAge = Number(attributes.find((a) => a.startsWith('Max-Age='))!.slice('Max-Age='.length));
    expect(maxAge).toBeGreaterThan(11.9 * 3600);
    expect(maxAge).toBeLessThanOrEqual(12 * 3600);
    // The cookie holds a session, not the token: only its hash is stored, tied to the token.
    const stored = await database.sql`select token_id, secret_hash from console_sessions`;
    expect(JSON.stringify(stored)).not.toContain(signed.cookie.split('=')[1]);
    expect(stored.some((s) => s.token_id === viewer.id)).toBe(true);

    const who = await fetch(`${base(second)}/session`, { headers: { cookie: signed.cookie } });
    expect(await who.json()).toMatchObject({ session: { role: 'VIEWER', name: 'console VIEWER' } });

    // A token that expires within the day: the session ends with it.
    const shortLived = await token('OPERATOR', new Date(Date.now() + 3_600_000));
    const short = await signIn(first, shortLived.secret);
    expect(Number(/Max-Age=(\d+)/.exec(short.setCookie!)![1])).toBeLessThanOrEqual(3600);
    expect(Date.parse(short.body.session!.expiresAt!)).toBeLessThanOrEqual(Date.now() + 3_600_000);
  });

  it("acts with its token's role over HTTP and the WebSocket, from the console's own origin only", async () => {
    const viewer = await token('VIEWER');
    const { cookie } = await signIn(first, viewer.secret);

    expect(await query(second, cookie, '{ machines { totalCount } }')).toMatchObject({ status: 200, data: { machines: { totalCount: 0 } } });
    const tooLow = await query(second, cookie, '{ apiTokens { totalCount } }');
    expect(tooLow.errors?.[0]?.extensions.code).toBe('FORBIDDEN');
    // Another site's page: refused outright, whatever it asks.
    const foreign = await query(second, cookie, '{ machines { totalCount } }', { origin: 'https://evil.example' });
    expect(foreign).toMatchObject({ status: 403, errors: [{ extensions: { code: 'FORBIDDEN' } }] });
    // A request a page can send without a preflight (a form's content type): Apollo's CSRF prevention stops it.
    const simple = await fetch(second.url, { method: 'POST', headers: { 'content-type': 'text/plain', cookie }, body: JSON.stringify({ query: '{ machines { totalCount } }' }) });
    expect(simple.status).toBe(400);
    expect(await simple.text()).toMatch(/CSRF/);

    const opened = await socket(second, cookie);
    expect(opened.client).toBeDefined();
    await expect(openSubscription(second.url, { headers: { cookie, origin: 'https://evil.example' } })).rejects.toThrow(/4403/);
    await expect(openSubscription(second.url, { headers: { cookie } })).rejects.toThrow(/4403/);
  });

  it('signs out: the session ends on every replica, its sockets close, its cookie is cleared and refused', async () => {
    const operator = await token('OPERATOR');
    const { cookie } = await signIn(first, operator.secret);
    const onSecond = await socket(second, cookie);
    // The same token presented by another client keeps its own socket.
    const direct = await openSubscription(second.url, { token: operator.secret });
    clients.push(direct.client);

    const out = await fetch(`${base(first)}/session`, { method: 'DELETE', headers: { cookie, ...ownOrigin(first) } });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/^fleetpatch_session=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict/);
    expect(await onSecond.closed).toMatchObject({ code: 4403, reason: 'The console session ended: signed out.' });
    expect(await query(second, cookie, '{ machines { totalCount } }')).toMatchObject({ status: 401, errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
    expect((await fetch(`${base(first)}/session`, { headers: { cookie } })).status).toBe(401);
    // The token's own socket still receives an event sent after the sign-out reached its replica.
    await stillDelivers(database, direct);
  });

  it('ends with its token: revoked, the session is refused and its sockets close', async () => {
    const admin = await token('ADMIN');
    const { cookie } = await signIn(first, admin.secret);
    const opened = await socket(second, cookie);
    await database.sql`update api_tokens set revoked_at = now() where id = ${admin.id}`;
    expect(await opened.closed).toMatchObject({ code: 4403, reason: 'The API token was revoked.' });
    expect(await query(first, cookie, '{ machines { totalCount } }')).toMatchObject({ status: 401, errors: [{ message: expect.stringMatching(/Sign in again/) }] });
  });

  it('expires: at its expiry its socket closes and its cookie is refused', async () => {
    const viewer = await token('VIEWER');
    const { cookie } = await signIn(first, viewer.secret);
    const opened = await socket(second, cookie);
    const expiresAt = new Date(Date.now() + 1500);
    await database.sql`update console_sessions set expires_at = ${expiresAt.toISOString()}::timestamptz where token_id = ${viewer.id}`;
    const end = await opened.closed;
    expect(end).toMatchObject({ code: 4403, reason: 'The console session expired.' });
    expect(end.at).toBeGreaterThanOrEqual(expiresAt.getTime());
    expect(end.at - expiresAt.getTime()).toBeLessThan(1500);
    expect((await query(first, cookie, '{ machines { totalCount } }')).status).toBe(401);
  });
});
