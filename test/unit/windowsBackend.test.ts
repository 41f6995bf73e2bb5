import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectBackend } from '../../src/agent/backends/index.js';
import { BackendError, type BackendContext, type PendingUpdate } from '../../src/agent/backends/types.js';
import {
  assessmentOf,
  installOutcome,
  parseScriptOutput,
  updateIdOf,
  windowsBackend,
  windowsClassification,
  windowsSeverity,
} from '../../src/agent/backends/windows.js';
import { assessDocument, installDocument, statusDocument } from '../../src/agent/backends/windowsDocument.js';

// The Windows backend on recorded documents of its own script (test/fixtures/windows/): no
// Windows machine is reachable here. The documents are what windows.ps1 prints for those machines.

const FIXTURES = new URL('../fixtures/windows/', import.meta.url).pathname;
const fixture = (name: string) => fs.readFileSync(path.join(FIXTURES, name), 'utf8');
const assessed = (name: string) => assessmentOf(parseScriptOutput(assessDocument, fixture(name)));
const byName = (updates: PendingUpdate[]) => Object.fromEntries(updates.map((u) => [u.name, u]));

function backendError(run: () => unknown): BackendError {
  try {
    run();
  } catch (error) {
    if (error instanceof BackendError) return error;
    throw error;
  }
  throw new Error('expected a BackendError');
}

describe('an assessment from WSUS (every classification, superseded, hidden, no KB, a pending reboot)', () => {
  const result = assessed('assess-wsus.json');
  const updates = byName(result.updates);

  it('maps each WUA classification to its own and anything else (Drivers) to UPDATES', () => {
    expect(Object.fromEntries(result.updates.map((u) => [u.name, u.classification]))).toEqual({
      KB5031364: 'SECURITY',
      KB5032198: 'CRITICAL',
      KB890830: 'UPDATE_ROLLUP',
      KB5012170: 'FEATURE_PACK',
      KB5003279: 'SERVICE_PACK',
      KB2267602: 'DEFINITION',
      KB5020032: 'TOOLS',
      KB4052623: 'UPDATES',
      KB5031605: 'SECURITY',
      'KB5031605 (c9d0e1f2-a3b4-4cf5-96a7-b8c9d0e1f2a3)': 'SECURITY',
      'Intel Corporation - Net - 22.240.0.4': 'UPDATES',
    });
  });

  it("takes WUA's LastDeploymentChangeTime as the advisory's issue date, and leaves it out where the document has none", () => {
    expect(updates['KB5031364']!.advisoryIssuedAt).toBe('2023-10-10T17:00:00.000Z');
    expect('advisoryIssuedAt' in updates['KB5032198']!).toBe(false);
  });

  it('leaves out hidden updates and updates another pending one supersedes', () => {
    const titles = result.updates.map((u) => u.availableVersion);
    expect(titles).not.toContain('1b7a4a55-5c8e-4b8e-9f4a-0d3c9a4b2f01/1'); // September's cumulative update, superseded by October's
    expect(titles).not.toContain('e5f6a7b8-c9d0-4ebf-90c1-d2e3f4a5b6c7/200'); // the older definitions
    expect(updates['KB4481252']).toBeUndefined(); // hidden
    expect(updates['KB2267602']!.availableVersion).toBe('d4e5f6a7-b8c9-4dae-8fb0-c1d2e3f4a5b6/200');
  });

  it('names an update by its KB, or by its title when it has none, and keeps the WUA id to install it', () => {
    expect(updates['KB5031364']).toEqual({
      name: 'KB5031364',
      installedVersion: null,
      availableVersion: '6c9fb6ec-2f3d-4a1c-9d07-9a1f6c2a8e11/1',
      arch: null,
      classification: 'SECURITY',
      severity: 'CRITICAL',
      advisoryIds: ['KB5031364'],
      cveIds: ['CVE-2023-36434', 'CVE-2023-41774', 'CVE-2023-44487'],
      rebootSuggested: true,
      repository: 'WSUS http://wsus.corp.example:8530',
      advisoryIssuedAt: '2023-10-10T17:00:00.000Z',
    });
    const driver = updates['Intel Corporation - Net - 22.240.0.4']!;
    expect(driver.advisoryIds).toEqual([]);
    expect(updateIdOf(driver)).toBe('d0e1f2a3-b4c5-4d06-a7b8-c9d0e1f2a3b4');
  });

  it('gives a second update of the same KB a name of its own (one name per update in an assessment)', () => {
    expect(updates['KB5031605']!.availableVersion).toBe('b8c9d0e1-f2a3-4be4-85f6-a7b8c9d0e1f2/1');
    expect(updates['KB5031605 (c9d0e1f2-a3b4-4cf5-96a7-b8c9d0e1f2a3)']!.advisoryIds).toEqual(['KB5031605']);
    expect(new Set(result.updates.map((u) => u.name)).size).toBe(result.updates.length);
  });

  it('suggests a reboot for RebootBehavior 1 and 2, not 0; carries MSRC severities', () => {
    expect(updates['KB5032198']!.rebootSuggested).toBe(true); // can request a reboot
    expect(updates['KB890830']!.rebootSuggested).toBe(false);
    expect(updates['KB5031605']!.severity).toBe('IMPORTANT');
    expect(updates['KB5032198']!.severity).toBeNull();
  });

  it('reports the reboot Component Based Servicing has pending', () => {
    expect(result.rebootPending).toBe(true);
    expect(result.repositoryProblems).toEqual([]);
  });
});

