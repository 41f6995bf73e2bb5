import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { cacheExchange, Client, fetchExchange, mapExchange, subscriptionExchange, type CombinedError } from 'urql';

const TOKEN_KEY = 'fleetpatch.token';

export const storedToken = (): string | null => localStorage.getItem(TOKEN_KEY);
export const storeToken = (token: string | null) => (token ? localStorage.setItem(TOKEN_KEY, token) : localStorage.removeItem(TOKEN_KEY));

/** The GraphQL API of the server that served this page: queries over HTTP, subscriptions over graphql-ws. */
export function createApiClient(token: string, onUnauthenticated: () => void = () => undefined): { client: Client; close: () => void } {
  const ws: WsClient = createWsClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
    connectionParams: { authorization: `Bearer ${token}` },
    // Reconnect quietly after an API restart; subscriptions resume on the new connection.
    retryAttempts: Infinity,
    shouldRetry: () => true,
  });
  const client = new Client({
    url: '/graphql',
    preferGetMethod: false,
    requestPolicy: 'cache-and-network',
    fetchOptions: () => ({ headers: { authorization: `Bearer ${token}` } }),
    exchanges: [
      // A token revoked or expired while the console is open: back to the sign-in page.
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
