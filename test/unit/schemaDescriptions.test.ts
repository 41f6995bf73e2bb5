import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { printApiSchema } from '../../src/api/schema.js';

const LINTER = createRequire(import.meta.url).resolve('graphql-schema-linter/lib/cli.js');
/** graphql-schema-linter's rules about descriptions: what a scripting user reads in GraphiQL and Apollo Sandbox. */
const DESCRIPTION_RULES = ['types-have-descriptions', 'fields-have-descriptions', 'arguments-have-descriptions', 'enum-values-have-descriptions', 'input-object-values-have-descriptions'];

interface LintError {
  message: string;
  rule: string;
}

/** The linter's findings for an SDL text (it exits non-zero when it finds any). */
function lint(sdl: string): LintError[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-schema-lint-'));
  try {
    const file = path.join(dir, 'schema.graphql');
    fs.writeFileSync(file, sdl);
    let output: string;
    try {
      output = execFileSync(process.execPath, [LINTER, '--rules', DESCRIPTION_RULES.join(','), '--format', 'json', file], { encoding: 'utf8' });
    } catch (error) {
      output = (error as { stdout: string }).stdout;
    }
    return (JSON.parse(output) as { errors: LintError[] }).errors;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('the schema people read', () => {
  it('describes every type, field, argument, enum value and input field (graphql-schema-linter, description rules)', async () => {
    expect(lint(await printApiSchema()).map((e) => `${e.rule}: ${e.message}`)).toEqual([]);
  });

  it('is checked for real: a field, an argument and an enum value without a description are each reported', () => {
    const errors = lint(`
      """Reads."""
      type Query {
        """A field."""
        described("""An argument.""" id: ID): Mood
        undescribed(id: ID): String
      }
      """A mood."""
      enum Mood {
        """Glad."""
        GLAD
        SAD
      }
    `);
    expect(errors.map((e) => e.rule).sort()).toEqual(['arguments-have-descriptions', 'enum-values-have-descriptions', 'fields-have-descriptions']);
  });
});
