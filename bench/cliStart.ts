/**
 * The operator CLI's start: `fleetpatch machines list` (a page of 50, the table) from the spawn of
 * the process to its first byte on stdout, and to its exit; beside it `fleetpatch --version`, what
 * Node.js and the command line's own modules cost before any request (issue 19: "under 300 ms to
 * first output"). Three runs of `--invocations` each, one after the other; per run the median and
 * the spread (min–max), and the median of the three runs' medians.
 *
 * The server: a stack of its own (PostgreSQL, Temporal, `fleetpatch server`) with 60 machines
 * enrolled through the agent endpoint and checked in, so that the page is full.
 *
 * Run:  npx tsx bench/cliStart.ts [--invocations 10]
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { AgentClient } from '../src/agent/client.js';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import type { MachineFacts } from '../src/agent/protocol.js';
import { createApiToken } from '../src/db/tokens.js';
import { installInterruptHandler, loadAverages, quantile, runBenchmark, startStack } from './freshness.js';

const FLEETPATCH_BIN = fileURLToPath(new URL('../bin/fleetpatch.js', import.meta.url));

/** A Debian machine as its agent describes it: the page lists what the agents said. */
const facts = (hostname: string): MachineFacts => ({
  hostname,
  osType: 'LINUX',
  osName: 'Debian GNU/Linux 12 (bookworm)',
  osVersion: '12',
  kernel: '6.1.0-28-amd64',
  agentVersion: '0.1.0',
  bootId: crypto.randomUUID(),
  packageManager: 'apt',
  environment: 'ON_PREMISES',
  warnings: [],
});

const say = (line: string) => console.log(line);

/** One invocation: ms to the first stdout byte and to the exit. */
function invoke(args: string[], env: NodeJS.ProcessEnv): Promise<{ firstOutput: number; exit: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let firstOutput = Number.NaN;
    let stdout = '';
    let stderr = '';
    const child = spawn(process.execPath, [FLEETPATCH_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => {
      if (Number.isNaN(firstOutput)) firstOutput = performance.now() - started;
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve({ firstOutput, exit: performance.now() - started, stdout }) : reject(new Error(`fleetpatch ${args.join(' ')} exited ${code}: ${stderr}`))));
  });
}

const ms = (v: number) => `${Math.round(v)} ms`;
const summary = (samples: number[]) => `median ${ms(quantile(samples, 0.5))} (${ms(Math.min(...samples))}–${ms(Math.max(...samples))})`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { invocations: { type: 'string', default: '10' } } });
  const invocations = Number(values.invocations);
  installInterruptHandler();
  const load = os.loadavg();
  const stack = await startStack({ label: 'cli-start' });
  try {
    const token = (await createApiToken(stack.database.db, { name: 'bench viewer', role: 'VIEWER' })).secret;
    const { secret: enrollKey } = await createEnrollmentKey(stack.database.db, { description: 'bench', expiresAt: null, maxUses: null, defaultTags: ['bench'] });
    for (let i = 0; i < 60; i++) {
      const machine = facts(`bench-${String(i).padStart(3, '0')}`);
      const enrolled = await new AgentClient(stack.baseUrl).enroll(enrollKey, machine);
      await new AgentClient(stack.baseUrl, enrolled.credential).checkIn(machine);
    }
    const { FLEETPATCH_SERVER: _s, FLEETPATCH_TOKEN: _t, ...inherited } = process.env;
    const env = { ...inherited, FLEETPATCH_SERVER: stack.baseUrl, FLEETPATCH_TOKEN: token, NO_COLOR: '1' };
    // Warm the file system cache and the server's first request once.
    const warm = await invoke(['machines', 'list'], env);
    const rows = warm.stdout.trimEnd().split('\n').length - 1;
    if (rows !== 50) throw new Error(`expected a page of 50 machines, got ${rows}`);
    say(`fleetpatch machines list: a page of ${rows} machines (table) from ${stack.graphqlUrl}; ${invocations} invocations per run`);
    const medians: Record<string, number[]> = { version: [], first: [], exit: [] };
    for (let run = 1; run <= 3; run++) {
      const version: number[] = [];
      const first: number[] = [];
      const exit: number[] = [];
      for (let i = 0; i < invocations; i++) {
        version.push((await invoke(['--version'], env)).exit);
        const listed = await invoke(['machines', 'list'], env);
        first.push(listed.firstOutput);
        exit.push(listed.exit);
      }
      medians.version!.push(quantile(version, 0.5));
      medians.first!.push(quantile(first, 0.5));
      medians.exit!.push(quantile(exit, 0.5));
      say(`run ${run}: --version exit ${summary(version)}; machines list first output ${summary(first)}, exit ${summary(exit)}`);
    }
    say(`median of the runs' medians: --version ${ms(quantile(medians.version!, 0.5))}; machines list first output ${ms(quantile(medians.first!, 0.5))} (runs ${medians.first!.map(ms).join(', ')}), exit ${ms(quantile(medians.exit!, 0.5))}`);
    say(loadAverages(load));
  } finally {
    await stack.stop();
  }
}

await runBenchmark(main);
