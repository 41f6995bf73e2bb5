import type { ReactNode } from 'react';
import type { CombinedError } from 'urql';
import { problemsOf } from './client';

/** The domain's words as an operator reads them: NON_COMPLIANT → Non-compliant. */
export const words = (value: string | null | undefined) => (value ? (value.charAt(0) + value.slice(1).toLowerCase().replace(/_/g, ' ')).replace(/^Non /, 'Non-') : '—');

const TONES: Record<string, string> = {
  COMPLIANT: 'good', READY: 'good', SUCCEEDED: 'good', DELIVERED: 'good',
  NON_COMPLIANT: 'bad', FAILED: 'bad', DISCONNECTED: 'bad', TIMED_OUT: 'bad', PARTIALLY_FAILED: 'warn', CRITICAL: 'bad',
  NOT_ASSESSED: 'muted', NOT_CONFIGURED: 'muted', NOT_SELECTED: 'muted', NOT_ATTEMPTED: 'warn', CANCELED: 'muted', NOT_STARTED: 'muted',
  IN_PROGRESS: 'busy', REBOOTING: 'busy', SCHEDULED: 'muted', PENDING: 'muted', SECURITY: 'warn',
  HALTED: 'bad', REJECTED: 'bad', WAITING_FOR_APPROVAL: 'warn', SOAKING: 'busy', RUNNING: 'busy', PROMOTED: 'good', DONE: 'good', SKIPPED: 'muted',
};

export function Badge({ value }: { value: string | null | undefined }) {
  return <span className={`badge ${TONES[value ?? ''] ?? 'plain'}`}>{words(value)}</span>;
}

export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function ago(iso: string | null | undefined): string {
  if (!iso) return 'never';
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 90) return `${Math.max(seconds, 0)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}

export interface UpdateCounts { total: number; succeeded: number; failed: number; notAttempted: number; notSelected: number }

/**
 * A machine run's (or a run's) updates in a phrase, beside its status: "2 of 3 updates succeeded,
 * 1 failed". Updates the deployment did not select are not counted.
 */
export function updateCountsText(c: UpdateCounts): string {
  const todo = c.total - c.notSelected;
  if (todo === 0) return 'no update to install';
  const rest = [c.failed > 0 ? `${c.failed} failed` : '', c.notAttempted > 0 ? `${c.notAttempted} not attempted` : ''].filter(Boolean);
  return [`${c.succeeded} of ${todo} update${todo === 1 ? '' : 's'} succeeded`, ...rest].join(', ');
}

/** How far ahead a time is, in words: "in 30 minutes", "in 3 hours", "in 2 days". */
export function fromNow(iso: string | null | undefined): string {
  if (!iso) return '';
  const minutes = Math.round((Date.parse(iso) - Date.now()) / 60_000);
  if (minutes < 1) return 'in less than a minute';
  if (minutes < 90) return `in ${minutes} minute${minutes === 1 ? '' : 's'}`;
  if (minutes < 36 * 60) return `in ${Math.round(minutes / 60)} hours`;
  return `in ${Math.round(minutes / 1440)} days`;
}

export function Problems({ error }: { error: CombinedError | undefined }) {
  const problems = problemsOf(error);
  if (problems.length === 0) return null;
  return (
    <div role="alert" className="alert">
      {problems.map((p, i) => <p key={i}>{p.message}</p>)}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return <p role="status" className="muted">Loading {what}…</p>;
}

export function Page({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <>
      <div className="page-head">
        <h1 tabIndex={-1} id="page-title">{title}</h1>
        {actions && <div className="actions">{actions}</div>}
      </div>
      {children}
    </>
  );
}

/** A horizontal bar: `value` of `max`, labelled for screen readers. */
export function Meter({ value, max, label, tone = 'plain' }: { value: number; max: number; label: string; tone?: string }) {
  const percent = max > 0 ? Math.round((value / max) * 100) : 0;
  return (
    <div className="meter" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={max} aria-valuenow={value} aria-valuetext={`${value} of ${max}`}>
      <div className={`meter-fill ${tone}`} style={{ width: `${percent}%` }} />
    </div>
  );
}

/** Tables scroll sideways in a narrow window rather than squeezing their columns. */
export function TableBox({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="table-box" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}
