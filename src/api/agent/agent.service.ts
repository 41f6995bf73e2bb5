import { ServiceUnavailable } from '../../availability.js';
import type { AgentCommand, AgentSettings, AssessmentReport, JobEvents, JobResult, MachineFacts, UpgradeReport } from '../../agent/protocol.js';
import type { ReleaseKeyOffer } from '../../agent/release.js';
import { applyUpgradeReport } from '../../db/agentUpgrades.js';
import { findEnrollmentKeyBySecret } from '../../db/enrollmentKeys.js';
import { takeAgentCommands, takeWaitingCommandsOf } from '../../db/agentCommands.js';
import { recordAuditEvents } from '../../db/audit.js';
import { prepareReport, storeAssessmentReports, type ReportArrival } from '../../db/assessmentIngest.js';
import { checkInWithCredential, enrollMachine, findMachineByCredential, findMachinesByCredentials, type CheckInState, type EnrollOutcome } from '../../db/machines.js';
import { hashSecret } from '../../db/secrets.js';
import { announceRunProgress } from '../../events/pubsub.js';
import { installJobTraceparent, rebootingMachineRuns } from '../../db/runs.js';
import { applyJobReports, type JobReport, type JobReportOutcome } from '../../db/jobReports.js';
import { activeTracing, contextOf, inSpan, SpanKind } from '../../telemetry/tracing.js';
import { clockIsSkewed, clockOffsetSeconds } from '../../fleet/agentClock.js';
import { lastSeenRefreshMs, readiness } from '../../fleet/compliance.js';
import { editionRefusal, enrollmentRefusal } from '../../fleet/enrollment.js';
import { agentReturnedSignal, workflowIds } from '../../workflows/config.js';
import type { ApiServices } from '../context.js';
import { dependencyAway } from '../errors.js';
import { MachineCredentialCache, trustAfterCheckInMs } from './credentialCache.js';
import { LongPolls, type ParkedPoll, type PollEnd } from './longPolls.js';
import { AssessmentIngestQueue } from './assessmentIngestQueue.js';
import { GroupCommit, type GroupCommitOptions } from './groupCommit.js';

/**
 * Agents' reports on their jobs (progress and results) stored by group commit: a thousand machines
 * finishing together commit in tens of transactions, not a thousand, and take their runs'
 * progress_seq row once per group.
 */
export const JOB_REPORT_GROUPS: GroupCommitOptions = {
  maxConcurrentGroups: 2,
  maxGroupItems: 250,
  // Job stream lines are the bulk of a report: a group's statements stay within a few MB.
  maxGroupBytes: 4 * 1024 * 1024,
};

/** Credentials judged in the database together: a burst of reports (or of woken polls) checks them in a few statements. */
const CREDENTIAL_CHECK_GROUPS: GroupCommitOptions = { maxConcurrentGroups: 2, maxGroupItems: 1000, maxGroupBytes: Number.POSITIVE_INFINITY };

/** Long-polls woken at once: a thousand machines handed their jobs in one transaction take them in a few statements. */
const WOKEN_POLL_GROUPS: GroupCommitOptions = { maxConcurrentGroups: 2, maxGroupItems: 1000, maxGroupBytes: Number.POSITIVE_INFINITY };

/** About how many bytes a report carries, toward JOB_REPORT_GROUPS.maxGroupBytes. */
function reportBytes(report: JobReport): number {
  let bytes = 200 + (report.kind === 'RESULT' ? report.result.updates.length * 200 : 0);
  if (!report.events) return bytes;
  bytes += report.events.updates.length * 200;
  for (const line of report.events.lines) bytes += 64 + line.text.length;
  return bytes;
}

/** The machine an agent request comes from, as its credential says. */
export interface AgentMachine {
  id: string;
  /** The hash of the credential it came with (hashSecret), when it came with one. */
  credentialHash?: string;
}

/** The database says no live machine holds the credential (removed, or enrolled again since): answered 401. */
export class CredentialRefused extends Error {
  constructor() {
    super('This machine credential is no longer valid.');
  }
}

