import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import { SyntheticMachine, type FleetProfile } from './syntheticMachine.js';
import { VirtualAgent, type AgentCounters } from './virtualAgent.js';

const COUNTED = ['checkIns', 'reports', 'jobs', 'updatesInstalled', 'updatesFailed', 'reboots', 'upgrades', 'errors'] as const;

export interface SimulatedFleetOptions {
  server: string;
  enrollKey: string;
  machines: number;
  profile: FleetProfile;
  /** Hostname prefix: machines are `<prefix>-00001`… */
  prefix: string;
  /** How many machines enroll at the same time while the fleet ramps up. */
  rampConcurrency: number;
  /** Same seed, same fleet. */
  seed: number;
  /** Called while ramping up, at most every `progressMs`. */
  onProgress?: (joined: number, total: number, failed: number) => void;
  progressMs?: number;
}

export interface SimulatedFleet {
  agents: VirtualAgent[];
  /** Machines that could not join (enrollment refused, server away), with the first reason. */
  joinFailures: number;
  firstJoinError?: string;
  /** Sums of every agent's counters. */
  totals(): AgentCounters;
  /** Stops every agent and waits for their loops to end. */
  stop(): Promise<void>;
}

/**
 * Open files a virtual agent may hold at once: its long-poll's connection, and at times a second one
 * (a check-in, or a kept-alive connection closing). Measured at 10,000 agents: 1.0 at rest, up to
 * 1.8 while connections churned.
 */
const FILES_PER_AGENT = 2;

/** This process's limit of open files (`ulimit -n`), where the system says (Linux); null elsewhere. */
function openFileLimit(): number | null {
  try {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft && /^\d+$/.test(soft) ? Number(soft) : null;
  } catch {
    return null;
  }
}

/**
 * Why N agents may not fit this process, or null. Past the open-file limit every new connection
 * fails at once (EMFILE): the agents keep retrying and the process spins, the likeliest cause of a
 * 10,000-agent run that stalled under `ulimit -n` 20,000 (BENCHMARKS.md).
 */
export function openFilesWarning(machines: number, limit = openFileLimit()): string | null {
  const needed = machines * FILES_PER_AGENT + 100;
  if (limit === null || needed <= limit) return null;
  return `${machines} virtual agents may hold about ${needed} open files; this process may open ${limit} (ulimit -n). Raise it (ulimit -n ${Math.max(65536, needed)}) or split the fleet over several simulators.`;
}

/**
 * N virtual agents in this process: each enrolls with the key, reports its first assessment and
 * then runs like a real agent until stopped. Enrollment goes `rampConcurrency` at a time; the
 * running agents start polling as soon as they have joined.
 */
export async function startSimulatedFleet(options: SimulatedFleetOptions): Promise<SimulatedFleet> {
  const stop = new AbortController();
  // One signal per agent, aborted one by one at stop: with every agent on one shared signal, each
  // sleep and request adds and removes a listener on a list of tens of thousands (measured on this
  // Node: 20 µs per add+remove with 100 listeners, 139 µs with 20,000).
  const controllers: AbortController[] = [];
  const agents: VirtualAgent[] = [];
  const loops: Array<Promise<void>> = [];
  let joinFailures = 0;
  let firstJoinError: string | undefined;
  let next = 0;
  let lastProgress = 0;
  const progress = (force = false) => {
    if (!options.onProgress) return;
    const now = Date.now();
    if (!force && now - lastProgress < (options.progressMs ?? 1000)) return;
    lastProgress = now;
    options.onProgress(agents.length, options.machines, joinFailures);
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(options.rampConcurrency, options.machines)) }, async () => {
      for (let i = next++; i < options.machines && !stop.signal.aborted; i = next++) {
        const machine = new SyntheticMachine(i, options.profile, options.seed);
        const agent = new VirtualAgent(options.server, `${options.prefix}-${String(i + 1).padStart(5, '0')}`, machine, options.profile.rebootSeconds, options.profile.agentVersion, options.profile.upgradeSeconds);
        const own = new AbortController();
        setMaxListeners(32, own.signal); // its run, its loops' sleeps and requests
        controllers.push(own);
        try {
          await agent.join(options.enrollKey, own.signal);
        } catch (error) {
          joinFailures++;
          firstJoinError ??= error instanceof Error ? error.message : String(error);
          continue;
        }
        agents.push(agent);
        loops.push(agent.run(own.signal));
        progress();
      }
    }),
  );
  progress(true);
  return {
    agents,
    joinFailures,
    firstJoinError,
    totals() {
      const sum: AgentCounters = { checkIns: 0, reports: 0, jobs: 0, updatesInstalled: 0, updatesFailed: 0, reboots: 0, upgrades: 0, errors: 0 };
      for (const agent of agents) {
        for (const key of COUNTED) sum[key] += agent.counters[key];
        sum.lastError ??= agent.counters.lastError;
      }
      return sum;
    },
    async stop() {
      stop.abort();
      for (const own of controllers) own.abort();
      await Promise.all(loops);
    },
  };
}
