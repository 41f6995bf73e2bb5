import { useState, type FormEvent } from 'react';
import { useMutation } from 'urql';
import { ApproveRingDocument, RejectRingDocument, ResumeRunDocument } from '../graphql.generated';
import { gateText, ringChoice } from '../rings';
import type { Run } from '../runProgress';
import { useRoleAllows } from '../session';
import { Badge, Problems, TableBox, when } from '../ui';

type RunRing = Run['rings'][number];

const ringLabel = (r: Pick<RunRing, 'ring' | 'name'>) => (r.name === `Ring ${r.ring}` ? r.name : `Ring ${r.ring} (${r.name})`);

/** What the ring's gate says now, in a sentence: who or what the run waits for, and why. */
function gateNow(r: RunRing, next: RunRing | undefined): string {
  const total = r.machineCount;
  const failed = r.failedCount ?? 0;
  const finished = `${total} machine${total === 1 ? '' : 's'} finished, ${failed} failed`;
  const then = next ? `${ringLabel(next)} starts` : 'the run ends';
  switch (r.status) {
    case 'SOAKING':
      return `Soaking: ${finished}; ${then} after ${when(r.soakEndsAt)}${r.definition.gate.requireApproval ? ' and an operator’s approval' : ''}.`;
    case 'WAITING_FOR_APPROVAL':
      return `Waiting for an operator’s approval: ${finished}, within its gate (${gateText(r.definition, false)}); ${then} once approved.`;
    case 'HALTED':
      return `Halted: ${r.reason ?? 'its gate failed'}`;
    default:
      return '';
  }
}

/**
 * The gate that holds a run (a ring waiting for approval, or a halted run), and what an operator
 * may do about it: approve or reject the ring, resume or cancel the run. A VIEWER sees why it waits
 * and who may act, without the buttons.
 */
function GateDecision({ run, ring, next, onCancel, canceling }: { run: Run; ring: RunRing; next: RunRing | undefined; onCancel: () => void; canceling: boolean }) {
  const canOperate = useRoleAllows('OPERATOR');
  const [approval, approve] = useMutation(ApproveRingDocument);
  const [rejection, reject] = useMutation(RejectRingDocument);
  const [resumption, resume] = useMutation(ResumeRunDocument);
  const [rejecting, setRejecting] = useState(false);
  const [reason, setReason] = useState('');
  const [sent, setSent] = useState<string | null>(null);
  const halted = ring.status === 'HALTED';
  const busy = approval.fetching || rejection.fetching || resumption.fetching;

  async function submitRejection(event: FormEvent) {
    event.preventDefault();
    const result = await reject({ runId: run.id, ring: ring.ring, reason });
    if (!result.error) {
      setRejecting(false);
      setSent(`${ringLabel(ring)} rejected: the run ends canceled.`);
    }
  }
  const approveIt = async () => {
    if (!(await approve({ runId: run.id, ring: ring.ring })).error) setSent(`${ringLabel(ring)} approved: ${next ? `${ringLabel(next)} starts` : 'the run goes on'}.`);
  };
  const resumeIt = async () => {
    if (!(await resume({ id: run.id })).error) setSent(`Resumed: ${next ? `${ringLabel(next)} starts` : 'the run goes on'}.`);
  };

  return (
    <section className={`card gate ${halted ? 'gate-halted' : 'gate-waiting'}`} aria-labelledby="gate-title">
      <h2 id="gate-title">{halted ? `Run halted at ${ringLabel(ring)}` : `${ringLabel(ring)} waits for approval`}</h2>
      <p className="gate-why">{gateNow(ring, next)}</p>
      <Problems error={approval.error ?? rejection.error ?? resumption.error} />
      {sent && <p role="status" className="notice">{sent}</p>}
      {!canOperate ? (
        <p className="muted">An OPERATOR or ADMIN can {halted ? 'resume or cancel the run' : 'approve or reject this ring'}; your role may only look.</p>
      ) : rejecting ? (
        <form onSubmit={(e) => void submitRejection(e)} className="reject-form">
          <label htmlFor="reject-reason">Why reject {ringLabel(ring)}? The run ends canceled with this reason.</label>
          <textarea id="reject-reason" rows={2} value={reason} onChange={(e) => setReason(e.target.value)} />
          <div className="actions">
            <button type="submit" className="danger" disabled={busy}>Reject {ringLabel(ring)}</button>
            <button type="button" className="secondary" onClick={() => setRejecting(false)}>Keep waiting</button>
          </div>
        </form>
      ) : (
        <div className="actions">
          {halted ? (
            <>
              <button onClick={() => void resumeIt()} disabled={busy}>Resume run</button>
              <button className="danger" onClick={onCancel} disabled={busy || canceling}>Cancel run</button>
            </>
          ) : (
            <>
              <button onClick={() => void approveIt()} disabled={busy}>Approve {ringLabel(ring)}</button>
              <button className="secondary" onClick={() => setRejecting(true)} disabled={busy}>Reject…</button>
            </>
          )}
        </div>
      )}
    </section>
  );
}

