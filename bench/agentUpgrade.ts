/**
 * Self-update of a fleet (issue 14): how long `upgradeAgents` takes to bring N simulated agents to
 * the version the server ships, with rate control, and whether the rate control holds.
 *
 * Each run starts a fresh server side (bench/freshness.ts's startStack: embedded PostgreSQL, headless
 * Temporal dev server, `fleetpatch server`) plus `fleetpatch worker` as its own process, the server
 * given a release to ship (a stand-in linux-x64 executable with its manifest, signed by the release
 * key the server makes), then:
 *
 * 1. N virtual agents of the fleet simulator (src/simulator, all in this process) enroll
 *    --enroll-concurrency at a time reporting version 0.1.0 and pin the server's release key; they
 *    check in and long-poll as the real agent does. An UPGRADE command makes one check the
 *    release's Ed25519 signature against its pinned key (real crypto), go away for
 *    --upgrade-seconds × (0.5 to 1.5) (instead of downloading and swapping the executable), check in
 *    with the new version and report UPGRADED; the benchmark notes when each begins and ends;
 * 2. an OPERATOR calls `upgradeAgents(allMachines, maxConcurrent COUNT --max-concurrent)` over
 *    GraphQL; t0 is when that mutation answered;
 * 3. `agentUpgrade(id){status counts}` is polled every 250 ms until the upgrade is no longer
 *    IN_PROGRESS; the end is the upgrade's `endedAt`.
 *
 * It prints, per run: the time from t0 to the end, from t0 to the first and to the last agent
 * beginning, the most agents seen upgrading at once (rate control: never above maxConcurrent), the
 * ideal time (N / maxConcurrent waves of the mean upgrade time) and the counts; then over the runs the
 * median and the spread (min–max) of the total. Everything listens on 127.0.0.1; temporary folders
 * are removed and every process started is stopped, on Ctrl-C too.
 *
 * Run:  npx tsx bench/agentUpgrade.ts [--machines 1000] [--max-concurrent 100] [--upgrade-seconds 3]
 *                                     [--runs 3] [--enroll-concurrency 50] [--timeout-seconds 900]
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests); raise
 * `ulimit -n` past 2 × machines + 100 first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { sleep } from '../src/agent/sleep.js';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import { createApiToken } from '../src/db/tokens.js';
import { openFilesWarning, startSimulatedFleet, type SimulatedFleet } from '../src/simulator/fleet.js';
import { DEFAULT_PROFILE } from '../src/simulator/syntheticMachine.js';
import { benchAbort, checkAborted, cleanupOnce, installInterruptHandler, loadAverages, quantile, runBenchmark, startStack, stopProcess, type Stack } from './freshness.js';

const FLEETPATCH_BIN = fileURLToPath(new URL('../bin/fleetpatch.js', import.meta.url));
const FROM_VERSION = '0.1.0';
const SHIPPED = '9.9.9';

const { values: args } = parseArgs({
  options: {
    machines: { type: 'string', default: '1000' },
    'max-concurrent': { type: 'string', default: '100' },
    'upgrade-seconds': { type: 'string', default: '3' },
    runs: { type: 'string', default: '3' },
    'enroll-concurrency': { type: 'string', default: '50' },
    'timeout-seconds': { type: 'string', default: '900' },
  },
});
const MACHINES = Number(args.machines);
const MAX_CONCURRENT = Number(args['max-concurrent']);
const UPGRADE_SECONDS = Number(args['upgrade-seconds']);
const RUNS = Number(args.runs);
const ENROLL_CONCURRENCY = Number(args['enroll-concurrency']);
const TIMEOUT_MS = Number(args['timeout-seconds']) * 1000;
for (const [name, value] of Object.entries({ MACHINES, MAX_CONCURRENT, RUNS, ENROLL_CONCURRENCY, TIMEOUT_MS })) {
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name.toLowerCase().replace(/_/g, '-')} must be a positive whole number`);
}
if (!(UPGRADE_SECONDS >= 0)) throw new Error('--upgrade-seconds must be a number of seconds, 0 or more');

function say(line: string): void {
  console.log(line);
}

/** The release the server ships: a stand-in executable (virtual agents check its signature, never run it). */
function writeRelease(dir: string): void {
  const executables = path.join(dir, 'dist/executables');
  fs.mkdirSync(executables, { recursive: true });
  const bytes = Buffer.from('a stand-in for the agent executable\n');
  fs.writeFileSync(path.join(executables, 'fleetpatch-agent-linux-x64'), bytes);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  fs.writeFileSync(path.join(executables, 'manifest.json'), JSON.stringify({ version: SHIPPED, files: [{ platform: 'linux-x64', name: 'fleetpatch-agent-linux-x64', sha256, size: bytes.length }] }));
}

