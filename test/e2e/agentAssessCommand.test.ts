import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildZypperMachine } from '../../testkit/zypper.js';
import { FIXTURE_PACKAGES } from '../../testkit/catalog.js';
import { FLEETPATCH_BIN } from '../support/processes.js';

const run = promisify(execFile);
const BUNDLE = new URL('../../dist/agent/fleetpatch-agent.mjs', import.meta.url).pathname;

describe('fleetpatch agent assess --json', () => {
  it('prints one assessment from the standalone bundle, which needs nothing beside it', async () => {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-assess-'));
    const machine = await buildZypperMachine(path.join(work, 'machine'));
    // Alone in an empty folder: no node_modules to lean on, as on a managed machine.
    const lonely = path.join(work, 'bin');
    fs.mkdirSync(lonely);
    fs.copyFileSync(BUNDLE, path.join(lonely, 'fleetpatch-agent.mjs'));

    const { stdout } = await run(process.execPath, [path.join(lonely, 'fleetpatch-agent.mjs'), 'assess', '--root', machine.root, '--json'], { env: machine.env });
    const assessment = JSON.parse(stdout) as { machine: Record<string, unknown>; rebootPending: boolean; updates: Array<Record<string, unknown>> };
    expect(assessment.machine).toMatchObject({ osType: 'LINUX', osVersion: '15.5', packageManager: 'zypper', environment: 'ON_PREMISES' });
    expect(assessment.rebootPending).toBe(false);
    expect(assessment.updates.map((u) => u.name).sort()).toEqual(FIXTURE_PACKAGES.filter((p) => p.available).map((p) => p.name).sort());
    expect(Object.keys(assessment.updates[0]!)).toEqual(expect.arrayContaining(['name', 'installedVersion', 'availableVersion', 'classification', 'severity', 'advisoryIds', 'cveIds', 'rebootSuggested']));
    expect(assessment.updates.find((u) => u.name === 'demo-libssl')).toMatchObject({ classification: 'CRITICAL', severity: 'CRITICAL', installedVersion: '1.0-1', availableVersion: '1.1-1' });

    // The same through the main CLI.
    const { stdout: again } = await run(process.execPath, [FLEETPATCH_BIN, 'agent', 'assess', '--root', machine.root, '--json'], { env: machine.env });
    expect((JSON.parse(again) as { updates: unknown[] }).updates).toHaveLength(assessment.updates.length);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('says clearly when there is no package manager to drive', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-empty-'));
    const failure = await run(process.execPath, [BUNDLE, 'assess', '--root', empty, '--json'], { env: { PATH: '/nonexistent' } }).catch((e: { code: number; stderr: string }) => e);
    expect(failure).toMatchObject({ code: 1, stderr: expect.stringContaining(`No supported package manager (apt, dnf, yum, zypper) found for the system at ${empty}.`) });
  });
});
