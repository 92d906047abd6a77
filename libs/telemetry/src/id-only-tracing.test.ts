import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { context, propagation, ROOT_CONTEXT, SpanKind, TraceFlags, trace } from '@opentelemetry/api';
import { startTelemetry, type Telemetry } from './sdk.ts';
import { runInSpan, tracer } from './spans.ts';

// No endpoint, no processor: the id-only tracer (nothing records, ids still flow).
let telemetry: Telemetry;
before(async () => {
  telemetry = await startTelemetry({ serviceName: 'sluice-test', instance: 'test-1', env: {} });
});
after(() => telemetry.shutdown());

test('without an exporter spans still have ids: a root is sampled, a child keeps the trace, log lines read them', async () => {
  const seen = await runInSpan('outer', { kind: SpanKind.CONSUMER, attributes: { a: 1 } }, async (outer) => {
    const o = outer.spanContext();
    assert.match(o.traceId, /^[0-9a-f]{32}$/);
    assert.match(o.spanId, /^[0-9a-f]{16}$/);
    assert.equal(
      o.traceFlags,
      TraceFlags.SAMPLED,
      'a root span is marked sampled, as the SDK default sampler does',
    );
    assert.equal(outer.isRecording(), false, 'nothing is recorded');
    const inner = await runInSpan('inner', {}, async (span) => {
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(trace.getActiveSpan(), span, 'the active span survives an await');
      assert.equal(trace.getSpanContext(context.active())?.traceId, o.traceId, 'what log lines read');
      return span.spanContext();
    });
    assert.equal(inner.traceId, o.traceId);
    assert.notEqual(inner.spanId, o.spanId);
    assert.equal(trace.getActiveSpan(), outer, 'the outer span is active again afterwards');
    return o;
  });
  assert.equal(trace.getActiveSpan(), undefined, 'no span outside');
  assert.notEqual(seen.traceId, '0'.repeat(32));
});

test('without an exporter the W3C traceparent goes out and a span continues a trace that came in', () => {
  const incoming = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const parent = propagation.extract(ROOT_CONTEXT, { traceparent: incoming });
  const span = tracer.startSpan('process', { kind: SpanKind.CONSUMER }, parent);
  assert.equal(span.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c');
  assert.equal(span.spanContext().traceFlags, TraceFlags.SAMPLED, 'the parent flags are kept');
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  assert.match(
    carrier.traceparent!,
    new RegExp(`^00-0af7651916cd43dd8448eb211c80319c-${span.spanContext().spanId}-01$`),
  );
  const unsampled = propagation.extract(ROOT_CONTEXT, { traceparent: incoming.replace(/-01$/, '-00') });
  assert.equal(tracer.startSpan('x', {}, unsampled).spanContext().traceFlags, TraceFlags.NONE);
  assert.notEqual(
    tracer.startSpan('root', { root: true }, parent).spanContext().traceId,
    '0af7651916cd43dd8448eb211c80319c',
    'root: a new trace',
  );
});
