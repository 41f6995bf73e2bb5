import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { addAgentCommands } from '../../src/agent/cli.js';
import { DOCUMENT_SCHEMAS, installResult, type ObjectSchema, type Schema, type WrapperSchema } from '../../src/agent/backends/windowsDocument.js';

// windows.ps1 cannot run here (no PowerShell, no Windows Update Agent). What can be checked is that
// the JSON it builds has exactly the shape the agent parses: every hashtable the script writes is
// one object of the document schema, key for key, and every object of the schema is built by it.

const SCRIPT = fs.readFileSync(new URL('../../src/agent/backends/windows.ps1', import.meta.url), 'utf8');

/** The keys of each `@{ ... }` hashtable literal in the script, nested ones apart, in source order. */
function hashtableKeys(script: string): string[][] {
  const code = script.replace(/<#[\s\S]*?#>/g, '').replace(/^\s*#.*$/gm, '');
  const tables: string[][] = [];
  // Every brace opens a frame: a hashtable (@{) collects keys; script blocks ({) only nest.
  const stack: Array<string[] | null> = [];
  let lineStart = true;
  for (let i = 0; i < code.length; i += 1) {
    const ch = code[i]!;
    if (ch === '{') {
      const table = code[i - 1] === '@' ? [] : null;
      if (table) tables.push(table);
      stack.push(table);
    } else if (ch === '}') {
      stack.pop();
    } else if (lineStart && stack.length > 0 && stack[stack.length - 1]) {
      const key = /^\s*([a-z][A-Za-z]*)\s*=\s/.exec(code.slice(i, code.indexOf('\n', i) >>> 0));
      if (key) stack[stack.length - 1]!.push(key[1]!);
    }
    lineStart = ch === '\n';
  }
  return tables;
}

/** Every object schema reachable from the documents, with a path for messages. */
function objectSchemas(): Array<{ at: string; keys: string[]; schema: ObjectSchema<unknown> }> {
  const found: Array<{ at: string; keys: string[]; schema: ObjectSchema<unknown> }> = [];
  const walk = (schema: Schema<unknown>, at: string) => {
    if (schema.kind === 'object') {
      const object = schema as ObjectSchema<unknown>;
      if (!found.some((f) => f.schema === object)) found.push({ at, keys: Object.keys(object.shape).sort(), schema: object });
      for (const [key, inner] of Object.entries(object.shape)) walk(inner, `${at}.${key}`);
    } else if (schema.kind === 'nullable' || schema.kind === 'array') {
      walk((schema as WrapperSchema<unknown>).inner, at);
    }
  };
  for (const [name, schema] of Object.entries(DOCUMENT_SCHEMAS)) walk(schema, name);
  return found;
}

describe('windows.ps1 against the schema its documents are parsed with', () => {
  // An empty @{} is a lookup table of the script's own ($byId), not part of a document.
  const tables = hashtableKeys(SCRIPT).filter((keys) => keys.length > 0).map((keys) => [...keys].sort());
  const schemas = objectSchemas();

  it('finds the hashtables the script builds its documents from', () => {
    // Assess, Status, Install, fatal; update, classification, reboot, source (3), error, install result.
    expect(tables.length).toBeGreaterThanOrEqual(12);
    expect(schemas.map((s) => s.at)).toEqual(
      expect.arrayContaining(['assessDocument', 'assessDocument.updates', 'assessDocument.updates.classification', 'installDocument.results', 'assessDocument.searchError']),
    );
  });

  it('builds every hashtable with exactly the keys of one object of the schema', () => {
    const unmatched = tables.filter((keys) => !schemas.some((s) => JSON.stringify(s.keys) === JSON.stringify(keys)));
    expect(unmatched).toEqual([]);
  });

  it('builds every object of the schema somewhere in the script', () => {
    const unbuilt = schemas.filter((s) => !tables.some((keys) => JSON.stringify(s.keys) === JSON.stringify(keys))).map((s) => `${s.at} {${s.keys.join(', ')}}`);
    expect(unbuilt).toEqual([]);
  });

  it('sets only keys of the install result when it fills one in ($entry.key = ...)', () => {
    const installKeys = Object.keys(installResult.shape);
    const assigned = [...SCRIPT.matchAll(/\$entry\.([A-Za-z]+)\s*=/g)].map((m) => m[1]!);
    expect(assigned.length).toBeGreaterThan(5);
    expect(assigned.filter((key) => !installKeys.includes(key))).toEqual([]);
  });

  it('offers the modes the documents are for, and searches as the issue asks', () => {
    expect(SCRIPT).toContain("[ValidateSet('Assess', 'Status', 'Install')]");
    expect(SCRIPT).toContain("$searcher.Search('IsInstalled=0 and IsHidden=0')");
    for (const mode of ['Assess', 'Status', 'Install']) expect(SCRIPT).toContain(`mode = '${mode}'`);
  });

  it('travels inside the single-file agent bundle', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-bundle-'));
    try {
      const outfile = path.join(dir, 'fleetpatch-agent.mjs');
      await promisify(execFile)(process.execPath, ['scripts/bundle-agent.mjs', outfile], { cwd: new URL('../..', import.meta.url).pathname });
      const bundle = fs.readFileSync(outfile, 'utf8');
      // esbuild writes the text as a template literal: evaluate it and compare with the file.
      const literal = /function windowsScript\(\) \{\s*return (`[\s\S]*?`);\s*\}/.exec(bundle);
      expect(literal).not.toBeNull();
      expect(new Function(`return ${literal![1]}`)()).toBe(SCRIPT);
      expect(bundle).not.toMatch(/windows\.ps1['"], import\.meta\.url/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the Windows install script', () => {
  const installer = fs.readFileSync(new URL('../../scripts/install-windows-agent.ps1', import.meta.url), 'utf8');
  const cli = fs.readFileSync(new URL('../../src/agent/cli.ts', import.meta.url), 'utf8');
  // The options `run` really declares, read from the command line definition the agent parses with.
  const runOptions = new Set(addAgentCommands(new Command()).commands.find((c) => c.name() === 'run')!.options.map((o) => o.long!.slice(2)));

  it('starts the agent with flags the agent has', () => {
    const flags = [...new Set([...installer.matchAll(/'--([a-z-]+)'/g)].map((m) => m[1]!))];
    expect(flags.sort()).toEqual(['enroll-key', 'server', 'state-dir']);
    for (const flag of flags) expect(runOptions).toContain(flag);
    expect(installer).toContain("'run', '--server'");
  });

  it('keeps the state where the agent looks by default on Windows', () => {
    expect(installer).toContain("[string]$StateDir = (Join-Path $env:ProgramData 'fleetpatch-agent')");
    expect(cli).toContain("path.win32.join(env.ProgramData || 'C:\\\\ProgramData', 'fleetpatch-agent')");
  });
});


// No PowerShell here, but a PowerShell grammar: tree-sitter's (the one VS Code ships, as WebAssembly).
// Both scripts must parse without a syntax error, which is as far as a check can go without Windows.
interface SyntaxNode {
  type: string;
  text: string;
  isError: boolean;
  isMissing: boolean;
  startPosition: { row: number; column: number };
  children: SyntaxNode[];
}
interface TreeSitter {
  Parser: { init(): Promise<void>; new (): { setLanguage(language: unknown): void; parse(text: string): { rootNode: SyntaxNode } | null } };
  Language: { load(input: Uint8Array): Promise<unknown> };
}

async function powershellSyntaxErrors(text: string): Promise<string[]> {
  const require = createRequire(import.meta.url);
  const { Parser, Language } = require('@vscode/tree-sitter-wasm') as TreeSitter;
  await Parser.init();
  const grammar = await Language.load(fs.readFileSync(require.resolve('@vscode/tree-sitter-wasm/wasm/tree-sitter-powershell.wasm')));
  const parser = new Parser();
  parser.setLanguage(grammar);
  const errors: string[] = [];
  const walk = (node: SyntaxNode) => {
    if (node.isError || node.isMissing) errors.push(`line ${node.startPosition.row + 1}:${node.startPosition.column + 1}: ${node.isMissing ? `missing ${node.type}` : JSON.stringify(node.text.slice(0, 80))}`);
    node.children.forEach(walk);
  };
  walk(parser.parse(text)!.rootNode);
  return errors;
}

describe('PowerShell syntax', () => {
  it('finds a syntax error where there is one (the check works)', async () => {
    expect(await powershellSyntaxErrors('if ($x -eq ) { }\n$y = @{ a = 1')).not.toEqual([]);
  });

  it('parses windows.ps1 and install-windows-agent.ps1 without an error', async () => {
    expect(await powershellSyntaxErrors(SCRIPT)).toEqual([]);
    expect(await powershellSyntaxErrors(fs.readFileSync(new URL('../../scripts/install-windows-agent.ps1', import.meta.url), 'utf8'))).toEqual([]);
  });
});
