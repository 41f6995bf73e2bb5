/**
 * The agent at rest: memory and CPU of the bundled agent between assessments.
 *
 * Starts the server side as bench/freshness.ts does (embedded PostgreSQL, headless Temporal dev
 * server, `node bin/fleetpatch.js server` as a child; all on 127.0.0.1) with the default agent
 * timings (check-in every 60 s, command long-poll of 25 s, assessment every 3 h, package database
 * look every 15 min), builds an apt fixture machine (testkit/apt.ts), and runs the real agent
 * bundle on it:
 *
 *   node dist/agent/fleetpatch-agent.mjs run --server URL --enroll-key KEY --state-dir DIR --root ROOT
 *
 * Once the agent has enrolled, assessed at startup and delivered its report, it is left alone for
 * a settle period, then sampled once a second for the idle window: resident memory (VmRSS of
 * /proc/<pid>/status) and CPU time (utime + stime of /proc/<pid>/stat; the children's cutime +
 * cstime shown apart: an idle agent should start none). Prints RSS min/max and the average CPU %
 * of one core over the window, and an idle bare `node` process's RSS for scale.
 *
 * `--executable FILE` runs a self-contained agent executable instead (`npm run agent-executables`:
 * dist/executables/linux-x64/fleetpatch-agent), to compare it with the bundle on Node.js. The time
 * to the first check-in is when the server first records the machine as seen.
 *
 * Run:  npx tsx bench/agentIdle.ts [--idle-seconds 60] [--settle-seconds 5] [--executable FILE]
 * Needs dist/ (`npm run build`: the agent bundle and the server), apt-get/dpkg, the Temporal CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import { buildAptMachine } from '../testkit/apt.js';
import { benchAbort, checkAborted, cleanupOnce, installInterruptHandler, loadAverages, processCpuSeconds, runBenchmark, startStack, stopProcess } from './freshness.js';

const AGENT_BUNDLE = fileURLToPath(new URL('../dist/agent/fleetpatch-agent.mjs', import.meta.url));

const { values } = parseArgs({
  options: {
    'idle-seconds': { type: 'string', default: '60' },
    'settle-seconds': { type: 'string', default: '5' },
    executable: { type: 'string' },
  },
});
const IDLE_SECONDS = Number(values['idle-seconds']);
const SETTLE_SECONDS = Number(values['settle-seconds']);
const EXECUTABLE = values.executable === undefined ? undefined : path.resolve(values.executable);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resident set size in MiB, from /proc/<pid>/status (VmRSS, in kB). */
function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}

/** Resolves once the output collected so far matches; rejects when the process exits first or time runs out. */
function waitForOutput(child: ChildProcess, output: () => string, pattern: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const timer = setInterval(() => {
      if (pattern.test(output()) || benchAbort.signal.aborted) {
        clearInterval(timer);
        resolve();
      } else if (child.exitCode !== null || child.signalCode !== null || Date.now() - started > timeoutMs) {
        clearInterval(timer);
        reject(new Error(`agent: no ${pattern} (exit ${child.exitCode ?? child.signalCode ?? 'none'}); its output:\n${output()}`));
      }
    }, 50);
  });
}

/** RSS of a bare `node` doing nothing but a timer, for scale. */
async function bareNodeRssMiB(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    await sleep(1500);
    return rssMiB(child.pid!);
  } finally {
    await stopProcess(child);
  }
}

