import type { ApolloServerPlugin } from '@apollo/server';
import { context, trace, SpanStatusCode, type Span } from '@opentelemetry/api';
import type { RequestHandler } from 'express';
import { activeTracing, contextOf, SpanKind, tracer } from '../telemetry/tracing.js';

/**
 * A span per GraphQL request over HTTP, the root of its trace (or a child of the caller's, when
 * the request carries a W3C traceparent header). Mounted after the body is read: the parser's
 * stream events would run outside the span's context, and the resolvers with them. Nothing while
 * traces are off.
 */
export function graphqlRequestSpans(path: string): RequestHandler {
  return (req, res, next) => {
    if (!activeTracing()) return next();
    const parent = contextOf(req.headers);
    const span = tracer().startSpan('graphql', { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method, 'url.path': path } }, parent);
    res.once('close', () => {
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });
    context.with(trace.setSpan(parent, span), next);
  };
}

/**
 * Names the request's span after its operation ("mutation runDeploymentNow") and records the error
 * codes it answered with. Never the document nor its variables: literals and variables carry
 * secrets (an enrollment key, a token being created) and what users typed.
 */
export const graphqlSpanPlugin: ApolloServerPlugin = {
  async requestDidStart() {
    const span: Span | undefined = activeTracing() ? trace.getActiveSpan() : undefined;
    if (!span) return {};
    return {
      async didResolveOperation({ operation, operationName }) {
        if (!operation) return;
        span.updateName(operationName ? `${operation.operation} ${operationName}` : operation.operation);
        span.setAttribute('graphql.operation.type', operation.operation);
        if (operationName) span.setAttribute('graphql.operation.name', operationName);
      },
      async willSendResponse({ response }) {
        const errors = response.body.kind === 'single' ? response.body.singleResult.errors : undefined;
        if (errors?.length) {
          const codes = [...new Set(errors.map((e) => String(e.extensions?.code ?? 'INTERNAL')))];
          span.setAttribute('graphql.error.codes', codes);
          span.setStatus({ code: SpanStatusCode.ERROR, message: codes.join(', ') });
        }
      },
    };
  },
};
