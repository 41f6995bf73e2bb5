/**
 * Agent upgrades as decisions on plain data: which version is older, which machines an upgrade
 * takes and which it leaves out (and why), how many at once, what to do with an agent that was
 * busy installing updates, and how an upgrade ended.
 */
import { maxConcurrentMachines, resolveLimit, type Limit } from './planning.js';

// ---------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------

const SEMVER = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

/**
 * Semantic version order (semver.org, §11): -1, 0 or 1; null when either is not a version (an agent
 * that says "simulated", a build of a fork).
 */
export function compareAgentVersions(a: string, b: string): -1 | 0 | 1 | null {
  const x = SEMVER.exec(a.trim());
  const y = SEMVER.exec(b.trim());
  if (!x || !y) return null;
  for (let i = 1; i <= 3; i++) {
    const d = Number(x[i]) - Number(y[i]);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  const [p, q] = [x[4], y[4]];
  if (p === q) return 0;
  // A pre-release comes before its release.
  if (p === undefined) return 1;
  if (q === undefined) return -1;
  const ps = p.split('.');
  const qs = q.split('.');
  for (let i = 0; i < Math.max(ps.length, qs.length); i++) {
    if (ps[i] === undefined) return -1;
    if (qs[i] === undefined) return 1;
    if (ps[i] === qs[i]) continue;
    const [pn, qn] = [/^\d+$/.test(ps[i]!), /^\d+$/.test(qs[i]!)];
    if (pn && qn) return Number(ps[i]) < Number(qs[i]) ? -1 : 1;
    if (pn !== qn) return pn ? -1 : 1; // numeric identifiers come first
    return ps[i]! < qs[i]! ? -1 : 1;
  }
  return 0;
}

/**
 * Whether an agent is behind the version the server ships: older, or not a version at all (it cannot
 * be compared, and it is not what the server ships). Null when either is unknown.
 */
export function isOutdated(agentVersion: string | null, shipped: string | null): boolean | null {
  if (!agentVersion || !shipped) return null;
  const order = compareAgentVersions(agentVersion, shipped);
  return order === null ? agentVersion !== shipped : order < 0;
}

/** Machines per agent version, newest first (versions that are not versions last), each with isOutdated. */
export function versionCounts(rows: ReadonlyArray<{ version: string | null; machines: number }>, shipped: string | null) {
  return [...rows]
    .sort((a, b) => {
      if (a.version === null || b.version === null) return a.version === null ? 1 : -1;
      const order = compareAgentVersions(b.version, a.version);
      return order ?? (SEMVER.test(a.version) ? -1 : SEMVER.test(b.version) ? 1 : a.version.localeCompare(b.version));
    })
    .map((r) => ({ version: r.version, machines: r.machines, outdated: isOutdated(r.version, shipped) }));
}

// ---------------------------------------------------------------------------------------------
// Which machines
// ---------------------------------------------------------------------------------------------

export type AgentUpgradeMachineStatus = 'PENDING' | 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'ROLLED_BACK' | 'TIMED_OUT' | 'SKIPPED' | 'NOT_STARTED' | 'CANCELED';
export type AgentUpgradeStatus = 'IN_PROGRESS' | 'SUCCEEDED' | 'PARTIALLY_FAILED' | 'FAILED' | 'CANCELED';

export interface UpgradeCandidate {
  id: string;
  name: string;
  osType: 'LINUX' | 'WINDOWS';
  agentVersion: string | null;
  lastSeenAt: Date | null;
}

export interface UpgradeTarget {
  machineId: string;
  machineName: string;
  fromVersion: string | null;
  status: 'PENDING' | 'SKIPPED';
  code: string | null;
  message: string | null;
}

/**
 * What an upgrade to `toVersion` does with each machine it was asked to cover: PENDING, or SKIPPED
 * with the reason. Left out: Windows machines (their agent does not upgrade itself yet), agents
 * already at the version or newer (never downgraded), and agents not heard from within
 * `disconnectedAfterMs` (they would only time out). Machines come in name order.
 */
export function chooseUpgradeTargets(candidates: readonly UpgradeCandidate[], toVersion: string, now: Date, disconnectedAfterMs: number): UpgradeTarget[] {
  const skip = (m: UpgradeCandidate, code: string, message: string): UpgradeTarget => ({ machineId: m.id, machineName: m.name, fromVersion: m.agentVersion, status: 'SKIPPED', code, message });
  return [...candidates]
    .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id))
    .map((m) => {
      if (m.osType === 'WINDOWS') return skip(m, 'NOT_SUPPORTED', 'The Windows agent does not upgrade itself yet: install the new version with install-windows-agent.ps1.');
      if (m.agentVersion === toVersion) return skip(m, 'ALREADY_CURRENT', `The agent already runs version ${toVersion}.`);
      if (m.agentVersion && compareAgentVersions(m.agentVersion, toVersion) === 1) {
        return skip(m, 'NEWER', `The agent runs version ${m.agentVersion}, newer than the ${toVersion} this server ships: it is not downgraded.`);
      }
      if (!m.lastSeenAt || now.getTime() - m.lastSeenAt.getTime() > disconnectedAfterMs) {
        return skip(m, 'DISCONNECTED', m.lastSeenAt ? `The agent has not checked in since ${m.lastSeenAt.toISOString()}: it cannot be reached.` : 'The agent has never checked in.');
      }
      return { machineId: m.id, machineName: m.name, fromVersion: m.agentVersion, status: 'PENDING', code: null, message: null };
    });
}

