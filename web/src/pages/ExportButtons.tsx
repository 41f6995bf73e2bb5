import { useMutation } from 'urql';
import { CreateExportDocument, type ComplianceHistoryGroupBy, type ExportKind } from '../graphql.generated';

/**
 * "Export CSV" and "Export JSON": asks the server for a signed link and lets the browser download it.
 * `history` (COMPLIANCE_HISTORY) names the days and grouping, those of the chart beside the buttons.
 */
export function ExportButtons({ kind, runId, history }: { kind: ExportKind; runId?: string; history?: { from: string; to: string; groupBy: ComplianceHistoryGroupBy } }) {
  const [state, createExport] = useMutation(CreateExportDocument);
  const download = async (format: 'CSV' | 'JSON') => {
    const result = await createExport({ kind, format, runId: runId ?? null, from: history?.from ?? null, to: history?.to ?? null, groupBy: history?.groupBy ?? null });
    const url = result.data?.createExport.url;
    if (url) window.location.assign(url);
  };
  return (
    <>
      <button disabled={state.fetching} onClick={() => void download('CSV')}>Export CSV</button>
      <button disabled={state.fetching} onClick={() => void download('JSON')}>Export JSON</button>
      {state.error && <span role="alert" className="error">{state.error.graphQLErrors[0]?.message ?? state.error.message}</span>}
    </>
  );
}
