/**
 * TraceContextPropagator behaves as @opentelemetry/core's
 * W3CTraceContextPropagator: the same headers injected from the same
 * contexts (sampled or not, with trace state, invalid, suppressed), and the
 * same span contexts extracted from valid, future-version, malformed and
 * missing traceparent values, with their tracestate (W3C Trace Context §3).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Context,
  createContextKey,
  createTraceState,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  type SpanContext,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { parseTraceParent, TraceContextPropagator } from './trace-context-propagator.ts';

const ours = new TraceContextPropagator();
const theirs = new W3CTraceContextPropagator();
const TRACE = '0af7651916cd43dd8448eb211c80319c';
const SPAN = 'b7ad6b7169203331';

function injected(p: TraceContextPropagator | W3CTraceContextPropagator, ctx: Context) {
  const carrier: Record<string, string> = {};
  p.inject(ctx, carrier, defaultTextMapSetter);
  return carrier;
}

function extracted(p: TraceContextPropagator | W3CTraceContextPropagator, carrier: Record<string, unknown>) {
  const span = trace.getSpanContext(p.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
  return span ? { ...span, traceState: span.traceState?.serialize() } : undefined;
}

describe('TraceContextPropagator equals W3CTraceContextPropagator', () => {
  const contexts: Array<[string, Context]> = [
    ['sampled', trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE, spanId: SPAN, traceFlags: 1 })],
    ['not sampled', trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE, spanId: SPAN, traceFlags: 0 })],
    [
      'with trace state',
      trace.setSpanContext(ROOT_CONTEXT, {
        traceId: TRACE,
        spanId: SPAN,
        traceFlags: TraceFlags.SAMPLED,
        traceState: createTraceState('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'),
      }),
    ],
    [
      'invalid ids',
      trace.setSpanContext(ROOT_CONTEXT, { traceId: '0'.repeat(32), spanId: SPAN, traceFlags: 1 }),
    ],
    ['no span', ROOT_CONTEXT],
    [
      'tracing suppressed',
      trace
        .setSpanContext(ROOT_CONTEXT, { traceId: TRACE, spanId: SPAN, traceFlags: 1 })
        .setValue(createContextKey('OpenTelemetry SDK Context Key SUPPRESS_TRACING'), true),
    ],
  ];
  for (const [name, ctx] of contexts)
    test(`inject: ${name}`, () => assert.deepEqual(injected(ours, ctx), injected(theirs, ctx)));

  const carriers: Array<[string, Record<string, unknown>]> = [
    ['sampled', { traceparent: `00-${TRACE}-${SPAN}-01` }],
    ['not sampled', { traceparent: `00-${TRACE}-${SPAN}-00` }],
    [
      'with tracestate',
      { traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'rojo=00f067aa0ba902b7, congo=t61rcWkgMzE' },
    ],
    ['tracestate in two headers', { traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: ['a=1', 'b=2'] }],
    ['an invalid tracestate member', { traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'a=1,B@=2,c=3' }],
    ['a later version with more fields', { traceparent: `cc-${TRACE}-${SPAN}-01-what-the-future-holds` }],
    ['version 00 with more fields', { traceparent: `00-${TRACE}-${SPAN}-01-extra` }],
    ['version ff', { traceparent: `ff-${TRACE}-${SPAN}-01` }],
    ['all-zero trace id', { traceparent: `00-${'0'.repeat(32)}-${SPAN}-01` }],
    ['all-zero parent id', { traceparent: `00-${TRACE}-${'0'.repeat(16)}-01` }],
    ['upper case', { traceparent: `00-${TRACE.toUpperCase()}-${SPAN}-01` }],
    ['surrounding spaces', { traceparent: ` 00-${TRACE}-${SPAN}-01 ` }],
    ['two values', { traceparent: [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-00`] }],
    ['empty', { traceparent: '' }],
    ['none', {}],
  ];
  for (const [name, carrier] of carriers)
    test(`extract: ${name}`, () => assert.deepEqual(extracted(ours, carrier), extracted(theirs, carrier)));

  test('a valid traceparent gives a remote span context; fields() names both headers', () => {
    const span = extracted(ours, { traceparent: `00-${TRACE}-${SPAN}-01` }) as SpanContext;
    assert.deepEqual(span, {
      traceId: TRACE,
      spanId: SPAN,
      traceFlags: 1,
      isRemote: true,
      traceState: undefined,
    });
    assert.equal(parseTraceParent('garbage'), null);
    assert.deepEqual(ours.fields(), theirs.fields());
  });
});
