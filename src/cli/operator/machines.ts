import { AGENT_READINESS, CLASSIFICATIONS, COMPLIANCE_WORST_FIRST, OS_TYPES } from '../../domain/vocabulary.js';
import { OperatorError } from './errors.js';
import {
  CliAssessMachinesDocument,
  CliMachineDocument,
  CliMachinesDocument,
  CliMissingUpdatesDocument,
  type AgentReadiness,
  type Compliance,
  type MachineSortField,
} from './graphql.generated.js';
import { machineIdOf } from './lookup.js';
import { ago, note, outputFormat, printRecord, printRows, type Column } from './output.js';
import { connect, enumList, enumValue, listOption, pages, wholeNumber } from './options.js';

const COMPLIANCE: readonly Compliance[] = COMPLIANCE_WORST_FIRST;
const READINESS: readonly AgentReadiness[] = AGENT_READINESS;
/** `--sort` words and the API's sort fields. */
const SORT_FIELDS: Record<string, MachineSortField> = {
  name: 'NAME',
  compliance: 'COMPLIANCE',
  'critical-and-security': 'CRITICAL_AND_SECURITY_COUNT',
  other: 'OTHER_COUNT',
  'last-seen': 'LAST_SEEN',
  'last-assessed': 'LAST_ASSESSED',
};
export const MACHINE_SORT_WORDS = Object.keys(SORT_FIELDS);

/** The computers view's columns; the CSV has every one, named by its path in `--output json`. */
export const MACHINE_COLUMNS: Column[] = [
  { path: 'name', header: 'NAME', format: (v, row) => `${String(v)}${row.duplicateName ? ' (duplicate name)' : ''}` },
  { path: 'compliance', header: 'COMPLIANCE' },
  { path: 'environment', header: 'ENVIRONMENT' },
  { path: 'osType', header: 'OS' },
  { path: 'osName', table: false },
  { path: 'osVersion', table: false },
  { path: 'criticalAndSecurityCount', header: 'CRITICAL+SECURITY' },
  { path: 'otherCount', header: 'OTHER' },
  { path: 'agentReadiness', header: 'READINESS' },
  { path: 'readinessDetail.reason', table: false },
  { path: 'readinessDetail.since', table: false },
  { path: 'tags', header: 'TAGS', format: (v) => ((v as string[]).length > 0 ? (v as string[]).join(',') : '-') },
  { path: 'lastSeenAt', header: 'LAST SEEN', format: (v) => ago(v) },
  { path: 'lastAssessedAt', table: false },
  { path: 'duplicateName', table: false },
  { path: 'id', header: 'ID' },
];

export interface MachinesListOptions {
  output?: string;
  compliance?: string;
  readiness?: string;
  os?: string;
  name?: string;
  tag?: string[];
  sort?: string;
  desc?: boolean;
  limit?: string;
  after?: string;
  all?: boolean;
}

export async function machinesList(options: MachinesListOptions): Promise<void> {
  const format = outputFormat(options.output);
  const sortWord = options.sort ?? 'compliance';
  const field = SORT_FIELDS[sortWord.toLowerCase()];
  if (!field) throw new OperatorError(`--sort must be one of ${MACHINE_SORT_WORDS.join(', ')}; got "${sortWord}".`);
  const filter = {
    compliance: enumList('--compliance', options.compliance, COMPLIANCE),
    readiness: enumList('--readiness', options.readiness, READINESS),
    osType: options.os === undefined ? undefined : enumValue('--os', options.os, OS_TYPES),
    nameContains: options.name,
    tags: listOption(options.tag),
  };
  const client = connect();
  let exact = true;
  const { nodes, totalCount, nextCursor } = await pages(async (first, after) => {
    const { machines } = await client.request(CliMachinesDocument, { filter, orderBy: { field, direction: options.desc ? 'DESC' : 'ASC' }, first, after });
    exact = machines.totalCountExact;
    return { totalCount: machines.totalCount, pageInfo: machines.pageInfo, nodes: machines.edges.map((e) => e.node) };
  }, options);
  printRows(format, nodes, MACHINE_COLUMNS);
  if (format === 'table') note(footer(nodes.length, totalCount, 'machine', nextCursor, exact));
  else if (nextCursor) note(`More: --after ${nextCursor}`);
}

/** "50 of 120 machines; next page: --after X". `exact` false: total is a lower bound (the API's totalCountExact): "50 of more than 10000 machines". */
export function footer(shown: number, total: number, what: string, nextCursor: string | null, exact = true): string {
  const of = (n: number) => `${n} ${n === 1 ? what : `${what}s`}`;
  if (total === 0) return `No ${what} matches.`;
  const count = shown >= total ? of(shown) : `${shown} of ${exact ? '' : 'more than '}${of(total)}`;
  return nextCursor ? `${count}; next page: --after ${nextCursor} (or --all)` : count;
}

