/**
 * Assessment cost: the agent's backends against the package managers' own commands.
 *
 * For each of apt, dnf and zypper it builds one fixture machine (test/fixtures: real packages, real
 * repositories on file://, a real package database in a root), then times, alternating run by run:
 *
 * - `assess`: the backend's assess(ctx), the whole of what an agent does for one assessment;
 * - the package manager's own commands on the same root, with the same root options the backend
 *   passes, in two forms: the one that does what assess does (refresh the metadata, then list the
 *   updates) and the bare listing on the cached metadata.
 *
 * One untimed warm-up round first (dnf's first run downloads the metadata). Prints p50/p95/max per
 * command and the ratio assess ÷ tool on the medians (quantiles by nearest rank: with 30 runs p95 is
 * the second slowest). A backend stops early when its timed runs pass the time budget (at least 3
 * runs each), so the whole benchmark stays under about two minutes on a 2-core machine.
 *
 * Run:  npx tsx bench/assessment.ts [--runs 30] [--budget-seconds 40] [--only apt,dnf,zypper]
 * Needs apt-get/dpkg, dnf/rpm/rpmbuild/createrepo_c/faketime and zypper (what .ci/run installs).
 * No network: every repository is a file:// folder under os.tmpdir().
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { aptConfigForRoot } from '../src/agent/backends/apt/parse.js';
import { aptBackend } from '../src/agent/backends/apt/run.js';
import { dnfBackend } from '../src/agent/backends/dnf/run.js';
import type { BackendContext, PackageBackend } from '../src/agent/backends/types.js';
import { zypperBackend } from '../src/agent/backends/zypper/run.js';
import { exec } from '../src/agent/exec.js';
import { buildAptMachine } from '../testkit/apt.js';
import { buildDnfMachine } from '../testkit/dnf.js';
import { buildZypperMachine } from '../testkit/zypper.js';

type Name = 'apt' | 'dnf' | 'zypper';

interface Command {
  program: string;
  args: string[];
  /** Exit codes that mean "worked" (dnf check-update: 100 = updates available). */
  ok: number[];
}

interface ToolVariant {
  label: string;
  /** Run one after the other; the variant's time is their sum. */
  commands: Command[];
  env: NodeJS.ProcessEnv;
  /** The variant that does what assess does (refresh + list): the ratio that compares like with like. */
  likeAssess: boolean;
}

interface Subject {
  name: Name;
  backend: PackageBackend;
  ctx: BackendContext;
  tools: ToolVariant[];
}

const { values: options } = parseArgs({
  options: {
    runs: { type: 'string', default: '30' },
    'budget-seconds': { type: 'string', default: '40' },
    only: { type: 'string', default: 'apt,dnf,zypper' },
  },
});
const RUNS = Math.max(1, Number(options.runs));
const BUDGET_MS = Number(options['budget-seconds']) * 1000;
const MIN_RUNS = Math.min(3, RUNS);
const ONLY = new Set(options.only.split(',').map((s) => s.trim()));

