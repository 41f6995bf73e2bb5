import fs from 'node:fs';
import path from 'node:path';
import type { AssessmentReport } from './protocol.js';

/**
 * Reports waiting for the server, one file each, oldest first. Every report is written here before
 * it is sent, so neither a dead server nor a crashed agent loses it; it is deleted once the server
 * has stored it (or refused it for good). Bounded: past `limit` files the oldest are dropped, since
 * a newer assessment of the same machine supersedes them.
 */
export class ReportSpool {
  private readonly dir: string;

  constructor(
    stateDir: string,
    private readonly limit = 100,
    private readonly onDrop: (file: string) => void = () => undefined,
  ) {
    this.dir = path.join(stateDir, 'spool');
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  add(report: AssessmentReport): void {
    // Sortable by time, unique by id.
    const name = `${String(Date.parse(report.finishedAt)).padStart(15, '0')}-${report.id}.json`;
    const partial = path.join(this.dir, `.${name}.partial`);
    fs.writeFileSync(partial, JSON.stringify(report), { mode: 0o600 });
    fs.renameSync(partial, path.join(this.dir, name));
    const files = this.files();
    for (const file of files.slice(0, Math.max(0, files.length - this.limit))) {
      fs.rmSync(path.join(this.dir, file), { force: true });
      this.onDrop(file);
    }
  }

  files(): string[] {
    return fs
      .readdirSync(this.dir)
      .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .sort();
  }

  size(): number {
    return this.files().length;
  }

  /**
   * Sends the reports oldest first; stops at the first one that cannot be sent now (`send`
   * throws), leaving it and the rest for the next try. Returns how many were delivered.
   */
  async flush(send: (report: AssessmentReport) => Promise<'delivered' | 'rejected'>): Promise<number> {
    let delivered = 0;
    for (const file of this.files()) {
      const full = path.join(this.dir, file);
      let report: AssessmentReport;
      try {
        report = JSON.parse(fs.readFileSync(full, 'utf8')) as AssessmentReport;
      } catch {
        fs.rmSync(full, { force: true }); // a damaged file can never be sent
        continue;
      }
      await send(report);
      fs.rmSync(full, { force: true });
      delivered += 1;
    }
    return delivered;
  }
}
