/**
 * The agent's self-update, as decisions on plain data (src/agent/upgrade.ts does the I/O): whether
 * an upgrade may start, what a download or the new executable's first answer means, how the agent
 * restarts, and what an agent finds after a restart. Each failure is a result with a stable code
 * and a message that says what happened and that the running agent was left alone.
 *
 * The sequence: verify the release's signature with the pinned key, download and hash, ask the new
 * executable its version, keep the running one as `<executable>.previous`, rename the new one over
 * it, leave a watchdog (the previous executable) behind, restart. The new agent confirms once it has
 * checked in; if it has not within `rollbackAfterSeconds`, the watchdog puts the previous one back.
 */
import type { UpgradeArtifact, UpgradeCommand, UpgradeReport } from './protocol.js';
import { keyFingerprint } from './release.js';

export type AgentPlatform = 'linux-x64' | 'linux-arm64' | 'windows-x64';

export function agentPlatform(platform: string, arch: string): AgentPlatform | null {
  if (platform === 'linux' && arch === 'x64') return 'linux-x64';
  if (platform === 'linux' && arch === 'arm64') return 'linux-arm64';
  if (platform === 'win32' && arch === 'x64') return 'windows-x64';
  return null;
}

/**
 * The file to replace when the agent upgrades itself: its own executable when it is one of the
 * self-contained executables (Bun runs their code from a virtual `/$bunfs/` or `B:\~BUN\` path),
 * null when it is the .mjs bundle on a Node.js, whose `node` must never be replaced.
 */
export function selfExecutable(argv: readonly string[], execPath: string): string | null {
  const main = argv[1] ?? '';
  return main.startsWith('/$bunfs/') || /^B:[\\/]~BUN[\\/]/.test(main) ? execPath : null;
}

/**
 * SUPERVISOR: the agent exits and its service manager starts the new executable (systemd's
 * Restart=always; systemd sets INVOCATION_ID for every service it runs). RELAUNCH: nobody would
 * start it again, so the agent starts the new executable itself, detached, and exits.
 * FLEETPATCH_AGENT_SUPERVISED=1 or 0 says so for other supervisors (runit, a container's restart
 * policy, a scheduled task).
 */
export function restartMode(env: NodeJS.ProcessEnv): 'SUPERVISOR' | 'RELAUNCH' {
  const said = env.FLEETPATCH_AGENT_SUPERVISED?.trim().toLowerCase();
  if (said === '1' || said === 'true' || said === 'yes') return 'SUPERVISOR';
  if (said === '0' || said === 'false' || said === 'no') return 'RELAUNCH';
  return env.INVOCATION_ID ? 'SUPERVISOR' : 'RELAUNCH';
}

export type UpgradeOutcome = Pick<UpgradeReport, 'status' | 'code' | 'message'>;

const failed = (code: string, message: string): UpgradeOutcome => ({ status: 'FAILED', code, message });

export interface UpgradeStart {
  command: UpgradeCommand;
  runningVersion: string;
  platform: AgentPlatform | null;
  /** selfExecutable(): null when the agent runs as a script. */
  executable: string | null;
  pinnedKey: string | null;
  /** The install job running or waiting, if any. */
  installJob: string | null;
}

/** An install job runs, waits in the queue or is kept unfinished in the state dir: no upgrade now (the server asks again later). */
export function busyOutcome(jobId: string): UpgradeOutcome {
  return { status: 'BUSY', code: 'INSTALL_JOB_RUNNING', message: `The agent has install job ${jobId} running or not finished yet: it upgrades only between jobs, and upgraded nothing.` };
}

/**
 * Whether an upgrade may begin, before anything is downloaded: the artifact to fetch, or the
 * outcome that ends it at once (the running agent goes on unchanged either way).
 */
export function upgradeStart(input: UpgradeStart, signatureValid: (artifact: UpgradeArtifact, publicKey: string) => boolean): { artifact: UpgradeArtifact } | { outcome: UpgradeOutcome } {
  const { command, runningVersion } = input;
  if (input.installJob) return { outcome: busyOutcome(input.installJob) };
  if (command.version === runningVersion) return { outcome: { status: 'SUCCEEDED', code: 'ALREADY_CURRENT', message: `The agent already runs version ${runningVersion}.` } };
  if (!input.executable) {
    return { outcome: failed('NOT_SUPPORTED', 'This agent runs as the .mjs bundle on a Node.js, which it cannot replace: upgrade it the way it was installed (or install the fleetpatch-agent package).') };
  }
  if (input.platform === 'windows-x64') return { outcome: failed('NOT_SUPPORTED', 'Self-update of the Windows agent is not built yet: install the new version with install-windows-agent.ps1.') };
  if (!input.platform) return { outcome: failed('NOT_SUPPORTED', 'No fleetpatch-agent executable is built for this operating system and CPU.') };
  const artifact = command.artifacts.find((a) => a.platform === input.platform);
  if (!artifact) return { outcome: failed('NO_ARTIFACT', `The server has no ${input.platform} executable of version ${command.version} to offer.`) };
  if (artifact.version !== command.version) return { outcome: failed('BAD_COMMAND', `The ${input.platform} executable offered is version ${artifact.version}, not the ${command.version} asked for.`) };
  if (!input.pinnedKey) {
    return { outcome: failed('NO_PINNED_KEY', 'This agent pinned no release key at enrollment (the server had none then), so it cannot tell a genuine release from another: it upgrades nothing.') };
  }
  if (!signatureValid(artifact, input.pinnedKey)) {
    return {
      outcome: failed(
        'BAD_SIGNATURE',
        `The signature of version ${command.version} (${input.platform}, sha256 ${artifact.sha256}) does not verify with the release key this agent pinned (${keyFingerprint(input.pinnedKey)}): nothing was downloaded or replaced.`,
      ),
    };
  }
  return { artifact };
}

