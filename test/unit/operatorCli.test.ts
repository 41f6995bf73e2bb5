import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENROLLMENT_KEY_COLUMNS, expiryOption, TOKEN_COLUMNS } from '../../src/cli/operator/access.js';
import { configDir, graphqlUrlOf, loadCredentials, saveCredentials } from '../../src/cli/operator/credentials.js';
import { changesBetween, checkSpecTypes, inputOfSpec, normaliseSpec, pathOf, pathText, specOfDeployment, type DeploymentSpec, type StoredDeployment } from '../../src/cli/operator/deploymentSpec.js';
import { DEPLOYMENT_COLUMNS } from '../../src/cli/operator/deployments.js';
import { EXIT_CODES } from '../../src/cli/operator/errors.js';
import { ASSESS_COLUMNS, footer, MACHINE_COLUMNS, MACHINE_UPDATE_CSV_COLUMNS, MISSING_UPDATE_COLUMNS } from '../../src/cli/operator/machines.js';
import { csvField, toCsv, toTable } from '../../src/cli/operator/output.js';
import { RUN_COLUMNS, RUN_RESULT_CSV_COLUMNS } from '../../src/cli/operator/runs.js';
import { exitCodeOf } from '../../src/cli/operator/watch.js';

describe('operator CLI output', () => {
  it('CSV quotes what needs quoting, flattens nested objects into dotted columns and joins lists', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    const rows = [{ name: 'web-1', readinessDetail: { reason: 'silent, since 5 min', since: null }, tags: ['prod', 'eu'], count: 0 }];
    expect(toCsv(rows, [{ path: 'name' }, { path: 'readinessDetail.reason' }, { path: 'readinessDetail.since' }, { path: 'tags' }, { path: 'count' }])).toBe(
      'name,readinessDetail.reason,readinessDetail.since,tags,count\r\nweb-1,"silent, since 5 min",,prod; eu,0\r\n',
    );
  });

  it('a table has a header line and aligned columns, without borders or trailing spaces', () => {
    const table = toTable([{ a: 'x', b: 1 }, { a: 'longer', b: 22 }], [{ path: 'a', header: 'A' }, { path: 'b', header: 'B' }]);
    expect(table).toBe('A       B\nx       1\nlonger  22\n');
  });

  it('docs/cli.md documents every CSV column list, in order', () => {
    const docs = fs.readFileSync('docs/cli.md', 'utf8');
    const lists = { MACHINE_COLUMNS, MACHINE_UPDATE_CSV_COLUMNS, ASSESS_COLUMNS, MISSING_UPDATE_COLUMNS, DEPLOYMENT_COLUMNS, RUN_COLUMNS, RUN_RESULT_CSV_COLUMNS, TOKEN_COLUMNS, ENROLLMENT_KEY_COLUMNS };
    const missing = Object.entries(lists).filter(([, columns]) => !docs.includes(`\`${columns.map((c) => c.path).join(',')}\``)).map(([name]) => name);
    expect(missing).toEqual([]);
  });

  it('a list footer says how many were shown of how many, and "more than" when the count is a lower bound', () => {
    expect(footer(0, 0, 'machine', null)).toBe('No machine matches.');
    expect(footer(1, 1, 'machine', null)).toBe('1 machine');
    expect(footer(50, 120, 'machine', 'abc')).toBe('50 of 120 machines; next page: --after abc (or --all)');
    expect(footer(50, 10_000, 'machine', 'abc', false)).toBe('50 of more than 10000 machines; next page: --after abc (or --all)');
    // Every page read (--all): what was shown is the count, whatever the bound.
    expect(footer(12_345, 10_000, 'machine', null, false)).toBe('12345 machines');
  });

  it('exit codes: 0 only for SUCCEEDED, each other outcome its own', () => {
    expect([exitCodeOf('SUCCEEDED'), exitCodeOf('PARTIALLY_FAILED'), exitCodeOf('FAILED'), exitCodeOf('CANCELED')]).toEqual([0, 3, 4, 5]);
    expect(new Set(Object.values(EXIT_CODES)).size).toBe(Object.values(EXIT_CODES).length);
    const docs = fs.readFileSync('docs/cli.md', 'utf8');
    for (const code of Object.values(EXIT_CODES)) expect(docs).toMatch(new RegExp(`\\n\\| ${code} \\| `));
  });
});

