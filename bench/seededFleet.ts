/**
 * A fleet for runs larger than the simulator can hold connected on this machine (bench/dispatch.ts
 * --seeded): the machines are enrolled and assessed in PostgreSQL, and each one's agent is woken
 * only when the server announces a command for it.
 *
 * Why: a connected virtual agent holds a long-poll, one socket in the simulator and one in the API
 * process. Both processes may open 20,000 files here (`ulimit -n`, hard limit, not raisable in this
 * container) and loopback has about 28,000 ephemeral ports per server port, so 100,000 connected
 * agents would need five API processes and five simulators, whose long-poll renewals and check-ins
 * (about 5,600 requests a second at rest) alone would saturate the 2 CPUs. What a run costs does
 * not depend on the idle agents (goal 3 of issue 18 measures those): an agent that is woken by the
 * server's own announcement of its job (`agentCommandQueued`, the NOTIFY that wakes a real agent's
 * long-poll) then runs the real agent protocol and job runner (src/simulator/virtualAgent.ts):
 * it polls, receives its job, reports progress and its result, answers the fresh assessment the
 * end of its machine run asks for, and goes back to sleep (its socket closed).
 *
 * What this leaves out, said with the figures: the agents' check-ins during the run (a seeded
 * machine does not check in while it sleeps, so the thresholds of fleetGenerate.ts's
 * BENCH_THRESHOLDS_ENV keep it CONNECTED and ASSESSED), and the long-polls a connected fleet holds.
 *
 * The machines (deterministic in the machine's number i, as bench/fleetGenerate.ts makes them,
 * by INSERT … SELECT over generate_series): named `<prefix>-000001`…, LINUX, tagged `<tag>`, each
 * with its own credential (`fpm_seeded_<prefix>_<i>`: a benchmark's, not a secret), seen and assessed
 * now, with `updates` pending updates (one CRITICAL in four, the rest SECURITY) from a catalog of
 * 40 `sim-pkg-*` packages. The maintained fleet figures are made by the code that maintains them
 * (the machines' summary triggers, the ingest's missing-update delta).
 */
import { setMaxListeners } from 'node:events';
import type { Sql } from 'postgres';
import { applyMissingUpdateDelta } from '../src/db/fleetCounts.js';
import { createFleetPubSub } from '../src/events/pubsub.js';
import { DEFAULT_PROFILE, SyntheticMachine, type FleetProfile } from '../src/simulator/syntheticMachine.js';
import { VirtualAgent } from '../src/simulator/virtualAgent.js';

const WEEK_MS = 7 * 24 * 3600_000;
/** Machines inserted per statement. */
const SEED_BATCH = 20_000;
/** An awake agent that got no job, or whose machine run's fresh assessment was never asked, sleeps again after this. */
const AWAKE_MS = 60_000;

export interface SeededMachine {
  index: number;
  machineId: string;
  name: string;
}

/** Enrolls and assesses `machines` machines in PostgreSQL (see the header); answers them in name order. */
export async function seedFleet(sql: Sql, options: { machines: number; prefix: string; tag: string; updates: number }): Promise<SeededMachine[]> {
  const { machines, prefix, tag, updates } = options;
  if (updates < 1 || updates > 40) throw new Error(`--updates: 1 to 40 for a seeded fleet; got ${updates}`);
  await sql`update fleet_summary_settings set linux_assessment_max_age_ms = ${WEEK_MS}, windows_assessment_max_age_ms = ${WEEK_MS}, disconnected_after_ms = ${WEEK_MS}`;
  const id = (what: string) => `md5('${what}-${prefix}-' || i)::uuid`;
  const critical = `(select count(*) from generate_series(0, ${updates - 1}) g where ((i * 7 + g) % 40) % 4 = 0)::int`;
  for (let from = 0; from < machines; from += SEED_BATCH) {
    const to = Math.min(machines, from + SEED_BATCH) - 1;
    await sql.begin(async (tx) => {
      // SCRIPT_STEPS as the simulator's agents announce it (src/simulator/virtualAgent.ts): a
      // sleeping machine is handed its scripts, not failed for an agent that does not run them.
      await tx.unsafe(`insert into machines (id, name, os_type, os_name, os_version, kernel, environment, tags, agent_version, package_manager, boot_id, agent_capabilities,
          credential_hash, last_seen_at, last_assessed_at, latest_assessment_id, critical_count, security_count, other_count, enrolled_at, summary_at)
        select ${id('machine')}, '${prefix}-' || lpad((i + 1)::text, 6, '0'), 'LINUX', 'Debian GNU/Linux 12 (bookworm)', '12', '6.1.0-28-amd64', 'ON_PREMISES',
          array['${tag}'], 'simulated', 'apt', ${id('boot')}::text, array['SCRIPT_STEPS'],
          encode(sha256(convert_to('fpm_seeded_${prefix}_' || i, 'UTF8')), 'hex'), now(), now(), ${id('assessment')},
          ${critical}, ${updates} - ${critical}, 0, now(), now()
        from generate_series(${from}, ${to}) i`);
      await tx.unsafe(`insert into assessments (id, machine_id, trigger, backend, started_at, finished_at, assessed_at, reboot_pending, critical_count, security_count, other_count)
        select ${id('assessment')}, ${id('machine')}, 'STARTUP', 'apt', now(), now(), now(), false, ${critical}, ${updates} - ${critical}, 0
        from generate_series(${from}, ${to}) i`);
      await tx.unsafe(`insert into pending_updates (assessment_id, machine_id, name, arch, installed_version, available_version, classification, severity, advisory_ids, cve_ids, reboot_suggested, repository)
        select ${id('assessment')}, ${id('machine')}, 'sim-pkg-' || k, 'amd64', '1.' || k || '.0-1', '1.' || k || '.0-1+deb12u1',
          (case when k % 4 = 0 then 'CRITICAL' else 'SECURITY' end)::classification, (case when k % 4 = 0 then 'CRITICAL' else 'IMPORTANT' end)::severity,
          array['DSA-' || (5000 + k) || '-1'], array['CVE-2026-' || (10000 + k)], false, 'Debian-Security:12/stable-security'
        from generate_series(${from}, ${to}) i cross join lateral (select distinct (i * 7 + g) % 40 as k from generate_series(0, ${updates - 1}) g) u`);
      const assessed = await tx.unsafe<Array<{ id: string }>>(`select ${id('assessment')}::text as id from generate_series(${from}, ${to}) i`);
      await applyMissingUpdateDelta(
        tx as unknown as Sql,
        [],
        assessed.map((r) => ({ osType: 'LINUX' as const, assessmentId: r.id })),
      );
    });
  }
  await sql`with moved as (delete from fleet_summary_deltas returning key, n), summed as (select key, sum(n)::bigint as n from moved group by key)
    insert into fleet_summary_counts (key, n) select key, n from summed where n <> 0 order by key
    on conflict (key) do update set n = fleet_summary_counts.n + excluded.n`;
  for (const table of ['machines', 'assessments', 'pending_updates']) await sql.unsafe(`analyze ${table}`);
  const rows = await sql<Array<{ i: number; id: string; name: string }>>`
    select i, md5(${`machine-${prefix}-`} || i)::uuid::text as id, ${`${prefix}-`} || lpad((i + 1)::text, 6, '0') as name from generate_series(0, ${machines - 1}) i`;
  return rows.map((r) => ({ index: r.i, machineId: r.id, name: r.name }));
}