/**
 * A ringed run's rings (how each chose its machines, its gate, where it stands), the gate that
 * holds the run with the operator's buttons, and the frozen update set.
 */
export function RunRingsSection({ run, onCancel, canceling }: { run: Run; onCancel: () => void; canceling: boolean }) {
  if (run.rings.length === 0) return null;
  const names = new Map(run.machineRuns.map((m) => [m.machineId, m.machineName]));
  const holding = run.rings.findIndex((r) => r.status === 'WAITING_FOR_APPROVAL' || r.status === 'HALTED');
  return (
    <>
      {/* Keyed by the gate: what was said or typed at one gate does not carry over to the next. */}
      {holding >= 0 && <GateDecision key={`${run.rings[holding]!.ring}-${run.rings[holding]!.status}`} run={run} ring={run.rings[holding]!} next={run.rings.slice(holding + 1).find((r) => r.status !== 'SKIPPED')} onCancel={onCancel} canceling={canceling} />}
      <section className="card run-rings" aria-labelledby="rings-title">
        <h2 id="rings-title">Rings ({run.rings.length})</h2>
        <TableBox label="Rings of the run">
          <table className="rings">
            <thead><tr><th scope="col">Ring</th><th scope="col">Machines chosen by</th><th scope="col">Gate</th><th scope="col">Status</th><th scope="col" className="num">Machines</th><th scope="col" className="num">Failed</th><th scope="col">Started</th><th scope="col">Ended</th><th scope="col">Gate now</th></tr></thead>
            <tbody>
              {run.rings.map((r, i) => (
                <tr key={r.ring} data-ring={r.ring} data-status={r.status}>
                  <th scope="row">{ringLabel(r)}</th>
                  <td className="small">{ringChoice(r.definition, names)}</td>
                  <td className="small">{gateText(r.definition, i === run.rings.length - 1)}</td>
                  <td><Badge value={r.status} /></td>
                  <td className="num">{r.machineCount}</td>
                  <td className="num">{r.failedCount ?? '—'}</td>
                  <td>{when(r.startedAt)}</td>
                  <td>{when(r.endedAt)}</td>
                  <td className="small">
                    {r.status === 'SOAKING' && `Soaks until ${when(r.soakEndsAt)}`}
                    {r.status === 'WAITING_FOR_APPROVAL' && 'Waits for an operator'}
                    {(r.status === 'HALTED' || r.status === 'REJECTED') && r.reason}
                    {r.decidedBy && r.status !== 'REJECTED' && `Promoted by ${r.decidedBy}${r.decidedAt ? `, ${when(r.decidedAt)}` : ''}`}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      </section>
      <section className="card update-set" aria-labelledby="update-set-title">
        <h2 id="update-set-title">Approved update set{run.updateSet ? ` (${run.updateSet.length})` : ''}</h2>
        {run.updateSet === null ? (
          <p className="muted">Not fixed yet: the first ring that starts fixes it from its machines’ plans.</p>
        ) : (
          <>
            <p className="help">Fixed when the first ring started. Every ring installs only these versions; a newer version published since is Not selected (“not in the run’s approved set”).</p>
            <TableBox label="Approved update set">
              <table>
                <thead><tr><th scope="col">Package or KB</th><th scope="col">Version</th></tr></thead>
                <tbody>
                  {run.updateSet.map((u) => <tr key={`${u.name}=${u.version}`}><td>{u.name}</td><td>{u.version}</td></tr>)}
                  {run.updateSet.length === 0 && <tr><td colSpan={2} className="muted">Empty: the first ring selected no update.</td></tr>}
                </tbody>
              </table>
            </TableBox>
          </>
        )}
      </section>
    </>
  );
}