/** How the agent endpoint answers a parked long-poll's client (C: its response). */
export interface PollAnswers<C> {
  /** The commands handed out to the poll (none when its time was up). */
  commands(client: C, commands: AgentCommand[]): void;
  /** Handing them out failed (PostgreSQL away). */
  failed(client: C, error: unknown): void;
}

/**
 * One per API process: it holds the process's credential cache and its parked long-polls. `C` is
 * what a parked poll's answer goes to (the agent endpoint's response), answered through `pollAnswers`.
 */
export class AgentService<C = unknown> {
  readonly credentials: MachineCredentialCache;
  readonly polls: LongPolls<C>;
  /** Assessment reports that arrive together are stored together (group commit). */
  private readonly reports: AssessmentIngestQueue;
  /** Job progress and results that arrive together are stored together (group commit). */
  private readonly jobReports: GroupCommit<JobReport, JobReportOutcome>;
  /** Long-polls woken together (a batch of jobs handed over) take their commands in one statement. */
  private readonly wokenPolls: GroupCommit<string, AgentCommand[]>;
  /** Credentials judged in the database (authenticateInDatabase), grouped. */
  private readonly credentialChecks: GroupCommit<string, string | undefined>;

  constructor(
    private readonly services: ApiServices,
    private readonly pollAnswers: PollAnswers<C> = { commands: () => undefined, failed: () => undefined },
  ) {
    // What a check-in tells this process lasts until the agent's next one, whatever the interval.
    const trustMs = trustAfterCheckInMs(services.fleet.agentTimings.checkInSeconds);
    this.credentials = new MachineCredentialCache(trustMs);
    this.credentials.follow(services.pubsub);
    this.polls = new LongPolls<C>((poll, end) => this.pollEnded(poll, end), { quietTrustMs: trustMs });
    this.polls.follow(services.pubsub);
    this.reports = new AssessmentIngestQueue(
      async (group) => {
        const outcomes = await storeAssessmentReports(services.database.sql, group);
        if (outcomes.some((o) => o.stored)) {
          services.statistics?.noteGrowth('assessments');
          services.statistics?.noteGrowth('pending_updates');
        }
        // One event per stored report, as before, in one NOTIFY for the group.
        services.pubsub.publishMany(group.filter((_, i) => outcomes[i]!.stored).map((report) => ['machineChanged', { machineId: report.machineId }] as const));
        return outcomes;
      },
      undefined,
      (group) => {
        if (group.error) services.logger.warn({ err: group.error, reports: group.reports, retriedAlone: group.retriedAlone }, 'a group of assessment reports could not be stored');
      },
      (error) => dependencyAway(error) === 'DATABASE',
    );
    this.jobReports = new GroupCommit(
      async (group) => {
        const { outcomes, progress } = await applyJobReports(services.database.db, group);
        for (const [runId, events] of progress) announceRunProgress(services.pubsub, runId, events);
        return outcomes;
      },
      JOB_REPORT_GROUPS,
      {
        bytes: reportBytes,
        onGroup: (group) => {
          if (group.error) services.logger.warn({ err: group.error, reports: group.items, retriedAlone: group.retriedAlone }, 'a group of job reports could not be stored');
        },
        isUnavailable: (error) => dependencyAway(error) === 'DATABASE',
      },
    );
    this.credentialChecks = new GroupCommit((hashes) => findMachinesByCredentials(services.database.db, hashes), CREDENTIAL_CHECK_GROUPS, {
      sameAs: (hash) => hash,
      copyOutcome: (machineId) => machineId,
      isUnavailable: (error) => dependencyAway(error) === 'DATABASE',
    });
    this.wokenPolls = new GroupCommit((machineIds) => takeWaitingCommandsOf(services.database.db, machineIds), WOKEN_POLL_GROUPS, {
      // A machine's second poll in a group finds what the first took: nothing.
      sameAs: (machineId) => machineId,
      copyOutcome: () => [],
      isUnavailable: (error) => dependencyAway(error) === 'DATABASE',
    });
  }

  private get db() {
    return this.services.database.db;
  }

