import type { PreparedReport } from '../../db/assessmentIngest.js';
import { GroupCommit } from './groupCommit.js';

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

export interface IngestGroupEvent {
  reports: number;
  /** The group failed as a whole and its reports were stored one by one. */
  retriedAlone: boolean;
  error?: unknown;
}

/**
 * Group commit (groupCommit.ts) for assessment reports: reports that arrive while a group is being
 * stored go together in the next group, one statement and one commit for all of them, each answered
 * only once its group is committed (an agent that got its answer may delete the report from its
 * spool). A group that fails is retried report by report, so one report PostgreSQL refuses fails
 * alone. A report id sent twice into one group is stored once: the first copy answers as the
 * statement says, the second `stored: false`.
 */
export class AssessmentIngestQueue {
  private readonly groups: GroupCommit<PreparedReport, { stored: boolean }>;

  constructor(
    store: StoreGroup,
    options: IngestQueueOptions = DEFAULT_INGEST_QUEUE_OPTIONS,
    onGroup: (event: IngestGroupEvent) => void = () => undefined,
    /** An error that says the database is away: retrying the group's reports one by one would only meet it again. */
    isUnavailable: (error: unknown) => boolean = () => false,
  ) {
    this.groups = new GroupCommit(
      store,
      { maxConcurrentGroups: options.maxConcurrentGroups, maxGroupItems: options.maxGroupReports, maxGroupBytes: options.maxGroupBytes },
      {
        bytes: (report) => report.bytes,
        sameAs: (report) => (report.kind === 'RESULT' ? report.id : undefined),
        copyOutcome: () => ({ stored: false }),
        onGroup: ({ items, retriedAlone, error }) => onGroup({ reports: items, retriedAlone, ...(error === undefined ? {} : { error }) }),
        isUnavailable,
      },
    );
  }

  /** Resolves once the report is committed (or was already stored); rejects if it could not be stored. */
  submit(report: PreparedReport): Promise<{ stored: boolean }> {
    return this.groups.submit(report);
  }
}
