import { randomUUID } from 'node:crypto';
import type { PendingUpdate } from '../src/agent/backends/types.js';
import type { AssessmentReport, MachineFacts } from '../src/agent/protocol.js';

/** Facts as an agent sends them, for tests of the server side of the protocol. */
/** A machine's facts: a Debian server, or a Windows Server when `osType` is WINDOWS (client editions are refused). */
export function machineFacts(overrides: Partial<MachineFacts> = {}): MachineFacts {
  const windows = overrides.osType === 'WINDOWS';
  return {
    hostname: `host-${randomUUID().slice(0, 8)}`,
    osType: 'LINUX',
    osName: windows ? 'Windows Server 2022 Datacenter' : 'Debian GNU/Linux 12 (bookworm)',
    osVersion: windows ? '10.0.20348' : '12',
    kernel: windows ? '10.0.20348.2849' : '6.1.0-28-amd64',
    agentVersion: '0.1.0',
    bootId: randomUUID(),
    packageManager: windows ? 'windows' : 'apt',
    environment: 'ON_PREMISES',
    warnings: [],
    ...overrides,
  };
}

export function pendingUpdate(overrides: Partial<PendingUpdate> & Pick<PendingUpdate, 'name'>): PendingUpdate {
  return {
    installedVersion: '1.0-1',
    availableVersion: '1.1-1',
    arch: 'all',
    classification: 'OTHER',
    severity: null,
    advisoryIds: [],
    cveIds: [],
    rebootSuggested: false,
    repository: 'Debian:12/stable',
    ...overrides,
  };
}

export function assessmentReport(updates: PendingUpdate[], overrides: Partial<AssessmentReport> = {}): AssessmentReport {
  const now = new Date();
  return {
    id: randomUUID(),
    commandId: null,
    trigger: 'SCHEDULE',
    backend: 'apt',
    startedAt: new Date(now.getTime() - 1000).toISOString(),
    finishedAt: now.toISOString(),
    result: { rebootPending: false, updates, repositoryProblems: [] },
    error: null,
    ...overrides,
  };
}
