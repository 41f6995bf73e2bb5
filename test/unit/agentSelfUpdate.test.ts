import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { UpgradeArtifact, UpgradeCommand } from '../../src/agent/protocol.js';
import { keyFingerprint, nextPinnedKey, releaseStatement, verifyStatement } from '../../src/agent/release.js';
import {
  agentPlatform,
  confirmedOutcome,
  downloadProblem,
  restartMode,
  rollbackOutcome,
  selfExecutable,
  startupCheckProblem,
  upgradeAtStart,
  upgradeStart,
  watchdogDecision,
  type UpgradeRecord,
  type UpgradeStart,
} from '../../src/agent/selfUpdate.js';
import type { AgentClient } from '../../src/agent/client.js';
import { AgentUpgrader } from '../../src/agent/upgrade.js';
import { ensureReleaseKey, readReleaseKey, releaseKeyOffer, rotateReleaseKey, signArtifact } from '../../src/release/signingKey.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-self-update-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const key = ensureReleaseKey(path.join(work, 'release-key.json')).key;
const other = ensureReleaseKey(path.join(work, 'other-key.json')).key;

function artifact(over: Partial<UpgradeArtifact> = {}, signer = key): UpgradeArtifact {
  const base = { version: '0.2.0', platform: 'linux-x64', sha256: 'ab'.repeat(32), size: 1000, ...over };
  return { path: '/agent/download/fleetpatch-agent-linux-x64', ...base, signature: over.signature ?? signArtifact(signer, base) };
}

const command = (artifacts: UpgradeArtifact[] = [artifact()]): UpgradeCommand => ({ version: '0.2.0', rollbackAfterSeconds: 180, artifacts });
const verify = (a: UpgradeArtifact, publicKey: string) => verifyStatement(publicKey, releaseStatement(a), a.signature);

function start(over: Partial<UpgradeStart> = {}) {
  return upgradeStart({ command: command(), runningVersion: '0.1.0', platform: 'linux-x64', executable: '/usr/bin/fleetpatch-agent', pinnedKey: key.publicKey, installJob: null, ...over }, verify);
}

describe('the release signature', () => {
  it('verifies what the key signed, and nothing else: another version, platform, size or hash, another key, a damaged signature', () => {
    const a = artifact();
    expect(verify(a, key.publicKey)).toBe(true);
    expect(verify({ ...a, version: '0.2.1' }, key.publicKey)).toBe(false);
    expect(verify({ ...a, platform: 'linux-arm64' }, key.publicKey)).toBe(false);
    expect(verify({ ...a, size: 1001 }, key.publicKey)).toBe(false);
    expect(verify({ ...a, sha256: 'cd'.repeat(32) }, key.publicKey)).toBe(false);
    expect(verify(a, other.publicKey)).toBe(false);
    expect(verify({ ...a, signature: a.signature.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) }, key.publicKey)).toBe(false);
    expect(verify({ ...a, signature: 'not base64 at all' }, key.publicKey)).toBe(false);
    expect(verifyStatement('not a key', releaseStatement(a), a.signature)).toBe(false);
  });

  it('fingerprints a key as ssh does (SHA256: and unpadded base64)', () => {
    expect(keyFingerprint(key.publicKey)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(keyFingerprint(key.publicKey)).toBe(key.fingerprint);
  });
});

