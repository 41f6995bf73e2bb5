import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectTestDatabase, freshDatabase } from '../support/env.js';
import { spawnFleetpatch } from '../support/processes.js';

// `fleetpatch cve-import` as an operator runs it on the server: a file or a folder on disk into DATABASE_URL.

const TRACKER = new URL('../fixtures/cve/debian-tracker.json', import.meta.url).pathname;
const OSV_FOLDER = new URL('../fixtures/cve/osv', import.meta.url).pathname;

async function fleetpatch(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; output: string }> {
  const run = spawnFleetpatch(args, env);
  let stdout = '';
  run.child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  const { code } = await run.exited;
  return { code, stdout, output: run.output() };
}

describe('fleetpatch cve-import', () => {
  let url: string;
  let drop: () => Promise<void>;

  beforeAll(async () => {
    ({ url, drop } = await freshDatabase());
  });

  afterAll(async () => {
    await drop();
  });

  it('imports the tracker file and says how much it held; a file that is no tracker is refused in one line, with nothing replaced', async () => {
    const imported = await fleetpatch(['cve-import', TRACKER], { DATABASE_URL: url });
    expect(imported.code).toBe(0);
    expect(imported.stdout).toBe(`imported 7 fixes of 6 CVEs (DEBIAN) from ${TRACKER}\n`);
    const refused = await fleetpatch(['cve-import', '/etc/passwd'], { DATABASE_URL: url });
    expect(refused.code).not.toBe(0);
    expect(refused.output).toMatch(/cve-import: the document is not JSON( \(at byte \d+\))? \(NOT_JSON\)/);
    expect(refused.output).not.toMatch(/root:/);
    const missing = await fleetpatch(['cve-import', '/nonexistent/tracker.json'], { DATABASE_URL: url });
    expect(missing.output).toMatch(/\/nonexistent\/tracker\.json could not be read: ENOENT \(UNREADABLE\)/);
    const database = connectTestDatabase(url);
    try {
      const [stored] = await database.sql`select count(*)::int as n from cve_tracker_fixes`;
      expect(stored!.n).toBe(7);
    } finally {
      await database.close();
    }
  });

  it("imports a folder of OSV records (Ubuntu's and Debian's) beside the tracker, one line per distribution; the tracker format is refused for it", async () => {
    const imported = await fleetpatch(['cve-import', OSV_FOLDER], { DATABASE_URL: url });
    expect(imported.code).toBe(0);
    expect(imported.stdout).toBe(`imported 2 fixes of 1 CVEs (OSV:DEBIAN) from ${OSV_FOLDER}\nimported 6 fixes of 3 CVEs (OSV:UBUNTU) from ${OSV_FOLDER}\n`);
    const refused = await fleetpatch(['cve-import', '--format', 'debian-tracker', OSV_FOLDER], { DATABASE_URL: url });
    expect(refused.code).not.toBe(0);
    expect(refused.output).toMatch(/cve-import: a folder is not the Debian security tracker's JSON: give the file \(BAD_FORMAT\)/);
    const database = connectTestDatabase(url);
    try {
      const stored = await database.sql`select source, count(*)::int as n from cve_tracker_fixes group by source order by source`;
      expect(stored.map((r) => [r.source, r.n])).toEqual([
        ['DEBIAN', 7],
        ['OSV:DEBIAN', 2],
        ['OSV:UBUNTU', 6],
      ]);
    } finally {
      await database.close();
    }
  });
});
