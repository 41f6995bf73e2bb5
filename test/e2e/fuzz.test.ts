import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../src/agent/client.js';
import type { Database } from '../../src/db/client.js';
import { freePort } from '../../src/net.js';
import { assessmentReport, machineFacts, pendingUpdate } from '../support/agentFacts.js';
import { connectTestDatabase, freshDatabase, graphql, temporalSettings, tokenFor } from '../support/env.js';
import { spawnFleetpatch, stop, type Spawned } from '../support/processes.js';

/**
 * Hostile input: at least 10,000 generated malformed or oversized requests to the agent endpoint
 * and to GraphQL, against a real `fleetpatch server` process. Every answer must be a 4xx or a
 * GraphQL error with a code of our vocabulary (never INTERNAL, never a 5xx), the process must
 * stay up, and the database must not change (a fingerprint of every table; the audit log may only
 * gain entries of refused attempts).
 *
 * Payloads are generated from a seeded PRNG (FUZZ_SEED), so a failure can be replayed.
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
  '{ enrollmentKeys { id } }',
  '{ apiTokens { id } }',
  '{ auditEvents { totalCount } }',
  'mutation($id: ID!) { removeMachine(machineId: $id) }',
  'mutation($ids: [ID!]!) { assessMachines(machineIds: $ids) { machineId } }',
  'mutation($input: CreateEnrollmentKeyInput!) { createEnrollmentKey(input: $input) { secret } }',
  'mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }',
  'mutation($id: ID!) { cancelDeploymentRun(id: $id) { id } }',
  'mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { secret } }',
];

function graphqlProbe(rng: Rng, tokens: { viewer: string; admin: string }): Probe {
  const base = rng.pick(QUERIES);
  const isMutation = base.startsWith('mutation');
  // Mutations only as a viewer or anonymously: they must be refused whatever their arguments, so
  // the database cannot change. Queries go as an admin too, to reach every resolver's input checks.
  const token = isMutation ? rng.pick([tokens.viewer, '', `fp_${'B'.repeat(43)}`]) : rng.pick([tokens.viewer, tokens.admin, '']);
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  const shape = rng.int(12);
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
  const body = rng.int(20) === 0 ? JSON.stringify([{ query: base }, { query: base }]) : JSON.stringify({ query, variables });
  return { family: `graphql ${isMutation ? 'mutation' : 'query'}`, method: 'POST', path: '/graphql', headers, body };
}

/** Every table's rows, hashed; the columns that record mere use (a token's last use) left out. */
async function fingerprint(database: Database): Promise<Record<string, string>> {
  const tables = await database.sql<{ name: string }[]>`select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE' order by 1`;
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    if (name === 'audit_events') continue;
    const row = name === 'api_tokens' ? `(t.id, t.name, t.role, t.token_hash, t.created_at, t.expires_at, t.revoked_at)::text` : 't::text';
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
    const client = new AgentClient(base);
    const enrolled = await client.enroll(enrollmentKey, machineFacts({ hostname: 'fuzz-target' }));
    credential = enrolled.credential;
    client.setCredential(credential);
    await client.sendReport(assessmentReport([pendingUpdate({ name: 'openssl', classification: 'SECURITY' })]));
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
      probes.push(rng.next() < 0.5 ? agentProbe(rng, credential, () => rng.pick(validBodies)()) : graphqlProbe(rng, tokens));
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
        try {
          const response = await fetch(base + probe.path, { method: probe.method, headers: probe.headers, body: probe.body, signal: AbortSignal.timeout(30_000) });
          status = response.status;
          text = await response.text();
        } catch (error) {
          broken.push(`${probe.family} ${probe.method} ${probe.path}: no answer (${(error as Error).message})`);
          continue;
        }
        statuses.set(`${probe.family} ${status}`, (statuses.get(`${probe.family} ${status}`) ?? 0) + 1);
        const what = `${probe.family} ${probe.method} ${probe.path.slice(0, 80)} -> ${status}`;
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
  }, 600_000);
});
