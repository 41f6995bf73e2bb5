// Bundles the agent into one file that runs on the Node.js distributions ship (Debian 12: 18;
// RHEL 9 / SLES 15: 18 or 20): no npm dependencies, no native addons.
// `node scripts/bundle-agent.mjs [OUTFILE]` (default dist/agent/fleetpatch-agent.mjs).
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { bundleAgent, INLINED_SCRIPTS } from './agentBundle.mjs';

await bundleAgent({ outfile: process.argv[2] ?? 'dist/agent/fleetpatch-agent.mjs' });

// tsc compiles the TypeScript only: the unbundled agent in dist/ reads each script beside its module.
for (const { file } of INLINED_SCRIPTS) {
  const target = path.join('dist', path.relative('src', file));
  await mkdir(path.dirname(target), { recursive: true });
  await copyFile(file, target);
}
