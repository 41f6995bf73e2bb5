import type { RunLogRow, MachineRunRow, RunRow, UpdateResultRow } from '../../db/runs.js';
import { databaseNow, findRun, machineRunsByIds, runLogsOf, runsCreatedSince, updateResultsOfMany } from '../../db/runs.js';
import { whileDatabaseAway } from '../../db/client.js';
import { findDeployment } from '../../db/deployments.js';
import { lastRunProgressSeq, runProgressAfter, type RunProgressEvent } from '../../db/runProgress.js';
import type { RunProgressNotice } from '../../events/pubsub.js';
import { sequencedStream } from '../../events/sequencedStream.js';
import type { ApiServices } from '../context.js';
import { badUserInput, notFound } from '../errors.js';

/** One progress event as the subscription delivers it, with the reads it shares with the events of its page. */
export interface RunProgressItem extends RunProgressEvent {
  runId: string;
  page: ProgressPage;
}

/** Events read from PostgreSQL at once during a replay; their state is read once for all of them. */
const REPLAY_PAGE_SIZE = 200;

/**
 * What the events of one page (a replay's page, or one live event) read of the run's state, each
 * read done once for all of them: 100,000 replayed events cost 500 pages of a few queries, not
 * 100,000 times the run, its machine runs, updates and lines. The state is the state when the page
 * is delivered: events announce what changed, not what it changed to.
 */
export class ProgressPage {
  private runRead: Promise<RunRow | undefined> | undefined;
  private machineRunsRead: Promise<Map<string, MachineRunRow>> | undefined;
  private updatesRead: Promise<Map<string, UpdateResultRow[]>> | undefined;
  private linesRead: Promise<RunLogRow[]> | undefined;

  constructor(
    private readonly services: ApiServices,
    private readonly runId: string,
    private readonly events: readonly RunProgressEvent[],
  ) {}

  private get db() {
    return this.services.database.db;
  }

  run(): Promise<RunRow | undefined> {
    return (this.runRead ??= findRun(this.db, this.runId));
  }

  async machineRun(id: string | null): Promise<MachineRunRow | null> {
    if (!id) return null;
    this.machineRunsRead ??= machineRunsByIds(this.db, [...new Set(this.events.flatMap((e) => (e.machineRunId ? [e.machineRunId] : [])))]).then((rows) => new Map(rows.map((r) => [r.id, r])));
    return (await this.machineRunsRead).get(id) ?? null;
  }

  /** The results of the named updates of a machine run. */
  async updates(machineRunId: string | null, names: readonly string[]): Promise<UpdateResultRow[]> {
    if (!machineRunId || names.length === 0) return [];
    this.updatesRead ??= updateResultsOfMany(this.db, [...new Set(this.events.flatMap((e) => (e.kind === 'UPDATES' && e.machineRunId ? [e.machineRunId] : [])))]).then((rows) => {
      const byRun = new Map<string, UpdateResultRow[]>();
      for (const row of rows) byRun.set(row.machineRunId, [...(byRun.get(row.machineRunId) ?? []), row]);
      return byRun;
    });
    const wanted = new Set(names);
    return ((await this.updatesRead).get(machineRunId) ?? []).filter((u) => wanted.has(u.name));
  }

  /** The job stream lines of one event's id range. */
  async lines(lineIds: [number, number] | null): Promise<RunLogRow[]> {
    if (!lineIds) return [];
    if (!this.linesRead) {
      const ranges = this.events.flatMap((e) => (e.kind === 'LINES' && e.lineIds ? [e.lineIds] : []));
      const from = Math.min(...ranges.map((r) => r[0]));
      const through = Math.max(...ranges.map((r) => r[1]));
      // Lines of this run only; their number is bounded by the events' (each at most MAX_LINES_PER_EVENT).
      this.linesRead = runLogsOf(this.db, { runId: this.runId, afterId: from - 1, throughId: through, limit: ranges.reduce((n, r) => n + r[1] - r[0] + 1, 0) });
    }
    return (await this.linesRead).filter((l) => l.id >= lineIds[0] && l.id <= lineIds[1]);
  }
}

/**
 * How long a subscription's read from PostgreSQL waits for it to come back: this many tries, a
 * second apart, instead of ending the subscription. The resync after a restart reads at once, while
 * the pool may still hold connections that died with the old server.
 */
const READ_ATTEMPTS = 60;

export class RunProgressService {
  constructor(private readonly services: ApiServices) {}

