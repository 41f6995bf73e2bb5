import fs from 'node:fs';
import path from 'node:path';
import { readOsRelease } from '../facts.js';
import { aptBackend } from './apt/run.js';
import { dnfBackend } from './dnf/run.js';
import type { PackageBackend } from './types.js';
import { windowsBackend } from './windows.js';
import { yumBackend } from './yum/run.js';
import { zypperBackend } from './zypper/run.js';

function onPath(program: string, env: NodeJS.ProcessEnv): boolean {
  return (env.PATH ?? '').split(path.delimiter).some((dir) => dir && fs.existsSync(path.join(dir, program)));
}

/**
 * The package manager of the system under `root`, from what is inside it (its os-release and
 * package databases), as it would be found on `/`. undefined when there is none we drive. On Windows:
 * the Windows Update Agent.
 */
export function detectBackend(root: string, env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): PackageBackend | undefined {
  // Windows has one update mechanism, the Windows Update Agent; --root has no meaning there.
  if (platform === 'win32') return windowsBackend;
  const release = readOsRelease(root);
  const family = `${release.ID ?? ''} ${release.ID_LIKE ?? ''}`.toLowerCase();
  const has = (file: string) => fs.existsSync(path.join(root, file));
  if (has('var/lib/dpkg/status') && onPath('apt-get', env)) return aptBackend;
  if ((/\bsuse\b|\bsles\b|opensuse/.test(family) || has('etc/zypp')) && onPath('zypper', env)) return zypperBackend;
  if (onPath('dnf', env)) return dnfBackend;
  if (onPath('yum', env)) return yumBackend;
  return undefined;
}
