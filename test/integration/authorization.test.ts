import { randomUUID } from 'node:crypto';
import {
  execute,
  getNamedType,
  isEnumType,
  isInputObjectType,
  isLeafType,
  isListType,
  isNonNullType,
  parse,
  subscribe,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
  type GraphQLSchema,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiContext, ApiServices } from '../../src/api/context.js';
import { buildApiSchema } from '../../src/api/schema.js';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/db/client.js';
import { createFleetPubSub } from '../../src/events/pubsub.js';
import { ROLES, type Role } from '../../src/fleet/access.js';
import { connectTemporal, type TemporalClient } from '../../src/temporal/connection.js';
import { connectTestDatabase, freshDatabase, temporalSettings, testLogger } from '../support/env.js';

/**
 * The role every root field needs. A field missing here fails the test: a new query, mutation or
 * subscription cannot ship without someone deciding who may call it.
 */
const REQUIRED_ROLE: Record<string, Role> = {
  'Query.agentRelease': 'VIEWER',
  'Query.agentUpgrade': 'VIEWER',
  'Query.baseline': 'VIEWER',
  'Query.baselines': 'VIEWER',
  'Query.agentUpgrades': 'VIEWER',
  'Query.agentVersions': 'VIEWER',
  'Query.apiTokens': 'ADMIN',
  'Query.auditEvents': 'ADMIN',
  'Query.complianceHistory': 'VIEWER',
  'Query.complianceSummary': 'VIEWER',
  'Query.cve': 'VIEWER',
  'Query.cveImports': 'VIEWER',
  'Query.cveTrackerImport': 'VIEWER',
  'Query.cves': 'VIEWER',
  'Query.deployment': 'VIEWER',
  'Query.deploymentRun': 'VIEWER',
  'Query.deployments': 'VIEWER',
  'Query.enrollmentKeys': 'ADMIN',
  'Query.machine': 'VIEWER',
  'Query.machines': 'VIEWER',
  'Query.missingUpdates': 'VIEWER',
  'Query.node': 'VIEWER',
  'Query.previewDeployment': 'VIEWER',
  'Query.scheduleForecast': 'VIEWER',
  'Query.systemStatus': 'VIEWER',
  'Query.webhook': 'ADMIN',
  'Query.webhookDeliveries': 'ADMIN',
  'Query.webhooks': 'ADMIN',
  'Mutation.approveRing': 'OPERATOR',
  'Mutation.assessMachines': 'OPERATOR',
  'Mutation.cancelAgentUpgrade': 'OPERATOR',
  'Mutation.cancelDeploymentRun': 'OPERATOR',
  'Mutation.createApiToken': 'ADMIN',
  'Mutation.createDeployment': 'OPERATOR',
  'Mutation.createEnrollmentKey': 'ADMIN',
  'Mutation.createWebhook': 'ADMIN',
  'Mutation.deleteDeployment': 'OPERATOR',
  'Mutation.deleteWebhook': 'ADMIN',
  'Mutation.createExport': 'VIEWER',
  'Mutation.importCveTracker': 'ADMIN',
  'Mutation.pauseDeployment': 'OPERATOR',
  'Mutation.rejectRing': 'OPERATOR',
  'Mutation.removeMachine': 'ADMIN',
  'Mutation.resumeDeployment': 'OPERATOR',
  'Mutation.resumeDeploymentRun': 'OPERATOR',
  'Mutation.revokeApiToken': 'ADMIN',
  'Mutation.revokeEnrollmentKey': 'ADMIN',
  'Mutation.rotateWebhookSecret': 'ADMIN',
  'Mutation.runDeploymentNow': 'OPERATOR',
  'Mutation.runSelfCheck': 'OPERATOR',
  'Mutation.setMachineManagement': 'OPERATOR',
  'Mutation.setMachineTags': 'OPERATOR',
  'Mutation.updateDeployment': 'OPERATOR',
  'Mutation.updateWebhook': 'ADMIN',
  'Mutation.upgradeAgents': 'OPERATOR',
  'Mutation.updateBaseline': 'OPERATOR',
  'Mutation.deleteBaseline': 'OPERATOR',
  'Mutation.createBaseline': 'OPERATOR',
  'Mutation.takeComplianceSnapshot': 'OPERATOR',
  'Subscription.deploymentRunProgress': 'VIEWER',
  'Subscription.deploymentRunsStarted': 'VIEWER',
  'Subscription.machineChanged': 'VIEWER',
  'Subscription.selfCheckCompleted': 'VIEWER',
};

