/**
 * Replicas that fail without loss (issue 18, goal 5): a run over simulated machines on 3 API
 * processes and 2 workers, one PostgreSQL and one Temporal, while one API process and one worker
 * are SIGKILLed and started again.
 *
 * The stack is bench/freshness.ts's (embedded PostgreSQL, headless Temporal dev server, one
 * `fleetpatch server`: replica 1, which is never killed), plus two more `fleetpatch server`
 * processes (replicas 0 and 2) and two `fleetpatch worker` processes, all on one task queue. The
 * agents of the simulator (src/simulator, in this process) reach the three APIs through a TCP load
 * balancer (src/simulator/balancer.ts: connections in turn, a backend that refuses one skipped),
 * as they would a Kubernetes Service or HAProxy in front of the replicas.
 *
 * 1. N machines join (about --updates pending CRITICAL/SECURITY updates each, --install-seconds per
 *    update, no failures, no reboots) and long-poll, spread over the replicas by the balancer;
 * 2. a deployment over them (by tag; --max-concurrent machines at a time) runs now: t0;
 * 3. a deploymentRunProgress subscription (after: 0) is opened on replica 1;
 * 4. once --kill-at of the machines are done, replica 0 and worker 0 are SIGKILLed; the failover
 *    time is how long until replicas 1 and 2 together hold 90 % of the long-polls the three held
 *    just before (read from each API's fleetpatch_agent_long_polls_open); both are started again
 *    --restart-after-seconds after the kill;
 * 5. at the end: the run's status, per-machine results (machine runs by status, time from t0 to
 *    each machine run's end), install jobs and results per machine, packages installed twice (the
 *    simulator counts installs), agent request errors, and whether the subscription delivered
 *    every event of the run once, in order.
 *
 * Exit code 1 when anything was lost, doubled or failed.
 *
 * Run:  npx tsx bench/failover.ts [--machines 2000] [--updates 2] [--install-seconds 1] [--max-concurrent 500]
 *                                 [--kill-at 0.25] [--restart-after-seconds 10] [--timeout-seconds 1200]
 * Needs dist/ (`npm run build`) and the Temporal CLI (found or built as for the tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { sleep } from '../src/agent/sleep.js';
import { createEnrollmentKey } from '../src/db/enrollmentKeys.js';
import { createApiToken } from '../src/db/tokens.js';
import { freePort } from '../src/net.js';
import { startTcpBalancer } from '../src/simulator/balancer.js';
import { startSimulatedFleet, type SimulatedFleet } from '../src/simulator/fleet.js';
import { DEFAULT_PROFILE } from '../src/simulator/syntheticMachine.js';
import { benchAbort, checkAborted, cleanupOnce, installInterruptHandler, loadAverages, quantile, runBenchmark, startStack, stopProcess } from './freshness.js';

const FLEETPATCH_BIN = fileURLToPath(new URL('../bin/fleetpatch.js', import.meta.url));
const TASK_QUEUE = 'fleetpatch-bench-failover';
const FINAL = /^(SUCCEEDED|PARTIALLY_FAILED|FAILED|CANCELED)$/;

const say = (line: string) => console.log(line);
const sec = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '-' : `${(ms / 1000).toFixed(1)} s`);

/** A `fleetpatch server` or `worker` of the benchmark's own; resolves once it says it is up. */
async function startProcess(kind: 'server' | 'worker', env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; stop: () => Promise<void>; output: () => string }> {
  const child = spawn(process.execPath, [FLEETPATCH_BIN, kind], { env: { ...process.env, LOG_LEVEL: 'info', LOG_FORMAT: 'json', NODE_ENV: 'production', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => void (output = (output + chunk.toString('utf8')).slice(-8000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stop = cleanupOnce(() => stopProcess(child));
  const ready = kind === 'server' ? /"msg":"API listening"/ : /"msg":"worker polling"/;
  const deadline = Date.now() + 180_000;
  while (!ready.test(output)) {
    if (benchAbort.signal.aborted || child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      await stop();
      checkAborted();
      throw new Error(`fleetpatch ${kind} did not start:\n${output}`);
    }
    await sleep(100);
  }
  return { child, stop, output: () => output };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      machines: { type: 'string', default: '2000' },
      updates: { type: 'string', default: '2' },
      'install-seconds': { type: 'string', default: '1' },
      'max-concurrent': { type: 'string', default: '500' },
      'kill-at': { type: 'string', default: '0.25' },
      'restart-after-seconds': { type: 'string', default: '10' },
      'enroll-concurrency': { type: 'string', default: '50' },
      'timeout-seconds': { type: 'string', default: '1200' },
    },
  });
  const n = Number(values.machines);
  const options = {
    updates: Number(values.updates),
    installSeconds: Number(values['install-seconds']),
    maxConcurrent: Number(values['max-concurrent']),
    killAt: Number(values['kill-at']),
    restartAfterMs: Number(values['restart-after-seconds']) * 1000,
    enrollConcurrency: Number(values['enroll-concurrency']),
    timeoutMs: Number(values['timeout-seconds']) * 1000,
  };
  const loadAtStart = os.loadavg();
  const overall = performance.now();
  installInterruptHandler();
  say(
    `failover benchmark: ${n} machines, about ${options.updates} updates each at ${options.installSeconds} s, ${options.maxConcurrent} at a time; ` +
      `replica 0 and worker 0 SIGKILLed once ${Math.round(options.killAt * 100)} % of machines are done, started again ${options.restartAfterMs / 1000} s later`,
  );

  const agentEnv = {
    FLEETPATCH_TASK_QUEUE: TASK_QUEUE,
    FLEETPATCH_API_RATE_LIMIT: '0',
    FLEETPATCH_AGENT_RATE_LIMIT: '0',
    FLEETPATCH_ENROLL_RATE_LIMIT: '0',
  };
  const stack = await startStack({ label: 'failover', serverEnv: agentEnv });
  let fleet: SimulatedFleet | undefined;
  const stopFleet = cleanupOnce(async () => void (await fleet?.stop()));
  const problems: string[] = [];
  try {
    const env = { ...agentEnv, DATABASE_URL: stack.databaseUrl, TEMPORAL_ADDRESS: stack.temporal.address, HOST: '127.0.0.1' };
    const stackPort = Number(new URL(stack.baseUrl).port);
    const ports = [await freePort(), stackPort, await freePort()];
    const servers: Array<Awaited<ReturnType<typeof startProcess>> | undefined> = [];
    [servers[0], servers[2]] = await Promise.all([startProcess('server', { ...env, PORT: String(ports[0]) }), startProcess('server', { ...env, PORT: String(ports[2]) })]);
    const workers = await Promise.all([startProcess('worker', env), startProcess('worker', env)]);
    const balancer = await startTcpBalancer(ports.map((p) => `127.0.0.1:${p}`));
    const stopBalancer = cleanupOnce(() => balancer.close());
    say(`  3 API processes (ports ${ports.join(', ')}), 2 workers, balancer on ${balancer.address}`);

    const admin = (await createApiToken(stack.database.db, { name: 'bench admin', role: 'ADMIN' })).secret;
    const graphql = async <T>(query: string, variables: Record<string, unknown> = {}): Promise<T> => {
      const response = await fetch(stack.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, body: JSON.stringify({ query, variables }), signal: AbortSignal.timeout(60_000) });
      const body = (await response.json()) as { data?: T; errors?: unknown };
      if (body.errors || !body.data) throw new Error(`GraphQL: ${JSON.stringify(body.errors ?? body)}`);
      return body.data;
    };
    const pollsOn = async (port: number) => {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text(), () => '');
      const line = text.split('\n').find((l) => l.startsWith('fleetpatch_agent_long_polls_open '));
      return line ? Number(line.split(' ')[1]) : 0;
    };

    // 1. The fleet, through the balancer.
    const tag = 'failover';
    const { secret: enrollKey } = await createEnrollmentKey(stack.database.db, { description: 'bench failover', expiresAt: null, maxUses: null, defaultTags: [tag] });
    const enrollStart = performance.now();
    fleet = await startSimulatedFleet({
      server: `http://${balancer.address}`,
      enrollKey,
      machines: n,
      profile: { ...DEFAULT_PROFILE, updatesPerMachine: options.updates, criticalShare: 0.5, securityShare: 0.5, rebootSuggestedShare: 0, installSeconds: options.installSeconds, failureRate: 0 },
      prefix: 'failover',
      rampConcurrency: options.enrollConcurrency,
      seed: 18,
      onProgress: (joined, total, failed) => say(`  ${joined}/${total} machines joined${failed ? `, ${failed} failed` : ''}`),
      progressMs: 10_000,
    });
    if (fleet.joinFailures > 0) throw new Error(`${fleet.joinFailures} machine(s) could not join: ${fleet.firstJoinError}`);
    say(`  ${n} machines enrolled and assessed in ${sec(performance.now() - enrollStart)}`);
    const pollDeadline = Date.now() + 120_000;
    let polls = [0, 0, 0];
    while ((polls = await Promise.all(ports.map(pollsOn))).reduce((a, b) => a + b, 0) < n * 0.9 && Date.now() < pollDeadline) await sleep(500, benchAbort.signal);
    say(`  long-polls open per replica: ${polls.join(' + ')}`);
    const errorsBefore = fleet.totals().errors;

    // 2. The run.
    const { createDeployment } = await graphql<{ createDeployment: { id: string } }>('mutation($input: DeploymentInput!) { createDeployment(input: $input) { id } }', {
      input: { name: 'failover', osType: 'LINUX', targetFilter: { tags: [tag] }, classifications: ['CRITICAL', 'SECURITY'], windowMinutes: 120, rebootSetting: 'NEVER', maxConcurrent: { value: options.maxConcurrent, unit: 'COUNT' } },
    });
    const { runDeploymentNow } = await graphql<{ runDeploymentNow: { id: string } }>('mutation($id: ID!) { runDeploymentNow(id: $id) { id } }', { id: createDeployment.id });
    const t0 = Date.now();
    const runId = runDeploymentNow.id;
    say(`  run ${runId} started`);

    // 3. Its progress on replica 1, from the first event.
    const seqs: number[] = [];
    const subscriptionErrors: string[] = [];
    const ws = createClient({ url: stack.wsUrl, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${admin}` }, retryAttempts: 0 });
    const stopWs = cleanupOnce(async () => void (await ws.dispose()));
    ws.subscribe<{ deploymentRunProgress: { seq: number } }>(
      { query: 'subscription($id: ID!) { deploymentRunProgress(runId: $id, after: 0) { seq } }', variables: { id: runId } },
      { next: (m) => void (m.data ? seqs.push(m.data.deploymentRunProgress.seq) : subscriptionErrors.push(JSON.stringify(m.errors))), error: (e) => void subscriptionErrors.push(String(e)), complete: () => undefined },
    );

    // 4. The kill, the failover, the restart; then the end of the run.
    const ended = async () => Number((await stack.database.sql`select count(*) filter (where ended_at is not null) as n from machine_runs where run_id = ${runId}`)[0]!.n);
    const deadline = t0 + options.timeoutMs;
    while ((await ended()) < n * options.killAt && Date.now() < deadline) await sleep(500, benchAbort.signal);
    checkAborted();
    // A replica too busy to answer /metrics within 10 s reads as 0: look again, or the failover
    // below would be measured against nothing.
    let pollsBefore = await Promise.all(ports.map(pollsOn));
    for (let tries = 1; pollsBefore.some((p) => p === 0) && tries < 10; tries++) pollsBefore = await Promise.all(ports.map(pollsOn));
    if (pollsBefore.some((p) => p === 0)) throw new Error(`a replica's metrics could not be read before the kill: ${pollsBefore.join(' + ')}`);
    const seqsAtKill = seqs.length;
    const killedAt = Date.now();
    workers[0]!.child.kill('SIGKILL');
    servers[0]!.child.kill('SIGKILL');
    say(`  ${sec(killedAt - t0)} after t0: replica 0 (${pollsBefore[0]} of ${pollsBefore.reduce((a, b) => a + b, 0)} long-polls) and worker 0 SIGKILLed with ${await ended()}/${n} machines done`);
    let failoverMs: number | undefined;
    let final = '';
    let finalMs: number | undefined;
    // Sampled on its own, every 250 ms: the loop below waits on GraphQL, which a busy host slows.
    const watchFailover = (async () => {
      const held = 0.9 * pollsBefore.reduce((a, b) => a + b, 0);
      while (failoverMs === undefined && !final && Date.now() < deadline && !benchAbort.signal.aborted) {
        const survivors = (await pollsOn(ports[1]!)) + (await pollsOn(ports[2]!));
        if (survivors >= held) {
          failoverMs = Date.now() - killedAt;
          say(`  failover: the survivors hold ${survivors} long-polls ${sec(failoverMs)} after the kill`);
        } else await sleep(250);
      }
    })();
    let restarted = false;
    const restart = async () => {
      restarted = true;
      [servers[0]] = await Promise.all([startProcess('server', { ...env, PORT: String(ports[0]) }), startProcess('worker', env).then((w) => void (workers[0] = w))]);
      say(`  ${sec(Date.now() - t0)} after t0: replica 0 and worker 0 started again`);
    };
    let restarting: Promise<void> | undefined;
    let seqsWhileDown = 0;
    while (Date.now() < deadline) {
      checkAborted();
      if (!restarted && Date.now() - killedAt >= options.restartAfterMs) {
        seqsWhileDown = seqs.length - seqsAtKill;
        restarting = restart();
      }
      const status = (await graphql<{ deploymentRun: { status: string } }>('query($id: ID!) { deploymentRun(id: $id) { status } }', { id: runId }).catch(() => ({ deploymentRun: { status: '' } }))).deploymentRun.status;
      if (FINAL.test(status)) {
        final = status;
        finalMs = Date.now() - t0;
        break;
      }
      await sleep(500, benchAbort.signal);
    }
    await restarting;
    await watchFailover;
    if (!final) problems.push(`the run was not final ${options.timeoutMs / 1000} s after t0`);
    const [{ last }] = (await stack.database.sql`select coalesce(max(seq), 0)::int as last from run_progress_events where run_id = ${runId}`) as unknown as [{ last: number }];
    const catchUp = Date.now() + 120_000;
    while ((seqs.at(-1) ?? 0) < last && Date.now() < catchUp) await sleep(500, benchAbort.signal);

    // 5. What was recorded, per machine.
    const statuses = await stack.database.sql`select status, count(*)::int as n from machine_runs where run_id = ${runId} group by status order by status`;
    const machineEnds = (await stack.database.sql`select extract(epoch from ended_at) * 1000 as ended from machine_runs where run_id = ${runId} and ended_at is not null`).map((r) => Number(r.ended) - t0);
    const jobs = await stack.database.sql`select count(*) filter (where jobs <> 1 or results <> 1)::int as odd, count(*)::int as machines from (select c.machine_id, count(*) as jobs, count(c.result) as results from agent_commands c join machine_runs m on m.id = c.machine_run_id where m.run_id = ${runId} and c.kind = 'INSTALL' group by c.machine_id) j`;
    const updates = await stack.database.sql`select status, count(*)::int as n from update_results where run_id = ${runId} group by status order by status`;
    const failures = await stack.database.sql`select left(coalesce(error, '(none)'), 160) as error, count(*)::int as n from machine_runs where run_id = ${runId} and status <> 'SUCCEEDED' group by 1 order by 2 desc limit 5`;
    const machines = Number((await stack.database.sql`select count(*)::int as n from machines`)[0]!.n);
    const [{ lastNow }] = (await stack.database.sql`select coalesce(max(seq), 0)::int as "lastNow" from run_progress_events where run_id = ${runId}`) as unknown as [{ lastNow: number }];
    const twice = fleet.agents.reduce((s, a) => s + [...a.machine.installs.values()].filter((c) => c > 1).length, 0);
    const jobsTwice = fleet.agents.filter((a) => a.counters.jobs > 1).length;
    const gaps = seqs.filter((s, i) => s !== i + 1).length;
    const totals = fleet.totals();

    say('\n=== Failover: 3 API processes, 2 workers; replica 0 and worker 0 SIGKILLed mid-run ===');
    say(`machines: ${n}; run ${final || 'NOT FINAL'} after ${sec(finalMs)} (t0 = runDeploymentNow answered)`);
    say(`machine runs by status: ${statuses.map((r) => `${r.status as string} ${r.n as number}`).join(', ')}`);
    say(`machine run ended, from t0: p50 ${sec(quantile(machineEnds, 0.5))}, p95 ${sec(quantile(machineEnds, 0.95))}, last ${sec(Math.max(...machineEnds))}`);
    if (failures.length) say(`why machine runs did not succeed (most frequent): ${failures.map((r) => `${r.n as number}× ${r.error as string}`).join(' | ')}`);
    if (machines !== n) say(`machines enrolled: ${machines} for ${n} simulated (an enrollment retried after its answer was lost makes a second machine)`);
    say(`update results by status: ${updates.map((r) => `${r.status as string} ${r.n as number}`).join(', ')}`);
    say(`install jobs: ${jobs[0]!.machines as number} machines with a job; ${jobs[0]!.odd as number} with other than one job and one result; agents handed more than one job: ${jobsTwice}; packages installed twice: ${twice}`);
    say(`failover of the killed replica's agents (survivors hold 90 % of the polls held before): ${failoverMs === undefined ? 'never' : sec(failoverMs)}`);
    say(`agent request errors after the run began: ${totals.errors - errorsBefore}${totals.lastError ? ` (last: ${totals.lastError})` : ''}`);
    say(`subscription on replica 1: ${seqs.length} events of ${lastNow}, ${gaps} out of order or missing; ${seqsAtKill} before the kill, ${seqsWhileDown} while replica 0 was down, ${seqs.length - seqsAtKill - seqsWhileDown} after${subscriptionErrors.length ? `; errors: ${subscriptionErrors.slice(0, 3).join(' | ')}` : ''}`);

    if (final !== 'SUCCEEDED') problems.push(`the run ended ${final || 'never'}`);
    if (statuses.some((r) => r.status !== 'SUCCEEDED')) problems.push('machine runs other than SUCCEEDED');
    if ((jobs[0]!.odd as number) > 0 || jobsTwice > 0 || twice > 0) problems.push('a job or an install twice, or a result missing');
    if (gaps > 0 || seqs.length < last || subscriptionErrors.length) problems.push('the subscription missed or repeated events');
    await stopWs();
    await stopFleet();
    await stopBalancer();
    for (const p of [...servers, ...workers]) await p?.stop();
  } finally {
    await stopFleet();
    await stack.stop();
  }
  for (const problem of problems) say(`PROBLEM: ${problem}`);
  say(`\ntotal ${sec(performance.now() - overall)}; ${loadAverages(loadAtStart)}`);
  return problems.length ? 1 : 0;
}

await runBenchmark(main);
