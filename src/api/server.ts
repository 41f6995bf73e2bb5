import http from 'node:http';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import { GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { connectDatabase } from '../db/client.js';
import { createFleetPubSub } from '../events/pubsub.js';
import type { Logger } from '../logger.js';
import { listen } from '../net.js';
import { connectTemporal, type TemporalSettings } from '../temporal/connection.js';
import { AGENT_API_PREFIX } from '../agent/protocol.js';
import { agentRouter } from './agent/agent.router.js';
import { authenticate } from './auth.js';
import type { ApiContext, ApiServices, FleetSettings } from './context.js';
import { formatError } from './errors.js';
import { createApiMetrics } from './metrics.js';
import { buildApiSchema } from './schema.js';
import { SystemService } from './system/system.service.js';

export const GRAPHQL_PATH = '/graphql';

export interface ApiServerOptions {
  databaseUrl: string;
  temporal: TemporalSettings;
  port: number;
  host: string;
  logger: Logger;
  /** Development: Apollo Sandbox on the GraphQL URL. */
  sandbox: boolean;
  fleet: FleetSettings;
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
  const services: ApiServices = { database, temporal, pubsub, logger, fleet: options.fleet, now: () => new Date() };
  const schema = await buildApiSchema(pubsub);

  const app = express();
  const httpServer = http.createServer(app);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const health = await new SystemService(services).health();
    const ready = health.database.state === 'UP' && health.temporal.state === 'UP';
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', ...health });
  });

  // Prometheus text; unauthenticated like /healthz: keep the API port off the internet or filter /metrics at the proxy.
  const metrics = createApiMetrics(database);
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.use(AGENT_API_PREFIX, metrics.agentMiddleware, agentRouter(services));

  // Subscriptions: graphql-ws on the same path and port. The token comes in the connection params.
  const wsServer = new WebSocketServer({ server: httpServer, path: GRAPHQL_PATH });
  const wsCleanup = useServer<{ authorization?: string; Authorization?: string }, { principal?: ApiContext['principal'] }>(
    {
      schema,
      onConnect: async (ctx) => {
        try {
          ctx.extra.principal = await authenticate(database.db, ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization);
          return true;
        } catch (error) {
          logger.info({ reason: error instanceof Error ? error.message : String(error) }, 'subscription connection refused');
          return false;
        }
      },
      context: (ctx): ApiContext => ({ principal: ctx.extra.principal ?? null, services }),
    },
    wsServer,
  );

  const apollo = new ApolloServer<ApiContext>({
    schema,
    formatError: formatError(logger),
    includeStacktraceInErrorResponses: false,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      metrics.apolloPlugin,
      { serverWillStart: async () => ({ drainServer: async () => { await wsCleanup.dispose(); } }) },
      options.sandbox ? ApolloServerPluginLandingPageLocalDefault({ embed: true }) : ApolloServerPluginLandingPageDisabled(),
    ],
  });
  await apollo.start();
  app.use(
    GRAPHQL_PATH,
    express.json({ limit: '1mb' }),
    expressMiddleware(apollo, {
      context: async ({ req }): Promise<ApiContext> => {
        try {
          return { principal: await authenticate(database.db, req.headers.authorization), services };
        } catch (error) {
          if (error instanceof GraphQLError) {
            // Apollo answers a failing context function with this error and the HTTP status we set.
            throw new GraphQLError(error.message, { extensions: { ...error.extensions, http: { status: 401 } } });
          }
          throw error;
        }
      },
    }),
  );

  const port = await listen(httpServer, options.port, options.host, 'GraphQL API', 'PORT');
  const shownHost = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  const url = `http://${shownHost}:${port}${GRAPHQL_PATH}`;
  logger.info({ url }, 'API listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= (async () => {
        await apollo.stop();
        await temporal.close();
        await database.close();
      })();
      return closing;
    },
  };
}
