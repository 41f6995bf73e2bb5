import { useEffect, useRef, useState } from 'react';
import { useClient, useMutation, useQuery, type CombinedError } from 'urql';
import { CancelRunDocument, MachineRunUpdatesDocument, MachineStepResultsDocument, ProgressDocument, RunDocument, RunLinesDocument, RunMachinesDocument } from '../graphql.generated';
import { Link } from '../router';
import { applyProgress, FINISHED, mergeLines, mergeMachines, nextCursor, progressVariables, runOf, type Counts, type Line, type MachineRun, type Paged, type Run } from '../runProgress';
import { useRoleAllows } from '../session';
import { Badge, Loading, Meter, Page, Problems, TableBox, updateCountsText, when, words } from '../ui';
import { RunRingsSection } from './RunRings';
import { ExportButtons } from './ExportButtons';

const FINISHED_MACHINE = new Set(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'CANCELED', 'NOT_STARTED']);

const toDo = (c: Counts) => c.total - c.notSelected;
const done = (c: Counts) => c.succeeded + c.failed + c.notAttempted;

function LogView({ lines, label }: { lines: Line[]; label: string }) {
  const box = useRef<HTMLPreElement>(null);
  // Follow the end of the stream as lines arrive, like a terminal.
  useEffect(() => {
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines.length]);
  if (lines.length === 0) return <p className="muted">No line yet.</p>;
  return (
    <pre className="log" ref={box} tabIndex={0} aria-label={label}>
      {lines.map((l) => <span key={l.id} className={`log-${l.stream}`}>{new Date(l.at).toLocaleTimeString()} [{l.stream}] {l.line}{'\n'}</span>)}
    </pre>
  );
}

/**
 * How the deployment's steps went on one machine, read again whenever the machine run changes
 * status (its step results are not part of the progress events).
 */