/** A value of the input type that passes GraphQL's own coercion, so the call reaches the guard. */
function sampleValue(type: GraphQLInputType): unknown {
  if (isNonNullType(type)) return sampleValue(type.ofType);
  if (isListType(type)) return [sampleValue(type.ofType)];
  if (isEnumType(type)) return type.getValues()[0]!.value;
  if (isInputObjectType(type)) {
    const value: Record<string, unknown> = {};
    for (const field of Object.values(type.getFields())) {
      if (isNonNullType(field.type) && field.defaultValue === undefined) value[field.name] = sampleValue(field.type);
    }
    return value;
  }
  switch (getNamedType(type).name) {
    case 'ID':
      return randomUUID();
    case 'Int':
    case 'Float':
      return 1;
    case 'Boolean':
      return false;
    case 'DateTimeISO':
      return new Date(Date.now() + 3_600_000).toISOString();
    case 'JSONObject':
      return {};
    default:
      return 'probe';
  }
}

/** `query($a0: ID!) { machine(id: $a0) { __typename } }` with sample variables. */
function operationFor(kind: 'query' | 'mutation' | 'subscription', field: GraphQLField<unknown, unknown>) {
  const required = field.args.filter((a) => isNonNullType(a.type) && a.defaultValue === undefined);
  const declarations = required.map((a, i) => `$a${i}: ${a.type.toString()}`).join(', ');
  const args = required.map((a, i) => `${a.name}: $a${i}`).join(', ');
  const selection = isLeafType(getNamedType(field.type)) ? '' : ' { __typename }';
  const document = parse(`${kind}${declarations ? `(${declarations})` : ''} { ${field.name}${args ? `(${args})` : ''}${selection} }`);
  const variableValues = Object.fromEntries(required.map((a, i) => [`a${i}`, sampleValue(a.type)]));
  return { document, variableValues };
}

describe('authorization of every field of the schema', () => {
  let database: Database;
  let drop: () => Promise<void>;
  let temporal: TemporalClient;
  let schema: GraphQLSchema;
  let services: ApiServices;

  beforeAll(async () => {
    const fresh = await freshDatabase();
    drop = fresh.drop;
    database = connectTestDatabase(fresh.url);
    temporal = await connectTemporal(temporalSettings());
    const pubsub = await createFleetPubSub(database.sql);
    services = { database, temporal, pubsub, logger: testLogger, fleet: loadConfig({}), now: () => new Date() };
    schema = await buildApiSchema(pubsub);
  });

  afterAll(async () => {
    await temporal?.close();
    await database?.close();
    await drop?.();
  });

  const roots = (): Array<[kind: 'query' | 'mutation' | 'subscription', type: GraphQLObjectType]> =>
    [
      ['query', schema.getQueryType()],
      ['mutation', schema.getMutationType()],
      ['subscription', schema.getSubscriptionType()],
    ].filter((entry): entry is ['query' | 'mutation' | 'subscription', GraphQLObjectType] => entry[1] !== null && entry[1] !== undefined);

  it('has a decided role for every query, mutation and subscription, and no decision for a field that is gone', () => {
    const inSchema = roots().flatMap(([, type]) => Object.keys(type.getFields()).map((name) => `${type.name}.${name}`)).sort();
    expect(inSchema, 'add the new field to REQUIRED_ROLE with the role it needs').toEqual(Object.keys(REQUIRED_ROLE).sort());
  });

  /** The error codes a call answers with (empty when it succeeds). */
  async function codesOf(kind: 'query' | 'mutation' | 'subscription', field: GraphQLField<unknown, unknown>, role: Role | null): Promise<string[]> {
    const { document, variableValues } = operationFor(kind, field);
    const contextValue: ApiContext = { principal: role ? { tokenId: randomUUID(), name: `probe ${role}`, role } : null, services, sourceAddress: '127.0.0.1' };
    const result = kind === 'subscription' ? await subscribe({ schema, document, variableValues, contextValue }) : await execute({ schema, document, variableValues, contextValue });
    if (Symbol.asyncIterator in result) {
      await result.return?.();
      return [];
    }
    return (result.errors ?? []).map((e) => String(e.extensions.code ?? e.message));
  }

  it('answers UNAUTHENTICATED without a token, FORBIDDEN below the role, and lets the role and those above through', async () => {
    const failures: string[] = [];
    for (const [kind, type] of roots()) {
      for (const field of Object.values(type.getFields())) {
        const name = `${type.name}.${field.name}`;
        const required = REQUIRED_ROLE[name]!;
        const anonymous = await codesOf(kind, field, null);
        if (!anonymous.includes('UNAUTHENTICATED')) failures.push(`${name} without a token answered ${JSON.stringify(anonymous)}`);
        for (const role of ROLES) {
          const codes = await codesOf(kind, field, role);
          const allowed = ROLES.indexOf(role) >= ROLES.indexOf(required);
          if (allowed && (codes.includes('FORBIDDEN') || codes.includes('UNAUTHENTICATED'))) failures.push(`${name} refused ${role}: ${JSON.stringify(codes)}`);
          if (!allowed && !codes.includes('FORBIDDEN')) failures.push(`${name} let ${role} through (needs ${required}): ${JSON.stringify(codes)}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });
});
