import fs from 'node:fs';
import { buildSchema, parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';

/** The documents of docs/graphql-examples.md, one per ```graphql block. */
function examples(): Array<{ line: number; source: string }> {
  const text = fs.readFileSync(new URL('../../docs/graphql-examples.md', import.meta.url), 'utf8');
  return [...text.matchAll(/```graphql\n([\s\S]*?)```/g)].map((m) => ({ line: text.slice(0, m.index).split('\n').length + 1, source: m[1]! }));
}

describe('docs/graphql-examples.md', () => {
  it('holds only documents the committed schema accepts', () => {
    const schema = buildSchema(fs.readFileSync(new URL('../../schema/schema.graphql', import.meta.url), 'utf8'));
    const found = examples();
    expect(found.length).toBeGreaterThan(5);
    const errors = found.flatMap(({ line, source }) => validate(schema, parse(source)).map((e) => `line ${line}: ${e.message}`));
    expect(errors).toEqual([]);
  });
});
