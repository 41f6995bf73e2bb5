import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { version } from '../version.js';
import { runAssessment } from './assess.js';
import { detectBackend } from './backends/index.js';
import { writeWindowsBootId } from './backends/windowsFacts.js';
import { gatherFacts } from './facts.js';
import { createAgentLog } from './log.js';
import { AgentRefused } from './errors.js';
import { Agent } from './runner.js';
import { loadIdentity } from './state.js';
import { enrollOnce } from './enrollment.js';
import { runUpgradeWatchdog } from './upgrade.js';

const DEFAULT_STATE_DIR = '/var/lib/fleetpatch-agent';
const DEFAULT_BOOT_ID_FILE = '/proc/sys/kernel/random/boot_id';
/** A minute's notice lets logged-in users see why; the agent has reported its result by then. */
const DEFAULT_REBOOT_COMMAND = "shutdown -r +1 'fleetpatch: rebooting after installing updates'";

export interface AgentDefaults {
  stateDir: string;
  /** On Windows, a file the agent writes at start (Windows has no boot id file of its own). */
  bootIdFile: string;
  bootIdWrittenByAgent: boolean;
  rebootCommand: string;
}

/**
 * Where the agent keeps its state and how it reboots, per platform. Windows: under ProgramData
 * (readable by SYSTEM and Administrators only), and `shutdown /r` with a minute's notice and the
 * planned reason "Operating System: Hot fix" (p:2:17), so the event log says why it restarted.
 */
export function agentDefaults(platform: NodeJS.Platform = process.platform, env: NodeJS.ProcessEnv = process.env): AgentDefaults {
  if (platform !== 'win32') return { stateDir: DEFAULT_STATE_DIR, bootIdFile: DEFAULT_BOOT_ID_FILE, bootIdWrittenByAgent: false, rebootCommand: DEFAULT_REBOOT_COMMAND };
  const stateDir = path.win32.join(env.ProgramData || 'C:\\ProgramData', 'fleetpatch-agent');
  return {
    stateDir,
    bootIdFile: path.win32.join(stateDir, 'boot-id'),
    bootIdWrittenByAgent: true,
    rebootCommand: 'shutdown /r /t 60 /d p:2:17 /c "fleetpatch: rebooting after installing updates"',
  };
}

/** The environment variable an enrollment key can come from (kept out of `ps`). */
export const ENROLL_KEY_ENV = 'FLEETPATCH_ENROLL_KEY';

/**
 * `run` and `assess` under `parent`: `fleetpatch agent` in the fleetpatch command, the program
 * itself in the standalone agent (`fleetpatch-agent`). Their code runs only when chosen.
 */
export function addAgentCommands(parent: Command): Command {
  const defaults = agentDefaults();
  parent
    .command('run')
    .description(
      'enroll once (the key is needed only the first time), then check in, assess on the server\'s cadence and on demand, report, and run install jobs; until SIGINT/SIGTERM',
    )
    .requiredOption('--server <url>', 'the fleetpatch server, e.g. https://fleetpatch.example.com')
    .addOption(new Option('--enroll-key-file <file>', 'read the enrollment key from FILE (e.g. mode 0600, deleted once enrolled)').conflicts('enrollKey'))
    .addOption(new Option('--enroll-key <key>', `the enrollment key itself (visible to every local user in ps: prefer --enroll-key-file or ${ENROLL_KEY_ENV})`))
    .option('--state-dir <dir>', 'identity (mode 0600) and report spool', defaults.stateDir)
    .option('--root <dir>', 'manage the system installed under DIR', '/')
    .option('--assess-only', 'refuse install jobs (what `fleetpatch dev` runs for its own machine)')
    .option('--boot-id-file <file>', `where the boot id is read (default: ${defaults.bootIdWrittenByAgent ? '<state-dir>\\boot-id, which the agent writes at start' : defaults.bootIdFile})`)
    .option('--reboot-command <command>', `how to reboot when a deployment calls for it (${process.platform === 'win32' ? 'cmd /c' : 'sh -c'})`, defaults.rebootCommand)
    .option('--ca-file <file>', "PEM CA certificate(s) the https:// server must be signed by (a private CA); without it the system's trust store is used")
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .addHelpText('after', `\nThe enrollment key comes from --enroll-key-file, else --enroll-key, else the environment variable\n${ENROLL_KEY_ENV}; an agent that already has its identity in --state-dir needs none.`)
    .action((options: RunOptions) => runCommand(options));
  parent
    .command('enroll')
    .description('enroll this machine with the server and print its machine id, then exit (what the install script runs before it starts the service); an enrolled machine prints its id')
    .requiredOption('--server <url>', 'the fleetpatch server, e.g. https://fleetpatch.example.com')
    .addOption(new Option('--enroll-key-file <file>', 'read the enrollment key from FILE').conflicts('enrollKey'))
    .addOption(new Option('--enroll-key <key>', `the enrollment key itself (visible in ps: prefer --enroll-key-file or ${ENROLL_KEY_ENV})`))
    .option('--state-dir <dir>', 'where the identity is kept', defaults.stateDir)
    .option('--root <dir>', 'the system installed under DIR', '/')
    .option('--ca-file <file>', "PEM CA certificate(s) the https:// server must be signed by; without it the system's trust store is used")
    .action((options: EnrollOptions) => enrollCommand(options));
  // Started by the agent itself during a self-update, from its previous executable: not for people.
  parent
    .command('upgrade-watchdog', { hidden: true })
    .description('puts the previous executable back if an upgraded agent does not check in in time')
    .requiredOption('--state-dir <dir>', 'the agent\'s state dir')
    .action((options: { stateDir: string }) => runUpgradeWatchdog(path.resolve(options.stateDir), createAgentLog('info')));
  parent
    .command('assess')
    .description('one assessment of this machine (or of the system under --root), printed; no server needed')
    .option('--root <dir>', 'assess the system installed under DIR', '/')
    .option('--json', 'print JSON')
    .action((options: { root: string; json?: boolean }) => assessCommand(options));
  return parent;
}

