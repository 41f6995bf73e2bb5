import { useEffect, useState } from 'react';
import { useQuery } from 'urql';
import { ComputersDocument, type AgentReadiness, type Compliance, type MachineRowFragment, type MachineSortField, type OsType, type SortDirection } from '../graphql.generated';
import { Link, navigate, useLocation } from '../router';
import { ExportButtons } from './ExportButtons';
import { Badge, ago, Loading, Page, Problems, TableBox, words } from '../ui';
import { AGENT_READINESS, COMPLIANCE_WORST_FIRST } from '../../../src/domain/vocabulary.js';

export type MachineRow = MachineRowFragment & {
  /** Another machine has the same name (asked for by the computers list). */
  duplicateName?: boolean;
  /** Asked for by the computers list: the agent's version, and whether it is older than the server's. */
  agentVersion?: string | null;
  outdated?: boolean | null;
};

const PAGE_SIZE = 25;

/** The readiness cell: the state, and for an agent that is not READY, why and since when. */
export function Readiness({ detail }: { detail: MachineRow['readinessDetail'] }) {
  return (
    <div className="readiness">
      <Badge value={detail.state} />
      {detail.state !== 'READY' && (
        <p className="reason">
          {detail.reason}
          {detail.since && <> (last heard <time dateTime={detail.since} title={new Date(detail.since).toLocaleString()}>{ago(detail.since)}</time>)</>}
        </p>
      )}
    </div>
  );
}

const SORTABLE: Record<string, string> = { name: 'NAME', compliance: 'COMPLIANCE', criticalAndSecurityCount: 'CRITICAL_AND_SECURITY_COUNT', otherCount: 'OTHER_COUNT' };

