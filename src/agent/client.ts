import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import {
  AGENT_API_PREFIX,
  type AgentErrorResponse,
  type AssessmentReport,
  type AssessmentReportResponse,
  type CheckInResponse,
  type CommandsResponse,
  type EnrollRequest,
  type EnrollResponse,
  type JobEvents,
  type JobResult,
  type MachineFacts,
  type UpgradeReport,
} from './protocol.js';

/** The server answered with an error: status and the server's own code and message. */
export class ServerRefusal extends Error {
  override name = 'ServerRefusal';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The server could not be reached (network, DNS, TLS, or a 5xx): retry later. */
export class ServerUnreachable extends Error {
  override name = 'ServerUnreachable';
}

/**
 * The agent's side of `/agent/v1`. Requests time out rather than hang, so a dead server never
 * stalls the agent's loops.
 */
export class AgentClient {
  private readonly base: string;
  /** The server's own root, for paths outside the agent API (downloads). */
  private readonly origin: string;

  /**
   * `ca`: the PEM certificate(s) the server's certificate must chain to (`--ca-file`), instead of
   * the system's trust store; the certificate and host name are verified either way.
   */
  constructor(
    serverUrl: string,
    private credential: string | null = null,
    private readonly ca: Buffer | undefined = undefined,
  ) {
    this.origin = serverUrl.replace(/\/+$/, '').replace(/\/graphql$/, '');
    this.base = this.origin + AGENT_API_PREFIX;
    if (ca && !this.base.startsWith('https:')) throw new Error(`--ca-file needs an https:// server URL; got ${serverUrl}.`);
  }

  setCredential(credential: string): void {
    this.credential = credential;
  }

  // Every call but enroll may be sent twice: see `Resend`. `requestId` makes the caller's own retries safe.
  enroll(enrollmentKey: string, facts: MachineFacts, requestId?: string): Promise<EnrollResponse> {
    const body: EnrollRequest = { enrollmentKey, facts, ...(requestId ? { enrollmentRequestId: requestId } : {}) };
    return this.request('POST', '/enroll', body, 30_000, { authenticated: false, resend: 'never' });
  }

  checkIn(facts: MachineFacts): Promise<CheckInResponse> {
    return this.request('POST', '/checkin', { facts }, 30_000);
  }

  /** `redeliver`: also the commands handed out before and not completed (the agent lost track of them). */
  commands(waitSeconds: number, signal?: AbortSignal, redeliver = false): Promise<CommandsResponse> {
    const path = (again: boolean) => `/commands?waitSeconds=${waitSeconds}${again ? '&redeliver=1' : ''}`;
    // Sent again after its connection closed under it, a poll asks for redelivery: the API process
    // may have handed out commands (marked them delivered) and died before its answer left, and
    // the agent, which saw no failure, would otherwise never get them.
    return this.request('GET', path(redeliver), undefined, (waitSeconds + 30) * 1000, { signal, resendPath: path(true) });
  }

  sendReport(report: AssessmentReport): Promise<AssessmentReportResponse> {
    return this.request('POST', '/assessments', report, 120_000);
  }

  sendJobEvents(jobId: string, events: JobEvents): Promise<{ applied: boolean }> {
    return this.request('POST', `/jobs/${encodeURIComponent(jobId)}/events`, events, 30_000);
  }

  sendJobResult(jobId: string, result: JobResult): Promise<{ accepted: boolean }> {
    return this.request('POST', `/jobs/${encodeURIComponent(jobId)}/result`, result, 60_000);
  }

  sendUpgradeReport(commandId: string, report: UpgradeReport): Promise<{ accepted: boolean }> {
    return this.request('POST', `/upgrades/${encodeURIComponent(commandId)}/result`, report, 30_000);
  }