async function main(): Promise<void> {
  if (!fs.existsSync(EXECUTABLE ?? AGENT_BUNDLE)) throw new Error(`${EXECUTABLE ?? AGENT_BUNDLE} is missing: run npm run build (or npm run agent-executables) first`);
  const overall = performance.now();
  const loadAtStart = os.loadavg();
  console.log(`agent idle benchmark: ${EXECUTABLE ?? `node ${AGENT_BUNDLE}`}; default server timings, settle ${SETTLE_SECONDS} s, idle window ${IDLE_SECONDS} s sampled every second`);
  installInterruptHandler();
  const stack = await startStack({ label: 'agent-idle' });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-bench-agent-'));
  let agent: ChildProcess | undefined;
  const cleanup = cleanupOnce(async () => {
    if (agent) await stopProcess(agent);
    await stack.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });
  try {
    const machine = await buildAptMachine(path.join(work, 'apt'));
    const { secret } = await createEnrollmentKey(stack.database.db, { description: 'bench agent', expiresAt: null, maxUses: null, defaultTags: [] });
    let output = '';
    const started = performance.now();
    const runArgs = ['run', '--server', stack.baseUrl, '--enroll-key', secret, '--state-dir', path.join(work, 'state'), '--root', machine.root];
    agent = EXECUTABLE
      ? spawn(EXECUTABLE, runArgs, { env: machine.env, stdio: ['ignore', 'ignore', 'pipe'] })
      : spawn(process.execPath, [AGENT_BUNDLE, ...runArgs], { env: machine.env, stdio: ['ignore', 'ignore', 'pipe'] });
    agent.stderr!.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-16_000);
    });
    for (;;) {
      checkAborted();
      const [seen] = await stack.database.sql<{ n: number }[]>`select count(*)::int as n from machines where last_seen_at is not null`;
      if (seen!.n > 0) break;
      if (agent.exitCode !== null || performance.now() - started > 60_000) throw new Error(`the agent never checked in; its output:\n${output}`);
      await sleep(10);
    }
    const firstCheckInAfter = (performance.now() - started) / 1000;
    await waitForOutput(agent, () => output, /"msg":"assessment done"/, 60_000);
    checkAborted();
    const assessedAfter = (performance.now() - started) / 1000;
    const rssAfterStartup = rssMiB(agent.pid!);
    // The report goes out right after "assessment done": the machine shows it once it is stored.
    const deadline = Date.now() + 30_000;
    for (;;) {
      checkAborted();
      const [row] = await stack.database.sql<{ n: number }[]>`select count(*)::int as n from machines where last_assessed_at is not null`;
      if (row!.n > 0) break;
      if (Date.now() > deadline) throw new Error(`the agent's report never arrived; agent output:\n${output}`);
      await sleep(100);
    }
    console.log(`  agent pid ${agent.pid}: first check-in ${firstCheckInAfter.toFixed(2)} s after start; enrolled, assessed and reported ${assessedAfter.toFixed(1)} s after start (RSS then ${rssAfterStartup.toFixed(1)} MiB)`);
    await sleep(SETTLE_SECONDS * 1000);

    const pid = agent.pid!;
    const rss: number[] = [];
    const cpuStart = processCpuSeconds(pid);
    const windowStart = performance.now();
    for (let i = 0; i <= IDLE_SECONDS; i++) {
      checkAborted();
      rss.push(rssMiB(pid));
      if (i < IDLE_SECONDS) await sleep(windowStart + (i + 1) * 1000 - performance.now());
    }
    const wall = (performance.now() - windowStart) / 1000;
    const cpuEnd = processCpuSeconds(pid);
    const ownPercent = ((cpuEnd.own - cpuStart.own) / wall) * 100;
    const childrenPercent = ((cpuEnd.children - cpuStart.children) / wall) * 100;
    const [seen] = await stack.database.sql<{ at: Date }[]>`select last_seen_at as at from machines`;
    const bare = await bareNodeRssMiB();
    if (agent.exitCode !== null) throw new Error(`the agent exited during the window:\n${output}`);
    const warnings = output.split('\n').filter((l) => /"level":"(warn|error)"/.test(l));

    console.log('');
    console.log('| measure                                        | value |');
    console.log('|------------------------------------------------|-------|');
    console.log(`| idle window                                    | ${wall.toFixed(1)} s, ${rss.length} samples |`);
    console.log(`| RSS min / max                                  | ${Math.min(...rss).toFixed(1)} / ${Math.max(...rss).toFixed(1)} MiB |`);
    console.log(`| RSS at the end of the window                   | ${rss.at(-1)!.toFixed(1)} MiB |`);
    console.log(`| CPU, agent process (utime+stime)               | ${(cpuEnd.own - cpuStart.own).toFixed(2)} s = ${ownPercent.toFixed(3)} % of one core |`);
    console.log(`| CPU, its child processes (cutime+cstime)       | ${(cpuEnd.children - cpuStart.children).toFixed(2)} s = ${childrenPercent.toFixed(3)} % |`);
    console.log(`| RSS of a bare idle \`node\` (for scale)          | ${bare.toFixed(1)} MiB |`);
    console.log('');
    console.log(`last check-in seen by the server: ${seen?.at ? `${((Date.now() - new Date(seen.at).getTime()) / 1000).toFixed(0)} s ago` : 'never'}; agent warnings/errors: ${warnings.length}`);
    for (const w of warnings.slice(0, 5)) console.log(`  ${w}`);
    console.log(`total ${((performance.now() - overall) / 1000).toFixed(1)} s; ${loadAverages(loadAtStart)}`);
  } finally {
    await cleanup();
  }
}

await runBenchmark(main);
