import 'reflect-metadata';
import { lexicographicSortSchema, printSchema, type GraphQLObjectType, type GraphQLSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import type { FleetPubSub } from '../events/pubsub.js';
import { ApiTokenResolver, AuditResolver } from './access/access.resolver.js';
import { AgentUpgradeResolver, InstallCommandsResolver, MachineAgentVersionResolver } from './agentUpgrades/agentUpgrade.resolver.js';
import { authChecker } from './auth.js';
import { CveResolver } from './cves/cve.resolver.js';
import { ExportResolver } from './exports/export.resolver.js';
import { BaselineResolver } from './baselines/baseline.resolver.js';
import { ComplianceHistoryResolver } from './complianceHistory/complianceHistory.resolver.js';
import { DeploymentResolver, DeploymentRunResolver, MachineDeploymentRunsResolver, MachinePreviewResolver, MachineRunResolver, RunProgressResolver } from './deployments/deployment.resolver.js';
import { EnrollmentResolver } from './enrollment/enrollment.resolver.js';
import { MachineResolver } from './machines/machine.resolver.js';
import { MissingUpdateResolver } from './machines/missingUpdate.resolver.js';
import { NodeResolver } from './node/node.resolver.js';
import { SystemResolver } from './system/system.resolver.js';
import { WebhookResolver } from './webhooks/webhook.resolver.js';

export const resolvers = [
  SystemResolver,
  NodeResolver,
  EnrollmentResolver,
  MachineResolver,
  MissingUpdateResolver,
  DeploymentResolver,
  DeploymentRunResolver,
  MachineRunResolver,
  RunProgressResolver,
  MachinePreviewResolver,
  MachineDeploymentRunsResolver,
  ApiTokenResolver,
  AuditResolver,
  AgentUpgradeResolver,
  MachineAgentVersionResolver,
  InstallCommandsResolver,
  WebhookResolver,
  CveResolver,
  ExportResolver,
  BaselineResolver,
  ComplianceHistoryResolver,
] as const;

/**
 * The GraphQL schema, built from the resolvers. `pubSub` may be omitted when only the schema's
 * shape is needed (printing schema/schema.graphql).
 */
export async function buildApiSchema(pubSub?: FleetPubSub): Promise<GraphQLSchema> {
  const schema = await buildSchema({
    resolvers,
    authChecker,
    authMode: 'error',
    pubSub: pubSub ?? { publish: () => undefined, subscribe: () => { throw new Error('no pubsub'); } },
    validate: false,
    emitSchemaFile: false,
  });
  // type-graphql has no place for the root types' descriptions (GraphiQL and Sandbox show them).
  for (const [type, description] of ROOT_DESCRIPTIONS) {
    const root = type(schema);
    if (root) root.description = description;
  }
  return schema;
}

const ROOT_DESCRIPTIONS: Array<[(schema: GraphQLSchema) => GraphQLObjectType | null | undefined, string]> = [
  [(s) => s.getQueryType(), 'Reads: machines, updates, deployments and their runs, access, and the system itself.'],
  [(s) => s.getMutationType(), 'Changes: machines, deployments and their runs, API tokens, enrollment keys and webhooks (over POST only).'],
  [(s) => s.getSubscriptionType(), 'Live events, over the WebSocket (graphql-ws) at the same URL.'],
];

/** The SDL committed as schema/schema.graphql; a test fails when the file and the code differ. */
export async function printApiSchema(): Promise<string> {
  return `${printSchema(lexicographicSortSchema(await buildApiSchema()))}\n`;
}