/** `fleetpatch worker` on the stack; resolves once it polls. */
async function startWorker(stack: Stack): Promise<{ child: ChildProcess; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [FLEETPATCH_BIN, 'worker'], {
    env: { ...process.env, DATABASE_URL: stack.databaseUrl, TEMPORAL_ADDRESS: stack.temporal.address, LOG_LEVEL: 'info', LOG_FORMAT: 'json', NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-8000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stop = cleanupOnce(() => stopProcess(child));
  const deadline = Date.now() + 120_000;
  while (!/"msg":"worker polling"/.test(output)) {
    if (benchAbort.signal.aborted || child.exitCode !== null || Date.now() > deadline) {
      await stop();
      checkAborted();
      throw new Error(`fleetpatch worker did not start polling (exit ${child.exitCode}):\n${output}`);
    }
    await sleep(100);
  }
  return { child, stop };
}

async function graphql<T>(stack: Stack, token: string, query: string, variables?: Record<string, unknown>): Promise<T> {
  const response = await fetch(stack.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query, variables }) });
  const body = (await response.json()) as { data?: T; errors?: unknown };
  if (body.errors || !body.data) throw new Error(`GraphQL: ${JSON.stringify(body.errors ?? body)}`);
  return body.data;
}

interface RunFigures {
  totalS: number;
  firstBeginS: number;
  lastBeginS: number;
  mostAtOnce: number;
  counts: Record<string, number>;
  status: string;
}

