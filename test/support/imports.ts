import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import ts from 'typescript';

/** The repository's root, which every path below is relative to (with forward slashes). */
export const REPO_ROOT = path.resolve(new URL('../..', import.meta.url).pathname);

/** One import of one source file, as the boundary rules see it. */
export interface ImportEdge {
  /** The importing file, e.g. `src/fleet/planning.ts`. */
  from: string;
  /** The specifier as written, e.g. `../agent/protocol.js` or `drizzle-orm`. */
  specifier: string;
  /**
   * A relative specifier resolved to the repository file it names (`src/agent/protocol.ts`); a
   * package or built-in as written (`drizzle-orm/pg-core`, `node:fs`).
   */
  target: string;
  /** Erased at compile time (`import type`, `export type`, `import('x').T`): no code is loaded. */
  typeOnly: boolean;
}

/** What a source file says about its dependencies. */
export interface ScannedFile {
  path: string;
  imports: ImportEdge[];
  /** Lines of the file's `sql`...`` tagged templates (drizzle's SQL builder, postgres.js's queries). */
  sqlTemplateLines: number[];
}

const BUILTINS = new Set(builtinModules);

export function isNodeBuiltin(specifier: string): boolean {
  return specifier.startsWith('node:') || BUILTINS.has(specifier) || BUILTINS.has(specifier.split('/')[0]!);
}

export function isRelative(specifier: string): boolean {
  return specifier.startsWith('./') || specifier.startsWith('../');
}

/** Every `.ts`/`.tsx` file under `dir` (relative to the repository), as repository paths. */
export function sourceFiles(dir: string): string[] {
  const walk = (relative: string): string[] =>
    fs.readdirSync(path.join(REPO_ROOT, relative), { withFileTypes: true }).flatMap((entry) => {
      const child = `${relative}/${entry.name}`;
      if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : walk(child);
      return /\.tsx?$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [child] : [];
    });
  return walk(dir).sort();
}

/** `../agent/protocol.js` from `src/fleet/planning.ts` is `src/agent/protocol.ts` (NodeNext writes the output's extension). */
function resolveRelative(from: string, specifier: string): string {
  const joined = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  if (/\.(c|m)?js$/.test(joined)) {
    const stem = joined.replace(/\.(c|m)?js$/, '');
    for (const candidate of [`${stem}.ts`, `${stem}.tsx`, `${stem}.mts`, joined]) {
      if (fs.existsSync(path.join(REPO_ROOT, candidate))) return candidate;
    }
    return `${stem}.ts`; // a file the checks are shown, not one on disk
  }
  return joined;
}

function importIsTypeOnly(node: ts.ImportDeclaration): boolean {
  const clause = node.importClause;
  if (!clause) return false; // `import 'x'` runs x
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const bindings = clause.namedBindings;
  return !!bindings && ts.isNamedImports(bindings) && bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly);
}

/** The imports and SQL templates of one file's text (`file` only names it). */
export function scanSource(file: string, text: string): ScannedFile {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, file.endsWith('.tsx') ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
  const imports: ImportEdge[] = [];
  const sqlTemplateLines: number[] = [];
  const add = (specifier: string, typeOnly: boolean) => {
    imports.push({ from: file, specifier, target: isRelative(specifier) ? resolveRelative(file, specifier) : specifier, typeOnly });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node.moduleSpecifier.text, importIsTypeOnly(node));
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      add(node.moduleSpecifier.text, node.isTypeOnly);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      add(node.moduleReference.expression.text, node.isTypeOnly);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments;
      // A computed dynamic import cannot be checked: name it, so that a rule refuses it.
      add(argument && ts.isStringLiteralLike(argument) ? argument.text : `<computed: ${argument?.getText(source) ?? ''}>`, false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      add(node.argument.literal.text, true);
    } else if (ts.isTaggedTemplateExpression(node)) {
      const tag = node.tag.getText(source);
      if (/(^|\.)sql(\.\w+)?$/.test(tag)) sqlTemplateLines.push(source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return { path: file, imports, sqlTemplateLines };
}

export function scanFiles(files: string[]): ScannedFile[] {
  return files.map((file) => scanSource(file, fs.readFileSync(path.join(REPO_ROOT, file), 'utf8')));
}

/**
 * Groups of files that load each other, directly or through others (the strongly connected
 * components of the import graph with more than one file, type-only imports left out: they are
 * erased and load nothing). Each group is sorted.
 */
export function importCycles(files: ScannedFile[]): string[][] {
  const known = new Set(files.map((f) => f.path));
  const next = new Map(files.map((f) => [f.path, [...new Set(f.imports.filter((e) => !e.typeOnly && known.has(e.target)).map((e) => e.target))]]));
  // Tarjan's algorithm.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: string[][] = [];
  const visit = (file: string) => {
    index.set(file, index.size);
    low.set(file, index.get(file)!);
    stack.push(file);
    onStack.add(file);
    for (const target of next.get(file) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(file, Math.min(low.get(file)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(file, Math.min(low.get(file)!, index.get(target)!));
      }
    }
    if (low.get(file) === index.get(file)) {
      const group: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        group.push(member);
      } while (member !== file);
      if (group.length > 1) groups.push(group.sort());
    }
  };
  for (const file of known) if (!index.has(file)) visit(file);
  return groups;
}
