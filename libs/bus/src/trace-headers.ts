/**
 * W3C trace context (traceparent / tracestate) in NATS message headers, so one
 * trace follows a message through every stage: the producer injects the
 * active context, JetStream stores the headers with the message, and the
 * consumer extracts it as the parent of its span. The W3C propagator is used
 * directly (not the globally registered one) so propagation works even in a
 * process without an OpenTelemetry SDK, e.g. a CLI or a test; the same header
 * names are what the NATS .NET client uses.
 */

import { type MsgHdrs, headers as natsHeaders } from '@nats-io/transport-node';
import { type Context, context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { TraceContextPropagator } from '@sluice/telemetry/trace-context';

const propagator = new TraceContextPropagator();

export const msgHdrsSetter: TextMapSetter<MsgHdrs> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

export const msgHdrsGetter: TextMapGetter<MsgHdrs | undefined> = {
  get(carrier, key) {
    if (!carrier?.has(key)) return undefined;
    return carrier.get(key);
  },
  keys(carrier) {
    return carrier ? carrier.keys() : [];
  },
};

/** Put the trace context of `ctx` (default: the active one) into `hdrs`. Returns `hdrs`. */
export function injectTraceHeaders(hdrs: MsgHdrs = natsHeaders(), ctx: Context = context.active()): MsgHdrs {
  propagator.inject(ctx, hdrs, msgHdrsSetter);
  return hdrs;
}

/** The context carried by `hdrs`, on top of `base` (default: the active one); `base` when none. */
export function extractTraceContext(hdrs: MsgHdrs | undefined, base: Context = context.active()): Context {
  return propagator.extract(base, hdrs, msgHdrsGetter);
}

/** NATS headers as a plain map of first values (what RPC handlers see). */
export function headersToRecord(hdrs: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!hdrs) return out;
  for (const [k, v] of hdrs) {
    if (v.length > 0 && v[0] !== undefined) out[k] = v[0];
  }
  return out;
}
