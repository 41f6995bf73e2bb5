import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { KNOWN_OPERATION_NAMES } from '../../src/api/knownOperations.js';
import { TOO_MANY_SOCKETS_CLOSE_CODE } from '../../src/api/subscriptionLimits.js';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../../testkit/agentFacts.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor } from '../support/env.js';
import { enrollMachine } from '../support/machines.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/**
 * Hostile input: at least 10,000 generated malformed or oversized requests to the agent endpoint
 * and to GraphQL, against a real `fleetpatch server` process. Every answer must be a 4xx or a
 * GraphQL error with a code of our vocabulary (never INTERNAL, never a 5xx), the process must
 * stay up, and the database must not change (a fingerprint of every table; the audit log may only
 * gain entries of refused attempts).
 *
 * Payloads are generated from a seeded PRNG (FUZZ_SEED), so a failure can be replayed.
 *
 * Documents that were once too much for the server are among them, and must be refused before
 * anything runs: fragments spreading each other (the depth/cost rule walked them exponentially),
 * thousands of aliases of a field, of systemStatus and of introspection, pages of pending updates
 * aliased fifty times, a run's machine runs' updates at their largest pages aliased twenty times,
 * long made-up operation names (once a metrics label each). No answer, on any path, may be an
 * HTML page or show a stack trace or a file path. Then the subscription socket: more subscriptions
 * than a socket may hold, more sockets than a token may open, and hostile messages.
 */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_126);
const PAYLOADS = Number(process.env.FUZZ_PAYLOADS ?? 10_000);
const CONCURRENCY = 8;

function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick };
}

type Rng = ReturnType<typeof prng>;

/** Values that break types, bounds, encodings and parsers. */
function junkValue(rng: Rng, depth = 0): unknown {
  const choices: Array<() => unknown> = [
    () => null,
    () => -1,
    () => 1e308,
    () => -0,
    () => 2 ** 53 + 1,
    () => '',
    () => 'x'.repeat(rng.pick([256, 5000, 70_000])),
    () => '\u0000\u0001\uffff\ud800',
    () => "'; drop table machines; --",
    () => '{"$gt": ""}',
    () => '../../../../etc/passwd',
    () => '%s%n%x',
    () => '😀'.repeat(300),
    () => true,
    () => [],
    () => ({}),
    () => ({ __proto__: { admin: true } }),
    () => JSON.parse('{"__proto__": {"polluted": 1}, "constructor": {"prototype": {"x": 1}}}'),
    () => (depth < 3 ? Array.from({ length: rng.int(5) }, () => junkValue(rng, depth + 1)) : 0),
    () => (depth < 3 ? { [rng.pick(['a', 'facts', 'id', 'seq', 'updates'])]: junkValue(rng, depth + 1) } : 1),
    () => new Date(rng.int(2 ** 31) * 1000 * rng.pick([1, -1, 100])).getTime(),
    () => 'not-a-date',
    () => randomUUID(),
  ];
  return rng.pick(choices)();
}

/** A valid object with one field set to junk, one removed, or one unknown field added: always invalid for a strict schema. */
function breakObject(rng: Rng, valid: Record<string, unknown>): unknown {
  const copy: Record<string, unknown> = structuredClone(valid);
  const keys = Object.keys(copy);
  const mutations = 1 + rng.int(3);
  for (let i = 0; i < mutations; i++) {
    const key = rng.pick(keys);
    const kind = rng.int(4);
    if (kind === 0) delete copy[key];
    else if (kind === 1) copy[key] = junkValue(rng);
    else if (kind === 2 && copy[key] && typeof copy[key] === 'object' && !Array.isArray(copy[key])) copy[key] = breakObject(rng, copy[key] as Record<string, unknown>);
    else copy[key] = junkValue(rng);
  }
  // The guarantee: a field no schema knows. Strict schemas refuse the whole body for it.
  copy[`unknown_${rng.int(1000)}`] = junkValue(rng);
  return copy;
}

function deepJson(levels: number, open: string, close: string): string {
  return open.repeat(levels) + close.repeat(levels);
}

