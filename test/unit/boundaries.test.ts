import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, importCycles, isNodeBuiltin, isRelative, scanFiles, scanSource, sourceFiles, type ImportEdge, type ScannedFile } from '../support/imports.js';

/**
 * Which module may import which (Fleet's archtest is the model). A rule names the files it governs
 * and the imports they may have; anything else is a violation, type-only imports included: a type
 * borrowed from another layer is the dependency the rule is about, even when no code is loaded.
 */

const under = (dir: string) => (file: string) => file.startsWith(`${dir}/`);

/**
 * npm packages the agent carries inside its bundle on purpose: pure JavaScript that runs on the
 * distributions' Node 18, no native addon. A package joins this list only by a decision.
 */
const AGENT_PACKAGES = ['commander'];
const isAgentPackage = (specifier: string) => AGENT_PACKAGES.some((p) => specifier === p || specifier.startsWith(`${p}/`));
/** A bundle input from one of those packages (esbuild names it by its path under node_modules). */
const isAgentPackageFile = (input: string) => AGENT_PACKAGES.some((p) => input.startsWith(`node_modules/${p}/`));

/**
 * Modules outside src/agent that the agent shares with `fleetpatch` by design, each pure: the
 * package's version (the bundle inlines it as a string, scripts/bundle-agent.mjs) and the command
 * line runner (it imports nothing but commander). The bundle check below holds what they import.
 */
const AGENT_SHARED_MODULES = ['src/version.ts', 'src/commandLine.ts'];

interface ImportRule {
  name: string;
  /** The files the rule governs. */
  governs: (file: string) => boolean;
  allows: (edge: ImportEdge) => boolean;
}

const IMPORT_RULES: ImportRule[] = [
  {
    // The domain vocabulary (enums and shared shapes) is imported by every layer and by the agent
    // and console bundles: it imports nothing but itself.
    name: 'src/domain imports only src/domain',
    governs: under('src/domain'),
    allows: (edge) => under('src/domain')(edge.target),
  },
  {
    // The product's decisions are plain functions on plain data: no database, no Temporal, no
    // agent, no API, no Node; the words they decide in come from src/domain.
    name: 'src/fleet imports only src/fleet and src/domain',
    governs: under('src/fleet'),
    allows: (edge) => under('src/fleet')(edge.target) || under('src/domain')(edge.target),
  },
  {
    // Storage and activities speak the domain's words, not the agent's: the agent is one end of
    // the wire, and what the server keeps and decides on is typed in src/domain.
    name: 'src/db and src/activities do not import src/agent',
    governs: (file) => under('src/db')(file) || under('src/activities')(file),
    allows: (edge) => !under('src/agent')(edge.target),
  },
  {
    // Workflows only sequence: Temporal's workflow API, the fleet's decisions, their own ids and
    // signals, and the activities' types (their code runs on the worker, through proxyActivities).
    name: 'src/workflows imports only @temporalio/workflow, src/fleet, src/workflows and activity types',
    governs: under('src/workflows'),
    allows: (edge) =>
      edge.target === '@temporalio/workflow' || under('src/workflows')(edge.target) || under('src/fleet')(edge.target) || (edge.typeOnly && under('src/activities')(edge.target)),
  },
  {
    // The agent runs on managed machines with their distribution's Node and nothing else: Node
    // built-ins, its own files, the modules it shares by design and the packages it bundles.
    name: 'src/agent imports only Node built-ins, src/agent and src/domain',
    governs: under('src/agent'),
    allows: (edge) =>
      isNodeBuiltin(edge.specifier) || under('src/agent')(edge.target) || under('src/domain')(edge.target) || AGENT_SHARED_MODULES.includes(edge.target) || isAgentPackage(edge.specifier),
  },
  {
    // Resolvers validate, call a service and map; queries live in src/db.
    name: 'src/api has no SQL',
    governs: under('src/api'),
    allows: (edge) => !/^(drizzle-orm|postgres)(\/|$)/.test(edge.target),
  },
  {
    // Benchmarks measure the product, not the test harness (which reads vitest's injected services).
    name: 'bench/ does not import test/',
    governs: under('bench'),
    allows: (edge) => !under('test')(edge.target),
  },
  {
    // What benchmarks and tests share (real fixture machines, sample facts) stands on its own.
    name: 'testkit/ does not import test/',
    governs: under('testkit'),
    allows: (edge) => !under('test')(edge.target),
  },
];

const SQL_RULE = 'src/api has no SQL';
const CYCLE_RULE = 'no import cycles in src/';

