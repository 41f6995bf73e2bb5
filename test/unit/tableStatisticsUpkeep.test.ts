import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startTableStatistics } from '../../src/api/machines/tableStatisticsUpkeep.js';
import type { Database } from '../../src/db/client.js';
import type { AnalyzeDecision, AnalyzedTable } from '../../src/db/tableStatistics.js';
import { createLogger } from '../../src/logger.js';

const logger = createLogger({ level: 'silent', format: 'json', name: 'test' });

/**
 * When an API process looks at the statistics (the look itself, analyzeIfGrown, is tested against
 * PostgreSQL in test/integration/checkInPlan.test.ts): once per delay after enrollments, never while
 * nothing enrolls, never during a database outage, never after stop.
 */
describe('the table statistics upkeep', () => {
  let outage: object | null;
  let looks: number;
  let release: (() => void) | undefined;
  const database = { sql: {}, availability: { get outage() { return outage; } } } as unknown as Database;
  const analyze = vi.fn(async (_sql: unknown, table: AnalyzedTable): Promise<AnalyzeDecision> => {
    looks++;
    if (release === undefined) return { table, analyzed: true, liveRows: 600, knownRows: -1 };
    await new Promise<void>((resolve) => (release = resolve));
    return { table, analyzed: true, liveRows: 600, knownRows: -1 };
  });

  beforeEach(() => {
    vi.useFakeTimers();
    outage = null;
    looks = 0;
    release = undefined;
  });
  afterEach(() => vi.useRealTimers());

  it('looks once, some seconds after enrollments, and not again until the next', async () => {
    const upkeep = startTableStatistics({ database, logger }, { delayMs: 5000, analyze });
    for (let i = 0; i < 100; i++) upkeep.noteGrowth('machines');
    await vi.advanceTimersByTimeAsync(4999);
    expect(looks).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(looks).toBe(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(looks).toBe(1); // at rest: nothing enrolled, nothing looked at
    upkeep.noteGrowth('machines');
    await vi.advanceTimersByTimeAsync(5000);
    expect(looks).toBe(2);
    await upkeep.stop();
  });

  it('looks again after a look under way when enrollments came meanwhile', async () => {
    const upkeep = startTableStatistics({ database, logger }, { delayMs: 5000, analyze });
    release = () => undefined; // the look waits until released
    upkeep.noteGrowth('machines');
    await vi.advanceTimersByTimeAsync(5000);
    expect(looks).toBe(1);
    upkeep.noteGrowth('machines'); // during the look
    const done = release!;
    release = undefined;
    done();
    await vi.advanceTimersByTimeAsync(4999);
    expect(looks).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(looks).toBe(2);
    await upkeep.stop();
  });

  it('looks at each table grown since its last pass once, whichever grew how often', async () => {
    const upkeep = startTableStatistics({ database, logger }, { delayMs: 5000, analyze });
    analyze.mockClear();
    for (let i = 0; i < 10; i++) {
      upkeep.noteGrowth('assessments');
      upkeep.noteGrowth('pending_updates');
    }
    upkeep.noteGrowth('machine_tags');
    await vi.advanceTimersByTimeAsync(5000);
    expect(analyze.mock.calls.map((call) => call[1]).sort()).toEqual(['assessments', 'machine_tags', 'pending_updates']);
    await upkeep.stop();
  });

  it('does not look during a database outage, nor after stop', async () => {
    const upkeep = startTableStatistics({ database, logger }, { delayMs: 5000, analyze });
    outage = { reason: 'down' };
    upkeep.noteGrowth('machines');
    await vi.advanceTimersByTimeAsync(5000);
    expect(looks).toBe(0);
    outage = null;
    upkeep.noteGrowth('machines');
    await upkeep.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(looks).toBe(0);
  });
});
