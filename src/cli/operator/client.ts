import type { Credentials } from './credentials.js';
import { OperatorError } from './errors.js';
import type { TypedDocumentString } from './graphql.generated.js';

/** One error of a GraphQL answer, as the API words it (src/api/errors.ts). */
interface AnswerError {
  message: string;
  path?: Array<string | number>;
  extensions?: { code?: unknown; field?: unknown; reason?: unknown };
}

interface Answer<T> {
  data?: T | null;
  errors?: AnswerError[];
}

/** How long one request may take: the slowest query of the API is a fleet-wide recompute (seconds). */
const REQUEST_TIMEOUT_MS = 120_000;
/** 429s retried, each after the server's Retry-After (at most this long): a script should not fail on a burst. */
const RATE_LIMIT_RETRIES = 3;
const MAX_RETRY_WAIT_MS = 20_000;
/**
 * Reads answered SERVICE_UNAVAILABLE (PostgreSQL or Temporal away, or late: a schedule's next run
 * waits for Temporal's scheduler) retried this many times, 1, 2 and 4 s apart: a script should not
 * fail on a hiccup the API itself calls transient. Mutations are not retried: the answer may have
 * been lost after the change was made.
 */
const UNAVAILABLE_RETRIES = 3;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The API's first error as an OperatorError: its code, its field, its message; the others on lines below. */
export function answerError(errors: AnswerError[], graphqlUrl: string): OperatorError {
  const [first, ...rest] = errors;
  const code = typeof first?.extensions?.code === 'string' ? first.extensions.code : undefined;
  const field = typeof first?.extensions?.field === 'string' ? first.extensions.field : undefined;
  let message = first?.message ?? 'The API answered an error without a message.';
  if (code === 'UNAUTHENTICATED') message += ` Log in again: fleetpatch login --server ${graphqlUrl.replace(/\/graphql$/, '')} (or set FLEETPATCH_TOKEN).`;
  const more = rest.map((e) => `\n  ${typeof e.extensions?.code === 'string' ? `${e.extensions.code}: ` : ''}${e.message}`).join('');
  return new OperatorError(`${message}${more}`, { code, field });
}

/**
 * The API over HTTP with an API token: queries and mutations as POST (the API refuses mutations
 * any other way), documents sent as the generated strings. Only GraphQL: the operator commands
 * never reach the database.
 */
export class ApiClient {
  constructor(readonly credentials: Credentials) {}

  get graphqlUrl(): string {
    return this.credentials.graphqlUrl;
  }

  async request<TResult, TVariables>(document: TypedDocumentString<TResult, TVariables>, ...[variables]: TVariables extends Record<string, never> ? [] : [TVariables]): Promise<TResult> {
    const body = JSON.stringify({ query: document.toString(), variables: variables ?? {} });
    const isQuery = /^\s*query\b/.test(document.toString());
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await fetch(this.graphqlUrl, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/graphql-response+json, application/json',
            authorization: `Bearer ${this.credentials.token}`,
          },
          body,
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
      } catch (error) {
        throw unreachable(this.graphqlUrl, error);
      }
      if (response.status === 429 && attempt < RATE_LIMIT_RETRIES) {
        const seconds = Number(response.headers.get('retry-after'));
        await sleep(Math.min(MAX_RETRY_WAIT_MS, Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 1000 * 2 ** attempt));
        continue;
      }
      const text = await response.text();
      let answer: Answer<TResult>;
      try {
        answer = JSON.parse(text) as Answer<TResult>;
      } catch {
        throw new OperatorError(`${this.graphqlUrl} answered ${response.status} with something other than GraphQL (${text.slice(0, 120).replace(/\s+/g, ' ')}); is this the fleetpatch API?`);
      }
      if (answer.errors && answer.errors.length > 0) {
        if (attempt < UNAVAILABLE_RETRIES && isQuery && answer.errors.some((e) => e.extensions?.code === 'SERVICE_UNAVAILABLE')) {
          await sleep(1000 * 2 ** attempt);
          continue;
        }
        throw answerError(answer.errors, this.graphqlUrl);
      }
      if (!response.ok || !answer.data) throw new OperatorError(`${this.graphqlUrl} answered ${response.status} without data.`);
      return answer.data;
    }
  }
}

/** A request that got no answer: where it went and what the operating system said. */
export function unreachable(graphqlUrl: string, error: unknown): OperatorError {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if ((error as Error).name === 'TimeoutError') return new OperatorError(`${graphqlUrl} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s.`);
  const why = cause?.code ?? cause?.message ?? (error as Error).message;
  return new OperatorError(`Cannot reach the fleetpatch API at ${graphqlUrl} (${why}). Is the server running, and is this its address? (FLEETPATCH_SERVER or \`fleetpatch login --server URL\`)`);
}