describe('operator CLI credentials', () => {
  it('takes a server as typed: host:port, a base URL or the /graphql URL', () => {
    expect(graphqlUrlOf('fleet.example.com:4000')).toBe('http://fleet.example.com:4000/graphql');
    expect(graphqlUrlOf('https://fleet.example.com/')).toBe('https://fleet.example.com/graphql');
    expect(graphqlUrlOf('https://fleet.example.com/patch/graphql')).toBe('https://fleet.example.com/patch/graphql');
    expect(() => graphqlUrlOf('ftp://fleet')).toThrow('The server URL must be http:// or https://; got ftp://.');
  });

  it('saves with mode 0600 in a 0700 folder; FLEETPATCH_SERVER and FLEETPATCH_TOKEN each win over the file', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-cred-'));
    const env = { XDG_CONFIG_HOME: path.join(home, 'config') };
    const file = saveCredentials('http://a:4000/graphql', 'fp_saved', env);
    expect(file).toBe(path.join(configDir(env), 'credentials.json'));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(loadCredentials(env)).toEqual({ graphqlUrl: 'http://a:4000/graphql', token: 'fp_saved' });
    expect(loadCredentials({ ...env, FLEETPATCH_TOKEN: 'fp_env' })).toEqual({ graphqlUrl: 'http://a:4000/graphql', token: 'fp_env' });
    expect(loadCredentials({ ...env, FLEETPATCH_SERVER: 'b:1' })).toEqual({ graphqlUrl: 'http://b:1/graphql', token: 'fp_saved' });
    fs.rmSync(home, { recursive: true });
    expect(() => loadCredentials(env)).toThrow(/^Not logged in to a fleetpatch server: log in with `fleetpatch login --server URL`/);
  });

  it('--expires takes 90d, 12h, 30m, an ISO date-time or never', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(expiryOption('90d', now)).toBe('2026-04-01T00:00:00.000Z');
    expect(expiryOption('12h', now)).toBe('2026-01-01T12:00:00.000Z');
    expect(expiryOption('never', now)).toBeNull();
    expect(expiryOption('2027-02-03T04:05:06+01:00', now)).toBe('2027-02-03T03:05:06.000Z');
    expect(() => expiryOption('soon', now)).toThrow('--expires must be an ISO 8601 date-time');
  });
});

