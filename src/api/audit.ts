import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError } from 'graphql';
import { recordAuditEvents, type AuditEntry } from '../db/audit.js';
import type { ApiContext } from './context.js';
import { dependencyAway } from './errors.js';

/** The id a mutation was about: its id argument, or the id of what it created. */
function targetOf(args: Record<string, unknown>, result: unknown): string | null {
  for (const name of ['id', 'machineId', 'runId', 'deploymentId']) {
    if (typeof args[name] === 'string') return args[name];
  }
  if (typeof result === 'string') return result;
  if (result && typeof result === 'object') {
    const r = result as { id?: unknown; key?: { id?: unknown }; token?: { id?: unknown }; webhook?: { id?: unknown } };
    for (const id of [r.id, r.key?.id, r.token?.id, r.webhook?.id]) if (typeof id === 'string') return id;
  }
  return null;
}

function outcomeOf(error: Error | null): string {
  if (!error) return 'SUCCEEDED';
  const code = error instanceof GraphQLError ? error.extensions.code : dependencyAway(error) ? 'SERVICE_UNAVAILABLE' : undefined;
  return typeof code === 'string' ? code : 'INTERNAL';
}

/**
 * Every mutation field, allowed or refused, lands in the audit log: who (token), what (field,
 * arguments with secrets redacted, target id), when, from where, and how it ended. Recorded before
 * the response is sent, so what a client was told happened is already in the log.
 */
export function auditPlugin(): ApolloServerPlugin<ApiContext> {
  return {
    async requestDidStart() {
      const entries: AuditEntry[] = [];
      let services: ApiContext['services'] | undefined;
      return {
        async executionDidStart({ operation }) {
          // Queries and subscriptions get no per-field hook: Apollo then wraps none of their fields
          // (a hook on each of a 50-row page's fields is measurable).
          if (operation.operation !== 'mutation') return undefined;
          return {
            willResolveField({ args, contextValue, info }) {
              if (info.path.prev !== undefined) return undefined;
              services = contextValue.services;
              const principal = contextValue.principal;
              return (error, result) => {
                entries.push({
                  actorKind: principal ? 'TOKEN' : 'ANONYMOUS',
                  actorId: principal?.tokenId ?? null,
                  actorName: principal?.name ?? null,
                  actorRole: principal?.role ?? null,
                  action: info.fieldName,
                  targetId: targetOf(args as Record<string, unknown>, result),
                  details: args as Record<string, unknown>,
                  outcome: outcomeOf(error),
                  sourceAddress: contextValue.sourceAddress ?? null,
                });
              };
            },
          };
        },
        async willSendResponse() {
          if (!services || entries.length === 0) return;
          await recordAuditEvents(services.database.db, entries).catch((error: unknown) => {
            services!.logger.error({ err: error, actions: entries.map((e) => e.action) }, 'could not write the audit log');
          });
        },
      };
    },
  };
}
