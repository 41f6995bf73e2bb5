import fs from 'node:fs';
import {
  buildSchema,
  getIntrospectionQuery,
  getNamedType,
  getNullableType,
  isListType,
  isObjectType,
  parse,
  specifiedRules,
  TypeInfo,
  validate,
  ValidationContext,
  visit,
  type GraphQLError,
} from 'graphql';
import { describe, expect, it, vi } from 'vitest';
import { boundedResponse, LIST_ITEMS, parseOptions, queryLimitsRule, tokenLimitMessage, type QueryLimits } from '../../src/api/limits.js';
import { ConfigError, loadConfig } from '../../src/config.js';

const schema = buildSchema(fs.readFileSync(new URL('../../schema/schema.graphql', import.meta.url), 'utf8'));
const DEFAULTS: QueryLimits = { maxDepth: 12, maxCost: 50_000, maxAliases: 100 };
const check = (query: string, limits: Partial<QueryLimits> = {}) => validate(schema, parse(query), [...specifiedRules, queryLimitsRule({ ...DEFAULTS, ...limits })]).map((e) => e.message);

/** Fragments that each spread the next one twice, `levels` deep: 2^levels spreads of the last one once expanded. */
function doublingFragments(levels: number): string {
  const fragments = Array.from({ length: levels }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`);
  return `{ ...F0 } ${fragments.join(' ')} fragment F${levels} on Query { systemStatus { version } }`;
}

describe('query depth and cost limits', () => {
  it('lets ordinary queries through', () => {
    expect(check('{ machines(first: 100) { totalCount edges { node { name compliance pendingUpdates(first: 20) { edges { node { name classification } } } } } } }')).toEqual([]);
  });

  it('counts depth through fragments, and not introspection', () => {
    const query = 'fragment D on Deployment { lastRun { deployment { name } } } { deployments { edges { node { ...D } } } }';
    expect(check(query, { maxDepth: 6 })).toEqual([]);
    expect(check(query, { maxDepth: 5 })[0]).toMatch(/is 6 levels deep; at most 5/);
    expect(check('{ __schema { types { fields { type { ofType { ofType { ofType { name } } } } } } } }', { maxDepth: 2 })).toEqual([]);
  });

  it('multiplies nested lists by their page sizes, a variable page counting as the largest', () => {
    const [message] = check('query($n: Int) { machines(first: $n) { edges { node { assessments(first: $n) { totalCount } } } } }');
    expect(message).toMatch(/estimated cost of \d+; at most 50000/);
    expect(check('{ machines(first: 10) { edges { node { assessments(first: 10) { totalCount } } } } }')).toEqual([]);
  });

  it('measures each fragment once: fragments spreading the next one twice, 21 deep, are refused after a walk the size of the document', () => {
    // 900 bytes that once made this rule walk 2^21 fragments (5.9 s of a blocked event loop).
    // Counted, not timed: every walk into a fragment starts by looking it up.
    const document = parse(doublingFragments(21));
    const errors: GraphQLError[] = [];
    const context = new ValidationContext(schema, document, new TypeInfo(schema), (error) => errors.push(error));
    const lookUps = vi.spyOn(context, 'getFragment');
    visit(document, queryLimitsRule(DEFAULTS)(context));
    expect(lookUps.mock.calls.length).toBeLessThanOrEqual(22);
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/estimated cost of \d+; at most 50000/)]);
    // The same document through every rule the server runs: refused, for its cost.
    expect(check(doublingFragments(21))).toEqual([expect.stringMatching(/estimated cost of/)]);
  });

  it('refuses a level of more than 200 fields, fragments included, before graphql-js compares them pairwise', () => {
    // A rule after ours, counting the fields the rest of the validation walks.
    let walked = 0;
    const after = () => ({ Field: () => void walked++ });
    const run = (query: string) => validate(schema, parse(query), [...specifiedRules, queryLimitsRule(DEFAULTS), after]).map((e) => e.message);
    // 4,900 times the same field: cheap to run (merged into one), 12 million pairs to compare.
    expect(run(`{ ${'__typename '.repeat(4900)} }`)).toEqual([expect.stringMatching(/^The operation asks for 4900 fields at one level, fragments included; at most 200 are allowed/)]);
    expect(walked).toBe(0);
    // 300 fragments, each asking for systemStatus: a valid document of cost 30,300.
    const fragments = Array.from({ length: 300 }, (_, i) => `fragment A${i} on Query { systemStatus { version } }`).join(' ');
    const spreads = Array.from({ length: 300 }, (_, i) => `...A${i}`).join(' ');
    expect(run(`{ ${spreads} } ${fragments}`)).toEqual([expect.stringMatching(/asks for 300 fields at one level/)]);
    // A wide fragment no operation spreads is compared all the same.
    expect(run(`{ __typename } fragment Wide on Query { ${'__typename '.repeat(300)} }`)).toEqual([expect.stringMatching(/^Fragment "Wide" asks for 300 fields at one level/)]);
    expect(walked).toBe(0);
    // A fragment spread twice at one level counts once; the console's widest level passes.
    expect(run(`{ ...A0 ...A0 ${'__typename '.repeat(199)} } fragment A0 on Query { systemStatus { version } }`)).toEqual([]);
  });

  it('bounds its own work: past maxVisits a document is refused unmeasured', () => {
    const fields = Array.from({ length: 50 }, (_, i) => `f${i}: __typename`).join(' ');
    expect(check(`{ ${fields} }`, { maxVisits: 20 })).toEqual([expect.stringMatching(/too large to measure \(more than 20 selections/)]);
    expect(check(`{ ${fields} }`, { maxVisits: 60 })).toEqual([]);
  });

  it('counts aliases through fragments, and refuses past the limit before anything runs', () => {
    const machines = (n: number) => Array.from({ length: n }, (_, i) => `m${i}: machine(id: "00000000-0000-4000-8000-00000000000${i % 10}") { name }`).join(' ');
    expect(check(`{ ${machines(100)} }`)).toEqual([]);
    expect(check(`{ ${machines(101)} }`)).toEqual([expect.stringMatching(/uses 101 aliases; at most 100 are allowed \(FLEETPATCH_GRAPHQL_MAX_ALIASES\)/)]);
    // Sixty in a fragment spread twice are 120.
    expect(check(`fragment Many on Query { ${machines(60)} } { ...Many a: deployments { totalCount } ... on Query { ...Many } }`)[0]).toMatch(/uses 121 aliases/);
    // The same name twice is one field, not an alias.
    expect(check('{ machines: machines { totalCount } }')).toEqual([]);
  });

  it('refuses 2,000 aliases of systemStatus and 1,000 of __schema by aliases and by cost', () => {
    const status = Array.from({ length: 2000 }, (_, i) => `s${i}: systemStatus { version }`).join(' ');
    expect(check(`{ ${status} }`)).toEqual([expect.stringMatching(/asks for 2000 fields at one level/), expect.stringMatching(/uses 2000 aliases/), expect.stringMatching(/estimated cost of \d+/)]);
    expect(check('{ systemStatus { version database { state } temporal { state } } }')).toEqual([]);
    const schemas = Array.from({ length: 1000 }, (_, i) => `s${i}: __schema { types { name fields { name } } }`).join(' ');
    expect(check(`{ ${schemas} }`)).toEqual([expect.stringMatching(/asks for 1000 fields at one level/), expect.stringMatching(/uses 1000 aliases/), expect.stringMatching(/estimated cost of \d+/)]);
  });

  it('costs introspection by the schema it describes: a full introspection query passes, three in one request do not', () => {
    const full = getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true });
    expect(check(full)).toEqual([]);
    const again = 'again: __schema { types { ...FullType } directives { name description locations args { ...InputValue } } }';
    const thrice = full.replace('__schema {', `${again.replace('again', 'a1')} ${again.replace('again', 'a2')} __schema {`);
    expect(check(thrice)[0]).toMatch(/estimated cost of \d+; at most 50000/);
    expect(check('{ __schema { types { name } } }', { maxCost: 50 })[0]).toMatch(/estimated cost of \d+; at most 50/);
  });

  it('costs a paged list by its page, up to its own largest page', () => {
    const logs = (first: string) => `query($id: ID!${first.startsWith('$') ? ', $n: Int' : ''}) { deploymentRun(id: $id) { logs(first: ${first}) { edges { node { id at stream line machineRunId } } } } }`;
    // Log pages hold up to 5,000 lines, not the 500 of other pages: a variable is costed so.
    expect(check(logs('5000'), { maxCost: 30_000 })[0]).toMatch(/estimated cost of 3500\d/);
    expect(check(logs('$n'), { maxCost: 30_000 })[0]).toMatch(/estimated cost of 3500\d/);
    expect(check(logs('100'), { maxCost: 1000 })).toEqual([]);
    // 50 aliases of a machine's largest page of pending updates: refused (they answered 79 MB unpaged).
    const pages = Array.from({ length: 50 }, (_, i) => `m${i}: machine(id: "x") { pendingUpdates(first: 500) { edges { node { name cveIds advisoryIds } } } }`).join(' ');
    expect(check(`{ ${pages} }`)[0]).toMatch(/estimated cost of \d+; at most 50000/);
  });

  it("costs a machine run's updates, a preview's and a progress event's lists by first: 40 aliases of the largest slice are refused", () => {
    const updates = (first: string) =>
      `{ ${Array.from({ length: 40 }, (_, i) => `r${i}: deploymentRun(id: "x") { machineRuns(first: 1) { edges { node { updates${first} { name arch status exitCode errorText } } } } }`).join(' ')} }`;
    // A machine run may hold 20,000 updates: each alias read them all, only the answer size stopped it.
    expect(check(updates('(first: 500)'))[0]).toMatch(/estimated cost of \d+; at most 50000/);
    expect(check(updates('(first: 10)'))).toEqual([]);
    expect(check(updates(''))).toEqual([]);
    const preview = (first: number) => `{ previewDeployment(id: "x") { machines { toInstall(first: ${first}) { name classification expectedSeconds } predictedNotAttempted(first: ${first}) { name classification expectedSeconds } notSelected(first: ${first}) { reason update { name } } } } }`;
    expect(check(preview(500))[0]).toMatch(/estimated cost of \d+; at most 50000/);
    expect(check(preview(10))).toEqual([]);
    expect(check('subscription { deploymentRunProgress(runId: "x") { updates(first: 5) { name } } }', { maxCost: 20 })).toEqual([]);
    expect(check('{ deploymentRun(id: "x") { updateSet(first: 500) { name version } } }', { maxCost: 1000 })[0]).toMatch(/estimated cost of 1002; at most 1000/);
  });

  it('knows how many items every list of objects in the schema can return: paged, or listed with a reason', () => {
    const unlisted: string[] = [];
    for (const type of Object.values(schema.getTypeMap())) {
      if (!isObjectType(type) || type.name.startsWith('__') || type.name.endsWith('Connection')) continue;
      for (const field of Object.values(type.getFields())) {
        const paged = field.args.some((a) => a.name === 'first');
        if (!paged && isListType(getNullableType(field.type)) && isObjectType(getNamedType(field.type)) && !LIST_ITEMS[`${type.name}.${field.name}`]) unlisted.push(`${type.name}.${field.name}`);
      }
    }
    expect(unlisted).toEqual([]);
    for (const key of Object.keys(LIST_ITEMS)) {
      const [type, field] = key.split('.') as [string, string];
      expect([key, isObjectType(schema.getType(type)) && field in (schema.getType(type) as { getFields(): object }).getFields()]).toEqual([key, true]);
    }
  });

  it('says which setting limits the tokens of a document', () => {
    expect(() => parse(`{ ${'a '.repeat(20)} }`, parseOptions(10))).toThrow(/Document contains more th(?:an|at) 10 tokens/);
    expect(tokenLimitMessage('Syntax Error: Document contains more that 10 tokens. Parsing aborted.')).toMatch(/more than 10 tokens; at most 10 are allowed \(FLEETPATCH_GRAPHQL_MAX_TOKENS\)/);
    expect(tokenLimitMessage('Syntax Error: Unexpected "}".')).toBeNull();
  });

  it('replaces an answer larger than the response limit with RESPONSE_TOO_LARGE', () => {
    const refused: number[] = [];
    const stringify = boundedResponse(1024 * 1024, (bytes) => refused.push(bytes));
    expect(JSON.parse(stringify({ data: { a: 'x'.repeat(1000) } }))).toEqual({ data: { a: 'x'.repeat(1000) } });
    const big = JSON.parse(stringify({ data: { a: 'é'.repeat(600 * 1024) } })) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(big.errors[0]).toMatchObject({ extensions: { code: 'RESPONSE_TOO_LARGE' }, message: expect.stringMatching(/The answer is 1\.17 MB, more than the 1 MB allowed \(FLEETPATCH_GRAPHQL_MAX_RESPONSE_MB\)/) });
    expect(refused).toEqual([600 * 1024 * 2 + 17]);
  });
});

describe('access settings', () => {
  it('reads limits, with 0 turning a rate limit off', () => {
    const config = loadConfig({ FLEETPATCH_AGENT_RATE_LIMIT: '0', FLEETPATCH_GRAPHQL_MAX_DEPTH: '8', FLEETPATCH_SOCKETS_PER_TOKEN: '3' });
    expect(config.limits).toEqual({
      apiRequestsPerMinute: 1200,
      agentRequestsPerMinute: 0,
      enrollmentsPerMinute: 300,
      graphqlMaxDepth: 8,
      graphqlMaxCost: 50_000,
      graphqlMaxAliases: 100,
      graphqlMaxTokens: 5000,
      graphqlMaxResponseBytes: 32 * 1024 * 1024,
      subscriptionsPerSocket: 50,
      socketsPerToken: 3,
    });
    expect(() => loadConfig({ FLEETPATCH_API_RATE_LIMIT: '-5' })).toThrow(/FLEETPATCH_API_RATE_LIMIT=-5 is not a whole number/);
    expect(() => loadConfig({ FLEETPATCH_GRAPHQL_MAX_ALIASES: '0' })).toThrow(/FLEETPATCH_GRAPHQL_MAX_ALIASES=0 is not a positive number/);
  });

  it('needs both the TLS certificate and key', () => {
    expect(loadConfig({}).tls).toBeUndefined();
    expect(loadConfig({ FLEETPATCH_TLS_CERT: '/etc/c.pem', FLEETPATCH_TLS_KEY: '/etc/k.pem' }).tls).toEqual({ certFile: '/etc/c.pem', keyFile: '/etc/k.pem' });
    expect(() => loadConfig({ FLEETPATCH_TLS_CERT: '/etc/c.pem' })).toThrow(ConfigError);
    expect(() => loadConfig({ FLEETPATCH_TLS_CERT: '/etc/c.pem' })).toThrow(/only FLEETPATCH_TLS_CERT is set/);
  });
});