describe('following a rotation of the release key', () => {
  it('moves the pin along endorsements from the pinned key, over several rotations; a key nobody endorsed is refused', () => {
    const file = path.join(work, 'rotating.json');
    const first = ensureReleaseKey(file).key;
    rotateReleaseKey(file);
    const third = rotateReleaseKey(file).key;
    expect(readReleaseKey(file)!.endorsements).toHaveLength(2);

    expect(nextPinnedKey(first.publicKey, releaseKeyOffer(third))).toEqual({ publicKey: third.publicKey, rotated: 2 });
    expect(nextPinnedKey(third.publicKey, releaseKeyOffer(third))).toEqual({ publicKey: third.publicKey, rotated: 0 });
    // A server whose key was replaced, not rotated: the agent keeps its pin and says why.
    expect(nextPinnedKey(first.publicKey, releaseKeyOffer(other))).toEqual({
      problem: `the server's release key ${other.fingerprint} is not endorsed by the key this agent pinned (${first.fingerprint}): it keeps the pinned key, and refuses upgrades signed by any other`,
    });
    // An endorsement forged by another key does not count.
    const forged = { ...releaseKeyOffer(other), endorsements: [{ publicKey: other.publicKey, signedBy: first.fingerprint, signature: signArtifact(other, { version: 'x', platform: 'y', sha256: 'z', size: 1 }) }] };
    expect(nextPinnedKey(first.publicKey, forged)).toHaveProperty('problem');
  });

  it('keeps the key file readable by its owner only, and a second process finds the first one\'s key', () => {
    const file = path.join(work, 'owner-only', 'key.json');
    const made = ensureReleaseKey(file);
    expect(made.created).toBe(true);
    expect((fs.statSync(file).mode & 0o777).toString(8)).toBe('600');
    expect(ensureReleaseKey(file)).toMatchObject({ created: false, key: { fingerprint: made.key.fingerprint } });
  });
});

describe('whether an upgrade may begin', () => {
  it('begins with a genuine release for this platform', () => {
    expect(start()).toEqual({ artifact: command().artifacts[0] });
  });

  it.each<[string, Partial<UpgradeStart>, { status: string; code: string; message: RegExp }]>([
    ['an install job is running or waiting', { installJob: 'job-1' }, { status: 'BUSY', code: 'INSTALL_JOB_RUNNING', message: /install job job-1 running or not finished yet: it upgrades only between jobs, and upgraded nothing/ }],
    ['it already runs the version', { runningVersion: '0.2.0' }, { status: 'SUCCEEDED', code: 'ALREADY_CURRENT', message: /already runs version 0\.2\.0/ }],
    ['it is the .mjs bundle on Node.js', { executable: null }, { status: 'FAILED', code: 'NOT_SUPPORTED', message: /\.mjs bundle on a Node\.js/ }],
    ['it runs on Windows', { platform: 'windows-x64' }, { status: 'FAILED', code: 'NOT_SUPPORTED', message: /Windows agent is not built yet/ }],
    ['no executable exists for its platform', { platform: null }, { status: 'FAILED', code: 'NOT_SUPPORTED', message: /No fleetpatch-agent executable/ }],
    ['the server has none for its platform', { platform: 'linux-arm64' }, { status: 'FAILED', code: 'NO_ARTIFACT', message: /no linux-arm64 executable of version 0\.2\.0/ }],
    ['it pinned no key', { pinnedKey: null }, { status: 'FAILED', code: 'NO_PINNED_KEY', message: /pinned no release key/ }],
    ['the release is signed by another key', { pinnedKey: other.publicKey }, { status: 'FAILED', code: 'BAD_SIGNATURE', message: new RegExp(`does not verify with the release key this agent pinned \\(${other.fingerprint.replace(/[+/]/g, '\\$&')}\\): nothing was downloaded or replaced`) }],
  ])('ends at once when %s', (_, over, expected) => {
    const outcome = start(over);
    expect(outcome).toHaveProperty('outcome');
    const { status, code, message } = (outcome as { outcome: { status: string; code: string; message: string } }).outcome;
    expect({ status, code }).toEqual({ status: expected.status, code: expected.code });
    expect(message).toMatch(expected.message);
  });

  it('refuses a signature over other values than the command carries (a tampered command)', () => {
    const genuine = artifact();
    expect(start({ command: command([{ ...genuine, sha256: 'ef'.repeat(32) }]) })).toMatchObject({ outcome: { code: 'BAD_SIGNATURE' } });
  });
});

