import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { bundleWorkflowCode, Runtime, type Logger } from '@temporalio/worker';
import { keepRecentlyUsed, markUsed } from '../devstack/cacheEntries.js';

/**
 * The folders the workflow bundle is made of, beside the SDK: src/workflows may import only
 * @temporalio/workflow, src/fleet, itself and activity types (erased); src/fleet only itself and
 * src/domain; src/domain only itself. test/unit/boundaries.test.ts holds the code to that, so a
 * hash of these folders and of the SDK's version names the bundle's content.
 */
const BUNDLED_FOLDERS = ['workflows', 'fleet', 'domain'];
const SDK_PACKAGES = ['@temporalio/worker', '@temporalio/workflow', '@temporalio/common'];

/** Bundles kept: a checkout's src and dist, and a version or two back (src/devstack/cacheEntries.ts). */
const BUNDLES_KEPT = 4;

/**
 * The workflow code a worker runs, as Worker.create's `workflowBundle`. Bundling (webpack over the
 * workflows and the SDK) took seconds of CPU at every worker start, for code that changes only with
 * a new version: the bundle is kept in node_modules/.cache/fleetpatch-workflows/, named by the hash
 * of what it is made of, and a worker of the same code loads it instead; a new bundle removes all
 * but the four used last. A worker that cannot write there (a read-only install) bundles at each
 * start, as before. `logger` hears webpack (the SDK's runtime logger by default, as when
 * Worker.create bundles).
 */
export async function cachedWorkflowBundle(workflowsPath: string, logger: Logger = Runtime.instance().logger): Promise<{ codePath: string } | { code: string }> {
  const sourceRoot = path.dirname(path.dirname(workflowsPath));
  const file = path.join(sourceRoot, '..', 'node_modules', '.cache', 'fleetpatch-workflows', `${await contentHash(sourceRoot)}.js`);
  try {
    await fs.access(file);
    await markUsed(file);
    return { codePath: file };
  } catch {
    // Not built for this code yet.
  }
  const { code } = await bundleWorkflowCode({ workflowsPath, logger });
  try {
    await fs.mkdir(path.dirname(file), { recursive: true });
    // Written whole, then moved into place: a worker starting meanwhile never reads half a bundle.
    const partial = `${file}.${randomUUID()}.partial`;
    await fs.writeFile(partial, code);
    await fs.rename(partial, file);
    await keepRecentlyUsed(path.dirname(file), BUNDLES_KEPT, (name) => name.endsWith('.js'));
  } catch {
    // Nowhere to keep it: the next start bundles again.
  }
  return { code };
}

async function contentHash(sourceRoot: string): Promise<string> {
  const hash = createHash('sha256');
  const require = createRequire(import.meta.url);
  for (const name of SDK_PACKAGES) {
    const manifest = JSON.parse(await fs.readFile(require.resolve(`${name}/package.json`), 'utf8')) as { version: string };
    hash.update(`${name}@${manifest.version}\n`);
  }
  for (const folder of BUNDLED_FOLDERS) {
    const dir = path.join(sourceRoot, folder);
    const files = (await fs.readdir(dir, { recursive: true })).filter((name) => /\.[cm]?[jt]s$/.test(name)).sort();
    for (const file of files) hash.update(`${folder}/${file}\n`).update(await fs.readFile(path.join(dir, file)));
  }
  return hash.digest('hex').slice(0, 24);
}
