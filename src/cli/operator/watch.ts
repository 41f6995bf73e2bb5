import { createRequire } from 'node:module';
import type * as CliProgress from 'cli-progress';
import type { MultiBar, SingleBar } from 'cli-progress';
import type { ApiClient } from './client.js';
import { EXIT_CODES } from './errors.js';
import { type CliMachineRunFragment, type CliRunHeadFragment, type DeploymentRunStatus } from './graphql.generated.js';
import { followRun, readRun, type LogLine, type ProgressEvent, type RunListener, type RunView } from './runEvents.js';

/** The exit code of a watched run: 0 only for SUCCEEDED (docs/cli.md lists them). */
export function exitCodeOf(status: DeploymentRunStatus): number {
  switch (status) {
    case 'SUCCEEDED':
      return EXIT_CODES.OK;
    case 'PARTIALLY_FAILED':
      return EXIT_CODES.RUN_PARTIALLY_FAILED;
    case 'FAILED':
      return EXIT_CODES.RUN_FAILED;
    case 'CANCELED':
      return EXIT_CODES.RUN_CANCELED;
    default:
      return EXIT_CODES.ERROR;
  }
}

type Counts = CliRunHeadFragment['counts'];
/** Updates a run or machine has to do (not selected ones are not work), and those that ended. */
const toDo = (c: Counts) => c.total - c.notSelected;
const done = (c: Counts) => c.succeeded + c.failed + c.notAttempted;
const clock = () => new Date().toISOString().slice(11, 19);
const FINISHED_UPDATE = new Set(['SUCCEEDED', 'FAILED', 'NOT_ATTEMPTED']);

function countsText(c: Counts): string {
  const parts = [`${c.succeeded} succeeded`];
  if (c.failed > 0) parts.push(`${c.failed} failed`);
  if (c.notAttempted > 0) parts.push(`${c.notAttempted} not attempted`);
  if (c.inProgress > 0) parts.push(`${c.inProgress} installing`);
  if (c.pending > 0) parts.push(`${c.pending} pending`);
  return parts.join(', ');
}

function lineText(line: LogLine, names: Map<string, string>): string {
  const who = line.machineRunId ? (names.get(line.machineRunId) ?? 'machine') : 'server';
  return `${line.at.slice(11, 19)} ${who} [${line.stream}] ${line.line}`;
}

/**
 * Progress as lines, for a pipe or a CI log: the run's and each machine's status when it changes,
 * and each update as it ends.
 */
class PlainProgress implements RunListener {
  private runStatus = '';
  private readonly machines = new Map<string, string>();
  private readonly names = new Map<string, string>();
  private readonly seenUpdates = new Set<string>();

  constructor(private readonly out: NodeJS.WritableStream) {}

  state(view: RunView): void {
    if (view.head.status !== this.runStatus) {
      this.runStatus = view.head.status;
      this.out.write(`${clock()} run ${view.head.id} of ${view.deployment.name}: ${view.head.status} (${view.machineRuns.size} machine${view.machineRuns.size === 1 ? '' : 's'}, ${done(view.head.counts)}/${toDo(view.head.counts)} updates done)\n`);
    }
    for (const m of view.machineRuns.values()) {
      this.names.set(m.id, m.machineName);
      const key = `${m.status}`;
      if (this.machines.get(m.id) === key) continue;
      this.machines.set(m.id, key);
      const reboot = m.rebootOutcome ? `; reboot ${m.rebootOutcome}` : '';
      this.out.write(`${clock()} ${m.machineName}: ${m.status} (${done(m.counts)}/${toDo(m.counts)} updates: ${countsText(m.counts)}${reboot})${m.error ? ` ${m.error}` : ''}\n`);
    }
  }

  updates(machineRun: CliMachineRunFragment | null, updates: ProgressEvent['updates']): void {
    for (const u of updates) {
      if (!FINISHED_UPDATE.has(u.status)) continue;
      const key = `${machineRun?.id}/${u.name}/${u.arch}/${u.status}`;
      if (this.seenUpdates.has(key)) continue;
      this.seenUpdates.add(key);
      const why = u.status === 'FAILED' ? ` (exit code ${u.exitCode ?? '?'}: ${(u.errorText ?? '').split('\n')[0]})` : u.reason ? ` (${u.reason})` : '';
      this.out.write(`${clock()} ${machineRun?.machineName ?? 'machine'}: ${u.name} ${u.status}${why}\n`);
    }
  }

  lines(lines: LogLine[]): void {
    for (const line of lines) this.out.write(`${lineText(line, this.names)}\n`);
  }

