import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { exec, type ExecResult } from '../exec.js';
import {
  BackendError,
  type AssessmentResult,
  type BackendContext,
  type Classification,
  type InstallOptions,
  type PackageBackend,
  type PendingUpdate,
  type Severity,
  type UpdateOutcome,
} from './types.js';
import {
  assessDocument,
  DocumentError,
  fatalDocument,
  installDocument,
  statusDocument,
  type AssessDocument,
  type InstallDocument,
  type InstallResult,
  type StatusDocument,
  type ObjectSchema,
  type UpdateRecord,
  type UpdateSource,
} from './windowsDocument.js';
import { windowsScript } from './windowsScript.js';

/*
 * Windows Server through the Windows Update Agent API. The work is done by `windows.ps1`, which
 * the agent writes to its work folder and runs with Windows PowerShell; this module maps what the
 * script prints to the agent's vocabulary. The mapping is plain functions, tested on recorded
 * documents (test/fixtures/windows/): no Windows machine is reachable where this is built.
 */

// ---------------------------------------------------------------------------------------------
// Classifications and severities

/**
 * The WUA classification categories by their fixed ids (the same on every machine and WSUS server;
 * the names are localised, so the ids decide and the English names are only a fallback).
 */
export const CLASSIFICATION_IDS: Readonly<Record<string, Classification>> = {
  'e6cf1350-c01b-414d-a61f-263d14d133b4': 'CRITICAL',
  '0fa1201d-4330-4fa8-8ae9-b877473b6441': 'SECURITY',
  '28bc880e-0592-4cbf-8f95-c79b17911d5f': 'UPDATE_ROLLUP',
  'b54e7d24-7add-428f-8b75-90a396fa584f': 'FEATURE_PACK',
  '68c5b0a3-d1a6-4553-ae49-01d3a7827828': 'SERVICE_PACK',
  'e0789628-ce08-4437-be74-2495b842f43b': 'DEFINITION',
  'b4832bd8-e735-4761-8daf-37f882276dab': 'TOOLS',
  'cd5ffd1e-e932-4e3a-bf74-18bf0b1bbd83': 'UPDATES',
};

const CLASSIFICATION_NAMES: Readonly<Record<string, Classification>> = {
  'critical updates': 'CRITICAL',
  'security updates': 'SECURITY',
  'update rollups': 'UPDATE_ROLLUP',
  'feature packs': 'FEATURE_PACK',
  'service packs': 'SERVICE_PACK',
  'definition updates': 'DEFINITION',
  tools: 'TOOLS',
  updates: 'UPDATES',
};

/**
 * The seed's eight Windows classifications from the update's UpdateClassification category.
 * Anything else (Drivers, Upgrades, no category at all) counts as UPDATES: it is offered and
 * installable, and an operator selects it with the rest of the plain updates or by its KB.
 */
export function windowsClassification(category: { id: string; name: string } | null): Classification {
  if (!category) return 'UPDATES';
  return CLASSIFICATION_IDS[category.id.toLowerCase()] ?? CLASSIFICATION_NAMES[category.name.trim().toLowerCase()] ?? 'UPDATES';
}

const SEVERITIES: Readonly<Record<string, Severity>> = { critical: 'CRITICAL', important: 'IMPORTANT', moderate: 'MODERATE', low: 'LOW' };

/** The MSRC severity ("Critical", "Important", "Moderate", "Low"); null when Microsoft rates none. */
export function windowsSeverity(msrcSeverity: string | null): Severity | null {
  return msrcSeverity ? (SEVERITIES[msrcSeverity.trim().toLowerCase()] ?? null) : null;
}

export function sourceName(source: UpdateSource): string {
  switch (source.kind) {
    case 'WSUS':
      return `WSUS ${source.url ?? '(no URL)'}`;
    case 'MICROSOFT_UPDATE':
      return 'Microsoft Update';
    case 'WINDOWS_UPDATE':
      return 'Windows Update';
  }
}

// ---------------------------------------------------------------------------------------------
// Documents to the agent's vocabulary

/** `<update id>/<revision>`: what WUA needs to find the update again, kept as the available version. */
export function windowsVersion(record: Pick<UpdateRecord, 'updateId' | 'revision'>): string {
  return `${record.updateId}/${record.revision}`;
}