interface EnrollOptions {
  server: string;
  enrollKeyFile?: string;
  enrollKey?: string;
  stateDir: string;
  root: string;
  caFile?: string;
}

interface RunOptions {
  server: string;
  enrollKeyFile?: string;
  enrollKey?: string;
  stateDir: string;
  root: string;
  assessOnly?: boolean;
  bootIdFile?: string;
  rebootCommand: string;
  caFile?: string;
  logLevel: string;
}

const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/**
 * The enrollment key from --enroll-key-file, --enroll-key or FLEETPATCH_ENROLL_KEY, in that order.
 * A file readable by other users is used, with a warning: they could have read the key.
 */
export function enrollKeyFrom(options: { enrollKeyFile?: string; enrollKey?: string }, env: NodeJS.ProcessEnv, warn: (message: string) => void): string | undefined {
  if (options.enrollKeyFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(options.enrollKeyFile, 'utf8');
    } catch (error) {
      throw new AgentRefused(`--enroll-key-file ${options.enrollKeyFile} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}).`);
    }
    const key = text.trim();
    if (!key || /\s/.test(key)) throw new AgentRefused(`--enroll-key-file ${options.enrollKeyFile} must hold the enrollment key alone, on one line${key ? '' : '; it is empty'}.`);
    if (process.platform !== 'win32' && (fs.statSync(options.enrollKeyFile).mode & 0o077) !== 0) {
      warn(`${options.enrollKeyFile} can be read by other users than its owner: chmod 600 it (or delete it once the agent has enrolled).`);
    }
    return key;
  }
  if (options.enrollKey !== undefined) return options.enrollKey.trim() || undefined;
  return env[ENROLL_KEY_ENV]?.trim() || undefined;
}

async function runCommand(values: RunOptions): Promise<void> {
  const defaults = agentDefaults();
  if (!(LOG_LEVELS as readonly string[]).includes(values.logLevel)) throw new AgentRefused(`--log-level must be one of ${LOG_LEVELS.join(', ')}; got "${values.logLevel}".`);
  const ca = serverAndCa(values);
  const log = createAgentLog(values.logLevel as (typeof LOG_LEVELS)[number]);
  const stateDir = path.resolve(values.stateDir);
  const enrollKey = enrollKeyFrom(values, process.env, (message) => log('warn', message));
  if (!enrollKey && !loadIdentity(stateDir)) {
    throw new AgentRefused(`This agent is not enrolled yet (no identity in ${stateDir}): give it an enrollment key with --enroll-key-file FILE, the environment variable ${ENROLL_KEY_ENV}, or --enroll-key KEY.`);
  }
  const controller = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => controller.abort());
  let bootIdFile = values.bootIdFile;
  if (bootIdFile === undefined) {
    bootIdFile = defaults.bootIdWrittenByAgent ? path.join(stateDir, 'boot-id') : defaults.bootIdFile;
    if (defaults.bootIdWrittenByAgent) writeWindowsBootId(bootIdFile);
  }
  log('info', 'agent starting', { version, server: values.server, root: values.root, assessOnly: Boolean(values.assessOnly) });
  const ended = await Agent.start(
    {
      server: values.server,
      enrollKey,
      stateDir,
      root: path.resolve(values.root),
      assessOnly: Boolean(values.assessOnly),
      bootIdFile,
      rebootCommand: values.rebootCommand,
      env: process.env,
      log,
      ca,
      args: process.argv.slice(2),
    },
    controller.signal,
  );
  // After a self-update: the new executable takes over (started by the service manager, or already
  // by the agent); whatever this process still holds (idle connections) must not keep it alive.
  if (ended === 'RESTART') process.exit(0);
}

