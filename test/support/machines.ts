import { AgentClient } from '../../src/agent/client.js';
import type { PendingUpdate } from '../../src/agent/backends/types.js';
import type { AgentSettings, AssessmentReport, MachineFacts } from '../../src/agent/protocol.js';
import type { Database } from '../../src/db/client.js';
import { createEnrollmentKey } from '../../src/db/enrollmentKeys.js';
import { assessmentReport, machineFacts } from '../../testkit/agentFacts.js';

/** What a test asks of a machine: its facts (a Debian server with a unique hostname unless said), and its pending updates. */
export interface MachineSpec {
  facts?: Partial<MachineFacts>;
  /** Reported as one assessment right after enrolling; no report when absent. */
  updates?: PendingUpdate[];
  /** Fields of that report to set (trigger, times, backend...). */
  report?: Partial<AssessmentReport>;
}

/** A machine enrolled through the real agent endpoint, with the agent client that speaks for it. */
export interface EnrolledMachine {
  machineId: string;
  name: string;
  credential: string;
  /** Holds the machine's credential: check in, report, poll for commands as its agent would. */
  agent: AgentClient;
  facts: MachineFacts;
  settings: AgentSettings;
  /** The report sent at enrollment, when the spec had updates. */
  report?: AssessmentReport;
}

/** An enrollment key straight in the database (no limits, no default tags), for tests whose subject is not the key. */
export async function enrollmentKey(database: Database, description = 'test machines'): Promise<string> {
  return (await createEnrollmentKey(database.db, { description, expiresAt: null, maxUses: null, defaultTags: [] })).secret;
}

/**
 * Enrolls a machine at `server` (the API's URL, with or without /graphql) with `key`, as its agent
 * would, and reports its updates when the spec has some. The report's backend follows the
 * machine's package manager.
 */
export async function enrollMachine(server: string, key: string, spec: MachineSpec = {}): Promise<EnrolledMachine> {
  const facts = machineFacts(spec.facts);
  const agent = new AgentClient(server);
  const enrolled = await agent.enroll(key, facts);
  agent.setCredential(enrolled.credential);
  let report: AssessmentReport | undefined;
  if (spec.updates) {
    report = assessmentReport(spec.updates, { backend: facts.packageManager ?? 'apt', ...spec.report });
    await agent.sendReport(report);
  }
  return { machineId: enrolled.machineId, name: facts.hostname, credential: enrolled.credential, agent, facts, settings: enrolled.settings, report };
}

/** Several machines at once, one spec each (`count` alike machines when given a number). */
export function enrollMachines(server: string, key: string, specs: number | MachineSpec[]): Promise<EnrolledMachine[]> {
  const list = typeof specs === 'number' ? Array.from({ length: specs }, () => ({})) : specs;
  return Promise.all(list.map((spec) => enrollMachine(server, key, spec)));
}