/** A sleeping fleet: agents woken by the commands announced for their machine. */
export interface SleepingFleet {
  /** Agents awake now. */
  awake(): number;
  /** Times an agent was woken, all told. */
  wakes(): number;
  /** Every agent woken, oldest first (a machine woken twice has two: a stopped agent is not run again). */
  agents: VirtualAgent[];
  stop(): Promise<void>;
}

/**
 * Wakes the agent of a seeded machine when the server announces a command for it (the NOTIFY the
 * API's long-polls wake on), lets it run as a real agent (src/simulator/virtualAgent.ts) until it
 * has received its install job and sent the assessment asked after it (or AWAKE_MS passed without
 * that), then stops it. `onAgent` is called for each agent when it is made, before it runs.
 */
export async function wakeOnCommands(
  sql: Sql,
  options: { server: string; machines: readonly SeededMachine[]; prefix: string; profile?: FleetProfile; seed: number; onAgent?: (agent: VirtualAgent, machine: SeededMachine) => void },
): Promise<SleepingFleet> {
  const profile = options.profile ?? DEFAULT_PROFILE;
  const byId = new Map(options.machines.map((m) => [m.machineId, m]));
  const agents: VirtualAgent[] = [];
  const awake = new Map<string, { agent: VirtualAgent; controller: AbortController; since: number }>();
  const loops = new Set<Promise<void>>();
  let stopped = false;
  // A new agent at each wake, with the machine's credential: a VirtualAgent's run, once stopped, does not start again.
  const wake = (machineId: string) => {
    const machine = byId.get(machineId);
    if (!machine || awake.has(machineId) || stopped) return;
    const agent = new VirtualAgent(options.server, machine.name, new SyntheticMachine(machine.index, profile, options.seed), profile.rebootSeconds, profile.agentVersion, profile.upgradeSeconds);
    agent.machineId = machine.machineId;
    agent.client.setCredential(`fpm_seeded_${options.prefix}_${machine.index}`);
    agents.push(agent);
    options.onAgent?.(agent, machine);
    const controller = new AbortController();
    setMaxListeners(32, controller.signal);
    const loop = agent.run(controller.signal).catch(() => undefined);
    loops.add(loop);
    void loop.finally(() => loops.delete(loop));
    awake.set(machineId, { agent, controller, since: Date.now() });
  };
  const pubsub = await createFleetPubSub(sql);
  const unobserve = pubsub.observe({
    delivered(topic) {
      if (topic.startsWith('agentCommandQueued:')) wake(topic.slice('agentCommandQueued:'.length));
    },
  });
  // Asleep again: after its job and the assessment asked after it, or after AWAKE_MS with neither.
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [machineId, a] of awake) {
      const worked = a.agent.counters.jobs > 0 && a.agent.counters.reports > 0;
      if (worked || now - a.since > AWAKE_MS) {
        a.controller.abort();
        awake.delete(machineId);
      }
    }
  }, 250);
  return {
    awake: () => awake.size,
    wakes: () => agents.length,
    agents,
    async stop() {
      stopped = true;
      clearInterval(sweep);
      unobserve();
      for (const a of awake.values()) a.controller.abort();
      awake.clear();
      await Promise.all([...loops]);
    },
  };
}