describe('the downloaded file and the new executable\'s first answer', () => {
  it('takes a download whose hash and size are those signed, and names both when they are not', () => {
    const a = artifact();
    expect(downloadProblem(a, { sha256: a.sha256.toUpperCase(), size: a.size })).toBeNull();
    expect(downloadProblem(a, { sha256: 'cd'.repeat(32), size: 1000 })).toEqual({
      status: 'FAILED',
      code: 'HASH_MISMATCH',
      message: `The download of version 0.2.0 has sha256 ${'cd'.repeat(32)} (1000 bytes), but the signed release says ${'ab'.repeat(32)} (1000 bytes): it was altered or damaged on its way; nothing was replaced.`,
    });
    expect(downloadProblem(a, { sha256: a.sha256, size: 999 })).toMatchObject({ code: 'HASH_MISMATCH' });
  });

  it('takes an executable that says the version expected, and says how any other failed', () => {
    const ok = { exitCode: 0, signal: null, stdout: '0.2.0\n', stderr: '', timedOut: false };
    expect(startupCheckProblem('0.2.0', ok)).toBeNull();
    expect(startupCheckProblem('0.2.0', { ...ok, stdout: '0.1.9\n' })?.message).toBe('The new executable (version 0.2.0) answered "0.1.9" instead of 0.2.0 when asked its version; nothing was replaced.');
    expect(startupCheckProblem('0.2.0', { ...ok, exitCode: 127, stdout: '', stderr: 'error while loading shared libraries: libfoo.so.1\n' })?.message).toBe(
      'The new executable (version 0.2.0) exited with code 127: error while loading shared libraries: libfoo.so.1 when asked its version; nothing was replaced.',
    );
    expect(startupCheckProblem('0.2.0', { ...ok, exitCode: null, signal: 'SIGSEGV', stdout: '' })?.code).toBe('STARTUP_CHECK_FAILED');
    expect(startupCheckProblem('0.2.0', { ...ok, exitCode: null, signal: 'SIGKILL', stdout: '', timedOut: true })?.message).toMatch(/did not answer within its time/);
  });
});

