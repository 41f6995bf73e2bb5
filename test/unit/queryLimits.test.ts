import fs from 'node:fs';
import { buildSchema, parse, specifiedRules, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { queryLimitsRule } from '../../src/api/limits.js';
import { ConfigError, loadConfig } from '../../src/config.js';

const schema = buildSchema(fs.readFileSync(new URL('../../schema/schema.graphql', import.meta.url), 'utf8'));
const check = (query: string, limits = { maxDepth: 12, maxCost: 50_000 }) => validate(schema, parse(query), [...specifiedRules, queryLimitsRule(limits)]).map((e) => e.message);

describe('query depth and cost limits', () => {
  it('lets ordinary queries through', () => {
    expect(check('{ machines(first: 100) { totalCount edges { node { name compliance pendingUpdates(first: 20) { edges { node { name classification } } } } } } }')).toEqual([]);
  });

  it('counts depth through fragments, and not introspection', () => {
    const query = 'fragment D on Deployment { lastRun { deployment { name } } } { deployments { edges { node { ...D } } } }';
    expect(check(query, { maxDepth: 6, maxCost: 50_000 })).toEqual([]);
    expect(check(query, { maxDepth: 5, maxCost: 50_000 })[0]).toMatch(/is 6 levels deep; at most 5/);
    expect(check('{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }', { maxDepth: 2, maxCost: 10 })).toEqual([]);
  });

  it('multiplies nested lists by their page sizes, a variable page counting as the largest', () => {
    const [message] = check('query($n: Int) { machines(first: $n) { edges { node { assessments(first: $n) { totalCount } } } } }');
    expect(message).toMatch(/estimated cost of \d+; at most 50000/);
    expect(check('{ machines(first: 10) { edges { node { assessments(first: 10) { totalCount } } } } }')).toEqual([]);
    // Aliases do not hide repetition.
    const aliases = Array.from({ length: 200 }, (_, i) => `m${i}: machines(first: 500) { totalCount edges { node { name } } }`).join(' ');
    expect(check(`{ ${aliases} }`)[0]).toMatch(/estimated cost/);
  });
});

describe('access settings', () => {
  it('reads limits, with 0 turning a rate limit off', () => {
    const config = loadConfig({ FLEETPATCH_AGENT_RATE_LIMIT: '0', FLEETPATCH_GRAPHQL_MAX_DEPTH: '8' });
    expect(config.limits).toEqual({ apiRequestsPerMinute: 1200, agentRequestsPerMinute: 0, enrollmentsPerMinute: 300, graphqlMaxDepth: 8, graphqlMaxCost: 50_000 });
    expect(() => loadConfig({ FLEETPATCH_API_RATE_LIMIT: '-5' })).toThrow(/FLEETPATCH_API_RATE_LIMIT=-5 is not a whole number/);
  });

  it('needs both the TLS certificate and key', () => {
    expect(loadConfig({}).tls).toBeUndefined();
    expect(loadConfig({ FLEETPATCH_TLS_CERT: '/etc/c.pem', FLEETPATCH_TLS_KEY: '/etc/k.pem' }).tls).toEqual({ certFile: '/etc/c.pem', keyFile: '/etc/k.pem' });
    expect(() => loadConfig({ FLEETPATCH_TLS_CERT: '/etc/c.pem' })).toThrow(ConfigError);
    expect(() => loadConfig({ FLEETPATCH_TLS_CERT: '/etc/c.pem' })).toThrow(/only FLEETPATCH_TLS_CERT is set/);
  });
});