/**
 * A rule the code must break for a while is listed here, as the violation it is, and only here; a
 * listed exception that no longer occurs fails the test too. None today: keep it that way.
 */
const KNOWN_EXCEPTIONS = new Set<string>([]);

/** Every broken rule among `files`, one line each (`rule: what`). */
function violations(files: ScannedFile[]): string[] {
  const found: string[] = [];
  for (const file of files) {
    for (const rule of IMPORT_RULES.filter((r) => r.governs(file.path))) {
      for (const edge of file.imports) if (!rule.allows(edge)) found.push(`${rule.name}: ${file.path} imports ${edge.specifier}`);
    }
    if (under('src/api')(file.path)) {
      for (const line of file.sqlTemplateLines) found.push(`${SQL_RULE}: ${file.path}:${line} builds a sql\`\` template`);
    }
  }
  for (const cycle of importCycles(files.filter((f) => under('src')(f.path)))) found.push(`${CYCLE_RULE}: ${cycle.join(' <-> ')}`);
  return found;
}

/** The repository files the known exceptions let into the agent (targets of the agent rule's exceptions). */
function agentExceptionFiles(files: ScannedFile[]): Set<string> {
  const agentRule = 'src/agent imports only Node built-ins, src/agent and src/domain';
  return new Set(
    files
      .filter((f) => under('src/agent')(f.path))
      .flatMap((f) => f.imports.filter((e) => isRelative(e.specifier) && KNOWN_EXCEPTIONS.has(`${agentRule}: ${f.path} imports ${e.specifier}`)).map((e) => e.target)),
  );
}

interface Metafile {
  inputs: Record<string, { imports: Array<{ path: string; kind: string; external?: boolean }> }>;
}

/**
 * What the agent bundle may contain: its own files, the domain vocabulary, the modules it shares by design and the
 * packages it carries on purpose, and load nothing at run time but Node built-ins. `alsoAllowed`:
 * today's known exceptions.
 */
function agentBundleViolations(metafile: Metafile, alsoAllowed: Set<string>): string[] {
  const found: string[] = [];
  for (const [input, { imports }] of Object.entries(metafile.inputs)) {
    if (!under('src/agent')(input) && !under('src/domain')(input) && !AGENT_SHARED_MODULES.includes(input) && !isAgentPackageFile(input) && !alsoAllowed.has(input)) found.push(`the agent bundle contains ${input}`);
    for (const imported of imports) {
      if (imported.external && !isNodeBuiltin(imported.path)) found.push(`the agent bundle loads ${imported.path} at run time (from ${input})`);
    }
  }
  return found;
}

const tree = () => scanFiles([...sourceFiles('src'), ...sourceFiles('bench'), ...sourceFiles('testkit')]);