/** The WUA update id from an available version written by `windowsVersion`. */
export function updateIdOf(update: Pick<PendingUpdate, 'name' | 'availableVersion'>): string {
  const id = update.availableVersion.split('/')[0] ?? '';
  if (!/^[0-9a-f-]{36}$/i.test(id)) {
    throw new BackendError('COMMAND_FAILED', `${update.name}: "${update.availableVersion}" is not a Windows update id; assess the machine again and redeploy.`);
  }
  return id;
}

const kb = (id: string) => (/^KB/i.test(id) ? id.toUpperCase() : `KB${id}`);

/**
 * The pending updates of an assessment document. Hidden updates are dropped (the search excludes
 * them; a document that still has one is honoured), and so is an update that another pending
 * update supersedes: a WSUS server can approve both, and installing the newer one covers the older.
 * Named by the first KB id, or by the title when the update has none (some drivers and
 * third-party updates); a second update of the same KB gets its update id appended, since a name
 * identifies one update in an assessment.
 */
export function pendingUpdatesOf(document: AssessDocument): PendingUpdate[] {
  const visible = document.updates.filter((u) => !u.isHidden);
  const superseded = new Set(visible.flatMap((u) => u.supersededUpdateIds.map((id) => id.toLowerCase())));
  const names = new Set<string>();
  const repository = sourceName(document.updateSource);
  const updates: PendingUpdate[] = [];
  for (const record of visible) {
    if (superseded.has(record.updateId.toLowerCase())) continue;
    const kbIds = record.kbArticleIds.map(kb);
    let name = (kbIds[0] ?? record.title.trim()).slice(0, 250) || record.updateId;
    if (names.has(name)) name = `${name} (${record.updateId})`;
    names.add(name);
    updates.push({
      name,
      installedVersion: null,
      availableVersion: windowsVersion(record),
      arch: null,
      classification: windowsClassification(record.classification),
      severity: windowsSeverity(record.msrcSeverity),
      advisoryIds: [...kbIds, ...record.securityBulletinIds],
      cveIds: record.cveIds,
      // RebootBehavior 1 (always) and 2 (can request): plan the reboot reserve for both.
      rebootSuggested: record.rebootBehavior !== 0,
      repository,
      ...(record.lastDeploymentChangeTime && Number.isFinite(Date.parse(record.lastDeploymentChangeTime))
        ? { advisoryIssuedAt: new Date(record.lastDeploymentChangeTime).toISOString() }
        : {}),
    });
  }
  return updates;
}

/** Messages for the Windows Update errors seen most, with what to do; others keep WUA's own text. */
const HRESULT_MESSAGES: Readonly<Record<string, string>> = {
  '0x80240016': 'another installation is in progress or the machine must restart first (WU_E_INSTALL_NOT_ALLOWED)',
  '0x80240022': 'the operation failed for all the updates (WU_E_ALL_UPDATES_FAILED)',
  '0x8024001E': 'Windows Update or the machine was shutting down (WU_E_SERVICE_STOP)',
  '0x8024002E': 'policy forbids this machine to use a server other than its WSUS server (WU_E_WU_DISABLED)',
  '0x8024200D': 'the update must be downloaded again (WU_E_UH_NEEDANOTHERDOWNLOAD)',
  '0x8024401C': 'the update server timed out (WU_E_PT_HTTP_STATUS_REQUEST_TIMEOUT)',
  '0x8024402C': 'the update server name could not be resolved (WU_E_PT_WINHTTP_NAME_NOT_RESOLVED)',
  '0x80244022': 'the update server answered 503 Service Unavailable (WU_E_PT_HTTP_STATUS_SERVICE_UNAVAIL)',
  '0x80072EE2': 'the connection to the update server timed out',
  '0x80072EFD': 'the update server could not be reached',
  '0x80070005': 'access denied: run the agent as LocalSystem',
  '0x80070070': 'not enough space on the disk',
  '0x80070422': 'the Windows Update service (wuauserv) is disabled',
  '0x80070643': 'the update\'s installer failed (ERROR_INSTALL_FAILURE)',
  '0x800F0922': 'servicing failed (CBS_E_INSTALLERS_FAILED): often too little space in the System Reserved partition',
};

