/**
 * Idle load: N agents at rest on one API process (issue 7). Each virtual agent (src/simulator, the
 * agent's real protocol client) enrolls, reports its first assessment, then checks in and
 * long-polls for commands like a real agent with nothing to do. Measured on the `fleetpatch
 * server` process: resident memory (VmRSS) and CPU while the fleet is at rest, and the long-polls
 * it holds open (its own /metrics gauge).
 *
 * Run:  npx tsx bench/idleAgents.ts [--machines 10000] [--seconds 60] [--profile DIR]
 * --profile DIR: a CPU profile of the API over the window at rest and a heap snapshot at its end,
 * written to DIR (open them in Chrome DevTools).
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests).
 */
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sleep } from '../src/agent/sleep.js';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import { openFilesWarning, startSimulatedFleet } from '../src/simulator/fleet.js';
import { DEFAULT_PROFILE } from '../src/simulator/syntheticMachine.js';
import { installInterruptHandler, loadAverages, processCpuSeconds, runBenchmark, startStack } from './freshness.js';

const say = (line: string) => console.log(line);
const MiB = 1024 * 1024;

/** Resident memory of a process, from /proc (bytes). */
function residentBytes(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (!kib) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib) * 1024;
}

async function longPollsOpen(baseUrl: string): Promise<number> {
  const text = await fetch(`${baseUrl}/metrics`).then((r) => r.text());
  const value = /^fleetpatch_agent_long_polls_open (\S+)$/m.exec(text)?.[1];
  if (value === undefined) throw new Error('the API /metrics has no fleetpatch_agent_long_polls_open');
  return Number(value);
}

/** Requests the agent endpoint has answered so far (every route and status), from the API's /metrics. */
async function agentRequestsServed(baseUrl: string): Promise<number> {
  const text = await fetch(`${baseUrl}/metrics`).then((r) => r.text());
  let sum = 0;
  for (const match of text.matchAll(/^fleetpatch_agent_requests_total\{[^}]*\} (\S+)$/gm)) sum += Number(match[1]);
  return sum;
}

