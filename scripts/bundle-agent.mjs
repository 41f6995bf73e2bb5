// Bundles the agent into one file that runs on the Node.js distributions ship (Debian 12: 18;
// RHEL 9 / SLES 15: 18 or 20): no npm dependencies, no native addons.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/agent/main.ts'],
  outfile: 'dist/agent/fleetpatch-agent.mjs',
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'esm',
  // Anything outside node: built-ins would be a dependency the machine does not have.
  packages: 'bundle',
  logLevel: 'warning',
});
