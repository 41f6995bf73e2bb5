import type { AgentCommand, AgentSettings, AssessmentReport, MachineFacts } from '../../agent/protocol.js';
import { takeAgentCommands } from '../../db/agentCommands.js';
import { enrollMachine, findMachineByCredential, recordCheckIn, storeAssessmentReport, type MachineRow } from '../../db/machines.js';
import { readiness } from '../../fleet/compliance.js';
import type { ApiServices } from '../context.js';

export class AgentService {
  constructor(private readonly services: ApiServices) {}

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

  authenticate(credential: string) {
    return findMachineByCredential(this.db, credential);
  }

  async enroll(enrollmentKey: string, facts: MachineFacts) {
    const outcome = await enrollMachine(this.db, enrollmentKey, facts, this.services.now());
    if (outcome.enrolled) this.services.pubsub.publish('machineChanged', { machineId: outcome.machine.id });
    return outcome;
  }

  /** Records a check-in; tells subscribers only when something they see changed (not at every beat). */
  async checkIn(machine: MachineRow, facts: MachineFacts) {
    const now = this.services.now();
    const recorded = await recordCheckIn(this.db, machine.id, facts, now);
    if (!recorded) return undefined;
    const { before, after } = recorded;
    const thresholds = this.services.fleet.thresholds;
    const visible = (m: MachineRow) =>
      JSON.stringify([m.name, m.osName, m.osVersion, m.kernel, m.environment, m.agentVersion, m.bootId, m.packageManager, m.warnings, readiness(m, now, thresholds).state]);
    if (visible(before) !== visible(after)) this.services.pubsub.publish('machineChanged', { machineId: machine.id });
    return after;
  }

  async storeReport(machine: MachineRow, report: AssessmentReport) {
    const outcome = await storeAssessmentReport(this.db, machine.id, report);
    if (outcome.stored) this.services.pubsub.publish('machineChanged', { machineId: machine.id });
    return outcome;
  }

  /**
   * The long-poll: answers at once when commands wait, otherwise when one is queued (woken through
   * the pubsub, so a command queued on another API replica wakes it too) or when time is up.
   */
  async waitForCommands(machineId: string, waitMs: number, aborted: AbortSignal): Promise<AgentCommand[]> {
    if (waitMs <= 0) return takeAgentCommands(this.db, machineId);
    const wakeups = this.services.pubsub.subscribe('agentCommandQueued', machineId)[Symbol.asyncIterator]();
    // Listening from here on: a command queued after this point wakes us.
    const woken = wakeups.next();
    try {
      const ready = await takeAgentCommands(this.db, machineId);
      if (ready.length > 0) return ready;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        woken,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, waitMs);
          aborted.addEventListener('abort', () => resolve(), { once: true });
        }),
      ]);
      clearTimeout(timer);
      return aborted.aborted ? [] : await takeAgentCommands(this.db, machineId);
    } finally {
      await wakeups.return?.();
    }
  }
}
