import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const MIGRATIONS = path.resolve(import.meta.dirname, '../../migrations');

/**
 * The migrator applies what drizzle-kit's journal names, and nothing else: a .sql file the journal
 * does not name (a migration renumbered at a merge whose old file stayed behind) is never applied
 * yet reads like one, and a journal entry without its file fails every deployment.
 */
describe('migrations/', () => {
  it('holds exactly the SQL files its journal names, numbered in order', () => {
    const journal = JSON.parse(fs.readFileSync(path.join(MIGRATIONS, 'meta/_journal.json'), 'utf8')) as { entries: Array<{ idx: number; tag: string }> };
    const tags = journal.entries.map((e) => e.tag);
    const files = fs.readdirSync(MIGRATIONS).filter((f) => f.endsWith('.sql')).map((f) => f.slice(0, -'.sql'.length)).sort();
    expect(files).toEqual([...tags].sort());
    expect(tags.map((t) => Number(t.slice(0, 4)))).toEqual(journal.entries.map((e) => e.idx));
  });
});
