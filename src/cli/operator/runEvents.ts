import type { ApiClient } from './client.js';
import { OperatorError } from './errors.js';
import {
  CliMachineRunUpdatesDocument,
  CliRunDocument,
  CliRunLogsDocument,
  CliRunProgressDocument,
  CliRunProgressEndDocument,
  CliRunProgressSnapshotDocument,
  CliRunsStartedDocument,
  type CliMachineRunFragment,
  type CliRunHeadFragment,
  type CliRunLogsQuery,
  type CliRunProgressSnapshotQuery,
  type CliRunProgressSubscription,
  type CliRunQuery,
  type CliRunsStartedSubscription,
} from './graphql.generated.js';

type RunPage = NonNullable<CliRunQuery['deploymentRun']>;
export type RunWithUpdates = Omit<RunPage, 'machineRuns'> & { machineRuns: Array<RunPage['machineRuns']['edges'][number]['node']> };

/** A run with every machine run and its updates, read page by page (null: no such run); the head is the last page's. */
export async function readRun(client: ApiClient, id: string): Promise<RunWithUpdates | null> {
  const machineRuns: RunWithUpdates['machineRuns'] = [];
  for (let after: string | null = null; ; ) {
    const answer: CliRunQuery = await client.request(CliRunDocument, { id, after });
    const run: RunPage | null = answer.deploymentRun;
    if (!run) return null;
    const { machineRuns: page, ...head } = run;
    for (const { node } of page.edges) {
      // CliRun reads the first 50 updates of each machine with it: the rest 500 at a time.
      const updates = [...node.updates];
      while (updates.length < node.counts.total) {
        const more = (await client.request(CliMachineRunUpdatesDocument, { id, machineId: node.machineId, offset: updates.length })).deploymentRun?.machineRun?.updates ?? [];
        if (more.length === 0) break;
        updates.push(...more);
      }
      machineRuns.push({ ...node, updates });
    }
    if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) return { ...head, machineRuns };
    after = page.pageInfo.endCursor;
  }
}

/**
 * A deployment run's progress as the CLI follows it: the state of the run and of each machine, read
 * whole once (page by page, with the run's progressSeq from its first page), then from the
 * `deploymentRunProgress(runId, after)` subscription, which replays what came after that seq before
 * it goes live. Every (re)connection subscribes again after the last seq received: a dropped socket
 * resumes where it stopped, nothing is missed and nothing is shown twice.
 */

export type ProgressEvent = CliRunProgressSubscription['deploymentRunProgress'];
export type LogLine = ProgressEvent['lines'][number];

export interface RunView {
  head: CliRunHeadFragment;
  deployment: { id: string; name: string };
  machineRuns: Map<string, CliMachineRunFragment>;
}

export const FINAL_STATUSES: ReadonlySet<string> = new Set(['SUCCEEDED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED']);

/** How long the socket may stay down (the API restarting) before the watch gives up. */
const RECONNECT_DEADLINE_MS = 5 * 60_000;
/** Close codes after which reconnecting cannot help: the token may not subscribe (4403), too many sockets (4029). */
const FATAL_CLOSE_CODES = new Set([4400, 4401, 4403, 4029, 4500]);

export interface RunListener {
  /** The state changed (a snapshot or an event). */
  state(view: RunView): void;
  /** Update results changed on a machine run (from an event). */
  updates(machineRun: CliMachineRunFragment | null, updates: ProgressEvent['updates']): void;
  /** New job stream or server log lines, in id order, each once. */
  lines(lines: LogLine[]): void;
}

const wsUrlOf = (graphqlUrl: string) => graphqlUrl.replace(/^http/, 'ws');

/**
 * Follows a run until it ends; resolves with its last state. `withLogs`: also read the log lines
 * (the job streams and the server's), from the first one.
 */
