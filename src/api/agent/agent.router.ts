import express, { type NextFunction, type Request, type Response } from 'express';
import type { z } from 'zod';
import { AGENT_API_PREFIX, type AgentErrorResponse } from '../../agent/protocol.js';
import { UnstorableReport } from '../../db/assessmentIngest.js';
import { bearerToken } from '../auth.js';
import type { ApiServices } from '../context.js';
import type { ErrorCode } from '../errors.js';
import { AgentService, type AgentMachine } from './agent.service.js';
import { checkInRequest, describeIssues, enrollRequest, jobEvents, jobResult, parseAssessmentReport } from './agent.schema.js';

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

/** A report of 20,000 updates is about 6 MB; the limit leaves room and refuses anything larger. */
const BODY_LIMIT = '8mb';
const MAX_LONG_POLL_SECONDS = 60;

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (!result.success) throw new AgentApiError(400, 'BAD_USER_INPUT', describeIssues(result.error));
  return result.data;
}

type Handler = (req: Request, res: Response) => Promise<void>;
const handle = (fn: Handler) => (req: Request, res: Response, next: NextFunction) => {
  fn(req, res).catch(next);
};

/** `/agent/v1`: the small JSON API agents use with their machine credential. */
export function agentRouter(services: ApiServices): express.Router {
  const agents = new AgentService(services);
  const router = express.Router();
  router.use(express.json({ limit: BODY_LIMIT, strict: true }));

  const machineOf = async (req: Request): Promise<AgentMachine> => {
    const credential = bearerToken(req.headers.authorization);
    if (!credential) throw new AgentApiError(401, 'UNAUTHENTICATED', 'Send the machine credential as "Authorization: Bearer <credential>".');
    const machine = await agents.authenticate(credential);
    if (!machine) {
      throw new AgentApiError(401, 'UNAUTHENTICATED', 'This machine credential is not valid (the machine may have been removed). Enroll the machine again with a new enrollment key.');
    }
    return machine;
  };

  router.post(
    '/enroll',
    handle(async (req, res) => {
      const body = parse(enrollRequest, req.body);
      const outcome = await agents.enroll(body.enrollmentKey, body.facts, req.ip ?? null);
      if (!outcome.enrolled) throw new AgentApiError(403, 'FORBIDDEN', outcome.reason);
      services.logger.info({ machineId: outcome.machine.id, machineName: outcome.machine.name, from: req.ip }, 'machine enrolled');
      res.status(201).json({ machineId: outcome.machine.id, credential: outcome.credential, settings: agents.settingsFor(outcome.machine.osType) });
    }),
  );

  router.post(
    '/checkin',
    handle(async (req, res) => {
      const machine = await machineOf(req);
      const body = parse(checkInRequest, req.body);
      const after = await agents.checkIn(machine, body.facts);
      if (!after) throw new AgentApiError(401, 'UNAUTHENTICATED', 'This machine was removed.');
      res.json({ managementEnabled: after.managementEnabled, settings: agents.settingsFor(after.osType) });
    }),
  );

  router.get(
    '/commands',
    handle(async (req, res) => {
      const machine = await machineOf(req);
      const raw = req.query.waitSeconds ?? '0';
      // Decimal digits only: Number() would also take '' (0) and hex such as '0x10' (16).
      const waitSeconds = typeof raw === 'string' && /^\d{1,3}(\.\d{1,3})?$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isFinite(waitSeconds) || waitSeconds < 0 || waitSeconds > MAX_LONG_POLL_SECONDS) {
        throw new AgentApiError(400, 'BAD_USER_INPUT', `waitSeconds must be a number from 0 to ${MAX_LONG_POLL_SECONDS}.`);
      }
      const aborted = new AbortController();
      res.on('close', () => aborted.abort());
      const commands = await agents.waitForCommands(machine.id, waitSeconds * 1000, aborted.signal);
      if (!res.writableEnded && !aborted.signal.aborted) res.json({ commands });
    }),
  );

  router.post(
    '/assessments',
    handle(async (req, res) => {
      const machine = await machineOf(req);
      const checked = parseAssessmentReport(req.body);
      if (!checked.success) throw new AgentApiError(400, 'BAD_USER_INPUT', describeIssues(checked.error));
      const report = checked.data;
      const outcome = await agents.storeReport(machine, report).catch((error: unknown) => {
        throw error instanceof UnstorableReport ? new AgentApiError(400, 'BAD_USER_INPUT', error.message) : error;
      });
      res.status(outcome.stored ? 201 : 200).json(outcome);
    }),
  );

  const UNKNOWN_JOB = 'No such job for this machine. A machine can only report on its own jobs.';
  const jobIdOf = (req: Request): string => {
    const id = String(req.params.jobId);
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) throw new AgentApiError(404, 'NOT_FOUND', UNKNOWN_JOB);
    return id;
  };

  router.post(
    '/jobs/:jobId/events',
    handle(async (req, res) => {
      const machine = await machineOf(req);
      const events = parse(jobEvents, req.body);
      const outcome = await agents.jobEvents(machine, jobIdOf(req), events);
      if (outcome === 'UNKNOWN_JOB') throw new AgentApiError(404, 'NOT_FOUND', UNKNOWN_JOB);
      res.json(outcome);
    }),
  );

  router.post(
    '/jobs/:jobId/result',
    handle(async (req, res) => {
      const machine = await machineOf(req);
      const result = parse(jobResult, req.body);
      const outcome = await agents.jobResult(machine, jobIdOf(req), result);
      if (outcome === 'UNKNOWN_JOB') throw new AgentApiError(404, 'NOT_FOUND', UNKNOWN_JOB);
      res.json(outcome);
    }),
  );

  router.use((_req: Request, _res: Response, next: NextFunction) => next(new AgentApiError(404, 'NOT_FOUND', `No such agent endpoint: ${_req.method} ${AGENT_API_PREFIX}${_req.path}.`)));

  router.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    let status = 500;
    let body: AgentErrorResponse = { error: { code: 'INTERNAL', message: 'Internal server error.' } };
    const httpError = error as { status?: number; type?: string; message?: string };
    if (error instanceof AgentApiError) {
      status = error.status;
      body = { error: { code: error.code, message: error.message } };
    } else if (httpError.type === 'entity.too.large') {
      status = 413;
      body = { error: { code: 'PAYLOAD_TOO_LARGE', message: `The request body is larger than ${BODY_LIMIT}.` } };
    } else if (httpError.type === 'entity.parse.failed' || httpError.type === 'encoding.unsupported' || httpError.type === 'charset.unsupported') {
      status = 400;
      body = { error: { code: 'BAD_USER_INPUT', message: `The request body is not valid JSON: ${httpError.message ?? ''}`.trim() } };
    } else if (typeof httpError.status === 'number' && httpError.status >= 400 && httpError.status < 500) {
      status = httpError.status;
      body = { error: { code: 'BAD_USER_INPUT', message: httpError.message ?? 'Bad request.' } };
    } else {
      services.logger.error({ err: error }, 'agent endpoint failed');
    }
    res.status(status).json(body);
  });
  return router;
}