interface Probe {
  family: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

function agentProbe(rng: Rng, credential: string, base: () => Record<string, unknown>): Probe {
  const auth = rng.pick([
    `Bearer ${credential}`,
    `Bearer ${credential}`,
    `Bearer ${credential}`,
    '',
    'Bearer',
    `Bearer fpm_${'A'.repeat(43)}`,
    `Basic ${Buffer.from('admin:admin').toString('base64')}`,
    `Bearer ${'x'.repeat(10_000)}`,
    `bearer   ${credential}   `,
  ]);
  const jobId = rng.pick([randomUUID(), 'not-a-uuid', '../../etc', '%00', 'x'.repeat(300), '00000000-0000-0000-0000-000000000000']);
  const target = rng.pick([
    ['POST', '/agent/v1/enroll', 'enroll'],
    ['POST', '/agent/v1/checkin', 'checkin'],
    ['POST', '/agent/v1/assessments', 'assessments'],
    ['POST', `/agent/v1/jobs/${encodeURIComponent(jobId)}/events`, 'events'],
    ['POST', `/agent/v1/jobs/${encodeURIComponent(jobId)}/result`, 'result'],
    ['GET', `/agent/v1/commands?waitSeconds=${encodeURIComponent(rng.pick(['-1', '61', 'abc', '1e9', 'NaN', 'Infinity', '0x10', '']))}`, 'commands'],
    ['GET', '/agent/v1/commands?waitSeconds=1&waitSeconds=2', 'commands'],
    ['DELETE', '/agent/v1/checkin', 'method'],
    ['POST', `/agent/v1/${rng.pick(['admin', '..%2f..%2fgraphql', 'enroll/../checkin', ''])}`, 'unknown path'],
  ] as const);
  const [method, path, endpoint] = target;
  const headers: Record<string, string> = auth ? { authorization: auth } : {};
  if (method === 'GET' || method === 'DELETE') return { family: `agent ${endpoint}`, method, path, headers };
  const shape = rng.int(10);
  let body: string;
  headers['content-type'] = rng.pick(['application/json', 'application/json', 'application/json', 'text/plain', 'application/json; charset=utf-16', 'application/x-www-form-urlencoded']);
  if (shape === 0) body = JSON.stringify(junkValue(rng));
  else if (shape === 1) body = JSON.stringify(breakObject(rng, base())).slice(0, rng.int(200));
  else if (shape === 2) body = deepJson(rng.pick([100, 5000, 50_000]), '[', ']');
  else if (shape === 3) body = Buffer.from(Array.from({ length: rng.int(2000) }, () => rng.int(256))).toString('latin1');
  else body = JSON.stringify(breakObject(rng, base()));
  return { family: `agent ${endpoint}`, method, path, headers, body };
}

const QUERIES = [
  '{ machines { edges { node { id name compliance } } } }',
  'query($id: ID!) { machine(id: $id) { name pendingUpdates { edges { node { name } } } } }',
  'query($id: ID!) { deployment(id: $id) { name } }',
  'query($id: ID!) { deploymentRun(id: $id) { status } }',
  '{ missingUpdates(first: 10) { totalCount } }',
  '{ complianceSummary { total } }',
  '{ deployments { totalCount } }',
  '{ enrollmentKeys { totalCount edges { node { id } } } }',
  '{ apiTokens { totalCount edges { node { id } } } }',
  '{ auditEvents { totalCount } }',
  'mutation($id: ID!) { removeMachine(machineId: $id) }',
  'mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { machineId } }',
  'mutation($input: CreateEnrollmentKeyInput!) { createEnrollmentKey(input: $input) { secret } }',
  'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }',
  'mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }',
  'mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { secret } }',
];

/** Fragments that each spread the next one twice, `levels` deep, in a query or a subscription. */
function doublingFragments(levels: number, root: 'Query' | 'Subscription' = 'Query'): string {
  const fragments = Array.from({ length: levels }, (_, i) => `fragment F${i} on ${root} { ...F${i + 1} ...F${i + 1} }`);
  const leaf = root === 'Query' ? 'systemStatus { version }' : 'machineChanged { id name }';
  return `${root === 'Query' ? '' : 'subscription '}{ ...F0 } ${fragments.join(' ')} fragment F${levels} on ${root} { ${leaf} }`;
}

const aliases = (n: number, field: string) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }`;

/**
 * Documents that must be refused before they run (no `data` in the answer): too costly, too many
 * aliases or tokens, whoever sends them.
 */
function hostileDocument(rng: Rng, machineId: string): string {
  switch (rng.int(8)) {
    case 0:
      return doublingFragments(rng.pick([16, 21, 24, 30]));
    case 1:
      return aliases(rng.pick([101, 2000, 10_000]), `machine(id: "${machineId}") { name }`);
    case 2:
      return aliases(rng.pick([101, 1500, 2000]), 'systemStatus { version database { state } temporal { state } }');
    case 3:
      return aliases(rng.pick([101, 1000]), '__schema { types { name fields { name type { name } } } }');
    case 4:
      return aliases(50, `machine(id: "${machineId}") { pendingUpdates(first: 500) { edges { node { name cveIds advisoryIds } } } }`);
    case 5:
      // Aliases hidden in a fragment spread many times.
      return `fragment M on Query { ${Array.from({ length: 30 }, (_, i) => `m${i}: machine(id: "${machineId}") { name }`).join(' ')} } { ${Array.from({ length: 10 }, (_, i) => `... on Query { ...M } a${i}: __typename`).join(' ')} }`;
    case 6:
      // Each machine run's updates at their largest page, aliased: costed by `first`, not by a guess.
      return `query($id: ID!) { deploymentRun(id: $id) { ${Array.from({ length: 20 }, (_, i) => `r${i}: machineRuns(first: 500) { edges { node { updates(first: 500) { name errorText } } } }`).join(' ')} } }`;
    default:
      return `query($id: ID!) { deploymentRun(id: $id) { ${Array.from({ length: 20 }, (_, i) => `l${i}: logs(first: 5000) { edges { node { id at stream line machineRunId } } }`).join(' ')} } }`;
  }
}

function graphqlProbe(rng: Rng, tokens: { viewer: string; admin: string }, machineId: string): Probe {
  if (rng.int(10) === 0) {
    const token = rng.pick([tokens.viewer, tokens.admin, '']);
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
    return { family: 'graphql hostile', method: 'POST', path: '/graphql', headers, body: JSON.stringify({ query: hostileDocument(rng, machineId), variables: { id: randomUUID() } }) };
  }
  const base = rng.pick(QUERIES);
  const isMutation = base.startsWith('mutation');
  // Mutations only as a viewer or anonymously: they must be refused whatever their arguments, so
  // the database cannot change. Queries go as an admin too, to reach every resolver's input checks.
  const token = isMutation ? rng.pick([tokens.viewer, '', `fp_${'B'.repeat(43)}`]) : rng.pick([tokens.viewer, tokens.admin, '']);
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  const shape = rng.int(13);
  let query: unknown = base;
  let variables: unknown = { id: junkValue(rng), ids: junkValue(rng), input: junkValue(rng) };
  if (shape === 0) query = base.slice(0, rng.int(base.length));
  else if (shape === 1) query = `{ ${deepJson(rng.pick([20, 200, 2000]), 'machines { edges { node { ', '} } } ')} }`;
  else if (shape === 2) query = `{ ${Array.from({ length: rng.pick([100, 1000, 3000]) }, (_, i) => `a${i}: machines(first: 500) { totalCount }`).join(' ')} }`;
  else if (shape === 3) query = 'fragment A on Machine { ...B } fragment B on Machine { ...A } { machines { edges { node { ...A } } } }';
  else if (shape === 4) query = `{ __typename ${'@skip(if: false) '.repeat(rng.pick([10, 1000]))} }`;
  else if (shape === 5) query = junkValue(rng);
  else if (shape === 6) variables = junkValue(rng);
  else if (shape === 7) query = `${base} ${'}'.repeat(rng.int(5))}{`;
  else if (shape === 8) query = '{ machines(first: 100000) { totalCount } }';
  else if (shape === 9) query = `{ __schema { types { ${deepJson(rng.pick([5, 50]), 'fields { type { ', '} } ')} name } } }`;
  else if (shape === 10) variables = { id: randomUUID(), ids: [randomUUID()], input: junkValue(rng) };
  // A long name no one knows: a metrics label each, once.
  else if (shape === 11 && !isMutation) query = `query n${rng.int(1e9)}${'x'.repeat(rng.pick([100, 5000, 60_000]))} { __typename }`;
  const body = rng.int(20) === 0 ? JSON.stringify([{ query: base }, { query: base }]) : JSON.stringify({ query, variables });
  return { family: `graphql ${isMutation ? 'mutation' : 'query'}`, method: 'POST', path: '/graphql', headers, body };
}

/** The API's other paths, with methods and paths no route serves: JSON always, never an HTML error page. */
function httpProbe(rng: Rng, tokens: { viewer: string }): Probe {
  const method = rng.pick(['GET', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
  const path = rng.pick(['/healthz', '/readyz', '/metrics', '/healthz/x', '/metrics/%E0%A4%A', '/readyz?x=%ZZ', '/graphql/x', '/agent', '/agent/v10', '/healthz/%ZZ', '/metrics/..%2fhealthz']);
  const headers: Record<string, string> = { accept: rng.pick(['application/json', '*/*', 'text/plain']), ...(rng.int(2) ? { authorization: `Bearer ${tokens.viewer}` } : {}) };
  if (method === 'GET' || method === 'OPTIONS') return { family: 'http', method, path, headers };
  return { family: 'http', method, path, headers: { ...headers, 'content-type': rng.pick(['application/json', 'text/html']) }, body: rng.pick(['{', '{}', '<html>', 'x'.repeat(3000)]) };
}

/** What no answer may hold: a stack frame, a file path of the server (and none is an HTML page). */
const LEAK = /\bat [^\n]*\.(?:js|ts|mjs):\d+|node_modules|\/work\/|file:\/\//i;

/** Every table's rows, hashed; the columns that record mere use (a token's last use) left out. */
async function fingerprint(database: Database): Promise<Record<string, string>> {
  const tables = await database.sql<{ name: string }[]>`select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`;
  const out: Record<string, string> = {};
  // The maintained compliance summary, by what it says: its upkeep folds deltas into counts and moves
  // machines' summary state forward with the clock, in the background, changing no answer.
  const [summary] = await database.sql`select md5(coalesce(string_agg(key || '=' || n, ',' order by key), '')) as h
    from (select key, sum(n) as n from (select key, n from fleet_summary_counts union all select key, n from fleet_summary_deltas) u group by key having sum(n) <> 0) s`;
  out.fleet_summary = summary!.h as string;
  // The live machines per tag, folded by the same upkeep: by what they say.
  const [tagged] = await database.sql`select md5(coalesce(string_agg(tag || '=' || n, ',' order by tag), '')) as h
    from (select tag, sum(n) as n from (select tag, n from machine_tag_counts union all select tag, n from machine_tag_deltas) u group by tag having sum(n) <> 0) s`;
  out.machine_tag_counts = tagged!.h as string;
  const rows: Record<string, string> = {
    api_tokens: '(t.id, t.name, t.role, t.token_hash, t.created_at, t.expires_at, t.revoked_at)::text',
    machines: "(to_jsonb(t) - 'summary_at' - 'summary_state' - 'summary_overdue' - 'summary_next_at')::text",
  };
  for (const { name } of tables) {
    if (['audit_events', 'fleet_summary_counts', 'fleet_summary_deltas', 'machine_tag_counts', 'machine_tag_deltas'].includes(name)) continue;
    const row = rows[name] ?? 't::text';
    const [hash] = await database.sql.unsafe(`select count(*)::int as n, md5(coalesce(string_agg(${row}, ',' order by ${row}), '')) as h from "${name}" t`);
    out[name] = `${hash!.n}:${hash!.h}`;
  }
  return out;
}

describe('hostile input', () => {
  let server: Spawned;
  let base: string;
  let database: Database;
  let drop: () => Promise<void>;
  let tokens: { viewer: string; admin: string };
  let credential: string;
  let machineId: string;
  let enrollmentKey: string;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    const port = await freePort();
    server = spawnFleetpatch(['server'], {
      DATABASE_URL: fresh.url,
      TEMPORAL_ADDRESS: temporalSettings().address,
      PORT: String(port),
      HOST: '127.0.0.1',
      // Rate limits off: the fuzzer is one client and must reach the parsers, not the limiter.
      FLEETPATCH_API_RATE_LIMIT: '0',
      FLEETPATCH_AGENT_RATE_LIMIT: '0',
      FLEETPATCH_ENROLL_RATE_LIMIT: '0',
    });
    await server.waitFor(/API listening/);
    base = `http://127.0.0.1:${port}`;
    tokens = { viewer: await tokenFor(database, 'VIEWER'), admin: await tokenFor(database, 'ADMIN') };
    const key = await graphql<{ createEnrollmentKey: { secret: string } }>(`${base}/graphql`, 'mutation { createEnrollmentKey(input: {description: "fuzz"}) { secret } }', { token: tokens.admin });
    enrollmentKey = key.data!.createEnrollmentKey.secret;
    ({ credential, machineId } = await enrollMachine(base, enrollmentKey, { facts: { hostname: 'fuzz-target' }, updates: [pendingUpdate({ name: 'openssl', classification: 'SECURITY' })] }));
  });

  afterAll(async () => {
    if (server) await stop(server);
    await database?.close();
    await drop?.();
  });

  it(`answers ${PAYLOADS} generated malformed or oversized requests with a 4xx or a typed error, stays up, and changes nothing`, async () => {
    const before = await fingerprint(database);
    const [{ maxId }] = (await database.sql`select coalesce(max(id), 0)::int as "maxId" from audit_events`) as unknown as [{ maxId: number }];
    const rng = prng(SEED);
    const validBodies: Array<() => Record<string, unknown>> = [
      () => ({ enrollmentKey: `fpe_${'z'.repeat(43)}`, facts: machineFacts() }),
      () => ({ facts: machineFacts() }),
      () => assessmentReport([pendingUpdate({ name: 'openssl' })]) as unknown as Record<string, unknown>,
      () => ({ seq: 1, lines: [{ at: new Date().toISOString(), stream: 'stdout', text: 'x' }], updates: [] }),
      () => ({ updates: [], rebootRequired: false, rebooting: false, bootId: null, timedOut: false, error: null }),
    ];
    const probes: Probe[] = [];
    for (let i = 0; i < PAYLOADS; i++) {
      const kind = rng.next();
      probes.push(kind < 0.45 ? agentProbe(rng, credential, () => rng.pick(validBodies)()) : kind < 0.95 ? graphqlProbe(rng, tokens, machineId) : httpProbe(rng, tokens));
    }
    // A few oversized bodies, over each endpoint's limit.
    for (const path of ['/agent/v1/assessments', '/graphql']) {
      for (let i = 0; i < 3; i++) probes.push({ family: 'oversized', method: 'POST', path, headers: { 'content-type': 'application/json', authorization: `Bearer ${path === '/graphql' ? tokens.viewer : credential}` }, body: `{"pad": "${'x'.repeat(9 * 1024 * 1024)}"}` });
    }

    const broken: string[] = [];
    const statuses = new Map<string, number>();
    let next = 0;
    const worker = async () => {
      while (next < probes.length) {
        const probe = probes[next++]!;
        let status: number;
        let text: string;
        let headers: string;
        try {
          const response = await fetch(base + probe.path, { method: probe.method, headers: probe.headers, body: probe.body, signal: AbortSignal.timeout(30_000) });
          status = response.status;
          headers = response.headers.get('content-type') ?? '';
          text = await response.text();
        } catch (error) {
          broken.push(`${probe.family} ${probe.method} ${probe.path}: no answer (${(error as Error).message})`);
          continue;
        }
        statuses.set(`${probe.family} ${status}`, (statuses.get(`${probe.family} ${status}`) ?? 0) + 1);
        const what = `${probe.family} ${probe.method} ${probe.path.slice(0, 80)} -> ${status}`;
        if (LEAK.test(text) || headers.startsWith('text/html')) {
          broken.push(`${what}: an HTML page, a stack or a path: ${text.slice(0, 200)}`);
          continue;
        }
        if (probe.family === 'graphql hostile' && status !== 400) {
          broken.push(`${what}: not refused before it ran: ${text.slice(0, 200)} (body: ${(probe.body ?? '').slice(0, 200)})`);
          continue;
        }
        // /healthz, /readyz and /metrics answer their own GET (with any query string); Temporal and PostgreSQL are up.
        if (probe.family === 'http' && status < 300 && probe.method === 'GET' && ['/healthz', '/readyz', '/metrics'].includes(probe.path.split('?')[0]!)) continue;
        if (probe.family === 'http' && !/^application\/json/.test(headers)) {
          broken.push(`${what}: ${headers}, not JSON: ${text.slice(0, 200)}`);
          continue;
        }
        if (status >= 500) {
          broken.push(`${what}: ${text.slice(0, 200)} (body: ${(probe.body ?? '').slice(0, 200)})`);
          continue;
        }
        if (status >= 200 && status < 300) {
          // Only GraphQL may answer 200, and then only with errors of our vocabulary.
          let parsed: { errors?: Array<{ extensions?: { code?: string }; message: string }>; data?: unknown };
          try {
            parsed = JSON.parse(text) as typeof parsed;
          } catch {
            broken.push(`${what}: not JSON: ${text.slice(0, 200)}`);
            continue;
          }
          const codes = (parsed.errors ?? []).map((e) => e.extensions?.code ?? 'NONE');
          const allowedToSucceed = probe.family === 'graphql query';
          if ((codes.length === 0 && !allowedToSucceed) || codes.some((c) => c === 'INTERNAL' || c === 'NONE')) {
            broken.push(`${what}: ${JSON.stringify(parsed).slice(0, 300)} (body: ${(probe.body ?? '').slice(0, 300)})`);
          }
        }
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (Date.now() - started) / 1000;

    console.log(
      `fuzz: ${probes.length} requests in ${seconds.toFixed(1)} s (seed ${SEED}); answers by family and status:\n` +
        [...statuses].sort().map(([k, n]) => `  ${k}: ${n}`).join('\n'),
    );
    expect(probes.length).toBeGreaterThanOrEqual(10_000);
    if (broken.length > 0) console.log(`fuzz: ${broken.length} broken answers; kinds:\n${[...new Set(broken.map((b) => b.slice(0, 160)))].slice(0, 40).join('\n')}`);
    expect(broken.slice(0, 20)).toEqual([]);

    // Still up, still answering.
    expect(server.child.exitCode).toBeNull();
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const still = await graphql<{ machines: { totalCount: number } }>(`${base}/graphql`, '{ machines { totalCount } }', { token: tokens.viewer });
    expect(still.data?.machines.totalCount).toBe(1);

    // Nothing changed; the audit log only gained refused attempts.
    expect(await fingerprint(database)).toEqual(before);
    const gained = await database.sql`select outcome, count(*)::int as n from audit_events where id > ${maxId} group by 1 order by 1`;
    expect(gained.every((r) => r.outcome !== 'SUCCEEDED')).toBe(true);

    // The metrics survived it: bounded labels (the server's operation names, `other`, `anonymous`),
    // and not one error counted as INTERNAL.
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text.length).toBeLessThan(500_000);
    const labels = new Set([...text.matchAll(/^fleetpatch_graphql_\w+\{operation="([^"]*)"/gm)].map((m) => m[1]!));
    expect([...labels].filter((l) => !KNOWN_OPERATION_NAMES.has(l) && l !== 'other' && l !== 'anonymous')).toEqual([]);
    expect(labels.has('other')).toBe(true);
    expect(text).not.toMatch(/code="INTERNAL"/);
  }, 600_000);

  it('holds subscription sockets to their caps, and answers hostile socket messages with a code, never an internal error', async () => {
    const wsUrl = `${base.replace('http', 'ws')}/graphql`;
    type Message = { id?: string; type: string; payload?: unknown };
    /** A graphql-ws socket, initialised with the token: `ready` settles with the acknowledgement, or with the close code. */
    const open = (token: string) => {
      const ws = new WebSocket(wsUrl, 'graphql-transport-ws');
      const messages: Message[] = [];
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      const ready = new Promise<'ack' | number>((resolve) => {
        ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
        ws.on('message', (data) => {
          const message = JSON.parse(String(data)) as Message;
          messages.push(message);
          if (message.type === 'connection_ack') resolve('ack');
        });
        void closed.then(resolve);
      });
      const send = (message: unknown) => ws.send(typeof message === 'string' ? message : JSON.stringify(message));
      return { ws, messages, closed, ready, send };
    };
    const until = async (what: string, done: () => boolean) => {
      for (let waited = 0; !done(); waited += 50) {
        if (waited > 30_000) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };

    // 60 subscriptions on one socket: the 51st and later are refused with TOO_MANY_SUBSCRIPTIONS, the socket stays.
    const first = open(tokens.viewer);
    expect(await first.ready).toBe('ack');
    for (let i = 0; i < 60; i++) first.send({ id: `s${i}`, type: 'subscribe', payload: { query: 'subscription { machineChanged { id } }' } });
    await until('ten refusals', () => first.messages.filter((m) => m.type === 'error').length >= 10);
    const refusals = first.messages.filter((m) => m.type === 'error');
    expect(refusals.map((m) => m.id)).toEqual(Array.from({ length: 10 }, (_, i) => `s${50 + i}`));
    expect(refusals.every((m) => (m.payload as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code === 'TOO_MANY_SUBSCRIPTIONS')).toBe(true);

    // Twenty sockets per token: this one and nineteen more; the next is closed with our code.
    const more = [];
    for (let i = 0; i < 19; i++) {
      const socket = open(tokens.viewer);
      expect(await socket.ready).toBe('ack');
      more.push(socket);
    }
    const refused = open(tokens.viewer);
    expect(await refused.ready).toBe(TOO_MANY_SOCKETS_CLOSE_CODE);

    // Hostile messages, each on a socket of its own (some close it): answered by an error with a
    // code, or a close with graphql-ws's code for a bad message, never an internal error.
    const costly = 'pendingUpdates(first: 500) { edges { node { name cveIds advisoryIds arch repository availableVersion installedVersion classification severity rebootSuggested } } }';
    const hostile: unknown[] = [
      'not json',
      '{"type": "subscribe"}',
      { id: 'x', type: 'subscribe', payload: { query: doublingFragments(24, 'Subscription') } },
      { id: 'x', type: 'subscribe', payload: { query: `subscription { ${Array.from({ length: 3000 }, (_, i) => `a${i}: machineChanged { id }`).join(' ')} }` } },
      { id: 'x', type: 'subscribe', payload: { query: `subscription { machineChanged { ${Array.from({ length: 150 }, (_, i) => `a${i}: name`).join(' ')} } }` } },
      { id: 'x', type: 'subscribe', payload: { query: `subscription { machineChanged { ${Array.from({ length: 20 }, (_, i) => `p${i}: ${costly}`).join(' ')} } }` } },
      { id: 'x', type: 'subscribe', payload: { query: 'query { machines { totalCount } }' } },
      { id: 'x', type: 'subscribe', payload: { query: `subscription { machineChanged { ${'id '.repeat(20_000)} } }` } },
      { id: 'x', type: 'subscribe', payload: { query: 42 } },
      { type: 'ping', payload: { pad: 'x'.repeat(100_000) } },
      { type: 'connection_init' },
    ];
    const codes = new Map<string, string>();
    for (const [n, message] of hostile.entries()) {
      const socket = open(tokens.admin);
      expect(await socket.ready).toBe('ack');
      socket.send(message);
      // Each is answered (an error, a complete, a pong) or the socket is closed.
      const answered = await Promise.race([
        socket.closed.then((code) => `closed ${code}`),
        until('an answer', () => socket.messages.some((m) => m.type !== 'connection_ack')).then(() => {
          const answer = socket.messages.find((m) => m.type !== 'connection_ack')!;
          if (answer.type !== 'error') return answer.type;
          const payload = answer.payload as Array<{ extensions?: { code?: string } }>;
          return `error ${payload.map((e) => e.extensions?.code ?? 'NONE').join(',')}`;
        }),
      ]);
      codes.set(`${n}: ${(typeof message === 'string' ? message : JSON.stringify(message)).slice(0, 60)}`, answered);
      socket.ws.close();
      await socket.closed;
    }
    console.log(`fuzz: hostile socket messages answered:\n${[...codes].map(([m, a]) => `  ${m} -> ${a}`).join('\n')}`);
    for (const answer of codes.values()) expect(answer).toMatch(/^(error (GRAPHQL_PARSE_FAILED|GRAPHQL_VALIDATION_FAILED|BAD_USER_INPUT|NOT_FOUND)(,[A-Z_]+)*|closed (4400|4429|1009)|pong|complete|next)$/);
    // Fragments spreading each other, 150 aliases, 20 pages of 500: refused by validation.
    expect([...codes.values()].filter((a) => a.startsWith('error GRAPHQL_VALIDATION_FAILED')).length).toBe(3);

    for (const socket of [first, ...more]) socket.ws.close();
    await Promise.all([first, ...more].map((s) => s.closed));
    // Every place is free again once the server has seen the sockets close: a new socket with the
    // same token is acknowledged.
    let again: 'ack' | number = 0;
    for (let attempt = 0; again !== 'ack' && attempt < 100; attempt++) {
      const socket = open(tokens.viewer);
      again = await socket.ready;
      socket.ws.close();
      await socket.closed;
    }
    expect(again).toBe('ack');
    expect(server.child.exitCode).toBeNull();
  }, 120_000);
});
