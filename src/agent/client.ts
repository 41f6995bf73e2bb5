import https from 'node:https';
import {
  AGENT_API_PREFIX,
  type AgentErrorResponse,
  type AssessmentReport,
  type AssessmentReportResponse,
  type CheckInResponse,
  type CommandsResponse,
  type EnrollResponse,
  type JobEvents,
  type JobResult,
  type MachineFacts,
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

  /**
   * `ca`: the PEM certificate(s) the server's certificate must chain to (`--ca-file`), instead of
   * the system's trust store. Node's fetch cannot take a CA per request, so those requests go
   * through node:https; the certificate and host name are verified either way.
   */
  constructor(
    serverUrl: string,
    private credential: string | null = null,
    private readonly ca: Buffer | undefined = undefined,
  ) {
    this.base = serverUrl.replace(/\/+$/, '').replace(/\/graphql$/, '') + AGENT_API_PREFIX;
    if (ca && !this.base.startsWith('https:')) throw new Error(`--ca-file needs an https:// server URL; got ${serverUrl}.`);
  }

  setCredential(credential: string): void {
    this.credential = credential;
  }

  enroll(enrollmentKey: string, facts: MachineFacts): Promise<EnrollResponse> {
    return this.request('POST', '/enroll', { enrollmentKey, facts }, 30_000, false);
  }

  checkIn(facts: MachineFacts): Promise<CheckInResponse> {
    return this.request('POST', '/checkin', { facts }, 30_000);
  }

  commands(waitSeconds: number, signal?: AbortSignal): Promise<CommandsResponse> {
    return this.request('GET', `/commands?waitSeconds=${waitSeconds}`, undefined, (waitSeconds + 30) * 1000, true, signal);
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

  private async request<T>(method: string, path: string, body: unknown, timeoutMs: number, authenticated = true, signal?: AbortSignal): Promise<T> {
    // One controller per request, for the deadline and the caller's signal, released afterwards:
    // listeners left on a long-lived signal would pile up over months of polling.
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    let response: Pick<Response, 'status' | 'ok' | 'text'>;
    const init = {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(authenticated && this.credential ? { authorization: `Bearer ${this.credential}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: controller.signal,
    };
    try {
      response = this.ca ? await httpsWithCa(this.base + path, init, this.ca) : await fetch(this.base + path, init);
    } catch (error) {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) throw error;
      throw new ServerUnreachable(`${method} ${this.base}${path}: ${describeFetchError(error)}`);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw new ServerUnreachable(`${method} ${this.base}${path}: the answer was cut off: ${describeFetchError(error)}`);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    // 429: the server asks to slow down (rate limit): a reason to retry later, not a refusal.
    if (response.status >= 500 || response.status === 429) throw new ServerUnreachable(`${method} ${path}: the server answered ${response.status}`);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new ServerRefusal(response.status, 'UNPARSEABLE_RESPONSE', `${method} ${path}: the server's answer is not JSON: ${text.slice(0, 200)}`);
    }
    if (!response.ok) {
      const error = (parsed as AgentErrorResponse).error ?? { code: 'UNKNOWN', message: text.slice(0, 500) };
      throw new ServerRefusal(response.status, error.code, error.message);
    }
    return parsed as T;
  }
}

/** One request over node:https, verifying the server against `ca`; the answer read whole. */
function httpsWithCa(url: string, init: { method: string; headers: Record<string, string>; body: string | undefined; signal: AbortSignal }, ca: Buffer): Promise<Pick<Response, 'status' | 'ok' | 'text'>> {
  return new Promise((resolve, reject) => {
    const request = https.request(url, { method: init.method, headers: init.headers, ca, signal: init.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status, ok: status >= 200 && status < 300, text: () => Promise.resolve(text) });
      });
    });
    // Errors keep fetch's shape ({cause: {code}}) so that describeFetchError reads both.
    request.on('error', (error: NodeJS.ErrnoException) => reject(Object.assign(new Error(error.message), { cause: error })));
    request.end(init.body);
  });
}

function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}