/** The API's V8 heap in use and its memory outside the heap (buffers), from its /metrics. */
async function apiHeap(baseUrl: string): Promise<{ used: number; total: number; external: number }> {
  const text = await fetch(`${baseUrl}/metrics`).then((r) => r.text());
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { used: value('fleetpatch_api_nodejs_heap_size_used_bytes'), total: value('fleetpatch_api_nodejs_heap_size_total_bytes'), external: value('fleetpatch_api_nodejs_external_memory_bytes') };
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { machines: { type: 'string', default: '10000' }, seconds: { type: 'string', default: '60' }, profile: { type: 'string' } } });
  const n = Number(values.machines);
  const seconds = Number(values.seconds);
  const loadAtStart = os.loadavg();
  installInterruptHandler();
  say(`idle agents benchmark: ${n} virtual agents at rest on one API process, measured for ${seconds} s`);
  const files = openFilesWarning(n);
  if (files) say(`  warning: ${files}`);
  const profileDir = values.profile ? path.resolve(values.profile) : undefined;
  const preload = fileURLToPath(new URL('./profileOnSignal.mjs', import.meta.url));
  const stack = await startStack({
    label: 'idle',
    serverEnv: profileDir ? { FLEETPATCH_PROFILE_DIR: profileDir, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`.trim() } : {},
  });
  const pid = stack.server.pid!;
  try {
    const rssAtStart = residentBytes(pid);
    const { secret } = await createEnrollmentKey(stack.database.db, { description: 'bench idle agents', expiresAt: null, maxUses: null, defaultTags: [] });
    const rampStart = performance.now();
    const fleet = await startSimulatedFleet({
      server: stack.baseUrl,
      enrollKey: secret,
      machines: n,
      profile: { ...DEFAULT_PROFILE, updatesPerMachine: 20 },
      prefix: 'idle',
      rampConcurrency: 50,
      seed: 1,
      progressMs: 5000,
      onProgress: (joined, total, failed) => say(`  ${joined} / ${total} joined${failed ? `, ${failed} failed` : ''} (${((performance.now() - rampStart) / 1000).toFixed(0)} s)`),
    });
    try {
      if (fleet.joinFailures > 0) throw new Error(`${fleet.joinFailures} machines could not join: ${fleet.firstJoinError}`);
      // At rest: (nearly) every agent is inside a long-poll.
      const settleBy = Date.now() + 180_000;
      let open = await longPollsOpen(stack.baseUrl);
      while (open < n * 0.95) {
        if (Date.now() > settleBy) throw new Error(`only ${open} of ${n} long-polls open after 3 minutes`);
        await sleep(2000);
        open = await longPollsOpen(stack.baseUrl);
      }
      say(`  at rest after ${((performance.now() - rampStart) / 1000).toFixed(0)} s: ${open} long-polls open`);

      if (profileDir) process.kill(pid, 'SIGUSR2');
      const checkInsBefore = fleet.totals().checkIns;
      const requestsBefore = await agentRequestsServed(stack.baseUrl);
      const cpuBefore = processCpuSeconds(pid).own;
      const started = performance.now();
      const rss: number[] = [];
      const polls: number[] = [];
      while (performance.now() - started < seconds * 1000) {
        await sleep(5000);
        rss.push(residentBytes(pid));
        polls.push(await longPollsOpen(stack.baseUrl));
      }
      const elapsed = (performance.now() - started) / 1000;
      const cpu = processCpuSeconds(pid).own - cpuBefore;
      const heap = await apiHeap(stack.baseUrl);
      const checkIns = fleet.totals().checkIns - checkInsBefore;
      const requests = (await agentRequestsServed(stack.baseUrl)) - requestsBefore;
      const errors = fleet.totals().errors;

      say('');
      say('| agents | long-polls open (min / max) | API RSS at start | API RSS at rest (max) | API CPU at rest | check-ins/s | agent errors |');
      say('|---|---|---|---|---|---|---|');
      say(
        `| ${n} | ${Math.min(...polls)} / ${Math.max(...polls)} | ${(rssAtStart / MiB).toFixed(0)} MiB | ${(Math.max(...rss) / MiB).toFixed(0)} MiB | ${((cpu / elapsed) * 100).toFixed(1)} % of one core | ${(checkIns / elapsed).toFixed(1)} | ${errors} |`,
      );
      say('');
      say(
        `per agent at rest: ${(((Math.max(...rss) - rssAtStart) / n) / 1024).toFixed(1)} KiB of API RSS; ${requests} agent requests answered (${(requests / elapsed).toFixed(1)}/s), ${((cpu * 1000) / Math.max(1, requests)).toFixed(2)} ms of API CPU per request`,
      );
      say(`API memory at the end: V8 heap used ${(heap.used / MiB).toFixed(0)} MiB of ${(heap.total / MiB).toFixed(0)} MiB, external ${(heap.external / MiB).toFixed(0)} MiB`);
      if (profileDir) {
        process.kill(pid, 'SIGUSR2');
        const by = Date.now() + 120_000;
        while (!fs.existsSync(path.join(profileDir, 'done')) && Date.now() < by) await sleep(1000);
        say(`API CPU profile and heap snapshot in ${profileDir}`);
      }
      if (errors > 0) say(`agent errors (ramp-up included; agents retry them): the last was "${fleet.totals().lastError}"`);
      say(`simulator process (all ${n} agents): RSS ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB`);
      // Issue 18's target: under 512 MiB and not one failed request (retries hid 1,541 of them before).
      say(`target: ${n} idle agents under 512 MiB on one API process with no failed request: ${Math.max(...rss) < 512 * MiB && errors === 0 ? 'met' : 'MISSED'}`);
      say(loadAverages(loadAtStart));
    } finally {
      await fleet.stop();
    }
    return 0;
  } finally {
    await stack.stop();
  }
}

await runBenchmark(main);
