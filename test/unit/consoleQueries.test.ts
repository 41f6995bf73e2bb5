import fs from 'node:fs';
import path from 'node:path';
import { formatDocument } from '@urql/core';
import { buildSchema, Kind, parse, specifiedRules, validate, type DocumentNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { KNOWN_OPERATION_NAMES } from '../../src/api/knownOperations.js';
import { queryLimitsOf, queryLimitsRule } from '../../src/api/limits.js';
import { loadConfig } from '../../src/config.js';

/**
 * Every GraphQL document the web console and the operator CLI send (their .graphql files, from
 * which `npm run codegen` generates their typed documents), checked against the committed schema
 * and the server's default depth and cost limits: a page or a command must not ask for a field the
 * API does not have, nor for more than the API answers (a missing-updates page once nested 500 × 500),
 * as each client sends it (the console's run page fitted the cost limit without the __typename urql
 * adds to every selection, and was refused with them).
 */
const schema = buildSchema(fs.readFileSync('schema/schema.graphql', 'utf8'));
const limits = loadConfig({}).limits;

const CLIENTS = { console: 'web/src', cli: 'src/cli/operator' };

/** A document as the client puts it on the wire: urql adds __typename to every selection (the cost counts it too); the CLI sends the generated text as it is. */
const SENT: Record<keyof typeof CLIENTS, (document: DocumentNode) => DocumentNode> = { console: (d) => formatDocument(d), cli: (d) => d };

function graphqlFiles(folder: string): string[] {
  return fs.readdirSync(folder, { recursive: true }).map(String).filter((f) => f.endsWith('.graphql')).map((f) => path.join(folder, f));
}

/** One document per client: its files together, as codegen reads them (fragments are shared across files). */
function clientDocument(folder: string): { files: string[]; document: DocumentNode } {
  const files = graphqlFiles(folder);
  return { files, document: parse(files.map((f) => fs.readFileSync(f, 'utf8')).join('\n'), { maxTokens: 100_000 }) };
}

/** Each operation of a client's document, alone with the fragments it uses, as the client sends it. */
function operationsOf(document: DocumentNode): Array<{ name: string; kind: string; document: DocumentNode }> {
  const fragments = document.definitions.filter((d) => d.kind === 'FragmentDefinition');
  return document.definitions.flatMap((d) => {
    if (d.kind !== 'OperationDefinition') return [];
    const used = new Set<string>();
    const visit = (text: string) => {
      for (const [, name] of text.matchAll(/\.\.\.(\w+)/g)) {
        if (used.has(name!)) continue;
        used.add(name!);
        const fragment = fragments.find((f) => f.name.value === name);
        if (fragment?.loc) visit(fragment.loc.source.body.slice(fragment.loc.start, fragment.loc.end));
      }
    };
    visit(d.loc!.source.body.slice(d.loc!.start, d.loc!.end));
    return [{ name: d.name?.value ?? '(anonymous)', kind: d.operation, document: { kind: Kind.DOCUMENT, definitions: [d, ...fragments.filter((f) => used.has(f.name.value))] } }];
  });
}

describe.each(Object.entries(CLIENTS))('the %s’s GraphQL documents', (client, folder) => {
  const sent = SENT[client as keyof typeof CLIENTS];
  const { files, document } = clientDocument(folder);
  const operations = operationsOf(document);

  it('are found (queries, mutations and subscriptions), each named', () => {
    expect(files.length).toBeGreaterThan(0);
    expect(operations.length).toBeGreaterThanOrEqual(13);
    expect(new Set(operations.map((o) => o.kind))).toEqual(new Set(['query', 'mutation', 'subscription']));
    expect(operations.filter((o) => o.name === '(anonymous)')).toEqual([]);
  });

  it('are valid against the schema and within the default depth and cost limits', () => {
    const problems = operations.flatMap(({ name, document: d }) =>
      validate(schema, sent(d), [...specifiedRules, queryLimitsRule(queryLimitsOf(limits))]).map((error) => `${name}: ${error.message}`),
    );
    expect(problems).toEqual([]);
  });

  it('leave no GraphQL in the code beside them: every document is in a .graphql file, typed by codegen', () => {
    const sources = fs.readdirSync(folder, { recursive: true }).map(String).filter((f) => /\.tsx?$/.test(f) && !f.includes('generated'));
    const inline = sources.filter((f) => /[`']\s*(query|mutation|subscription)(\s+\w+)?\s*[{(]/.test(fs.readFileSync(path.join(folder, f), 'utf8')));
    expect(inline).toEqual([]);
  });
});

describe('operation names', () => {
  it('are the ones the server knows, console and CLI: metrics label only these names', () => {
    const names = Object.values(CLIENTS).flatMap((folder) => operationsOf(clientDocument(folder).document).map((o) => o.name));
    expect(new Set(names).size).toBe(names.length);
    expect([...names].sort()).toEqual([...KNOWN_OPERATION_NAMES].sort());
  });
});
