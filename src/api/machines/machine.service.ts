import { queueAgentCommand } from '../../db/agentCommands.js';
import {
  assessmentHistory,
  findAssessment,
  findMachine,
  findMachines,
  computersPage,
  machinesMissing,
  machinesPerName,
  pendingUpdatesPage,
  removeMachine,
  setMachineManagement,
  setMachineTags,
  type MachineFilter,
  type MachineRow,
  type MachineSortField,
} from '../../db/machines.js';
import { compliance, readiness } from '../../fleet/compliance.js';
import { baselineCompliance, builtInBaseline, clockedUpdate, explainCompliance, overdueCount } from '../../fleet/baselines.js';
import { asBaseline, findBaseline } from '../../db/baselines.js';
import { planningInputs } from '../../db/runs.js';
import { missingUpdatesPage, type MissingUpdateQuery } from '../../fleet/missingUpdates.js';
import { maintainedMissingUpdateGroups } from '../../db/fleetCounts.js';
import { maintainedComplianceSummary } from '../../db/fleetSummary.js';
import type { MachinePosition } from '../../fleet/machineOrder.js';
import { normaliseTags, tagProblem } from '../../fleet/tags.js';
import type { ApiServices } from '../context.js';
import { badUserInput, notFound } from '../errors.js';

/**
 * Keys asked for while a response is being resolved, loaded together once the resolvers of the
 * moment have all asked (a page of 500 machines costs one query, not 500).
 */
class KeyBatch<K, V> {
  private pending: { keys: Set<K>; loaded: Promise<Map<K, V>> } | undefined;

  constructor(private readonly load: (keys: K[]) => Promise<Map<K, V>>) {}

  async get(key: K): Promise<V | undefined> {
    if (!this.pending) {
      const keys = new Set<K>();
      // setImmediate: after every resolver started in this turn (and their promises) has asked.
      const loaded = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.pending = undefined;
        return this.load([...keys]);
      });
      this.pending = { keys, loaded };
    }
    this.pending.keys.add(key);
    return (await this.pending.loaded).get(key);
  }
}

/** Per request (its context object): the machines that share each name. */
const nameBatches = new WeakMap<object, KeyBatch<string, number>>();

export class MachineService {
  constructor(private readonly services: ApiServices) {}

  /**
   * How many other live machines carry this machine's name, ignoring case. `request` scopes the
   * batching: the names asked for while one response resolves are counted in one query.
   */
  async machinesSharingName(machine: MachineRow, request: object): Promise<number> {
    let batch = nameBatches.get(request);
    if (!batch) nameBatches.set(request, (batch = new KeyBatch((names) => machinesPerName(this.services.database.db, names))));
    const total = (await batch.get(machine.name)) ?? 0;
    // A removed machine is not counted among the live ones it shares its name with.
    return Math.max(0, total - (machine.removedAt ? 0 : 1));
  }

  private get db() {
    return this.services.database.db;
  }

  /** With the built-in baseline, from the counts as before; with a baseline, from the state kept for it. */
  compliance(machine: MachineRow) {
    if (machine.baselineId === null) return compliance(machine, this.services.now(), this.services.fleet.thresholds);
    return baselineCompliance(machine, this.services.now(), this.services.fleet.thresholds);
  }

  /** The machine's approved updates past their SLA due date, now. */
  overdueCount(machine: MachineRow) {
    return overdueCount(machine.slaDueDates.map((d) => new Date(d)), this.services.now());
  }

  /** The machine's baseline (the built-in one when none reaches it). */
  async baseline(machine: MachineRow) {
    if (machine.baselineId === null) return builtInBaseline(machine.osType);
    const row = await findBaseline(this.db, machine.baselineId);
    return row ? asBaseline(row) : builtInBaseline(machine.osType);
  }

  /** Why the machine is (not) compliant with its baseline, naming the updates (reads its pending updates: a machine's page, not a list's). */
  async complianceReason(machine: MachineRow): Promise<string> {
    const verdict = this.compliance(machine);
    if (verdict === 'NOT_ASSESSED') return machine.lastAssessedAt ? `No assessment since ${machine.lastAssessedAt.toISOString()}: the latest is too old to judge by.` : 'Never assessed.';
    const now = this.services.now();
    const { pending, baselineOf, clocks } = await planningInputs(this.db, [machine.id]);
    const baseline = baselineOf.get(machine.id) ?? builtInBaseline(machine.osType);
    const updates = (pending.get(machine.id) ?? []).map((u) => clockedUpdate(u, clocks, now));
    return explainCompliance(baseline, updates, now).reason;
  }

  readiness(machine: MachineRow) {
    return readiness(machine, this.services.now(), this.services.fleet.thresholds);
  }

  /** A page of the computers view, from the start, an old offset cursor, or after a position (src/api/machines/machineCursor.ts). */
  async list(filter: MachineFilter, sort: { field: MachineSortField; direction: 'ASC' | 'DESC' }, page: { offset: number; limit: number; after?: MachinePosition }) {
    if (filter.tags) {
      const problem = tagProblem(filter.tags);
      if (problem) throw badUserInput('filter.tags', `filter.tags: ${problem}.`);
    }
    return { ...(await computersPage(this.db, { filter, sort, ...page, now: this.services.now(), thresholds: this.services.fleet.thresholds })), totalCountComputedAt: null };
  }

  async get(id: string): Promise<MachineRow> {
    const machine = await findMachine(this.db, id);
    if (!machine) throw notFound(`No machine with id ${id}.`);
    return machine;
  }

  find(id: string, options: { includeRemoved?: boolean } = {}) {
    return findMachine(this.db, id, options);
  }

  pendingUpdates(machine: MachineRow, page: { offset: number; limit: number }) {
    return machine.latestAssessmentId ? pendingUpdatesPage(this.db, machine.latestAssessmentId, page.offset, page.limit, machine.baselineId) : Promise.resolve({ rows: [], totalCount: 0 });
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

  /**
   * A page of the fleet's missing updates, from the counts maintained with every report
   * (docs/fleet-counts.md): exact at the read, so computedAt is the time of the read.
   */
  async missingUpdates(filter: Omit<MissingUpdateQuery, 'offset' | 'limit'>, page: { offset: number; limit: number }) {
    const computedAt = this.services.now();
    return { ...missingUpdatesPage(await maintainedMissingUpdateGroups(this.db), { ...filter, ...page }), computedAt };
  }

  /**
   * The compliance summary, from the counts maintained with every change (docs/fleet-counts.md):
   * exact at the read, so computedAt is the time of the read.
   */
  async summary() {
    const computedAt = this.services.now();
    return { ...(await maintainedComplianceSummary(this.db, computedAt, this.services.fleet.thresholds)), computedAt };
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
    const changed = await setMachineTags(this.db, machineId, normaliseTags(tags));
    if (changed) this.services.statistics?.noteGrowth('machine_tags');
    return this.changed(changed, machineId);
  }

  async remove(machineId: string) {
    return this.changed(await removeMachine(this.db, machineId), machineId, { removed: true });
  }

  private changed(machine: MachineRow | undefined, machineId: string, how: { removed?: true } = {}): MachineRow {
    if (!machine) throw notFound(`No machine with id ${machineId}.`);
    this.services.pubsub.publish('machineChanged', { machineId, ...how });
    return machine;
  }
}