export async function followRun(client: ApiClient, runId: string, listener: RunListener, options: { withLogs: boolean }): Promise<RunView> {
  const [{ createClient }, { default: WebSocket }] = await Promise.all([import('graphql-ws'), import('ws')]);
  let view: RunView | null = null;
  let lastLineId = 0;

  const apply = (next: RunView) => {
    view = next;
    listener.state(next);
  };
  const emitLines = (lines: LogLine[]) => {
    const fresh = lines.filter((l) => l.id > lastLineId).sort((a, b) => a.id - b.id);
    if (fresh.length === 0) return;
    lastLineId = fresh[fresh.length - 1]!.id;
    listener.lines(fresh);
  };

  // Where the last read of the logs stopped: the next read goes on from there.
  let logsCursor: string | null = null;

  // The seq of the last event applied (or of the snapshot): the subscription goes on after it.
  let lastSeq = 0;

  // Read before anything else, so that what any later read shows and every event after lastSeq
  // overlap rather than leave a gap: an event applied late carries whole states, the next ones follow.
  const snapshot = async () => {
    const machineRuns = new Map<string, CliMachineRunFragment>();
    let read: NonNullable<CliRunProgressSnapshotQuery['deploymentRun']> | null = null;
    for (let after: string | null = null; ; ) {
      const { deploymentRun }: CliRunProgressSnapshotQuery = await client.request(CliRunProgressSnapshotDocument, { id: runId, after });
      if (!deploymentRun) throw new OperatorError(`No deployment run with id ${runId}.`, { code: 'NOT_FOUND' });
      if (after === null) lastSeq = deploymentRun.progressSeq;
      read = deploymentRun;
      for (const { node } of deploymentRun.machineRuns.edges) machineRuns.set(node.id, node);
      if (!deploymentRun.machineRuns.pageInfo.hasNextPage || !deploymentRun.machineRuns.pageInfo.endCursor) break;
      after = deploymentRun.machineRuns.pageInfo.endCursor;
    }
    const { deployment, machineRuns: _page, progressSeq: _seq, ...head } = read!;
    apply({ head, deployment, machineRuns });
    if (options.withLogs) {
      for (;;) {
        const { deploymentRun: logs }: CliRunLogsQuery = await client.request(CliRunLogsDocument, { id: runId, after: logsCursor });
        if (!logs) break;
        emitLines(logs.logs.edges.map((e) => e.node));
        logsCursor = logs.logs.pageInfo.endCursor ?? logsCursor;
        if (!logs.logs.pageInfo.hasNextPage) break;
      }
    }
  };

  const onEvent = (event: ProgressEvent) => {
    // A replay that overlaps what was already applied (a resubscription racing its predecessor).
    if (!view || event.seq <= lastSeq) return;
    lastSeq = event.seq;
    const machineRuns = new Map(view.machineRuns);
    if (event.machineRun) machineRuns.set(event.machineRun.id, event.machineRun);
    apply({ ...view, head: event.run, machineRuns });
    if (event.updates.length > 0) listener.updates(event.machineRun, event.updates);
    if (options.withLogs && event.lines.length > 0) emitLines(event.lines);
  };

  await snapshot();
  if (FINAL_STATUSES.has(view!.head.status)) return view!;

  return new Promise<RunView>((resolve, reject) => {
    let finished = false;
    let unsubscribe: (() => void) | null = null;
    let downSince: number | null = null;
    const subscriptionVariables = () => ({ id: runId, after: lastSeq });

    const finish = (error?: unknown) => {
      if (finished) return;
      finished = true;
      unsubscribe?.();
      void socket.dispose();
      if (error) reject(error instanceof Error ? error : new OperatorError(String(error)));
      else resolve(view!);
    };
    // A replayed event carries the run's state as it is now: a final status can come first, with
    // the events that led to it still to come. So once the run shows it has ended, where its events
    // end is read (they end with it), and the watch ends when it has applied them all.
    let endSeq: Promise<number> | null = null;
    const check = () => {
      if (finished || !view || !FINAL_STATUSES.has(view.head.status)) return;
      endSeq ??= client.request(CliRunProgressEndDocument, { id: runId }).then(({ deploymentRun }) => {
        if (!deploymentRun) throw new OperatorError(`No deployment run with id ${runId}.`, { code: 'NOT_FOUND' });
        return deploymentRun.progressSeq;
      });
      endSeq.then(
        (last) => {
          if (lastSeq >= last) finish();
        },
        (error: unknown) => finish(error),
      );
    };

    const socket = createClient({
      url: wsUrlOf(client.graphqlUrl),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${client.credentials.token}` },
      lazy: false,
      keepAlive: 15_000,
      retryAttempts: Number.MAX_SAFE_INTEGER,
      retryWait: async (retries) => new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** retries))),
      shouldRetry: (closed) => {
        const code = (closed as { code?: number } | undefined)?.code;
        if (code !== undefined && FATAL_CLOSE_CODES.has(code)) return false;
        if (downSince !== null && Date.now() - downSince > RECONNECT_DEADLINE_MS) return false;
        return true;
      },
      on: {
        connected: () => {
          downSince = null;
          // A fresh subscription on every connection, after the last seq received: the server
          // replays what this client missed while its socket was down.
          unsubscribe?.();
          unsubscribe = socket.subscribe<CliRunProgressSubscription>(
            { query: CliRunProgressDocument.toString(), variables: subscriptionVariables() },
            {
              next: (result) => {
                if (result.errors?.length) finish(new OperatorError(result.errors.map((e) => e.message).join('; '), { code: String(result.errors[0]?.extensions?.code ?? '') || undefined }));
                else if (result.data) {
                  onEvent(result.data.deploymentRunProgress);
                  check();
                }
              },
              error: (error) => finish(closeError(error, client.graphqlUrl)),
              complete: () => undefined,
            },
          );
        },
        closed: (event) => {
          downSince ??= Date.now();
          const code = (event as { code?: number } | undefined)?.code;
          if (code !== undefined && FATAL_CLOSE_CODES.has(code)) finish(closeError(event, client.graphqlUrl));
        },
        error: (error) => {
          if (downSince !== null && Date.now() - downSince > RECONNECT_DEADLINE_MS) finish(closeError(error, client.graphqlUrl));
        },
      },
    });
  });
}

/** Why the subscription's socket ended, in words. */
function closeError(event: unknown, graphqlUrl: string): OperatorError {
  const closed = event as { code?: number; reason?: string; message?: string } | undefined;
  if (closed?.code === 4403) return new OperatorError(`The server ended the subscription: ${closed.reason || 'this token may not subscribe'}. Log in again with a valid token.`, { code: 'UNAUTHENTICATED' });
  if (closed?.code === 4029) return new OperatorError(`The server refused another subscription socket for this token: ${closed.reason || 'too many open'}.`, { code: 'RATE_LIMITED' });
  if (Array.isArray(event)) return new OperatorError((event as Array<{ message: string }>).map((e) => e.message).join('; '));
  const why = closed?.reason || closed?.message || (typeof closed?.code === 'number' ? `closed with code ${closed.code}` : String(event));
  return new OperatorError(`Lost the progress subscription at ${graphqlUrl.replace(/^http/, 'ws')} (${why}).`);
}

/**
 * Waits for the next run of a deployment to begin (the scheduled one, or one started by hand) and
 * returns its id, from the `deploymentRunsStarted` subscription: announced when the run is created,
 * before its first progress event. Every subscription (the first, and again after a dropped socket)
 * asks for the runs created since the wait began, by this machine's clock: a run started while the
 * socket was still opening is announced too. A server clock behind this one's by more than the time
 * between two runs would announce the earlier one.
 */
export async function nextRunOf(client: ApiClient, deploymentId: string, options: { timeoutMs?: number } = {}): Promise<string> {
  const [{ createClient }, { default: WebSocket }] = await Promise.all([import('graphql-ws'), import('ws')]);
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    const since = new Date().toISOString();
    let unsubscribe: (() => void) | null = null;
    const settle = (error: unknown, id?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      unsubscribe?.();
      void socket.dispose();
      if (id) resolve(id);
      else reject(error instanceof Error ? error : new OperatorError(String(error)));
    };
    const timer = setTimeout(
      () => settle(new OperatorError(`No run of the deployment began within ${Math.round((options.timeoutMs ?? 0) / 1000)} s.`)),
      options.timeoutMs ?? 2 ** 31 - 1,
    );
    const socket = createClient({
      url: wsUrlOf(client.graphqlUrl),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${client.credentials.token}` },
      lazy: false,
      keepAlive: 15_000,
      retryAttempts: Number.MAX_SAFE_INTEGER,
      retryWait: async (retries) => new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** retries))),
      shouldRetry: (closed) => !FATAL_CLOSE_CODES.has((closed as { code?: number } | undefined)?.code ?? 0),
      on: {
        connected: () => {
          unsubscribe?.();
          unsubscribe = socket.subscribe<CliRunsStartedSubscription>(
            { query: CliRunsStartedDocument.toString(), variables: { id: deploymentId, since } },
            {
              next: (result) => {
                if (result.errors?.length) settle(new OperatorError(result.errors.map((e) => e.message).join('; '), { code: String(result.errors[0]?.extensions?.code ?? '') || undefined }));
                else if (result.data) settle(null, result.data.deploymentRunsStarted.id);
              },
              error: (error) => settle(closeError(error, client.graphqlUrl)),
              complete: () => undefined,
            },
          );
        },
        closed: (event) => {
          if (FATAL_CLOSE_CODES.has((event as { code?: number } | undefined)?.code ?? 0)) settle(closeError(event, client.graphqlUrl));
        },
      },
    });
  });
}