describe('an assessment from Microsoft Update on a German server', () => {
  const result = assessed('assess-microsoft-update.json');
  const updates = byName(result.updates);

  it('decides classifications by category id, not the localised name', () => {
    expect(updates['KB5031361']!.classification).toBe('SECURITY'); // "Sicherheitsupdates"
    expect(updates['KB5031361']!.advisoryIds).toEqual(['KB5031361', 'MS23-OCT']);
    expect(updates['KB5031361']!.repository).toBe('Microsoft Update');
  });

  it('falls back to the English name, then to UPDATES when there is no classification at all', () => {
    expect(updates['KB4589208']!.classification).toBe('TOOLS');
    expect(updates['KB4589208']!.advisoryIds).toEqual(['KB4589208', 'KB4589210']);
    expect(updates['KB4589208']!.severity).toBe('LOW');
    expect(updates['Azure Connected Machine Agent <1.35> & extensions']!.classification).toBe('UPDATES');
  });

  it('has no reboot pending when none of the three sources says so', () => {
    expect(result.rebootPending).toBe(false);
  });

  it('reads a document that starts with a byte order mark (a PowerShell profile or host may add one)', () => {
    expect(assessmentOf(parseScriptOutput(assessDocument, `\uFEFF${fixture('assess-microsoft-update.json')}`)).updates).toHaveLength(3);
  });
});

describe('a failed search and a failed script', () => {
  it('names the WSUS server it could not reach and what to do, instead of reporting an empty list', () => {
    const error = backendError(() => assessed('assess-wsus-unreachable.json'));
    expect(error.code).toBe('COMMAND_FAILED');
    expect(error.message).toContain('WSUS http://wsus.corp.example:8530');
    expect(error.message).toContain('0x8024402C: the update server name could not be resolved');
    expect(error.message).toContain('group policy (WUServer)');
  });

  it('turns a fatal document into COMMAND_FAILED with the meaning of its HRESULT', () => {
    const error = backendError(() => parseScriptOutput(assessDocument, fixture('fatal-service-disabled.json')));
    expect(error.code).toBe('COMMAND_FAILED');
    expect(error.message).toContain('0x80070422: the Windows Update service (wuauserv) is disabled');
  });

  it('says when PowerShell would not run the script at all, and why when it is the execution policy', () => {
    const stderr =
      'File C:\\ProgramData\\fleetpatch-agent\\work\\fleetpatch-wua-3f2a.ps1 cannot be loaded. The file C:\\ProgramData\\fleetpatch-agent\\work\\fleetpatch-wua-3f2a.ps1 is not digitally signed. You cannot run this script on the current system.\r\n    + CategoryInfo          : SecurityError: (:) [], ParentContainsErrorRecordException\r\n';
    const error = backendError(() => parseScriptOutput(assessDocument, '', stderr));
    expect(error.code).toBe('COMMAND_FAILED');
    expect(error.message).toContain('is not digitally signed');
    expect(error.message).toContain('overrides -ExecutionPolicy Bypass');
    expect(backendError(() => parseScriptOutput(assessDocument, '')).message).toBe('The Windows Update script did not run: no output at all.');
  });

  it('refuses output that is not a document, or a document that drifted from the schema', () => {
    expect(backendError(() => parseScriptOutput(assessDocument, 'Search : The term "Search" is not recognized')).code).toBe('UNPARSEABLE_OUTPUT');
    const drifted = JSON.parse(fixture('assess-wsus.json')) as { updates: Array<Record<string, unknown>> };
    drifted.updates[0]!.kbIds = drifted.updates[0]!.kbArticleIds;
    delete drifted.updates[0]!.kbArticleIds;
    const error = backendError(() => parseScriptOutput(assessDocument, JSON.stringify(drifted)));
    expect(error.code).toBe('UNPARSEABLE_OUTPUT');
    expect(error.message).toContain('document.updates[0]: unexpected property "kbIds"');
    expect(backendError(() => parseScriptOutput(statusDocument, fixture('install-succeeded.json'))).message).toContain('document: unexpected property "results"');
  });
});

