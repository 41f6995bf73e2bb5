import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client/index.js';
import { PostgresJsPreparedQuery } from 'drizzle-orm/postgres-js/session';
import type { Logger } from '../logger.js';
import { version } from '../version.js';

/**
 * The OpenTelemetry SDK of a process that exports traces. Loaded by tracing.ts only when an OTLP
 * endpoint is configured: nothing here runs, nor is imported, otherwise.
 *
 * The 1.x SDK line (sdk-trace-base 1.30) on purpose: @temporalio/interceptors-opentelemetry 1.24
 * is built on it, and its workflow spans reach the exporter as 1.x spans (parentSpanId); a 2.x
 * exporter would drop their parents, and the workflow spans would float loose in the trace.
 */
export interface TracingSdk {
  /** The processor every span goes through, workflow spans (a sink of the worker) included. */
  processor: SpanProcessor;
  resource: Resource;
  /** Interceptors of the Temporal client: a workflow start or signal carries the trace to the workflow. */
  temporalClientInterceptors(): { workflow: OpenTelemetryWorkflowClientInterceptor[] };
  /** Exports what is buffered now (tests, and before a process exits). */
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

export function startTracingSdk(options: { serviceName: string; url: string; logger: Logger; exporter?: SpanExporter }): TracingSdk {
  const resource = new Resource({ 'service.name': options.serviceName, 'service.version': version });
  // The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)HEADERS itself, the batch processor OTEL_BSP_*,
  // the provider OTEL_TRACES_SAMPLER. OTLP/HTTP with JSON: every collector, Jaeger and Tempo take it.
  const exporter = options.exporter ?? new OTLPTraceExporter({ url: options.url });
  const processor = new BatchSpanProcessor(exporter);
  const provider = new BasicTracerProvider({ resource, spanProcessors: [processor] });
  provider.register({ contextManager: new AsyncLocalStorageContextManager().enable(), propagator: new W3CTraceContextPropagator() });
  const unpatch = traceDatabaseStatements();
  return {
    processor,
    resource,
    temporalClientInterceptors: () => ({ workflow: [new OpenTelemetryWorkflowClientInterceptor()] }),
    forceFlush: () => provider.forceFlush(),
    async shutdown() {
      unpatch();
      await provider.shutdown().catch((error: unknown) => options.logger.warn({ err: error }, 'traces could not all be exported at shutdown'));
      // Back to the API's no-op globals: a later start (a test's) registers its own.
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/**
 * A span per SQL statement issued through drizzle (every query of src/db: postgres.js has no
 * instrumentation of its own and drizzle's tracing hooks are not wired to anything). Only inside a
 * trace: the LISTEN loop, background sweeps and statements outside any request would each make a
 * trace of one span. The statement's text is kept with its $n placeholders; the parameters, which
 * carry token hashes, credentials and package names, never are.
 */
function traceDatabaseStatements(): () => void {
  const proto = PostgresJsPreparedQuery.prototype as unknown as Record<'execute' | 'all', (this: { queryString: string }, ...args: unknown[]) => Promise<unknown>>;
  const originals = { execute: proto.execute, all: proto.all };
  const tracer = trace.getTracer('fleetpatch.db');
  for (const method of ['execute', 'all'] as const) {
    const original = originals[method];
    proto[method] = function traced(this: { queryString: string }, ...args: unknown[]) {
      if (!trace.getActiveSpan()) return original.apply(this, args);
      const { operation, table } = describeStatement(this.queryString);
      return tracer.startActiveSpan(
        table ? `${operation} ${table}` : operation,
        { kind: SpanKind.CLIENT, attributes: { 'db.system': 'postgresql', 'db.operation.name': operation, ...(table ? { 'db.collection.name': table } : {}), 'db.query.text': this.queryString } },
        async (span) => {
          try {
            return await original.apply(this, args);
          } catch (error) {
            const code = (error as { code?: unknown }).code;
            // The SQLSTATE only: PostgreSQL's messages and details quote the values that failed.
            span.setStatus({ code: SpanStatusCode.ERROR, message: typeof code === 'string' ? `SQLSTATE ${code}` : 'statement failed' });
            if (typeof code === 'string') span.setAttribute('db.response.status_code', code);
            throw error;
          } finally {
            span.end();
          }
        },
      );
    };
  }
  return () => Object.assign(proto, originals);
}

/** The statement's verb and first table, for the span's name ("SELECT machines"). */
export function describeStatement(text: string): { operation: string; table: string | undefined } {
  const operation = /^\s*(\w+)/.exec(text)?.[1]?.toUpperCase() ?? 'SQL';
  const table = /\b(?:from|into|update)\s+"([^"]+)"/i.exec(text)?.[1];
  return { operation, table };
}
