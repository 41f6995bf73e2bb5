import fs from 'node:fs';

/**
 * The text of `helper.py`. From source (tests) and from `dist/` it is read beside this module (the
 * build copies it there); the single-file agent bundle replaces this module with the text inlined
 * (scripts/agentBundle.mjs), so the bundle and the executables carry the helper and nothing else is
 * needed.
 */
export function dnfHelperScript(): string {
  return fs.readFileSync(new URL('./helper.py', import.meta.url), 'utf8');
}
