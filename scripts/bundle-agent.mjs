// Bundles the agent into one file that runs on the Node.js distributions ship (Debian 12: 18;
// RHEL 9 / SLES 15: 18 or 20): no npm dependencies, no native addons.
// `node scripts/bundle-agent.mjs [OUTFILE]` (default dist/agent/fleetpatch-agent.mjs).
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import process from 'node:process';
import { bundleAgent, INLINED_SCRIPTS } from './agentBundle.mjs';

const outfile = process.argv[2] ?? 'dist/agent/fleetpatch-agent.mjs';
const metafile = await bundleAgent({ outfile });
// What went into the bundle, beside it: test/unit/boundaries.test.ts checks that it is only the
// agent's own files, the packages it carries on purpose (commander) and Node built-ins.
await writeFile(outfile.replace(/\.m?js$/, '') + '.meta.json', JSON.stringify(metafile, null, 1));

// tsc compiles the TypeScript only: the unbundled agent in dist/ reads each script beside its module.
for (const { file } of INLINED_SCRIPTS) {
  const target = path.join('dist', path.relative('src', file));
  await mkdir(path.dirname(target), { recursive: true });
  await copyFile(file, target);
}
