import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { startTelemetry, type Telemetry } from './sdk.ts';
import { runInSpan, tracer } from './spans.ts';

const exporter = new InMemorySpanExporter();
let telemetry: Telemetry;

before(async () => {
  telemetry = await startTelemetry({
    serviceName: 'sluice-test',
    instance: 'test-1',
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
    env: {},
  });
});
after(() => telemetry.shutdown());

function finished(name: string) {
  const span = exporter.getFinishedSpans().find((s) => s.name === name);
  assert.ok(span, `span ${name} among ${exporter.getFinishedSpans().map((s) => s.name)}`);
  return span;
}

test('starting twice joins the running SDK; it keeps running until the last handle stops', async () => {
  const again = await startTelemetry({ serviceName: 'other', instance: 'x', env: {} });
  await runInSpan('shared', {}, () => undefined);
  assert.equal(
    finished('shared').resource.attributes['service.name'],
    'sluice-test',
    'the first options win',
  );
  await again.shutdown();
  await again.shutdown();
  await runInSpan('after one shutdown', {}, () => undefined);
  assert.ok(finished('after one shutdown').ended, 'still recording for the other handle');
});

test('runInSpan nests spans: a child has its parent in the same trace, and both end', async () => {
  const result = await runInSpan(
    'deliver',
    { kind: SpanKind.CONSUMER, attributes: { 'sluice.queue_id': 'Q1' } },
    async (outer) => {
      const inner = await runInSpan('smtp client', { kind: SpanKind.CLIENT }, async (span) => {
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(trace.getActiveSpan(), span, 'the inner span is active inside its function');
        return span.spanContext().spanId;
      });
      assert.equal(trace.getActiveSpan(), outer, 'the outer span is active again afterwards');
      return inner;
    },
  );
  const outer = finished('deliver');
  const inner = finished('smtp client');
  assert.equal(result, inner.spanContext().spanId);
  assert.equal(inner.spanContext().traceId, outer.spanContext().traceId);
  assert.equal(inner.parentSpanContext?.spanId, outer.spanContext().spanId);
  assert.equal(outer.parentSpanContext, undefined);
  assert.equal(outer.kind, SpanKind.CONSUMER);
  assert.equal(inner.kind, SpanKind.CLIENT);
  assert.equal(outer.attributes['sluice.queue_id'], 'Q1');
  assert.ok(outer.ended && inner.ended);
  assert.equal(outer.resource.attributes['service.name'], 'sluice-test');
  assert.equal(outer.resource.attributes['service.instance.id'], 'test-1');
});

test('a throwing function: the error propagates, the span records it with status ERROR and ends', async () => {
  await assert.rejects(
    runInSpan('resolve', {}, async () => {
      throw new TypeError('no route');
    }),
    /no route/,
  );
  const span = finished('resolve');
  assert.equal(span.status.code, SpanStatusCode.ERROR);
  assert.equal(span.status.message, 'no route');
  assert.equal(span.attributes['error.type'], 'TypeError');
  assert.equal(span.events[0]?.name, 'exception');
  assert.equal(span.events[0]?.attributes?.['exception.message'], 'no route');
  assert.ok(span.ended);
});

test('W3C trace context: an injected traceparent continues the trace in runInSpan({ parent })', async () => {
  const headers: Record<string, string> = {};
  const sent = await runInSpan('publish', { kind: SpanKind.PRODUCER }, async (span) => {
    propagation.inject(context.active(), headers);
    return span.spanContext();
  });
  assert.match(headers.traceparent ?? '', new RegExp(`^00-${sent.traceId}-${sent.spanId}-01$`));
  // Later, elsewhere (no active span): the receiver extracts the context from the headers.
  const parent = propagation.extract(context.active(), headers);
  await runInSpan('process', { kind: SpanKind.CONSUMER, parent }, async () => undefined);
  const processed = finished('process');
  assert.equal(processed.spanContext().traceId, sent.traceId);
  assert.equal(processed.parentSpanContext?.spanId, sent.spanId);
});

test('tracer makes spans with the registered provider', () => {
  const span = tracer.startSpan('manual');
  assert.ok(trace.isSpanContextValid(span.spanContext()));
  span.end();
  assert.ok(finished('manual').ended);
});
