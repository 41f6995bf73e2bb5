import { context, INVALID_SPAN_CONTEXT, propagation, trace, SpanKind, SpanStatusCode, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { Logger } from '../logger.js';
import type { TracingSdk } from './tracingSdk.js';

/**
 * Traces (OpenTelemetry), on only when an OTLP endpoint is configured. Off, nothing of the SDK, the
 * exporter or Temporal's interceptors is loaded: code calls the OpenTelemetry API alone, whose calls
 * do nothing while no SDK is registered (a span costs one no-op object). docs/observability.md.
 */

/** Whether this environment asks for traces: an OTLP endpoint, and the SDK not disabled. */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return false;
  if (env.OTEL_TRACES_EXPORTER !== undefined && env.OTEL_TRACES_EXPORTER.toLowerCase() === 'none') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT);
}

let active: TracingSdk | undefined;

/** The running SDK of this process, undefined while traces are off. */
export function activeTracing(): TracingSdk | undefined {
  return active;
}

/**
 * Starts traces for this process when the environment asks for them (once: a second call, as
 * `fleetpatch dev` runs the worker and the API in one process, keeps the first). `service` names
 * the process in the traces unless OTEL_SERVICE_NAME does.
 */
export async function startTracing(service: string, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<TracingSdk | undefined> {
  if (active || !tracingRequested(env)) return active;
  const { startTracingSdk } = await import('./tracingSdk.js');
  // As the OTLP exporter's specification says: the signal's own endpoint as it is, the general one with /v1/traces.
  const url = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || `${env.OTEL_EXPORTER_OTLP_ENDPOINT!.replace(/\/$/, '')}/v1/traces`;
  const serviceName = env.OTEL_SERVICE_NAME || service;
  active = startTracingSdk({ serviceName, url, logger });
  logger.info({ url, service: serviceName }, 'traces exported over OTLP/HTTP');
  return active;
}

/** Sends the spans still buffered and stops the SDK (the commands call it last when they stop). */
export async function stopTracing(): Promise<void> {
  const sdk = active;
  active = undefined;
  await sdk?.shutdown();
}

/** The tracer of fleetpatch's own spans (a no-op one while traces are off). */
export function tracer() {
  return trace.getTracer('fleetpatch');
}

/**
 * The W3C traceparent of the span running now, to store beside what a later request continues (an
 * agent job's task token): null while traces are off or outside any span.
 */
export function currentTraceparent(): string | null {
  if (!active) return null;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ?? null;
}

/** The context a stored or received traceparent names (the active one when there is none). */
export function contextOf(carrier: Record<string, string | string[] | undefined> | null | undefined): Context {
  if (!carrier) return context.active();
  return propagation.extract(context.active(), carrier);
}

/**
 * Runs `fn` in a span of its own, child of `parent` (the active context by default); the span ends
 * when `fn` settles and carries its error. While traces are off, `fn` runs as it is.
 */
export async function inSpan<T>(name: string, options: { attributes?: Attributes; kind?: SpanKind; parent?: Context }, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!active) return fn(trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  return tracer().startActiveSpan(name, { attributes: options.attributes, kind: options.kind ?? SpanKind.INTERNAL }, options.parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      recordFailure(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Marks a span failed with the error's kind and message (never its details object: it may carry input). */
export function recordFailure(span: Span, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  span.setAttribute('error.type', error instanceof Error ? error.constructor.name : typeof error);
}

export { SpanKind };
