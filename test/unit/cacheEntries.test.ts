import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keepRecentlyUsed, markUsed } from '../../src/devstack/cacheEntries.js';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetpatch-cache-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** An entry last used `minutesAgo` minutes ago: a folder (as fixture packages) or a file (a bundle). */
async function entry(name: string, minutesAgo: number, folder = true): Promise<string> {
  const file = path.join(dir, name);
  if (folder) await fs.mkdir(file);
  else await fs.writeFile(file, 'x');
  const at = new Date(Date.now() - minutesAgo * 60_000);
  await fs.utimes(file, at, at);
  return file;
}

describe('hash-named cache entries', () => {
  it('keeps the most recently used entries of a kind and removes the older ones, leaving other kinds alone', async () => {
    for (const [index, minutes] of [50, 40, 30, 20, 10].entries()) await entry(`debs-${index}`, minutes);
    await entry('rpms-old', 500);
    await entry('debs-9.partial-abc', 900);

    const removed = await keepRecentlyUsed(dir, 3, (name) => name.startsWith('debs-'));

    expect(removed.sort()).toEqual(['debs-0', 'debs-1']);
    expect((await fs.readdir(dir)).sort()).toEqual(['debs-2', 'debs-3', 'debs-4', 'debs-9.partial-abc', 'rpms-old']);
  });

  it('counts a use: an old entry used again outlives newer ones that were not', async () => {
    const old = await entry('a.js', 60, false);
    await entry('b.js', 30, false);
    await entry('c.js', 20, false);
    await markUsed(old);

    await keepRecentlyUsed(dir, 2, (name) => name.endsWith('.js'));

    expect((await fs.readdir(dir)).sort()).toEqual(['a.js', 'c.js']);
  });

  it('answers nothing removed for a cache folder that does not exist yet', async () => {
    expect(await keepRecentlyUsed(path.join(dir, 'missing'), 1, () => true)).toEqual([]);
  });
});
