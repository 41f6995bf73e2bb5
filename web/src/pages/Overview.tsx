import { useEffect } from 'react';
import { useQuery } from 'urql';
import { OverviewDocument, type OverviewQuery } from '../graphql.generated';
import { Link } from '../router';
import { ExportButtons } from './ExportButtons';
import { Badge, Loading, Meter, Page, Problems, TableBox, words } from '../ui';

type Summary = OverviewQuery['complianceSummary'];
type History = OverviewQuery['complianceHistory'];

const DAY_MS = 86_400_000;
const percent = (share: number) => `${Math.round(share * 100)}%`;

/**
 * The compliant share of assessed machines, one point per daily snapshot, as a sparkline: an inline
 * SVG drawn with attributes and classes only (the console's CSP allows no inline style). A day
 * without a snapshot breaks the line rather than dropping it to zero.
 */
function ComplianceTrend({ history }: { history: History }) {
  const points = (history.series[0]?.points ?? []).filter((p) => p.compliantShare !== null && p.compliantShare !== undefined);
  const from = Date.parse(`${history.from}T00:00:00Z`);
  const days = Math.round((Date.parse(`${history.to}T00:00:00Z`) - from) / DAY_MS);
  if (points.length === 0) return <p className="muted">No snapshot yet: the first is taken at 00:05 UTC, or now with takeComplianceSnapshot.</p>;
  const width = 240;
  const height = 60;
  const x = (day: string) => (days === 0 ? width / 2 : ((Date.parse(`${day}T00:00:00Z`) - from) / DAY_MS / days) * (width - 8) + 4);
  const y = (share: number) => height - 4 - share * (height - 8);
  let path = '';
  let previous: string | null = null;
  for (const p of points) {
    const joined = previous !== null && Date.parse(`${p.day}T00:00:00Z`) - Date.parse(`${previous}T00:00:00Z`) === DAY_MS;
    path += `${joined ? 'L' : 'M'}${x(p.day).toFixed(1)},${y(p.compliantShare!).toFixed(1)} `;
    previous = p.day;
  }
  const latest = points[points.length - 1]!;
  const first = points[0]!;
  const label = `Compliant share of assessed machines from ${history.from} to ${history.to}: ${percent(first.compliantShare!)} on ${first.day}, ${percent(latest.compliantShare!)} on ${latest.day} (${points.length} daily snapshot${points.length === 1 ? '' : 's'}).`;
  return (
    <figure className="trend">
      <svg viewBox={`0 0 ${width} ${height}`} width={width} height={height} role="img" aria-label={label}>
        <line x1="0" x2={width} y1={y(1)} y2={y(1)} className="trend-grid" />
        <line x1="0" x2={width} y1={y(0)} y2={y(0)} className="trend-grid" />
        <path d={path.trim()} className="trend-line" />
        {points.map((p) => (
          <circle key={p.day} cx={x(p.day)} cy={y(p.compliantShare!)} r="2.5" className="trend-point">
            <title>{`${p.day}: ${percent(p.compliantShare!)} compliant (${p.compliant} of ${p.compliant + p.nonCompliant} assessed; ${p.notAssessed} not assessed)`}</title>
          </circle>
        ))}
      </svg>
      <figcaption><strong>{percent(latest.compliantShare!)}</strong> compliant on {latest.day}; {percent(first.compliantShare!)} on {first.day}</figcaption>
    </figure>
  );
}

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

/**
 * How often an open Overview reads the fleet again. The summary is exact when read, but a page read
 * once would keep showing the fleet as it was then (later reports, agents falling silent); reading
 * again at this pace follows it without subscribing to every machine's events. A read costs a few
 * rows whatever the fleet's size.
 */
const REFRESH_MS = 10_000;

export function OverviewPage() {
  const [{ data, error, fetching }, refetch] = useQuery({ query: OverviewDocument });
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') refetch({ requestPolicy: 'network-only' });
    }, REFRESH_MS);
    return () => clearInterval(timer);
  }, [refetch]);
  const s = data?.complianceSummary;
  const history = data?.complianceHistory;
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
          <section className="card" aria-labelledby="trend-title">
            <h2 id="trend-title">Compliance trend</h2>
            {history && <ComplianceTrend history={history} />}
            {history && <div className="actions"><ExportButtons kind="COMPLIANCE_HISTORY" history={{ from: history.from, to: history.to, groupBy: 'FLEET' }} /></div>}
          </section>
          <section className="card" aria-labelledby="sla-title">
            <h2 id="sla-title">SLA</h2>
            <dl className="stats">
              <div><dt><Link to="/computers?overdue=true">Overdue machines</Link></dt><dd className={s.overdueMachines > 0 ? 'bad-text' : ''}>{s.overdueMachines}</dd></div>
              <div><dt>Overdue updates</dt><dd className={s.overdueUpdates > 0 ? 'bad-text' : ''}>{s.overdueUpdates}</dd></div>
            </dl>
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