function quantile(samples: readonly number[], q: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const ms = (value: number) => `${value.toFixed(0)} ms`;

/** The machine's load averages before and after: how busy it was besides this benchmark. */
function loadAverages(atStart: readonly number[]): string {
  const format = (l: readonly number[]) => l.map((v) => v.toFixed(2)).join(' ');
  return `load average (1/5/15 min) at start ${format(atStart)}, at end ${format(os.loadavg())} (${os.cpus().length} CPUs)`;
}

async function runCommand(command: Command, env: NodeJS.ProcessEnv): Promise<void> {
  const result = await exec(command.program, command.args, { env, timeoutMs: 120_000 });
  if (result.exitCode === null || !command.ok.includes(result.exitCode)) {
    throw new Error(`${command.program} ${command.args.join(' ')} exited with ${result.exitCode ?? result.signal}:\n${result.stdout}\n${result.stderr}`);
  }
}

async function timed(action: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await action();
  return performance.now() - start;
}

async function aptSubject(dir: string): Promise<Subject> {
  const machine = await buildAptMachine(dir);
  const workDir = path.join(dir, 'agent');
  await fs.mkdir(workDir, { recursive: true });
  // The same APT_CONFIG the backend writes for this root (it writes its own copy under workDir).
  const configFile = path.join(dir, 'tool-apt.conf');
  await fs.writeFile(configFile, aptConfigForRoot(machine.root));
  const env = { ...machine.env, APT_CONFIG: configFile, LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive' };
  const update: Command = { program: 'apt-get', args: ['-q', 'update'], ok: [0] };
  const simulate: Command = { program: 'apt-get', args: ['-s', '-q', 'dist-upgrade'], ok: [0] };
  return {
    name: 'apt',
    backend: aptBackend,
    ctx: { root: machine.root, env: machine.env, workDir },
    tools: [
      { label: 'apt-get update + apt-get -s dist-upgrade', commands: [update, simulate], env, likeAssess: true },
      { label: 'apt-get -s dist-upgrade', commands: [simulate], env, likeAssess: false },
    ],
  };
}

async function dnfSubject(dir: string): Promise<Subject> {
  const machine = await buildDnfMachine(dir);
  const workDir = path.join(dir, 'agent');
  await fs.mkdir(workDir, { recursive: true });
  const root = machine.root;
  // What the backend's machineFor() puts in front of every dnf command for a root that is not '/'.
  const rootArgs = [`--installroot=${root}`, `--config=${path.join(root, 'etc/dnf/dnf.conf')}`, `--setopt=reposdir=${path.join(root, 'etc/yum.repos.d')}`, '--releasever=9'];
  const env = { ...machine.env, LC_ALL: 'C.UTF-8' };
  const dnf = (...args: string[]): Command => ({ program: 'dnf', args: [...rootArgs, ...args], ok: [0, 100] });
  return {
    name: 'dnf',
    backend: dnfBackend,
    ctx: { root, env: machine.env, workDir },
    tools: [
      {
        // The backend reads updates and their advisories (severity, CVEs): check-update alone has no advisories.
        label: 'dnf --refresh check-update + dnf -C updateinfo list',
        commands: [dnf('-q', '--refresh', 'check-update'), dnf('-q', '-C', 'updateinfo', 'list', '--updates')],
        env,
        likeAssess: true,
      },
      { label: 'dnf --refresh check-update', commands: [dnf('-q', '--refresh', 'check-update')], env, likeAssess: false },
      { label: 'dnf -C check-update (cached)', commands: [dnf('-q', '-C', 'check-update')], env, likeAssess: false },
    ],
  };
}

async function zypperSubject(dir: string): Promise<Subject> {
  const machine = await buildZypperMachine(dir);
  const workDir = path.join(dir, 'agent');
  await fs.mkdir(workDir, { recursive: true });
  const root = machine.root;
  const env = { ...machine.env, LC_ALL: 'C' };
  const zypper = (...args: string[]): Command => ({ program: 'zypper', args: ['--non-interactive', '--root', root, ...args], ok: [0, 100, 101] });
  return {
    name: 'zypper',
    backend: zypperBackend,
    ctx: { root, env: machine.env, workDir },
    tools: [
      {
        label: 'zypper refresh + -x lu + -x lp',
        commands: [zypper('-x', 'refresh'), zypper('--no-refresh', '-x', 'lu'), zypper('--no-refresh', '-x', 'lp', '--with-optional')],
        env,
        likeAssess: true,
      },
      { label: 'zypper -x lu + -x lp', commands: [zypper('-x', 'lu'), zypper('-x', 'lp')], env, likeAssess: false },
    ],
  };
}

const BUILDERS: Record<Name, (dir: string) => Promise<Subject>> = { apt: aptSubject, dnf: dnfSubject, zypper: zypperSubject };

interface Row {
  backend: Name;
  label: string;
  samples: number[];
  likeAssess: boolean;
  isAssess: boolean;
}

async function benchmark(subject: Subject): Promise<Row[]> {
  const assessOnce = async () => {
    const result = await subject.backend.assess(subject.ctx);
    if (result.updates.length === 0 || result.repositoryProblems.length > 0) {
      throw new Error(`${subject.name}: assess found ${result.updates.length} updates and ${result.repositoryProblems.length} repository problems`);
    }
    return result;
  };
  const toolOnce = async (tool: ToolVariant) => {
    for (const command of tool.commands) await runCommand(command, tool.env);
  };

  // Warm-up (untimed): the first assessment fetches the metadata into the root's cache.
  const first = await assessOnce();
  for (const tool of subject.tools) await toolOnce(tool);
  console.log(`  ${subject.name}: warm-up done, assess lists ${first.updates.length} updates`);

  const rows: Row[] = [
    { backend: subject.name, label: `${subject.name} backend assess()`, samples: [], likeAssess: false, isAssess: true },
    ...subject.tools.map((t) => ({ backend: subject.name, label: t.label, samples: [], likeAssess: t.likeAssess, isAssess: false })),
  ];
  const started = performance.now();
  for (let run = 0; run < RUNS; run++) {
    if (run >= MIN_RUNS && performance.now() - started > BUDGET_MS) {
      console.log(`  ${subject.name}: time budget of ${BUDGET_MS / 1000} s reached after ${run} runs`);
      break;
    }
    // Alternate which goes first, so a slow moment of the machine does not land on one side only.
    const order = run % 2 === 0 ? rows : [...rows].reverse();
    for (const row of order) {
      const tool = subject.tools.find((t) => t.label === row.label);
      row.samples.push(await timed(() => (row.isAssess ? assessOnce() : toolOnce(tool!))));
    }
  }
  return rows;
}

function printTable(rows: readonly Row[]): void {
  const header = ['backend', 'what', 'runs', 'p50', 'p95', 'max', 'assess ÷ this (p50)'];
  const lines = rows.map((row) => {
    const assess = rows.find((r) => r.backend === row.backend && r.isAssess)!;
    const p50 = quantile(row.samples, 0.5);
    const ratio = row.isAssess ? '' : `${(quantile(assess.samples, 0.5) / p50).toFixed(2)}×${row.likeAssess ? ' (like for like)' : ''}`;
    return [row.backend, row.label, String(row.samples.length), ms(p50), ms(quantile(row.samples, 0.95)), ms(Math.max(...row.samples)), ratio];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(format(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const line of lines) console.log(format(line));
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'fleetpatch-bench-assess-'));
  const overall = performance.now();
  const loadAtStart = os.loadavg();
  console.log(`assessment benchmark: ${RUNS} runs per command (time budget ${BUDGET_MS / 1000} s per backend), work dir ${work}`);
  try {
    const names = (['apt', 'dnf', 'zypper'] as const).filter((n) => ONLY.has(n));
    const built = performance.now();
    // The three machines are independent: build them at once.
    const subjects = await Promise.all(names.map((name) => BUILDERS[name](path.join(work, name))));
    console.log(`  fixture machines built in ${((performance.now() - built) / 1000).toFixed(1)} s`);
    const rows: Row[] = [];
    for (const subject of subjects) rows.push(...(await benchmark(subject)));
    console.log('');
    printTable(rows);
    console.log(`\ntotal ${((performance.now() - overall) / 1000).toFixed(1)} s; ${loadAverages(loadAtStart)}`);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

// Explicit: an unhandled failure must end the process with a non-zero status.
process.exit(
  await main().then(
    () => 0,
    (error: unknown) => {
      console.error(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      return 1;
    },
  ),
);