  /**
   * Downloads `serverPath` (e.g. /agent/download/fleetpatch-agent-linux-x64) into `file` (mode 0700),
   * hashing it on the way, and stops at `maxBytes`: a larger answer is not the file it expects.
   * Rejects with ServerUnreachable or ServerRefusal like the other requests.
   */
  download(serverPath: string, file: string, maxBytes: number, signal: AbortSignal): Promise<{ sha256: string; size: number }> {
    const url = this.origin + serverPath;
    return new Promise((resolve, reject) => {
      const options = { method: 'GET', signal, ...(this.ca ? { ca: this.ca } : {}) };
      const onResponse = (res: http.IncomingMessage) => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          res.resume();
          const what = `GET ${url}: the server answered ${status}`;
          reject(status >= 500 || status === 429 ? new ServerUnreachable(what) : new ServerRefusal(status, 'DOWNLOAD_REFUSED', what));
          return;
        }
        const hash = createHash('sha256');
        const out = fs.createWriteStream(file, { mode: 0o700 });
        let size = 0;
        let failed = false;
        const fail = (error: Error) => {
          failed = true;
          res.destroy();
          out.destroy();
          reject(error);
        };
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) return fail(new ServerRefusal(200, 'TOO_LARGE', `GET ${url}: the answer is larger than the ${maxBytes} bytes expected`));
          hash.update(chunk);
        });
        res.on('error', (error) => fail(new ServerUnreachable(`GET ${url}: the download was cut off: ${describeRequestError(error)}`)));
        out.on('error', (error) => fail(error));
        res.pipe(out);
        // On 'close', not 'finish': until its descriptor is closed, running the file fails with ETXTBSY.
        out.on('close', () => {
          if (!failed) resolve({ sha256: hash.digest('hex'), size });
        });
      };
      const request = url.startsWith('https:') ? https.request(url, options, onResponse) : http.request(url, options, onResponse);
      request.on('error', (error) => reject(signal.aborted ? error : new ServerUnreachable(`GET ${url}: ${describeRequestError(error)}`)));
      request.end();
    });
  }

  private async request<T>(
    method: string,
    path: string,
    body: unknown,
    timeoutMs: number,
    { authenticated = true, resend = 'onStaleConnection', signal, resendPath = path }: { authenticated?: boolean; resend?: Resend; signal?: AbortSignal; resendPath?: string } = {},
  ): Promise<T> {
    // One controller per request, for the deadline and the caller's signal, released afterwards:
    // listeners left on a long-lived signal would pile up over months of polling.
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const headers: Record<string, string> = {
      // The agent's clock, which the server compares with its own (a skewed clock is a machine
      // warning) and uses to place reports on its own clock (src/fleet/agentClock.ts).
      date: new Date().toUTCString(),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(authenticated && this.credential ? { authorization: `Bearer ${this.credential}` } : {}),
    };
    let response: { status: number; text: string };
    try {
      const init = { method, headers, body: body === undefined ? undefined : requestBody(body), signal: controller.signal, ca: this.ca };
      try {
        response = await send(this.base + path, init, pooledAgents);
      } catch (error) {
        if (resend === 'never' || !(error instanceof StaleConnection) || controller.signal.aborted) throw error;
        // Once, on a connection of its own: the pool's other idle connections are older still.
        response = await send(this.base + resendPath, init, undefined);
      }
    } catch (error) {
      if (signal?.aborted) throw error;
      const why =
        error instanceof AnswerCutOff ? `the answer was cut off: ${describeRequestError(error.cause)}` : error instanceof StaleConnection ? error.message : describeRequestError(error);
      throw new ServerUnreachable(`${method} ${this.base}${path}: ${why}`);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    const { status, text } = response;
    // 429: the server asks to slow down (rate limit): a reason to retry later, not a refusal.
    if (status >= 500 || status === 429) throw new ServerUnreachable(`${method} ${path}: the server answered ${status}`);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new ServerRefusal(status, 'UNPARSEABLE_RESPONSE', `${method} ${path}: the server's answer is not JSON: ${text.slice(0, 200)}`);
    }
    if (status < 200 || status >= 300) {
      const error = (parsed as AgentErrorResponse).error ?? { code: 'UNKNOWN', message: text.slice(0, 500) };
      throw new ServerRefusal(status, error.code, error.message);
    }
    return parsed as T;
  }
}

/**
 * What the agent sends is partly other programs' output (a deployment script's, a package
 * manager's), which may hold a NUL character; PostgreSQL cannot store one and the server refuses
 * text holding it. It goes as U+FFFD, the replacement character: a script that printed a NUL
 * once made every batch of its job's progress fail, resent for ever, and the job never ended.
 */