  settingsFor(osType: 'LINUX' | 'WINDOWS'): AgentSettings {
    const timings = this.services.fleet.agentTimings;
    return {
      checkInIntervalSeconds: timings.checkInSeconds,
      assessmentIntervalSeconds: timings.assessmentSeconds[osType],
      packageDatabaseCheckSeconds: timings.packageDatabaseCheckSeconds,
      longPollSeconds: timings.longPollSeconds,
    };
  }

  /** The release key agents pin at enrollment and follow at check-in; null when this API has none. */
  releaseKey(): ReleaseKeyOffer | null {
    return this.services.agentDistribution?.offer ?? null;
  }

  /** Why the key would not enroll a machine now, or null when it would (uses nothing: the install script asks before it installs). */
  async enrollmentKeyRefusal(enrollmentKey: string): Promise<string | null> {
    return enrollmentRefusal(await findEnrollmentKeyBySecret(this.db, enrollmentKey), this.services.now());
  }

  /** An agent's report on an UPGRADE command: stored once, then it completes the activity that waits for it. */
  async upgradeResult(machine: AgentMachine, commandId: string, report: UpgradeReport): Promise<'UNKNOWN' | 'WITHDRAWN' | { accepted: boolean }> {
    const outcome = await applyUpgradeReport(this.db, machine.id, commandId, report);
    if (typeof outcome === 'string') return outcome;
    if (outcome.upgradeId) this.services.pubsub.publish('agentUpgradeProgress', outcome.upgradeId, { machineId: machine.id });
    if (outcome.taskToken) {
      const { temporal } = this.services;
      await temporal.call(() => temporal.client.activity.complete(Buffer.from(outcome.taskToken!, 'base64'), report)).catch((error: unknown) => {
        // Temporal away: the report is stored, and the agent, answered 503, keeps it and sends it
        // again until the activity can be completed (answered 200, the activity waited out its
        // timeout, the rollback window and 15 minutes more, before its retry read the report).
        if (error instanceof ServiceUnavailable) throw error;
        this.services.logger.info({ err: error, commandId }, 'the upgrade activity was not waiting for this report');
      });
    }
    return { accepted: outcome.first };
  }

  /**
   * The machine a credential belongs to (cached: see MachineCredentialCache), or undefined. Only
   * for a request that reads or writes nothing of the machine's: a long-poll that finds its machine
   * quiet hands out nothing and runs no statement. Whatever hands out a command or stores a report
   * judges the credential in the database first (authenticateInDatabase, `judged`).
   */
  async authenticate(credential: string): Promise<AgentMachine | undefined> {
    const credentialHash = hashSecret(credential);
    const id = await this.credentials.resolve(credentialHash, async () => (await findMachineByCredential(this.db, credentialHash))?.id);
    return id ? { id, credentialHash } : undefined;
  }

  /**
   * The machine a credential belongs to, judged in the database now, as a check-in judges it: a
   * credential revoked a moment ago (its machine removed, or enrolled again) is refused here
   * whatever this process has cached or failed to hear. Requests that arrive together are judged in
   * one statement. Keeps the cache in step with the answer.
   */
  async authenticateInDatabase(credential: string): Promise<AgentMachine | undefined> {
    const credentialHash = hashSecret(credential);
    const id = await this.judged(credentialHash);
    return id ? { id, credentialHash } : undefined;
  }

  private async judged(credentialHash: string): Promise<string | undefined> {
    const generation = this.credentials.generation;
    const id = await this.credentialChecks.submit(credentialHash);
    if (id) this.credentials.confirm(credentialHash, id, generation);
    else this.credentials.refuse(credentialHash);
    return id;
  }

