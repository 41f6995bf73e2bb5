import { parseArgs } from 'node:util';
import { ConfigError } from '../config.js';
import { openFilesWarning, startSimulatedFleet } from '../simulator/fleet.js';
import { DEFAULT_PROFILE, type FleetProfile } from '../simulator/syntheticMachine.js';

const USAGE = `fleetpatch simulate: a fleet of virtual agents in this process, on the real agent protocol

Usage: fleetpatch simulate --server URL --enroll-key KEY --machines N [options]

  --server URL              the API (http://host:4000 or its /graphql URL)
  --enroll-key KEY          an enrollment key (createEnrollmentKey)
  --machines N              how many machines
  --updates N               pending updates per machine on average (${DEFAULT_PROFILE.updatesPerMachine})
  --critical-share F        share of CRITICAL updates, 0..1 (${DEFAULT_PROFILE.criticalShare})
  --security-share F        share of SECURITY updates, 0..1 (${DEFAULT_PROFILE.securityShare})
  --reboot-share F          share of updates that suggest a reboot (${DEFAULT_PROFILE.rebootSuggestedShare})
  --install-seconds S       mean install time of one update; 0 is instant (${DEFAULT_PROFILE.installSeconds})
  --failure-rate F          chance that one install fails, 0..1 (${DEFAULT_PROFILE.failureRate})
  --reboot-seconds S        how long a reboot keeps a machine away (${DEFAULT_PROFILE.rebootSeconds})
  --prefix NAME             hostname prefix (sim)
  --ramp N                  machines enrolling at the same time (50)
  --seed N                  same seed, same fleet (1)

Runs until Ctrl-C; prints a progress line while the fleet ramps up, then one a minute.`;

function number(values: Record<string, string | boolean | undefined>, name: string, fallback: number, check: (v: number) => boolean, what: string): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || !Number.isFinite(value) || !check(value)) throw new ConfigError(`--${name} ${String(raw)}: expected ${what}`);
  return value;
}

export async function simulateCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      server: { type: 'string' },
      'enroll-key': { type: 'string' },
      machines: { type: 'string' },
      updates: { type: 'string' },
      'critical-share': { type: 'string' },
      'security-share': { type: 'string' },
      'reboot-share': { type: 'string' },
      'install-seconds': { type: 'string' },
      'failure-rate': { type: 'string' },
      'reboot-seconds': { type: 'string' },
      prefix: { type: 'string', default: 'sim' },
      ramp: { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.server || !values['enroll-key'] || !values.machines) throw new ConfigError(`simulate needs --server, --enroll-key and --machines.\n\n${USAGE}`);
  const share = (v: number) => v >= 0 && v <= 1;
  const profile: FleetProfile = {
    updatesPerMachine: number(values, 'updates', DEFAULT_PROFILE.updatesPerMachine, (v) => Number.isInteger(v) && v >= 0, 'a whole number ≥ 0'),
    criticalShare: number(values, 'critical-share', DEFAULT_PROFILE.criticalShare, share, 'a share between 0 and 1'),
    securityShare: number(values, 'security-share', DEFAULT_PROFILE.securityShare, share, 'a share between 0 and 1'),
    rebootSuggestedShare: number(values, 'reboot-share', DEFAULT_PROFILE.rebootSuggestedShare, share, 'a share between 0 and 1'),
    installSeconds: number(values, 'install-seconds', DEFAULT_PROFILE.installSeconds, (v) => v >= 0, 'seconds ≥ 0'),
    failureRate: number(values, 'failure-rate', DEFAULT_PROFILE.failureRate, share, 'a share between 0 and 1'),
    rebootSeconds: number(values, 'reboot-seconds', DEFAULT_PROFILE.rebootSeconds, (v) => v >= 0, 'seconds ≥ 0'),
  };
  if (profile.criticalShare + profile.securityShare > 1) throw new ConfigError('--critical-share plus --security-share is more than 1.');
  const machines = number(values, 'machines', 0, (v) => Number.isInteger(v) && v >= 1, 'a whole number ≥ 1');
  const started = Date.now();
  console.log(`simulate: ${machines} machines against ${values.server}, about ${profile.updatesPerMachine} pending updates each`);
  const files = openFilesWarning(machines);
  if (files) console.log(`simulate: warning: ${files}`);
  const fleet = await startSimulatedFleet({
    server: values.server,
    enrollKey: values['enroll-key'],
    machines,
    profile,
    prefix: values.prefix,
    rampConcurrency: number(values, 'ramp', 50, (v) => Number.isInteger(v) && v >= 1, 'a whole number ≥ 1'),
    seed: number(values, 'seed', 1, Number.isInteger, 'a whole number'),
    onProgress: (joined, total, failed) =>
      console.log(`simulate: ${joined}/${total} machines enrolled and assessed${failed ? `, ${failed} failed` : ''} (${((Date.now() - started) / 1000).toFixed(1)} s)`),
  });
  if (fleet.agents.length === 0) {
    await fleet.stop();
    throw new ConfigError(`No machine could join: ${fleet.firstJoinError ?? 'unknown reason'}. Check --server and that the enrollment key is valid.`);
  }
  if (fleet.joinFailures) console.log(`simulate: ${fleet.joinFailures} machine(s) could not join; first reason: ${fleet.firstJoinError}`);
  console.log(`simulate: fleet up (${fleet.agents.length} machines); Ctrl-C stops it`);
  const status = () => {
    const t = fleet.totals();
    console.log(`simulate: check-ins ${t.checkIns}, reports ${t.reports}, jobs ${t.jobs}, updates installed ${t.updatesInstalled}, failed ${t.updatesFailed}, reboots ${t.reboots}, errors ${t.errors}${t.lastError ? ` (last: ${t.lastError})` : ''}`);
  };
  const ticker = setInterval(status, 60_000);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(ticker);
  await fleet.stop();
  status();
}
