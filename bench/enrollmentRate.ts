/**
 * Enrollments through one enrollment key: how many machines a second join a fleet when all of them
 * hold the same key, as a fleet rolled out with one install command does (issue 18, goal 3).
 *
 * Starts the server side (bench/freshness.ts's startStack) and A API processes on it, makes one
 * key without a use limit, then sends N enrollments (the agent's protocol client, a request id
 * each) with C in flight at once, spread over the APIs in turn, after a warm-up of W. Prints the
 * enrollments a second, their latency (p50/p95/max), the API processes' CPU per enrollment, and how
 * many PostgreSQL backends were waiting on a lock (pg_stat_activity, sampled every 100 ms): each
 * enrollment used to lock its key's row for its whole transaction, so enrollments through one key
 * were serial (BENCHMARKS.md, "50,000 idle agents over 4 API processes").
 *
 * Run:  npx tsx bench/enrollmentRate.ts [--enrollments 3000] [--concurrency 50] [--apis 1] [--warmup 200]
 *         [--server-bin ../other-tree/bin/fleetpatch.js]   (another build's API, to compare)
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests).
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { AgentClient } from '../src/agent/client.js';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import { machineFacts } from '../testkit/agentFacts.js';
import { checkAborted, installInterruptHandler, loadAverages, processCpuSeconds, quantile, runBenchmark, startApi, startStack, type Api } from './freshness.js';

const say = (line: string) => console.log(line);

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      enrollments: { type: 'string', default: '3000' },
      concurrency: { type: 'string', default: '50' },
      apis: { type: 'string', default: '1' },
      warmup: { type: 'string', default: '200' },
      'server-bin': { type: 'string' },
    },
  });
  const n = Number(values.enrollments);
  const concurrency = Number(values.concurrency);
  const apiCount = Number(values.apis);
  const warmup = Number(values.warmup);
  const serverBin = values['server-bin'] ? path.resolve(values['server-bin']) : undefined;
  const loadAtStart = os.loadavg();
  installInterruptHandler();
  say(`enrollment rate: ${n} enrollments through one key, ${concurrency} in flight, over ${apiCount} API process(es)${serverBin ? `, API from ${serverBin}` : ''}`);
  const stack = await startStack({ label: 'enroll', ...(serverBin ? { serverBin } : {}) });
  const apis: Array<Api & { stop?: () => Promise<void> }> = [{ pid: stack.server.pid!, baseUrl: stack.baseUrl, output: stack.serverOutput }];
  try {
    const rateLimitsOff = { FLEETPATCH_API_RATE_LIMIT: '0', FLEETPATCH_AGENT_RATE_LIMIT: '0', FLEETPATCH_ENROLL_RATE_LIMIT: '0' };
    for (let i = 1; i < apiCount; i++) apis.push(await startApi(stack, rateLimitsOff, serverBin));
    const { secret } = await createEnrollmentKey(stack.database.db, { description: 'bench enrollment rate', expiresAt: null, maxUses: null, defaultTags: ['bench:enroll'] });
    const clients = apis.map((api) => new AgentClient(api.baseUrl));

    /** Sends `count` enrollments, `concurrency` at a time; each one's latency in ms. */
    const enrollMany = async (count: number, first: number): Promise<number[]> => {
      const latencies: number[] = [];
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < count; i = next++) {
          checkAborted();
          const started = performance.now();
          await clients[(first + i) % clients.length]!.enroll(secret, machineFacts({ hostname: `enroll-${first + i}` }), randomUUID());
          latencies.push(performance.now() - started);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      return latencies;
    };

    await enrollMany(warmup, 0);
    let lockWaitSamples = 0;
    let lockWaiting = 0;
    let maxLockWaiting = 0;
    const byEvent = new Map<string, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const rows = await stack.database.sql<Array<{ event: string; n: number }>>`select wait_event as event, count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' group by 1`;
        const n = rows.reduce((sum, row) => sum + row.n, 0);
        for (const row of rows) byEvent.set(row.event, (byEvent.get(row.event) ?? 0) + row.n);
        lockWaiting += n;
        maxLockWaiting = Math.max(maxLockWaiting, n);
        lockWaitSamples++;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const cpuBefore = apis.map((api) => processCpuSeconds(api.pid).own);
    const started = performance.now();
    const latencies = await enrollMany(n, warmup);
    const seconds = (performance.now() - started) / 1000;
    const cpu = apis.reduce((sum, api, i) => sum + processCpuSeconds(api.pid).own - cpuBefore[i]!, 0);
    sampling = false;
    await sampler;
    const [uses] = await stack.database.sql<Array<{ use_count: number }>>`select use_count from enrollment_keys where description = 'bench enrollment rate'`;
    if (uses!.use_count !== warmup + n) throw new Error(`the key counted ${uses!.use_count} uses, not ${warmup + n}`);

    say('');
    say(`enrollments/s: ${(n / seconds).toFixed(1)} (${n} in ${seconds.toFixed(1)} s)`);
    say(`latency: p50 ${quantile(latencies, 0.5).toFixed(1)} ms, p95 ${quantile(latencies, 0.95).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`);
    say(`API CPU per enrollment: ${((cpu * 1000) / n).toFixed(2)} ms (${apis.length} process(es))`);
    say(`PostgreSQL backends waiting on a lock: mean ${(lockWaiting / Math.max(1, lockWaitSamples)).toFixed(2)}, max ${maxLockWaiting} (${lockWaitSamples} samples; ${[...byEvent].map(([event, count]) => `${event} ${(count / Math.max(1, lockWaitSamples)).toFixed(2)}`).join(', ') || 'none'})`);
    say(loadAverages(loadAtStart));
    return 0;
  } finally {
    for (const api of apis.slice(1)) await api.stop?.();
    await stack.stop();
  }
}

await runBenchmark(main);
