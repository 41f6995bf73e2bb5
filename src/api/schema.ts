import 'reflect-metadata';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema } from 'type-graphql';
import type { FleetPubSub } from '../events/pubsub.js';
import { ApiTokenResolver, AuditResolver } from './access/access.resolver.js';
import { authChecker } from './auth.js';
import { DeploymentResolver, DeploymentRunResolver, MachineDeploymentRunsResolver, MachineRunResolver, RunProgressResolver } from './deployments/deployment.resolver.js';
import { EnrollmentResolver } from './enrollment/enrollment.resolver.js';
import { MachineResolver } from './machines/machine.resolver.js';
import { MissingUpdateResolver } from './machines/missingUpdate.resolver.js';
import { NodeResolver } from './node/node.resolver.js';
import { SystemResolver } from './system/system.resolver.js';

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
  MachineDeploymentRunsResolver,
  ApiTokenResolver,
  AuditResolver,
] as const;

/**
 * The GraphQL schema, built from the resolvers. `pubSub` may be omitted when only the schema's
 * shape is needed (printing schema/schema.graphql).
 */
export function buildApiSchema(pubSub?: FleetPubSub): Promise<GraphQLSchema> {
  return buildSchema({
    resolvers,
    authChecker,
    authMode: 'error',
    pubSub: pubSub ?? { publish: () => undefined, subscribe: () => { throw new Error('no pubsub'); } },
    validate: false,
    emitSchemaFile: false,
  });
}

/** The SDL committed as schema/schema.graphql; a test fails when the file and the code differ. */
export async function printApiSchema(): Promise<string> {
  return `${printSchema(lexicographicSortSchema(await buildApiSchema()))}\n`;
}
