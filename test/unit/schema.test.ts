import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { printApiSchema } from '../../src/api/schema.js';

describe('schema/schema.graphql', () => {
  it('is the schema the code builds (regenerate with `npm run schema`)', async () => {
    const committed = fs.readFileSync(new URL('../../schema/schema.graphql', import.meta.url), 'utf8');
    expect(committed).toBe(await printApiSchema());
  });
});