describe('install results', () => {
  const document = parseScriptOutput(installDocument, fixture('install-mixed.json'));
  const outcome = (updateId: string) => installOutcome(document.results.find((r) => r.updateId === updateId)!, { availableVersion: `${updateId}/1` }, false, 0);

  it('SUCCEEDED only for WUA result 2, with the reboot it needs', () => {
    expect(outcome('6c9fb6ec-2f3d-4a1c-9d07-9a1f6c2a8e11')).toEqual({
      status: 'SUCCEEDED',
      exitCode: 0,
      errorText: null,
      installedVersion: '6c9fb6ec-2f3d-4a1c-9d07-9a1f6c2a8e11/1',
      rebootRequired: true,
    });
  });

  it('FAILED with the HRESULT and its meaning for failures, "succeeded with errors" and updates never started', () => {
    expect(outcome('c1d2e3f4-a5b6-4c7d-9e8f-0a1b2c3d4e5f')).toMatchObject({ status: 'FAILED', errorText: "Windows Update failed: 0x80070643: the update's installer failed (ERROR_INSTALL_FAILURE)" });
    expect(outcome('b7c8d9e0-1f2a-4b3c-8d4e-5f6a7b8c9d0e').errorText).toBe(
      'Windows Update succeeded with errors: 0x800F0922: servicing failed (CBS_E_INSTALLERS_FAILED): often too little space in the System Reserved partition',
    );
    expect(outcome('0f3c7d1e-52a4-4e1b-b7a8-2c6f1d9e3a40').errorText).toContain('0x80240016: another installation is in progress or the machine must restart first');
    expect(outcome('0f3c7d1e-52a4-4e1b-b7a8-2c6f1d9e3a40').errorText).toContain('Exception from HRESULT: 0x80240016');
    expect(outcome('a3e1c2b4-6d5f-4e7a-8b9c-0d1e2f3a4b5c')).toMatchObject({ status: 'FAILED', installedVersion: null, errorText: expect.stringContaining('Not started: Windows Update does not offer this update any more') });
    expect(outcome('f6a7b8c9-d0e1-4fc0-a1d2-e3f4a5b6c7d8').errorText).toBe('Not started: The deadline passed before this update could start.');
  });

  it("takes the machine's reboot-required flag for every update of the run", () => {
    const failed = document.results.find((r) => r.resultCode === 4)!;
    expect(installOutcome(failed, { availableVersion: 'x/1' }, document.rebootRequired, 0).rebootRequired).toBe(true);
  });
});

describe('classification and severity mapping', () => {
  it('maps the eight WUA classification ids', () => {
    expect(windowsClassification({ id: 'E0789628-CE08-4437-BE74-2495B842F43B', name: 'Definitionsupdates' })).toBe('DEFINITION');
    expect(windowsClassification({ id: '3689bdc8-b205-4af4-8d4a-a63924c5e9d5', name: 'Upgrades' })).toBe('UPDATES');
    expect(windowsClassification(null)).toBe('UPDATES');
  });

  it('maps MSRC severities, ignoring case, and anything unknown to none', () => {
    expect([windowsSeverity('Critical'), windowsSeverity('important'), windowsSeverity('Moderate'), windowsSeverity('Low'), windowsSeverity('Unspecified'), windowsSeverity(null)]).toEqual([
      'CRITICAL',
      'IMPORTANT',
      'MODERATE',
      'LOW',
      null,
      null,
    ]);
  });

  it('refuses to install an update whose version is not a WUA id (an assessment from another backend)', () => {
    expect(backendError(() => updateIdOf({ name: 'openssl', availableVersion: '3.0.2-0ubuntu1.12' })).message).toContain('assess the machine again');
  });
});