/** The downloaded file against the signed description; null when they match. */
export function downloadProblem(artifact: UpgradeArtifact, received: { sha256: string; size: number }): UpgradeOutcome | null {
  if (received.size !== artifact.size || received.sha256.toLowerCase() !== artifact.sha256.toLowerCase()) {
    return failed(
      'HASH_MISMATCH',
      `The download of version ${artifact.version} has sha256 ${received.sha256} (${received.size} bytes), but the signed release says ${artifact.sha256} (${artifact.size} bytes): it was altered or damaged on its way; nothing was replaced.`,
    );
  }
  return null;
}

/** The new executable asked `--version` before it replaces anything; null when it answers with the version expected. */
export function startupCheckProblem(expectedVersion: string, answer: { exitCode: number | null; signal: string | null; stdout: string; stderr: string; timedOut: boolean }): UpgradeOutcome | null {
  const said = answer.stdout.trim();
  if (answer.exitCode === 0 && said === expectedVersion) return null;
  const how = answer.timedOut
    ? 'did not answer within its time'
    : answer.exitCode === 0
      ? `answered "${said.slice(0, 100)}" instead of ${expectedVersion}`
      : `exited ${answer.signal ? `on ${answer.signal}` : `with code ${answer.exitCode}`}${answer.stderr.trim() ? `: ${answer.stderr.trim().split('\n').slice(-3).join(' / ').slice(0, 500)}` : ''}`;
  return failed('STARTUP_CHECK_FAILED', `The new executable (version ${expectedVersion}) ${how} when asked its version; nothing was replaced.`);
}

/**
 * An upgrade between the swap and its confirmation, kept in the state dir (upgrade.json). Whoever
 * decides how it ended (the new agent once it checked in, or the watchdog at the deadline) claims
 * it by renaming the file away, so exactly one of them does.
 */
export interface UpgradeRecord {
  commandId: string;
  fromVersion: string;
  toVersion: string;
  executable: string;
  previous: string;
  /** The arguments the agent runs with, to start it again (RELAUNCH). */
  args: string[];
  restart: 'SUPERVISOR' | 'RELAUNCH';
  swappedAt: string;
  deadline: string;
  /** Processes of the new version that started (it records itself), so a hung one can be stopped. */
  newPids: number[];
}

/** The watchdog, every second until the record is claimed: wait, or put the previous executable back. */
export function watchdogDecision(record: UpgradeRecord, nowMs: number): 'WAIT' | 'ROLL_BACK' {
  return nowMs >= Date.parse(record.deadline) ? 'ROLL_BACK' : 'WAIT';
}

export function rollbackOutcome(record: UpgradeRecord): UpgradeOutcome {
  const seconds = Math.round((Date.parse(record.deadline) - Date.parse(record.swappedAt)) / 1000);
  const starts = record.newPids.length;
  const seen = starts === 0 ? 'it never got as far as starting its own code' : `it started ${starts} time${starts === 1 ? '' : 's'} and never checked in`;
  return {
    status: 'ROLLED_BACK',
    code: 'NO_CHECK_IN',
    message: `Version ${record.toVersion} did not check in within ${seconds} s of the swap (${seen}): the previous executable, version ${record.fromVersion}, was put back and runs again.`,
  };
}

/**
 * What a starting agent does with an open upgrade record: the new version confirms once it has
 * checked in; the previous version running with the record still open means the new one never
 * took over (a relaunch that failed), which ends it as a rollback; any other version replaced both
 * (a package installed meanwhile).
 */
export function upgradeAtStart(record: UpgradeRecord | undefined, runningVersion: string): 'NONE' | 'CONFIRM_AFTER_CHECK_IN' | { claim: UpgradeOutcome } {
  if (!record) return 'NONE';
  if (runningVersion === record.toVersion) return 'CONFIRM_AFTER_CHECK_IN';
  if (runningVersion === record.fromVersion) {
    return { claim: { status: 'ROLLED_BACK', code: 'NO_CHECK_IN', message: `Version ${record.toVersion} never took over: version ${record.fromVersion} started again with the upgrade still open.` } };
  }
  return { claim: failed('SUPERSEDED', `Version ${runningVersion} replaced the executable while the upgrade from ${record.fromVersion} to ${record.toVersion} was being confirmed.`) };
}

export function confirmedOutcome(record: UpgradeRecord): UpgradeOutcome {
  return { status: 'SUCCEEDED', code: 'UPGRADED', message: `Upgraded from version ${record.fromVersion} to ${record.toVersion}; the new agent checked in.` };
}
