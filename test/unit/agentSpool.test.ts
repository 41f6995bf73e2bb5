import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runAssessment } from '../../src/agent/assess.js';
import { BackendError, type PackageBackend } from '../../src/agent/backends/types.js';
import { ReportSpool } from '../../src/agent/spool.js';
import { assessmentReport } from '../../testkit/agentFacts.js';

const stateDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'fleetpatch-spool-'));

describe('the report spool', () => {
  it('delivers oldest first and keeps what the server could not take yet', async () => {
    const spool = new ReportSpool(stateDir());
    const reports = [0, 1, 2].map((i) => assessmentReport([], { finishedAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(), startedAt: new Date(Date.UTC(2026, 0, 1)).toISOString() }));
    for (const r of [reports[2]!, reports[0]!, reports[1]!]) spool.add(r);
    const sent: string[] = [];
    await expect(
      spool.flush(async (r) => {
        if (sent.length === 2) throw new Error('server went away');
        sent.push(r.id);
        return 'delivered';
      }),
    ).rejects.toThrow('server went away');
    expect(sent).toEqual([reports[0]!.id, reports[1]!.id]);
    expect(spool.size()).toBe(1);
    expect(await spool.flush(async () => 'delivered')).toBe(1);
    expect(spool.size()).toBe(0);
  });

  it('stays bounded, dropping the oldest reports first, and survives a restart', async () => {
    const dir = stateDir();
    const dropped: string[] = [];
    const spool = new ReportSpool(dir, 3, (file) => dropped.push(file));
    const reports = [0, 1, 2, 3, 4].map((i) => assessmentReport([], { startedAt: new Date(Date.UTC(2026, 0, 1)).toISOString(), finishedAt: new Date(Date.UTC(2026, 0, 1, 1, i)).toISOString() }));
    for (const r of reports) spool.add(r);
    expect(dropped).toHaveLength(2);
    const again = new ReportSpool(dir, 3);
    const ids: string[] = [];
    await again.flush(async (r) => (ids.push(r.id), 'delivered'));
    expect(ids).toEqual(reports.slice(2).map((r) => r.id));
    expect(fs.statSync(path.join(dir, 'spool')).mode & 0o777).toBe(0o700);
  });
});

describe('an assessment that fails', () => {
  const backend = (error: unknown): PackageBackend => ({
    name: 'apt',
    assess: async () => {
      throw error;
    },
    installUpdate: async () => {
      throw error;
    },
    databaseFingerprint: async () => '',
  });
  const ctx = { root: '/nonexistent', env: {}, workDir: '/tmp' };

  it('becomes an error report with the package manager output, never a crash', async () => {
    const report = await runAssessment(backend(new BackendError('UNPARSEABLE_OUTPUT', 'apt-get printed a line we cannot read', { output: 'Inst ???' })), ctx, 'SCHEDULE');
    expect(report).toMatchObject({ result: null, error: { code: 'UNPARSEABLE_OUTPUT', message: 'apt-get printed a line we cannot read', output: 'Inst ???' }, backend: 'apt', trigger: 'SCHEDULE' });
    const crash = await runAssessment(backend(new TypeError('boom')), ctx, 'COMMAND', '0b3f6a0e-1111-4222-8333-944445555666');
    expect(crash).toMatchObject({ result: null, error: { code: 'AGENT_ERROR', message: 'boom' }, commandId: '0b3f6a0e-1111-4222-8333-944445555666' });
  });
});
