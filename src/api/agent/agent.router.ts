import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { AGENT_API_PREFIX, type AgentCommand, type AgentErrorResponse } from '../../agent/protocol.js';
import { UnstorableReport } from '../../db/assessmentIngest.js';
import { bearerToken } from '../auth.js';
import type { ApiServices } from '../context.js';
import { parseDateHeader } from '../../fleet/agentClock.js';
import { RETRY_AFTER_SECONDS, ServiceUnavailable } from '../../availability.js';
import { dependencyAway, unavailableMessage, type ErrorCode } from '../errors.js';
import { AgentService, CredentialRefused, type AgentMachine } from './agent.service.js';
import type { ParkedPoll } from './longPolls.js';
import { checkInRequest, describeIssues, enrollCheckRequest, enrollRequest, jobEvents, jobResult, parseAssessmentReport, upgradeReport } from './agent.schema.js';

/** An error the agent endpoint answers with: an HTTP status and the API's error vocabulary. */
class AgentApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | 'PAYLOAD_TOO_LARGE',
    message: string,
  ) {
    super(message);
  }
}

/** A report of 20,000 updates is about 6 MB: the limit leaves room and refuses anything larger. */
const BODY_LIMIT_BYTES = 8 * 1024 * 1024;
const MAX_LONG_POLL_SECONDS = 60;

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (!result.success) throw new AgentApiError(400, 'BAD_USER_INPUT', describeIssues(result.error));
  return result.data;
}

/** What a route's handler gets: the request, its JSON body (undefined when it sent none), the job id in its path. */
interface AgentCall {
  req: IncomingMessage;
  res: ServerResponse;
  body: unknown;
  query: URLSearchParams;
  jobId: string | undefined;
  /** The command id in /upgrades/:commandId/result. */
  commandId: string | undefined;
}

const POLL_ROUTE = 'GET /commands';
/** The poll a response answers, while it is parked. */
const PARKED = Symbol('parkedPoll');
type PollResponse = ServerResponse & { [PARKED]?: ParkedPoll<ServerResponse> };

/** A poll's answer, unless its agent has gone meanwhile (the commands are then handed out again at its redelivery). */
function answerPoll(res: ServerResponse, commands: AgentCommand[]): void {
  if (!res.destroyed && !res.writableEnded) answer(res, 200, { commands });
}

/** The answer: a status and a JSON body. */
function answer(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) }).end(json);
}

/**
 * A JSON body, read whole up to BODY_LIMIT_BYTES. Only a JSON content type is read (undefined
 * otherwise, which the route's schema then refuses); only an object or an array is accepted.
 */
function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json' && !type.endsWith('+json')) {
    req.resume();
    return Promise.resolve(undefined);
  }
  const charset = /;\s*charset=("?)([^";]+)\1/i.exec(req.headers['content-type'] ?? '')?.[2]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') return Promise.reject(new AgentApiError(400, 'BAD_USER_INPUT', `The request body must be UTF-8; got charset ${charset}.`));
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity') return Promise.reject(new AgentApiError(400, 'BAD_USER_INPUT', `Content-Encoding ${encoding} is not accepted; send the body as it is.`));
  const tooLarge = () => new AgentApiError(413, 'PAYLOAD_TOO_LARGE', 'The request body is larger than 8mb.');
  if (Number(req.headers['content-length']) > BODY_LIMIT_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT_BYTES) {
        req.off('data', onData);
        req.resume();
        reject(tooLarge());
      } else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('error', reject);
    req.once('end', () => {
      if (size > BODY_LIMIT_BYTES) return;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve({});
      const first = text.trimStart()[0];
      if (first !== '{' && first !== '[') return reject(new AgentApiError(400, 'BAD_USER_INPUT', 'The request body is not valid JSON: a JSON object was expected.'));
      try {
        resolve(JSON.parse(text));
      } catch (error) {
        reject(new AgentApiError(400, 'BAD_USER_INPUT', `The request body is not valid JSON: ${(error as Error).message}`));
      }
    });
  });
}

