import { describe, expect, it } from 'vitest';
import { assessmentReport, describeIssues, parseAssessmentReport } from '../../src/api/agent/agent.schema.js';
import { assessmentReport as report, pendingUpdate } from '../../testkit/agentFacts.js';

/** The fast path must answer exactly as the schema does: the same verdict, the same data, the same message. */
function expectSameVerdict(body: unknown): void {
  const fast = parseAssessmentReport(body);
  const schema = assessmentReport.safeParse(body);
  expect(fast.success).toBe(schema.success);
  if (fast.success && schema.success) expect(fast.data).toEqual(schema.data);
  if (!fast.success && !schema.success) expect(describeIssues(fast.error)).toBe(describeIssues(schema.error));
}

const valid = () => JSON.parse(JSON.stringify(report([pendingUpdate({ name: 'openssl', classification: 'SECURITY', severity: 'IMPORTANT', advisoryIds: ['DSA-1'], cveIds: ['CVE-2026-1'] }), pendingUpdate({ name: 'vim' })]))) as Body;
type Body = { result: { updates: Array<Record<string, unknown>> }; trigger?: string; error?: unknown };

describe('the assessment report check', () => {
  it('accepts what the schema accepts, boundaries included, with the same data', () => {
    expectSameVerdict(valid());
    const atLimits = valid();
    Object.assign(atLimits.result.updates[0]!, {
      name: 'n'.repeat(300),
      installedVersion: 'i'.repeat(200),
      availableVersion: 'a'.repeat(200),
      arch: 'x'.repeat(50),
      repository: 'r'.repeat(500),
      advisoryIds: Array.from({ length: 200 }, () => 'A'.repeat(200)),
      cveIds: Array.from({ length: 2000 }, () => 'C'.repeat(50)),
    });
    expectSameVerdict(atLimits);
    const nulls = valid();
    Object.assign(nulls.result.updates[1]!, { installedVersion: null, arch: null, severity: null, repository: null, classification: 'FEATURE_PACK' });
    expectSameVerdict(nulls);
    expect(parseAssessmentReport(nulls).success).toBe(true);
    // An update may say why it is listed (a half-configured package), or leave it out.
    const noted = valid();
    Object.assign(noted.result.updates[0]!, { note: 'n'.repeat(1000) });
    Object.assign(noted.result.updates[1]!, { note: null });
    expectSameVerdict(noted);
    expect(parseAssessmentReport(noted).success).toBe(true);
  });

  const mutations: Array<[string, (u: Record<string, unknown>) => void]> = [
    ['an empty name', (u) => (u.name = '')],
    ['a name too long', (u) => (u.name = 'n'.repeat(301))],
    ['a missing field', (u) => delete u.arch],
    ['an unknown field', (u) => (u.epoch = 1)],
    ['a number for a version', (u) => (u.availableVersion = 1)],
    ['a null available version', (u) => (u.availableVersion = null)],
    ['an unknown classification', (u) => (u.classification = 'URGENT')],
    ['an unknown severity', (u) => (u.severity = 'SEVERE')],
    ['a string for a boolean', (u) => (u.rebootSuggested = 'yes')],
    ['an advisory id too long', (u) => (u.advisoryIds = ['A'.repeat(201)])],
    ['too many CVE ids', (u) => (u.cveIds = Array.from({ length: 2001 }, () => 'CVE'))],
    ['a CVE id that is not a string', (u) => (u.cveIds = [7])],
    ['an arch too long', (u) => (u.arch = 'x'.repeat(51))],
    ['a repository too long', (u) => (u.repository = 'r'.repeat(501))],
    ['a note too long', (u) => (u.note = 'n'.repeat(1001))],
    ['a note that is not a string', (u) => (u.note = 7)],
  ];

  it.each(mutations)('refuses an update with %s, with the schema message', (_what, mutate) => {
    const body = valid();
    mutate(body.result.updates[1]!);
    expectSameVerdict(body);
    expect(parseAssessmentReport(body).success).toBe(false);
  });

  it('refuses an update that is not an object, and a bad report around good updates, as the schema does', () => {
    for (const bad of [null, 'openssl', ['openssl'], 42]) {
      const body = valid();
      (body.result.updates as unknown[])[0] = bad;
      expectSameVerdict(body);
    }
    const badTrigger = valid();
    badTrigger.trigger = 'WHENEVER';
    expectSameVerdict(badTrigger);
    const both = valid();
    both.error = { code: 'X', message: 'y', output: null };
    expectSameVerdict(both);
    const refused = parseAssessmentReport(both);
    expect(refused.success || describeIssues(refused.error)).toContain('exactly one of result and error');
  });
});