function requestBody(body: unknown): string {
  const json = JSON.stringify(body);
  // JSON writes a NUL as \u0000: only a body that holds one is written again.
  if (!json.includes('\\u0000')) return json;
  return JSON.stringify(body, (_key, value: unknown) => (typeof value === 'string' ? value.replace(/\0/g, '\uFFFD') : value));
}

/**
 * Whether a request may go out a second time when a kept-alive connection turns out to have been
 * closed under it (`StaleConnection`). The server may have read the request before the connection
 * went (an API process killed mid-request), so only requests that do nothing new the second time
 * are resent: a check-in records the same facts again, a poll hands out what the first one would
 * have (the server hands a job out again when its agent never took it up), a report carries its
 * id, job events their sequence number and a job's result is stored once. An enrollment is
 * 'never' resent here: its callers retry it themselves, with its enrollment request id, which the
 * server needs to answer for the machine it enrolled rather than create a second one.
 */
type Resend = 'onStaleConnection' | 'never';

/**
 * How long the agent keeps an idle connection for its next request. Shorter than the server's
 * keep-alive timeout by far (the API's is 65 s, `API_KEEP_ALIVE_TIMEOUT_MS`): the side that closes
 * an idle connection must be the agent, or a request sent as the server closes is lost. Node
 * shortens it further to 1 s less than the server's `Keep-Alive: timeout` hint, for servers that
 * keep connections less long (Node's default is 5 s).
 */
export const AGENT_IDLE_CONNECTION_MS = 4_000;

/**
 * One pool of kept-alive connections per process (10,000 virtual agents of the simulator share it
 * like one agent's loops do), the most recently used first: the freshest connection is the one
 * least likely to have been closed by the other side.
 */
const pooledAgents = {
  http: new http.Agent({ keepAlive: true, timeout: AGENT_IDLE_CONNECTION_MS, scheduling: 'lifo' }),
  https: new https.Agent({ keepAlive: true, timeout: AGENT_IDLE_CONNECTION_MS, scheduling: 'lifo' }),
};

/** The connection broke after the answer had begun. */
class AnswerCutOff extends Error {}

/**
 * A kept-alive connection was closed before any of the answer arrived: the server (or a proxy)
 * closed it as idle while the request was on its way, or died.
 */
class StaleConnection extends Error {}

/** What a connection closed under a request looks like: reset, or closed before the answer (also ECONNRESET). */
const CLOSED_UNDER_REQUEST = new Set(['ECONNRESET', 'EPIPE']);

/**
 * One request over node:http or node:https, the answer read whole. Not fetch: undici's fetch costs
 * about three times the CPU of node:http per request (BENCHMARKS.md, "Ingest, third pass"), which
 * an agent pays at every poll and a simulated fleet thousands of times a second. `agents`: the
 * pooled keep-alive connections, or undefined for a connection of its own.
 */
function send(
  url: string,
  init: { method: string; headers: Record<string, string>; body: string | undefined; signal: AbortSignal; ca: Buffer | undefined },
  agents: typeof pooledAgents | undefined,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const agent = agents ? (secure ? agents.https : agents.http) : false;
    const options = { method: init.method, headers: init.headers, signal: init.signal, agent, ...(init.ca ? { ca: init.ca } : {}) };
    const onResponse = (res: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (error) => reject(new AnswerCutOff(error.message, { cause: error })));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    };
    const request = secure ? https.request(url, options, onResponse) : http.request(url, options, onResponse);
    request.on('error', (error: NodeJS.ErrnoException) => {
      // Before 'response' (after it, the answer's own 'error' has rejected already).
      const stale = request.reusedSocket && CLOSED_UNDER_REQUEST.has(error.code ?? '') && !init.signal.aborted;
      reject(stale ? new StaleConnection(`a kept-alive connection was closed under the request (${error.code})`, { cause: error }) : error);
    });
    request.end(init.body);
  });
}

/** What went wrong, shortest first: a system error's code (ECONNREFUSED), an abort's reason, the message. */
function describeRequestError(error: unknown): string {
  const { code, cause } = error as { code?: string; cause?: unknown };
  if (code && code !== 'ABORT_ERR') return code;
  if (cause instanceof Error) return describeRequestError(cause);
  return error instanceof Error ? error.message : String(error);
}