  stop(): void {}
}

// cli-progress is CommonJS and only `--watch` in a terminal needs it.
const require = createRequire(import.meta.url);

/** Bars in a terminal: the run's, then one per machine, redrawn as events arrive; log lines above them. */
class BarProgress implements RunListener {
  private readonly multibar: MultiBar;
  private runBar: SingleBar | undefined;
  private readonly bars = new Map<string, SingleBar>();
  private readonly names = new Map<string, string>();

  constructor(out: NodeJS.WriteStream) {
    const { MultiBar: Bars, Presets } = require('cli-progress') as typeof CliProgress;
    this.multibar = new Bars(
      {
        stream: out,
        format: '{name} {bar} {done}/{todo} {status}{detail}',
        barsize: 30,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        autopadding: true,
        forceRedraw: true,
      },
      Presets.shades_classic,
    );
  }

  private draw(bar: SingleBar, counts: Counts, status: string, detail: string) {
    const todo = toDo(counts);
    bar.setTotal(Math.max(1, todo));
    bar.update(todo === 0 ? (status === 'SUCCEEDED' ? 1 : 0) : done(counts), { done: done(counts), todo, status, detail });
  }

  state(view: RunView): void {
    const width = Math.min(30, Math.max(8, ...[...view.machineRuns.values()].map((m) => m.machineName.length)));
    const pad = (name: string) => (name.length > width ? `${name.slice(0, width - 1)}…` : name.padEnd(width));
    this.runBar ??= this.multibar.create(1, 0, { name: pad('run'), done: 0, todo: 0, status: '', detail: '' });
    this.draw(this.runBar, view.head.counts, view.head.status, view.head.counts.failed > 0 ? ` (${view.head.counts.failed} failed)` : '');
    for (const m of [...view.machineRuns.values()].sort((a, b) => a.machineName.localeCompare(b.machineName))) {
      this.names.set(m.id, m.machineName);
      let bar = this.bars.get(m.id);
      if (!bar) {
        bar = this.multibar.create(1, 0, { name: pad(m.machineName), done: 0, todo: 0, status: '', detail: '' });
        this.bars.set(m.id, bar);
      }
      const detail = [m.counts.failed > 0 ? `${m.counts.failed} failed` : '', m.rebootOutcome ? `reboot ${m.rebootOutcome}` : ''].filter(Boolean).join(', ');
      this.draw(bar, m.counts, m.status, detail ? ` (${detail})` : '');
    }
  }

  updates(): void {}

  lines(lines: LogLine[]): void {
    for (const line of lines) this.multibar.log(`${lineText(line, this.names)}\n`);
  }

  stop(): void {
    this.multibar.stop();
  }
}

/** What is left after the run: each machine's outcome and every failed update with its error. */
async function printSummary(client: ApiClient, runId: string, out: NodeJS.WritableStream): Promise<DeploymentRunStatus> {
  const run = await readRun(client, runId);
  if (!run) return 'FAILED';
  out.write(`Run ${run.id} of ${run.deployment.name}: ${run.status} (${countsText(run.counts)}${run.counts.notSelected > 0 ? `, ${run.counts.notSelected} not selected` : ''})\n`);
  if (run.error) out.write(`  ${run.error}\n`);
  for (const m of run.machineRuns) {
    out.write(`  ${m.machineName}: ${m.status}${m.rebootOutcome ? `, reboot ${m.rebootOutcome}` : ''}${m.error ? ` (${m.error})` : ''}\n`);
    for (const u of m.updates.filter((x) => x.status === 'FAILED')) {
      out.write(`    ${u.name} FAILED, exit code ${u.exitCode ?? '?'}: ${(u.errorText ?? 'no error text').split('\n').slice(0, 3).join(' / ')}\n`);
    }
  }
  return run.status;
}

/**
 * Follows a run to its end and returns the exit code its status maps to. Bars when stdout is a
 * terminal, plain lines otherwise (`--plain` asks for lines in a terminal too).
 */
export async function watchRun(client: ApiClient, runId: string, options: { logs?: boolean; plain?: boolean }): Promise<number> {
  const out = process.stdout;
  const listener = out.isTTY && !options.plain ? new BarProgress(out) : new PlainProgress(out);
  let view: RunView;
  try {
    view = await followRun(client, runId, listener, { withLogs: Boolean(options.logs) });
  } finally {
    listener.stop();
  }
  const status = await printSummary(client, view.head.id, out);
  return exitCodeOf(status);
}