export function describeHResult(hresult: string | null, message: string | null): string {
  const code = hresult?.toUpperCase().replace(/^0X/, '0x') ?? null;
  const known = code ? HRESULT_MESSAGES[code] : undefined;
  const text = [known, message?.trim()].filter(Boolean).join('; ');
  return code ? `${code}${text ? `: ${text}` : ''}` : text || 'no error code';
}

const RESULT_CODES: Readonly<Record<number, string>> = { 0: 'not started', 1: 'still in progress', 2: 'succeeded', 3: 'succeeded with errors', 4: 'failed', 5: 'aborted' };

/**
 * One update's install result as the agent reports it. Only WUA's "succeeded" (2) is SUCCEEDED:
 * "succeeded with errors" (3) leaves the update's state uncertain, so it fails with that said, and
 * the next assessment shows whether it is installed.
 */
export function installOutcome(result: InstallResult, update: Pick<PendingUpdate, 'availableVersion'>, machineRebootRequired: boolean, exitCode: number | null): UpdateOutcome {
  const rebootRequired = result.rebootRequired || machineRebootRequired;
  if (result.started && result.resultCode === 2) {
    return { status: 'SUCCEEDED', exitCode, errorText: null, installedVersion: update.availableVersion, rebootRequired };
  }
  const what = result.started ? `Windows Update ${RESULT_CODES[result.resultCode] ?? `result ${result.resultCode}`}` : 'Not started';
  return { status: 'FAILED', exitCode, errorText: `${what}: ${describeHResult(result.hresult, result.message)}`, installedVersion: null, rebootRequired };
}

/** Windows Update, Component Based Servicing or a pending file rename: any of them means a reboot is due. */
export function anyRebootPending(pending: AssessDocument['rebootPending']): boolean {
  return pending.windowsUpdate || pending.componentBasedServicing || pending.pendingFileRenameOperations;
}

/** The assessment from a document: updates, and a reboot pending for any of the three reasons. */
export function assessmentOf(document: AssessDocument): AssessmentResult {
  if (document.searchError) {
    throw new BackendError(
      'COMMAND_FAILED',
      `Windows Update could not search ${sourceName(document.updateSource)}: ${describeHResult(document.searchError.hresult, document.searchError.message)}. ` +
        (document.updateSource.kind === 'WSUS'
          ? 'Check that this machine reaches the WSUS server set in group policy (WUServer), or remove the policy to use Microsoft Update.'
          : 'Check that this machine reaches Microsoft Update (directly or through its proxy), or set a WSUS server in group policy.'),
    );
  }
  return { rebootPending: anyRebootPending(document.rebootPending), updates: pendingUpdatesOf(document), repositoryProblems: [] };
}

/**
 * Parses what the script printed against the document schema of that mode. A fatal document
 * (the script failed as a whole) becomes COMMAND_FAILED with its error; anything else that does
 * not fit is UNPARSEABLE_OUTPUT with the text, so an operator sees what the script said.
 */
export function parseScriptOutput<T>(schema: ObjectSchema<T>, stdout: string, stderr = ''): T {
  if (stdout.replace(/^\uFEFF/, '').trim() === '') {
    // PowerShell refused the script before it ran: most often an execution policy set by group policy.
    const said = stderr.split(/\r?\n/).find((line) => line.trim() !== '')?.trim() ?? 'no output at all';
    const policy = /execution.?polic|not digitally signed|running scripts is disabled/i.test(stderr)
      ? ' The execution policy forbids it: a group policy that sets AllSigned or RemoteSigned overrides -ExecutionPolicy Bypass; sign the script or exempt the agent.'
      : '';
    throw new BackendError('COMMAND_FAILED', `The Windows Update script did not run: ${said}.${policy}`, { output: stderr });
  }
  let value: unknown;
  try {
    value = JSON.parse(stdout.replace(/^\uFEFF/, '').trim());
  } catch (error) {
    throw new BackendError('UNPARSEABLE_OUTPUT', `The Windows Update script printed no JSON document (${(error as Error).message}).`, { output: `${stdout}\n${stderr}`.trim() });
  }
  if (typeof value === 'object' && value !== null && 'fatal' in value) {
    const fatal = fatalDocument.parse(value, 'document');
    throw new BackendError('COMMAND_FAILED', `The Windows Update Agent failed: ${describeHResult(fatal.fatal.hresult, fatal.fatal.message)}.`, { output: stderr });
  }
  try {
    return schema.parse(value, 'document');
  } catch (error) {
    if (!(error instanceof DocumentError)) throw error;
    throw new BackendError('UNPARSEABLE_OUTPUT', `The Windows Update script's document does not match this agent: ${error.message}. Is the agent's script out of date?`, { output: stdout });
  }
}

