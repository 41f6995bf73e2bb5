/**
 * What a written check-in costs PostgreSQL with one definition of the summary's statement trigger
 * against another (issue 18, goals 2 and 3: migration 0057 added the restate of the tag rows, a
 * second join of the UPDATE's old and new rows, to every UPDATE of machines). On a generated fleet
 * (bench/fleetGenerate.ts), each variant replaces `machines_fleet_summary_delta_by_statement` in a
 * transaction, runs one-row UPDATEs of `last_seen_at` (what a check-in that writes changes) of
 * machines no run has read before, and rolls back: the fleet is left as it was. Variants alternate,
 * their order swapped every round.
 *
 * Run:  npx tsx bench/checkInTriggerCost.ts --dir /var/tmp/fleetpatch-fleet-1m \
 *         --before migrations/0056_overdue_os_tag_counts.sql --after migrations/0057_machine_tags_state.sql [--updates 2000] [--rounds 4]
 * (each file's last CREATE OR REPLACE FUNCTION of the trigger function is the variant's)
 */
import fs from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { startFleetDatabase } from './fleetGenerate.js';
import { loadAverages, quantile } from './freshness.js';

const { values } = parseArgs({
  options: { dir: { type: 'string' }, before: { type: 'string' }, after: { type: 'string' }, updates: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '4' } },
});
if (!values.dir || !values.before || !values.after) throw new Error('--dir, --before and --after are required (see the header)');

/** The migration's last definition of the trigger function, as one statement. */
function definitionIn(file: string): string {
  const text = fs.readFileSync(file, 'utf8');
  const start = text.lastIndexOf('CREATE OR REPLACE FUNCTION "machines_fleet_summary_delta_by_statement"');
  if (start < 0) throw new Error(`${file} does not define machines_fleet_summary_delta_by_statement`);
  const end = text.indexOf('$$;', text.indexOf('AS $$', start) + 5);
  return text.slice(start, end + 3);
}

const variants = { before: definitionIn(values.before), after: definitionIn(values.after) };
const updates = Number(values.updates);
const rounds = Number(values.rounds);
const started = await startFleetDatabase(values.dir);
const sql = postgres(started.url, { max: 1, onnotice: () => undefined });
try {
  const atStart = os.loadavg();
  const ids = (await sql<Array<{ id: string }>>`select id from machines where removed_at is null order by random() limit ${updates * (2 * rounds + 2)}`).map((r) => r.id);
  let next = 0;
  const run = async (variant: keyof typeof variants): Promise<number> => {
    const slice = ids.slice(next, (next += updates));
    let ms = 0;
    const rolledBack = new Error('rolled back');
    await sql
      .begin(async (tx) => {
        await tx.unsafe(variants[variant]);
        const t = performance.now();
        for (const id of slice) await tx`update machines set last_seen_at = now() where id = ${id}`;
        ms = performance.now() - t;
        throw rolledBack;
      })
      .catch((error: unknown) => {
        if (error !== rolledBack) throw error;
      });
    return ms / slice.length;
  };
  await run('before');
  await run('after');
  const samples: Record<keyof typeof variants, number[]> = { before: [], after: [] };
  for (let round = 0; round < rounds; round++) {
    for (const variant of (round % 2 === 0 ? ['before', 'after'] : ['after', 'before']) as Array<keyof typeof variants>) {
      const ms = await run(variant);
      samples[variant].push(ms);
      console.log(`round ${round + 1} ${variant}: ${ms.toFixed(3)} ms per one-row UPDATE of last_seen_at`);
    }
  }
  for (const variant of ['before', 'after'] as const) {
    const s = samples[variant];
    console.log(`${variant} (${variant === 'before' ? values.before : values.after}): median ${quantile(s, 0.5).toFixed(3)} ms (${Math.min(...s).toFixed(3)}–${Math.max(...s).toFixed(3)})`);
  }
  console.log(loadAverages(atStart));
} finally {
  await sql.end();
  await started.stop();
}
