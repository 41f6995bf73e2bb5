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
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? anySignal([signal, timeout]) : timeout;
    let response: Response;
    try {
      response = await fetch(this.base + path, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(authenticated && this.credential ? { authorization: `Bearer ${this.credential}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: combined,
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new ServerUnreachable(`${method} ${this.base}${path}: ${describeFetchError(error)}`);
    }
    const text = await response.text();
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

/** AbortSignal.any() arrived in Node 20; agents also run on Node 18. */
function anySignal(signals: AbortSignal[]): AbortSignal {
  const controller = new AbortController();
  for (const signal of signals) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}