// ---------------------------------------------------------------------------------------------
// Running the script

/** A full WUA search on a machine months behind can take this long; past it the search is stuck. */
const ASSESS_TIMEOUT_MS = 60 * 60_000;
const STATUS_TIMEOUT_MS = 5 * 60_000;

/** Windows PowerShell 5.1, on every Windows Server since 2016; FLEETPATCH_POWERSHELL names another. */
export function powershellOf(env: NodeJS.ProcessEnv): string {
  return env.FLEETPATCH_POWERSHELL?.trim() || 'powershell.exe';
}

/** Writes the script into the agent's private work folder (again only when its text changed). */
function scriptFile(ctx: BackendContext): string {
  const text = windowsScript();
  const file = path.join(ctx.workDir, `fleetpatch-wua-${createHash('sha256').update(text).digest('hex').slice(0, 12)}.ps1`);
  if (!fs.existsSync(file)) {
    // A BOM makes Windows PowerShell 5.1 read the file as UTF-8, not the ANSI code page.
    fs.writeFileSync(`${file}.partial`, `\uFEFF${text}`, { mode: 0o600 });
    fs.renameSync(`${file}.partial`, file);
  }
  return file;
}

async function runScript(ctx: BackendContext, args: string[], timeoutMs: number | undefined, onLine?: (line: string) => void): Promise<ExecResult> {
  const program = powershellOf(ctx.env);
  const argv = ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', scriptFile(ctx), ...args];
  try {
    return await exec(program, argv, { env: ctx.env, timeoutMs, onLine: onLine ? (line, stream) => stream === 'stderr' && onLine(line.replace(/\r$/, '')) : undefined });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new BackendError('NOT_INSTALLED', `${program} was not found: the Windows backend needs Windows PowerShell (or FLEETPATCH_POWERSHELL set to a PowerShell).`);
    }
    throw error;
  }
}

async function assess(ctx: BackendContext): Promise<AssessmentResult> {
  const run = await runScript(ctx, ['-Mode', 'Assess'], ASSESS_TIMEOUT_MS);
  return assessmentOf(parseScriptOutput(assessDocument, run.stdout, run.stderr));
}

async function installUpdate(ctx: BackendContext, update: PendingUpdate, onOutput: (line: string) => void, options: InstallOptions = {}): Promise<UpdateOutcome> {
  const args = ['-Mode', 'Install', '-UpdateIds', updateIdOf(update)];
  if (options.deadline) args.push('-Deadline', options.deadline.toISOString());
  const run = await runScript(ctx, args, undefined, onOutput);
  const document: InstallDocument = parseScriptOutput(installDocument, run.stdout, run.stderr);
  const result = document.results[0];
  if (!result) throw new BackendError('UNPARSEABLE_OUTPUT', 'The Windows Update script reported no result for the update it was given.', { output: run.stdout });
  return installOutcome(result, update, document.rebootRequired, run.exitCode);
}

/**
 * The last successful install time, as WUA records it: it changes when anything installs updates
 * (Windows Update itself, an administrator, WSUS), which is when the agent assesses again.
 */
async function databaseFingerprint(ctx: BackendContext): Promise<string> {
  return (await status(ctx)).lastInstallSuccess ?? 'never';
}

async function status(ctx: BackendContext): Promise<StatusDocument> {
  const run = await runScript(ctx, ['-Mode', 'Status'], STATUS_TIMEOUT_MS);
  return parseScriptOutput(statusDocument, run.stdout, run.stderr);
}

/** Whether the machine needs a reboot, without the minutes a full search takes (asked after an install job). */
async function rebootPending(ctx: BackendContext): Promise<boolean> {
  return anyRebootPending((await status(ctx)).rebootPending);
}

export const windowsBackend: PackageBackend = {
  name: 'windows',
  assess,
  installUpdate,
  databaseFingerprint,
  rebootPending,
};
