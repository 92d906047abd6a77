/**
 * The W3C Trace Context propagator (https://www.w3.org/TR/trace-context/):
 * `traceparent` and `tracestate` into and out of a carrier (NATS message
 * headers, the global propagator of a process without the SDK). It behaves as
 * @opentelemetry/core's W3CTraceContextPropagator, on @opentelemetry/api
 * alone: core loads the semantic-conventions tables for its SDK info, 4 MB
 * of RSS in every process that never loads the SDK (docs/decisions/0045).
 * The SDK, when it runs (sdk.ts), keeps core's own.
 * trace-context-propagator.test.ts holds the two to the same headers and
 * contexts.
 */
import {
  type Context,
  createContextKey,
  createTraceState,
  isSpanContextValid,
  type SpanContext,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  TraceFlags,
  trace,
} from '@opentelemetry/api';

const TRACE_PARENT = 'traceparent';
const TRACE_STATE = 'tracestate';
/** The SDK's "suppress tracing" context key (core's suppress-tracing; createContextKey is Symbol.for). */
const SUPPRESS_TRACING = createContextKey('OpenTelemetry SDK Context Key SUPPRESS_TRACING');

/**
 * Trace Context §3.2: version (never ff), trace-id (not all zeros), parent-id
 * (not all zeros), trace-flags; a later version may add fields after a dash,
 * version 00 may not (§3.2.4).
 */
const TRACE_PARENT_FORMAT =
  /^\s?((?!ff)[\da-f]{2})-((?![0]{32})[\da-f]{32})-((?![0]{16})[\da-f]{16})-([\da-f]{2})(-.*)?\s?$/;

/** The span context of a traceparent value, or null when it is not one. */
export function parseTraceParent(value: string): SpanContext | null {
  const m = TRACE_PARENT_FORMAT.exec(value);
  if (!m || (m[1] === '00' && m[5])) return null;
  return { traceId: m[2]!, spanId: m[3]!, traceFlags: Number.parseInt(m[4]!, 16) };
}

export class TraceContextPropagator implements TextMapPropagator {
  inject(ctx: Context, carrier: unknown, setter: TextMapSetter): void {
    const span = trace.getSpanContext(ctx);
    if (!span || ctx.getValue(SUPPRESS_TRACING) === true || !isSpanContextValid(span)) return;
    const flags = Number(span.traceFlags || TraceFlags.NONE).toString(16);
    setter.set(carrier, TRACE_PARENT, `00-${span.traceId}-${span.spanId}-0${flags}`);
    if (span.traceState) setter.set(carrier, TRACE_STATE, span.traceState.serialize());
  }

  extract(ctx: Context, carrier: unknown, getter: TextMapGetter): Context {
    const header = getter.get(carrier, TRACE_PARENT);
    const value = Array.isArray(header) ? header[0] : header;
    if (typeof value !== 'string') return ctx;
    const span = parseTraceParent(value);
    if (!span) return ctx;
    span.isRemote = true;
    const state = getter.get(carrier, TRACE_STATE);
    if (state) span.traceState = createTraceState(Array.isArray(state) ? state.join(',') : state);
    return trace.setSpanContext(ctx, span);
  }

  fields(): string[] {
    return [TRACE_PARENT, TRACE_STATE];
  }
}
