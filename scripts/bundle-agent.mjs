// Bundles the agent into one file that runs on the Node.js distributions ship (Debian 12: 18;
// RHEL 9 / SLES 15: 18 or 20): no npm dependencies, no native addons.
// `node scripts/bundle-agent.mjs [OUTFILE]` (default dist/agent/fleetpatch-agent.mjs).
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import process from 'node:process';
import { build } from 'esbuild';

const WINDOWS_SCRIPT = 'src/agent/backends/windows.ps1';

// The Windows backend's PowerShell script travels inside the bundle: the module that reads it from
// disk is replaced by one that returns its text.
const inlineWindowsScript = {
  name: 'inline-windows-script',
  setup(bundle) {
    bundle.onLoad({ filter: /[\\/]windowsScript\.ts$/ }, async () => ({
      contents: `export function windowsScript() { return ${JSON.stringify(await readFile(WINDOWS_SCRIPT, 'utf8'))}; }`,
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: ['src/agent/main.ts'],
  outfile: process.argv[2] ?? 'dist/agent/fleetpatch-agent.mjs',
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'esm',
  // Anything outside node: built-ins would be a dependency the machine does not have.
  packages: 'bundle',
  plugins: [inlineWindowsScript],
  // commander (the command line) is CommonJS and requires node: built-ins; an ES module bundle has
  // no require of its own, so it is given Node's.
  banner: { js: "import { createRequire as __fleetpatchCreateRequire } from 'node:module';\nconst require = __fleetpatchCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});

// tsc compiles the TypeScript only: the unbundled agent in dist/ reads the script beside its module.
await mkdir('dist/agent/backends', { recursive: true });
await copyFile(WINDOWS_SCRIPT, 'dist/agent/backends/windows.ps1');
