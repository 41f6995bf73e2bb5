import { describe, expect, it } from 'vitest';
import { accessEnded, consoleSessionExpiry, isRole, parseTokenExpiry, roleAllows, tokenNameProblem, weakestRole } from '../../src/fleet/access.js';

describe('roles', () => {
  it('lets each role do what the roles below it may, and nothing above', () => {
    expect(roleAllows('ADMIN', 'OPERATOR')).toBe(true);
    expect(roleAllows('OPERATOR', 'OPERATOR')).toBe(true);
    expect(roleAllows('OPERATOR', 'ADMIN')).toBe(false);
    expect(roleAllows('VIEWER', 'OPERATOR')).toBe(false);
    expect(roleAllows('VIEWER', 'VIEWER')).toBe(true);
  });

  it('opens a field marked with several roles to the weakest of them', () => {
    expect(weakestRole(['ADMIN', 'OPERATOR'])).toBe('OPERATOR');
    expect(weakestRole(['VIEWER', 'ADMIN'])).toBe('VIEWER');
  });
});

describe('token expiry and names', () => {
  const now = new Date('2026-01-10T12:00:00Z');

  it('reads relative and absolute expiries, and never', () => {
    expect(parseTokenExpiry('30d', now)).toEqual(new Date('2026-02-09T12:00:00Z'));
    expect(parseTokenExpiry('12h', now)).toEqual(new Date('2026-01-11T00:00:00Z'));
    expect(parseTokenExpiry('90m', now)).toEqual(new Date('2026-01-10T13:30:00Z'));
    expect(parseTokenExpiry('2026-03-01', now)).toEqual(new Date('2026-03-01T00:00:00Z'));
    expect(parseTokenExpiry('2026-03-01T08:00:00+02:00', now)).toEqual(new Date('2026-03-01T06:00:00Z'));
    expect(parseTokenExpiry('never', now)).toBeNull();
  });

  it('refuses an expiry in the past, too far ahead, or unreadable, naming the accepted forms', () => {
    expect(() => parseTokenExpiry('2025-12-31', now)).toThrow(/must be in the future/);
    expect(() => parseTokenExpiry('0d', now)).toThrow(/must be in the future/);
    expect(() => parseTokenExpiry('4000d', now)).toThrow(/at most 3650 days/);
    expect(() => parseTokenExpiry('next week', now)).toThrow(/use 30d, 12h, 90m, an ISO date/);
  });

  it('refuses empty, overlong and control-character names', () => {
    expect(tokenNameProblem('ci pipeline')).toBeNull();
    expect(tokenNameProblem('  ')).toMatch(/1 to 200/);
    expect(tokenNameProblem('x'.repeat(201))).toMatch(/1 to 200/);
    expect(tokenNameProblem('bad\nname')).toMatch(/control characters/);
  });

  it('knows the roles by name', () => {
    expect(isRole('OPERATOR')).toBe(true);
    expect(isRole('operator')).toBe(false);
    expect(isRole('ROOT')).toBe(false);
  });
});

describe('when access ends', () => {
  const now = new Date('2026-03-01T12:00:00Z');
  const past = new Date('2026-03-01T11:59:59Z');
  const future = new Date('2026-03-01T12:00:01Z');
  const live = { revokedAt: null, expiresAt: null };

  it.each([
    ['a live token', live, null, null],
    ['a token that expires later', { revokedAt: null, expiresAt: future }, null, null],
    ['a deleted token', undefined, null, 'The API token no longer exists.'],
    ['a revoked token, even unexpired', { revokedAt: past, expiresAt: future }, null, 'The API token was revoked.'],
    ['a token at its expiry', { revokedAt: null, expiresAt: now }, null, 'The API token expired.'],
    ['a live session', live, { endedAt: null, expiresAt: future }, null],
    ['a session of a revoked token', { revokedAt: past, expiresAt: null }, { endedAt: null, expiresAt: future }, 'The API token was revoked.'],
    ['a signed-out session', live, { endedAt: past, expiresAt: future }, 'The console session ended: signed out.'],
    ['an expired session', live, { endedAt: null, expiresAt: past }, 'The console session expired.'],
    ['a deleted session', live, undefined, 'The console session no longer exists.'],
  ] as const)('%s', (_, token, session, expected) => {
    expect(accessEnded(token, session, now)).toBe(expected);
  });

  it('gives a console session a working day, never beyond its token', () => {
    expect(consoleSessionExpiry(null, now)).toEqual(new Date('2026-03-02T00:00:00Z'));
    expect(consoleSessionExpiry(new Date('2026-03-10T00:00:00Z'), now)).toEqual(new Date('2026-03-02T00:00:00Z'));
    expect(consoleSessionExpiry(new Date('2026-03-01T13:00:00Z'), now)).toEqual(new Date('2026-03-01T13:00:00Z'));
  });
});
