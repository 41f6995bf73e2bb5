import { Fragment, useState } from 'react';
import { useQuery } from 'urql';
import { MachinesMissingDocument, MissingDocument, type Classification, type MissingQuery } from '../graphql.generated';
import { Link, navigate, useLocation } from '../router';
import { Badge, Loading, Page, Problems, TableBox, words } from '../ui';
import { ExportButtons } from './ExportButtons';
import { CLASSIFICATIONS } from '../../../src/domain/vocabulary.js';

const PAGE_SIZE = 50;

type Missing = MissingQuery['missingUpdates']['edges'][number]['node'];

/** The machines missing one update (by name and classification), each linking to its page. */
function MachinesMissing({ update }: { update: Missing }) {
  const [{ data, error }] = useQuery({
    query: MachinesMissingDocument,
    variables: { name: update.name, classification: [update.classification] },
  });
  if (error) return <Problems error={error} />;
  if (!data) return <Loading what="machines" />;
  const machines = data.missingUpdates.edges.find((e) => e.node.name === update.name)?.node.machines;
  if (!machines) return <p className="muted">No machine misses it any more.</p>;
  return (
    <>
      <ul className="machine-list" aria-label={`Machines missing ${update.name}`}>
        {machines.edges.map(({ node: m }) => <li key={m.id}><Link to={`/computers/${m.id}`}>{m.name}</Link> <Badge value={m.compliance} /> <Badge value={m.agentReadiness} /></li>)}
      </ul>
      {machines.totalCount > machines.edges.length && <p className="muted small">And {machines.totalCount - machines.edges.length} more.</p>}
    </>
  );
}

export function MissingUpdatesPage() {
  const { search } = useLocation();
  const classification = search.get('classification') ?? '';
  const [typed, setTyped] = useState(search.get('q') ?? '');
  const [q, setQ] = useState(typed);
  const [cursors, setCursors] = useState<Array<string | null>>([null]);
  const [open, setOpen] = useState<string | null>(null);
  const [{ data, error, fetching }] = useQuery({
    query: MissingDocument,
    variables: { filter: { classification: classification ? [classification as Classification] : undefined, nameContains: q || undefined }, first: PAGE_SIZE, after: cursors[cursors.length - 1] },
  });
  const rows = data?.missingUpdates.edges.map((e) => e.node) ?? [];
  return (
    <Page title="Missing updates" actions={<ExportButtons kind="MISSING_UPDATES" />}>
      <form className="filters" role="search" aria-label="Filter missing updates" onSubmit={(e) => { e.preventDefault(); setCursors([null]); setQ(typed.trim()); }}>
        <div className="field">
          <label htmlFor="update-search">Name contains</label>
          <input id="update-search" type="search" value={typed} onChange={(e) => setTyped(e.target.value)} onBlur={() => { setCursors([null]); setQ(typed.trim()); }} />
        </div>
        <div className="field">
          <label htmlFor="filter-classification">Classification</label>
          <select id="filter-classification" value={classification} onChange={(e) => { setCursors([null]); navigate(e.target.value ? `/updates?classification=${e.target.value}` : '/updates', { replace: true }); }}>
            <option value="">Any</option>
            {CLASSIFICATIONS.map((c) => <option key={c} value={c}>{words(c)}</option>)}
          </select>
        </div>
        <button type="submit">Search</button>
      </form>
      <Problems error={error} />
      {!data && fetching && <Loading what="missing updates" />}
      {data && (
        <>
          <p className="muted" role="status">{data.missingUpdates.totalCount} update{data.missingUpdates.totalCount === 1 ? '' : 's'} missing across the fleet</p>
          <TableBox label="Missing updates">
            <table>
              <thead><tr><th scope="col">Update</th><th scope="col">Classification</th><th scope="col">Severity</th><th scope="col">Available</th><th scope="col">Advisories and CVEs</th><th scope="col">Machines missing it</th></tr></thead>
              <tbody>
                {rows.map((u) => (
                  <Fragment key={`${u.name}.${u.classification}`}>
                    <tr>
                      <td>{u.name}{u.rebootSuggested && <span className="muted small"> (may need a reboot)</span>}</td>
                      <td><Badge value={u.classification} /></td>
                      <td>{words(u.severity)}</td>
                      <td className="small">{u.availableVersions.join(', ')}</td>
                      <td className="small">{[...u.advisoryIds, ...u.cveIds].join(', ') || '—'}</td>
                      <td>
                        <button className="link-button" aria-expanded={open === `${u.name}.${u.classification}`} aria-controls={`missing-${u.name}-${u.classification}`} onClick={() => setOpen(open === `${u.name}.${u.classification}` ? null : `${u.name}.${u.classification}`)}>
                          {u.machineCount} machine{u.machineCount === 1 ? '' : 's'}
                        </button>
                      </td>
                    </tr>
                    {open === `${u.name}.${u.classification}` && <tr id={`missing-${u.name}-${u.classification}`}><td colSpan={6}><MachinesMissing update={u} /></td></tr>}
                  </Fragment>
                ))}
              </tbody>
            </table>
          </TableBox>
          <nav className="pager" aria-label="Pages of missing updates">
            <button disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>Previous page</button>
            <span>Page {cursors.length} of {Math.max(1, Math.ceil(data.missingUpdates.totalCount / PAGE_SIZE))}</span>
            <button disabled={!data.missingUpdates.pageInfo.hasNextPage} onClick={() => setCursors((c) => [...c, data.missingUpdates.pageInfo.endCursor])}>Next page</button>
          </nav>
        </>
      )}
    </Page>
  );
}
