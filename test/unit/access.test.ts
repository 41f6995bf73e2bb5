import { describe, expect, it } from 'vitest';
import { roleAllows, weakestRole } from '../../src/fleet/access.js';

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