type Route = (call: AgentCall) => Promise<void>;

/**
 * `/agent/v1`: the small JSON API agents use with their machine credential. Plain node:http, not
 * Express: every machine calls it twice a minute at rest and a fleet's reports arrive in bursts;
 * Express's routing and body parsing cost about a fifth of the API's CPU per report
 * (BENCHMARKS.md, "Ingest, third pass"). Answers `(req, res, path)` for a path under the prefix;
 * `observe` (metrics) and `limit` (rate limits) run first.
 */
export function agentEndpoint(
  services: ApiServices,
  hooks: {
    observe: (res: ServerResponse, route: string | undefined) => void;
    /** Undefined when the request may go on; otherwise the refusal (429). */
    limit: (req: IncomingMessage, path: string) => { retryAfter: number; message: string } | undefined;
  },
): (req: IncomingMessage, res: ServerResponse) => void {
  const agents = new AgentService<ServerResponse>(services, {
    commands: (res, commands) => answerPoll(res, commands),
    failed: (res, error) => {
      if (!res.destroyed && !res.writableEnded) fail(res, error, POLL_ROUTE);
    },
  });
  // One listener for every parked poll's response (`this`), rather than a closure per poll.
  function pollClosed(this: PollResponse): void {
    const poll = this[PARKED];
    if (poll) agents.dropPoll(poll);
  }

  const credentialOf = (req: IncomingMessage): string => {
    const credential = bearerToken(req.headers.authorization);
    if (!credential) throw new AgentApiError(401, 'UNAUTHENTICATED', 'Send the machine credential as "Authorization: Bearer <credential>".');
    return credential;
  };
  const notValid = () => new AgentApiError(401, 'UNAUTHENTICATED', 'This machine credential is not valid (the machine may have been removed). Enroll the machine again with a new enrollment key.');
  const machineOf = async (req: IncomingMessage): Promise<AgentMachine> => {
    const machine = await agents.authenticate(credentialOf(req));
    if (!machine) throw notValid();
    return machine;
  };
  /**
   * For a request that stores a report or hands out commands: the credential judged in the
   * database, as the check-in judges it, so that a credential revoked a moment ago (its machine
   * removed or enrolled again) is refused at once on every replica, whatever it has cached.
   */
  const judgedMachineOf = async (req: IncomingMessage): Promise<AgentMachine> => {
    const machine = await agents.authenticateInDatabase(credentialOf(req));
    if (!machine) throw notValid();
    return machine;
  };

  const routes: Record<string, Route> = {
    'POST /enroll': async ({ req, res, body }) => {
      const request = parse(enrollRequest, body);
      const from = req.socket.remoteAddress ?? null;
      const outcome = await agents.enroll(request.enrollmentKey, request.facts, from, request.enrollmentRequestId ?? null);
      if (!outcome.enrolled) throw new AgentApiError(403, 'FORBIDDEN', outcome.reason);
      services.logger.info({ machineId: outcome.machine.id, machineName: outcome.machine.name, from, again: outcome.again }, outcome.again ? 'machine enrolled again (same request): new credential' : 'machine enrolled');
      answer(res, 201, { machineId: outcome.machine.id, credential: outcome.credential, settings: agents.settingsFor(outcome.machine.osType), releaseKey: agents.releaseKey() });
    },

    'POST /enroll/check': async ({ res, body }) => {
      const request = parse(enrollCheckRequest, body);
      const refusal = await agents.enrollmentKeyRefusal(request.enrollmentKey);
      if (refusal) throw new AgentApiError(403, 'FORBIDDEN', refusal);
      answer(res, 200, { usable: true });
    },

    'POST /checkin': async ({ req, res, body }) => {
      // The credential is judged by the check-in's own statement, not by the cache.
      const credential = credentialOf(req);
      const request = parse(checkInRequest, body);
      const after = await agents.checkIn(credential, request.facts, parseDateHeader(req.headers.date));
      if (!after) throw notValid();
      answer(res, 200, { managementEnabled: after.managementEnabled, settings: agents.settingsFor(after.osType), releaseKey: agents.releaseKey() });
    },

    'GET /commands': async ({ req, res, query }) => {
      const machine = await machineOf(req);
      const given = query.getAll('waitSeconds');
      const raw = given.length === 0 ? '0' : given.length === 1 ? given[0]! : '';
      // Decimal digits only: Number() would also take '' (0) and hex such as '0x10' (16).
      const waitSeconds = /^\d{1,3}(\.\d{1,3})?$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isFinite(waitSeconds) || waitSeconds < 0 || waitSeconds > MAX_LONG_POLL_SECONDS) {
        throw new AgentApiError(400, 'BAD_USER_INPUT', `waitSeconds must be a number from 0 to ${MAX_LONG_POLL_SECONDS}.`);
      }
      const redeliver = query.getAll('redeliver');
      if (redeliver.length > 1 || (redeliver.length === 1 && redeliver[0] !== '1')) throw new AgentApiError(400, 'BAD_USER_INPUT', 'redeliver must be 1 when given (once).');
      if (waitSeconds === 0 || redeliver.length === 1) {
        // Hands out what waits: judged in the database first.
        await judgedMachineOf(req);
        answerPoll(res, await agents.takeCommands(machine.id, redeliver.length === 1));
        return;
      }
      // Gone already (while its credential was checked): nothing to wait for.
      if (res.destroyed) return;
      // Parked, this route returns: until its answer the poll holds only its ParkedPoll, found
      // again through its response when the agent goes away (see pollClosed).
      const poll = agents.parkPoll(machine, waitSeconds * 1000, res);
      (res as PollResponse)[PARKED] = poll;
      res.on('close', pollClosed);
      const ready = await agents.firstLook(poll);
      if (ready) answerPoll(res, ready);
    },

    'POST /assessments': async ({ req, res, body }) => {
      const receivedAtMs = services.now().getTime();
      const machine = await judgedMachineOf(req);
      const checked = parseAssessmentReport(body);
      if (!checked.success) throw new AgentApiError(400, 'BAD_USER_INPUT', describeIssues(checked.error));
      const outcome = await agents.storeReport(machine, checked.data, { receivedAtMs, agentSentAtMs: parseDateHeader(req.headers.date) }).catch((error: unknown) => {
        throw error instanceof UnstorableReport ? new AgentApiError(400, 'BAD_USER_INPUT', error.message) : error;
      });
      answer(res, outcome.stored ? 201 : 200, outcome);
    },

    'POST /jobs/:jobId/events': async ({ req, res, body, jobId }) => {
      const machine = await judgedMachineOf(req);
      const events = parse(jobEvents, body);
      const outcome = await agents.jobEvents(machine, jobIdOf(jobId), events);
      if (outcome === 'UNKNOWN_JOB') throw new AgentApiError(404, 'NOT_FOUND', UNKNOWN_JOB);
      if (outcome === 'WITHDRAWN') throw new AgentApiError(409, 'CONFLICT', WITHDRAWN_JOB);
      answer(res, 200, outcome);
    },

    'POST /jobs/:jobId/result': async ({ req, res, body, jobId }) => {
      const machine = await judgedMachineOf(req);
      const result = parse(jobResult, body);
      const outcome = await agents.jobResult(machine, jobIdOf(jobId), result);
      if (outcome === 'UNKNOWN_JOB') throw new AgentApiError(404, 'NOT_FOUND', UNKNOWN_JOB);
      if (outcome === 'WITHDRAWN') throw new AgentApiError(409, 'CONFLICT', WITHDRAWN_JOB);
      answer(res, 200, outcome);
    },

    'POST /upgrades/:commandId/result': async ({ req, res, body, commandId }) => {
      const machine = await judgedMachineOf(req);
      const report = parse(upgradeReport, body);
      const outcome = await agents.upgradeResult(machine, uuidOf(commandId, UNKNOWN_UPGRADE), report);
      if (outcome === 'UNKNOWN') throw new AgentApiError(404, 'NOT_FOUND', UNKNOWN_UPGRADE);
      if (outcome === 'WITHDRAWN') throw new AgentApiError(409, 'CONFLICT', 'This upgrade was withdrawn (timed out or canceled): the report was not stored.');
      answer(res, 200, outcome);
    },
  };

  const fail = (res: ServerResponse, error: unknown, route?: string) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error instanceof CredentialRefused) error = notValid();
    if (error instanceof AgentApiError) {
      answer(res, error.status, { error: { code: error.code, message: error.message } } satisfies AgentErrorResponse);
      return;
    }
    // PostgreSQL or Temporal away: 503, which agents take as "retry later" (they keep reports in
    // their spool and results on disk until an answer comes).
    const away = dependencyAway(error);
    if (away) {
      // Refused while an outage is known (logged once, when it began): one line per request only in debug.
      if (error instanceof ServiceUnavailable) services.logger.debug({ dependency: away, route }, 'agent request refused: dependency unavailable');
      else services.logger.warn({ err: error, dependency: away, route }, 'agent request met an unavailable dependency');
      answer(res, 503, { error: { code: 'SERVICE_UNAVAILABLE', message: unavailableMessage(away, error) } } satisfies AgentErrorResponse, { 'retry-after': String(RETRY_AFTER_SECONDS) });
      return;
    }
    services.logger.error({ err: error, route }, 'agent endpoint failed');
    answer(res, 500, { error: { code: 'INTERNAL', message: 'Internal server error.' } } satisfies AgentErrorResponse);
  };

  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    const path = url.pathname.slice(AGENT_API_PREFIX.length).replace(/(.)\/$/, '$1') || '/';
    const job = /^\/jobs\/([^/]+)\/(events|result)$/.exec(path);
    const upgrade = /^\/upgrades\/([^/]+)\/result$/.exec(path);
    const name = `${req.method} ${job ? `/jobs/:jobId/${job[2]}` : upgrade ? '/upgrades/:commandId/result' : path}`;
    const route = routes[name];
    hooks.observe(res, route && name);
    const limited = hooks.limit(req, path);
    if (limited) {
      req.resume();
      answer(res, 429, { error: { code: 'RATE_LIMITED', message: limited.message } } satisfies AgentErrorResponse, { 'retry-after': String(limited.retryAfter) });
      return;
    }
    if (!route) {
      req.resume();
      fail(res, new AgentApiError(404, 'NOT_FOUND', `No such agent endpoint: ${req.method} ${AGENT_API_PREFIX}${path}.`));
      return;
    }
    // Every route needs PostgreSQL: while it is known to be away, answer at once instead of
    // queueing the request behind connection attempts.
    if (services.database.availability.outage) {
      req.resume();
      fail(res, new ServiceUnavailable('DATABASE'), name);
      return;
    }
    const body = req.method === 'GET' ? Promise.resolve(undefined) : readJsonBody(req);
    body.then((parsed) => route({ req, res, body: parsed, query: url.searchParams, jobId: job?.[1], commandId: upgrade?.[1] })).catch((error: unknown) => fail(res, error, name));
  };
}

const UNKNOWN_JOB = 'No such job for this machine. A machine can only report on its own jobs.';
const WITHDRAWN_JOB = 'This job was withdrawn: its machine run has ended (finished, canceled, or given up on a silent agent). Install nothing more of it.';
const UNKNOWN_UPGRADE = 'No such upgrade command for this machine. A machine can only report on its own commands.';

function uuidOf(id: string | undefined, unknown: string): string {
  if (!id || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw new AgentApiError(404, 'NOT_FOUND', unknown);
  return id;
}

function jobIdOf(id: string | undefined): string {
  return uuidOf(id, UNKNOWN_JOB);
}
