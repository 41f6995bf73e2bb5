import type { PreparedReport } from '../../db/assessmentIngest.js';

export interface IngestQueueOptions {
  /** Groups being stored at once (each holds a database connection). */
  maxConcurrentGroups: number;
  /** Largest group, in reports. */
  maxGroupReports: number;
  /** Largest group, in bytes of report JSON (bounds the statement's parameter). */
  maxGroupBytes: number;
}

export const DEFAULT_INGEST_QUEUE_OPTIONS: IngestQueueOptions = {
  // Two: one group is stored while the next one forms and is sent (see pump).
  maxConcurrentGroups: 2,
  maxGroupReports: 200,
  // A report of 20,000 updates (the largest the endpoint accepts) is about 6 MB: it forms a group alone.
  maxGroupBytes: 4 * 1024 * 1024,
};

export type StoreGroup = (reports: readonly PreparedReport[]) => Promise<Array<{ stored: boolean }>>;

interface Waiting {
  report: PreparedReport;
  resolve: (outcome: { stored: boolean }) => void;
  reject: (error: unknown) => void;
}

export interface IngestGroupEvent {
  reports: number;
  /** The group failed as a whole and its reports were stored one by one. */
  retriedAlone: boolean;
  error?: unknown;
}

/**
 * Group commit for assessment reports. A report is stored at once when the database is free;
 * reports that arrive while a group is being stored wait and go together in the next group: one
 * statement, one commit for all of them. Under light load nothing waits (a group of one, as
 * before); under a fleet reporting at once, the commits per report fall with the load.
 *
 * Each report's promise settles only after its group is committed: an agent that got its answer
 * may delete the report from its spool. A group that fails is retried report by report, so one
 * report PostgreSQL refuses fails alone. A report id sent twice into one group is stored once: the
 * first copy answers as the statement says, the second `stored: false`.
 */
export class AssessmentIngestQueue {
  private waiting: Waiting[] = [];
  private readonly storing = new Set<Waiting[]>();
  private scheduled = false;

  constructor(
    private readonly store: StoreGroup,
    private readonly options: IngestQueueOptions = DEFAULT_INGEST_QUEUE_OPTIONS,
    private readonly onGroup: (event: IngestGroupEvent) => void = () => undefined,
    /** An error that says the database is away: retrying the group's reports one by one would only meet it again. */
    private readonly isUnavailable: (error: unknown) => boolean = () => false,
  ) {}

  /** Resolves once the report is committed (or was already stored); rejects if it could not be stored. */
  submit(report: PreparedReport): Promise<{ stored: boolean }> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ report, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Forms groups on the next turn of the event loop, not at once: the requests whose bodies were
   * read in the same turn go together, at no cost in latency.
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /**
   * Starts a group when none is being stored, and another beside it only once as many reports wait
   * as the smallest group being stored holds: PostgreSQL stores one group while the next is
   * prepared, without the groups shrinking under load (two groups at once halved their size and
   * cost more CPU per report than they saved in waiting).
   */
  private pump(): void {
    while (this.storing.size < this.options.maxConcurrentGroups && this.waiting.length >= this.smallestStoring()) {
      const group = this.takeGroup();
      this.storing.add(group);
      void this.storeGroup(group).finally(() => {
        this.storing.delete(group);
        this.pump();
      });
    }
  }

  /** How many reports the smallest group being stored holds; 1 when none is (a report waiting is enough). */
  private smallestStoring(): number {
    let smallest = Infinity;
    for (const group of this.storing) smallest = Math.min(smallest, group.length);
    return smallest === Infinity ? 1 : smallest;
  }

  private takeGroup(): Waiting[] {
    let bytes = 0;
    let n = 0;
    while (n < this.waiting.length && n < this.options.maxGroupReports) {
      bytes += this.waiting[n]!.report.bytes;
      if (n > 0 && bytes > this.options.maxGroupBytes) break;
      n++;
    }
    return this.waiting.splice(0, n);
  }

  private async storeGroup(group: Waiting[]): Promise<void> {
    // The first copy of each report id is stored; later copies follow its outcome.
    const firsts: Waiting[] = [];
    const copies = new Map<string, Waiting[]>();
    for (const entry of group) {
      const id = entry.report.kind === 'RESULT' ? entry.report.id : undefined;
      const seen = id === undefined ? undefined : copies.get(id);
      if (seen) seen.push(entry);
      else {
        firsts.push(entry);
        if (id !== undefined) copies.set(id, []);
      }
    }
    const settle = (entry: Waiting, outcome: PromiseSettledResult<{ stored: boolean }>) => {
      const later = entry.report.kind === 'RESULT' ? (copies.get(entry.report.id) ?? []) : [];
      if (outcome.status === 'fulfilled') {
        entry.resolve(outcome.value);
        for (const copy of later) copy.resolve({ stored: false });
      } else {
        entry.reject(outcome.reason);
        for (const copy of later) copy.reject(outcome.reason);
      }
    };
    try {
      const outcomes = await this.store(firsts.map((e) => e.report));
      firsts.forEach((entry, i) => settle(entry, { status: 'fulfilled', value: outcomes[i]! }));
      this.onGroup({ reports: group.length, retriedAlone: false });
    } catch (error) {
      if (firsts.length === 1 || this.isUnavailable(error)) {
        for (const entry of firsts) settle(entry, { status: 'rejected', reason: error });
        this.onGroup({ reports: group.length, retriedAlone: false, error });
        return;
      }
      // Nothing of the group was stored: each report on its own, so that only the bad one fails.
      this.onGroup({ reports: group.length, retriedAlone: true, error });
      for (const entry of firsts) {
        const outcome = await this.store([entry.report]).then(
          ([value]) => ({ status: 'fulfilled' as const, value: value! }),
          (reason: unknown) => ({ status: 'rejected' as const, reason }),
        );
        settle(entry, outcome);
      }
    }
  }
}
