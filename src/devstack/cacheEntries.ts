import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Caches named by the hash of their content (the workflow bundle, fixture packages) gain an entry
 * with every change of that content and nothing ever reads the old ones again. Each use marks its
 * entry as used (its modification time), and a new entry removes all but the `keep` most recently
 * used entries of its kind, so a cache holds a few versions (a checkout's src and dist, a branch
 * switched back and forth) and never grows without end.
 */
export async function markUsed(entry: string): Promise<void> {
  const now = new Date();
  await fs.utimes(entry, now, now).catch(() => undefined);
}

/** Removes the entries of `dir` whose names `isKind` accepts, except the `keep` most recently used. */
export async function keepRecentlyUsed(dir: string, keep: number, isKind: (name: string) => boolean): Promise<string[]> {
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((name) => isKind(name) && !name.includes('.partial'));
  const used = await Promise.all(
    names.map(async (name) => ({ name, at: await fs.stat(path.join(dir, name)).then((stat) => stat.mtimeMs, () => Number.NaN) })),
  );
  const stale = used
    .filter((entry) => !Number.isNaN(entry.at))
    .sort((a, b) => b.at - a.at)
    .slice(keep)
    .map((entry) => entry.name);
  // Processes of one checkout and version use the newest entry; only entries older than the
  // `keep` newest go, and an asker that still wanted one builds it again.
  await Promise.all(stale.map((name) => fs.rm(path.join(dir, name), { recursive: true, force: true })));
  return stale;
}
