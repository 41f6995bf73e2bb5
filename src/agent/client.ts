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

  constructor(
    serverUrl: string,
    private credential: string | null = null,
  ) {
    this.base = serverUrl.replace(/\/+$/, '').replace(/\/graphql$/, '') + AGENT_API_PREFIX;
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
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(authenticated && this.credential ? { authorization: `Bearer ${this.credential}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
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
    if (response.status >= 500) throw new ServerUnreachable(`${method} ${path}: the server answered ${response.status}`);
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

function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}
