import fs from 'node:fs';

/** This boot's id from `file` (Linux: the kernel's boot_id; Windows: what the agent wrote); null when unreadable. */
export function readBootId(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim() || null;
  } catch {
    return null;
  }
}
