import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { keepRecentlyUsed, markUsed } from '../src/devstack/cacheEntries.js';
import { cacheDir } from '../src/devstack/temporalCli.js';

const pending = new Map<string, Promise<string>>();

/** Versions of one kind's packages kept (src/devstack/cacheEntries.ts). */
const KEEP_PER_KIND = 3;

/**
 * A folder of fixture packages built once for its content, whichever test file, worker or run asks
 * for it: every fixture machine is made of the same catalog, and building its packages (a
 * dpkg-deb or an rpmbuild per version) was most of what a machine cost, repeated by each test file.
 *
 * `content` is everything that decides the packages' bytes (the spec or control files and scripts
 * as written, the build command's options); its hash names the folder under the cache folder
 * (FLEETPATCH_CACHE_DIR, as for the Temporal CLI), so a changed catalog or recipe is built anew and
 * never mistaken for the old one; the oldest versions of a kind beyond the last three used are
 * removed when a new one is built. `build` fills a fresh folder, moved into place whole once built:
 * a folder found there is complete. When two processes build the same content at once, the first
 * one moved in is kept. Callers copy what they need out of it and never change it.
 */
export function cachedPackages(kind: string, content: unknown, build: (dir: string) => Promise<void>): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify(content)).digest('hex').slice(0, 20);
  const dir = path.join(cacheDir(), 'fixture-packages', `${kind}-${hash}`);
  let built = pending.get(dir);
  if (!built) {
    built = buildOnce(dir, kind, build);
    // A failed build is not remembered: the next machine tries again.
    void built.catch(() => pending.delete(dir));
    pending.set(dir, built);
  }
  return built;
}

async function buildOnce(dir: string, kind: string, build: (dir: string) => Promise<void>): Promise<string> {
  if (await exists(dir)) {
    await markUsed(dir);
    return dir;
  }
  await fs.mkdir(path.dirname(dir), { recursive: true });
  const staging = await fs.mkdtemp(`${dir}.partial-`);
  try {
    await build(staging);
    await fs.rename(staging, dir);
    // The whole name, not a prefix: a kind 'dnf' would take 'dnf-rpms-…' for one of its own.
    await keepRecentlyUsed(path.dirname(dir), KEEP_PER_KIND, (name) => new RegExp(`^${kind}-[0-9a-f]{20}$`).test(name));
  } catch (error) {
    await fs.rm(staging, { recursive: true, force: true });
    // Another process moved the same content into place first (rename onto a full folder fails).
    if (await exists(dir)) return dir;
    throw error;
  }
  return dir;
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}
