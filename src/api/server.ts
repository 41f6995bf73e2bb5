import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import { exportDownload } from './exports/download.js';
import { EXPORT_PATH } from './exports/export.service.js';
import { GraphQLError, parse, specifiedRules, validate, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { connectDatabase } from '../db/client.js';
import { createFleetPubSub } from '../events/pubsub.js';
import type { Logger } from '../logger.js';
import { listen } from '../net.js';
import { connectTemporal, type TemporalSettings } from '../temporal/connection.js';
import { AGENT_API_PREFIX } from '../agent/protocol.js';
import { agentEndpoint } from './agent/agent.router.js';
import { graphqlRequestSpans, graphqlSpanPlugin } from './tracing.js';
import { agentInstallEndpoint, isAgentInstallPath } from './agentInstall/agentInstall.router.js';
import { agentDistribution, type AgentDistribution } from './agentInstall/distribution.js';
import { requestOrigin } from './agentInstall/installScripts.js';
import { ensureReleaseKey } from '../release/signingKey.js';
import { auditPlugin } from './audit.js';
import { authenticateRequest } from './auth.js';
import { webConsole } from './console.js';
import type { ApiContext, ApiServices, FleetSettings } from './context.js';
import { dependencyAway, formatError, serviceUnavailable, serviceUnavailablePlugin } from './errors.js';
import { errorsAsJson, notFoundAsJson } from './httpErrors.js';
import { boundedResponse, parseOptions, queryLimitsOf, queryLimitsRule, tokenLimitMessage } from './limits.js';
import { agentRateLimit, graphqlBodyErrors, graphqlRateLimit } from './protection.js';
import { createApiHttpServer, type TlsFiles } from './tls.js';
import { drainHttpServer } from './drain.js';
import { loadConfig, type ApiLimits } from '../config.js';
import { createApiMetrics } from './metrics.js';
import { startScheduleReconciler } from './deployments/scheduleReconciler.js';
import { startFleetSummaryUpkeep } from './machines/fleetSummaryUpkeep.js';
import { startTableStatistics } from './machines/tableStatisticsUpkeep.js';
import { startComplianceHistorySchedule } from './complianceHistory/historySchedule.js';
import { buildApiSchema } from './schema.js';
import { subscriptionLimits, type SubscriptionLimitsExtra } from './subscriptionLimits.js';
import { SystemService } from './system/system.service.js';
import { consoleSessionRoutes, SESSION_PATH } from './session.js';
import { ACCESS_ENDED_CLOSE_CODE, SocketAccess } from './socketAccess.js';
import { tokenStates } from '../db/tokens.js';
import { sessionStates } from '../db/sessions.js';

export const GRAPHQL_PATH = '/graphql';
/** The largest GraphQL request body: a deployment input with thousands of machine ids fits. */
const GRAPHQL_BODY_LIMIT = '1mb';

export interface ApiServerOptions {
  databaseUrl: string;
  temporal: TemporalSettings;
  port: number;
  host: string;
  logger: Logger;
  /** Development: Apollo Sandbox on the GraphQL URL. */
  sandbox: boolean;
  fleet: FleetSettings;
  /** Rate, depth and cost limits; the defaults of `loadConfig` when omitted. */
  limits?: ApiLimits;
  /** Serve HTTPS with this certificate and key. */
  tls?: TlsFiles;
  /**
   * What machines install and upgrade to: the dist folder holding executables/ and packages/, the
   * release key file (made when missing), the public address. Absent: nothing is offered.
   */
  agentDistribution?: { distDir?: string; releaseKeyFile?: string; publicUrl?: string };
  /** The server's clock (tests move it to pass baseline approvals and SLA due dates); default the system's. */
  now?: () => Date;
}

export interface ApiServer {
  /** The GraphQL URL, e.g. http://127.0.0.1:4000/graphql */
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { logger } = options;
  const database = connectDatabase(options.databaseUrl);
  const temporal = await connectTemporal(options.temporal);
  const pubsub = await createFleetPubSub(database.sql, (error) => logger.warn({ err: error }, 'event delivery failed'));
  const distribution = loadDistribution(options, logger);
  // Statistics of the tables the agents' statements depend on, brought up to date after enrollments.
  const statistics = startTableStatistics({ database, logger });
  const services: ApiServices = { database, temporal, pubsub, logger, fleet: options.fleet, now: options.now ?? (() => new Date()), agentDistribution: distribution, statistics };
  for (const gate of [database.availability, temporal.availability]) {
    gate.onChange((outage) => (outage ? logger.warn({ dependency: gate.dependency, reason: outage.reason }, 'dependency unavailable: requests that need it answer SERVICE_UNAVAILABLE') : logger.info({ dependency: gate.dependency }, 'dependency available again')));
  }
  const schema = await buildApiSchema(pubsub);

  const limits = options.limits ?? loadConfig({}).limits;
  const validationRules = [queryLimitsRule(queryLimitsOf(limits))];
  const subscriptionCaps = subscriptionLimits(limits);

  const app = express();
  // Nobody needs to know what the server is built with.
  app.disable('x-powered-by');
  // Every answer is what its Content-Type says: browsers must not guess otherwise.
  app.use((_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  // No ETag on answers: they are JSON about state that changes and are never cached; Express
  // would hash every answer it sends.
  app.set('etag', false);
  // Prometheus text; unauthenticated like /healthz: keep the API port off the internet or filter /metrics at the proxy.
  const metrics = createApiMetrics(database);
  // The agent endpoint answers on its own, without Express (see agentEndpoint); the rest is Express.
  const agents = agentEndpoint(services, { observe: metrics.observeAgentRequest, limit: agentRateLimit(limits) });
  const installs = agentInstallEndpoint(distribution, { encrypted: options.tls !== undefined });
  const httpServer = createApiHttpServer((req, res) => (isAgentPath(req.url) ? agents(req, res) : isAgentInstallPath(req.url) ? installs(req, res) : app(req, res)), options.tls);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const health = await new SystemService(services).health();
    const ready = health.database.state === 'UP' && health.temporal.state === 'UP';
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', ...health });
  });

  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  // Sockets authenticate once, when they open: this closes them when their token or session ends.
  const socketAccess = new SocketAccess(
    { tokens: (ids) => tokenStates(database.db, ids), sessions: (ids) => sessionStates(database.db, ids) },
    { onError: (error) => logger.warn({ err: error }, 'could not read the tokens of open subscription sockets') },
  );
  socketAccess.follow(pubsub);

  // Subscriptions: graphql-ws on the same path and port. The token comes in the connection params
  // (or the console's session in its cookie).
  // Messages are subscription requests: the HTTP body limit applies to them too (ws allows 100 MiB).
  const wsServer = new WebSocketServer({ server: httpServer, path: GRAPHQL_PATH, maxPayload: 1024 * 1024 });
  const wsCleanup = useServer<{ authorization?: string; Authorization?: string }, { principal?: ApiContext['principal']; endAccess?: () => void } & SubscriptionLimitsExtra>(
    {
      schema,
      onConnect: async (ctx) => {
        try {
          // Subscriptions authenticate on connection: no token, no connection.
          database.availability.check();
          const authorization = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
          const seenChanges = socketAccess.seenChanges;
          const principal = await authenticateRequest(database.db, ctx.extra.request.headers, { authorization, originRequired: true });
          if (!principal) throw new Error('no token in the connection params');
          ctx.extra.principal = principal;
          const { socket } = ctx.extra;
          // Past its token's share of sockets: closed with our own code (not when it is already
          // gone: graphql-ws has run onClose for it, and its place would never be freed).
          if (socket.readyState === socket.OPEN && !subscriptionCaps.admitSocket(ctx, principal)) return false;
          ctx.extra.endAccess = socketAccess.open(principal, (reason) => {
            logger.info({ tokenId: principal.tokenId, sessionId: principal.sessionId, reason }, 'subscription socket closed: its access ended');
            socket.close(ACCESS_ENDED_CLOSE_CODE, reason);
          }, seenChanges);
          // Gone while its token was being read: graphql-ws has already run onClose for it.
          if (socket.readyState !== socket.OPEN) ctx.extra.endAccess();
          return true;
        } catch (error) {
          logger.info({ reason: error instanceof Error ? error.message : String(error) }, 'subscription connection refused');
          // Not a refusal of the token: 1013 (try again later), which clients retry, rather than 4403.
          if (dependencyAway(error)) ctx.extra.socket.close(1013, 'PostgreSQL is unavailable; try again later');
          return false;
        }
      },
      // The socket is for subscriptions only: queries and mutations go over HTTP, where the audit
      // log, rate limits and body limits apply. The depth and cost limits apply here too.
      onSubscribe: (ctx, _id, payload): ExecutionArgs | readonly GraphQLError[] => {
        const refused = subscriptionCaps.refuseSubscription(ctx);
        if (refused) return [refused];
        let document;
        try {
          document = parse(payload.query, parseOptions(limits.graphqlMaxTokens));
        } catch (error) {
          const parsed = error instanceof GraphQLError ? error : new GraphQLError(String(error));
          return [new GraphQLError(tokenLimitMessage(parsed.message) ?? parsed.message, { source: parsed.source, positions: parsed.positions, extensions: { code: 'GRAPHQL_PARSE_FAILED' } })];
        }
        // The codes Apollo gives the same errors over HTTP.
        const errors = validate(schema, document, [...specifiedRules, ...validationRules]);
        if (errors.length > 0) return errors.map((e) => new GraphQLError(e.message, { nodes: e.nodes, extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }));
        const operations = document.definitions.filter((d) => d.kind === 'OperationDefinition');
        const chosen = payload.operationName ? operations.find((o) => o.name?.value === payload.operationName) : operations[0];
        if (chosen?.operation !== 'subscription') {
          return [new GraphQLError('Only subscriptions go over the WebSocket; send queries and mutations as HTTP POST to /graphql.', { extensions: { code: 'BAD_USER_INPUT' } })];
        }
        return { schema, document, variableValues: payload.variables, operationName: payload.operationName };
      },
      onClose: (ctx) => {
        ctx.extra.endAccess?.();
        subscriptionCaps.release(ctx);
      },
      context: (ctx): ApiContext => ({ principal: ctx.extra.principal ?? null, services, sourceAddress: ctx.extra.request.socket.remoteAddress ?? null }),
    },
    wsServer,
  );

  const apollo = new ApolloServer<ApiContext>({
    schema,
    formatError: formatError(logger),
    includeStacktraceInErrorResponses: false,
    // The commands own SIGINT and SIGTERM and close the API in order; Apollo's own handlers would
    // stop it underneath them and raise the signal again (outside tests), which `fleetpatch dev`
    // took for a second Ctrl-C and exited without stopping PostgreSQL and Temporal.
    stopOnTerminationSignals: false,
    validationRules,
    parseOptions: parseOptions(limits.graphqlMaxTokens),
    stringifyResult: boundedResponse(limits.graphqlMaxResponseBytes, (bytes) => logger.warn({ bytes }, 'GraphQL answer over FLEETPATCH_GRAPHQL_MAX_RESPONSE_MB refused')),
    plugins: [
      auditPlugin(),
      serviceUnavailablePlugin,
      drainHttpServer(httpServer),
      metrics.apolloPlugin,
      graphqlSpanPlugin,
      { serverWillStart: async () => ({ drainServer: async () => { socketAccess.close(); await wsCleanup.dispose(); } }) },
      options.sandbox ? ApolloServerPluginLandingPageLocalDefault({ embed: true }) : ApolloServerPluginLandingPageDisabled(),
    ],
  });
  await apollo.start();
  // The web console signs in here: its token exchanged for a session in an HttpOnly cookie.
  app.use(SESSION_PATH, consoleSessionRoutes(services, { secureCookie: options.tls !== undefined, rateLimit: graphqlRateLimit(limits) }));
  app.use(
    GRAPHQL_PATH,
    graphqlRateLimit(limits),
    express.json({ limit: GRAPHQL_BODY_LIMIT }),
    graphqlRequestSpans(GRAPHQL_PATH),
    expressMiddleware(apollo, {
      context: async ({ req }): Promise<ApiContext> => {
        try {
          // Every request's token is checked in PostgreSQL: while it is away, answer at once.
          database.availability.check();
          return {
            principal: await authenticateRequest(database.db, req.headers, { originRequired: false }),
            services,
            sourceAddress: req.ip ?? null,
            origin: requestOrigin(req.headers, options.tls !== undefined),
          };
        } catch (error) {
          const away = dependencyAway(error);
          if (away) throw serviceUnavailable(away, error);
          if (error instanceof GraphQLError) {
            // Apollo answers a failing context function with this error and the HTTP status we set.
            const status = error.extensions.code === 'FORBIDDEN' ? 403 : 401;
            throw new GraphQLError(error.message, { extensions: { ...error.extensions, http: { status } } });
          }
          throw error;
        }
      },
    }),
    graphqlBodyErrors,
  );

  // Export downloads: the signed link is the credential (src/api/exports/download.ts).
  app.get(`${EXPORT_PATH}/:fileName`, exportDownload(services));

  // The web console at /, last: it never answers for the API's own paths.
  app.use(webConsole());
  app.use(notFoundAsJson, errorsAsJson(logger));

  const port = await listen(httpServer, options.port, options.host, 'GraphQL API', 'PORT');
  const shownHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  const url = `${options.tls ? 'https' : 'http'}://${shownHost}:${port}${GRAPHQL_PATH}`;
  logger.info({ url, console: url.replace(/\/graphql$/, '/') }, 'API listening');

  // Deployment schedules that Temporal has not followed (it was away when they changed).
  const reconciler = startScheduleReconciler(services);
  // The daily compliance snapshot's schedule (created once per Temporal namespace, found after that).
  const historySchedule = startComplianceHistorySchedule(services);
  // The maintained compliance summary: machines the clock changed moved forward, deltas folded.
  const summaryUpkeep = startFleetSummaryUpkeep(services);

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= (async () => {
        reconciler.stop();
        historySchedule.stop();
        summaryUpkeep.stop();
        await statistics.stop();
        await apollo.stop();
        await temporal.close();
        await database.close();
      })();
      return closing;
    },
  };
}

