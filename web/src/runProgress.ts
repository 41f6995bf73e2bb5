/**
 * What the run page keeps and how the run's progress events change it, apart from React (the
 * integration tests drive it with the console's own client stack against a real server).
 */

const RUN_FIELDS = `id status trigger error startedAt endedAt windowEndsAt durationSeconds
  counts { total succeeded failed notAttempted notSelected pending inProgress }`;
const MACHINE_RUN_FIELDS = `id machineId machineName status startedAt endedAt rebootOutcome error
  counts { total succeeded failed notAttempted notSelected pending inProgress }
  updates { name arch classification severity status predictedStatus installedVersion targetVersion exitCode errorText reason startedAt endedAt }`;
const LINE_FIELDS = 'id at stream line machineRunId';

/** Sized so that the page's first query stays within the API's cost limit: more are loaded on demand. */
const MACHINES_PAGE = `first: 25`;
const LINES_PAGE = `first: 2000`;
const MACHINE_PAGE_FIELDS = `totalCount pageInfo { hasNextPage endCursor } edges { node { ${MACHINE_RUN_FIELDS} } }`;
const LINE_PAGE_FIELDS = `totalCount pageInfo { hasNextPage endCursor } edges { node { ${LINE_FIELDS} } }`;

export const RUN = `query Run($id: ID!) { deploymentRun(id: $id) { ${RUN_FIELDS} progressSeq deployment { id name windowMinutes } machineRuns(${MACHINES_PAGE}) { ${MACHINE_PAGE_FIELDS} } logs(${LINES_PAGE}) { ${LINE_PAGE_FIELDS} } } }`;
export const MORE_MACHINES = `query RunMachines($id: ID!, $after: String) { deploymentRun(id: $id) { id machineRuns(${MACHINES_PAGE}, after: $after) { ${MACHINE_PAGE_FIELDS} } } }`;
export const MORE_LINES = `query RunLines($id: ID!, $after: String) { deploymentRun(id: $id) { id logs(${LINES_PAGE}, after: $after) { ${LINE_PAGE_FIELDS} } } }`;
export const PROGRESS = `subscription Progress($id: ID!, $after: Int) { deploymentRunProgress(runId: $id, after: $after) { seq kind run { ${RUN_FIELDS} } machineRun { ${MACHINE_RUN_FIELDS} } updates { name status } lines { ${LINE_FIELDS} } } }`;

export interface Counts { total: number; succeeded: number; failed: number; notAttempted: number; notSelected: number; pending: number; inProgress: number }
export interface Update { name: string; arch: string | null; classification: string; severity: string | null; status: string; predictedStatus: string; installedVersion: string | null; targetVersion: string; exitCode: number | null; errorText: string | null; reason: string | null; startedAt: string | null; endedAt: string | null }
export interface MachineRun { id: string; machineId: string; machineName: string; status: string; startedAt: string | null; endedAt: string | null; rebootOutcome: string | null; error: string | null; counts: Counts; updates: Update[] }
export interface Line { id: number; at: string; stream: string; line: string; machineRunId: string | null }
export interface RunHead { id: string; status: string; trigger: string; error: string | null; startedAt: string | null; endedAt: string | null; windowEndsAt: string | null; durationSeconds: number | null; counts: Counts }
export interface Paged<T> { totalCount: number; pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: Array<{ node: T }> }
export interface RunAnswer extends RunHead { progressSeq: number; deployment: { id: string; name: string; windowMinutes: number }; machineRuns: Paged<MachineRun>; logs: Paged<Line> }
/** What the page shows: the first pages of the run's lists, grown by the pages loaded since and by the events applied. */
export interface Run extends RunHead {
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
export interface Progress { seq: number; kind: string; run: RunHead; machineRun: MachineRun | null; lines: Line[] }

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