describe('the restart, the watchdog and the next start', () => {
  it('knows the self-contained executable (Bun runs it from /$bunfs/) from the bundle on Node.js', () => {
    expect(selfExecutable(['bun', '/$bunfs/root/fleetpatch-agent', 'run'], '/usr/bin/fleetpatch-agent')).toBe('/usr/bin/fleetpatch-agent');
    expect(selfExecutable(['bun', 'B:\\~BUN\\root\\fleetpatch-agent.exe'], 'C:\\Program Files\\fleetpatch-agent\\bin\\fleetpatch-agent.exe')).toBe('C:\\Program Files\\fleetpatch-agent\\bin\\fleetpatch-agent.exe');
    expect(selfExecutable(['/usr/bin/node', '/opt/fleetpatch-agent.mjs', 'run'], '/usr/bin/node')).toBeNull();
    expect(agentPlatform('linux', 'x64')).toBe('linux-x64');
    expect(agentPlatform('linux', 'arm64')).toBe('linux-arm64');
    expect(agentPlatform('win32', 'x64')).toBe('windows-x64');
    expect(agentPlatform('darwin', 'arm64')).toBeNull();
  });

  it('exits for its supervisor under systemd (INVOCATION_ID) or when told, and starts the new executable itself otherwise', () => {
    expect(restartMode({ INVOCATION_ID: 'abc' })).toBe('SUPERVISOR');
    expect(restartMode({})).toBe('RELAUNCH');
    expect(restartMode({ FLEETPATCH_AGENT_SUPERVISED: '1' })).toBe('SUPERVISOR');
    expect(restartMode({ INVOCATION_ID: 'abc', FLEETPATCH_AGENT_SUPERVISED: 'no' })).toBe('RELAUNCH');
  });

  const record: UpgradeRecord = {
    commandId: 'c1',
    fromVersion: '0.1.0',
    toVersion: '0.2.0',
    executable: '/usr/bin/fleetpatch-agent',
    previous: '/usr/bin/fleetpatch-agent.previous',
    args: ['run', '--server', 'https://fleetpatch.test'],
    restart: 'SUPERVISOR',
    swappedAt: '2026-01-01T00:00:00.000Z',
    deadline: '2026-01-01T00:03:00.000Z',
    newPids: [],
  };

  it('rolls back at the deadline, not before, and says how far the new version got', () => {
    expect(watchdogDecision(record, Date.parse('2026-01-01T00:02:59.999Z'))).toBe('WAIT');
    expect(watchdogDecision(record, Date.parse('2026-01-01T00:03:00.000Z'))).toBe('ROLL_BACK');
    expect(rollbackOutcome(record)).toEqual({
      status: 'ROLLED_BACK',
      code: 'NO_CHECK_IN',
      message: 'Version 0.2.0 did not check in within 180 s of the swap (it never got as far as starting its own code): the previous executable, version 0.1.0, was put back and runs again.',
    });
    expect(rollbackOutcome({ ...record, newPids: [10, 11] }).message).toContain('(it started 2 times and never checked in)');
  });

  it('at start: the new version confirms after its check-in; the old one, or a third, closes the upgrade', () => {
    expect(upgradeAtStart(undefined, '0.1.0')).toBe('NONE');
    expect(upgradeAtStart(record, '0.2.0')).toBe('CONFIRM_AFTER_CHECK_IN');
    expect(upgradeAtStart(record, '0.1.0')).toEqual({ claim: { status: 'ROLLED_BACK', code: 'NO_CHECK_IN', message: 'Version 0.2.0 never took over: version 0.1.0 started again with the upgrade still open.' } });
    expect(upgradeAtStart(record, '0.3.0')).toMatchObject({ claim: { status: 'FAILED', code: 'SUPERSEDED' } });
    expect(confirmedOutcome(record)).toEqual({ status: 'SUCCEEDED', code: 'UPGRADED', message: 'Upgraded from version 0.1.0 to 0.2.0; the new agent checked in.' });
  });
});

describe('an upgrade command handed out again', () => {
  it('is not run a second time while its outcome waits on disk to be delivered (a started agent gets its open commands again)', async () => {
    const stateDir = fs.mkdtempSync(path.join(work, 'state-'));
    const executable = path.join(work, 'fleetpatch-agent');
    fs.writeFileSync(executable, '');
    const commandId = '0b9c7a52-8e3f-4d0c-9d0b-5f3f1c1a2b3c';
    // The watchdog rolled the upgrade back and saved its outcome; the server was away since.
    const waiting = JSON.stringify({ commandId, report: { status: 'ROLLED_BACK', code: 'NO_CHECK_IN', message: 'rolled back', fromVersion: '0.1.0', toVersion: '0.2.0' } });
    fs.writeFileSync(path.join(stateDir, `upgrade-outcome-${commandId}.json`), waiting);
    const asked: string[] = [];
    const client = {
      download: async () => {
        asked.push('download');
        throw new Error('not reached');
      },
      sendUpgradeReport: async () => {
        asked.push('report');
        return { accepted: true };
      },
    } as unknown as AgentClient;
    const upgrader = new AgentUpgrader({ client, stateDir, log: () => undefined, env: {}, args: [], executable, platform: 'linux', arch: 'x64' });
    upgrader.atStart();
    const command: UpgradeCommand = { version: '0.2.0', rollbackAfterSeconds: 60, artifacts: [] };
    expect(await upgrader.run(commandId, command, () => null, new AbortController().signal)).toBe('DONE');
    expect(asked).toEqual([]);
    expect(fs.readFileSync(path.join(stateDir, `upgrade-outcome-${commandId}.json`), 'utf8')).toBe(waiting);
  });
});
