import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cachedCliPath, findTemporalCli, TemporalCliError } from '../../src/devstack/temporalCli.js';

function fakeBinary(dir: string): string {
  const file = path.join(dir, 'temporal');
  fs.writeFileSync(file, '#!/bin/sh\n', { mode: 0o755 });
  return file;
}

describe('finding the Temporal CLI', () => {
  const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-cli-'));

  it('takes TEMPORAL_CLI_PATH first, then PATH, then the cached build', () => {
    const explicit = fakeBinary(tmp());
    const onPath = fakeBinary(tmp());
    const cache = tmp();
    const env = { FLEETPATCH_CACHE_DIR: cache, PATH: path.dirname(onPath) };
    expect(findTemporalCli({ ...env, TEMPORAL_CLI_PATH: explicit })).toBe(explicit);
    expect(findTemporalCli(env)).toBe(onPath);
    expect(findTemporalCli({ ...env, PATH: '' })).toBeUndefined();
    fs.mkdirSync(path.dirname(cachedCliPath(env)), { recursive: true });
    fakeBinary(path.dirname(cachedCliPath(env)));
    expect(findTemporalCli({ ...env, PATH: '' })).toBe(cachedCliPath(env));
  });

  it('says what to do when TEMPORAL_CLI_PATH points at nothing', () => {
    expect(() => findTemporalCli({ TEMPORAL_CLI_PATH: '/nowhere/temporal' })).toThrow(TemporalCliError);
    expect(() => findTemporalCli({ TEMPORAL_CLI_PATH: '/nowhere/temporal' })).toThrow(/is not an executable file/);
  });
});