  private get db() {
    return this.services.database.db;
  }

  /**
   * A run's progress, each event once and in order: with `after`, what was recorded after it is
   * replayed first (from PostgreSQL, so any replica can serve it), then the live events.
   */
  async progress(runId: string, after: number | null | undefined): Promise<AsyncIterableIterator<RunProgressItem>> {
    if (after !== null && after !== undefined && (!Number.isInteger(after) || after < 0)) throw badUserInput('after', `after must be 0 or the seq of an event already received; got ${after}.`);
    const last = await lastRunProgressSeq(this.db, runId);
    if (last === undefined) throw notFound(`No deployment run with id ${runId}.`);
    const item = (event: RunProgressEvent, page: ProgressPage): RunProgressItem => ({ ...event, runId, page });
    return sequencedStream<RunProgressItem, RunProgressNotice>({
      // Listening before anything is read: an event recorded meanwhile is in the replay, or live, or both (then delivered once).
      live: this.services.pubsub.subscribe('deploymentRunProgress', runId)[Symbol.asyncIterator](),
      after,
      store: {
        // Read once the live side listens: an event recorded in between is not lost.
        last: async () => (await whileDatabaseAway(() => lastRunProgressSeq(this.db, runId), { attempts: READ_ATTEMPTS })) ?? last,
        read: async (afterSeq, limit, through) => {
          const events = await whileDatabaseAway(() => runProgressAfter(this.db, runId, afterSeq, Math.min(limit, REPLAY_PAGE_SIZE), through), { attempts: READ_ATTEMPTS });
          const page = new ProgressPage(this.services, runId, events);
          return events.map((e) => item(e, page));
        },
      },
      // A resync (this process's LISTEN came back) carries no number: what was missed is read from PostgreSQL.
      seqOf: (notice) => ('resync' in notice ? undefined : notice.seq),
      eventOf: (notice) => {
        if ('resync' in notice || notice.elided) return undefined;
        const event: RunProgressEvent = { seq: notice.seq, kind: notice.kind, machineRunId: notice.machineRunId, updateNames: notice.updateNames, lineIds: notice.lineIds };
        return item(event, new ProgressPage(this.services, runId, [event]));
      },
      pageSize: REPLAY_PAGE_SIZE,
    });
  }

  /**
   * Runs of a deployment as they are created: with `since`, those created since then first. Each
   * run once, though it may be both replayed and announced live. After a break in this process's
   * LISTEN (announcements may have been lost), the runs created since the subscription began (or
   * since `since`) are read again, and those not yet delivered delivered.
   */
  async runsStarted(deploymentId: string, since: Date | null | undefined): Promise<AsyncIterableIterator<RunRow>> {
    const deployment = await findDeployment(this.db, deploymentId, { includeDeleted: true });
    if (!deployment) throw notFound(`No deployment with id ${deploymentId}.`);
    const live = this.services.pubsub.subscribe('deploymentRunStarted', deploymentId)[Symbol.asyncIterator]();
    const db = this.db;
    const seen = new Set<string>();
    // Started before anything is read (see progress); the replay is small: runs of one deployment.
    const first = live.next();
    // On PostgreSQL's clock, as the runs' createdAt is.
    const from = since ?? (await databaseNow(db));
    async function* replay(): AsyncGenerator<RunRow> {
      for (let after: Date | null = from; after; ) {
        const page = await runsCreatedSince(db, deploymentId, after, 100);
        const fresh = page.filter((run) => !seen.has(run.id));
        for (const run of fresh) yield (seen.add(run.id), run);
        after = page.length === 100 && fresh.length > 0 ? page.at(-1)!.createdAt : null;
      }
    }
    async function* runs(): AsyncGenerator<RunRow> {
      if (since) yield* replay();
      for (let next = await first; !next.done; next = await live.next()) {
        if ('resync' in next.value) {
          yield* replay();
          continue;
        }
        if (seen.has(next.value.runId)) continue;
        const run = await findRun(db, next.value.runId);
        if (run) yield (seen.add(run.id), run);
      }
    }
    const generator = runs();
    const stream: AsyncIterableIterator<RunRow> = {
      next: () => generator.next(),
      // Ending the live side wakes a generator waiting on it, so that it ends at once.
      return: async (value?: unknown) => {
        await live.return?.();
        return generator.return(value as never);
      },
      throw: async (error?: unknown) => {
        await live.return?.();
        return generator.throw(error);
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
    return stream;
  }
}
