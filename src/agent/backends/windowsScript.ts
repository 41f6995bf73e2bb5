import fs from 'node:fs';

/**
 * The text of `windows.ps1`. From source (tests) and from `dist/` it is read beside this module
 * (the build copies it there); the single-file agent bundle replaces this module with the text
 * inlined (scripts/bundle-agent.mjs), so the bundle carries the script and nothing else is needed.
 */
export function windowsScript(): string {
  return fs.readFileSync(new URL('./windows.ps1', import.meta.url), 'utf8');
}
