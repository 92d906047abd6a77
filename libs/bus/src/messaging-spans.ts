/**
 * Spans for bus operations, named and attributed after the OpenTelemetry
 * messaging conventions as the NATS .NET client applies them
 * ("send <subject>" PRODUCER, "process <subject>" CONSUMER, RPC CLIENT and
 * SERVER spans; messaging.system = "nats"). The OTel API is used directly so
 * the bus records spans whenever an SDK is registered and costs next to
 * nothing when none is.
 */
import {
  type Attributes,
  type Context,
  context,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

export const tracer = trace.getTracer('sluice');

export { SpanKind };

/** Run `fn` in a new span (child of `parent`, default the active context); ends it and records failures. */
export async function inSpan<T>(
  name: string,
  opts: { kind: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = opts.parent ?? context.active();
  const span = tracer.startSpan(name, { kind: opts.kind, attributes: opts.attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    throw err;
  } finally {
    span.end();
  }
}
