import type { ApiClient } from './client.js';
import { OperatorError } from './errors.js';
import {
  CliLastRunDocument,
  CliRunDocument,
  CliRunLogsDocument,
  CliRunProgressDocument,
  CliRunProgressSnapshotDocument,
  type CliMachineRunFragment,
  type CliRunHeadFragment,
  type CliRunLogsQuery,
  type CliRunProgressSnapshotQuery,
  type CliRunProgressSubscription,
  type CliRunQuery,
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
    machineRuns.push(...page.edges.map((e) => e.node));
    if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) return { ...head, machineRuns };
    after = page.pageInfo.endCursor;
  }
}

/**
 * A deployment run's progress as the CLI follows it: the state of the run and of each machine, from
 * the `deploymentRunProgress` subscription.
 *
 * It subscribes without the API's replay (`deploymentRunProgress(runId, after: seq)`): an event
 * published before the subscription reached the server, or while its socket was down, is not
 * delivered to it. So the state is also read whole (a snapshot, page by page) each time the socket
 * (re)connects and every SNAPSHOT_POLL_MS while following, and missed log lines are read from the
 * last page's cursor; every event carries whole states, so applying one late or twice is harmless.
 * With the replay, `subscriptionVariables` would pass the last seq on every (re)subscription and
 * the snapshots and polling could go.
 */

export type ProgressEvent = CliRunProgressSubscription['deploymentRunProgress'];
export type LogLine = ProgressEvent['lines'][number];

export interface RunView {
  head: CliRunHeadFragment;
  deployment: { id: string; name: string };
  machineRuns: Map<string, CliMachineRunFragment>;
}

export const FINAL_STATUSES: ReadonlySet<string> = new Set(['SUCCEEDED', 'PARTIALLY_FAILED', 'FAILED', 'CANCELED']);

/** How often the whole state is read while following: bounds how long a missed final event can stall a watch. */
const SNAPSHOT_POLL_MS = 10_000;
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

  const snapshot = async () => {
    const machineRuns = new Map<string, CliMachineRunFragment>();
    let read: NonNullable<CliRunProgressSnapshotQuery['deploymentRun']> | null = null;
    for (let after: string | null = null; ; ) {
      const { deploymentRun }: CliRunProgressSnapshotQuery = await client.request(CliRunProgressSnapshotDocument, { id: runId, after });
      if (!deploymentRun) throw new OperatorError(`No deployment run with id ${runId}.`, { code: 'NOT_FOUND' });
      read = deploymentRun;
      for (const { node } of deploymentRun.machineRuns.edges) machineRuns.set(node.id, node);
      if (!deploymentRun.machineRuns.pageInfo.hasNextPage || !deploymentRun.machineRuns.pageInfo.endCursor) break;
      after = deploymentRun.machineRuns.pageInfo.endCursor;
    }
    const { deployment, machineRuns: _page, ...head } = read!;
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
    if (!view) return;
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
    const subscriptionVariables = () => ({ id: runId });

    const finish = (error?: unknown) => {
      if (finished) return;
      finished = true;
      clearInterval(poll);
      unsubscribe?.();
      void socket.dispose();
      if (error) reject(error instanceof Error ? error : new OperatorError(String(error)));
      else resolve(view!);
    };
    const check = () => {
      if (view && FINAL_STATUSES.has(view.head.status)) finish();
    };
    const resync = () =>
      snapshot()
        .then(check)
        .catch((error: unknown) => finish(error));

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
          // A fresh subscription on every connection, so that its variables can carry where the
          // last one stopped (the replay's `after`).
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
          void resync();
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
    const poll = setInterval(() => void resync(), SNAPSHOT_POLL_MS);
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
 * returns its id. Today it reads the deployment's newest run every `pollMs`; the API's
 * `deploymentRunsStarted(deploymentId)` subscription replaces the polling.
 */
export async function nextRunOf(client: ApiClient, deploymentId: string, options: { pollMs?: number; timeoutMs?: number } = {}): Promise<string> {
  const read = async () => {
    const { deployment } = await client.request(CliLastRunDocument, { id: deploymentId });
    if (!deployment) throw new OperatorError(`No deployment with id ${deploymentId}.`, { code: 'NOT_FOUND' });
    return deployment.lastRun?.id ?? null;
  };
  const before = await read();
  const deadline = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
  for (;;) {
    await new Promise((r) => setTimeout(r, options.pollMs ?? 2000));
    const now = await read();
    if (now && now !== before) return now;
    if (Date.now() > deadline) throw new OperatorError(`No run of the deployment began within ${Math.round((options.timeoutMs ?? 0) / 1000)} s.`);
  }
}
