/**
 * Making spans: `tracer` for Sluice's own spans and `runInSpan`, which runs a
 * function as the active span (so log lines and outgoing NATS messages inside
 * it carry its ids), ends the span however the function finishes, and records
 * a thrown error (exception event, status ERROR, error.type attribute per the
 * OpenTelemetry general span conventions).
 */
import {
  type Attributes,
  type Context,
  context,
  type Span,
  type SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';

const TRACER_NAME = 'sluice';

/**
 * Sluice's tracer. It looks up the registered provider on every call (not once
 * at import), so spans go to whichever provider startTelemetry installed last.
 */
export const tracer: Tracer = {
  startSpan: (name, options, ctx) => trace.getTracer(TRACER_NAME).startSpan(name, options, ctx),
  startActiveSpan: ((...args: Parameters<Tracer['startActiveSpan']>) =>
    (trace.getTracer(TRACER_NAME).startActiveSpan as (...a: unknown[]) => unknown)(
      ...args,
    )) as Tracer['startActiveSpan'],
};

export interface RunInSpanOptions {
  kind?: SpanKind;
  attributes?: Attributes;
  /** Parent context (e.g. extracted from message headers); default: the active context. */
  parent?: Context;
}

export async function runInSpan<T>(
  name: string,
  opts: RunInSpanOptions,
  fn: (span: Span) => Promise<T> | T,
): Promise<T> {
  const parent = opts.parent ?? context.active();
  return tracer.startActiveSpan(
    name,
    { kind: opts.kind, attributes: opts.attributes },
    parent,
    async (span) => {
      try {
        return await fn(span);
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        span.recordException(error);
        span.setAttribute('error.type', error.name);
        span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
        throw err;
      } finally {
        span.end();
      }
    },
  );
}