  /** Enrolls a machine; every attempt, refused or not, goes into the audit log. */
  async enroll(enrollmentKey: string, facts: MachineFacts, sourceAddress: string | null, requestId: string | null = null) {
    // A Windows client edition is refused before its key is used (the seed manages servers only).
    const refusal = editionRefusal(facts);
    const outcome: EnrollOutcome = refusal
      ? { enrolled: false, reason: refusal, keyId: null }
      : await enrollMachine(this.db, enrollmentKey, facts, this.services.now(), requestId);
    if (outcome.enrolled) {
      // Published (and so dropped from this cache) before the new credential is remembered.
      this.services.pubsub.publish('machineChanged', { machineId: outcome.machine.id, ...(outcome.again ? { credentialReplaced: true as const } : {}) });
      this.credentials.remember(hashSecret(outcome.credential), outcome.machine.id);
      if (!outcome.again) this.services.statistics?.noteGrowth('machines');
    }
    await recordAuditEvents(this.db, [
      {
        actorKind: 'ENROLLMENT_KEY',
        actorId: outcome.enrolled ? outcome.machine.enrollmentKeyId : outcome.keyId,
        actorName: facts.hostname,
        action: 'enrollMachine',
        targetId: outcome.enrolled ? outcome.machine.id : null,
        details: {
          hostname: facts.hostname,
          osType: facts.osType,
          osName: facts.osName,
          agentVersion: facts.agentVersion,
          ...(outcome.enrolled ? (outcome.again ? { again: true } : {}) : { reason: outcome.reason }),
        },
        outcome: outcome.enrolled ? 'SUCCEEDED' : 'FORBIDDEN',
        sourceAddress,
      },
    ]);
    return outcome;
  }

  /**
   * Records a check-in by the machine holding `credential`; undefined when no live machine holds it
   * (removed, enrolled again, never issued). One statement (checkInWithCredential) judges the
   * credential, looks at the machine's command queue and writes the row when something changed: its
   * answers keep this process's credential cache and quiet machines in step, so that the agent's
   * polls until the next check-in need no statement. Tells subscribers only when something they see
   * changed (not at every beat). `agentSentAtMs`: the agent's clock when it sent the check-in (its
   * Date header), null without one.
   */
  async checkIn(credential: string, facts: MachineFacts, agentSentAtMs: number | null = null): Promise<(CheckInState & { machineId: string }) | undefined> {
    const now = this.services.now();
    const { thresholds, agentTimings } = this.services.fleet;
    const credentialHash = hashSecret(credential);
    const generation = this.credentials.generation;
    const look = this.polls.lookStarts();
    const recorded = await checkInWithCredential(
      this.services.database,
      credentialHash,
      facts,
      now,
      new Date(now.getTime() - lastSeenRefreshMs(agentTimings.checkInSeconds, thresholds)),
      clockOffsetSeconds(agentSentAtMs, now.getTime()),
    );
    if (!recorded) {
      this.credentials.refuse(credentialHash);
      return undefined;
    }
    const { machineId, before, after } = recorded;
    this.credentials.confirm(credentialHash, machineId, generation);
    if (!recorded.commandsWaiting) this.polls.lookedEmpty(machineId, look);
    else this.polls.notQuiet(machineId);
    const visible = (m: CheckInState) =>
      JSON.stringify([m.name, m.osName, m.osVersion, m.kernel, m.environment, m.agentVersion, m.bootId, m.packageManager, m.warnings, readiness(m, now, thresholds).state, clockIsSkewed(m.clockOffsetSeconds)]);
    if (visible(before) !== visible(after)) this.services.pubsub.publish('machineChanged', { machineId });
    if (before.bootId !== after.bootId) await this.signalReturned(machineId, after.bootId);
    return { ...after, machineId };
  }

  /**
   * A new boot id: the machine rebooted. Machine runs waiting for it go on at once. A signal that
   * cannot be sent (Temporal away) is not waited for: the machine run also looks at the boot id
   * every 10 s.
   */
  private async signalReturned(machineId: string, bootId: string | null): Promise<void> {
    const { temporal } = this.services;
    for (const run of await rebootingMachineRuns(this.db, machineId)) {
      await temporal
        .call(() => temporal.client.workflow.getHandle(workflowIds.machineRun(run.runId, machineId)).signal(agentReturnedSignal, { bootId }))
        .catch((error: unknown) => this.services.logger.warn({ err: error, machineId }, 'could not signal a machine run after a reboot'));
    }
  }

  /**
   * A batch of job progress: stored once, published to the run's subscribers, and relayed to
   * Temporal as the install activity's heartbeat (so a silent agent is noticed).
   */
  async jobEvents(machine: AgentMachine, jobId: string, events: JobEvents): Promise<'UNKNOWN_JOB' | 'WITHDRAWN' | { applied: boolean }> {
    return this.inJobTrace('POST /agent/v1/jobs/:jobId/events', machine, jobId, { 'fleetpatch.job.events.seq': events.seq, 'fleetpatch.job.events.lines': events.lines.length }, () => this.storeJobEvents(machine, jobId, events));
  }