describe('the backend, running a recorded PowerShell in place of Windows PowerShell', () => {
  let dir: string;
  let log: string;
  const ctx = (recorded: Record<string, string>, powershell = path.join(FIXTURES, 'recorded-powershell.mjs')): BackendContext => ({
    root: '/',
    workDir: dir,
    env: {
      ...process.env,
      FLEETPATCH_POWERSHELL: powershell,
      FLEETPATCH_RECORDED: JSON.stringify(Object.fromEntries(Object.entries(recorded).map(([mode, file]) => [mode, path.join(FIXTURES, file)]))),
      FLEETPATCH_RECORDED_LOG: log,
    },
  });
  const calls = () => fs.readFileSync(log, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as string[]);

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-windows-'));
    log = path.join(dir, 'calls.log');
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is the backend on Windows, whatever the root', () => {
    expect(detectBackend('/nonexistent', {}, 'win32')).toBe(windowsBackend);
    expect(detectBackend('/nonexistent', { PATH: '' }, 'linux')).toBeUndefined();
  });

  it('writes the script into its work folder and assesses with it', async () => {
    const result = await windowsBackend.assess(ctx({ Assess: 'assess-wsus.json' }));
    expect(result.updates).toHaveLength(11);
    const [args] = calls().slice(-1);
    expect(args!.slice(-2)).toEqual(['-Mode', 'Assess']);
    const written = fs.readFileSync(args![5]!, 'utf8');
    expect(written.charCodeAt(0)).toBe(0xfeff); // so Windows PowerShell 5.1 reads it as UTF-8
    expect(written.slice(1)).toBe(fs.readFileSync(new URL('../../src/agent/backends/windows.ps1', import.meta.url), 'utf8'));
  });

  it('fingerprints by the last successful install time (the 15-minute look)', async () => {
    expect(await windowsBackend.databaseFingerprint(ctx({ Status: 'status.json' }))).toBe('2023-09-13T02:41:07Z');
  });

  it('tells a pending reboot after an install job without a search', async () => {
    expect(await windowsBackend.rebootPending!(ctx({ Status: 'status.json' }))).toBe(true);
    expect(calls().slice(-1)[0]!.slice(-2)).toEqual(['-Mode', 'Status']);
  });

  it('installs one update by its WUA id before the deadline, streaming the progress lines', async () => {
    const lines: string[] = [];
    const update = byName(assessed('assess-wsus.json').updates)['KB5031364']!;
    const deadline = new Date('2030-01-01T03:00:00Z');
    const outcome = await windowsBackend.installUpdate(ctx({ Install: 'install-succeeded.json' }), update, (line) => lines.push(line), { deadline });
    expect(outcome).toMatchObject({ status: 'SUCCEEDED', exitCode: 0, rebootRequired: true });
    expect(calls().slice(-1)[0]!.slice(-6)).toEqual(['-Mode', 'Install', '-UpdateIds', '6c9fb6ec-2f3d-4a1c-9d07-9a1f6c2a8e11', '-Deadline', '2030-01-01T03:00:00.000Z']);
    expect(lines).toEqual(['installing 6c9fb6ec-2f3d-4a1c-9d07-9a1f6c2a8e11']);
  });

  it('reports a failed install as FAILED with the HRESULT', async () => {
    const update = byName(assessed('assess-wsus.json').updates)['KB5003279']!;
    const outcome = await windowsBackend.installUpdate(ctx({ Install: 'install-failed.json' }), update, () => undefined);
    expect(outcome).toMatchObject({ status: 'FAILED', installedVersion: null, rebootRequired: false });
    expect(outcome.errorText).toContain('0x80070643');
  });

  it('says which program is missing when there is no PowerShell', async () => {
    const error = await windowsBackend.assess(ctx({}, path.join(dir, 'no-such-powershell.exe'))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).code).toBe('NOT_INSTALLED');
    expect((error as BackendError).message).toContain('FLEETPATCH_POWERSHELL');
  });

  it('turns a fatal run (exit 1) into COMMAND_FAILED', async () => {
    const error = await windowsBackend.assess(ctx({ Assess: 'fatal-service-disabled.json' })).catch((e: unknown) => e);
    expect((error as BackendError).code).toBe('COMMAND_FAILED');
  });
});
