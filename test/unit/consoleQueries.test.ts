import fs from 'node:fs';
import path from 'node:path';
import { formatDocument } from '@urql/core';
import { buildSchema, parse, specifiedRules, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { KNOWN_OPERATION_NAMES } from '../../src/api/knownOperations.js';
import { queryLimitsOf, queryLimitsRule } from '../../src/api/limits.js';
import { loadConfig } from '../../src/config.js';

/**
 * Every GraphQL document the web console sends, checked against the committed schema and the
 * server's default depth and cost limits: a console page must not ask for a field the API does
 * not have, nor for more than the API answers (a missing-updates page once nested 500 × 500), as
 * urql sends it (the run page's first query fitted the cost limit without the __typename urql adds
 * to every selection, and was refused with them).
 */
const WEB_SRC = path.resolve('web/src');
const schema = buildSchema(fs.readFileSync('schema/schema.graphql', 'utf8'));
const limits = loadConfig({}).limits;

function consoleDocuments(): Array<{ file: string; text: string }> {
  const documents: Array<{ file: string; text: string }> = [];
  const files = fs.readdirSync(WEB_SRC, { recursive: true }).map(String).filter((f) => /\.tsx?$/.test(f));
  for (const file of files) {
    const source = fs.readFileSync(path.join(WEB_SRC, file), 'utf8');
    // Field lists shared by several documents of the file: const NAME = `...` or '...'.
    const pieces = new Map<string, string>();
    for (const [, name, text] of source.matchAll(/const (\w+) = [`']([^`']*)[`']/g)) pieces.set(name!, text!);
    const expand = (text: string): string =>
      text.replace(/\$\{(\w+)\}/g, (_, name: string) => {
        const piece = pieces.get(name);
        if (piece === undefined) throw new Error(`${file}: \${${name}} in a GraphQL document is not a constant of the file`);
        return expand(piece);
      });
    for (const [, text] of source.matchAll(/[`']\s*((?:query|mutation|subscription)\b[^`']*)[`']/g)) documents.push({ file, text: expand(text!) });
  }
  return documents;
}

describe('the web console’s GraphQL documents', () => {
  const documents = consoleDocuments();

  it('are found (queries, mutations and subscriptions)', () => {
    expect(documents.length).toBeGreaterThanOrEqual(13);
    expect(documents.some((d) => d.text.startsWith('subscription'))).toBe(true);
    expect(documents.some((d) => d.text.startsWith('mutation'))).toBe(true);
  });

  it('are valid against the schema and within the default depth and cost limits', () => {
    const problems = documents.flatMap(({ file, text }) =>
      // As urql sends it: with __typename in every selection, which the cost counts too.
      validate(schema, formatDocument(parse(text, { maxTokens: limits.graphqlMaxTokens })), [...specifiedRules, queryLimitsRule(queryLimitsOf(limits))]).map((error) => `${file}: ${error.message}`),
    );
    expect(problems).toEqual([]);
  });

  it('are named as the server knows them: metrics label only these names', () => {
    const names = new Set(documents.flatMap(({ text }) => parse(text).definitions.flatMap((d) => (d.kind === 'OperationDefinition' && d.name ? [d.name.value] : []))));
    expect([...names].sort()).toEqual([...KNOWN_OPERATION_NAMES].sort());
  });
});