describe('module boundaries', () => {
  it('hold across src/ and bench/, but for the known exceptions', () => {
    const found = violations(tree());
    expect(found.filter((v) => !KNOWN_EXCEPTIONS.has(v))).toEqual([]);
    // An exception that the code no longer has must leave the list.
    expect([...KNOWN_EXCEPTIONS].filter((v) => !found.includes(v))).toEqual([]);
  });

  // Each rule, fed a file that breaks it: the check must name the rule.
  it.each([
    ['src/fleet imports only src/fleet and src/domain', 'src/fleet/x.ts', `import { connectDatabase } from '../db/client.js';`],
    ['src/fleet imports only src/fleet and src/domain', 'src/fleet/x.ts', `import type { Client } from '@temporalio/client';`],
    ['src/fleet imports only src/fleet and src/domain', 'src/fleet/x.ts', `import fs from 'node:fs';`],
    ['src/fleet imports only src/fleet and src/domain', 'src/fleet/x.ts', `export type { MachineFacts } from '../agent/protocol.js';`],
    ['src/domain imports only src/domain', 'src/domain/x.ts', `import type { RebootSetting } from '../fleet/reboot.js';`],
    ['src/domain imports only src/domain', 'src/domain/x.ts', `import { z } from 'zod';`],
    ['src/db and src/activities do not import src/agent', 'src/db/x.ts', `import type { InstallJob } from '../agent/protocol.js';`],
    ['src/db and src/activities do not import src/agent', 'src/activities/x.ts', `import type { PendingUpdate } from '../agent/backends/types.js';`],
    ['src/workflows imports only @temporalio/workflow, src/fleet, src/workflows and activity types', 'src/workflows/x.ts', `import { createActivities } from '../activities/index.js';`],
    ['src/workflows imports only @temporalio/workflow, src/fleet, src/workflows and activity types', 'src/workflows/x.ts', `import { Connection } from '@temporalio/client';`],
    ['src/workflows imports only @temporalio/workflow, src/fleet, src/workflows and activity types', 'src/workflows/x.ts', `import { listRuns } from '../db/runs.js';`],
    ['src/agent imports only Node built-ins, src/agent and src/domain', 'src/agent/x.ts', `import { startApiServer } from '../api/server.js';`],
    ['src/agent imports only Node built-ins, src/agent and src/domain', 'src/agent/x.ts', `import pino from 'pino';`],
    ['src/agent imports only Node built-ins, src/agent and src/domain', 'src/agent/x.ts', `const db = await import('../db/client.js');`],
    ['src/api has no SQL', 'src/api/x.ts', `import { eq } from 'drizzle-orm';`],
    ['src/api has no SQL', 'src/api/x.ts', `import postgres from 'postgres';`],
    ['src/api has no SQL', 'src/api/x.ts', 'export const rows = (db: { execute(q: unknown): unknown }, sql: (s: TemplateStringsArray) => unknown) => db.execute(sql`select 1`);'],
    ['bench/ does not import test/', 'bench/x.ts', `import { machineFacts } from '../test/support/agentFacts.js';`],
    ['testkit/ does not import test/', 'testkit/x.ts', `import { waitUntil } from '../test/support/signals.js';`],
  ])('%s: refuses %s with %s', (rule, file, text) => {
    expect(violations([scanSource(file, text)]).map((v) => v.split(': ')[0])).toContain(rule);
  });

  it('refuse an import cycle', () => {
    const files = [scanSource('src/agent/a.ts', `import { b } from './b.js'; export const a = 1;`), scanSource('src/agent/b.ts', `import { a } from './a.js'; export const b = a;`)];
    expect(violations(files)).toEqual([`${CYCLE_RULE}: src/agent/a.ts <-> src/agent/b.ts`]);
  });

  it('let through what the rules allow', () => {
    const files = [
      scanSource('src/fleet/x.ts', `import type { Compliance } from './compliance.js';\nimport { CLASSIFICATIONS } from '../domain/vocabulary.js';`),
      scanSource('src/domain/x.ts', `import type { Severity } from './vocabulary.js';`),
      scanSource('src/db/x.ts', `import type { InstallJob } from '../domain/types.js';`),
      scanSource('src/workflows/x.ts', `import { proxyActivities } from '@temporalio/workflow';\nimport type * as activities from '../activities/index.js';\nimport { planRun } from '../fleet/planning.js';`),
      scanSource('src/agent/x.ts', `import fs from 'node:fs';\nimport { spawn } from 'child_process';\nimport { version } from '../version.js';\nimport { log } from './log.js';\nimport type { PendingUpdate } from '../domain/types.js';\nimport { Command } from 'commander';`),
      scanSource('src/api/x.ts', `import { listMachines } from '../db/machines.js';\nconst html = String.raw\`<p>\`;`),
      scanSource('bench/x.ts', `import { connectDatabase } from '../src/db/client.js';`),
    ];
    expect(violations(files)).toEqual([]);
  });
});

describe('the agent bundle (scripts/bundle-agent.mjs)', () => {
  it('holds only the agent and the packages it carries, and loads only Node built-ins', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-bundle-'));
    try {
      await promisify(execFile)(process.execPath, ['scripts/bundle-agent.mjs', path.join(dir, 'fleetpatch-agent.mjs')], { cwd: REPO_ROOT });
      const metafile = JSON.parse(fs.readFileSync(path.join(dir, 'fleetpatch-agent.meta.json'), 'utf8')) as Metafile;
      expect(Object.keys(metafile.inputs)).toContain('src/agent/main.ts');
      expect(agentBundleViolations(metafile, agentExceptionFiles(tree()))).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a server file, an npm package bundled in, or a package loaded at run time', () => {
    const metafile: Metafile = {
      inputs: {
        'src/agent/main.ts': { imports: [{ path: 'node:fs', kind: 'import-statement', external: true }] },
        'src/db/client.ts': { imports: [] },
        'node_modules/pino/pino.js': { imports: [] },
        'node_modules/commander/index.js': { imports: [{ path: 'node:events', kind: 'require-call', external: true }] },
        'src/agent/log.ts': { imports: [{ path: 'pino', kind: 'import-statement', external: true }] },
      },
    };
    expect(agentBundleViolations(metafile, new Set())).toEqual([
      'the agent bundle contains src/db/client.ts',
      'the agent bundle contains node_modules/pino/pino.js',
      'the agent bundle loads pino at run time (from src/agent/log.ts)',
    ]);
  });
});
