import { useState } from 'react';
import { useMutation, useQuery, useSubscription } from 'urql';
import { AssessMachinesDocument, MachineChangedDocument, MachineDocument } from '../graphql.generated';
import { Link } from '../router';
import { Badge, Loading, Page, Problems, TableBox, updateCountsText, when, words, type UpdateCounts } from '../ui';
import { Readiness } from './Computers';

/** Pending updates shown at once (the `first` of MACHINE): the API's largest page, as a machine may have thousands. */
const UPDATES_PAGE = 500;

/** How a run went for this machine: its status and, once it ended, its updates' counts beside it. */
function ThisMachine({ run }: { run: { status: string; counts: UpdateCounts } | undefined }) {
  if (!run) return <Badge value={undefined} />;
  const ended = !['PENDING', 'IN_PROGRESS', 'REBOOTING'].includes(run.status);
  return <><Badge value={run.status} />{ended && <span className="run-counts"> {updateCountsText(run.counts)}</span>}</>;
}

export function MachinePage({ id }: { id: string }) {
  // The cursors of the pending updates' pages seen so far (null: the first page).
  const [updateCursors, setUpdateCursors] = useState<Array<string | null>>([null]);
  const [{ data, error, fetching }, refetch] = useQuery({ query: MachineDocument, variables: { id, updatesAfter: updateCursors[updateCursors.length - 1] } });
  // A new assessment, readiness or compliance arrives live: read the page again.
  useSubscription({ query: MachineChangedDocument, variables: { id } }, () => {
    refetch({ requestPolicy: 'network-only' });
    return null;
  });
  const [assess, assessNow] = useMutation(AssessMachinesDocument);
  const m = data?.machine;
  if (!data && fetching) return <Loading what="the machine" />;
  if (data && !m) return <Page title="Machine not found"><p>No machine with id {id}. <Link to="/computers">All computers</Link></p></Page>;
  if (!m) return <Problems error={error} />;
  const asked = assess.data?.assessMachines[0];
  return (
    <Page title={m.name} actions={!m.removedAt && <button onClick={() => void assessNow({ ids: [m.id] })} disabled={assess.fetching}>Assess now</button>}>
      <Problems error={error ?? assess.error} />
      {m.removedAt && <p role="status" className="notice">Removed from management on {when(m.removedAt)}: its agent's credential was revoked. Its history stays, as it was then.</p>}
      {asked && <p role="status" className="notice">{asked.requested ? 'Assessment requested: the agent runs it within seconds.' : `Not requested: ${asked.reason}`}</p>}
      <section className="card" aria-label="Facts">
        <dl className="facts">
          <div><dt>Compliance</dt><dd><Badge value={m.compliance} /></dd></div>
          <div><dt>Update agent readiness</dt><dd><Readiness detail={m.readinessDetail} /></dd></div>
          <div><dt>Operating system</dt><dd>{m.osName} {m.osVersion} ({words(m.osType)})</dd></div>
          <div><dt>Environment</dt><dd>{m.environment === 'ON_PREMISES' ? 'On-premises' : m.environment}</dd></div>
          <div><dt>Critical and security</dt><dd>{m.criticalAndSecurityCount}</dd></div>
          <div><dt>Other</dt><dd>{m.otherCount}</dd></div>
          <div><dt>Last assessed</dt><dd>{when(m.lastAssessedAt)}</dd></div>
          <div><dt>Last seen</dt><dd>{when(m.lastSeenAt)}</dd></div>
          <div><dt>Package manager</dt><dd>{m.packageManager ?? '—'}</dd></div>
          <div><dt>Agent version</dt><dd>{m.agentVersion ?? '—'}</dd></div>
          <div><dt>Tags</dt><dd>{m.tags.length ? m.tags.join(', ') : '—'}</dd></div>
          <div><dt>Reboot pending</dt><dd>{m.rebootPending ? 'Yes' : 'No'}</dd></div>
        </dl>
        {m.lastAssessmentError && <p className="alert" role="alert">Last assessment failed ({m.lastAssessmentError.code}, {when(m.lastAssessmentError.at)}): {m.lastAssessmentError.message}</p>}
        {m.repositoryProblems.map((p) => <p key={p.repository} className="notice">Repository {p.repository} could not be read: {p.message}. The list of updates may be incomplete.</p>)}
        {m.warnings.map((w) => <p key={w} className="notice">{w}</p>)}
      </section>

      <h2>Pending updates ({m.pendingUpdates.totalCount})</h2>
      {m.pendingUpdates.totalCount === 0 ? <p className="muted">Nothing pending.</p> : (
        <TableBox label="Pending updates">
          <table>
            <thead><tr><th scope="col">Update</th><th scope="col">Classification</th><th scope="col">Severity</th><th scope="col">Installed</th><th scope="col">Available</th><th scope="col">Advisories and CVEs</th><th scope="col" title="What approval delays and the SLA count from: the advisory's issue date when the update's first report in the fleet gave one, otherwise when fleetpatch first saw it.">Released / first seen</th><th scope="col">Due</th><th scope="col">Reboot</th></tr></thead>
            <tbody>
              {m.pendingUpdates.edges.map(({ node: u }) => (
                <tr key={`${u.name}.${u.arch ?? ''}`}>
                  <td>{u.name}{u.arch ? <span className="muted small"> {u.arch}</span> : null}{u.note && <p className="update-note small">{u.note}</p>}</td>
                  <td><Badge value={u.classification} /></td>
                  <td>{words(u.severity)}</td>
                  <td>{u.installedVersion ?? <span className="muted">new</span>}</td>
                  <td>{u.availableVersion}</td>
                  <td className="small">{[...u.advisoryIds, ...u.cveIds].join(', ') || '—'}</td>
                  <td className="small">{u.clockFrom ? <><time dateTime={u.clockFrom}>{when(u.clockFrom)}</time> <span className="muted">{u.clockFrom === u.firstSeenAt ? 'first seen' : 'issued'}</span></> : '—'}</td>
                  <td className="small">{u.dueAt ? <><time dateTime={u.dueAt}>{when(u.dueAt)}</time>{new Date(u.dueAt).getTime() <= Date.now() && <> <span className="badge bad">Overdue</span></>}</> : '—'}</td>
                  <td>{u.rebootSuggested ? 'May need a reboot' : ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      )}
      {m.pendingUpdates.totalCount > UPDATES_PAGE && (
        <nav className="pager" aria-label="Pages of pending updates">
          <button disabled={updateCursors.length === 1} onClick={() => setUpdateCursors((c) => c.slice(0, -1))}>Previous page</button>
          <span>Page {updateCursors.length} of {Math.ceil(m.pendingUpdates.totalCount / UPDATES_PAGE)}</span>
          <button disabled={!m.pendingUpdates.pageInfo.hasNextPage} onClick={() => setUpdateCursors((c) => [...c, m.pendingUpdates.pageInfo.endCursor])}>Next page</button>
        </nav>
      )}

      <h2>Assessment history</h2>
      <TableBox label="Assessment history">
        <table>
          <thead><tr><th scope="col">Finished</th><th scope="col">Trigger</th><th scope="col" className="num">Critical</th><th scope="col" className="num">Security</th><th scope="col" className="num">Other</th><th scope="col">Reboot pending</th></tr></thead>
          <tbody>
            {m.assessments.edges.map(({ node: a }) => (
              <tr key={a.id}><td>{when(a.assessedAt)}{Math.abs(Date.parse(a.finishedAt) - Date.parse(a.assessedAt)) >= 120_000 && <span className="muted small"> (the agent's clock said {when(a.finishedAt)})</span>}</td><td>{words(a.trigger)}</td><td className="num">{a.criticalCount}</td><td className="num">{a.securityCount}</td><td className="num">{a.otherCount}</td><td>{a.rebootPending ? 'Yes' : 'No'}</td></tr>
            ))}
          </tbody>
        </table>
      </TableBox>

      <h2>Deployment runs</h2>
      {m.deploymentRuns.totalCount === 0 ? <p className="muted">This machine has not taken part in a deployment yet.</p> : (
        <TableBox label="Deployment runs">
          <table>
            <thead><tr><th scope="col">Deployment</th><th scope="col">Started</th><th scope="col">Run</th><th scope="col">This machine</th></tr></thead>
            <tbody>
              {m.deploymentRuns.edges.map(({ node: r }) => (
                <tr key={r.id}>
                  <td><Link to={`/runs/${r.id}`}>{r.deployment.name}</Link></td>
                  <td>{when(r.startedAt)}</td>
                  <td><Badge value={r.status} /></td>
                  <td><ThisMachine run={r.machineRun ?? undefined} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      )}
    </Page>
  );
}