  private async storeJobEvents(machine: AgentMachine, jobId: string, events: JobEvents): Promise<'UNKNOWN_JOB' | 'WITHDRAWN' | { applied: boolean }> {
    // Answered once the group it went in is committed, its progress published.
    const outcome = await this.jobReports.submit({ kind: 'EVENTS', machineId: machine.id, commandId: jobId, events });
    if (!outcome) return 'UNKNOWN_JOB';
    if (outcome === 'WITHDRAWN') return 'WITHDRAWN';
    const { target } = outcome;
    if (target.taskToken) {
      const { temporal } = this.services;
      // Not relayed when the activity has ended, or while Temporal is away: the batch is stored and
      // published all the same, and the agent goes on to its result, which is answered 503 until
      // the activity can be completed (a heartbeat timeout that passed meanwhile hands the install
      // step the stored result at its retry).
      await temporal.call(() => temporal.client.activity.heartbeat(Buffer.from(target.taskToken!, 'base64'), { seq: events.seq })).catch((error: unknown) => {
        this.services.logger.debug({ err: error, jobId }, error instanceof ServiceUnavailable ? 'heartbeat not relayed: Temporal is unavailable' : 'heartbeat not relayed (the activity has ended)');
      });
    }
    return { applied: outcome.applied };
  }

  /** The job's result: stored once, then it completes the waiting install activity. */
  async jobResult(machine: AgentMachine, jobId: string, result: JobResult): Promise<'UNKNOWN_JOB' | 'WITHDRAWN' | { accepted: boolean }> {
    const attributes = {
      'fleetpatch.job.updates': result.updates.length,
      'fleetpatch.job.updates_failed': result.updates.filter((u) => u.status === 'FAILED').length,
      'fleetpatch.job.reboot_required': result.rebootRequired,
      'fleetpatch.job.timed_out': result.timedOut,
    };
    return this.inJobTrace('POST /agent/v1/jobs/:jobId/result', machine, jobId, attributes, () => this.storeJobResult(machine, jobId, result));
  }

  /**
   * With traces on, an agent's report on an install job is a span of the job's trace: its parent is
   * the install activity that handed the job over (its traceparent is stored with the job), so the
   * result that completes the activity shows under it. One primary-key read more per report, and
   * only then: the agent carries no trace context, and needs none.
   */
  private async inJobTrace<T>(name: string, machine: AgentMachine, jobId: string, attributes: Record<string, string | number | boolean>, fn: () => Promise<T>): Promise<T> {
    if (!activeTracing()) return fn();
    const traceparent = await installJobTraceparent(this.db, machine.id, jobId);
    return inSpan(
      name,
      { kind: SpanKind.SERVER, parent: traceparent ? contextOf({ traceparent }) : undefined, attributes: { 'fleetpatch.machine.id': machine.id, 'fleetpatch.job.id': jobId, ...attributes } },
      async (span) => {
        const outcome = await fn();
        // UNKNOWN_JOB, WITHDRAWN, or whether this report was new (a resent one changes nothing).
        span.setAttribute('fleetpatch.job.outcome', typeof outcome === 'string' ? outcome : Object.values(outcome as object)[0] ? 'STORED' : 'ALREADY_STORED');
        return outcome;
      },
    );
  }

