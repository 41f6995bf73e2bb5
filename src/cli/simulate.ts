import { ConfigError } from '../config.js';
import { openFilesWarning, startSimulatedFleet } from '../simulator/fleet.js';
import { DEFAULT_PROFILE, type FleetProfile } from '../simulator/syntheticMachine.js';

export interface SimulateOptions {
  server: string;
  enrollKey: string;
  machines: string;
  updates?: string;
  criticalShare?: string;
  securityShare?: string;
  rebootShare?: string;
  installSeconds?: string;
  failureRate?: string;
  rebootSeconds?: string;
  agentVersion?: string;
  upgradeSeconds?: string;
  prefix: string;
  ramp: string;
  seed: string;
}

/** Option names as typed (`--critical-share`) from commander's keys (`criticalShare`). */
const flag = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** `fleetpatch simulate` (its options and help are in program.ts). */
export async function simulateCommand(values: SimulateOptions): Promise<void> {
  const number = (name: keyof SimulateOptions, fallback: number, check: (v: number) => boolean, what: string): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || !check(value)) throw new ConfigError(`${flag(name)} ${raw}: expected ${what}`);
    return value;
  };
  const share = (v: number) => v >= 0 && v <= 1;
  const profile: FleetProfile = {
    updatesPerMachine: number('updates', DEFAULT_PROFILE.updatesPerMachine, (v) => Number.isInteger(v) && v >= 0, 'a whole number ≥ 0'),
    criticalShare: number('criticalShare', DEFAULT_PROFILE.criticalShare, share, 'a share between 0 and 1'),
    securityShare: number('securityShare', DEFAULT_PROFILE.securityShare, share, 'a share between 0 and 1'),
    rebootSuggestedShare: number('rebootShare', DEFAULT_PROFILE.rebootSuggestedShare, share, 'a share between 0 and 1'),
    installSeconds: number('installSeconds', DEFAULT_PROFILE.installSeconds, (v) => v >= 0, 'seconds ≥ 0'),
    failureRate: number('failureRate', DEFAULT_PROFILE.failureRate, share, 'a share between 0 and 1'),
    rebootSeconds: number('rebootSeconds', DEFAULT_PROFILE.rebootSeconds, (v) => v >= 0, 'seconds ≥ 0'),
    agentVersion: values.agentVersion ?? DEFAULT_PROFILE.agentVersion,
    upgradeSeconds: number('upgradeSeconds', DEFAULT_PROFILE.upgradeSeconds!, (v) => v >= 0, 'seconds ≥ 0'),
  };
  if (!/^[A-Za-z0-9.+~-]{1,50}$/.test(profile.agentVersion!)) throw new ConfigError(`--agent-version ${values.agentVersion}: expected a version such as 0.1.0 (letters, digits, . + ~ -; at most 50)`);
  if (profile.criticalShare + profile.securityShare > 1) throw new ConfigError('--critical-share plus --security-share is more than 1.');
  const machines = number('machines', 0, (v) => Number.isInteger(v) && v >= 1, 'a whole number ≥ 1');
  const started = Date.now();
  console.log(`simulate: ${machines} machines against ${values.server}, about ${profile.updatesPerMachine} pending updates each`);
  const files = openFilesWarning(machines);
  if (files) console.log(`simulate: warning: ${files}`);
  const fleet = await startSimulatedFleet({
    server: values.server,
    enrollKey: values.enrollKey,
    machines,
    profile,
    prefix: values.prefix,
    rampConcurrency: number('ramp', 50, (v) => Number.isInteger(v) && v >= 1, 'a whole number ≥ 1'),
    seed: number('seed', 1, Number.isInteger, 'a whole number'),
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
    console.log(`simulate: check-ins ${t.checkIns}, reports ${t.reports}, jobs ${t.jobs}, updates installed ${t.updatesInstalled}, failed ${t.updatesFailed}, reboots ${t.reboots}, upgrades ${t.upgrades}, errors ${t.errors}${t.lastError ? ` (last: ${t.lastError})` : ''}`);
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
