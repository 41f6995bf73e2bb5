import { useCallback, useEffect, useMemo, useState, type FormEvent, type ReactElement } from 'react';
import { Provider } from 'urql';
import { createApiClient, currentSession, signIn, signOut, type Session } from './client';
import { ComputersPage } from './pages/Computers';
import { DeploymentFormPage } from './pages/DeploymentForm';
import { DeploymentPage, DeploymentsPage } from './pages/Deployments';
import { MachinePage } from './pages/Machine';
import { MissingUpdatesPage } from './pages/MissingUpdates';
import { OverviewPage } from './pages/Overview';
import { RunPage } from './pages/Run';
import { WebhooksPage } from './pages/Webhooks';
import { Link, matchPath, useLocation } from './router';
import { SessionContext } from './session';

const NAV = [
  { to: '/', label: 'Overview' },
  { to: '/computers', label: 'Computers' },
  { to: '/updates', label: 'Missing updates' },
  { to: '/deployments', label: 'Deployments' },
  { to: '/settings/webhooks', label: 'Webhooks' },
];

/**
 * Signed in or not. The session lives in an HttpOnly cookie the page cannot read: the server says
 * whether there is one (undefined while it is asked).
 */
export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    currentSession().then(setSession, (error: Error) => {
      setProblem(`The server did not answer (${error.message}). Is fleetpatch running?`);
      setSession(null);
    });
  }, []);
  // The session ended on the server (expired, its token revoked, signed out elsewhere).
  const ended = useCallback(() => setSession(null), []);
  const leave = useCallback(() => {
    void signOut().then(() => setSession(null));
  }, []);
  if (session === undefined) return <main className="sign-in"><p role="status">Loading…</p></main>;
  if (!session) return <SignIn problem={problem} onSignedIn={(s) => { setProblem(null); setSession(s); }} />;
  return <SessionContext.Provider value={session}><Console onEnded={ended} onSignOut={leave} /></SessionContext.Provider>;
}

/**
 * Signs in with an API token (`fleetpatch dev` prints the admin token): the server checks it and
 * answers with a session cookie; the token itself is kept nowhere in the browser.
 */
function SignIn({ problem, onSignedIn }: { problem: string | null; onSignedIn: (session: Session) => void }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(problem);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const token = value.trim();
    if (!token) return setError('Paste an API token: `fleetpatch dev` prints the admin token and writes it to <data dir>/admin-token.');
    setBusy(true);
    const answer = await signIn(token);
    setBusy(false);
    if ('problem' in answer) return setError(answer.problem.message);
    setValue('');
    onSignedIn(answer.session);
  };
  return (
    <main className="sign-in">
      <h1>fleetpatch</h1>
      <p>Update management for your fleet of Linux and Windows machines.</p>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <label htmlFor="token">API token</label>
        <input id="token" type="password" autoComplete="current-password" autoFocus value={value} onChange={(e) => setValue(e.target.value)} aria-invalid={error ? true : undefined} aria-describedby={error ? 'token-error' : 'token-help'} />
        <p id="token-help" className="help">`fleetpatch dev` prints the admin token; send others with `Authorization: Bearer`.</p>
        {error && <p id="token-error" className="field-error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>{busy ? 'Signing in…' : 'Sign in'}</button>
      </form>
    </main>
  );
}

function Console({ onEnded, onSignOut }: { onEnded: () => void; onSignOut: () => void }) {
  const api = useMemo(() => createApiClient(onEnded), [onEnded]);
  useEffect(() => () => api.close(), [api]);
  const { path } = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => {
    setMenuOpen(false);
    // After a navigation, keyboard and screen reader users land on the new page's heading.
    document.getElementById('page-title')?.focus({ preventScroll: true });
  }, [path]);
  const page = route(path);
  useEffect(() => {
    document.title = `${page.title} · fleetpatch`;
  }, [page.title]);
  return (
    <Provider value={api.client}>
      <a className="skip" href="#main">Skip to content</a>
      <header className="top">
        <Link to="/" className="brand">fleetpatch</Link>
        <button className="menu-toggle" aria-expanded={menuOpen} aria-controls="main-nav" onClick={() => setMenuOpen((o) => !o)}>Menu</button>
        <nav id="main-nav" aria-label="Main" className={menuOpen ? 'open' : ''}>
          <ul>
            {NAV.map((n) => {
              const current = n.to === '/' ? path === '/' : path.startsWith(n.to) || (n.to === '/deployments' && path.startsWith('/runs'));
              return <li key={n.to}><Link to={n.to} aria-current={current ? 'page' : undefined}>{n.label}</Link></li>;
            })}
          </ul>
          <button className="link-button" onClick={onSignOut}>Sign out</button>
        </nav>
      </header>
      <main id="main">{page.element}</main>
    </Provider>
  );
}

function route(path: string): { title: string; element: ReactElement } {
  let p: Record<string, string> | null;
  if (path === '/') return { title: 'Overview', element: <OverviewPage /> };
  if (path === '/computers') return { title: 'Computers', element: <ComputersPage /> };
  if ((p = matchPath('/computers/:id', path))) return { title: 'Machine', element: <MachinePage key={p.id} id={p.id!} /> };
  if (path === '/updates') return { title: 'Missing updates', element: <MissingUpdatesPage /> };
  if (path === '/deployments') return { title: 'Deployments', element: <DeploymentsPage /> };
  if (path === '/deployments/new') return { title: 'New deployment', element: <DeploymentFormPage /> };
  if ((p = matchPath('/deployments/:id', path))) return { title: 'Deployment', element: <DeploymentPage key={p.id} id={p.id!} /> };
  if ((p = matchPath('/runs/:id', path))) return { title: 'Run', element: <RunPage key={p.id} id={p.id!} /> };
  if (path === '/settings/webhooks') return { title: 'Webhooks', element: <WebhooksPage /> };
  return { title: 'Not found', element: <><h1 id="page-title" tabIndex={-1}>Not found</h1><p>No page at {path}. <Link to="/">Go to the overview</Link>.</p></> };
}
