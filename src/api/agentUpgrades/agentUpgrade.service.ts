import { randomUUID } from 'node:crypto';
import { ServiceUnavailable } from '../../availability.js';
import {
  agentUpgradeCounts,
  agentUpgradeMachinesOf,
  agentVersionRows,
  createAgentUpgrade,
  finishAgentUpgrade,
  findAgentUpgrade,
  listAgentUpgrades,
  upgradeCandidates,
  type AgentUpgradeRow,
} from '../../db/agentUpgrades.js';
import { checkUpgradeRequest, chooseUpgradeTargets, isOutdated, versionCounts, type AgentUpgradeMachineStatus, type UpgradeRequest } from '../../fleet/agentUpgrades.js';
import { DOWNLOAD_PATH } from '../../release/agentRelease.js';
import { version as serverVersion } from '../../version.js';
import { workflowIds } from '../../workflows/config.js';
import type { AgentUpgradeInput } from '../../workflows/agentUpgrade.js';
import type { ApiServices } from '../context.js';
import { apiError, badUserInput, notFound } from '../errors.js';
import { installCommands } from '../agentInstall/installScripts.js';

export class AgentUpgradeService {
  constructor(private readonly services: ApiServices) {}

  private get db() {
    return this.services.database.db;
  }

  private get release() {
    return this.services.agentDistribution?.release;
  }

  /** The version agents are compared with: the executables' the server ships, or its own when it ships none. */
  shippedVersion(): string {
    return this.release?.version ?? serverVersion;
  }

  outdated(agentVersion: string | null): boolean | null {
    return isOutdated(agentVersion, this.shippedVersion());
  }

  agentRelease() {
    const release = this.release;
    return {
      version: release?.version ?? null,
      executables: (release?.executables ?? []).map(({ platform, name, sha256, size }) => ({ platform, name, sha256, size, path: `${DOWNLOAD_PATH}/${name}` })),
      packages: (release?.packages ?? []).map(({ name, format, arch, sha256, size }) => ({ name, format, arch, sha256, size, path: `${DOWNLOAD_PATH}/${name}` })),
      releaseKeyFingerprint: this.services.agentDistribution?.releaseKey?.fingerprint ?? null,
      problems: [
        release?.missing.executables ?? (release ? null : 'This server was started without agent executables.'),
        release?.missing.packages ?? null,
        this.services.agentDistribution?.releaseKey ? null : 'This server has no release signing key (FLEETPATCH_RELEASE_KEY_FILE): agents pin none at enrollment and cannot be upgraded.',
      ].filter((p): p is string => p !== null),
    };
  }

  async versions() {
    const shipped = this.shippedVersion();
    const versions = versionCounts(await agentVersionRows(this.db), shipped);
    return { shippedVersion: shipped, outdatedMachines: versions.filter((v) => v.outdated).reduce((n, v) => n + v.machines, 0), versions };
  }

