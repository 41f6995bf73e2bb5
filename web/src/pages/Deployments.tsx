import { useMutation, useQuery } from 'urql';
import { DeploymentDocument, DeploymentsDocument, RunNowDocument, SetDeploymentPausedDocument, type DeploymentQuery, type DeploymentRowFragment } from '../graphql.generated';
import { Link, navigate } from '../router';
import { gateText, ringChoice } from '../rings';
import { stepText } from '../steps';
import { Badge, fromNow, Loading, Page, Problems, TableBox, when, words } from '../ui';

type DeploymentRow = DeploymentRowFragment;

/** The next scheduled run, in words. */
function nextRun(d: Pick<DeploymentRow, 'paused' | 'onDemandOnly' | 'nextRunAt'>): string {
  if (d.onDemandOnly) return 'None: on demand only';
  if (d.paused) return 'Paused';
  return d.nextRunAt ? `${when(d.nextRunAt)} (${fromNow(d.nextRunAt)})` : 'None left';
}

export function DeploymentsPage() {
  const [{ data, error, fetching }] = useQuery({ query: DeploymentsDocument });
  return (
    <Page title="Deployments" actions={<Link to="/deployments/new" className="button">New deployment</Link>}>
      <Problems error={error} />
      {!data && fetching && <Loading what="deployments" />}
      {data && data.deployments.totalCount === 0 && <p className="muted">No deployment yet. <Link to="/deployments/new">Create one</Link>.</p>}
      {data && data.deployments.totalCount > 0 && (
        <TableBox label="Deployments">
          <table>
            <thead><tr><th scope="col">Name</th><th scope="col">OS type</th><th scope="col">Classifications</th><th scope="col">Schedule</th><th scope="col">Next run</th><th scope="col">Last run</th></tr></thead>
            <tbody>
              {data.deployments.edges.map(({ node: d }) => (
                <tr key={d.id}>
                  <td><Link to={`/deployments/${d.id}`}>{d.name}</Link></td>
                  <td>{words(d.osType)}</td>
                  <td className="small">{d.classifications.map(words).join(', ') || 'None (reboot only)'}</td>
                  <td className="small">{d.schedule?.description ?? 'On demand only'}</td>
                  <td>{nextRun(d)}</td>
                  <td>{d.lastRun ? <Link to={`/runs/${d.lastRun.id}`} aria-label={`Last run of ${d.name}: ${words(d.lastRun.status)}`}><Badge value={d.lastRun.status} /></Link> : <span className="muted">Never run</span>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      )}
    </Page>
  );
}

type Limit = NonNullable<NonNullable<DeploymentQuery['deployment']>['maxConcurrent']>;

const limit = (l: Limit | null, none: string) => (l ? `${l.value}${l.unit === 'PERCENT' ? ' %' : ''}` : none);

export function DeploymentPage({ id }: { id: string }) {
  const [{ data, error, fetching }] = useQuery({ query: DeploymentDocument, variables: { id } });
  const [run, runNow] = useMutation(RunNowDocument);
  const [pause, setPaused] = useMutation(SetDeploymentPausedDocument);
  const d = data?.deployment;
  if (!data && fetching) return <Loading what="the deployment" />;
  if (data && !d) return <Page title="Deployment not found"><p>No deployment with id {id}. <Link to="/deployments">All deployments</Link></p></Page>;
  if (!d) return <Problems error={error} />;
  const start = async () => {
    const result = await runNow({ id });
    if (result.data) navigate(`/runs/${result.data.runDeploymentNow.id}`);
  };
  return (
    <Page title={d.name} actions={<>
      <button onClick={() => void start()} disabled={run.fetching}>Run now</button>
      {!d.onDemandOnly && <button className="secondary" onClick={() => void setPaused({ id, pause: !d.paused }, { additionalTypenames: ['Deployment'] })} disabled={pause.fetching}>{d.paused ? 'Resume schedule' : 'Pause schedule'}</button>}
    </>}>
      <Problems error={error ?? run.error ?? pause.error} />
      <section className="card" aria-label="Settings">
        <dl className="facts">
          <div><dt>OS type</dt><dd>{words(d.osType)}</dd></div>
          <div><dt>Classifications</dt><dd>{d.classifications.map(words).join(', ') || 'None'}</dd></div>
          <div><dt>Schedule</dt><dd>{d.schedule ? `${d.schedule.description} (${d.schedule.timeZone})` : 'On demand only: it runs when started with Run now'}</dd></div>
          <div><dt>Next scheduled run</dt><dd>{nextRun(d)}</dd></div>
          <div><dt>Maintenance window</dt><dd>{d.windowMinutes} minutes</dd></div>
          <div><dt>Reboot</dt><dd>{words(d.rebootSetting)}</dd></div>
          <div><dt>Machines</dt><dd>{d.machineIds.length} named{d.targetFilter ? `, plus those matching${d.targetFilter.tags.length ? ` tags ${d.targetFilter.tags.join(', ')}` : ''}${d.targetFilter.nameContains ? ` name containing “${d.targetFilter.nameContains}”` : ''}` : ''}</dd></div>
          <div><dt>Include</dt><dd>{d.includePatterns.join(', ') || '—'}</dd></div>
          <div><dt>Exclude</dt><dd>{d.excludePatterns.join(', ') || '—'}</dd></div>
          <div><dt>Max concurrent machines</dt><dd>{limit(d.maxConcurrent, 'All (100 at a time)')}</dd></div>
          <div><dt>Max failures</dt><dd>{limit(d.maxFailures, 'No limit')}</dd></div>
        </dl>
      </section>
      {d.rings && (
        <section className="card" aria-labelledby="deployment-rings-title">
          <h2 id="deployment-rings-title">Rings ({d.rings.length})</h2>
          <ol className="deployment-rings">
            {d.rings.map((r, i) => <li key={i}><strong>{r.name}</strong>: {ringChoice(r)}. Gate: {gateText(r, i === d.rings!.length - 1)}.</li>)}
          </ol>
        </section>
      )}
      {d.steps && (
        <section className="card" aria-labelledby="deployment-steps-title">
          <h2 id="deployment-steps-title">Steps ({d.steps.length})</h2>
          <ol className="deployment-steps">
            {d.steps.map((step, i) => <li key={i}><strong>{step.name}</strong>: {stepText(step)}.</li>)}
          </ol>
        </section>
      )}
      <h2>Runs</h2>
      {d.runs.totalCount === 0 ? <p className="muted">Not run yet.</p> : (
        <TableBox label="Runs">
          <table>
            <thead><tr><th scope="col">Started</th><th scope="col">Trigger</th><th scope="col">Status</th><th scope="col" className="num">Succeeded</th><th scope="col" className="num">Failed</th><th scope="col" className="num">Not attempted</th></tr></thead>
            <tbody>
              {d.runs.edges.map(({ node: r }) => (
                <tr key={r.id}>
                  <td><Link to={`/runs/${r.id}`}>{when(r.startedAt) === '—' ? 'Not started' : when(r.startedAt)}</Link></td>
                  <td>{words(r.trigger)}</td>
                  <td><Badge value={r.status} /></td>
                  <td className="num">{r.counts.succeeded}</td>
                  <td className="num">{r.counts.failed}</td>
                  <td className="num">{r.counts.notAttempted}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      )}
    </Page>
  );
}
