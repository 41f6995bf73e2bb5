import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BackendError } from './types.js';

// Files inside the managed root ('/' on a real machine, a fixture root or an image in tests).

/**
 * Resolves `relativePath` inside `root` the way the machine itself would see it: symbolic links are
 * followed, an absolute link target is taken relative to `root` (a debootstrap root has
 * `var/run -> /run`: following that on the host would read the host's /run), and `..` never leaves
 * `root`. Components that do not exist are kept literally.
 */
export async function resolveInRoot(root: string, relativePath: string): Promise<string> {
  const rootAbs = path.resolve(root);
  if (rootAbs === '/') return path.resolve('/', relativePath);
  let pending = relativePath.split('/').filter((p) => p !== '' && p !== '.');
  let resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = path.join(rootAbs, ...resolved, part);
    let isLink: boolean;
    try {
      isLink = (await fs.lstat(candidate)).isSymbolicLink();
    } catch {
      resolved.push(part, ...pending.filter((p) => p !== '..'));
      break;
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++hops > 40) throw new BackendError('COMMAND_FAILED', `too many symbolic links resolving ${relativePath} in ${root}`);
    const target = await fs.readlink(candidate);
    if (target.startsWith('/')) resolved = [];
    pending = [...target.split('/').filter((p) => p !== '' && p !== '.'), ...pending];
  }
  return path.join(rootAbs, ...resolved);
}

/** Whether `relativePath` exists inside `root`, resolved as resolveInRoot does. */
export async function existsInRoot(root: string, relativePath: string): Promise<boolean> {
  try {
    await fs.stat(await resolveInRoot(root, relativePath));
    return true;
  } catch {
    return false;
  }
}
