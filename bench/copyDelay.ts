/**
 * TCP_NODELAY on our PostgreSQL connections: N small COPYs one after the other, through a plain
 * postgres.js client (Nagle's algorithm on) and through `connectDatabase` (off), on the same
 * embedded PostgreSQL; milliseconds per COPY, three rounds each, median and spread. A COPY's
 * closing message is written after its data: with Nagle on it waits for the server's delayed ACK
 * (about 40 ms on Linux), which is what `connectDatabase`'s socket exists to avoid.
 *
 * Run:  npx tsx bench/copyDelay.ts [--copies 200]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import postgres, { type Sql } from 'postgres';
import { connectDatabase } from '../src/db/client.js';
import { startEmbeddedPostgres } from '../src/devstack/embeddedPostgres.js';
import { createLogger } from '../src/logger.js';
import { freePort } from '../src/net.js';

const { values } = parseArgs({ options: { copies: { type: 'string', default: '200' } } });
const copies = Number(values.copies);

async function copyRound(sql: Sql): Promise<number> {
  await sql`truncate bench_copy_delay`;
  const started = performance.now();
  for (let i = 0; i < copies; i++) {
    const copy = await sql`copy bench_copy_delay (n, label) from stdin`.writable();
    await new Promise<void>((resolve, reject) => {
      copy.on('error', reject);
      copy.on('finish', resolve);
      copy.end(`${i}\trow ${i}\n`);
    });
  }
  return (performance.now() - started) / copies;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-bench-copy-'));
fs.chmodSync(dir, 0o755);
const pg = await startEmbeddedPostgres({ dir, port: await freePort(), database: 'bench', logger: createLogger({ level: 'warn', format: 'json', name: 'bench' }) });
try {
  const plain = postgres(pg.url, { max: 1, onnotice: () => undefined });
  const ours = connectDatabase(pg.url, { max: 1 });
  await plain`create table bench_copy_delay (n int, label text)`;
  const rounds: Record<string, number[]> = { 'postgres.js (Nagle on)': [], 'connectDatabase (TCP_NODELAY)': [] };
  for (let round = 0; round < 3; round++) {
    rounds['postgres.js (Nagle on)']!.push(await copyRound(plain));
    rounds['connectDatabase (TCP_NODELAY)']!.push(await copyRound(ours.sql));
  }
  console.log(`${copies} COPYs of one row each, one after the other; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  for (const [name, ms] of Object.entries(rounds)) {
    console.log(`${name.padEnd(32)} median ${median(ms).toFixed(2)} ms per COPY (${Math.min(...ms).toFixed(2)}–${Math.max(...ms).toFixed(2)})`);
  }
  await plain.end();
  await ours.close();
} finally {
  await pg.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
