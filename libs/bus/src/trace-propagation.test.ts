import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { context, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { consumers, headerNames, queueGroups, subjects } from '@sluice/proto';
import { type NatsTestServer, startNats } from '@sluice/test-harness';
import type { Bus } from './bus.ts';
import { connectTestBus, encoder, envelopeFor } from './test-fixtures.ts';
import { extractTraceContext, injectTraceHeaders } from './trace-headers.ts';
import type { EnvelopeDelivery } from './types.ts';

const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
const contextManager = new AsyncLocalStorageContextManager().enable();
let nats: NatsTestServer;
let bus: Bus;

before(async () => {
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(provider);
  nats = await startNats();
  bus = await connectTestBus([nats.url]);
});
after(async () => {
  await bus?.close();
  await nats?.stop();
  await provider.shutdown();
  trace.disable();
  context.disable();
});

test('traceparent round-trips through NATS headers without an SDK-registered propagator', () => {
  const spanContext = {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: 1,
  };
  const hdrs = injectTraceHeaders(natsHeaders(), trace.setSpanContext(ROOT_CONTEXT, spanContext));
  assert.equal(hdrs.get(headerNames.traceparent), '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  const back = trace.getSpanContext(extractTraceContext(hdrs, ROOT_CONTEXT));
  assert.equal(back?.traceId, spanContext.traceId);
  assert.equal(back?.spanId, spanContext.spanId);
  assert.equal(back?.isRemote, true);
});

test("the producer's trace continues in the consumer's span", async () => {
  const tracer = trace.getTracer('test');
  const body = encoder.encode('traced');
  const env = envelopeFor(body);
  const root = tracer.startSpan('smtp session');
  await context.with(trace.setSpan(ROOT_CONTEXT, root), () =>
    bus.publishEnvelope(subjects.resolve, env, body, { msgId: env.id }),
  );
  root.end();

  let active: ReturnType<typeof trace.getActiveSpan>;
  let delivered!: (d: EnvelopeDelivery) => void;
  const got = new Promise<EnvelopeDelivery>((resolve) => {
    delivered = resolve;
  });
  const c = bus.consumeEnvelopes(consumers.resolver, { concurrency: 1 }, async (d) => {
    active = trace.getActiveSpan();
    delivered(d);
    return { kind: 'ack' };
  });
  await got;
  await c.stop(); // the process span ends once the message is settled
  const traceId = root.spanContext().traceId;
  assert.equal(active?.spanContext().traceId, traceId, "the handler runs in the producer's trace");

  await provider.forceFlush();
  const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  const send = spans.find((s) => s.name === `send ${subjects.resolve}`);
  const process = spans.find((s) => s.name === `process ${subjects.resolve}`);
  assert.ok(send && process, `spans: ${spans.map((s) => s.name).join(', ')}`);
  assert.equal(send.kind, SpanKind.PRODUCER);
  assert.equal(send.parentSpanContext?.spanId, root.spanContext().spanId);
  assert.equal(process.kind, SpanKind.CONSUMER);
  assert.equal(process.parentSpanContext?.spanId, send.spanContext().spanId);
  assert.equal(process.attributes['messaging.system'], 'nats');
  assert.equal(process.attributes['messaging.destination.name'], subjects.resolve);
  assert.equal(process.attributes['messaging.consumer.group.name'], 'resolver');
  assert.equal(process.attributes['messaging.message.id'], env.id);
  assert.equal(active?.spanContext().spanId, process.spanContext().spanId);
});

test('RPC requests carry the trace to a SERVER span', async () => {
  const tracer = trace.getTracer('test');
  let seen: string | undefined;
  const s = bus.serve(subjects.filterVerdict, queueGroups.filter, { concurrency: 1 }, async () => {
    seen = trace.getActiveSpan()?.spanContext().traceId;
    return encoder.encode('{}');
  });
  await bus.nc.flush();
  const root = tracer.startSpan('rcpt');
  await context.with(trace.setSpan(ROOT_CONTEXT, root), () =>
    bus.request(subjects.filterVerdict, encoder.encode('{}'), 2000),
  );
  root.end();
  await s.stop();
  assert.equal(seen, root.spanContext().traceId);
  await provider.forceFlush();
  const server = exporter
    .getFinishedSpans()
    .find((sp) => sp.kind === SpanKind.SERVER && sp.spanContext().traceId === root.spanContext().traceId);
  assert.ok(server);
});
