import { describe, expect, it } from 'vitest';
import { openFilesWarning } from '../../src/simulator/fleet.js';

describe('the simulator before it starts N agents', () => {
  it('says when the open-file limit is too low for the fleet, and how to raise it', () => {
    expect(openFilesWarning(1000, 20_000)).toBeNull();
    expect(openFilesWarning(10_000, 20_000)).toBe(
      '10000 virtual agents may hold about 20100 open files; this process may open 20000 (ulimit -n). Raise it (ulimit -n 65536) or split the fleet over several simulators.',
    );
    expect(openFilesWarning(50_000, 20_000)).toContain('ulimit -n 100100');
  });

  it('stays quiet where the limit is unknown', () => {
    expect(openFilesWarning(1_000_000, null)).toBeNull();
  });
});
