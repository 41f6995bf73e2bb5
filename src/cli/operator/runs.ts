import { OperatorError } from './errors.js';
import { CliCancelRunDocument, CliRunsDocument } from './graphql.generated.js';
import { deploymentOf } from './lookup.js';
import { footer } from './machines.js';
import { note, outputFormat, printRecord, printRows, type Column } from './output.js';
import { connect, isUuid, pages } from './options.js';
import { readRun } from './runEvents.js';

function runId(ref: string): string {
  if (!isUuid(ref)) throw new OperatorError(`"${ref}" is not a run id (a UUID, as \`fleetpatch runs list DEPLOYMENT\` shows).`);
  return ref.toLowerCase();
}

const COUNT_COLUMNS = ['total', 'succeeded', 'failed', 'notAttempted', 'notSelected', 'pending', 'inProgress'];

export const RUN_COLUMNS: Column[] = [
  { path: 'id', header: 'RUN' },
  { path: 'status', header: 'STATUS' },
  { path: 'trigger', header: 'TRIGGER' },
  { path: 'startedAt', header: 'STARTED', format: (v) => (v ? String(v) : '-') },
  { path: 'endedAt', header: 'ENDED', format: (v) => (v ? String(v) : '-') },
  { path: 'windowEndsAt', table: false },
  { path: 'durationSeconds', table: false },
  { path: 'counts.succeeded', header: 'SUCCEEDED' },
  { path: 'counts.failed', header: 'FAILED' },
  ...COUNT_COLUMNS.filter((c) => c !== 'succeeded' && c !== 'failed').map((c) => ({ path: `counts.${c}`, table: false })),
  { path: 'error', table: false },
];

export async function runsList(ref: string, options: { output?: string; limit?: string; after?: string; all?: boolean }): Promise<void> {
  const format = outputFormat(options.output);
  const client = connect();
  const deployment = await deploymentOf(client, ref);
  const { nodes, totalCount, nextCursor } = await pages(async (first, after) => {
    const { deployment: d } = await client.request(CliRunsDocument, { deploymentId: deployment.id, first, after });
    if (!d) throw new OperatorError(`No deployment with id ${deployment.id}.`, { code: 'NOT_FOUND' });
    return { totalCount: d.runs.totalCount, pageInfo: d.runs.pageInfo, nodes: d.runs.edges.map((e) => e.node) };
  }, options);
  printRows(format, nodes, RUN_COLUMNS);
  if (format === 'table') note(footer(nodes.length, totalCount, 'run', nextCursor));
}

/**
 * `runs show --output csv`: the nested result flattened, one row per update result, with its run's
 * and its machine run's fields before its own.
 */
export const RUN_RESULT_CSV_COLUMNS: Column[] = [
  'run.id',
  'run.status',
  'run.deployment.name',
  'machineRun.machineName',
  'machineRun.machineId',
  'machineRun.status',
  'machineRun.rebootOutcome',
  'machineRun.error',
  'name',
  'arch',
  'classification',
  'status',
  'installedVersion',
  'targetVersion',
  'exitCode',
  'errorText',
  'reason',
].map((path) => ({ path }));

export async function runsShow(ref: string, options: { output?: string }): Promise<void> {
  const format = outputFormat(options.output);
  const id = runId(ref);
  const run = await readRun(connect(), id);
  if (!run) throw new OperatorError(`No deployment run with id ${id}.`, { code: 'NOT_FOUND' });
  if (format === 'csv') {
    const runFields = { id: run.id, status: run.status, deployment: { name: run.deployment.name } };
    const rows = run.machineRuns.flatMap((m) => {
      const { updates, ...machineRun } = m;
      return updates.map((u) => ({ run: runFields, machineRun, ...u }));
    });
    printRows('csv', rows, RUN_RESULT_CSV_COLUMNS);
    return;
  }
  printRecord(format, run, [
    ['Run', run.id],
    ['Deployment', `${run.deployment.name} (${run.deployment.id})`],
    ['Status', run.status],
    ['Trigger', run.trigger],
    ['Started', run.startedAt ?? '-'],
    ['Window ends', run.windowEndsAt ?? '-'],
    ['Ended', run.endedAt ?? '-'],
    ['Updates', `${run.counts.succeeded} succeeded, ${run.counts.failed} failed, ${run.counts.notAttempted} not attempted, ${run.counts.notSelected} not selected, ${run.counts.pending + run.counts.inProgress} to go`],
    ...(run.error ? [['Error', run.error] as [string, unknown]] : []),
  ]);
  if (format !== 'table') return;
  process.stdout.write('\n');
  printRows(
    'table',
    run.machineRuns.map((m) => ({ ...m, done: `${m.counts.succeeded + m.counts.failed + m.counts.notAttempted}/${m.counts.total - m.counts.notSelected}` })),
    [
      { path: 'machineName', header: 'MACHINE' },
      { path: 'status', header: 'STATUS' },
      { path: 'done', header: 'DONE' },
      { path: 'counts.failed', header: 'FAILED' },
      { path: 'rebootOutcome', header: 'REBOOT', format: (v) => (v ? String(v) : '-') },
      { path: 'error', header: 'ERROR', format: (v) => (v ? String(v) : '') },
    ],
  );
  for (const m of run.machineRuns) {
    for (const u of m.updates.filter((x) => x.status === 'FAILED')) {
      process.stdout.write(`${m.machineName}: ${u.name} FAILED, exit code ${u.exitCode ?? '?'}: ${(u.errorText ?? '').split('\n').slice(0, 3).join(' / ')}\n`);
    }
  }
}

export async function runsWatch(ref: string | undefined, options: { next?: string; logs?: boolean; plain?: boolean; timeout?: string }): Promise<void> {
  const client = connect();
  let id: string;
  if (options.next !== undefined) {
    if (ref !== undefined) throw new OperatorError('Give a run id or --next DEPLOYMENT, not both.');
    const deployment = await deploymentOf(client, options.next);
    note(`Waiting for the next run of ${deployment.name}${deployment.nextRunAt ? ` (scheduled ${deployment.nextRunAt})` : ''}...`);
    const { nextRunOf } = await import('./runEvents.js');
    id = await nextRunOf(client, deployment.id);
    note(`Run ${id} began.`);
  } else {
    if (ref === undefined) throw new OperatorError('Give the run id to watch (or --next DEPLOYMENT to wait for its next run).');
    id = runId(ref);
  }
  const { watchRun } = await import('./watch.js');
  process.exitCode = await watchRun(client, id, options);
}

export async function runsCancel(ref: string): Promise<void> {
  const id = runId(ref);
  const { cancelDeploymentRun: run } = await connect().request(CliCancelRunDocument, { id });
  process.stdout.write(`Canceling run ${run.id} (${run.status}): machines not started stay so, running ones are stopped.\n`);
}