  private async storeJobResult(machine: AgentMachine, jobId: string, { events, ...result }: JobResult): Promise<'UNKNOWN_JOB' | 'WITHDRAWN' | { accepted: boolean }> {
    const outcome = await this.jobReports.submit({ kind: 'RESULT', machineId: machine.id, commandId: jobId, result, ...(events ? { events } : {}) });
    if (!outcome) return 'UNKNOWN_JOB';
    if (outcome === 'WITHDRAWN') return 'WITHDRAWN';
    const { target } = outcome;
    if (target.taskToken) {
      const { temporal } = this.services;
      const complete = () =>
        inSpan('CompleteActivity:dispatchInstall', { kind: SpanKind.CLIENT, attributes: { 'fleetpatch.run.id': target.runId, 'fleetpatch.machine_run.id': target.machineRunId } }, () =>
          temporal.call(() => temporal.client.activity.complete(Buffer.from(target.taskToken!, 'base64'), result)),
        );
      await complete().catch((error: unknown) => {
        // Temporal away: the result is stored, and the agent, answered 503, sends it again until
        // the activity can be completed (the waiting machine run would otherwise sit until its
        // heartbeat timeout).
        if (error instanceof ServiceUnavailable) throw error;
        // Already completed (a resent result) or already timed out: the result is stored either way.
        this.services.logger.info({ err: error, jobId }, 'the install activity was not waiting for this result');
      });
    }
    return { accepted: outcome.first };
  }

  /**
   * Stores a report (with the others arriving at the same time) and answers once it is committed.
   * Throws UnstorableReport for a report PostgreSQL cannot hold.
   */
  async storeReport(machine: AgentMachine, report: AssessmentReport, arrival?: ReportArrival) {
    return this.reports.submit(prepareReport(machine.id, report, arrival));
  }

  /**
   * A poll that answers at once (it may not wait, or it asks for a redelivery: every command the
   * agent has not completed, even none).
   */
  takeCommands(machineId: string, redeliver: boolean): Promise<AgentCommand[]> {
    return takeAgentCommands(this.db, machineId, redeliver);
  }

  /**
   * The long-poll, in two steps. `parkPoll` parks it: from then on a command queued for the
   * machine (`agentCommandQueued`, through Postgres NOTIFY, so a command queued on another API
   * replica or by the worker wakes it too) wakes it, and it times out after `waitMs`. Then
   * `firstLook` looks at the machine's queue: the commands waiting (the poll is then out, and the
   * caller answers them), or undefined: the poll waits, and `pollAnswers` answers its client later,
   * once: with the commands when one is queued, with none when time is up. The caller drops the
   * poll (`dropPoll`) when its client goes away first. Not woken means nothing was queued: the
   * agent's next poll looks again, and skips even that query while the machine is known to be
   * quiet (see LongPolls).
   */
  parkPoll(machine: AgentMachine, waitMs: number, client: C): ParkedPoll<C> {
    const poll = this.polls.park(machine.id, waitMs, client, !this.polls.isQuiet(machine.id));
    poll.credentialHash = machine.credentialHash;
    return poll;
  }

  /** Throws CredentialRefused unless the database says the poll's credential is still its machine's. */
  private async judgePoll(poll: ParkedPoll<C>): Promise<void> {
    if (poll.credentialHash !== undefined && (await this.judged(poll.credentialHash)) !== poll.machineId) throw new CredentialRefused();
  }

  async firstLook(poll: ParkedPoll<C>): Promise<AgentCommand[] | undefined> {
    if (!poll.looking) return undefined;
    const lookedAt = this.polls.now();
    let ready: AgentCommand[];
    try {
      // A look may hand commands out: the credential is judged first (a quiet machine's poll runs neither).
      await this.judgePoll(poll);
      ready = await takeAgentCommands(this.db, poll.machineId);
    } catch (error) {
      this.polls.drop(poll);
      throw error;
    }
    if (ready.length > 0) {
      this.polls.drop(poll);
      return ready;
    }
    this.polls.looked(poll, lookedAt);
    return undefined;
  }

  dropPoll(poll: ParkedPoll<C>): void {
    this.polls.drop(poll);
  }

  private pollEnded(poll: ParkedPoll<C>, end: PollEnd): void {
    if (end === 'TIMED_OUT') {
      // Looked at and not woken since: the machine's queue is known empty from that look on.
      if (poll.lookedAt >= 0) this.polls.markQuiet(poll.machineId, poll.lookedAt);
      this.pollAnswers.commands(poll.client, []);
      return;
    }
    // Woken: commands wait for the machine. Handed out only to a credential the database still holds.
    this.judgePoll(poll)
      .then(() => this.wokenPolls.submit(poll.machineId))
      .then(
        (commands) => this.pollAnswers.commands(poll.client, commands),
        (error: unknown) => this.pollAnswers.failed(poll.client, error),
      );
  }
}