/** The agent release on disk and the release key (made on first use, and said so), as the options ask. */
function loadDistribution(options: ApiServerOptions, logger: Logger): AgentDistribution {
  const wanted = options.agentDistribution ?? {};
  let releaseKey;
  if (wanted.releaseKeyFile) {
    const ensured = ensureReleaseKey(wanted.releaseKeyFile);
    releaseKey = ensured.key;
    if (ensured.created) logger.warn({ file: wanted.releaseKeyFile, fingerprint: releaseKey.fingerprint }, 'made a new release signing key: agents pin it at enrollment; every API replica needs this same file (keep a copy somewhere safe)');
  }
  const distribution = agentDistribution({ distDir: wanted.distDir, releaseKey, publicUrl: wanted.publicUrl });
  const { release } = distribution;
  if (wanted.distDir) {
    if (release.version) logger.info({ version: release.version, executables: release.executables.length, packages: release.packages.length, releaseKey: releaseKey?.fingerprint }, 'agent release offered');
    for (const missing of [release.missing.executables, release.missing.packages]) if (missing) logger.warn(missing);
  }
  return distribution;
}

/** `/agent/v1` and what is below it (not `/agent/v10`). */
function isAgentPath(url: string | undefined): boolean {
  return url !== undefined && url.startsWith(AGENT_API_PREFIX) && (url.length === AGENT_API_PREFIX.length || url[AGENT_API_PREFIX.length] === '/' || url[AGENT_API_PREFIX.length] === '?');
}
