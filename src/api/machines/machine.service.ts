import { queueAgentCommand } from '../../db/agentCommands.js';
import {
  assessmentHistory,
  complianceSummary,
  findAssessment,
  findMachine,
  findMachines,
  listMachines,
  machinesMissing,
  missingUpdates,
  pendingUpdatesOf,
  removeMachine,
  setMachineManagement,
  setMachineTags,
  type MachineFilter,
  type MachineRow,
  type MachineSortField,
} from '../../db/machines.js';
import { compliance, readiness } from '../../fleet/compliance.js';
import { normaliseTags, tagProblem } from '../../fleet/tags.js';
import type { ApiServices } from '../context.js';
import { badUserInput, notFound } from '../errors.js';

export class MachineService {
  constructor(private readonly services: ApiServices) {}

  private get db() {
    return this.services.database.db;
  }

  compliance(machine: MachineRow) {
    return compliance(machine, this.services.now(), this.services.fleet.thresholds);
  }

  readiness(machine: MachineRow) {
    return readiness(machine, this.services.now(), this.services.fleet.thresholds);
  }

  list(filter: MachineFilter, sort: { field: MachineSortField; direction: 'ASC' | 'DESC' }, page: { offset: number; limit: number }) {
    if (filter.tags) {
      const problem = tagProblem(filter.tags);
      if (problem) throw badUserInput('filter.tags', `filter.tags: ${problem}.`);
    }
    return listMachines(this.db, { filter, sort, ...page, now: this.services.now(), thresholds: this.services.fleet.thresholds });
  }

  async get(id: string): Promise<MachineRow> {
    const machine = await findMachine(this.db, id);
    if (!machine) throw notFound(`No machine with id ${id}.`);
    return machine;
  }

  find(id: string) {
    return findMachine(this.db, id);
  }

  pendingUpdates(machine: MachineRow) {
    return machine.latestAssessmentId ? pendingUpdatesOf(this.db, machine.latestAssessmentId) : Promise.resolve([]);
  }

  /** Repositories the latest assessment could not read. */
  async repositoryProblems(machine: MachineRow) {
    if (!machine.latestAssessmentId) return [];
    return (await findAssessment(this.db, machine.latestAssessmentId))?.repositoryProblems ?? [];
  }

  history(machineId: string, page: { offset: number; limit: number }) {
    return assessmentHistory(this.db, machineId, page.offset, page.limit);
  }

  machinesMissing(update: { name: string; classification: string }, page: { offset: number; limit: number }) {
    return machinesMissing(this.db, update, page.offset, page.limit);
  }

  missingUpdates(filter: { classification?: string[]; osType?: 'LINUX' | 'WINDOWS'; nameContains?: string }, page: { offset: number; limit: number }) {
    return missingUpdates(this.db, { ...filter, ...page });
  }

  summary() {
    return complianceSummary(this.db, this.services.now(), this.services.fleet.thresholds);
  }

  /** Asks each machine's agent for a fresh assessment; says why for the machines it cannot ask. */
  async requestAssessments(machineIds: string[]) {
    if (machineIds.length === 0) throw badUserInput('machineIds', 'machineIds must name at least one machine.');
    if (machineIds.length > 1000) throw badUserInput('machineIds', `at most 1000 machines per call; got ${machineIds.length}.`);
    const ids = [...new Set(machineIds)];
    const found = new Map((await findMachines(this.db, ids)).map((m) => [m.id, m]));
    return Promise.all(
      ids.map(async (machineId) => {
        const machine = found.get(machineId);
        if (!machine) return { machineId, requested: false, commandId: null, reason: 'No such machine.' };
        if (!machine.managementEnabled) {
          return { machineId, requested: false, commandId: null, reason: 'Update management is disabled for this machine; enable it first.' };
        }
        const command = await queueAgentCommand(this.db, machineId, 'ASSESS');
        this.services.pubsub.publish('agentCommandQueued', machineId, { commandId: command.id });
        const state = this.readiness(machine).state;
        const reason = state === 'READY' ? null : `The agent is ${state}: it will assess when it next connects.`;
        return { machineId, requested: true, commandId: command.id, reason };
      }),
    );
  }

  async setManagement(machineId: string, enabled: boolean) {
    return this.changed(await setMachineManagement(this.db, machineId, enabled), machineId);
  }

  async setTags(machineId: string, tags: string[]) {
    const problem = tagProblem(tags);
    if (problem) throw badUserInput('tags', `tags: ${problem}.`);
    return this.changed(await setMachineTags(this.db, machineId, normaliseTags(tags)), machineId);
  }

  async remove(machineId: string) {
    return this.changed(await removeMachine(this.db, machineId), machineId);
  }

  private changed(machine: MachineRow | undefined, machineId: string): MachineRow {
    if (!machine) throw notFound(`No machine with id ${machineId}.`);
    this.services.pubsub.publish('machineChanged', { machineId });
    return machine;
  }
}