function StepResults({ runId, m }: { runId: string; m: MachineRun }) {
  const [{ data, error }, refetch] = useQuery({ query: MachineStepResultsDocument, variables: { id: runId, machineId: m.machineId }, requestPolicy: 'network-only' });
  useEffect(() => {
    refetch({ requestPolicy: 'network-only' });
  }, [m.status, m.endedAt, refetch]);
  const results = data?.deploymentRun?.machineRun?.stepResults;
  if (error) return <Problems error={error} />;
  if (!results) return <p className="muted small">Reading the steps…</p>;
  if (results.length === 0) return <p className="muted small">No step has run on {m.machineName} yet.</p>;
  return (
    <TableBox label={`Steps on ${m.machineName}`}>
      <table className="step-results">
        <thead><tr><th scope="col">Step</th><th scope="col">Phase</th><th scope="col">Runs</th><th scope="col">Status</th><th scope="col">Started</th><th scope="col">Ended</th><th scope="col">Details</th></tr></thead>
        <tbody>
          {results.map((r) => (
            <tr key={r.index} data-step={r.name} data-status={r.status}>
              <td>{r.name}</td>
              <td>{r.phase}</td>
              <td className="small">{r.kind === 'SCRIPT' ? 'Script on the machine' : 'Call from the server'}</td>
              <td><Badge value={r.status} />{r.status === 'FAILED' && <span className="muted small"> then {words(r.onFailure).toLowerCase()}</span>}</td>
              <td className="small">{when(r.startedAt)}</td>
              <td className="small">{when(r.endedAt)}</td>
              <td className="small">
                {[r.exitCode !== null ? `exit code ${r.exitCode}` : '', r.httpStatus !== null ? `HTTP ${r.httpStatus}` : '', r.attempts > 1 ? `${r.attempts} attempts` : ''].filter(Boolean).join(' · ')}
                {r.message && <pre className="error-text">{r.message}</pre>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableBox>
  );
}

type UpdateRow = MachineRun['updates'][number];

/**
 * The updates past the first 50 a card shows, read 500 at a time when asked for, and read again
 * when the machine run changes status (progress events update only the first 50).
 */
function useMoreUpdates(runId: string, m: MachineRun) {
  const client = useClient();
  const [more, setMore] = useState<UpdateRow[]>([]);
  const [error, setError] = useState<CombinedError | null>(null);
  const read = async (offset: number, count: number) => {
    const rows: UpdateRow[] = [];
    while (rows.length < count) {
      const answer = await client.query(MachineRunUpdatesDocument, { id: runId, machineId: m.machineId, offset: offset + rows.length }, { requestPolicy: 'network-only' }).toPromise();
      if (answer.error) return setError(answer.error);
      const page = answer.data?.deploymentRun?.machineRun?.updates ?? [];
      rows.push(...page);
      if (page.length < 500) break;
    }
    setError(null);
    return rows;
  };
  const loaded = more.length;
  useEffect(() => {
    if (loaded === 0) return;
    void read(m.updates.length, loaded).then((rows) => rows && setMore(rows));
  }, [m.status, m.endedAt]);
  const loadMore = () => void read(m.updates.length + more.length, 500).then((rows) => rows && setMore((known) => [...known, ...rows]));
  return { more, error, loadMore };
}

function MachineRunCard({ runId, m, lines, hasSteps }: { runId: string; m: MachineRun; lines: Line[]; hasSteps: boolean }) {
  const todo = toDo(m.counts);
  const finished = done(m.counts);
  const { more, error: moreError, loadMore } = useMoreUpdates(runId, m);
  const shown = m.updates.length + more.length;
  return (
    <section className="card machine-run" aria-labelledby={`mr-${m.id}`} data-machine={m.machineName}>
      <div className="machine-run-head">
        <h3 id={`mr-${m.id}`}><Link to={`/computers/${m.machineId}`}>{m.machineName}</Link></h3>
        <Badge value={m.status} />
        {m.ring !== null && <span className="muted small">Ring {m.ring}</span>}
        {FINISHED_MACHINE.has(m.status) && <span className="run-counts">{updateCountsText(m.counts)}</span>}
        {m.rebootOutcome && <span className="muted small">Reboot: {words(m.rebootOutcome)}</span>}
      </div>
      <div className="bar-cell">
        <Meter value={finished} max={todo} label={`${m.machineName}: updates done`} tone={m.counts.failed > 0 ? 'warn' : 'busy'} />
        <span className="progress-text">{finished} of {todo} updates done</span>
      </div>
      <p className="small muted">
        {m.counts.succeeded} succeeded · {m.counts.failed} failed · {m.counts.notAttempted} not attempted · {m.counts.inProgress} installing · {m.counts.pending} pending · {m.counts.notSelected} not selected
      </p>
      {m.error && <p className="alert" role="alert">{m.error}</p>}
      <TableBox label={`Updates on ${m.machineName}`}>
        <table className="updates">
          <thead><tr><th scope="col">Update</th><th scope="col">Classification</th><th scope="col">Version</th><th scope="col">Status</th><th scope="col">Details</th></tr></thead>
          <tbody>
            {[...m.updates, ...more].map((u) => (
              <tr key={`${u.name}.${u.arch ?? ''}`} data-update={u.name} data-status={u.status}>
                <td>{u.name}</td>
                <td>{words(u.classification)}</td>
                <td className="small">{u.installedVersion ?? 'new'} → {u.targetVersion}</td>
                <td><Badge value={u.status} />{u.predictedStatus !== u.status && !['PENDING', 'IN_PROGRESS'].includes(u.status) && <span className="muted small"> (predicted {words(u.predictedStatus)})</span>}</td>
                <td className="small">
                  {u.status === 'FAILED' ? (
                    <details>
                      <summary>Error{u.exitCode !== null ? ` (exit code ${u.exitCode})` : ''}</summary>
                      <pre className="error-text">{u.errorText ?? 'The package manager gave no error text.'}</pre>
                    </details>
                  ) : u.reason ?? ''}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableBox>
      {shown < m.counts.total && (
        <p className="small">
          <span className="muted">{shown} of {m.counts.total} updates shown. </span>
          <button type="button" onClick={loadMore}>Show {Math.min(500, m.counts.total - shown)} more</button>
        </p>
      )}
      {moreError && <Problems error={moreError} />}
      {hasSteps && (
        <div className="step-results">
          <h4>Steps <span className="muted small">(scripts write their output to the job stream below)</span></h4>
          <StepResults runId={runId} m={m} />
        </div>
      )}
      <details className="job-stream">
        <summary>Job stream ({lines.length} lines)</summary>
        <LogView lines={lines} label={`Job stream of ${m.machineName}`} />
      </details>
    </section>
  );
}

export function RunPage({ id }: { id: string }) {
  const client = useClient();
  const [{ data, error, fetching }, refetch] = useQuery({ query: RunDocument, variables: { id }, requestPolicy: 'network-only' });
  const [run, setRun] = useState<Run | null>(null);
  const [live, setLive] = useState(false);
  const [logMachine, setLogMachine] = useState('');
  const [more, setMore] = useState<{ fetching: boolean; error?: CombinedError }>({ fetching: false });
  const [cancel, cancelRun] = useMutation(CancelRunDocument);
  const canOperate = useRoleAllows('OPERATOR');
  // The seq of the last event applied, read when the subscription (re)subscribes.
  const seq = useRef<number | null>(null);
  const loaded = Boolean(data?.deploymentRun);

  // The page shows the query's answer, then moves with every event of the subscription. A later
  // answer (the refetch at the end) replaces what it read, keeping the pages loaded since.
  useEffect(() => {
    const answer = data?.deploymentRun;
    if (!answer) return;
    setRun((prev) => {
      const fresh = runOf(answer);
      const base = prev ? { ...fresh, machineRuns: mergeMachines(prev.machineRuns, fresh.machineRuns), logs: mergeLines(prev.logs, fresh.logs), seq: Math.max(prev.seq, fresh.seq) } : fresh;
      seq.current = base.seq;
      return base;
    });
  }, [data]);
  useEffect(() => {
    if (!loaded) return;
    const subscription = client.subscription(ProgressDocument, progressVariables(id, seq)).subscribe((result) => {
      setLive(!result.error);
      const event = result.data?.deploymentRunProgress;
      if (event) {
        setRun((prev) => {
          const next = prev ? applyProgress(prev, event) : prev;
          if (next) seq.current = next.seq;
          return next;
        });
      }
    });
    return () => subscription.unsubscribe();
  }, [client, id, loaded]);
  // At the end, read the whole run once more (its counts and every machine's final state).
  const finished = run ? FINISHED.has(run.status) : false;
  useEffect(() => {
    if (finished) refetch({ requestPolicy: 'network-only' });
  }, [finished, refetch]);

  async function loadMore(kind: 'machines' | 'lines') {
    if (!run) return;
    setMore({ fetching: true });
    const answer =
      kind === 'machines'
        ? await client.query(RunMachinesDocument, { id, after: run.machinesAfter }, { requestPolicy: 'network-only' }).toPromise()
        : await client.query(RunLinesDocument, { id, after: run.linesAfter }, { requestPolicy: 'network-only' }).toPromise();
    const page: { machineRuns?: Paged<MachineRun>; logs?: Paged<Line> } | null | undefined = answer.data?.deploymentRun;
    setMore({ fetching: false, error: answer.error });
    if (!page) return;
    setRun((prev) => {
      if (!prev) return prev;
      if (page.machineRuns) {
        const machineRuns = mergeMachines(prev.machineRuns, page.machineRuns.edges.map((e) => e.node));
        return { ...prev, machineRuns, machinesTotal: page.machineRuns.totalCount, machinesAfter: nextCursor(page.machineRuns) };
      }
      if (page.logs) {
        const logs = mergeLines(prev.logs, page.logs.edges.map((e) => e.node));
        return { ...prev, logs, linesAfter: nextCursor(page.logs) };
      }
      return prev;
    });
  }

  if (!run && fetching) return <Loading what="the run" />;
  if (data && !data.deploymentRun) return <Page title="Run not found"><p>No deployment run with id {id}. <Link to="/deployments">All deployments</Link></p></Page>;
  if (!run) return <Problems error={error} />;
  const names = new Map(run.machineRuns.map((m) => [m.id, m.machineName]));
  const shownLogs = logMachine ? run.logs.filter((l) => l.machineRunId === logMachine) : run.logs;
  return (
    <Page
      title={`Run of ${run.deployment.name}`}
      actions={
        <>
          <ExportButtons kind="RUN_RESULTS" runId={id} />
          {!finished && canOperate && run.status !== 'HALTED' && <button className="danger" onClick={() => void cancelRun({ id })} disabled={cancel.fetching}>Cancel run</button>}
        </>
      }
    >
      <Problems error={cancel.error} />
      <section className="card run-head" aria-label="Run summary">
        <p className="run-status" aria-live="polite">Status: <Badge value={run.status} /> {finished ? <span className="run-counts">{updateCountsText(run.counts)}</span> : <span className="muted small">{live ? 'live' : 'connecting…'}</span>}</p>
        <div className="bar-cell">
          <Meter value={done(run.counts)} max={toDo(run.counts)} label="Updates done across the run" tone={run.counts.failed > 0 ? 'warn' : 'busy'} />
          <span>{done(run.counts)} of {toDo(run.counts)} updates done</span>
        </div>
        <dl className="facts">
          <div><dt>Deployment</dt><dd><Link to={`/deployments/${run.deployment.id}`}>{run.deployment.name}</Link></dd></div>
          <div><dt>Trigger</dt><dd>{words(run.trigger)}</dd></div>
          <div><dt>Started</dt><dd>{when(run.startedAt)}</dd></div>
          <div><dt>Window ends</dt><dd>{when(run.windowEndsAt)}</dd></div>
          <div><dt>Ended</dt><dd>{when(run.endedAt)}</dd></div>
          <div><dt>Results</dt><dd>{run.counts.succeeded} succeeded, {run.counts.failed} failed, {run.counts.notAttempted} not attempted, {run.counts.notSelected} not selected</dd></div>
        </dl>
        {run.error && <p className="alert" role="alert">{run.error}</p>}
      </section>
      <RunRingsSection run={run} onCancel={() => void cancelRun({ id })} canceling={cancel.fetching} />
      <h2>Machines ({Math.max(run.machinesTotal, run.machineRuns.length)})</h2>
      {run.machineRuns.length === 0 && <p className="muted">No machine yet: the run is resolving its targets.</p>}
      <div className="machine-runs">
        {run.machineRuns.map((m) => <MachineRunCard key={m.id} runId={id} hasSteps={(run.deployment.steps?.length ?? 0) > 0} m={m} lines={run.logs.filter((l) => l.machineRunId === m.id)} />)}
      </div>
      <Problems error={more.error} />
      {run.machinesAfter && (
        <p><button onClick={() => void loadMore('machines')} disabled={more.fetching}>Show more machines ({Math.max(0, run.machinesTotal - run.machineRuns.length)} not shown)</button></p>
      )}
      <h2 id="logs-title">All logs</h2>
      <div className="field inline">
        <label htmlFor="log-machine">Show</label>
        <select id="log-machine" value={logMachine} onChange={(e) => setLogMachine(e.target.value)}>
          <option value="">Every machine and the server</option>
          {[...names].map(([mid, name]) => <option key={mid} value={mid}>{name}</option>)}
        </select>
      </div>
      <LogView lines={shownLogs} label="All logs of the run" />
      {run.linesAfter && (
        <p><button onClick={() => void loadMore('lines')} disabled={more.fetching}>Load the lines not shown yet</button></p>
      )}
    </Page>
  );
}