// ---------------------------------------------------------------------------------------------
// Rate control
// ---------------------------------------------------------------------------------------------

/**
 * Each machine being upgraded is one pending activity of the upgrade's workflow, and Temporal allows
 * 2,000 per workflow: at most this many at once, half of that allowance. Without a limit, as many as
 * a deployment runs at once by default.
 */
export const MAX_CONCURRENT_UPGRADES = 1000;

export function upgradeConcurrency(limit: Limit | null, total: number): number {
  return Math.min(MAX_CONCURRENT_UPGRADES, maxConcurrentMachines(limit, total));
}

/** How many machines may fail (FAILED, ROLLED_BACK, TIMED_OUT) before no new one starts; Infinity without a limit. */
export function upgradeFailureThreshold(limit: Limit | null, total: number): number {
  return Math.max(1, resolveLimit(limit, total, Number.POSITIVE_INFINITY));
}

export const FAILED_UPGRADE_STATUSES: ReadonlySet<AgentUpgradeMachineStatus> = new Set(['FAILED', 'ROLLED_BACK', 'TIMED_OUT']);

/** The new executable gets this long to check in after the swap before the previous one is put back. */
export const DEFAULT_ROLLBACK_AFTER_SECONDS = 180;
export const ROLLBACK_AFTER_RANGE = { min: 30, max: 3600 } as const;

/**
 * An agent answers BUSY while it runs an install job (it upgrades between jobs only): it is asked
 * again every minute for half an hour, which covers most maintenance windows' jobs, then skipped.
 */
export const BUSY_RETRY_SECONDS = 60;
export const BUSY_MAX_ATTEMPTS = 30;

export function afterBusy(attempts: number, policy: { retrySeconds: number; maxAttempts: number } = { retrySeconds: BUSY_RETRY_SECONDS, maxAttempts: BUSY_MAX_ATTEMPTS }): { retryInSeconds: number } | { skip: string } {
  if (attempts < policy.maxAttempts) return { retryInSeconds: policy.retrySeconds };
  return { skip: `The agent was running an install job each of the ${attempts} times it was asked (over ${Math.round((attempts * policy.retrySeconds) / 60)} minutes): not upgraded; run the upgrade again after its deployments.` };
}

// ---------------------------------------------------------------------------------------------
// How it ended
// ---------------------------------------------------------------------------------------------

/**
 * The upgrade's status from its machines': CANCELED when canceled; IN_PROGRESS while any waits or
 * runs; SUCCEEDED when every machine it had to upgrade was upgraded (skipped ones do not count; an
 * upgrade with none to upgrade succeeded at nothing); FAILED when none was; PARTIALLY_FAILED otherwise.
 */
