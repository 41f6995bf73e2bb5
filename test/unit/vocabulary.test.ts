import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as vocabulary from '../../src/domain/vocabulary.js';
import { REPO_ROOT, sourceFiles } from '../support/imports.js';

/**
 * One vocabulary: the domain's enumerations are written out once, in src/domain/vocabulary.ts, and
 * everything else (zod schemas, pgEnums, GraphQL enums, the CLI's and the console's lists) derives
 * from them. A second literal copy drifts: a classification added to one list and not to another
 * is refused by the agent endpoint, or stored but never offered, or offered but refused.
 *
 * The rule this test holds, over every .ts/.tsx file in src/ and web/src (but the vocabulary and
 * the generated GraphQL operations, which codegen writes from the schema):
 * - a literal list (array items, z.enum items, a union type `'A' | 'B'`, a TypeScript enum's
 *   values) of three or more classifications and nothing else is a second list of classifications;
 *   one or two (`=== 'CRITICAL'`, a rank of CRITICAL and SECURITY) are decisions, not lists;
 * - a literal list whose values are exactly those of another vocabulary enumeration of three or
 *   more values (in any order) is a second copy of it. Subsets are allowed: statuses share their words (an agent upgrade is
 *   also IN_PROGRESS or FAILED), so only a whole copy is certainly the same list.
 * Object keys (`{ CRITICAL: ..., SECURITY: ... }`, a Record<Classification, ...>) are not lists:
 * the compiler checks a typed Record against the vocabulary.
 */

const VOCABULARY_FILE = 'src/domain/vocabulary.ts';

/**
 * The lists the vocabulary exports, by name, of three values or more: a pair (LINUX and WINDOWS,
 * PRE and POST) is as often a decision between two (`'LINUX' | 'WINDOWS'` in a parameter's type)
 * as a copy of the list, so pairs are left to review.
 */
const LISTS: Array<[string, readonly string[]]> = Object.entries(vocabulary as Record<string, unknown>).filter(
  (entry): entry is [string, readonly string[]] => Array.isArray(entry[1]) && entry[1].length >= 3 && entry[1].every((v: unknown) => typeof v === 'string'),
);
const CLASSIFICATIONS = new Set<string>(vocabulary.CLASSIFICATIONS);

/** Runs of quoted upper-case words separated by commas or bars: array items, enum items, unions. */
const LITERAL_RUN = /(?:(['"])[A-Z][A-Z0-9_]*\1\s*(?:[,|]\s*)?){2,}/g;
/** A TypeScript enum's body: `X = 'X',` lines. */
const ENUM_BODY = /\benum\s+\w+\s*\{([^}]*)\}/g;

/** The literal lists in a source text, each as its values in order, with the line it starts on. */
export function literalLists(text: string): Array<{ line: number; values: string[] }> {
  const found: Array<{ line: number; values: string[] }> = [];
  const lineOf = (index: number) => text.slice(0, index).split('\n').length;
  for (const match of text.matchAll(LITERAL_RUN)) {
    found.push({ line: lineOf(match.index), values: [...match[0].matchAll(/['"]([A-Z][A-Z0-9_]*)['"]/g)].map((m) => m[1]!) });
  }
  for (const match of text.matchAll(ENUM_BODY)) {
    const values = [...match[1]!.matchAll(/=\s*['"]([A-Z][A-Z0-9_]*)['"]/g)].map((m) => m[1]!);
    if (values.length >= 2) found.push({ line: lineOf(match.index), values });
  }
  return found;
}

/** What is wrong with one file's lists under the rule above, one line each. */
export function secondLists(file: string, text: string): string[] {
  const problems: string[] = [];
  for (const { line, values } of literalLists(text)) {
    const distinct = new Set(values);
    if (distinct.size >= 3 && [...distinct].every((v) => CLASSIFICATIONS.has(v))) {
      problems.push(`${file}:${line} writes out classifications (${[...distinct].join(', ')}): import CLASSIFICATIONS or CLASSIFICATIONS_BY_OS from ${VOCABULARY_FILE}`);
      continue;
    }
    for (const [name, list] of LISTS) {
      if (list.length === distinct.size && list.every((v) => distinct.has(v))) {
        problems.push(`${file}:${line} writes out ${name} (${[...distinct].join(', ')}): import it from ${VOCABULARY_FILE}`);
      }
    }
  }
  return problems;
}

const scanned = () =>
  [...sourceFiles('src'), ...sourceFiles('web/src')].filter((file) => file !== VOCABULARY_FILE && !file.endsWith('.generated.ts'));

describe('the domain vocabulary', () => {
  it('is the only literal list of its enumerations in src/ and web/src', () => {
    const problems = scanned().flatMap((file) => secondLists(file, fs.readFileSync(path.join(REPO_ROOT, file), 'utf8')));
    expect(problems).toEqual([]);
  });

  it('finds the vocabulary itself when it scans it (the scan reads what it must)', () => {
    const own = secondLists(VOCABULARY_FILE, fs.readFileSync(path.join(REPO_ROOT, VOCABULARY_FILE), 'utf8'));
    expect(own.some((p) => p.includes('writes out classifications'))).toBe(true);
    expect(own.some((p) => p.includes('writes out SEVERITIES'))).toBe(true);
    expect(own.some((p) => p.includes('writes out MACHINE_RUN_STATUSES'))).toBe(true);
  });

  // Each way of writing a list again, as someone might: the check must name it.
  it.each([
    ['an array', `const C = ['CRITICAL', 'SECURITY', 'OTHER'];`, 'classifications'],
    ['a zod enum over lines', `const c = z.enum([\n  'UPDATE_ROLLUP',\n  'FEATURE_PACK',\n  "TOOLS",\n]);`, 'classifications'],
    ['a union type', `type C = 'CRITICAL' | 'SECURITY' | 'DEFINITION';`, 'classifications'],
    ['a TypeScript enum', `enum Classification {\n  CRITICAL = 'CRITICAL',\n  SECURITY = 'SECURITY',\n  OTHER = 'OTHER',\n}`, 'classifications'],
    ['severities, reordered', `const s = ['LOW', 'MODERATE', 'IMPORTANT', 'CRITICAL'];`, 'SEVERITIES'],
    ['reboot settings', `type R = 'IF_REQUIRED' | 'NEVER' | 'ALWAYS' | 'REBOOT_ONLY';`, 'REBOOT_SETTINGS'],
    ['machine run statuses', `pgEnum('machine_run_status', ['PENDING', 'IN_PROGRESS', 'REBOOTING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELED', 'NOT_STARTED'])`, 'MACHINE_RUN_STATUSES'],
  ])('refuses %s', (_what, text, named) => {
    expect(secondLists('web/src/x.tsx', text).join('\n')).toContain(`writes out ${named}`);
  });

  it('lets through decisions, subsets of shared status words, object keys and other enumerations', () => {
    const text = [
      `if (c === 'CRITICAL' || c === 'SECURITY') return 0;`,
      `const rank = ['CRITICAL', 'SECURITY'];`,
      `type Finished = 'SUCCEEDED' | 'FAILED' | 'CANCELED';`,
      `const counts: Record<Classification, number> = { CRITICAL: 1, SECURITY: 2, OTHER: 3 };`,
      `const map = { critical: 'CRITICAL', important: 'IMPORTANT', moderate: 'MODERATE', low: 'LOW' };`,
      `const methods = ['GET', 'POST', 'PUT'];`,
    ].join('\n');
    expect(secondLists('src/x.ts', text)).toEqual([]);
  });
});
