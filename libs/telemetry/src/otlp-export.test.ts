import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { type OtlpReceiver, startOtlpReceiver } from '@sluice/test-harness';
import { otlpTracesUrl, startTelemetry, type Telemetry } from './sdk.ts';
import { runInSpan } from './spans.ts';

let receiver: OtlpReceiver;
let telemetry: Telemetry;

before(async () => {
  receiver = await startOtlpReceiver();
  telemetry = await startTelemetry({
    serviceName: 'sluice-otlp-test',
    instance: 'otlp-1',
    otlpEndpoint: receiver.url,
    env: {},
  });
});
after(async () => {
  await telemetry.shutdown();
  await receiver?.stop();
});

test('the traces URL is the base URL plus /v1/traces', () => {
  assert.equal(otlpTracesUrl('http://collector:4318'), 'http://collector:4318/v1/traces');
  assert.equal(otlpTracesUrl('http://collector:4318/'), 'http://collector:4318/v1/traces');
  assert.equal(otlpTracesUrl('http://collector:4318/v1/traces'), 'http://collector:4318/v1/traces');
});

test('spans are exported over OTLP/HTTP JSON with service.name and their parent', async () => {
  const ids = await runInSpan(
    'ingress accept',
    { kind: SpanKind.SERVER, attributes: { 'sluice.queue_id': 'Q9' } },
    (outer) =>
      runInSpan('publish', { kind: SpanKind.PRODUCER }, async (inner) => ({
        outer: outer.spanContext(),
        inner: inner.spanContext(),
      })),
  );
  await telemetry.forceFlush();
  const spans = await receiver.waitFor((all) => {
    const trace = all.filter((s) => s.traceId === ids.outer.traceId);
    return trace.length === 2 ? trace : undefined;
  }, 10_000);
  const outer = spans.find((s) => s.name === 'ingress accept');
  const inner = spans.find((s) => s.name === 'publish');
  assert.ok(outer && inner);
  assert.equal(outer.serviceName, 'sluice-otlp-test');
  assert.equal(outer.resource['service.instance.id'], 'otlp-1');
  assert.equal(outer.spanId, ids.outer.spanId);
  assert.equal(outer.parentSpanId, '');
  assert.equal(outer.kind, 2, 'SERVER');
  assert.equal(outer.attributes['sluice.queue_id'], 'Q9');
  assert.equal(inner.parentSpanId, ids.outer.spanId);
  assert.equal(inner.kind, 4, 'PRODUCER');
});
