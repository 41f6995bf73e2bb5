// How the agent becomes one JavaScript file: shared by the .mjs bundle (scripts/bundle-agent.mjs)
// and the self-contained executables (scripts/build-agent-executables.mjs), so both carry the same code.
import { readFile } from 'node:fs/promises';
import { build } from 'esbuild';

// Scripts the agent runs with another interpreter travel inside the bundle as text: the module that
// reads each one from disk (beside itself, in src/ and dist/) is replaced by one that returns it.
export const INLINED_SCRIPTS = [
  { module: /[\\/]backends[\\/]windowsScript\.ts$/, exported: 'windowsScript', file: 'src/agent/backends/windows.ps1' },
  { module: /[\\/]backends[\\/]dnf[\\/]helperScript\.ts$/, exported: 'dnfHelperScript', file: 'src/agent/backends/dnf/helper.py' },
];

const inlineScripts = {
  name: 'inline-scripts',
  setup(bundle) {
    for (const script of INLINED_SCRIPTS) {
      bundle.onLoad({ filter: script.module }, async () => ({
        contents: `export function ${script.exported}() { return ${JSON.stringify(await readFile(script.file, 'utf8'))}; }`,
        loader: 'js',
      }));
    }
  },
};

// The agent reports the package's version: the bundle carries that string, not the whole package.json.
// Tests give another version to build a second release to upgrade to.
const inlineVersion = (version) => ({
  name: 'inline-version',
  setup(bundle) {
    bundle.onLoad({ filter: /[\\/]src[\\/]version\.ts$/ }, async () => ({
      contents: `export const version = ${JSON.stringify(version ?? JSON.parse(await readFile('package.json', 'utf8')).version)};`,
      loader: 'js',
    }));
  },
});

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

/**
 * Bundles src/agent/main.ts into `outfile`. `format` 'esm' for the .mjs that runs on a distribution's
 * Node.js (target node18, the oldest one shipped); 'cjs' for a Node.js single executable
 * application, whose main script must be CommonJS on Node 20-24. Returns esbuild's metafile: what
 * went into the bundle.
 */
export async function bundleAgent({ outfile, format = 'esm', target = 'node18', version }) {
  const result = await build({
    entryPoints: ['src/agent/main.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    target,
    format,
    // Anything outside node: built-ins would be a dependency the machine does not have.
    packages: 'bundle',
    plugins: [inlineScripts, inlineVersion(version), ...(format === 'cjs' ? [mainWithoutTopLevelAwait] : [])],
    // commander (the command line) is CommonJS and requires node: built-ins; an ES module bundle has
    // no require of its own, so it is given Node's.
    ...(format === 'esm'
      ? { banner: { js: "import { createRequire as __fleetpatchCreateRequire } from 'node:module';\nconst require = __fleetpatchCreateRequire(import.meta.url);" } }
      : {}),
    logLevel: 'warning',
    metafile: true,
  });
  return result.metafile;
}
