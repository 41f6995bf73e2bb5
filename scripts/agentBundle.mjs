// How the agent becomes one JavaScript file: shared by the .mjs bundle (scripts/bundle-agent.mjs)
// and the self-contained executables (scripts/build-agent-executables.mjs), so both carry the same code.
import { readFile } from 'node:fs/promises';
import { build } from 'esbuild';

export const WINDOWS_SCRIPT = 'src/agent/backends/windows.ps1';

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

// CommonJS has no top-level await, and main.ts ends with one: its call to runCommandLine, which
// catches and reports everything itself, so without the await it does the same.
const mainWithoutTopLevelAwait = {
  name: 'main-without-top-level-await',
  setup(bundle) {
    bundle.onLoad({ filter: /[\\/]agent[\\/]main\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!/^await runCommandLine\(/m.test(source)) throw new Error(`${args.path} no longer ends with "await runCommandLine(": see scripts/agentBundle.mjs`);
      return { contents: source.replace(/^await runCommandLine\(/m, 'void runCommandLine('), loader: 'ts' };
    });
  },
};

/** Another version than package.json's in the agent's code: tests build a second version to upgrade to. */
const versionOverride = (version) => ({
  name: 'version-override',
  setup(bundle) {
    bundle.onLoad({ filter: /[\\/]src[\\/]version\.ts$/ }, () => ({ contents: `export const version = ${JSON.stringify(version)};`, loader: 'ts' }));
  },
});

/**
 * Bundles src/agent/main.ts into `outfile`. `format` 'esm' for the .mjs that runs on a distribution's
 * Node.js (target node18, the oldest one shipped); 'cjs' for a Node.js single executable
 * application, whose main script must be CommonJS on Node 20-24.
 */
export async function bundleAgent({ outfile, format = 'esm', target = 'node18', version }) {
  await build({
    entryPoints: ['src/agent/main.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    target,
    format,
    // Anything outside node: built-ins would be a dependency the machine does not have.
    packages: 'bundle',
    plugins: [inlineWindowsScript, ...(format === 'cjs' ? [mainWithoutTopLevelAwait] : []), ...(version ? [versionOverride(version)] : [])],
    // commander (the command line) is CommonJS and requires node: built-ins; an ES module bundle has
    // no require of its own, so it is given Node's.
    ...(format === 'esm'
      ? { banner: { js: "import { createRequire as __fleetpatchCreateRequire } from 'node:module';\nconst require = __fleetpatchCreateRequire(import.meta.url);" } }
      : {}),
    logLevel: 'warning',
  });
}