export function ComputersPage() {
  const { search } = useLocation();
  const compliance = search.get('compliance') ?? '';
  const readiness = search.get('readiness') ?? '';
  const osType = search.get('os') ?? '';
  const overdue = search.get('overdue') ?? '';
  const q = search.get('q') ?? '';
  const sort = search.get('sort') ?? 'COMPLIANCE';
  const direction = search.get('dir') ?? 'ASC';
  const [typed, setTyped] = useState(q);
  const [cursors, setCursors] = useState<Array<string | null>>([null]);

  const setParam = (name: string, value: string) => {
    const next = new URLSearchParams(location.search);
    if (value) next.set(name, value);
    else next.delete(name);
    setCursors([null]);
    navigate(`/computers${next.size > 0 ? `?${next}` : ''}`, { replace: true });
  };
  // Search as the operator types, once they pause.
  useEffect(() => {
    const timer = setTimeout(() => typed !== q && setParam('q', typed.trim()), 300);
    return () => clearTimeout(timer);
  });

  // The URL's values as typed; the API refuses one that is not of its enum.
  const filter = { compliance: compliance ? [compliance as Compliance] : undefined, readiness: readiness ? [readiness as AgentReadiness] : undefined, osType: (osType || undefined) as OsType | undefined, nameContains: q || undefined, overdue: overdue === 'true' ? true : overdue === 'false' ? false : undefined };
  const [{ data, error, fetching }] = useQuery({
    query: ComputersDocument,
    variables: { filter, orderBy: { field: sort as MachineSortField, direction: direction as SortDirection }, first: PAGE_SIZE, after: cursors[cursors.length - 1] },
  });
  const rows = data?.machines.edges.map((e) => e.node) ?? [];
  const pageNumber = cursors.length;
  const total = data?.machines.totalCount ?? 0;
  // A part of a name or several tags count their first 10,000 matches: past that, "more than".
  const exact = data?.machines.totalCountExact ?? true;

  const header = (key: string, label: string, numeric = false) => {
    const field = SORTABLE[key];
    if (!field) return <th scope="col" className={numeric ? 'num' : undefined}>{label}</th>;
    const active = sort === field;
    const nextDirection = active && direction === 'ASC' ? 'DESC' : 'ASC';
    return (
      <th scope="col" className={numeric ? 'num' : undefined} aria-sort={active ? (direction === 'ASC' ? 'ascending' : 'descending') : undefined}>
        <button className="sort" onClick={() => { const next = new URLSearchParams(location.search); next.set('sort', field); next.set('dir', nextDirection); setCursors([null]); navigate(`/computers?${next}`, { replace: true }); }}>
          {label}{active ? (direction === 'ASC' ? ' ▲' : ' ▼') : ''}
        </button>
      </th>
    );
  };

  return (
    <Page title="Computers" actions={<ExportButtons kind="COMPUTERS" />}>
      <form className="filters" role="search" aria-label="Filter computers" onSubmit={(e) => { e.preventDefault(); setParam('q', typed.trim()); }}>
        <div className="field">
          <label htmlFor="machine-search">Name contains</label>
          <input id="machine-search" type="search" value={typed} onChange={(e) => setTyped(e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor="filter-compliance">Compliance</label>
          <select id="filter-compliance" value={compliance} onChange={(e) => setParam('compliance', e.target.value)}>
            <option value="">Any</option>
            {COMPLIANCE_WORST_FIRST.map((v) => <option key={v} value={v}>{words(v)}</option>)}
          </select>
        </div>
        <div className="field">
          <label htmlFor="filter-readiness">Update agent readiness</label>
          <select id="filter-readiness" value={readiness} onChange={(e) => setParam('readiness', e.target.value)}>
            <option value="">Any</option>
            {AGENT_READINESS.map((v) => <option key={v} value={v}>{words(v)}</option>)}
          </select>
        </div>
        <div className="field">
          <label htmlFor="filter-os">OS type</label>
          <select id="filter-os" value={osType} onChange={(e) => setParam('os', e.target.value)}>
            <option value="">Any</option>
            <option value="LINUX">Linux</option>
            <option value="WINDOWS">Windows</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor="filter-overdue">SLA</label>
          <select id="filter-overdue" value={overdue} onChange={(e) => setParam('overdue', e.target.value)}>
            <option value="">Any</option>
            <option value="true">Overdue</option>
            <option value="false">Not overdue</option>
          </select>
        </div>
      </form>
      <Problems error={error} />
      {!data && fetching && <Loading what="computers" />}
      {data && (
        <>
          <p className="muted" role="status">{total === 0 ? 'No computer matches.' : exact ? `${total} computer${total === 1 ? '' : 's'}` : `More than ${total} computers`}</p>
          <TableBox label="Computers">
            <table className="computers">
              <thead>
                <tr>
                  {header('name', 'Name')}
                  {header('compliance', 'Compliance')}
                  {header('environment', 'Environment')}
                  {header('osType', 'OS type')}
                  {header('criticalAndSecurityCount', 'Critical and security', true)}
                  {header('otherCount', 'Other', true)}
                  {header('readiness', 'Update agent readiness')}
                  {header('agentVersion', 'Agent')}
                </tr>
              </thead>
              <tbody>
                {rows.map((m) => (
                  <tr key={m.id}>
                    <td><Link to={`/computers/${m.id}`}>{m.name}</Link>{m.duplicateName && <> <span className="badge warn" title="Another machine has this name: tell them apart by OS and last seen.">Duplicate name</span></>}<div className="muted small">{m.osName} {m.osVersion}</div></td>
                    <td><Badge value={m.compliance} />{m.overdueUpdateCount > 0 && <> <span className="badge bad" title="Approved updates past their SLA due date">{m.overdueUpdateCount} overdue</span></>}</td>
                    <td>{m.environment === 'ON_PREMISES' ? 'On-premises' : m.environment}</td>
                    <td>{words(m.osType)}</td>
                    <td className="num">{m.criticalAndSecurityCount}</td>
                    <td className="num">{m.otherCount}</td>
                    <td><Readiness detail={m.readinessDetail} /></td>
                    <td>{m.agentVersion ?? '—'}{m.outdated && <> <span className="badge warn" title="Older than the agent version this server ships: upgrade it with upgradeAgents.">Outdated</span></>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableBox>
          <nav className="pager" aria-label="Pages of computers">
            <button disabled={pageNumber === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>Previous page</button>
            <span>Page {pageNumber} of {exact ? Math.max(1, Math.ceil(total / PAGE_SIZE)) : `more than ${Math.floor(total / PAGE_SIZE)}`}</span>
            <button disabled={!data.machines.pageInfo.hasNextPage} onClick={() => setCursors((c) => [...c, data.machines.pageInfo.endCursor])}>Next page</button>
          </nav>
        </>
      )}
    </Page>
  );
}