export function agentUpgradeStatus(statuses: readonly AgentUpgradeMachineStatus[], canceled: boolean): AgentUpgradeStatus {
  if (canceled) return 'CANCELED';
  if (statuses.some((s) => s === 'PENDING' || s === 'IN_PROGRESS')) return 'IN_PROGRESS';
  const attempted = statuses.filter((s) => s !== 'SKIPPED');
  const succeeded = attempted.filter((s) => s === 'SUCCEEDED').length;
  if (succeeded === attempted.length) return 'SUCCEEDED';
  return succeeded === 0 ? 'FAILED' : 'PARTIALLY_FAILED';
}

export function notStartedUpgradeReason(state: { canceled: boolean; failed: number; threshold: number }): string {
  if (state.canceled) return 'The upgrade was canceled before this machine started.';
  return `Not started: ${state.failed} machine(s) had failed, reaching the upgrade's maximum failures.`;
}

export interface UpgradeRequest {
  allMachines?: boolean | null;
  machineIds?: string[] | null;
  filter?: { tags?: string[] | null; nameContains?: string | null } | null;
  maxConcurrent?: Limit | null;
  maxFailures?: Limit | null;
  rollbackAfterSeconds?: number | null;
}

/** The request checked: exactly one way of choosing machines, sane limits. Returns the problem (field and message) or the normalised request. */
export function checkUpgradeRequest(input: UpgradeRequest):
  | { field: string; problem: string }
  | { targets: { allMachines: boolean; machineIds: string[]; filter: { tags: string[]; nameContains: string | null } | null }; maxConcurrent: Limit | null; maxFailures: Limit | null; rollbackAfterSeconds: number } {
  const ways = [input.allMachines ? 'allMachines' : null, input.machineIds && input.machineIds.length > 0 ? 'machineIds' : null, input.filter ? 'filter' : null].filter(Boolean);
  if (ways.length !== 1) return { field: 'input', problem: `Choose the machines one way: allMachines: true, machineIds, or filter${ways.length > 1 ? `; got ${ways.join(' and ')}` : ''}.` };
  if (input.machineIds && input.machineIds.length > 10_000) return { field: 'machineIds', problem: `machineIds holds ${input.machineIds.length} ids; at most 10,000 (use a filter or allMachines for more).` };
  if (input.filter && !(input.filter.tags?.length || input.filter.nameContains?.trim())) return { field: 'filter', problem: 'filter needs tags or nameContains (allMachines: true takes every machine).' };
  for (const field of ['maxConcurrent', 'maxFailures'] as const) {
    const limit = input[field];
    if (!limit) continue;
    const max = limit.unit === 'PERCENT' ? 100 : 100_000;
    if (!Number.isInteger(limit.value) || limit.value < 1 || limit.value > max) {
      return { field: `${field}.value`, problem: `${field}.value must be a whole number from 1 to ${max} (${limit.unit === 'PERCENT' ? "percent of the upgrade's machines" : 'machines'}); got ${limit.value}.` };
    }
  }
  const rollback = input.rollbackAfterSeconds ?? DEFAULT_ROLLBACK_AFTER_SECONDS;
  if (!Number.isInteger(rollback) || rollback < ROLLBACK_AFTER_RANGE.min || rollback > ROLLBACK_AFTER_RANGE.max) {
    return { field: 'rollbackAfterSeconds', problem: `rollbackAfterSeconds must be a whole number from ${ROLLBACK_AFTER_RANGE.min} to ${ROLLBACK_AFTER_RANGE.max}; got ${rollback}.` };
  }
  return {
    targets: {
      allMachines: Boolean(input.allMachines),
      machineIds: input.machineIds ?? [],
      filter: input.filter ? { tags: input.filter.tags ?? [], nameContains: input.filter.nameContains?.trim() || null } : null,
    },
    maxConcurrent: input.maxConcurrent ?? null,
    maxFailures: input.maxFailures ?? null,
    rollbackAfterSeconds: rollback,
  };
}
