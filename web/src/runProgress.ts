/**
 * What the run page keeps and how the run's progress events change it, apart from React (the
 * integration tests drive it with the console's own client stack against a real server).
 */

import type { LogLineFragment, MachineRunCardFragment, ProgressSubscription, RunHeadFragment, RunQuery, RunRingsFragment } from './graphql.generated.js';

// The page's documents are in operations.graphql (typed by `npm run codegen`).
export { ProgressDocument as PROGRESS, RunDocument as RUN, RunLinesDocument as MORE_LINES, RunMachinesDocument as MORE_MACHINES } from './graphql.generated.js';

export type Counts = RunHeadFragment['counts'];
export type MachineRun = MachineRunCardFragment;
export type Line = LogLineFragment;
export type RunHead = RunHeadFragment;
/** A ringed run's rings and its frozen update set (empty and null for a run without rings). */
export type RunRings = RunRingsFragment;
export interface Paged<T> { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: Array<{ node: T }> }
export type RunAnswer = NonNullable<RunQuery['deploymentRun']>;
/** What the page shows: the first pages of the run's lists, grown by the pages loaded since and by the events applied. */
export interface Run extends RunHead, RunRings {
  deployment: RunAnswer['deployment'];
  machineRuns: MachineRun[];
  logs: Line[];
  /** The seq of the last progress event applied: the subscription resumes after it, the page never applies one twice. */
  seq: number;
  /** How many machine runs the run has; the cursors of the pages not loaded yet (null: none left). */
  machinesTotal: number;
  machinesAfter: string | null;
  linesAfter: string | null;
}
export type Progress = ProgressSubscription['deploymentRunProgress'];

export const FINISHED = new Set(['SUCCEEDED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED']);

const byName = (a: MachineRun, b: MachineRun) => a.machineName.localeCompare(b.machineName);

/** Machine runs merged by id (the newer wins), by name. */
export function mergeMachines(known: MachineRun[], more: MachineRun[]): MachineRun[] {
  const merged = new Map(known.map((m) => [m.id, m]));
  for (const m of more) merged.set(m.id, m);
  return [...merged.values()].sort(byName);
}

/** Lines merged by id, oldest first. */
export function mergeLines(known: Line[], more: Line[]): Line[] {
  const seen = new Set(known.map((l) => l.id));
  return [...known, ...more.filter((l) => !seen.has(l.id))].sort((a, b) => a.id - b.id);
}

export const nextCursor = <T,>(page: Paged<T>) => (page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null);

/** The query's answer as the page keeps it. */
export function runOf(answer: RunAnswer): Run {
  const machineRuns = answer.machineRuns.edges.map((e) => e.node);
  const logs = answer.logs.edges.map((e) => e.node);
  return { ...answer, seq: answer.progressSeq, machineRuns, logs, machinesTotal: answer.machineRuns.totalCount, machinesAfter: nextCursor(answer.machineRuns), linesAfter: nextCursor(answer.logs) };
}

/**
 * The subscription's variables: `after` is read each time graphql-ws (re)sends the subscription
 * (it serialises them again on every reconnect), so that after a dropped socket the server replays
 * exactly what the page has not applied yet.
 */
export function progressVariables(id: string, seq: { current: number | null }) {
  return {
    id,
    get after() {
      return seq.current;
    },
  };
}

/** One event of the subscription applied to what the page shows: each event once, in order (one already applied changes nothing). */
export function applyProgress(run: Run, event: Progress): Run {
  if (event.seq <= run.seq) return run;
  const next: Run = { ...run, ...event.run, seq: event.seq };
  if (event.machineRun) next.machineRuns = mergeMachines(run.machineRuns, [event.machineRun]);
  if (event.lines.length > 0) next.logs = mergeLines(run.logs, event.lines);
  return next;
}
