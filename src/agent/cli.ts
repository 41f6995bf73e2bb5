import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { version } from '../version.js';
import { runAssessment } from './assess.js';
import { detectBackend } from './backends/index.js';
import { writeWindowsBootId } from './backends/windowsFacts.js';
import { gatherFacts } from './facts.js';
import { createAgentLog } from './log.js';
import { AgentRefused } from './errors.js';
import { Agent } from './runner.js';

const USAGE = `fleetpatch agent: the program on each managed machine

  fleetpatch agent run --server URL [--enroll-key KEY] [--state-dir DIR] [--root DIR]
                       [--assess-only] [--boot-id-file FILE] [--reboot-command CMD]
                       [--ca-file FILE] [--log-level LEVEL]
      Enrolls once (the key is needed only the first time), then checks in, assesses on the
      server's cadence and on demand, and reports. Runs until SIGINT/SIGTERM.

  fleetpatch agent assess [--root DIR] [--json]
      One assessment of this machine (or of the system under DIR), printed; no server needed.

  --root DIR         manage the system installed under DIR (default /)
  --state-dir DIR    identity (mode 0600) and report spool (default /var/lib/fleetpatch-agent;
                     Windows: %ProgramData%\\fleetpatch-agent)
  --ca-file FILE     PEM CA certificate(s) the https:// server must be signed by (a private CA);
                     without it the system's trust store is used
  --assess-only      refuse install jobs (what \`fleetpatch dev\` runs for its own machine)
  --boot-id-file F   where the boot id is read (default /proc/sys/kernel/random/boot_id; Windows:
                     the agent writes the boot time to <state-dir>\\boot-id)
  --reboot-command C how to reboot when a deployment calls for it (sh -c; default
                     "shutdown -r +1 'fleetpatch: rebooting after installing updates'"; Windows: cmd /c,
                     'shutdown /r /t 60 /d p:2:17 /c "fleetpatch: rebooting after installing updates"')`;

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

export async function agentCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'run') return runCommand(rest);
  if (sub === 'assess') return assessCommand(rest);
  console.log(USAGE);
  if (sub !== undefined && sub !== '--help' && sub !== 'help') process.exitCode = 2;
}

async function runCommand(argv: string[]): Promise<void> {
  const defaults = agentDefaults();
  const { values } = parseArgs({
    args: argv,
    options: {
      server: { type: 'string' },
      'enroll-key': { type: 'string' },
      'state-dir': { type: 'string' },
      root: { type: 'string', default: '/' },
      'assess-only': { type: 'boolean', default: false },
      'boot-id-file': { type: 'string' },
      'reboot-command': { type: 'string', default: defaults.rebootCommand },
      'log-level': { type: 'string', default: 'info' },
      'ca-file': { type: 'string' },
    },
    strict: true,
  });
  if (!values.server) throw new AgentRefused('--server URL is required (the fleetpatch server, e.g. https://fleetpatch.example.com).');
  let ca: Buffer | undefined;
  if (values['ca-file']) {
    if (!values.server.startsWith('https://')) throw new AgentRefused(`--ca-file needs an https:// --server URL; got ${values.server}.`);
    try {
      ca = fs.readFileSync(values['ca-file']);
    } catch (error) {
      throw new AgentRefused(`--ca-file ${values['ca-file']} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}).`);
    }
    if (!ca.toString('utf8').includes('-----BEGIN CERTIFICATE-----')) throw new AgentRefused(`--ca-file ${values['ca-file']} holds no PEM certificate.`);
  }
  const log = createAgentLog(values['log-level'] as 'info');
  const controller = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => controller.abort());
  const stateDir = path.resolve(values['state-dir'] ?? defaults.stateDir);
  let bootIdFile = values['boot-id-file'];
  if (bootIdFile === undefined) {
    bootIdFile = defaults.bootIdWrittenByAgent ? path.join(stateDir, 'boot-id') : defaults.bootIdFile;
    if (defaults.bootIdWrittenByAgent) writeWindowsBootId(bootIdFile);
  }
  log('info', 'agent starting', { version, server: values.server, root: values.root, assessOnly: values['assess-only'] });
  await Agent.start(
    {
      server: values.server,
      enrollKey: values['enroll-key'],
      stateDir,
      root: path.resolve(values.root),
      assessOnly: values['assess-only'],
      bootIdFile,
      rebootCommand: values['reboot-command'],
      env: process.env,
      log,
      ca,
    },
    controller.signal,
  );
}

async function assessCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { root: { type: 'string', default: '/' }, json: { type: 'boolean', default: false } }, strict: true });
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