  /**
   * Records an upgrade of the machines asked for to the version the server ships, with its signed
   * executables, and starts its workflow. Machines it leaves out are recorded SKIPPED with why.
   */
  async upgrade(input: UpgradeRequest, requestedBy: string | null): Promise<AgentUpgradeRow> {
    const checked = checkUpgradeRequest(input);
    if ('problem' in checked) throw badUserInput(checked.field, checked.problem);
    const distribution = this.services.agentDistribution;
    const toVersion = distribution?.release.version;
    if (!distribution || !toVersion) throw apiError('UNAVAILABLE', distribution?.release.missing.executables ?? 'This server was started without agent executables: it has nothing to upgrade agents to.');
    if (!distribution.releaseKey) throw apiError('UNAVAILABLE', 'This server has no release signing key (FLEETPATCH_RELEASE_KEY_FILE), so it cannot sign the executables agents would check: set one and restart it.');
    const candidates = await upgradeCandidates(this.db, checked.targets);
    if (checked.targets.machineIds.length > 0) {
      const found = new Set(candidates.map((c) => c.id));
      const unknown = checked.targets.machineIds.filter((id) => !found.has(id));
      if (unknown.length > 0) throw badUserInput('machineIds', `No machine with id ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ` (and ${unknown.length - 5} more)` : ''} (removed machines cannot be upgraded).`);
    }
    if (candidates.length === 0) throw badUserInput(checked.targets.filter ? 'filter' : 'allMachines', 'No machine matches: there is nothing to upgrade.');
    const machines = chooseUpgradeTargets(candidates, toVersion, this.services.now(), this.services.fleet.thresholds.disconnectedAfterMs);
    const id = randomUUID();
    const row = await createAgentUpgrade(this.db, {
      id,
      workflowId: workflowIds.agentUpgrade(id),
      toVersion,
      artifacts: distribution.artifacts,
      signedBy: distribution.releaseKey.fingerprint,
      rollbackAfterSeconds: checked.rollbackAfterSeconds,
      maxConcurrent: checked.maxConcurrent,
      maxFailures: checked.maxFailures,
      targets: checked.targets,
      requestedBy,
      machines,
    });
    if (row.status !== 'IN_PROGRESS') return row;
    const temporal = this.services.temporal;
    try {
      // Through call(): refused at once while Temporal is known to be away, and bounded otherwise.
      await temporal.call(() => temporal.client.workflow.start('agentUpgradeWorkflow', { taskQueue: temporal.settings.taskQueue, workflowId: row.workflowId, args: [{ upgradeId: id, busyRetrySeconds: this.services.fleet.runTimings.upgradeBusyRetrySeconds } satisfies AgentUpgradeInput] }));
    } catch (error) {
      const away = error instanceof ServiceUnavailable;
      const reason = away ? 'Temporal was unavailable when this upgrade was to start: no agent was asked to upgrade.' : `The upgrade's workflow could not be started (${error instanceof Error ? error.message : String(error)}).`;
      await finishAgentUpgrade(this.db, id, { canceled: false, notStarted: machines.map((m) => m.machineId), notStartedReason: reason });
      if (away) throw new ServiceUnavailable('TEMPORAL', 'Temporal is unavailable: the upgrade did not start (it is recorded as ended, no agent was asked to upgrade). Try again in a few seconds.', { cause: error });
      throw apiError('UNAVAILABLE', `${reason} Check that Temporal runs, then try again.`);
    }
    return row;
  }

  async get(id: string): Promise<AgentUpgradeRow | undefined> {
    return findAgentUpgrade(this.db, id);
  }

  list(window: { offset: number; limit: number }) {
    return listAgentUpgrades(this.db, window);
  }

  async counts(id: string) {
    const c = await agentUpgradeCounts(this.db, id);
    const total = Object.values(c).reduce((a, b) => a + b, 0);
    return { total, pending: c.PENDING, inProgress: c.IN_PROGRESS, succeeded: c.SUCCEEDED, failed: c.FAILED, rolledBack: c.ROLLED_BACK, timedOut: c.TIMED_OUT, skipped: c.SKIPPED, notStarted: c.NOT_STARTED, canceled: c.CANCELED };
  }

  machines(id: string, query: { status?: AgentUpgradeMachineStatus[]; offset: number; limit: number }) {
    return agentUpgradeMachinesOf(this.db, id, query);
  }

  async cancel(id: string): Promise<AgentUpgradeRow> {
    const row = await findAgentUpgrade(this.db, id);
    if (!row) throw notFound(`No agent upgrade with id ${id}.`);
    if (row.status !== 'IN_PROGRESS') throw apiError('CONFLICT', `This upgrade already ended (${row.status}); there is nothing to cancel.`);
    const temporal = this.services.temporal;
    await temporal.call(() => temporal.client.workflow.getHandle(row.workflowId).cancel()).catch((error: unknown) => {
      throw error instanceof ServiceUnavailable ? new ServiceUnavailable('TEMPORAL', 'Temporal is unavailable: the upgrade was not canceled. Try again in a few seconds.', { cause: error }) : error;
    });
    return row;
  }

  /** The install commands for a new key's secret; null when the server's address is unknown (no FLEETPATCH_PUBLIC_URL, an odd Host). */
  installCommands(secret: string, origin: string | undefined) {
    const serverUrl = this.services.agentDistribution?.publicUrl ?? origin;
    return serverUrl ? { serverUrl, ...installCommands(serverUrl, secret) } : null;
  }
}