export async function machinesShow(ref: string, options: { output?: string; updates?: string }): Promise<void> {
  const format = outputFormat(options.output);
  const updates = wholeNumber('--updates', options.updates, { min: 0, max: 500 }) ?? 50;
  const client = connect();
  const id = await machineIdOf(client, ref);
  const { machine } = await client.request(CliMachineDocument, { id, updates });
  if (!machine) throw new OperatorError(`No machine with id ${id}.`, { code: 'NOT_FOUND' });
  const pending = machine.pendingUpdates.edges.map((e) => e.node);
  if (format === 'csv') {
    // A nested result flattened: one row per pending update, each carrying its machine's fields.
    const owner = { id: machine.id, name: machine.name, compliance: machine.compliance };
    printRows('csv', pending.map((u) => ({ machine: owner, ...u })), MACHINE_UPDATE_CSV_COLUMNS);
    return;
  }
  printRecord(format, machine, [
    ['Name', machine.name],
    ['Id', machine.id],
    ['Compliance', machine.compliance],
    ['Readiness', `${machine.agentReadiness}${machine.agentReadiness === 'READY' ? '' : ` (${machine.readinessDetail.reason})`}`],
    ['OS', `${machine.osType} ${machine.osName} ${machine.osVersion}`],
    ['Kernel', machine.kernel],
    ['Environment', machine.environment],
    ['Package manager', machine.packageManager],
    ['Agent version', machine.agentVersion],
    ['Tags', machine.tags],
    ['Management', machine.managementEnabled ? 'enabled' : 'disabled'],
    ['Last seen', machine.lastSeenAt],
    ['Last assessed', machine.lastAssessedAt],
    ['Reboot pending', machine.rebootPending ? 'yes' : 'no'],
    ['Pending', `${machine.criticalCount} critical, ${machine.securityCount} security, ${machine.otherCount} other`],
    ...machine.warnings.map((w): [string, unknown] => ['Warning', w]),
    ...(machine.lastAssessmentError ? [['Assessment error', `${machine.lastAssessmentError.code}: ${machine.lastAssessmentError.message}`] as [string, unknown]] : []),
    ...machine.repositoryProblems.map((p): [string, unknown] => ['Repository problem', `${p.repository}: ${p.message}`]),
  ]);
  if (format === 'table') {
    process.stdout.write('\n');
    printRows('table', pending, PENDING_UPDATE_COLUMNS);
    note(footer(pending.length, machine.pendingUpdates.totalCount, 'pending update', null) + (pending.length < machine.pendingUpdates.totalCount ? ' (more with --updates N, up to 500)' : ''));
  }
}

export const PENDING_UPDATE_COLUMNS: Column[] = [
  { path: 'name', header: 'UPDATE' },
  { path: 'arch', header: 'ARCH' },
  { path: 'classification', header: 'CLASSIFICATION' },
  { path: 'severity', header: 'SEVERITY' },
  { path: 'installedVersion', header: 'INSTALLED', format: (v) => (v === null ? 'new' : String(v)) },
  { path: 'availableVersion', header: 'AVAILABLE' },
  { path: 'rebootSuggested', header: 'REBOOT', format: (v) => (v ? 'maybe' : '') },
  { path: 'repository', table: false },
  { path: 'advisoryIds', table: false },
  { path: 'cveIds', table: false },
];

export const ASSESS_COLUMNS: Column[] = [
  { path: 'machineId', header: 'MACHINE' },
  { path: 'requested', header: 'REQUESTED', format: (v) => (v ? 'yes' : 'no') },
  { path: 'reason', header: 'WHY NOT', format: (v) => (v === null ? '' : String(v)) },
  { path: 'commandId', table: false },
];

/** `machines show --output csv`: a row per pending update, after its machine's columns. */
export const MACHINE_UPDATE_CSV_COLUMNS: Column[] = [{ path: 'machine.id' }, { path: 'machine.name' }, { path: 'machine.compliance' }, ...PENDING_UPDATE_COLUMNS];

export async function machinesAssess(refs: string[], options: { output?: string }): Promise<void> {
  const format = outputFormat(options.output);
  const client = connect();
  const ids: string[] = [];
  for (const ref of refs) ids.push(await machineIdOf(client, ref));
  const { assessMachines } = await client.request(CliAssessMachinesDocument, { ids });
  printRows(format, assessMachines, ASSESS_COLUMNS);
  if (assessMachines.some((r) => !r.requested)) process.exitCode = 1;
}

export const MISSING_UPDATE_COLUMNS: Column[] = [
  { path: 'name', header: 'UPDATE' },
  { path: 'classification', header: 'CLASSIFICATION' },
  { path: 'severity', header: 'SEVERITY', format: (v) => (v === null ? '-' : String(v)) },
  { path: 'machineCount', header: 'MACHINES' },
  { path: 'availableVersions', header: 'VERSIONS' },
  { path: 'rebootSuggested', header: 'REBOOT', format: (v) => (v ? 'maybe' : '') },
  { path: 'advisoryIds', table: false },
  { path: 'cveIds', table: false },
];

export async function updatesMissing(options: { output?: string; classification?: string; os?: string; name?: string; limit?: string; after?: string; all?: boolean }): Promise<void> {
  const format = outputFormat(options.output);
  const filter = {
    classification: enumList('--classification', options.classification, CLASSIFICATIONS),
    osType: options.os === undefined ? undefined : enumValue('--os', options.os, OS_TYPES),
    nameContains: options.name,
  };
  const client = connect();
  let computedAt = '';
  const { nodes, totalCount, nextCursor } = await pages(async (first, after) => {
    const { missingUpdates } = await client.request(CliMissingUpdatesDocument, { filter, first, after });
    computedAt = missingUpdates.computedAt;
    return { totalCount: missingUpdates.totalCount, pageInfo: missingUpdates.pageInfo, nodes: missingUpdates.edges.map((e) => e.node) };
  }, options);
  printRows(format, nodes, MISSING_UPDATE_COLUMNS);
  if (format === 'table') note(`${footer(nodes.length, totalCount, 'missing update', nextCursor)} (as of ${computedAt})`);
  else if (nextCursor) note(`More: --after ${nextCursor}`);
}
