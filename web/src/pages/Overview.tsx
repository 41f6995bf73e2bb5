import { useQuery } from 'urql';
import { OverviewDocument, type OverviewQuery } from '../graphql.generated';
import { Link } from '../router';
import { Badge, Loading, Meter, Page, Problems, TableBox, words } from '../ui';

type Summary = OverviewQuery['complianceSummary'];

/** Compliance as a donut: each state's share of the fleet, with the numbers beside it. */
function ComplianceChart({ s }: { s: Summary }) {
  const slices = [
    { label: 'Compliant', value: s.compliant, tone: 'good' },
    { label: 'Non-compliant', value: s.nonCompliant, tone: 'bad' },
    { label: 'Not assessed', value: s.notAssessed, tone: 'muted' },
  ];
  const r = 40;
  const circumference = 2 * Math.PI * r;
  let offset = 0;
  return (
    <figure className="chart">
      <svg viewBox="0 0 100 100" width="160" height="160" role="img" aria-label={`Compliance: ${slices.map((x) => `${x.value} ${x.label.toLowerCase()}`).join(', ')}`}>
        <circle cx="50" cy="50" r={r} className="ring" />
        {s.total > 0 && slices.map((slice) => {
          const length = (slice.value / s.total) * circumference;
          const arc = <circle key={slice.label} cx="50" cy="50" r={r} className={`slice ${slice.tone}`} strokeDasharray={`${length} ${circumference - length}`} strokeDashoffset={-offset} transform="rotate(-90 50 50)" />;
          offset += length;
          return arc;
        })}
        <text x="50" y="48" textAnchor="middle" className="chart-total">{s.total}</text>
        <text x="50" y="62" textAnchor="middle" className="chart-caption">machines</text>
      </svg>
      <figcaption>
        <ul className="legend">
          {slices.map((x) => <li key={x.label}><span className={`swatch ${x.tone}`} aria-hidden="true" />{x.label}: <strong>{x.value}</strong></li>)}
        </ul>
      </figcaption>
    </figure>
  );
}

export function OverviewPage() {
  const [{ data, error, fetching }] = useQuery({ query: OverviewDocument });
  const s = data?.complianceSummary;
  const agents = data?.agentVersions;
  const running = (data?.deployments.edges ?? []).map((e) => e.node).filter((d) => d.lastRun?.status === 'IN_PROGRESS' || d.lastRun?.status === 'SCHEDULED');
  const maxPending = Math.max(1, ...(s?.pendingByClassification ?? []).map((c) => c.updateCount));
  return (
    <Page title="Overview">
      <Problems error={error} />
      {!s && fetching && <Loading what="the fleet" />}
      {s && (
        <div className="cards">
          <section className="card" aria-labelledby="compliance-title">
            <h2 id="compliance-title">Compliance</h2>
            <ComplianceChart s={s} />
            <p><Link to="/computers?compliance=NON_COMPLIANT">Non-compliant computers</Link></p>
          </section>
          <section className="card" aria-labelledby="pending-title">
            <h2 id="pending-title">Pending updates by classification</h2>
            {s.pendingByClassification.length === 0 ? <p className="muted">No pending update.</p> : (
              <table className="bars">
                <thead><tr><th scope="col">Classification</th><th scope="col">Updates</th><th scope="col">Machines</th></tr></thead>
                <tbody>
                  {s.pendingByClassification.map((c) => (
                    <tr key={c.classification}>
                      <th scope="row"><Link to={`/updates?classification=${c.classification}`}>{words(c.classification)}</Link></th>
                      <td><div className="bar-cell"><Meter value={c.updateCount} max={maxPending} label={`${words(c.classification)} updates`} tone={c.classification === 'CRITICAL' ? 'bad' : c.classification === 'SECURITY' ? 'warn' : 'plain'} /><span>{c.updateCount}</span></div></td>
                      <td>{c.machineCount}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>
          <section className="card" aria-labelledby="readiness-title">
            <h2 id="readiness-title">Update agent readiness</h2>
            <dl className="stats">
              <div><dt><Link to="/computers?readiness=READY">Ready</Link></dt><dd>{s.ready}</dd></div>
              <div><dt><Link to="/computers?readiness=DISCONNECTED">Disconnected</Link></dt><dd className={s.disconnected > 0 ? 'bad-text' : ''}>{s.disconnected}</dd></div>
              <div><dt><Link to="/computers?readiness=NOT_CONFIGURED">Not configured</Link></dt><dd>{s.notConfigured}</dd></div>
            </dl>
          </section>
          {agents && <section className="card" aria-labelledby="agents-title">
            <h2 id="agents-title">Agent versions</h2>
            <p>
              This server ships version <strong>{agents.shippedVersion ?? '—'}</strong>;{' '}
              <span className={agents.outdatedMachines > 0 ? 'bad-text' : ''}>{agents.outdatedMachines} machine{agents.outdatedMachines === 1 ? '' : 's'} behind it</span>.
            </p>
            <table>
              <thead><tr><th scope="col">Version</th><th scope="col">Machines</th></tr></thead>
              <tbody>
                {agents.versions.map((v) => (
                  <tr key={v.version ?? 'none'}>
                    <th scope="row">{v.version ?? 'never reported'}{v.outdated && <> <span className="badge warn">Outdated</span></>}</th>
                    <td>{v.machines}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>}
          <section className="card wide" aria-labelledby="running-title">
            <h2 id="running-title">Deployments running now</h2>
            {running.length === 0 ? <p className="muted">None. <Link to="/deployments">All deployments</Link></p> : (
              <TableBox label="Deployments running now">
                <table>
                  <thead><tr><th scope="col">Deployment</th><th scope="col">Status</th><th scope="col">Progress</th></tr></thead>
                  <tbody>
                    {running.map((d) => {
                      const c = d.lastRun!.counts;
                      const done = c.succeeded + c.failed + c.notAttempted;
                      const todo = c.total - c.notSelected;
                      return (
                        <tr key={d.id}>
                          <td><Link to={`/runs/${d.lastRun!.id}`}>{d.name}</Link></td>
                          <td><Badge value={d.lastRun!.status} /></td>
                          <td><div className="bar-cell"><Meter value={done} max={todo} label={`${d.name} progress`} tone="busy" /><span>{done}/{todo}</span></div></td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </TableBox>
            )}
          </section>
        </div>
      )}
    </Page>
  );
}
