import { describe, expect, it } from 'vitest';
import { DependencyGate, ServiceUnavailable, type Outage } from '../../src/availability.js';
import { dependencyAway, formatError } from '../../src/api/errors.js';
import { isDatabaseUnavailable, whileDatabaseAway } from '../../src/db/client.js';
import { testLogger } from '../support/env.js';

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

describe('DependencyGate', () => {
  it('refuses at once during an outage, probes until the dependency answers, then lets requests through again', async () => {
    let answers = false;
    let probes = 0;
    const gate = new DependencyGate('DATABASE', async () => {
      probes++;
      if (!answers) throw refused();
    }, 5);
    const changes: Array<Outage | null> = [];
    const ended = new Promise<void>((resolve) => gate.onChange((outage) => (changes.push(outage), outage === null && resolve())));
    expect(() => gate.check()).not.toThrow();

    gate.failed(refused());
    gate.failed(new Error('a second failure does not open a second outage'));
    expect(gate.outage).toMatchObject({ reason: 'connect ECONNREFUSED 127.0.0.1:5432' });
    expect(() => gate.check()).toThrow(ServiceUnavailable);
    await expect.poll(() => probes).toBeGreaterThan(2);
    expect(gate.outage).not.toBeNull();

    answers = true;
    await ended;
    expect(gate.outage).toBeNull();
    expect(() => gate.check()).not.toThrow();
    expect(changes.map((c) => c && c.reason)).toEqual(['connect ECONNREFUSED 127.0.0.1:5432', null]);
    gate.close();
  });

  it('after a late answer, asks the dependency once: a slow call alone turns no other request away', async () => {
    let answers = true;
    let probes = 0;
    const gate = new DependencyGate('TEMPORAL', async () => {
      probes++;
      if (!answers) throw new Error('14 UNAVAILABLE: No connection established');
    }, 5);
    await gate.late(new Error('4 DEADLINE_EXCEEDED: waiting for schedule to refresh status of completed workflows'));
    expect(probes).toBe(1);
    expect(gate.outage).toBeNull();
    expect(() => gate.check()).not.toThrow();

    answers = false;
    await gate.late(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'));
    expect(gate.outage).toMatchObject({ reason: '14 UNAVAILABLE: No connection established' });
    expect(() => gate.check()).toThrow(ServiceUnavailable);
    gate.close();
  });
});

describe('errors that say a dependency is away', () => {
  it('recognises PostgreSQL being away, not a statement it refused', () => {
    for (const code of ['ECONNREFUSED', 'CONNECTION_CLOSED', 'CONNECT_TIMEOUT', '57P01', '57P03', '08006', '53300']) expect(isDatabaseUnavailable({ code }), code).toBe(true);
    for (const code of ['23505', '22P02', '42P01', undefined]) expect(isDatabaseUnavailable({ code }), String(code)).toBe(false);
    // drizzle wraps the driver's error: the cause chain is followed.
    expect(dependencyAway(new Error('Failed query: select 1', { cause: refused() }))).toBe('DATABASE');
    expect(dependencyAway(new Error('something else'))).toBeNull();
  });

  it('shows them to GraphQL clients as SERVICE_UNAVAILABLE with the dependency, not INTERNAL', () => {
    const format = formatError(testLogger);
    const wrapped = { message: 'Failed query: select 1', path: ['machines'], extensions: { code: 'INTERNAL_SERVER_ERROR' } };
    expect(format(wrapped, { originalError: new Error('Failed query: select 1', { cause: refused() }) })).toEqual({
      message: 'PostgreSQL is unavailable; fleetpatch reconnects by itself. Try again in a few seconds.',
      path: ['machines'],
      locations: undefined,
      extensions: { code: 'SERVICE_UNAVAILABLE', dependency: 'DATABASE' },
    });
    expect(format(wrapped, { originalError: new ServiceUnavailable('TEMPORAL') }).extensions).toEqual({ code: 'SERVICE_UNAVAILABLE', dependency: 'TEMPORAL' });
  });
});

describe('whileDatabaseAway: a step that waits PostgreSQL out', () => {
  const pauses: unknown[] = [];
  const pause = async (error: unknown) => void pauses.push(error);

  it('tries again while PostgreSQL is away (the cause chain followed), pausing between tries, and answers what the step answers once it is back', async () => {
    pauses.length = 0;
    const failures = [refused(), new Error('Failed query: select 1', { cause: refused() })];
    let tries = 0;
    const answer = await whileDatabaseAway(async () => {
      tries++;
      const failure = failures.shift();
      if (failure) throw failure;
      return 'stored';
    }, { pause });
    expect(answer).toBe('stored');
    expect(tries).toBe(3);
    expect(pauses).toHaveLength(2);
  });

  it('throws any other failure at once, and the last one after its attempts', async () => {
    pauses.length = 0;
    const refusedStatement = Object.assign(new Error('duplicate key value'), { code: '23505' });
    await expect(whileDatabaseAway(() => Promise.reject(refusedStatement), { pause })).rejects.toBe(refusedStatement);
    expect(pauses).toHaveLength(0);
    let tries = 0;
    const stillAway = () => {
      tries++;
      return Promise.reject(refused());
    };
    await expect(whileDatabaseAway(stillAway, { attempts: 3, pause })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(tries).toBe(3);
    expect(pauses).toHaveLength(2);
  });
});