async function oneRun(run: number): Promise<RunFigures> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-bench-upgrade-'));
  const removeDir = cleanupOnce(async () => fs.rmSync(dir, { recursive: true, force: true }));
  writeRelease(dir);
  let stack: Stack | undefined;
  let worker: { stop: () => Promise<void> } | undefined;
  let fleet: SimulatedFleet | undefined;
  try {
    stack = await startStack({ label: `upgrade-${run}`, serverEnv: { FLEETPATCH_AGENT_DIST_DIR: path.join(dir, 'dist'), FLEETPATCH_RELEASE_KEY_FILE: path.join(dir, 'release-key.json') } });
    worker = await startWorker(stack);
    const operator = (await createApiToken(stack.database.db, { name: 'bench', role: 'OPERATOR' })).secret;
    const enrollKey = (await createEnrollmentKey(stack.database.db, { description: 'bench upgrades', expiresAt: null, maxUses: null, defaultTags: [] })).secret;

    const joinStarted = performance.now();
    fleet = await startSimulatedFleet({
      server: stack.baseUrl,
      enrollKey,
      machines: MACHINES,
      profile: { ...DEFAULT_PROFILE, updatesPerMachine: 2, agentVersion: FROM_VERSION, upgradeSeconds: UPGRADE_SECONDS },
      prefix: 'up',
      rampConcurrency: ENROLL_CONCURRENCY,
      seed: run,
    });
    if (fleet.joinFailures > 0) throw new Error(`${fleet.joinFailures} of ${MACHINES} agents could not join: ${fleet.firstJoinError}`);
    say(`  run ${run}: ${MACHINES} agents joined in ${((performance.now() - joinStarted) / 1000).toFixed(1)} s`);

    let upgrading = 0;
    let mostAtOnce = 0;
    const begins: number[] = [];
    for (const agent of fleet.agents) {
      agent.onUpgrade = (phase) => {
        if (phase === 'BEGIN') {
          begins.push(performance.now());
          mostAtOnce = Math.max(mostAtOnce, ++upgrading);
        } else upgrading--;
      };
    }

    const load = os.loadavg();
    const asked = await graphql<{ upgradeAgents: { id: string } }>(stack, operator, 'mutation($input: UpgradeAgentsInput!) { upgradeAgents(input: $input) { id } }', {
      input: { allMachines: true, maxConcurrent: { value: MAX_CONCURRENT, unit: 'COUNT' } },
    });
    const t0 = performance.now();
    const t0Wall = Date.now();
    type View = { status: string; endedAt: string | null; counts: Record<string, number> };
    let view: View;
    for (;;) {
      checkAborted();
      view = (await graphql<{ agentUpgrade: View }>(stack, operator, 'query($id: ID!) { agentUpgrade(id: $id) { status endedAt counts { total succeeded failed rolledBack timedOut skipped notStarted canceled } } }', { id: asked.upgradeAgents.id })).agentUpgrade;
      if (view.status !== 'IN_PROGRESS') break;
      if (performance.now() - t0 > TIMEOUT_MS) throw new Error(`the upgrade was still IN_PROGRESS after ${TIMEOUT_MS / 1000} s: ${JSON.stringify(view.counts)}`);
      await sleep(250);
    }
    const totalS = view.endedAt ? (new Date(view.endedAt).getTime() - t0Wall) / 1000 : (performance.now() - t0) / 1000;
    const figures: RunFigures = {
      totalS,
      firstBeginS: begins.length ? (Math.min(...begins) - t0) / 1000 : NaN,
      lastBeginS: begins.length ? (Math.max(...begins) - t0) / 1000 : NaN,
      mostAtOnce,
      counts: view.counts,
      status: view.status,
    };
    say(
      `  run ${run}: ${view.status} in ${totalS.toFixed(1)} s from t0 (first agent began at ${figures.firstBeginS.toFixed(1)} s, last at ${figures.lastBeginS.toFixed(1)} s); ` +
        `at most ${mostAtOnce} upgrading at once (maxConcurrent ${MAX_CONCURRENT}); counts ${JSON.stringify(view.counts)}; ${loadAverages(load)}`,
    );
    return figures;
  } finally {
    await fleet?.stop();
    await worker?.stop();
    await stack?.stop();
    await removeDir();
  }
}

async function main(): Promise<void> {
  installInterruptHandler();
  const warning = openFilesWarning(MACHINES);
  if (warning) throw new Error(warning);
  say(`agent self-update: ${MACHINES} simulated agents ${FROM_VERSION} → ${SHIPPED}, maxConcurrent ${MAX_CONCURRENT}, each upgrade ${UPGRADE_SECONDS} s × 0.5–1.5, ${RUNS} run(s)`);
  say(`  ${new Date().toISOString()}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((v) => v.toFixed(2)).join(' ')}`);
  const ideal = Math.ceil(MACHINES / MAX_CONCURRENT) * UPGRADE_SECONDS;
  const runs: RunFigures[] = [];
  for (let run = 1; run <= RUNS; run++) runs.push(await oneRun(run));
  const totals = runs.map((r) => r.totalS);
  say(`total time over ${RUNS} run(s): median ${quantile(totals, 0.5).toFixed(1)} s, spread ${Math.min(...totals).toFixed(1)}–${Math.max(...totals).toFixed(1)} s`);
  say(`  ideal (ceil(${MACHINES} / ${MAX_CONCURRENT}) waves × ${UPGRADE_SECONDS} s mean upgrade): ${ideal.toFixed(1)} s; most at once over the runs: ${Math.max(...runs.map((r) => r.mostAtOnce))}`);
  if (runs.some((r) => r.status !== 'SUCCEEDED' || r.counts.succeeded !== MACHINES)) throw new Error('a run did not upgrade every agent: see its counts above');
}

await runBenchmark(main);
