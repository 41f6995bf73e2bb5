import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generate, TARGETS } from '../../scripts/codegen.mjs';

describe('typed GraphQL operations (GraphQL Code Generator)', () => {
  for (const target of TARGETS) {
    it(`${target.output} is what schema/schema.graphql and the ${target.name} client's documents generate (regenerate with \`npm run codegen\`)`, async () => {
      const committed = fs.readFileSync(new URL(`../../${target.output}`, import.meta.url), 'utf8');
      expect(committed).toBe(await generate(target));
    });
  }
});
