import type { Classification, PackageBackend, PendingUpdate, UpdateOutcome } from '../agent/backends/types.js';
import { sleep } from '../agent/sleep.js';

/**
 * What a simulated fleet looks like: how many updates each machine lacks, of which kinds, how long
 * installs and reboots take and how often an install fails. Defaults resemble a Debian fleet a few
 * weeks behind its security suite.
 */
export interface FleetProfile {
  /** Pending updates per machine, on average (each machine gets between half and one and a half times this). */
  updatesPerMachine: number;
  /** Shares of CRITICAL and SECURITY among pending updates; the rest is OTHER. */
  criticalShare: number;
  securityShare: number;
  /** Share of updates whose metadata suggests a reboot (kernels, libc). */
  rebootSuggestedShare: number;
  /** Mean install duration of one update, seconds (0: instant). Each update takes 0.5×–1.5× this. */
  installSeconds: number;
  /** Chance, 0..1, that one update's install fails. */
  failureRate: number;
  /** How long a reboot keeps the machine away, seconds. */
  rebootSeconds: number;
  /** The agent version the machines report until an upgrade changes it ('simulated' when not given). */
  agentVersion?: string;
  /** How long a self-update takes from the command to the new agent's check-in (download, swap, restart), seconds (3 when not given). */
  upgradeSeconds?: number;
}

export const DEFAULT_PROFILE: FleetProfile = {
  updatesPerMachine: 50,
  criticalShare: 0.05,
  securityShare: 0.3,
  rebootSuggestedShare: 0.04,
  installSeconds: 2,
  failureRate: 0.02,
  rebootSeconds: 20,
  agentVersion: 'simulated',
  upgradeSeconds: 3,
};

/** A small, fast, seedable random generator (mulberry32): the same seed gives the same fleet. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One package of the simulated distribution; machines draw their pending updates from this catalog. */
function catalogUpdate(index: number, classification: Classification, rebootSuggested: boolean): PendingUpdate {
  const security = classification !== 'OTHER';
  return {
    name: rebootSuggested ? `linux-image-sim-${index}` : `sim-pkg-${index}`,
    installedVersion: `1.${index}.0-1`,
    availableVersion: security ? `1.${index}.0-1+deb12u1` : `1.${index}.1-1`,
    arch: 'amd64',
    classification,
    severity: classification === 'CRITICAL' ? 'CRITICAL' : classification === 'SECURITY' ? 'IMPORTANT' : null,
    advisoryIds: security ? [`DSA-${5000 + index}-1`] : [],
    cveIds: security ? [`CVE-2026-${10_000 + index}`] : [],
    rebootSuggested,
    repository: security ? 'Debian-Security:12/stable-security' : 'Debian:12/stable',
  };
}

/** The outcome of installing one update on a simulated machine. */
export interface SimulatedInstall {
  status: 'SUCCEEDED' | 'FAILED';
  exitCode: number;
  errorText: string | null;
  output: string[];
  seconds: number;
}

/**
 * The package side of one simulated machine: its pending updates, and what installing one does
 * (takes its time, fails at the profile's rate, leaves the machine needing a reboot for a kernel).
 * Deterministic per (seed, machine index), except for time.
 */
export class SyntheticMachine {
  private readonly pending = new Map<string, PendingUpdate>();
  /** Installs begun, per package name: a package installed twice shows as 2 (tests and benchmarks check it). */
  readonly installs = new Map<string, number>();
  private readonly random: () => number;
  rebootPending = false;

  constructor(
    readonly index: number,
    private readonly profile: FleetProfile,
    seed = 1,
  ) {
    this.random = seededRandom(seed * 1_000_003 + index);
    const count = Math.round(profile.updatesPerMachine * (0.5 + this.random()));
    // A catalog 4× the mean: machines share most packages, as a real fleet on one distribution does.
    const catalogSize = Math.max(1, profile.updatesPerMachine * 4);
    const chosen = new Set<number>();
    while (chosen.size < Math.min(count, catalogSize)) chosen.add(Math.floor(this.random() * catalogSize));
    for (const i of chosen) {
      // The package's kind depends on the package, not the machine: openssl is a security update everywhere.
      const kind = seededRandom(seed + i * 7919)();
      const classification: Classification = kind < profile.criticalShare ? 'CRITICAL' : kind < profile.criticalShare + profile.securityShare ? 'SECURITY' : 'OTHER';
      const reboot = seededRandom(seed + i * 104_729)() < profile.rebootSuggestedShare;
      const update = catalogUpdate(i, classification, reboot);
      this.pending.set(update.name, update);
    }
  }

  /** The machine's pending updates now (what an assessment reports). */
  pendingUpdates(): PendingUpdate[] {
    return [...this.pending.values()];
  }

  /** Installs one update: waits its duration, then succeeds or fails as the profile says. */
  async install(name: string, wait: (ms: number) => Promise<void>): Promise<SimulatedInstall> {
    const update = this.pending.get(name);
    this.installs.set(name, (this.installs.get(name) ?? 0) + 1);
    const seconds = this.profile.installSeconds * (0.5 + this.random());
    if (seconds > 0) await wait(seconds * 1000);
    if (!update) {
      return { status: 'SUCCEEDED', exitCode: 0, errorText: null, output: [`${name} is already the newest version.`], seconds };
    }
    if (this.random() < this.profile.failureRate) {
      return {
        status: 'FAILED',
        exitCode: 100,
        errorText: `E: Sub-process /usr/bin/dpkg returned an error code (1) while configuring ${name} (simulated failure)`,
        output: [`Setting up ${name} (${update.availableVersion}) ...`, `dpkg: error processing package ${name} (--configure):`],
        seconds,
      };
    }
    this.pending.delete(name);
    if (update.rebootSuggested) this.rebootPending = true;
    return { status: 'SUCCEEDED', exitCode: 0, errorText: null, output: [`Unpacking ${name} (${update.availableVersion}) over (${update.installedVersion}) ...`, `Setting up ${name} (${update.availableVersion}) ...`], seconds };
  }

  /** A reboot clears the machine's pending reboot. */
  rebooted(): void {
    this.rebootPending = false;
  }
}

/**
 * A simulated machine as the agent's package backend, so that the virtual agent runs the agent's
 * own install job runner (src/agent/jobs.ts) on it. `installed` hears each outcome (the simulator's
 * counters); an install cut short by `signal` (the simulator stopping) ends at once.
 */
export function syntheticBackend(machine: SyntheticMachine, options: { signal?: AbortSignal; installed?: (outcome: UpdateOutcome) => void } = {}): PackageBackend {
  return {
    name: 'apt',
    assess: async () => ({ rebootPending: machine.rebootPending, updates: machine.pendingUpdates(), repositoryProblems: [] }),
    rebootPending: async () => machine.rebootPending,
    installUpdate: async (_ctx, update, onOutput) => {
      const result = await machine.install(update.name, (ms) => sleep(ms, options.signal));
      for (const line of result.output) onOutput(line);
      const outcome: UpdateOutcome = {
        status: result.status,
        exitCode: result.exitCode,
        errorText: result.errorText,
        installedVersion: result.status === 'SUCCEEDED' ? update.availableVersion : update.installedVersion,
        rebootRequired: machine.rebootPending,
      };
      options.installed?.(outcome);
      return outcome;
    },
    // Nothing changes a simulated machine's packages but its own installs.
    databaseFingerprint: async () => 'synthetic',
  };
}
