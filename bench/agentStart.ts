/**
 * Start time of the agent as each runtime gives it: the .mjs bundle on this Node.js and any
 * self-contained executables named with --executable (e.g. dist/executables/fleetpatch-agent-linux-x64
 * and a Node.js single executable application from `node scripts/build-agent-executables.mjs
 * --runtime node --out DIR`).
 *
 * For each: wall time of `--version` (start, print, exit), and of one `assess --root ROOT --json`
 * on apt, dnf and zypper fixture machines (test/fixtures), RUNS times each, in turn between the
 * candidates so that load changes hit all alike. Prints median, min and max, and checks that every
 * candidate's assessment lists the same updates as the bundle's.
 *
 * Run:  npx tsx bench/agentStart.ts --executable FILE [--executable FILE]... [--runs 11]
 * Needs dist/agent/fleetpatch-agent.mjs (npm run build), apt-get/dpkg, dnf, zypper.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildAptMachine } from '../testkit/apt.js';
import { buildDnfMachine } from '../testkit/dnf.js';
import { buildZypperMachine } from '../testkit/zypper.js';

const AGENT_BUNDLE = fileURLToPath(new URL('../dist/agent/fleetpatch-agent.mjs', import.meta.url));
const { values } = parseArgs({ options: { executable: { type: 'string', multiple: true, default: [] }, runs: { type: 'string', default: '11' } } });
const RUNS = Number(values.runs);

const candidates: Array<{ name: string; command: string[] }> = [
  { name: `node ${process.version} + bundle`, command: [process.execPath, AGENT_BUNDLE] },
  ...values.executable.map((file) => ({ name: path.basename(path.dirname(path.resolve(file))) + '/' + path.basename(file), command: [path.resolve(file)] })),
];

function timed(command: string[], args: string[], env?: NodeJS.ProcessEnv): { ms: number; stdout: string } {
  const started = performance.now();
  const r = spawnSync(command[0]!, [...command.slice(1), ...args], { env, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`${command.join(' ')} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

const summary = (ms: number[]) => {
  const sorted = [...ms].sort((a, b) => a - b);
  return `${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)} ms (${sorted[0]!.toFixed(0)}–${sorted.at(-1)!.toFixed(0)})`;
};

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-bench-start-'));
try {
  const load = os.loadavg();
  const machines = {
    apt: await buildAptMachine(path.join(work, 'apt')),
    dnf: await buildDnfMachine(path.join(work, 'dnf')),
    zypper: await buildZypperMachine(path.join(work, 'zypper')),
  };
  const tasks: Array<{ label: string; args: string[]; env?: NodeJS.ProcessEnv }> = [
    { label: '--version', args: ['--version'] },
    ...Object.entries(machines).map(([name, m]) => ({ label: `assess ${name}`, args: ['assess', '--root', m.root, '--json'], env: m.env })),
  ];
  const times = new Map<string, number[]>();
  for (const task of tasks) {
    let reference: string | undefined;
    for (let run = 0; run < RUNS; run++) {
      for (const c of candidates) {
        const { ms, stdout } = timed(c.command, task.args, task.env);
        const key = `${c.name}\t${task.label}`;
        times.set(key, [...(times.get(key) ?? []), ms]);
        if (task.label.startsWith('assess')) {
          const updates = JSON.stringify((JSON.parse(stdout) as { updates: unknown }).updates);
          reference ??= updates;
          if (updates !== reference) throw new Error(`${c.name}: ${task.label} listed other updates than the bundle`);
        }
      }
    }
  }
  console.log(`${RUNS} runs each, median (min–max); load average at start ${load.map((l) => l.toFixed(2)).join(' ')}, at end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (${os.cpus().length} CPUs)`);
  console.log(`| candidate | ${tasks.map((t) => t.label).join(' | ')} |`);
  console.log(`|---|${tasks.map(() => '---').join('|')}|`);
  for (const c of candidates) console.log(`| ${c.name} | ${tasks.map((t) => summary(times.get(`${c.name}\t${t.label}`)!)).join(' | ')} |`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
