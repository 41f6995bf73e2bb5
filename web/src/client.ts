import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { cacheExchange, Client, fetchExchange, mapExchange, subscriptionExchange, type CombinedError } from 'urql';

/** The console's session: the server keeps it in an HttpOnly cookie, which no script here can read. */
export interface Session {
  role: string;
  name: string;
  expiresAt: string | null;
}

/** Where an older console kept the token itself; removed wherever it is still found. */
const LEGACY_TOKEN_KEY = 'fleetpatch.token';

interface SessionAnswer {
  session?: Session;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

const sessionRequest = (method: 'GET' | 'POST' | 'DELETE', body?: unknown) =>
  fetch('/session', {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

/** The session this browser is signed in with, or null. */
export async function currentSession(): Promise<Session | null> {
  localStorage.removeItem(LEGACY_TOKEN_KEY);
  const response = await sessionRequest('GET');
  if (response.status === 401) return null;
  const answer = (await response.json()) as SessionAnswer;
  if (!response.ok || !answer.session) throw new Error(answer.errors?.[0]?.message ?? `The server answered ${response.status}.`);
  return answer.session;
}

/** Exchanges an API token for a session; the answer's problem when it is refused. */
export async function signIn(token: string): Promise<{ session: Session } | { problem: ApiProblem }> {
  let response: Response;
  try {
    response = await sessionRequest('POST', { token });
  } catch (error) {
    return { problem: { code: 'NETWORK', message: `The server did not answer (${(error as Error).message}). Is fleetpatch running?` } };
  }
  const answer = (await response.json().catch(() => ({}))) as SessionAnswer;
  if (answer.session) return { session: answer.session };
  const first = answer.errors?.[0];
  return { problem: { code: first?.extensions?.code ?? 'INTERNAL', message: first?.message ?? `The server answered ${response.status}.` } };
}

/** Ends the session on the server (its cookie goes with it). */
export async function signOut(): Promise<void> {
  await sessionRequest('DELETE').catch(() => undefined);
}

/** graphql-ws's Forbidden: the socket's token or session may no longer be used (or never could). */
const ACCESS_ENDED = 4403;

/**
 * The GraphQL API of the server that served this page: queries over HTTP, subscriptions over
 * graphql-ws, both carrying the session cookie. `onUnauthenticated` runs when the session ends
 * (signed out elsewhere, expired, its token revoked): a query answers 401, or the server closes the
 * socket.
 */
export function createApiClient(onUnauthenticated: () => void = () => undefined): { client: Client; close: () => void } {
  const ws: WsClient = createWsClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
    // Reconnect quietly after an API restart; subscriptions resume on the new connection. Not
    // when the server says the session may not go on.
    retryAttempts: Infinity,
    shouldRetry: (event) => (event as { code?: number } | undefined)?.code !== ACCESS_ENDED,
    on: {
      closed: (event) => {
        if ((event as { code?: number } | undefined)?.code === ACCESS_ENDED) onUnauthenticated();
      },
    },
  });
  const client = new Client({
    url: '/graphql',
    preferGetMethod: false,
    requestPolicy: 'cache-and-network',
    fetchOptions: () => ({ credentials: 'same-origin' }),
    exchanges: [
      // A session that ended while the console is open: back to the sign-in page.
      mapExchange({ onError: (error) => isUnauthenticated(error) && onUnauthenticated() }),
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? '' };
          return { subscribe: (sink) => ({ unsubscribe: ws.subscribe(input, sink) }) };
        },
      }),
    ],
  });
  return { client, close: () => void ws.dispose() };
}

/** The API's error vocabulary: `extensions.code`, and `extensions.field` for an input that broke a rule. */
export interface ApiProblem {
  code: string;
  message: string;
  field?: string;
}

export function problemsOf(error: CombinedError | undefined): ApiProblem[] {
  if (!error) return [];
  if (error.networkError && error.graphQLErrors.length === 0) return [{ code: 'NETWORK', message: `The server did not answer (${error.networkError.message}). Is fleetpatch running?` }];
  return error.graphQLErrors.map((e) => ({
    code: typeof e.extensions.code === 'string' ? e.extensions.code : 'INTERNAL',
    message: e.message,
    field: typeof e.extensions.field === 'string' ? e.extensions.field : undefined,
  }));
}

export const isUnauthenticated = (error: CombinedError | undefined) =>
  problemsOf(error).some((p) => p.code === 'UNAUTHENTICATED') || (error?.response as Response | undefined)?.status === 401;
