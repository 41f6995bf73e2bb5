import type { ApolloServerPlugin } from '@apollo/server';
import type { ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { AGENT_API_PREFIX } from '../agent/protocol.js';
import type { Database } from '../db/client.js';
import { runCountsByStatus } from '../db/runs.js';
import { ERROR_CODES, REQUEST_ERROR_CODES } from './errors.js';
import { KNOWN_OPERATION_NAMES } from './knownOperations.js';

/**
 * The API's Prometheus metrics (`GET /metrics`): GraphQL operations and their errors, the agent
 * endpoint (check-ins, reports ingested, long-polls open, every request by route and status),
 * deployment runs by status, and Node's own process figures (CPU, RSS, event loop lag).
 * One registry per server, so several servers in one process (tests) keep their own counts.
 */
export interface ApiMetrics {
  registry: Registry;
  /** Counts GraphQL operations by name and type, and their errors by code. */
  apolloPlugin: ApolloServerPlugin;
  /**
   * Observes a request to the agent endpoint until it is answered. `route` is the endpoint's own
   * name for it ("POST /jobs/:jobId/result": no series per job), undefined for a path it does not serve.
   */
  observeAgentRequest: (res: ServerResponse, route: string | undefined) => void;
}

const AGENT_ROUTE = Symbol('agentRoute');
type ObservedResponse = ServerResponse & { [AGENT_ROUTE]?: string };

/** An operation's label: its name when the server knows it, `other` for any other name, `anonymous` without one. */
export function operationLabel(name: string | null | undefined, known: ReadonlySet<string> = KNOWN_OPERATION_NAMES): string {
  if (!name) return 'anonymous';
  return known.has(name) ? name : 'other';
}

/** An error's label: its code when it is one of ours or GraphQL's, else OTHER (formatError leaves no other, but labels stay bounded whatever happens). */
function codeLabel(code: unknown): string {
  return typeof code === 'string' && ((ERROR_CODES as readonly string[]).includes(code) || REQUEST_ERROR_CODES.has(code)) ? code : 'OTHER';
}

export function createApiMetrics(database: Database): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'fleetpatch_api_' });

  // Operation names are labels only when the server knows them (operationLabel): a client-chosen
  // label would grow the registry without bound.
  const operations = new Counter({ name: 'fleetpatch_graphql_operations_total', help: 'GraphQL operations executed, by operation name and type.', labelNames: ['operation', 'type'] as const, registers: [registry] });
  const operationErrors = new Counter({ name: 'fleetpatch_graphql_errors_total', help: 'GraphQL errors returned, by operation name and error code.', labelNames: ['operation', 'code'] as const, registers: [registry] });
  const operationSeconds = new Histogram({
    name: 'fleetpatch_graphql_operation_duration_seconds',
    help: 'Time from request to response of GraphQL operations over HTTP, by operation name.',
    labelNames: ['operation'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const agentRequests = new Counter({ name: 'fleetpatch_agent_requests_total', help: 'Requests to the agent endpoint, by route and HTTP status.', labelNames: ['route', 'status'] as const, registers: [registry] });
  const checkIns = new Counter({ name: 'fleetpatch_agent_checkins_total', help: 'Agent check-ins accepted.', registers: [registry] });
  const reports = new Counter({ name: 'fleetpatch_assessment_reports_ingested_total', help: 'Assessment reports stored (a resent report counts once).', registers: [registry] });
  const longPolls = new Gauge({ name: 'fleetpatch_agent_long_polls_open', help: 'Agent command long-polls open on this process now.', registers: [registry] });
  new Gauge({
    name: 'fleetpatch_deployment_runs',
    help: 'Deployment runs by status (the whole database, read at scrape time).',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const rows = await runCountsByStatus(database.db);
      this.reset();
      for (const row of rows) this.set({ status: row.status }, row.n);
    },
  });

  const apolloPlugin: ApolloServerPlugin = {
    async requestDidStart() {
      const started = process.hrtime.bigint();
      return {
        async willSendResponse({ operationName, operation, response }) {
          const name = operationLabel(operationName ?? operation?.name?.value);
          operations.inc({ operation: name, type: operation?.operation ?? 'unknown' });
          operationSeconds.observe({ operation: name }, Number(process.hrtime.bigint() - started) / 1e9);
          // The errors as the client gets them, after formatError gave each its code (a malformed id
          // is BAD_USER_INPUT there, though the error thrown had no code).
          const sent = response.body.kind === 'single' ? response.body.singleResult.errors : response.body.initialResult.errors;
          for (const error of sent ?? []) operationErrors.inc({ operation: name, code: codeLabel(error.extensions?.code) });
        },
      };
    },
  };

  // One listener for every agent request (its response is `this`), not closures per request: an
  // API process holds a long-poll per idle agent. 'close' comes once, after 'finish' or without it
  // when the client went first.
  function agentRequestEnded(this: ObservedResponse): void {
    const route = this[AGENT_ROUTE] ?? 'other';
    if (route === 'GET /commands') longPolls.dec();
    agentRequests.inc({ route: route === 'other' ? route : route.replace(' ', ` ${AGENT_API_PREFIX}`), status: this.writableFinished ? String(this.statusCode) : 'aborted' });
    if (route === 'POST /checkin' && this.statusCode === 200) checkIns.inc();
    if (route === 'POST /assessments' && this.statusCode === 201) reports.inc();
  }
  const observeAgentRequest = (res: ServerResponse, route = 'other') => {
    if (route === 'GET /commands') longPolls.inc();
    (res as ObservedResponse)[AGENT_ROUTE] = route;
    res.on('close', agentRequestEnded);
  };

  return { registry, apolloPlugin, observeAgentRequest };
}