/** The --server URL checked, and the --ca-file's certificates, read. */
function serverAndCa(values: { server: string; caFile?: string }): Buffer | undefined {
  // An empty or schemeless URL would only fail at the first request, and be retried for good.
  if (!/^https?:\/\/[^/\s]+/.test(values.server)) {
    throw new AgentRefused(`--server must be the http:// or https:// URL of the fleetpatch server, e.g. https://fleetpatch.example.com; got ${JSON.stringify(values.server)}.`);
  }
  if (!values.caFile) return undefined;
  if (!values.server.startsWith('https://')) throw new AgentRefused(`--ca-file needs an https:// --server URL; got ${values.server}.`);
  let ca: Buffer;
  try {
    ca = fs.readFileSync(values.caFile);
  } catch (error) {
    throw new AgentRefused(`--ca-file ${values.caFile} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}).`);
  }
  if (!ca.toString('utf8').includes('-----BEGIN CERTIFICATE-----')) throw new AgentRefused(`--ca-file ${values.caFile} holds no PEM certificate.`);
  return ca;
}

/** Prints the machine id on stdout, alone on its line (scripts read it); what happened goes to stderr. */
async function enrollCommand(values: EnrollOptions): Promise<void> {
  const ca = serverAndCa(values);
  const log = createAgentLog('warn');
  const stateDir = path.resolve(values.stateDir);
  const defaults = agentDefaults();
  const enrolled = await enrollOnce({
    server: values.server,
    enrollKey: enrollKeyFrom(values, process.env, (message) => log('warn', message)),
    stateDir,
    root: path.resolve(values.root),
    bootIdFile: defaults.bootIdWrittenByAgent ? path.join(stateDir, 'boot-id') : defaults.bootIdFile,
    env: process.env,
    agentVersion: version,
    log,
    ca,
  });
  if (enrolled.already) process.stderr.write(`fleetpatch-agent: already enrolled (identity in ${stateDir}); the enrollment key was not used.\n`);
  process.stdout.write(`${enrolled.machineId}\n`);
}

async function assessCommand(values: { root: string; json?: boolean }): Promise<void> {
  const root = path.resolve(values.root);
  const backend = detectBackend(root);
  if (!backend) throw new AgentRefused(`No supported package manager (apt, dnf, yum, zypper) found for the system at ${root}.`);
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-assess-'));
  try {
    const report = await runAssessment(backend, { root, env: process.env, workDir }, 'COMMAND');
    const machine = gatherFacts({ root, agentVersion: version, packageManager: backend.name, bootIdFile: DEFAULT_BOOT_ID_FILE });
    if (report.error) {
      console.error(`Assessment failed (${report.error.code}): ${report.error.message}${report.error.output ? `\n${report.error.output}` : ''}`);
      process.exitCode = 1;
      return;
    }
    const result = report.result!;
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ machine, rebootPending: result.rebootPending, updates: result.updates, repositoryProblems: result.repositoryProblems }, null, 2)}\n`);
      return;
    }
    console.log(`${machine.hostname}: ${machine.osName} (${backend.name}), ${result.updates.length} pending update(s)${result.rebootPending ? ', reboot pending' : ''}`);
    for (const u of result.updates) {
      console.log(`  ${u.classification.padEnd(9)} ${u.name} ${u.installedVersion ?? '(new)'} -> ${u.availableVersion}${u.advisoryIds.length ? `  ${u.advisoryIds.join(',')}` : ''}`);
    }
    for (const p of result.repositoryProblems) console.log(`  repository problem: ${p.repository}: ${p.message}`);
    for (const w of machine.warnings) console.log(`  warning: ${w}`);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}