describe('deployments as code: a spec against the API’s rules', () => {
  const now = new Date('2026-06-01T10:00:00Z');
  const spec = (fields: Record<string, unknown>) => {
    const checked = checkSpecTypes({ name: 'ring-0', osType: 'LINUX', classifications: ['CRITICAL'], targetFilter: { tags: ['ring-0'] }, ...fields });
    if (!checked.ok) throw new Error(JSON.stringify(checked.problems));
    return checked.spec;
  };

  it('types are the schema’s: an unknown field and a wrong type name their path; defaults are filled in', () => {
    expect(checkSpecTypes({ name: 'x', osType: 'LINUX', classifications: ['CRITICAL'], schedule: { timeZone: 'UTC', recurence: {} }, windowMinutes: '90', paused: 'no' })).toEqual({
      ok: false,
      problems: [
        { path: ['paused'], message: 'paused must be true or false; got "no"' },
        { path: ['schedule', 'recurence'], message: 'Field "recurence" is not defined by type "ScheduleInput". Did you mean "recurrence"?' },
        { path: ['windowMinutes'], message: 'Int cannot represent non-integer value: "90"' },
      ],
    });
    expect(spec({})).toMatchObject({ windowMinutes: 120, rebootSetting: 'IF_REQUIRED', includePatterns: [], excludePatterns: [], machineIds: [] });
  });

  it('compares as the API stores: order of sets, spelling of instants and time zones do not count', () => {
    const stored = normaliseSpec(spec({ classifications: ['CRITICAL', 'SECURITY'], targetFilter: { tags: ['b', 'a'] }, schedule: { startAt: '2026-07-01T01:00:00Z', timeZone: 'Europe/Paris' } }), now);
    const typed = normaliseSpec(spec({ classifications: ['SECURITY', 'CRITICAL'], targetFilter: { tags: ['a', 'b'] }, schedule: { startAt: '2026-07-01T03:00:00+02:00', timeZone: 'europe/paris' } }), now);
    if (!stored.ok || !typed.ok) throw new Error('expected valid specs');
    expect(changesBetween(stored.value, typed.value, { comparePaused: true })).toEqual([]);
    const wider = normaliseSpec(spec({ classifications: ['CRITICAL', 'SECURITY', 'OTHER'], targetFilter: { tags: ['a', 'b'] }, schedule: { startAt: '2026-07-01T01:00:00Z', timeZone: 'Europe/Paris' }, windowMinutes: 60 }), now);
    if (!wider.ok) throw new Error('expected a valid spec');
    expect(changesBetween(stored.value, wider.value, { comparePaused: false })).toEqual([
      { field: 'classifications', from: ['CRITICAL', 'SECURITY'], to: ['CRITICAL', 'SECURITY', 'OTHER'] },
      { field: 'windowMinutes', from: 120, to: 60 },
    ]);
  });

  it('a rule of the API names its path; a stored start that has passed is kept, another past start is refused', () => {
    const past = '2026-01-06T02:00:00.000Z';
    const weekly = (startAt: string | undefined): DeploymentSpec => spec({ schedule: { ...(startAt ? { startAt } : {}), timeZone: 'UTC', recurrence: { frequency: 'WEEKLY', weekDays: ['TUESDAY'] } } });
    expect(normaliseSpec(weekly(past), now, past).ok).toBe(true);
    expect(normaliseSpec(weekly(undefined), now, past)).toMatchObject({ ok: true, value: { 'schedule.startAt': past } });
    expect(normaliseSpec(weekly('2026-02-03T02:00:00Z'), now, past)).toMatchObject({ ok: false, problem: { path: ['schedule', 'startAt'] } });
    expect(normaliseSpec(spec({ includePatterns: ['ok', 'bad pattern'] }), now)).toMatchObject({ ok: false, problem: { path: ['includePatterns', 1] } });
    expect(pathText(pathOf('includePatterns[1]'))).toBe('includePatterns[1]');
  });

  it('rings and steps are exported, read back and compared: an export applied again changes nothing, a file without them removes them', () => {
    const stored = {
      id: 'd2', name: 'ringed', osType: 'LINUX', machineIds: [], targetFilter: { tags: ['web'], nameContains: null }, classifications: ['SECURITY'], useBaseline: false,
      includePatterns: [], excludePatterns: [], onDemandOnly: true, schedule: null, windowMinutes: 120, rebootSetting: 'IF_REQUIRED', maxConcurrent: null, maxFailures: null, paused: false,
      rings: [
        { name: 'canary', filter: null, machineIds: null, percent: 10, maxConcurrent: null, gate: { maxFailures: { value: 1, unit: 'COUNT' }, soakSeconds: 600, requireApproval: true } },
        { name: 'rest', filter: { tags: ['web'], nameContains: null, environments: [] }, machineIds: null, percent: null, maxConcurrent: { value: 5, unit: 'COUNT' }, gate: { maxFailures: null, soakSeconds: 0, requireApproval: false } },
      ],
      steps: [
        { name: 'drain', phase: 'PRE', onFailure: 'SKIP_INSTALLS', script: null, http: { method: 'POST', url: 'https://lb.example/drain', headers: [{ name: 'Authorization', value: null, secret: 'LB_TOKEN' }], body: null, expectedStatus: [200], timeoutSeconds: 30, retries: 2 } },
        { name: 'health', phase: 'POST', onFailure: 'HALT_RUN', script: { inline: 'systemctl is-active nginx', path: null, interpreter: '/bin/sh', timeoutSeconds: 60 }, http: null },
      ],
    } as StoredDeployment;
    const exported = specOfDeployment(stored);
    // What export writes is a valid file by the schema's types (no nulls where a field is left out).
    const read = checkSpecTypes(JSON.parse(JSON.stringify(exported)));
    if (!read.ok) throw new Error(JSON.stringify(read.problems));
    const current = normaliseSpec(specOfDeployment(stored), now);
    const again = normaliseSpec(read.spec, now);
    if (!current.ok || !again.ok) throw new Error(JSON.stringify([current, again]));
    expect(changesBetween(current.value, again.value, { comparePaused: true })).toEqual([]);
    expect(again.value).toMatchObject({ rings: [{ name: 'canary', percent: 10 }, { name: 'rest' }], steps: [{ name: 'drain' }, { name: 'health' }] });

    const { rings: _rings, steps: _steps, ...plain } = read.spec;
    const without = normaliseSpec(plain, now);
    if (!without.ok) throw new Error('expected a valid spec');
    expect(changesBetween(current.value, without.value, { comparePaused: false }).map((c) => [c.field, c.to])).toEqual([
      ['rings', null],
      ['steps', null],
    ]);
  });

  it('a deployment run on demand only: no schedule, compared and exported as such; a schedule beside it names its path', () => {
    const onDemand = normaliseSpec(spec({ onDemandOnly: true }), now);
    expect(onDemand).toMatchObject({ ok: true, value: { onDemandOnly: true, 'schedule.startAt': null, 'schedule.recurrence': null } });
    expect(normaliseSpec(spec({ onDemandOnly: true, schedule: { timeZone: 'UTC' } }), now)).toMatchObject({ ok: false, problem: { path: ['schedule'] } });
    // An update to on demand does not carry the stored start over into a schedule the API would refuse.
    const input = inputOfSpec(spec({ onDemandOnly: true }), '2026-01-06T02:00:00.000Z');
    expect([input.onDemandOnly, input.schedule ?? null]).toEqual([true, null]);
    const scheduled = normaliseSpec(spec({ schedule: { startAt: '2026-07-01T01:00:00Z', timeZone: 'UTC' } }), now);
    if (!onDemand.ok || !scheduled.ok) throw new Error('expected valid specs');
    expect(changesBetween(scheduled.value, onDemand.value, { comparePaused: false }).map((c) => c.field)).toEqual(['onDemandOnly', 'schedule.startAt', 'schedule.timeZone', 'schedule.recurrence']);

    // As the server returns it (schedule null), exported, and read back: the same deployment.
    const stored: StoredDeployment = {
      id: 'd1', name: 'ring-0', osType: 'LINUX', machineIds: [], targetFilter: { tags: ['ring-0'], nameContains: null }, classifications: ['CRITICAL'], useBaseline: false,
      includePatterns: [], excludePatterns: [], onDemandOnly: true, schedule: null, windowMinutes: 120, rebootSetting: 'IF_REQUIRED', maxConcurrent: null, maxFailures: null, rings: null, steps: null, paused: false,
    } as StoredDeployment;
    const exported = specOfDeployment(stored);
    expect(exported).toMatchObject({ onDemandOnly: true, schedule: null });
    const reread = checkSpecTypes(JSON.parse(JSON.stringify(exported)));
    if (!reread.ok) throw new Error(JSON.stringify(reread.problems));
    const again = normaliseSpec(reread.spec, now);
    if (!again.ok) throw new Error('expected a valid spec');
    expect(changesBetween(onDemand.value, again.value, { comparePaused: true })).toEqual([]);
  });
});
